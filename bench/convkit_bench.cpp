// convkit_bench: Google Benchmark over op x backend x shape set (DESIGN §9).
//
// Benchmarks are registered at run time, one per (op, backend, shape), named
// "<op>/<backend>/<set>/<shape>/N<batch>". Plans are created, weights packed and the first call
// made before the timed loop; the loop times run() alone (or the one-shot call for the _oneshot
// ops). conv2d_bwd is one training step's backward (dx, dw and db by one plan), conv2d_bwd_data
// and conv2d_bwd_weights (dw + db) its halves. The console's and the
// JSON's "real_time" is the wall time per call. Counters are rates per second of wall time (the
// work runs on OpenMP threads, so the caller's CPU time means little): GFLOPS for convolutions
// (nominal 2*N*OH*OW*OC*KH*KW*IC/groups, the same for every pass) and GBps for pooling (bytes read
// + written: x and y forward; dy and dx backward, plus x for max). The label is the plan's
// implementation, "backend:variant:isa".
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bench/bench_common.hpp"
#include "bench/shape_sets.hpp"
#include "convkit/convkit.hpp"

namespace convkit::bench {
namespace {

// printf format: the op names, the backends built in, the set names.
constexpr const char kUsage[] = R"(convkit_bench [google-benchmark flags] [convkit flags]
convkit flags (lists are comma-separated; each defaults to all):
  --ops=LIST        %s
  --backends=LIST   default: every backend built into this copy (%s); add auto, and
                    auto_measure (auto under CONVKIT_AUTO=measure), to compare their choices with
                    the backends they choose from
  --sets=LIST       %s
  --batch=N         run every shape at batch N instead of its default batch
  --threads=N       threads per call (convkit::set_num_threads); default OMP_NUM_THREADS or all cores
  --reference=WHICH small (default: problems under 50 MFLOP / 32 MB), all, or none
  --real_time       iterate until enough wall time (not CPU time) has passed; names get the
                    suffix /real_time. For loaded machines, where runs otherwise grow long.
  --post_ops=LIST   conv2d_fwd only: none (default), an activation (relu, relu6, clip, leaky_relu,
                    sigmoid, tanh, silu, hardswish, hardsigmoid, gelu), r (residual), ACT+r
                    (residual before ACT), xs (x times a per-channel gate: Conv2d::run_scaled);
                    sep_X runs X as a separate pass over y (for xs: over a copy of x) around the
                    plain convolution, as a caller without fusion would. Names get /X.
  --list_shapes     print the selected shapes as JSON lines and exit
e.g. convkit_bench --ops=conv2d_fwd --sets=resnet50 --threads=2 --benchmark_min_time=0.2
     convkit_bench --ops=conv2d_fwd --post_ops=none,relu,silu,r,sep_silu --sets=mobilenet
)";

// The work one benchmark times. Tensors live here so the timed call allocates nothing.
struct Prepared {
  std::function<void()> run;
  std::string label;
  // One-shot calls: the warm-up call reads its implementation from its CONVKIT_VERBOSE line, and
  // the label becomes "<implementation> (one-shot)" (auto may choose a one-shot call's backend
  // unlike the plan's: the label given is the fallback when the line names none).
  bool label_from_verbose = false;
};

// Sets an environment variable until the end of the scope, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) had_old_ = true, old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() { had_old_ ? setenv(name_, old_.c_str(), 1) : unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  bool had_old_ = false;
  std::string old_;
};

// Runs `call` once with CONVKIT_VERBOSE=1 and stderr captured; returns the implementation its
// verbose line names ("backend:variant:isa"; under auto, what auto chose), or "" when none.
std::string ImplFromVerbose(const std::function<void()>& call) {
  const ScopedEnv verbose("CONVKIT_VERBOSE", "1");
  std::fflush(stderr);
  FILE* capture = std::tmpfile();
  if (capture == nullptr) {
    call();
    return {};
  }
  const int saved_stderr = dup(STDERR_FILENO);
  dup2(fileno(capture), STDERR_FILENO);
  const auto restore = [&] {
    std::fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
  };
  try {
    call();
  } catch (...) {
    restore();
    std::fclose(capture);
    throw;
  }
  restore();
  std::rewind(capture);
  char line[4096];
  std::string impl;
  if (std::fgets(line, sizeof(line), capture) != nullptr) {
    const std::string_view text = line;  // convkit_verbose,<op>,<impl>,<problem>,<time> ms
    const size_t start = text.find(',', text.find(',') + 1) + 1;
    impl = std::string(text.substr(start, text.find(',', start) - start));
  }
  std::fclose(capture);
  return impl;
}

