#include "api/src/auto_select.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "api/src/registry.hpp"
#include "api/src/validate.hpp"
#include "api/src/verbose.hpp"
#include "convkit/error.hpp"

namespace convkit::internal {

namespace {

// A measurement's outcome, kept per problem for the life of the process.
struct Measured {
  std::string backend;
  std::string times;  // "highway 0.412 ms, onednn 0.538 ms"
};

// The CONVKIT_AUTO=measure cache. `measuring` serialises measurements, so that two threads
// creating plans at once neither time each other's work nor measure the same problem twice.
struct MeasureCache {
  std::mutex mutex;  // guards `map`
  std::unordered_map<std::string, Measured> map;
  std::mutex measuring;

  std::optional<Measured> find(const std::string& key) {
    const std::lock_guard<std::mutex> lock(mutex);
    const auto it = map.find(key);
    if (it == map.end()) return std::nullopt;
    return it->second;
  }
  void store(const std::string& key, Measured measured) {
    const std::lock_guard<std::mutex> lock(mutex);
    map.insert_or_assign(key, std::move(measured));
  }
};

MeasureCache& measure_cache() {
  static MeasureCache cache;
  return cache;
}

// Timing: each sample runs a candidate enough times to last kMinSampleSeconds (a steady_clock
// read costs ~20 ns, a sample of 0.2 ms keeps it below 0.01 %), kSamples rounds interleave the
// candidates so that a burst of load on this machine hits all of them, and the median is kept.
constexpr double kMinSampleSeconds = 2e-4;
constexpr int kSamples = 5;
constexpr int kMaxRepeats = 1000;

double seconds_of(const std::function<void()>& run, int repeats) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i) run();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Median seconds per run of each of `runs`, measured interleaved. Each has run once already.
std::vector<double> time_interleaved(const std::vector<std::function<void()>>& runs) {
  std::vector<int> repeats;
  for (const auto& run : runs) {
    const double once = std::max(seconds_of(run, 1), 1e-9);
    repeats.push_back(std::clamp(static_cast<int>(kMinSampleSeconds / once) + 1, 1, kMaxRepeats));
  }
  std::vector<std::vector<double>> samples(runs.size());
  for (int s = 0; s < kSamples; ++s) {
    for (size_t i = 0; i < runs.size(); ++i) {
      samples[i].push_back(seconds_of(runs[i], repeats[i]) / repeats[i]);
    }
  }
  std::vector<double> medians;
  for (std::vector<double>& times : samples) {
    std::nth_element(times.begin(), times.begin() + kSamples / 2, times.end());
    medians.push_back(times[kSamples / 2]);
  }
  return medians;
}

// Refusal reasons, each starting with the backend's name.
class Refusals {
 public:
  void add(const Backend& backend, std::string_view reason) {
    text_.append(text_.empty() ? "" : "; ");
    const std::string prefix = std::string(backend.name()) + ":";
    if (reason.substr(0, prefix.size()) != prefix) text_.append(prefix).append(" ");
    text_.append(reason);
  }
  bool empty() const { return text_.empty(); }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// A test-only fault injection: CONVKIT_TEST_REFUSE=<name>[,<name>...] makes auto treat those
// backends as refusing when their plan is created (the stage at which oneDNN refuses), so the
// dispatch tests can exercise the fall-through without a problem that some backend happens to
// refuse. Never set outside tests.
bool test_refuses(const Backend& backend) {
  const char* env = std::getenv("CONVKIT_TEST_REFUSE");
  if (env == nullptr) return false;
  const std::string_view list = env;
  const std::string_view name = backend.name();
  for (size_t start = 0; start <= list.size();) {
    const size_t comma = std::min(list.find(',', start), list.size());
    if (list.substr(start, comma - start) == name) return true;
    start = comma + 1;
  }
  return false;
}

// Runs one stage of a candidate: supports(), then `stage` (attempt or trial). Returns false, with
// the reason added to `refusals`, when the backend refuses.
bool try_stage(const AutoCall& call, const Backend& backend,
               const std::function<void(const Backend&)>& stage, Refusals* refusals) {
  const Support support = call.supports(backend);
  if (!support.ok) {
    refusals->add(backend, support.reason);
    return false;
  }
  try {
    if (test_refuses(backend)) {
      throw Error(ErrorCode::kUnsupported, "refused at creation (CONVKIT_TEST_REFUSE)");
    }
    stage(backend);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kUnsupported) throw;
    refusals->add(backend, e.what());
    return false;
  }
  return true;
}

// The built backends, `first` first, the others in the registry's order (reference last).
// A fixed-size list, not a vector: auto runs this on every one-shot call, where a heap
// allocation and free were a tenth of a sub-microsecond pooling call.
class BackendOrder {
 public:
  void push_front(const Backend* backend) {
    std::copy_backward(slots_.begin(), slots_.begin() + size_, slots_.begin() + size_ + 1);
    slots_[0] = backend;
    ++size_;
  }
  void push_back(const Backend* backend) { slots_[size_++] = backend; }
  const Backend* const* begin() const { return slots_.data(); }
  const Backend* const* end() const { return slots_.data() + size_; }

 private:
  std::array<const Backend*, kRegisteredBackends> slots_{};
  size_t size_ = 0;
};

BackendOrder auto_order(std::string_view first) {
  BackendOrder order;
  for (const Backend* backend : registry()) {
    if (!backend->not_built_reason().empty()) continue;
    if (backend->name() == first) {
      order.push_front(backend);
    } else {
      order.push_back(backend);
    }
  }
  return order;
}

bool is_reference(const Backend& backend) { return backend.name() == "reference"; }

std::string format_ms(double seconds) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.4g ms", seconds * 1e3);
  return buffer;
}

