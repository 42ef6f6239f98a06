// What every public call does around the backend: optional CONVKIT_VERBOSE timing and the mapping
// of std::bad_alloc to convkit::Error (out of memory).
#pragma once

#include <new>
#include <string>
#include <string_view>

#include "api/src/verbose.hpp"
#include "convkit/error.hpp"

namespace convkit::internal {

// Runs body(std::string* impl_name); impl_name is non-null only when `verbose`, and the line is
// then printed with describe()'s problem text. (A plan's run: its choices were made at creation.)
template <typename Body, typename Describe>
void run_call(std::string_view op, bool verbose, Describe describe, Body body) {
  const Clock::time_point start = verbose ? Clock::now() : Clock::time_point{};
  std::string impl;
  try {
    body(verbose ? &impl : nullptr);
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::kOutOfMemory, std::string(op) + ": out of memory");
  }
  if (verbose) print_verbose(op, impl, describe(), start);
}

// run_call for a one-shot call, whose backend chooses its implementation during body: the
// CONVKIT_VERBOSE level, read once here, is held in a CallVerboseScope for those choices. (Plans
// skip the scope: a thread_local in a shared library costs ~10 ns, a twentieth of a tiny call.)
template <typename Body, typename Describe>
void run_one_shot(std::string_view op, int verbose_level, Describe describe, Body body) {
  const CallVerboseScope scope(verbose_level);
  run_call(op, verbose_level > 0, describe, body);
}

}  // namespace convkit::internal