// Runs `prepare` (which creates plans and makes the first, untimed call). On a convkit::Error the
// benchmark is skipped with the reason, "unsupported: ..." when the backend refuses the problem.
bool Prepare(benchmark::State& state, const std::function<Prepared()>& prepare, Prepared* out) {
  try {
    *out = prepare();
    // Warm-up: first touch of the outputs, lazy initialisation inside backends.
    if (out->label_from_verbose) {
      const std::string impl = ImplFromVerbose(out->run);
      if (!impl.empty()) out->label = impl + " (one-shot)";
    } else {
      out->run();
    }
    state.SetLabel(out->label);
    return true;
  } catch (const Error& e) {
    const std::string prefix = e.code() == ErrorCode::kUnsupported ? "unsupported: " : "error: ";
    state.SkipWithError((prefix + e.what()).c_str());
  } catch (const std::exception& e) {
    state.SkipWithError((std::string("error: ") + e.what()).c_str());
  }
  return false;
}

// Times prepared.run() and returns the wall-clock seconds the loop took. (UseRealTime() would do
// this too, but appends "/real_time" to every name.)
double TimeLoop(benchmark::State& state, const Prepared& prepared) {
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    prepared.run();
    benchmark::ClobberMemory();
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The bench-only backend name "auto_measure" runs auto with CONVKIT_AUTO=measure, set for the
// duration of its benchmark only, so that one run compares auto's two modes with the backends they
// choose from, interleaved. Benchmarks run one at a time on the main thread: no one else reads the
// environment meanwhile.
class AutoModeScope {
 public:
  explicit AutoModeScope(const std::string& backend)
      : measure_(backend == kAutoMeasure), backend_(measure_ ? "auto" : backend) {
    if (measure_) setenv("CONVKIT_AUTO", "measure", 1);
  }
  ~AutoModeScope() {
    if (measure_) unsetenv("CONVKIT_AUTO");
  }
  AutoModeScope(const AutoModeScope&) = delete;
  AutoModeScope& operator=(const AutoModeScope&) = delete;

  // The name to pass to convkit.
  const std::string& backend() const { return backend_; }

  static constexpr std::string_view kAutoMeasure = "auto_measure";

 private:
  bool measure_;
  std::string backend_;
};

Tensor Filled(const Dims& dims, uint32_t seed) {
  Tensor t(dims);
  FillUniform(t.data(), t.size(), seed);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Convolution.

enum class ConvPassKind { kForward, kBackwardData, kBackwardWeights, kBackward };

// fpmath is a dimension of the forward pass: conv2d_fwd_bf16 is conv2d_fwd with fpmath = bf16.
struct ConvOp {
  std::string_view name;
  ConvPassKind pass;
  bool oneshot;
  Fpmath fpmath = Fpmath::kStrict;
};

constexpr ConvOp kConvOps[] = {
    {"conv2d_fwd", ConvPassKind::kForward, false},
    {"conv2d_fwd_bf16", ConvPassKind::kForward, false, Fpmath::kBf16},
    {"conv2d_fwd_oneshot", ConvPassKind::kForward, true},
    {"conv2d_bwd_data", ConvPassKind::kBackwardData, false},
    {"conv2d_bwd_data_oneshot", ConvPassKind::kBackwardData, true},
    {"conv2d_bwd_weights", ConvPassKind::kBackwardWeights, false},
    {"conv2d_bwd_weights_oneshot", ConvPassKind::kBackwardWeights, true},
    {"conv2d_bwd", ConvPassKind::kBackward, false},
    {"conv2d_bwd_oneshot", ConvPassKind::kBackward, true},
};

// The gradients a backward pass computes.
Conv2dGradsWanted WantedBy(ConvPassKind pass) {
  if (pass == ConvPassKind::kBackwardData) return {true, false, false};
  if (pass == ConvPassKind::kBackwardWeights) return {false, true, true};
  return {true, true, true};
}

// A --post_ops entry: the activation and whether a residual is added (before it), fused into the
// plan or (separate) applied by a pass over y after the plain convolution.
struct PostOpBench {
  Activation activation = Activation::kNone;
  float alpha = 0.0f;
  float beta = 0.0f;
  bool residual = false;
  bool separate = false;
  bool x_scale = false;  // x times a per-channel gate before the convolution (run_scaled)
};

std::optional<PostOpBench> ParsePostOpBench(std::string_view text) {
  PostOpBench p;
  if (text.starts_with("sep_")) {
    p.separate = true;
    text.remove_prefix(4);
  }
  if (text == "r" || text == "xs") {
    (text == "r" ? p.residual : p.x_scale) = true;
    return p;
  }
  if (text.ends_with("+r")) {
    p.residual = true;
    text.remove_suffix(2);
  }
  static constexpr struct {
    std::string_view name;
    Activation activation;
    float alpha, beta;
  } kNames[] = {{"none", Activation::kNone, 0, 0},
                {"relu", Activation::kRelu, 0, 0},
                {"relu6", Activation::kRelu6, 0, 0},
                {"clip", Activation::kClip, -1.0f, 1.0f},
                {"leaky_relu", Activation::kLeakyRelu, 0.1f, 0},
                {"sigmoid", Activation::kSigmoid, 0, 0},
                {"tanh", Activation::kTanh, 0, 0},
                {"silu", Activation::kSilu, 0, 0},
                {"hardswish", Activation::kHardSwish, 0, 0},
                {"hardsigmoid", Activation::kHardSigmoid, 0.2f, 0.5f},
                {"gelu", Activation::kGelu, 0, 0}};
  for (const auto& n : kNames) {
    if (n.name == text) {
      p.activation = n.activation;
      p.alpha = n.alpha;
      p.beta = n.beta;
      return p;
    }
  }
  return std::nullopt;
}

// The caller's separate pass before the convolution: x_scaled = x * s per image and channel.
void ScalePass(const Tensor& x, const Tensor& s, Tensor& x_scaled) {
  const int64_t n = x.dims()[0], pixels = x.dims()[1] * x.dims()[2], c = x.dims()[3];
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t p = 0; p < pixels; ++p) {
      const int64_t row = (i * pixels + p) * c;
      for (int64_t k = 0; k < c; ++k)
        x_scaled.data()[row + k] = x.data()[row + k] * s.data()[i * c + k];
    }
  }
}

