// Backends and threads (DESIGN §5).
#pragma once

#include <string>
#include <vector>

namespace convkit {

// The backend names built into this copy, in auto's order of preference, e.g.
// {"highway", "onednn", "reference"}.
std::vector<std::string> available_backends();

// Every backend convkit knows, built or not, with "" when built or the reason it is not.
struct BackendInfo {
  std::string name;
  std::string not_built_reason;
};
std::vector<BackendInfo> all_backends();

// The number of OpenMP threads every backend uses from now on, overriding OMP_NUM_THREADS.
// n >= 1; 0 returns to the OpenMP default. Throws Error (invalid argument) on n < 0.
void set_num_threads(int n);

// The number of threads a call made now would use.
int num_threads();

}  // namespace convkit
