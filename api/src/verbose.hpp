// CONVKIT_VERBOSE=1: one line per call on stderr, as ONEDNN_VERBOSE does (DESIGN §5):
//   convkit_verbose,<op>,<backend:variant:isa>,<problem>,<time> ms
// CONVKIT_VERBOSE=2 adds, where auto chooses (api/src/auto_select.cpp):
//   convkit_verbose,auto,<op>,<problem>,<backend>,<why>[,refused: <reasons>]
#pragma once

#include <chrono>
#include <string_view>

namespace convkit::internal {

// Reads CONVKIT_VERBOSE now (one-shot calls read it per call; plans at creation).
bool verbose_enabled();
// The level: 0 when unset, empty or "0"; 2 (also print why a backend was chosen, DESIGN §5) when it
// is a number >= 2; 1 for anything else.
int verbose_level();

using Clock = std::chrono::steady_clock;

void print_verbose(std::string_view op, std::string_view impl, std::string_view problem,
                   Clock::time_point start);

}  // namespace convkit::internal