// The caller's separate pass: y = act(y + r) element by element, in float as a caller would write
// it (the compiler vectorizes what it can).
void SeparatePass(const PostOpBench& post, const Tensor* r, Tensor& y) {
  float* v = y.data();
  const int64_t n = y.size();
  if (r != nullptr) {
    const float* rv = r->data();
    for (int64_t i = 0; i < n; ++i) v[i] += rv[i];
  }
  const float alpha = post.alpha, beta = post.beta;
  const auto apply = [&](auto f) {
    for (int64_t i = 0; i < n; ++i) v[i] = f(v[i]);
  };
  switch (post.activation) {
    case Activation::kNone:
      return;
    case Activation::kRelu:
      return apply([](float z) { return z < 0.0f ? 0.0f : z; });
    case Activation::kRelu6:
      return apply([](float z) { return z < 0.0f ? 0.0f : (z > 6.0f ? 6.0f : z); });
    case Activation::kClip:
      return apply([=](float z) { return z < alpha ? alpha : (z > beta ? beta : z); });
    case Activation::kLeakyRelu:
      return apply([=](float z) { return z > 0.0f ? z : alpha * z; });
    case Activation::kSigmoid:
      return apply([](float z) { return 1.0f / (1.0f + std::exp(-z)); });
    case Activation::kTanh:
      return apply([](float z) { return std::tanh(z); });
    case Activation::kSilu:
      return apply([](float z) { return z / (1.0f + std::exp(-z)); });
    case Activation::kHardSwish:
      return apply([](float z) {
        const float t = z + 3.0f;
        return z * (t < 0.0f ? 0.0f : (t > 6.0f ? 6.0f : t)) / 6.0f;
      });
    case Activation::kHardSigmoid:
      return apply([=](float z) {
        const float t = alpha * z + beta;
        return t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
      });
    case Activation::kGelu:
      return apply([](float z) { return 0.5f * z * std::erfc(-z * 0.70710678f); });
  }
}

