// CONVKIT_VERBOSE=1: one line per call on stderr, as ONEDNN_VERBOSE does (DESIGN §5):
//   convkit_verbose,<op>,<backend:variant:isa>,<problem>,<time> ms
#pragma once

#include <chrono>
#include <string_view>

namespace convkit::internal {

// Reads CONVKIT_VERBOSE now (one-shot calls read it per call; plans at creation).
bool verbose_enabled();

using Clock = std::chrono::steady_clock;

void print_verbose(std::string_view op, std::string_view impl, std::string_view problem,
                   Clock::time_point start);

}  // namespace convkit::internal
