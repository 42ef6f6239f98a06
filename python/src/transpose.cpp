// The blocks of the glue's batched transpose (python/src/transpose.hpp). The extension is built
// for the baseline x86-64, so the vector paths carry target attributes and run behind the CPU
// checks of cpu.hpp: 8 x 8 blocks transposed in AVX2 registers, and a short side of 2-4 (a
// 3-channel image, a 2-class map) interleaved or gathered 16 elements at a time by AVX-512
// two-source permutes. Other CPUs, and the edges of a block, take the scalar loop.
#include "python/src/transpose.hpp"

#include "python/src/cpu.hpp"

namespace convkit::python {
namespace {

// y[c * y_stride + r] = x[r * x_stride + c] for r in [0, rows), c in [0, cols).
void TransposeScalar(const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t rows,
                     int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) y[c * y_stride + r] = x[r * x_stride + c];
  }
}

#ifdef CONVKIT_GLUE_X86

// One 8 x 8 block: rows of x at x_stride in, rows of y (x's columns) at y_stride out.
__attribute__((target("avx2"))) void Transpose8x8(const float* x, int64_t x_stride, float* y,
                                                  int64_t y_stride) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(x + i * x_stride);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(y + i * y_stride, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(y + (i + 4) * y_stride, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

// The lanes of one vector of the interleaved side (kShort floats per element of the long side)
// at `offset` floats: lane j holds element `along` of short row `row`, taken from the (row 0, row
// 1) vectors or, where from_hi, the (row 2, row 3) ones.
struct Lanes {
  __m512i lo, hi;  // index into (row 0, row 1) and (row 2, row 3) vectors: row % 2 * 16 + along
  __mmask16 from_hi;
};

template <int kShort>
__attribute__((target("avx512f"))) Lanes InterleavedLanes(int offset) {
  alignas(64) int idx[16];
  __mmask16 from_hi = 0;
  for (int j = 0; j < 16; ++j) {
    const int along = (offset + j) / kShort, row = (offset + j) % kShort;
    idx[j] = row % 2 * 16 + along % 16;
    if (row >= 2) from_hi = static_cast<__mmask16>(from_hi | (1u << j));
  }
  const __m512i v = _mm512_load_si512(idx);
  return {v, v, from_hi};
}

// kShort rows of x (a few channel planes), `count` elements each, interleaved into y: per 16
// elements, kShort output vectors, each two two-source permutes and a blend.
template <int kShort>
__attribute__((target("avx512f"))) void Interleave(const float* x, int64_t x_stride, float* y,
                                                   int64_t count) {
  Lanes lanes[kShort];
  for (int k = 0; k < kShort; ++k) lanes[k] = InterleavedLanes<kShort>(16 * k);
  const int64_t count16 = count / 16 * 16;
  for (int64_t c = 0; c < count16; c += 16) {
    __m512 rows[4];
    for (int k = 0; k < 4; ++k) rows[k] = _mm512_loadu_ps(x + (k < kShort ? k : 0) * x_stride + c);
    for (int k = 0; k < kShort; ++k) {
      const __m512 lo = _mm512_permutex2var_ps(rows[0], lanes[k].lo, rows[1]);
      const __m512 hi = _mm512_permutex2var_ps(rows[2], lanes[k].hi, rows[3]);
      _mm512_storeu_ps(y + c * kShort + 16 * k, _mm512_mask_blend_ps(lanes[k].from_hi, lo, hi));
    }
  }
  TransposeScalar(x + count16, x_stride, y + count16 * kShort, kShort, kShort, count - count16);
}

// y's kShort rows, `count` elements each, gathered from x's kShort interleaved columns: per 16
// elements, kShort input vectors and per output row two two-source permutes and a blend.
template <int kShort>
__attribute__((target("avx512f"))) void Deinterleave(const float* x, float* y, int64_t y_stride,
                                                     int64_t count) {
  // Output row k's lane j is input float j * kShort + k: vector (j * kShort + k) / 16.
  __m512i lo[kShort], hi[kShort];
  __mmask16 from_hi[kShort];
  for (int k = 0; k < kShort; ++k) {
    alignas(64) int idx[16];
    from_hi[k] = 0;
    for (int j = 0; j < 16; ++j) {
      const int at = j * kShort + k;
      idx[j] = at % 32;
      if (at >= 32) from_hi[k] = static_cast<__mmask16>(from_hi[k] | (1u << j));
    }
    lo[k] = hi[k] = _mm512_load_si512(idx);
  }
  const int64_t count16 = count / 16 * 16;
  for (int64_t r = 0; r < count16; r += 16) {
    __m512 in[4];
    for (int v = 0; v < 4; ++v) in[v] = _mm512_loadu_ps(x + r * kShort + 16 * (v < kShort ? v : 0));
    for (int k = 0; k < kShort; ++k) {
      const __m512 a = _mm512_permutex2var_ps(in[0], lo[k], in[1]);
      const __m512 b = _mm512_permutex2var_ps(in[2], hi[k], in[3]);
      _mm512_storeu_ps(y + k * y_stride + r, _mm512_mask_blend_ps(from_hi[k], a, b));
    }
  }
  TransposeScalar(x + count16 * kShort, kShort, y + count16, y_stride, count - count16, kShort);
}

// The short-side paths for 2 to 4 rows or columns, indexed by the short side minus 2; false
// where none applies.
bool TransposeShort(const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t rows,
                    int64_t cols) {
  using InterleaveFn = void (*)(const float*, int64_t, float*, int64_t);
  using DeinterleaveFn = void (*)(const float*, float*, int64_t, int64_t);
  static constexpr InterleaveFn kInterleave[] = {&Interleave<2>, &Interleave<3>, &Interleave<4>};
  static constexpr DeinterleaveFn kDeinterleave[] = {&Deinterleave<2>, &Deinterleave<3>,
                                                     &Deinterleave<4>};
  if (!HasAvx512()) return false;
  if (rows == y_stride && rows >= 2 && rows <= 4) {  // y's rows are whole: interleave
    kInterleave[rows - 2](x, x_stride, y, cols);
    return true;
  }
  if (cols == x_stride && cols >= 2 && cols <= 4) {  // x's rows are whole: gather
    kDeinterleave[cols - 2](x, y, y_stride, rows);
    return true;
  }
  return false;
}

#endif  // CONVKIT_GLUE_X86

}  // namespace

void TransposeBlock(const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t rows,
                    int64_t cols) {
#ifdef CONVKIT_GLUE_X86
  if (HasAvx2()) {
    if (TransposeShort(x, x_stride, y, y_stride, rows, cols)) return;
    const int64_t rows8 = rows / 8 * 8, cols8 = cols / 8 * 8;
    for (int64_t r = 0; r < rows8; r += 8) {
      for (int64_t c = 0; c < cols8; c += 8) {
        Transpose8x8(x + r * x_stride + c, x_stride, y + c * y_stride + r, y_stride);
      }
    }
    TransposeScalar(x + cols8, x_stride, y + cols8 * y_stride, y_stride, rows8, cols - cols8);
    TransposeScalar(x + rows8 * x_stride, x_stride, y + rows8, y_stride, rows - rows8, cols);
    return;
  }
#endif
  TransposeScalar(x, x_stride, y, y_stride, rows, cols);
}

}  // namespace convkit::python