void BenchConv(benchmark::State& state, const ConvOp& op, const std::string& bench_backend,
               const ConvShape& shape, int64_t batch, const PostOpBench& post) {
  const AutoModeScope mode(bench_backend);
  const std::string& backend = mode.backend();
  Conv2dParams params = shape.params;
  if (!post.separate) {
    params.activation = post.activation;
    params.activation_alpha = post.alpha;
    params.activation_beta = post.beta;
  }
  params.fpmath = op.fpmath;
  const Dims x_dims = shape.x_dims(batch);
  const Tensor x = Filled(x_dims, 1);
  const Tensor w = Filled(shape.w_dims(), 2);
  std::vector<float> b(static_cast<size_t>(shape.c_out));
  FillUniform(b.data(), shape.c_out, 3);
  Tensor y, dy, dx, dw, r, gate, x_scaled;
  std::vector<float> db;
  std::optional<Conv2d> plan;
  std::optional<Conv2dBackward> backward;

  Prepared prepared;
  const bool ok = Prepare(
      state,
      [&]() -> Prepared {
        if (op.pass == ConvPassKind::kForward) {
          plan.emplace(params, x_dims, w, b, backend);
          y = Tensor(plan->y_dims());
          if (post.residual) r = Filled(plan->y_dims(), 5);
          if (post.x_scale) {
            gate = Filled({x_dims[0], 1, 1, x_dims[3]}, 6);
            if (!post.separate) {
              return {[&] { plan->run_scaled(x, gate, {}, y); }, plan->impl_name()};
            }
            x_scaled = Tensor(x_dims);
            return {[&] {
                      ScalePass(x, gate, x_scaled);
                      plan->run(x_scaled, y);
                    },
                    plan->impl_name() + " + separate pass"};
          }
          if (post.separate) {
            return {[&] {
                      plan->run(x, y);
                      SeparatePass(post, post.residual ? &r : nullptr, y);
                    },
                    plan->impl_name() + " + separate pass"};
          }
          if (post.residual) return {[&] { plan->run(x, r, y); }, plan->impl_name()};
          if (!op.oneshot) return {[&] { plan->run(x, y); }, plan->impl_name()};
          return {[&] { conv2d_forward(params, x, w, b, y, backend); },
                  plan->impl_name() + " (one-shot)",
                  /*label_from_verbose=*/true};
        }
        // Backward takes dy after the activation's gradient: the plain convolution's parameters.
        const Conv2dGradsWanted wanted = WantedBy(op.pass);
        backward.emplace(shape.params, x_dims, w, wanted, backend);
        dy = Filled(ConvOutputDims(shape, batch), 4);
        Conv2dGrads grads;
        if (wanted.dx) grads.dx = (dx = Tensor(x_dims)).view();
        if (wanted.dw) grads.dw = (dw = Tensor(shape.w_dims())).view();
        if (wanted.db) {
          db.assign(static_cast<size_t>(shape.c_out), 0.0f);
          grads.db = std::span<float>(db);
        }
        if (!op.oneshot)
          return {[&, grads] { backward->run(x, dy, grads); }, backward->impl_name()};
        return {[&, grads] { conv2d_backward(shape.params, x, w, dy, grads, backend); },
                backward->impl_name() + " (one-shot)",
                /*label_from_verbose=*/true};
      },
      &prepared);
  if (!ok) return;
  const double seconds = TimeLoop(state, prepared);
  // A whole backward step is two GEMM-sized passes (data and weights).
  const double passes = op.pass == ConvPassKind::kBackward ? 2.0 : 1.0;
  SetGflopsCounter(state, passes * ConvFlops(shape, batch), seconds);
}

// ---------------------------------------------------------------------------------------------
// Transposed convolution.

struct TransposeOp {
  std::string_view name;
  bool oneshot;
};

constexpr TransposeOp kTransposeOps[] = {
    {"conv2d_transpose_fwd", false},
    {"conv2d_transpose_fwd_oneshot", true},
};

// Nominal FLOPs: 2 * N * H * W * C_in * KH * KW * C_out / groups (every input pixel's window).
double TransposeFlops(const TransposeShape& shape, int64_t batch) {
  const Dims x = shape.x_dims(batch), w = shape.w_dims();
  return 2.0 * static_cast<double>(x[0] * x[1] * x[2]) * static_cast<double>(x[3]) *
         static_cast<double>(w[0] * w[1] * w[2]);
}

void BenchTranspose(benchmark::State& state, const TransposeOp& op,
                    const std::string& bench_backend, const TransposeShape& shape, int64_t batch) {
  const AutoModeScope mode(bench_backend);
  const std::string& backend = mode.backend();
  const Conv2dTransposeParams& params = shape.params;
  const Dims x_dims = shape.x_dims(batch);
  const Tensor x = Filled(x_dims, 1);
  const Tensor w = Filled(shape.w_dims(), 2);
  std::vector<float> b(static_cast<size_t>(shape.c_out));
  FillUniform(b.data(), shape.c_out, 3);
  Tensor y;
  std::optional<Conv2dTranspose> plan;
  Prepared prepared;
  const bool ok = Prepare(
      state,
      [&]() -> Prepared {
        plan.emplace(params, x_dims, w, b, backend);
        y = Tensor(plan->y_dims());
        if (!op.oneshot) return {[&] { plan->run(x, y); }, plan->impl_name()};
        return {[&] { conv2d_transpose_forward(params, x, w, b, y, backend); },
                plan->impl_name() + " (one-shot)",
                /*label_from_verbose=*/true};
      },
      &prepared);
  if (!ok) return;
  const double seconds = TimeLoop(state, prepared);
  SetGflopsCounter(state, TransposeFlops(shape, batch), seconds);
}

