// auto's choice among the built backends (DESIGN §5): the decision table's order, or with
// CONVKIT_AUTO=measure the candidates timed once per problem; a backend that refuses at any stage
// (supports() or creating its primitive) passes the problem to the next.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/src/auto_table.hpp"
#include "api/src/backend.hpp"

namespace convkit::internal {

enum class AutoMode { kTable, kMeasure };

// $CONVKIT_AUTO: unset, empty or "table" → kTable; "measure" → kMeasure; anything else is
// kInvalidArgument naming the variable.
AutoMode auto_mode(std::string_view op);

// One call or plan creation under auto.
struct AutoCall {
  std::string_view op;          // the public name, for errors: "Conv2d", "conv2d_backward"
  std::string_view verbose_op;  // the name in verbose lines: "conv2d_fwd"
  AutoFeatures features;
  std::function<std::string_view()> describe;  // the problem's text: verbose lines, cache key
  std::function<Support(const Backend&)> supports;
  // Does the work on the given backend: creates its plan, or runs the one-shot call. Throws
  // Error(kUnsupported) when the backend refuses, before writing any output.
  std::function<void(const Backend&)> attempt;
  // Under CONVKIT_AUTO=measure: runs the backend once on scratch data (creating its plan first if
  // needed), for timing. Refuses as `attempt` does. Null: the call is not measured (table order).
  std::function<void(const Backend&)> trial;
};

// Tries the built backends in auto's order until one's attempt succeeds, and returns it. Throws
// kUnsupported listing every backend's reason when none runs the problem. With CONVKIT_VERBOSE=2
// prints one line saying why: the rule that fired or the measured times, and the refusals.
const Backend& run_auto(const AutoCall& call);

// What every call site does: the backend named by `requested` or $CONVKIT_BACKEND must support the
// problem (registry.hpp's errors) and then gets call.attempt, whose errors propagate; with no name,
// or "auto", run_auto decides. Returns the backend that did the work.
const Backend& run_on_backend(std::string_view requested, const AutoCall& call);

// The plans auto creates while choosing, one per backend, so that a plan made to be timed is the
// one kept. Few backends: a linear search.
template <typename Impl>
class PlanSlots {
 public:
  std::unique_ptr<Impl>& operator[](const Backend& backend) {
    for (auto& [b, impl] : slots_) {
      if (b == &backend) return impl;
    }
    return slots_.emplace_back(&backend, nullptr).second;
  }

 private:
  std::vector<std::pair<const Backend*, std::unique_ptr<Impl>>> slots_;
};

// The problem's text (to_string()), formatted once per thread while calls repeat one problem:
// under CONVKIT_AUTO=measure every one-shot call looks its problem up in the cache by it, and
// formatting costs more than a small call. The reference is valid until the thread's next call.
template <typename Problem>
std::string_view problem_text(const Problem& p) {
  thread_local std::optional<Problem> last;
  thread_local std::string text;
  if (!last || !(*last == p)) {
    text = p.to_string();
    last = p;
  }
  return text;
}

// Scratch data for measuring: `size` floats, allocated and filled on first use with a fixed
// pattern of small values (the same every time, so timings never depend on the caller's data).
class Scratch {
 public:
  explicit Scratch(int64_t size) : size_(size) {}
  float* data();

 private:
  int64_t size_;
  std::vector<float> data_;
};

// Scratch gradients for measuring a backward convolution: dx, dw and db of p's sizes, each null
// when not wanted (and allocated only when first used).
class ScratchGrads {
 public:
  ScratchGrads(const Conv2dProblem& p, const Conv2dGradsWanted& wanted)
      : dx_(wanted.dx ? p.n * p.ih * p.iw * p.ic : 0),
        dw_(wanted.dw ? p.w_size() : 0),
        db_(wanted.db ? p.oc : 0),
        wanted_(wanted) {}
  float* dx() { return wanted_.dx ? dx_.data() : nullptr; }
  float* dw() { return wanted_.dw ? dw_.data() : nullptr; }
  float* db() { return wanted_.db ? db_.data() : nullptr; }

 private:
  Scratch dx_, dw_, db_;
  Conv2dGradsWanted wanted_;
};

}  // namespace convkit::internal
