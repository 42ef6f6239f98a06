// What every public call does around the backend: optional CONVKIT_VERBOSE timing and the mapping
// of std::bad_alloc to convkit::Error (out of memory).
#pragma once

#include <new>
#include <string>
#include <string_view>

#include "api/src/verbose.hpp"
#include "convkit/error.hpp"

namespace convkit::internal {

// Runs body(std::string* impl_name) at CONVKIT_VERBOSE level `verbose_level` (read once per call,
// and held in a CallVerboseScope while body runs); impl_name is non-null only at level 1 or more,
// and the line is then printed with describe()'s problem text.
template <typename Body, typename Describe>
void run_call(std::string_view op, int verbose_level, Describe describe, Body body) {
  const CallVerboseScope scope(verbose_level);
  const bool verbose = verbose_level > 0;
  const Clock::time_point start = verbose ? Clock::now() : Clock::time_point{};
  std::string impl;
  try {
    body(verbose ? &impl : nullptr);
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::kOutOfMemory, std::string(op) + ": out of memory");
  }
  if (verbose) print_verbose(op, impl, describe(), start);
}

}  // namespace convkit::internal