// ---------------------------------------------------------------------------------------------
// Pooling.

struct PoolOp {
  std::string_view name;
  PoolMode mode;
  bool backward;
  bool oneshot;
};

constexpr PoolOp kPoolOps[] = {
    {"pool2d_fwd_max", PoolMode::kMax, false, false},
    {"pool2d_fwd_max_oneshot", PoolMode::kMax, false, true},
    {"pool2d_fwd_avg", PoolMode::kAverage, false, false},
    {"pool2d_fwd_avg_oneshot", PoolMode::kAverage, false, true},
    {"pool2d_bwd_max", PoolMode::kMax, true, false},
    {"pool2d_bwd_max_oneshot", PoolMode::kMax, true, true},
    {"pool2d_bwd_avg", PoolMode::kAverage, true, false},
    {"pool2d_bwd_avg_oneshot", PoolMode::kAverage, true, true},
};

Pool2dParams PoolParams(const PoolShape& shape, PoolMode mode) {
  Pool2dParams params = shape.params;
  params.mode = mode;
  if (mode == PoolMode::kMax) params.count_include_pad = false;  // an average-only flag
  return params;
}

// Bytes one call reads and writes: x and y forward; dy and dx backward, plus x for max pooling.
double PoolBytes(const PoolOp& op, const PoolShape& shape, int64_t batch) {
  const double x = static_cast<double>(num_elements(shape.x_dims(batch)));
  const double y = static_cast<double>(num_elements(PoolOutputDims(shape, batch)));
  const double elements = op.backward ? (op.mode == PoolMode::kMax ? x : 0.0) + y + x : x + y;
  return elements * sizeof(float);
}

void BenchPool(benchmark::State& state, const PoolOp& op, const std::string& bench_backend,
               const PoolShape& shape, int64_t batch) {
  const AutoModeScope mode(bench_backend);
  const std::string& backend = mode.backend();
  const Pool2dParams params = PoolParams(shape, op.mode);
  const Dims x_dims = shape.x_dims(batch);
  const Tensor x = Filled(x_dims, 1);
  Tensor y, dy, dx;
  std::optional<Pool2d> plan;
  std::optional<Pool2dBackward> backward;

  Prepared prepared;
  const bool ok = Prepare(
      state,
      [&]() -> Prepared {
        if (op.backward) {
          backward.emplace(params, x_dims, backend);
          dy = Filled(backward->y_dims(), 4);
          dx = Tensor(x_dims);
          if (!op.oneshot) return {[&] { backward->run(x, dy, dx); }, backward->impl_name()};
          return {[&] { pool2d_backward(params, x, dy, dx, backend); },
                  backward->impl_name() + " (one-shot)",
                  /*label_from_verbose=*/true};
        }
        plan.emplace(params, x_dims, backend);
        y = Tensor(plan->y_dims());
        if (!op.oneshot) return {[&] { plan->run(x, y); }, plan->impl_name()};
        return {[&] { pool2d_forward(params, x, y, backend); }, plan->impl_name() + " (one-shot)",
                /*label_from_verbose=*/true};
      },
      &prepared);
  if (!ok) return;
  const double seconds = TimeLoop(state, prepared);
  SetGbpsCounter(state, PoolBytes(op, shape, batch), seconds);
}

// ---------------------------------------------------------------------------------------------
// Registration and flags.

std::vector<std::string> SplitList(std::string_view list) {
  std::vector<std::string> items;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    if (!item.empty()) items.emplace_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return items;
}

std::string Join(const std::vector<std::string>& items, std::string_view separator) {
  std::string joined;
  for (const std::string& item : items) {
    if (!joined.empty()) joined += separator;
    joined += item;
  }
  return joined;
}

bool ReferenceRuns(const Config& config, double work, double limit) {
  switch (config.reference) {
    case Config::Reference::kAll:
      return true;
    case Config::Reference::kNone:
      return false;
    case Config::Reference::kSmall:
      return work <= limit;
  }
  return false;
}

// Google Benchmark decides the iteration count from the caller's CPU time. On an idle machine that
// tracks the wall time (OpenMP's master thread works or spins), but under load it lags and runs
// grow long; --real_time decides by wall time instead, at the cost of a "/real_time" name suffix.
void Register(const Config& config, const std::string& name,
              std::function<void(benchmark::State&)> fn) {
  benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(name.c_str(), std::move(fn));
  b->Unit(benchmark::kMicrosecond);
  if (config.real_time) b->UseRealTime();
}