// Times every built backend but reference that accepts the problem; returns the fastest, or
// nullopt when fewer than one accepts (the table's order then decides, and reference runs).
std::optional<Measured> measure(const AutoCall& call, Refusals* refusals) {
  std::vector<const Backend*> accepted;
  for (const Backend* backend : auto_order(kAutoDefaultBackend)) {
    if (is_reference(*backend)) continue;
    if (try_stage(call, *backend, call.trial, refusals)) accepted.push_back(backend);  // warm-up
  }
  if (accepted.empty()) return std::nullopt;
  std::vector<std::function<void()>> runs;
  for (const Backend* backend : accepted)
    runs.push_back([&call, backend] { call.trial(*backend); });
  const std::vector<double> medians = time_interleaved(runs);
  Measured measured;
  size_t best = 0;
  for (size_t i = 0; i < accepted.size(); ++i) {
    if (medians[i] < medians[best]) best = i;
    measured.times.append(i == 0 ? "" : ", ")
        .append(accepted[i]->name())
        .append(" ")
        .append(format_ms(medians[i]));
  }
  measured.backend = accepted[best]->name();
  return measured;
}

// The backend measure mode prefers, and why; nullopt when the table should decide.
std::optional<std::string> measured_choice(const AutoCall& call, std::string* why,
                                           Refusals* refusals) {
  thread_local std::string key;  // reused: a cache lookup per one-shot call allocates nothing
  key.assign(call.verbose_op).append(" ").append(call.describe());
  key.append(" threads ").append(std::to_string(call.features.threads));
  if (call.features.call == CallKind::kOneShot) key.append(" one-shot");  // times differ: apart
  MeasureCache& cache = measure_cache();
  if (std::optional<Measured> hit = cache.find(key)) {
    *why = "measured earlier (cached): " + hit->times;
    return hit->backend;
  }
  if (!call.trial) return std::nullopt;
  const std::string this_key = key;  // `key` is reused if measuring calls back into convkit
  const std::lock_guard<std::mutex> lock(cache.measuring);
  if (std::optional<Measured> hit = cache.find(this_key)) {  // measured by another thread
    *why = "measured earlier (cached): " + hit->times;
    return hit->backend;
  }
  std::optional<Measured> measured = measure(call, refusals);
  if (!measured) return std::nullopt;
  *why = "measured: " + measured->times;
  cache.store(this_key, *measured);
  return measured->backend;
}

void print_why(const AutoCall& call, const Backend& chosen, std::string_view why,
               const Refusals& refusals) {
  const std::string line = "convkit_verbose,auto," + std::string(call.verbose_op) + "," +
                           std::string(call.describe()) + "," + std::string(chosen.name()) + "," +
                           std::string(why) +
                           (refusals.empty() ? "" : ",refused: " + refusals.text()) + "\n";
  std::fputs(line.c_str(), stderr);  // one call per line: concurrent lines do not interleave
}

}  // namespace

float* Scratch::data() {
  if (data_.empty() && size_ > 0) {
    data_.resize(static_cast<size_t>(size_));
    for (size_t i = 0; i < data_.size(); ++i) data_[i] = static_cast<float>(i % 7) * 0.25f - 0.75f;
  }
  return data_.data();
}

AutoMode auto_mode(std::string_view op) {
  const char* env = std::getenv("CONVKIT_AUTO");
  if (env == nullptr || *env == '\0' || std::string_view(env) == "table") return AutoMode::kTable;
  if (std::string_view(env) == "measure") return AutoMode::kMeasure;
  fail(ErrorCode::kInvalidArgument, op, "CONVKIT_AUTO", "table or measure (or unset)",
       "'" + std::string(env) + "'");
}

// Why the table put `first` first, for CONVKIT_VERBOSE=2 only (it formats strings).
std::string table_reason(const AutoFeatures& features, const AutoRule* rule) {
  if (rule != nullptr) return "rule: " + std::string(rule->why);
  return "no rule for " + features.to_string() + ": " + std::string(kAutoDefaultBackend) +
         " by default";
}

const Backend& run_auto(const AutoCall& call) {
  Refusals refusals;
  std::string why;  // set by measure mode; the table's reason is formatted only when printed
  const AutoRule* rule = nullptr;
  std::optional<std::string> first;
  if (auto_mode(call.op) == AutoMode::kMeasure) first = measured_choice(call, &why, &refusals);
  if (!first) {
    rule = match_auto_rule(call.features);
    first = std::string(rule != nullptr ? rule->backend : kAutoDefaultBackend);
  }
  Refusals attempt_refusals;
  for (const Backend* backend : auto_order(*first)) {
    if (!try_stage(call, *backend, call.attempt, &attempt_refusals)) continue;
    // The refusals met while measuring repeat those met here; print whichever list has them.
    if (verbose_level() >= 2) {
      if (why.empty()) why = table_reason(call.features, rule);
      print_why(call, *backend, why, attempt_refusals.empty() ? refusals : attempt_refusals);
    }
    return *backend;
  }
  fail(ErrorCode::kUnsupported, call.op, "backend", "a built backend that runs this problem",
       "auto, refused by every backend: " + attempt_refusals.text());
}

const Backend& run_on_backend(std::string_view requested, const AutoCall& call) {
  std::string_view arg;
  const Backend* named = named_backend(call.op, requested, &arg);
  if (named == nullptr) return run_auto(call);
  check_named_support(call.op, arg, *named, call.supports(*named));
  call.attempt(*named);
  return *named;
}

}  // namespace convkit::internal
