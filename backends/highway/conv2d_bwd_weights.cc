// Backward weights and bias: dw(kh, kw, ic, oc) = sum over (n, oh, ow) of x(n, ih, iw, ic) *
// dy(n, oh, ow, oc), a GEMM with M = KH * KW * IC / groups rows, N = OC / groups columns and the
// reduction K = N * OH * OW. A microkernel holds kRows input channels x kVecs vectors of output
// channels of one tap in registers; per dy pixel it broadcasts kRows x values and loads kVecs dy
// vectors (the forward microkernel's shape, conv2d_igemm-inl.h's RowsFor).
//
// Determinism: the dw elements are partitioned across threads, never the reduction. Each dw tile
// is owned by one thread, which sums its terms in the order (n, oh, ow) -- the reference's order --
// in chunks of dy rows that stay in L2; between chunks the partial sum waits in dw and is reloaded,
// which changes no bit. So the result is the same for any thread count (and matches a plain
// sequential loop). db is the same: one vector lane per channel, summed over (n, oh, ow) in order.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/conv2d_bwd.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv2d_bwd_weights.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/conv2d_fwd-inl.h"
#include "backends/highway/conv2d_igemm-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// A chunk of the reduction: dy rows [r0, r1) of the flattened N x OH rows. ~512 KiB of x and dy
// per chunk keeps both in a core's 1 MiB L2 while every dw tile of the thread streams them.
constexpr int64_t kChunkBytes = 512 * 1024;

// floor(a / b) for b > 0.
inline int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// One dw tile of group g: tap (kh, kw), input channels [ic0, ic0 + rows) of the group, output
// channels [col0, col0 + cols) of the group, accumulated over dy rows [r0, r1). `first` starts
// from zero, otherwise from the partial sums already in dw. kFull: rows == kRows (a partial tile
// reads its last channel again for the missing rows and does not store them).
template <size_t kRows, size_t kVecs, bool kFull>
void RunTile(const Conv2dBwdWeightsArgs& a, int64_t g, int64_t tap, int64_t ic0, size_t rows,
             int64_t col0, int64_t cols, int64_t r0, int64_t r1, bool first) {
  const Conv2dProblem& p = *a.p;
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group();
  const DF d;
  const size_t lanes = hn::Lanes(d);
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * lanes);
  const int64_t kh = tap / p.kw, kw = tap % p.kw;
  float* dw = a.dw + (tap * icg + ic0) * p.oc + g * ocg + col0;

  VF acc[kRows][kVecs];
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) acc[i][j] = hn::Zero(d);
    if (!first && i < rows) LoadVecs<kVecs>(dw + static_cast<int64_t>(i) * p.oc, last, acc[i]);
  }
  size_t channel[kRows];  // the x channel row i reads
  for (size_t i = 0; i < kRows; ++i) channel[i] = kFull ? i : std::min(i, rows - 1);

  // The ow whose tap kw reads inside the input: iw = ow * sw - pad_left + kw * dw in [0, IW).
  const int64_t shift = kw * p.dilation_w - p.pad.left;
  const int64_t ow_begin = std::max<int64_t>(0, FloorDiv(-shift + p.stride_w - 1, p.stride_w));
  const int64_t ow_end = std::min(p.ow, FloorDiv(p.iw - 1 - shift, p.stride_w) + 1);
  if (ow_begin < ow_end) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / p.oh, oh = r % p.oh;
      const int64_t ih = oh * p.stride_h - p.pad.top + kh * p.dilation_h;
      if (ih < 0 || ih >= p.ih) continue;
      const float* xp =
          a.x + ((n * p.ih + ih) * p.iw + ow_begin * p.stride_w + shift) * p.ic + g * icg + ic0;
      const float* dyp = a.dy + (r * p.ow + ow_begin) * p.oc + g * ocg + col0;
      const int64_t x_step = p.stride_w * p.ic;
      for (int64_t ow = ow_begin; ow < ow_end; ++ow, xp += x_step, dyp += p.oc) {
        VF g_v[kVecs];
        LoadVecs<kVecs>(dyp, last, g_v);
        HWY_UNROLL(16)
        for (size_t i = 0; i < kRows; ++i) {
          const VF xv = hn::Set(d, xp[kFull ? i : channel[i]]);
          HWY_UNROLL(16)
          for (size_t j = 0; j < kVecs; ++j) acc[i][j] = hn::MulAdd(xv, g_v[j], acc[i][j]);
        }
      }
    }
  }
  for (size_t i = 0; i < rows; ++i) {
    float* row = dw + static_cast<int64_t>(i) * p.oc;
    HWY_UNROLL(16)
    for (size_t j = 0; j + 1 < kVecs; ++j) hn::StoreU(acc[i][j], d, row + j * lanes);
    hn::BlendedStore(acc[i][kVecs - 1], last, d, row + (kVecs - 1) * lanes);
  }
}