// The backends our benchmarks run on: --backends' names that are convkit's (other names belong to
// other files' benchmarks, e.g. onednn_direct), or every backend built in.
std::vector<std::string> ConvkitBackends(const Config& config) {
  if (config.backends.empty()) return available_backends();
  const std::vector<BackendInfo> all = all_backends();
  std::vector<std::string> backends;
  for (const std::string& name : config.backends) {
    const auto is_name = [&](const BackendInfo& info) { return info.name == name; };
    if (name == "auto" || name == AutoModeScope::kAutoMeasure ||
        std::any_of(all.begin(), all.end(), is_name)) {
      backends.push_back(name);
    }
  }
  return backends;
}

// Registers op x backend x shape for one family (conv or pool). `work(op, shape, batch)` sizes a
// problem for the reference backend's limit; `bench` registers the benchmarks of one of them.
template <typename Op, typename Shape, typename Work, typename Bench>
void RegisterFamily(const Config& config, const std::vector<std::string>& backends,
                    std::span<const Op> ops, std::span<const Shape> shapes, double reference_limit,
                    Work work, Bench bench) {
  for (const Op& op : ops) {
    if (!config.WantsOp(op.name)) continue;
    for (const std::string& backend : backends) {
      for (const Shape& shape : shapes) {
        if (!config.WantsSet(shape.set)) continue;
        const int64_t batch = config.BatchFor(shape.default_batch());
        if (backend == "reference" &&
            !ReferenceRuns(config, work(op, shape, batch), reference_limit)) {
          continue;
        }
        bench(config, op, backend, shape, batch);
      }
    }
  }
}

// One benchmark per --post_ops entry for conv2d_fwd (the name gets "/<entry>" unless it is
// "none"); one for the other conv ops.
void RegisterConv(const Config& config, const ConvOp& op, const std::string& backend,
                  const ConvShape& shape, int64_t batch) {
  const std::string name = BenchmarkName(op.name, backend, shape.set, shape.name, batch);
  const bool with_post_ops = op.pass == ConvPassKind::kForward && !op.oneshot;
  const std::vector<std::string> entries = with_post_ops && !config.post_ops.empty()
                                               ? config.post_ops
                                               : std::vector<std::string>{"none"};
  for (const std::string& entry : entries) {
    const PostOpBench post = *ParsePostOpBench(entry);  // checked by ParseFlags
    Register(config, entry == "none" ? name : name + "/" + entry,
             [&op, backend, &shape, batch, post](benchmark::State& state) {
               BenchConv(state, op, backend, shape, batch, post);
             });
  }
}

void RegisterTranspose(const Config& config, const TransposeOp& op, const std::string& backend,
                       const TransposeShape& shape, int64_t batch) {
  Register(config, BenchmarkName(op.name, backend, shape.set, shape.name, batch),
           [&op, backend, &shape, batch](benchmark::State& state) {
             BenchTranspose(state, op, backend, shape, batch);
           });
}

void RegisterPool(const Config& config, const PoolOp& op, const std::string& backend,
                  const PoolShape& shape, int64_t batch) {
  Register(config, BenchmarkName(op.name, backend, shape.set, shape.name, batch),
           [&op, backend, &shape, batch](benchmark::State& state) {
             BenchPool(state, op, backend, shape, batch);
           });
}

void RegisterConvkitBenchmarks(const Config& config) {
  const std::vector<std::string> backends = ConvkitBackends(config);
  RegisterFamily(
      config, backends, std::span<const ConvOp>(kConvOps), ConvShapes(), kReferenceMaxFlops,
      [](const ConvOp&, const ConvShape& shape, int64_t batch) { return ConvFlops(shape, batch); },
      RegisterConv);
  RegisterFamily(
      config, backends, std::span<const TransposeOp>(kTransposeOps), TransposeShapes(),
      kReferenceMaxFlops,
      [](const TransposeOp&, const TransposeShape& shape, int64_t batch) {
        return TransposeFlops(shape, batch);
      },
      RegisterTranspose);
  RegisterFamily(config, backends, std::span<const PoolOp>(kPoolOps), PoolShapes(),
                 kReferenceMaxBytes, PoolBytes, RegisterPool);
}

void PrintUsage(FILE* out) {
  std::vector<std::string> ops, sets;
  for (const ConvOp& op : kConvOps) ops.emplace_back(op.name);
  for (const TransposeOp& op : kTransposeOps) ops.emplace_back(op.name);
  for (const PoolOp& op : kPoolOps) ops.emplace_back(op.name);
  const auto add_set = [&sets](std::string_view set) {
    if (std::find(sets.begin(), sets.end(), set) == sets.end()) sets.emplace_back(set);
  };
  for (const ConvShape& shape : ConvShapes()) add_set(shape.set);
  for (const TransposeShape& shape : TransposeShapes()) add_set(shape.set);
  for (const PoolShape& shape : PoolShapes()) add_set(shape.set);
  std::fprintf(out, kUsage, Join(ops, ", ").c_str(), Join(available_backends(), ", ").c_str(),
               Join(sets, ", ").c_str());
}

