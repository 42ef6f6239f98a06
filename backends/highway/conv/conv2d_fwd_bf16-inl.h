// AVX512-BF16 helpers for the bf16 kernels (conv2d_fwd_bf16.cc): Highway 1.0.3 has no bf16 dot
// product, so these call the intrinsics directly, in functions compiled for the AVX3 target plus
// avx512bf16 (CONVKIT_BF16_ATTR). Callers check the CPU first (Conv2dFwdBf16KernelForCpu). Defined
// only in the AVX3 pass of foreach_target.h; toggle-guarded like Highway's skeleton-inl.h.
#if defined(CONVKIT_HIGHWAY_CONV2D_FWD_BF16_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CONVKIT_HIGHWAY_CONV2D_FWD_BF16_INL_H_
#undef CONVKIT_HIGHWAY_CONV2D_FWD_BF16_INL_H_
#else
#define CONVKIT_HIGHWAY_CONV2D_FWD_BF16_INL_H_
#endif

#include <cstdint>

#include "backends/highway/common/vec-inl.h"
#include "hwy/highway.h"

#if HWY_TARGET == HWY_AVX3
#include <immintrin.h>

// The AVX3 target's features plus AVX512-BF16. Every function from the kernel's entry point down
// carries it: a callee may not have features its caller lacks.
#undef CONVKIT_BF16_ATTR
#define CONVKIT_BF16_ATTR __attribute__((target(HWY_TARGET_STR ",avx512bf16")))

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// acc[l] += lo(x_pair) * lo(w[l]) + hi(x_pair) * hi(w[l]) for each of the 16 lanes l, where lo/hi
// are the bf16 halves of a 32-bit word: one vdpbf16ps with x_pair broadcast. Products of bf16 are
// exact in fp32; the instruction treats bf16 denormals as zero and flushes denormal results.
CONVKIT_BF16_ATTR HWY_INLINE VF DotBf16Pairs(VF acc, __m512i x_pair, __m512i w) {
  return VF{
      _mm512_dpbf16_ps(acc.raw, reinterpret_cast<__m512bh>(x_pair), reinterpret_cast<__m512bh>(w))};
}

// Mask of the first n (clamped to [0, 16]) of 16 lanes.
HWY_INLINE __mmask16 FirstLanes(int64_t n) {
  return n >= 16  ? __mmask16{0xFFFF}
         : n <= 0 ? __mmask16{0}
                  : static_cast<__mmask16>((1u << n) - 1);
}

// dst[q] = bf16(src[2q]) | bf16(src[2q + 1]) << 16 for q < pairs, reading the n floats of src
// (n <= 2 * pairs; channels at or past n read as zero): the pairs vdpbf16ps broadcasts. Rounds to
// nearest even (vcvtne2ps2bf16; denormals become zero).
CONVKIT_BF16_ATTR HWY_INLINE void ConvertToPairs(const float* HWY_RESTRICT src, int64_t n,
                                                 int64_t pairs, uint32_t* HWY_RESTRICT dst) {
  int64_t q = 0;
  for (; 2 * q + 32 <= n; q += 16) {  // whole vectors: no mask arithmetic
    const __m512bh v =
        _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 2 * q + 16), _mm512_loadu_ps(src + 2 * q));
    _mm512_storeu_si512(dst + q, reinterpret_cast<__m512i>(v));
  }
  for (; q < pairs; q += 16) {
    const int64_t c = 2 * q;
    const __m512 lo = _mm512_maskz_loadu_ps(FirstLanes(n - c), src + c);
    const __m512 hi = _mm512_maskz_loadu_ps(FirstLanes(n - c - 16), src + c + 16);
    // The low 16 bf16 come from the second operand.
    const __m512bh v = _mm512_cvtne2ps_pbh(hi, lo);
    _mm512_mask_storeu_epi32(dst + q, FirstLanes(pairs - q), reinterpret_cast<__m512i>(v));
  }
}

// dst[0, pairs) = 0: taps in the padding.
CONVKIT_BF16_ATTR HWY_INLINE void ZeroPairs(int64_t pairs, uint32_t* HWY_RESTRICT dst) {
  for (int64_t q = 0; q < pairs; q += 16) {
    _mm512_mask_storeu_epi32(dst + q, FirstLanes(pairs - q), _mm512_setzero_si512());
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3
#endif  // CONVKIT_HIGHWAY_CONV2D_FWD_BF16_INL_H_ toggle
