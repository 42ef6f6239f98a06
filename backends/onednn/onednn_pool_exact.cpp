#include "backends/onednn/onednn_pool_exact.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace convkit::internal::onednn {
namespace {

// Elements per scan block: 16 KiB, a third of a 48 KiB L1D, and enough work per OpenMP chunk.
constexpr int64_t kScanBlock = 4096;
// Below this many elements the scan stays on the calling thread: a parallel region costs more
// (a few microseconds) than reading 256 KiB.
constexpr int64_t kScanParallelMin = 1 << 16;

// The scan's inner loop is built for AVX-512, AVX2 and baseline x86-64, and the loader picks one
// (GCC's function multiversioning). AVX-512 doubles its speed in cache: on 800K floats (the
// ResNet-50 stem pool's input) 33 us instead of 64 us, one Zen 5 core.
#if defined(__x86_64__) && defined(__GNUC__)
#define CONVKIT_SCAN_TARGETS __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CONVKIT_SCAN_TARGETS
#endif

// Whether x[0, count) holds an element that is not > -FLT_MAX (NaN, -inf, -FLT_MAX). Branch-free,
// so the compiler vectorizes it.
CONVKIT_SCAN_TARGETS bool BlockHasSpecials(const float* x, int64_t count) {
  constexpr float kLowest = std::numeric_limits<float>::lowest();
  int32_t hits = 0;
  for (int64_t i = 0; i < count; ++i) hits |= !(x[i] > kLowest);
  return hits != 0;
}

// The input rows [h_begin, h_end) and columns [w_begin, w_end) of output (oh, ow)'s window.
struct Window {
  int64_t h_begin, h_end, w_begin, w_end;
};

Window WindowOf(const Pool2dProblem& p, int64_t oh, int64_t ow) {
  const int64_t h0 = oh * p.stride_h - p.pad.top, w0 = ow * p.stride_w - p.pad.left;
  return {std::max<int64_t>(h0, 0), std::min(h0 + p.kh, p.ih), std::max<int64_t>(w0, 0),
          std::min(w0 + p.kw, p.iw)};
}

// The offset in x of the window's winner for channel c of image n: the first NaN, else the first
// maximal element, in row-major order. Every window touches the input (pad < window).
int64_t ArgMax(const Pool2dProblem& p, const float* x, const Window& win, int64_t n, int64_t c) {
  const auto at = [&](int64_t h, int64_t w) { return ((n * p.ih + h) * p.iw + w) * p.c + c; };
  int64_t best = at(win.h_begin, win.w_begin);
  for (int64_t h = win.h_begin; h < win.h_end; ++h) {
    for (int64_t w = win.w_begin; w < win.w_end; ++w) {
      const float v = x[at(h, w)];
      if (!std::isnan(x[best]) && (std::isnan(v) || v > x[best])) best = at(h, w);
    }
  }
  return best;
}

}  // namespace

bool HasMaxPoolSpecials(const float* x, int64_t count, int num_threads) {
  const int64_t blocks = (count + kScanBlock - 1) / kScanBlock;
  bool found = false;
#pragma omp parallel for reduction(||       \
                                   : found) \
    num_threads(num_threads) if (count >= kScanParallelMin) schedule(static)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t begin = block * kScanBlock;
    found = found || BlockHasSpecials(x + begin, std::min(kScanBlock, count - begin));
  }
  return found;
}

void MaxPoolFwdExact(const Pool2dProblem& p, const float* x, float* y, int num_threads) {
#pragma omp parallel for collapse(2) num_threads(num_threads)
  for (int64_t n = 0; n < p.n; ++n) {
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const Window win = WindowOf(p, oh, ow);
        float* y_row = y + ((n * p.oh + oh) * p.ow + ow) * p.c;
        for (int64_t c = 0; c < p.c; ++c) y_row[c] = x[ArgMax(p, x, win, n, c)];
      }
    }
  }
}

void MaxPoolBwdExact(const Pool2dProblem& p, const float* x, const float* dy, float* dx,
                     int num_threads) {
  const int64_t image = p.ih * p.iw * p.c;
  // Windows of one image overlap; images do not: one thread per image keeps dx race-free.
#pragma omp parallel for num_threads(num_threads)
  for (int64_t n = 0; n < p.n; ++n) {
    std::fill_n(dx + n * image, image, 0.0f);
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const Window win = WindowOf(p, oh, ow);
        const float* dy_row = dy + ((n * p.oh + oh) * p.ow + ow) * p.c;
        for (int64_t c = 0; c < p.c; ++c) dx[ArgMax(p, x, win, n, c)] += dy_row[c];
      }
    }
  }
}

}  // namespace convkit::internal::onednn
