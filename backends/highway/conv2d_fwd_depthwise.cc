// Depthwise forward convolution (groups == IC == OC): each output channel reads only its own input
// channel, so the kernel vectorises over channels. A tile is kRows output pixels x kVecs vectors of
// channels; per tap it loads one weight vector per channel vector and reuses it over the kRows
// pixels. Weights are HWIO {KH, KW, 1, C} as given: a tap's weights are already contiguous over C.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <cstddef>
#include <cstdint>

#include "backends/highway/conv2d_fwd.hpp"
#include "backends/highway/conv2d_fwd_tile.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv2d_fwd_depthwise.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/conv2d_fwd-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// Tile shapes: kRows * kVecs accumulators, >= 8 to cover the FMA latency (4) x pipes (2) when C
// allows. Every FMA also needs an input load, so the kernel is load- or memory-bound anyway.
#if HWY_TARGET == HWY_AVX3
// 8 rows amortise the per-tap pointer set-up and weight loads over more FMAs (measured 1 thread,
// 112x112x32 3x3: 4 rows x 4 vecs 235 us, see the issue-4 note).
constexpr size_t kRows = 8;
constexpr size_t kMaxVecs = 3;  // 24 accumulators + 3 weights of 32 zmm
#elif HWY_TARGET == HWY_AVX2
constexpr size_t kRows = 4;
constexpr size_t kMaxVecs = 2;  // 8 accumulators + 2 weights of 16 ymm
#else
constexpr size_t kRows = 4;
constexpr size_t kMaxVecs = 2;
#endif

// One tile: pixels [m0, m0 + kRows) x channels [c0, c0 + cols).
template <size_t kVecs>
void RunTile(const Conv2dFwdArgs& a, int64_t c0, int64_t cols, int64_t m0) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const size_t lanes = hn::Lanes(d);
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * lanes);

  VF acc[kRows][kVecs];
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) acc[i][j] = hn::Zero(d);
  }
  const PixelTile<kRows> tile(p, a.x, c0, m0);
  const float* xp[kRows];
  const float* zeros = a.zeros + c0;
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      if (!tile.Tap(kh, kw, zeros, xp)) continue;
      VF wv[kVecs];
      LoadVecs<kVecs>(a.w.data + (kh * p.kw + kw) * a.w.row_stride + c0, last, wv);
      HWY_UNROLL(16)
      for (size_t i = 0; i < kRows; ++i) {
        VF xv[kVecs];
        LoadVecs<kVecs>(xp[i], last, xv);
        HWY_UNROLL(16)
        for (size_t j = 0; j < kVecs; ++j) acc[i][j] = hn::MulAdd(xv[j], wv[j], acc[i][j]);
      }
    }
  }
  const int64_t m_end = p.n * p.oh * p.ow;
  const size_t rows =
      static_cast<size_t>(m_end - m0 < static_cast<int64_t>(kRows) ? m_end - m0 : kRows);
  StoreTile<kRows, kVecs>(acc, rows, a.b != nullptr ? a.b + c0 : nullptr,
                          p.activation == Activation::kRelu, last, a.y + m0 * p.oc + c0, p.oc);
}

// RunTile with as many vectors as `cols` channels need.
template <size_t kVecs>
void RunTileVecs(const Conv2dFwdArgs& a, int64_t c0, int64_t cols, int64_t m0) {
  if constexpr (kVecs > 1) {
    if (cols <= static_cast<int64_t>((kVecs - 1) * hn::Lanes(DF()))) {
      return RunTileVecs<kVecs - 1>(a, c0, cols, m0);
    }
  }
  RunTile<kVecs>(a, c0, cols, m0);
}

// Runs every (pixel tile, channel block) item; threads take contiguous ranges of pixel tiles.
void Conv2dFwdDepthwise(const Conv2dFwdArgs& a) {
  const Conv2dProblem& p = *a.p;
  const int64_t c = p.oc;
  const int64_t block_cols = static_cast<int64_t>(kMaxVecs * hn::Lanes(DF()));
  const int64_t blocks = (c + block_cols - 1) / block_cols;
  const int64_t tiles = (p.n * p.oh * p.ow + kRows - 1) / kRows;
  const int64_t items = tiles * blocks;
  const auto run_item = [&](int64_t t) {
    const int64_t c0 = (t % blocks) * block_cols;
    const int64_t cols = c - c0 < block_cols ? c - c0 : block_cols;
    RunTileVecs<kMaxVecs>(a, c0, cols, (t / blocks) * static_cast<int64_t>(kRows));
  };
  if (a.threads <= 1) {
    for (int64_t t = 0; t < items; ++t) run_item(t);
    return;
  }
#pragma omp parallel for num_threads(a.threads) schedule(static)
  for (int64_t t = 0; t < items; ++t) run_item(t);
}

Conv2dFwdKernel GetConv2dFwdDepthwiseKernel() {
  return {&Conv2dFwdDepthwise, static_cast<int64_t>(hn::Lanes(DF())), kMaxVecs,
          hwy::TargetName(HWY_TARGET)};
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dFwdDepthwiseKernel);

Conv2dFwdKernel Conv2dFwdDepthwiseKernel() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dFwdDepthwiseKernel)();
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