// RunTile with as many vectors as `cols` need, full or partial rows.
template <size_t kRows, size_t kVecs>
void RunTileVecs(const Conv2dBwdWeightsArgs& a, int64_t g, int64_t tap, int64_t ic0, size_t rows,
                 int64_t col0, int64_t cols, int64_t r0, int64_t r1, bool first) {
  if constexpr (kVecs > 1) {
    if (cols <= static_cast<int64_t>((kVecs - 1) * hn::Lanes(DF()))) {
      return RunTileVecs<kRows, kVecs - 1>(a, g, tap, ic0, rows, col0, cols, r0, r1, first);
    }
  }
  if (rows == kRows) {
    RunTile<kRows, kVecs, true>(a, g, tap, ic0, rows, col0, cols, r0, r1, first);
  } else {
    RunTile<kRows, kVecs, false>(a, g, tap, ic0, rows, col0, cols, r0, r1, first);
  }
}

// Every dw tile, (group, tap, ic tile, oc block) in that order, split in contiguous ranges over
// the threads; each thread walks the reduction chunk by chunk over its own tiles.
template <size_t kVecs>
void RunWeights(const Conv2dBwdWeightsArgs& a, int64_t block_cols) {
  constexpr size_t kRows = RowsFor(kVecs);
  const Conv2dProblem& p = *a.p;
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group();
  const int64_t taps = p.kh * p.kw;
  const int64_t ic_tiles = (icg + kRows - 1) / kRows;
  const int64_t blocks = (ocg + block_cols - 1) / block_cols;
  const int64_t items = p.groups * taps * ic_tiles * blocks;
  const int64_t dy_rows = p.n * p.oh;
  const int64_t row_bytes = (p.ow * p.oc + p.stride_h * p.iw * p.ic) * 4;
  const int64_t chunk = std::max<int64_t>(1, kChunkBytes / row_bytes);
  const auto run_range = [&](int64_t begin, int64_t end) {
    for (int64_t r0 = 0; r0 < dy_rows; r0 += chunk) {
      const int64_t r1 = std::min(dy_rows, r0 + chunk);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t block = t % blocks;
        const int64_t ic_tile = (t / blocks) % ic_tiles;
        const int64_t tap = (t / (blocks * ic_tiles)) % taps;
        const int64_t g = t / (blocks * ic_tiles * taps);
        const int64_t ic0 = ic_tile * static_cast<int64_t>(kRows);
        const size_t rows = static_cast<size_t>(std::min<int64_t>(kRows, icg - ic0));
        const int64_t col0 = block * block_cols;
        const int64_t cols = std::min(block_cols, ocg - col0);
        RunTileVecs<kRows, kVecs>(a, g, tap, ic0, rows, col0, cols, r0, r1, r0 == 0);
      }
    }
  };
  if (a.threads <= 1) return run_range(0, items);