// An error message when `ops` or `sets` names something unknown; empty when all are known.
std::string CheckNames(const Config& config) {
  for (const std::string& op : config.ops) {
    const auto named = [&](const auto& o) { return o.name == op; };
    if (std::none_of(std::begin(kConvOps), std::end(kConvOps), named) &&
        std::none_of(std::begin(kTransposeOps), std::end(kTransposeOps), named) &&
        std::none_of(std::begin(kPoolOps), std::end(kPoolOps), named)) {
      return "unknown op '" + op + "'";
    }
  }
  for (const std::string& set : config.sets) {
    const auto in_set = [&](const auto& shape) { return shape.set == set; };
    if (std::none_of(ConvShapes().begin(), ConvShapes().end(), in_set) &&
        std::none_of(TransposeShapes().begin(), TransposeShapes().end(), in_set) &&
        std::none_of(PoolShapes().begin(), PoolShapes().end(), in_set)) {
      return "unknown set '" + set + "'";
    }
  }
  return {};
}

// "^(a|b)/(c)/[^/]+/": what our list flags select, for --benchmark_filter, so that benchmarks other
// files register (onednn_direct) follow the same --ops, --backends and --sets.
std::string FilterRegex(const Config& config) {
  const auto group = [](const std::vector<std::string>& items) {
    return items.empty() ? std::string("[^/]+/") : "(" + Join(items, "|") + ")/";
  };
  return "^" + group(config.ops) + group(config.backends) + group(config.sets);
}

std::string DimsJson(const Dims& d) {
  return "[" + std::to_string(d[0]) + "," + std::to_string(d[1]) + "," + std::to_string(d[2]) +
         "," + std::to_string(d[3]) + "]";
}

std::string PadsJson(const Pads& p) {
  return "[" + std::to_string(p.top) + "," + std::to_string(p.bottom) + "," +
         std::to_string(p.left) + "," + std::to_string(p.right) + "]";
}

// One JSON object per line, for tools/convkit_compare.py and tools/torch_bench.py.
void PrintShapes(const Config& config) {
  for (const ConvShape& s : ConvShapes()) {
    if (!config.WantsSet(s.set)) continue;
    const int64_t batch = config.BatchFor(s.default_batch());
    const Conv2dParams& p = s.params;
    std::printf(
        "{\"kind\":\"conv\",\"set\":\"%.*s\",\"name\":\"%.*s\",\"batch\":%lld,\"x\":%s,\"w\":%s,"
        "\"y\":%s,\"stride\":[%lld,%lld],\"pad\":%s,\"dilation\":[%lld,%lld],\"groups\":%lld,"
        "\"flops\":%.0f}\n",
        static_cast<int>(s.set.size()), s.set.data(), static_cast<int>(s.name.size()),
        s.name.data(), static_cast<long long>(batch), DimsJson(s.x_dims(batch)).c_str(),
        DimsJson(s.w_dims()).c_str(), DimsJson(ConvOutputDims(s, batch)).c_str(),
        static_cast<long long>(p.stride_h), static_cast<long long>(p.stride_w),
        PadsJson(p.pad).c_str(), static_cast<long long>(p.dilation_h),
        static_cast<long long>(p.dilation_w), static_cast<long long>(p.groups),
        ConvFlops(s, batch));
  }
  for (const PoolShape& s : PoolShapes()) {
    if (!config.WantsSet(s.set)) continue;
    const int64_t batch = config.BatchFor(s.default_batch());
    const Pool2dParams& p = s.params;
    std::printf(
        "{\"kind\":\"pool\",\"set\":\"%.*s\",\"name\":\"%.*s\",\"batch\":%lld,\"x\":%s,\"y\":%s,"
        "\"window\":[%lld,%lld],\"stride\":[%lld,%lld],\"pad\":%s,\"ceil_mode\":%s,"
        "\"count_include_pad\":%s,\"global\":%s}\n",
        static_cast<int>(s.set.size()), s.set.data(), static_cast<int>(s.name.size()),
        s.name.data(), static_cast<long long>(batch), DimsJson(s.x_dims(batch)).c_str(),
        DimsJson(PoolOutputDims(s, batch)).c_str(), static_cast<long long>(p.window_h),
        static_cast<long long>(p.window_w), static_cast<long long>(p.stride_h),
        static_cast<long long>(p.stride_w), PadsJson(p.pad).c_str(), p.ceil_mode ? "true" : "false",
        p.count_include_pad ? "true" : "false", p.global ? "true" : "false");
  }
}

