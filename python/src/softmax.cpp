// Softmax for convkit.onnx (python/src/softmax.hpp): numpy's max, exp, sum and divide, one pass
// each on one thread (a detector's box-bin softmax, 134,400 floats over an axis of 16: 0.11 ms),
// fused here into one pass over cache-sized pieces on convkit's threads, with the exponential in
// AVX-512 where the CPU has it (the extension is built for the baseline x86-64: a target
// attribute and a run-time check) and the C library's elsewhere.
#include "python/src/softmax.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "convkit/error.hpp"
#include "python/src/arrays.hpp"
#include "python/src/cpu.hpp"
#include "python/src/parallel.hpp"

namespace convkit::python {
namespace {

// Softmax over the k rows of a (k, inner) block (row stride `stride`), columns [0, count):
// y = e^(x - max) / sum, the sum in row order. Scalar: any count.
void SoftmaxColumnsScalar(const float* x, float* y, int64_t k, int64_t stride, int64_t count) {
  for (int64_t c = 0; c < count; ++c) {
    float peak = x[c];
    for (int64_t i = 1; i < k; ++i) peak = std::max(peak, x[i * stride + c]);
    float sum = 0.0f;
    for (int64_t i = 0; i < k; ++i) {
      const float e = std::exp(x[i * stride + c] - peak);
      y[i * stride + c] = e;
      sum += e;
    }
    for (int64_t i = 0; i < k; ++i) y[i * stride + c] /= sum;
  }
}

#ifdef CONVKIT_GLUE_X86

// e^x for x <= 0 (NaN stays NaN): n = round(x / ln 2), r = x - n ln 2 in two steps (exact for n
// down to -2^8, where e^x is already 0), a degree-7 polynomial (Cephes' and Highway's
// coefficients, 1 ulp), 2^n applied by vscalefps (exact, denormals included).
__attribute__((target("avx512f"))) __m512 ExpNonPositive(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-150.0f), x);  // NaN second: kept
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693145751953125f), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(-1.428606765330187045e-6f), r);
  __m512 p = _mm512_set1_ps(0.000198527617612853646278381f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.00139304355252534151077271f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.00833336077630519866943359f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.0416664853692054748535156f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.166666671633720397949219f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  return _mm512_scalef_ps(_mm512_add_ps(p, _mm512_set1_ps(1.0f)), n);
}

// SoftmaxColumnsScalar for count a multiple of 16, 16 columns per vector.
__attribute__((target("avx512f"))) void SoftmaxColumns16(const float* x, float* y, int64_t k,
                                                         int64_t stride, int64_t count) {
  for (int64_t c = 0; c < count; c += 16) {
    __m512 peak = _mm512_loadu_ps(x + c);
    for (int64_t i = 1; i < k; ++i) peak = _mm512_max_ps(peak, _mm512_loadu_ps(x + i * stride + c));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t i = 0; i < k; ++i) {
      const __m512 e = ExpNonPositive(_mm512_sub_ps(_mm512_loadu_ps(x + i * stride + c), peak));
      _mm512_storeu_ps(y + i * stride + c, e);
      sum = _mm512_add_ps(sum, e);
    }
    for (int64_t i = 0; i < k; ++i) {
      float* row = y + i * stride + c;
      _mm512_storeu_ps(row, _mm512_div_ps(_mm512_loadu_ps(row), sum));
    }
  }
}

// SoftmaxColumnsScalar of one row (k rows of one float) 16 floats at a time (the tail masked; the
// sum in 16 lanes, then across).
__attribute__((target("avx512f"))) void SoftmaxRow16(const float* x, float* y, int64_t k) {
  const int64_t k16 = k / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (k - k16)) - 1);
  const __m512 lowest = _mm512_set1_ps(-INFINITY);
  __m512 peak = lowest;
  for (int64_t i = 0; i < k16; i += 16) peak = _mm512_max_ps(peak, _mm512_loadu_ps(x + i));
  peak = _mm512_max_ps(peak, _mm512_mask_loadu_ps(lowest, tail, x + k16));
  const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(peak));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < k16; i += 16) {
    const __m512 e = ExpNonPositive(_mm512_sub_ps(_mm512_loadu_ps(x + i), top));
    _mm512_storeu_ps(y + i, e);
    sum = _mm512_add_ps(sum, e);
  }
  const __m512 e = ExpNonPositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + k16), top));
  _mm512_mask_storeu_ps(y + k16, tail, e);
  sum = _mm512_mask_add_ps(sum, tail, sum, e);
  const __m512 total = _mm512_set1_ps(_mm512_reduce_add_ps(sum));
  for (int64_t i = 0; i < k16; i += 16) {
    _mm512_storeu_ps(y + i, _mm512_div_ps(_mm512_loadu_ps(y + i), total));
  }
  _mm512_mask_storeu_ps(y + k16, tail, _mm512_div_ps(_mm512_maskz_loadu_ps(tail, y + k16), total));
}

#endif  // CONVKIT_GLUE_X86

void SoftmaxRow(const float* x, float* y, int64_t k) {
#ifdef CONVKIT_GLUE_X86
  if (HasAvx512()) return SoftmaxRow16(x, y, k);
#endif
  SoftmaxColumnsScalar(x, y, k, 1, 1);  // one column of k rows, 1 float apart
}

void SoftmaxColumns(const float* x, float* y, int64_t k, int64_t stride, int64_t count) {
#ifdef CONVKIT_GLUE_X86
  if (HasAvx512()) {
    const int64_t count16 = count / 16 * 16;
    SoftmaxColumns16(x, y, k, stride, count16);
    x += count16;
    y += count16;
    count -= count16;
  }
#endif
  SoftmaxColumnsScalar(x, y, k, stride, count);
}

}  // namespace

void softmax_middle(const ConstArray3& x, const Array3& y) {
  const int64_t outer = static_cast<int64_t>(x.shape(0)), k = static_cast<int64_t>(x.shape(1)),
                inner = static_cast<int64_t>(x.shape(2));
  for (size_t axis = 0; axis < 3; ++axis) {
    if (y.shape(axis) != x.shape(axis)) {
      throw Error(ErrorCode::kShapeMismatch, "softmax_middle: y must have x's shape " +
                                                 shape_string(x.shape_ptr(), 3) + ", given " +
                                                 shape_string(y.shape_ptr(), 3));
    }
  }
  if (k == 0) return;
  if (inner == 1) {  // the last axis: a row per item
    const float* xd = x.data();
    float* yd = y.data();
    ParallelItems(outer, static_cast<int64_t>(x.size()) * 12,
                  [&](int64_t row) { SoftmaxRow(xd + row * k, yd + row * k, k); });
    return;
  }
  // Pieces of 256 columns (16 KiB per row of 16 floats x k rows stays in L1 for k <= 64).
  constexpr int64_t kPiece = 256;
  const int64_t pieces_per_block = (inner + kPiece - 1) / kPiece;
  const float* xd = x.data();
  float* yd = y.data();
  ParallelItems(outer * pieces_per_block, static_cast<int64_t>(x.size()) * 12, [&](int64_t item) {
    const int64_t block = item / pieces_per_block, c0 = item % pieces_per_block * kPiece;
    const int64_t offset = block * k * inner + c0;
    SoftmaxColumns(xd + offset, yd + offset, k, inner, std::min(kPiece, inner - c0));
  });
}

}  // namespace convkit::python
