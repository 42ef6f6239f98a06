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

// Whether the highway backend computes with denormals flushed from now on: its threads run with
// x86's DAZ and FTZ set while a call runs (denormal inputs read as zero, denormal results written
// as zero; each thread's own setting is restored when the call ends). Off by default: every
// backend then gives IEEE results (DESIGN §4). On x86 CPUs that take a microcode assist per
// denormal operand (Intel's), a layer whose input holds a few hundred denormals among 50 000
// values ran 4x slower, and one of half denormals 70x; AMD's Zen 4 handles them at full speed.
// Reference and onednn always keep IEEE results; on CPUs other than x86 this changes nothing.
void set_flush_denormals(bool on);
bool flush_denormals();

}  // namespace convkit