struct Flags {
  Config config;
  int threads = 0;
  bool list_shapes = false;
};

// Parses our flags (those benchmark::Initialize left). Returns an exit code on a bad or --help
// flag, nullopt to go on.
std::optional<int> ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value_of = [&](std::string_view flag) -> std::optional<std::string_view> {
      if (arg.size() > flag.size() && arg.substr(0, flag.size()) == flag &&
          arg[flag.size()] == '=') {
        return arg.substr(flag.size() + 1);
      }
      return std::nullopt;
    };
    if (arg == "--help" || arg == "-h") {
      PrintUsage(stdout);
      return 0;
    } else if (arg == "--real_time") {
      flags->config.real_time = true;
    } else if (arg == "--list_shapes") {
      flags->list_shapes = true;
    } else if (auto v = value_of("--ops")) {
      flags->config.ops = SplitList(*v);
    } else if (auto v = value_of("--backends")) {
      flags->config.backends = SplitList(*v);
    } else if (auto v = value_of("--sets")) {
      flags->config.sets = SplitList(*v);
    } else if (auto v = value_of("--post_ops")) {
      flags->config.post_ops = SplitList(*v);
      for (const std::string& entry : flags->config.post_ops) {
        if (!ParsePostOpBench(entry)) {
          std::fprintf(stderr, "convkit_bench: --post_ops: unknown entry '%s'\n", entry.c_str());
          return 2;
        }
      }
    } else if (auto v = value_of("--batch")) {
      flags->config.batch = std::atoll(std::string(*v).c_str());
    } else if (auto v = value_of("--threads")) {
      flags->threads = std::atoi(std::string(*v).c_str());
    } else if (auto v = value_of("--reference")) {
      if (*v == "small") {
        flags->config.reference = Config::Reference::kSmall;
      } else if (*v == "all") {
        flags->config.reference = Config::Reference::kAll;
      } else if (*v == "none") {
        flags->config.reference = Config::Reference::kNone;
      } else {
        std::fprintf(stderr, "convkit_bench: --reference must be small, all or none\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "convkit_bench: unknown flag %s\n\n", argv[i]);
      PrintUsage(stderr);
      return 2;
    }
  }
  if (const std::string error = CheckNames(flags->config); !error.empty()) {
    std::fprintf(stderr, "convkit_bench: %s\n\n", error.c_str());
    PrintUsage(stderr);
    return 2;
  }
  if (flags->config.batch < 0 || flags->threads < 0) {
    std::fprintf(stderr, "convkit_bench: --batch and --threads take a positive number\n");
    return 2;
  }
  return std::nullopt;
}

int Main(int argc, char** argv) {
  // Line-buffered even into a pipe, so that tools/convkit_compare.py shows progress as it runs.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--help") {  // ours, then Google Benchmark's (it exits)
      PrintUsage(stdout);
      std::fputs("\nGoogle Benchmark flags:\n", stdout);
    }
  }
  benchmark::Initialize(&argc, argv);
  Flags flags;
  if (std::optional<int> exit_code = ParseFlags(argc, argv, &flags)) return *exit_code;
  Config& config = flags.config;
  if (flags.list_shapes) {
    PrintShapes(config);
    return 0;
  }
  if (flags.threads > 0) set_num_threads(flags.threads);

  std::vector<std::string> backends_info;
  for (const BackendInfo& info : all_backends()) {
    backends_info.push_back(
        info.name + (info.not_built_reason.empty() ? "" : " (" + info.not_built_reason + ")"));
  }
  benchmark::AddCustomContext("convkit_threads", std::to_string(num_threads()));
  benchmark::AddCustomContext("convkit_backends", Join(backends_info, "; "));
  benchmark::AddCustomContext("convkit_reference",
                              config.reference == Config::Reference::kSmall ? "small"
                              : config.reference == Config::Reference::kAll ? "all"
                                                                            : "none");

  RegisterConvkitBenchmarks(config);
  for (Registrar registrar : Registrars()) registrar(config);

  std::string spec = benchmark::GetBenchmarkFilter();
  const bool lists_given = !config.ops.empty() || !config.sets.empty() || !config.backends.empty();
  if ((spec.empty() || spec == "." || spec == "all") && lists_given) {
    spec = FilterRegex(config);
  }
  benchmark::RunSpecifiedBenchmarks(spec);
  benchmark::Shutdown();
  return 0;
}

}  // namespace
}  // namespace convkit::bench

int main(int argc, char** argv) { return convkit::bench::Main(argc, argv); }