#pragma omp parallel num_threads(a.threads)
  {
#ifdef _OPENMP
    const int64_t parts = omp_get_num_threads(), part = omp_get_thread_num();
#else
    const int64_t parts = 1, part = 0;
#endif
    run_range(items * part / parts, items * (part + 1) / parts);
  }
}

// db(oc) = the sum of dy(n, oh, ow, oc) over (n, oh, ow) in order, from +0 (the reference's bits).
// Channels [c0, c0 + cols), kVecs vectors: independent add chains hide the add latency.
template <size_t kVecs>
void BiasBlock(const Conv2dProblem& p, const float* dy, int64_t c0, int64_t cols, float* db) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * lanes);
  const int64_t pixels = p.n * p.oh * p.ow;
  VF sum[kVecs];
  HWY_UNROLL(16)
  for (size_t j = 0; j < kVecs; ++j) sum[j] = hn::Zero(d);
  for (int64_t m = 0; m < pixels; ++m) {
    VF v[kVecs];
    LoadVecs<kVecs>(dy + m * p.oc + c0, last, v);
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) sum[j] = hn::Add(sum[j], v[j]);
  }
  HWY_UNROLL(16)
  for (size_t j = 0; j + 1 < kVecs; ++j) hn::StoreU(sum[j], d, db + c0 + j * lanes);
  hn::BlendedStore(sum[kVecs - 1], last, d, db + c0 + (kVecs - 1) * lanes);
}

// Channel blocks of up to 2 vectors (so that 64 channels still give 2 threads work) split over
// the threads; each channel is summed by one thread, so the bits do not depend on the split.
void RunBias(const Conv2dBwdWeightsArgs& a) {
  const Conv2dProblem& p = *a.p;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t block = 2 * lanes;
  const int64_t blocks = (p.oc + block - 1) / block;
  const auto run_block = [&](int64_t t) {
    const int64_t c0 = t * block;
    const int64_t cols = std::min(block, p.oc - c0);
    if (cols > lanes) {
      BiasBlock<2>(p, a.dy, c0, cols, a.db);
    } else {
      BiasBlock<1>(p, a.dy, c0, cols, a.db);
    }
  };
  if (a.threads <= 1 || blocks == 1) {
    for (int64_t t = 0; t < blocks; ++t) run_block(t);
    return;
  }
#pragma omp parallel for num_threads(a.threads) schedule(static)
  for (int64_t t = 0; t < blocks; ++t) run_block(t);
}

void Conv2dBwdWeights(const Conv2dBwdWeightsArgs& a) {
  const Conv2dProblem& p = *a.p;
  if (a.db != nullptr) RunBias(a);
  if (a.dw == nullptr) return;
  if (p.n == 0) {
    std::fill_n(a.dw, p.kh * p.kw * p.ic_per_group() * p.oc, 0.0f);
    return;
  }
  // Blocks of output channels as wide as the microkernel holds (VecsPerBlock, as the forward).
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const Conv2dFwdKernel shape{nullptr, lanes, static_cast<int64_t>(kMaxVecs), ""};
  const int64_t vecs = VecsPerBlock(shape, p.oc_per_group(), p.n * p.oh * p.ow);
  if constexpr (kMaxVecs >= 4) {
    if (vecs == 4) return RunWeights<4>(a, 4 * lanes);
  }
  if constexpr (kMaxVecs >= 3) {
    if (vecs == 3) return RunWeights<3>(a, 3 * lanes);
  }
  if (vecs == 2) return RunWeights<2>(a, 2 * lanes);
  RunWeights<1>(a, lanes);
}

Conv2dBwdWeightsKernel GetConv2dBwdWeightsKernel() {
  return {&Conv2dBwdWeights, hwy::TargetName(HWY_TARGET)};
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dBwdWeightsKernel);

Conv2dBwdWeightsKernel ChooseConv2dBwdWeightsKernel() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dBwdWeightsKernel)();
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
