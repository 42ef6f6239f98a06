#include "api/src/cpu.hpp"

#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace convkit::internal {

std::string_view cpu_vendor() {
  static const std::string vendor = [] {
    std::string name;
#if defined(__x86_64__) || defined(__i386__)
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) != 0) {
      for (const unsigned word : {ebx, edx, ecx}) {  // the vendor string's order
        for (int byte = 0; byte < 4; ++byte) name.push_back(static_cast<char>(word >> (8 * byte)));
      }
    }
#endif
    return name;
  }();
  return vendor;
}

}  // namespace convkit::internal
