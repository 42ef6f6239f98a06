// convkit::set_flush_denormals for the loops that honour it: a thread computes with x86's DAZ
// (denormal operands read as zero) and FTZ (denormal results written as zero) while a
// DenormalsScope lives, and gets its own setting back after it. The highway backend's parallel
// loops (backends/highway/common/parallel.hpp) and the Python package's glue loops
// (python/src/parallel.hpp) open one on every thread, so their kernels need not know.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "convkit/runtime.hpp"

namespace convkit::internal {

class DenormalsScope {
 public:
#if defined(__x86_64__) || defined(__i386__)
  DenormalsScope() {
    if (!flush_denormals()) return;
    saved_ = _mm_getcsr();
    _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero);
    set_ = true;
  }
  ~DenormalsScope() {
    if (set_) _mm_setcsr(saved_);
  }
#else
  DenormalsScope() = default;
#endif
  DenormalsScope(const DenormalsScope&) = delete;
  DenormalsScope& operator=(const DenormalsScope&) = delete;

 private:
#if defined(__x86_64__) || defined(__i386__)
  // MXCSR's bits (Intel SDM vol. 1, 10.2.3).
  static constexpr unsigned kFlushToZero = 1u << 15;
  static constexpr unsigned kDenormalsAreZero = 1u << 6;
  unsigned saved_ = 0;
  bool set_ = false;
#endif
};

}  // namespace convkit::internal
