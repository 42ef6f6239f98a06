// CONVKIT_VERBOSE=1: one line per call on stderr, as ONEDNN_VERBOSE does (DESIGN §5):
//   convkit_verbose,<op>,<backend:variant:isa>,<problem>,<time> ms
// CONVKIT_VERBOSE=2 adds, where auto chooses (api/src/auto_select.cpp):
//   convkit_verbose,auto,<op>,<problem>,<backend>,<why>[,refused: <reasons>]
// and where the highway backend chooses a variant (backends/highway/common/variants.hpp):
//   convkit_verbose,highway,<op>,<problem>,<variant>[,refused: <variant> (<why>); ...]
#pragma once

#include <chrono>
#include <string_view>

namespace convkit::internal {

// Reads CONVKIT_VERBOSE now (one-shot calls read it per call; plans at creation).
bool verbose_enabled();
// The level: 0 when unset, empty or "0"; 2 (also print why a backend was chosen, DESIGN §5) when it
// is a number >= 2; 1 for anything else.
int verbose_level();

// The level the public call running on this thread read when it began (run_call holds it in a
// CallVerboseScope for the call's duration, so that the backends' own choice lines need not read
// the environment again: getenv costs ~25 ns, a tenth of a small pooling call), or verbose_level()
// outside a call.
int call_verbose_level();

class CallVerboseScope {
 public:
  explicit CallVerboseScope(int level);
  ~CallVerboseScope();
  CallVerboseScope(const CallVerboseScope&) = delete;
  CallVerboseScope& operator=(const CallVerboseScope&) = delete;

 private:
  int previous_;
};

using Clock = std::chrono::steady_clock;

void print_verbose(std::string_view op, std::string_view impl, std::string_view problem,
                   Clock::time_point start);

}  // namespace convkit::internal
