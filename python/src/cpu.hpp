// Run-time CPU checks for the glue's vector paths (transpose.cpp, softmax.cpp): the extension is
// built for the baseline x86-64, so AVX2 and AVX-512 code carries a target attribute and runs only
// where these say the CPU has it. CONVKIT_GLUE_X86 is defined where the checks exist.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CONVKIT_GLUE_X86 1

namespace convkit::python {

inline bool HasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}

inline bool HasAvx512() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}

}  // namespace convkit::python

#endif
