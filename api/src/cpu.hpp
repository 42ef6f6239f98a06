// What the running CPU is, where a choice depends on the machine and not only on its instruction
// set (auto's table per vendor; highway's bf16 kernel).
#pragma once

#include <string_view>

namespace convkit::internal {

// This CPU's vendor string (cpuid leaf 0: "AuthenticAMD", "GenuineIntel"), or "" off x86.
std::string_view cpu_vendor();

}  // namespace convkit::internal
