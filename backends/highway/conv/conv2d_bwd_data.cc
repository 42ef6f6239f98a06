// Backward data: dx as an implicit GEMM over dx pixels, M = N * IH * IW, N = IC / groups, K = KH *
// KW * OC / groups, with w^T as the weights and dy as the input -- the forward microkernel
// (AccumulateTap, conv2d_igemm-inl.h) with the transposed convolution's indexing (DxTile). Each
// dx element is one sum, written once: no atomics, no zero-fill, any thread split gives the same
// bits.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/conv/conv2d_bwd.hpp"
#include "backends/highway/conv/conv2d_bwd_tile.hpp"
#include "hwy/aligned_allocator.h"

#ifdef _OPENMP
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv/conv2d_bwd_data.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/common/vec-inl.h"
#include "backends/highway/conv/conv2d_bwd_epilogue-inl.h"
#include "backends/highway/conv/conv2d_igemm-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
// Internal linkage for everything but the exported entry point (see conv2d_fwd_depthwise.cc).
namespace {

// A block of dx columns: the `cols` input channels of block `block` of group g, from dx channel
// col0; ocg = OC / groups, the reduction's length. Computed once per block, not per tile (64-bit
// divisions by groups).
struct DxBlock {
  int64_t g = 0, block = 0, cols = 0, col0 = 0, ocg = 0;
};

// One tile: kRows pixels of `phase` from m0 x the block's columns.
template <size_t kRows, size_t kVecs>
void RunTile(const Conv2dBwdDataArgs& a, const DxPhase& phase, const DxBlock& b, int64_t m0) {
  const Conv2dProblem& p = *a.p;
  const int64_t ocg = b.ocg;
  const DF d;
  const size_t lanes = hn::Lanes(d);
  const MF last = hn::FirstN(d, static_cast<size_t>(b.cols) - (kVecs - 1) * lanes);
  const float* w = a.w.data + b.g * a.w.group_stride + b.block * a.w.block_stride;
  const int64_t tap_stride = ocg * a.w.row_stride;

  VF acc[kRows][kVecs];
  ZeroTile(acc);
  const DxTile<kRows> tile(p, phase, a.dy, b.g * ocg, m0);
  const float* dyp[kRows];
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      if (!tile.Tap(kh, kw, a.zeros, dyp)) continue;
      AccumulateTap<kRows, kVecs>(dyp, w + (kh * p.kw + kw) * tap_stride, a.w.row_stride, ocg, last,
                                  acc);
    }
  }
  const DxTileEpilogue<kVecs> epilogue(a.epilogue, b.col0, last);
  for (size_t i = 0; i < tile.rows(); ++i) {
    epilogue.Store(acc[i], a.dx + tile.dx_offset(i) + b.col0);
  }
}

// RunTile with as many vectors as the block's `cols` need (the last block may be narrower).
template <size_t kRows, size_t kVecs>
void RunTileVecs(const Conv2dBwdDataArgs& a, const DxPhase& phase, const DxBlock& b, int64_t m0) {
  if constexpr (kVecs > 1) {
    if (b.cols <= static_cast<int64_t>((kVecs - 1) * hn::Lanes(DF()))) {
      return RunTileVecs<kRows, kVecs - 1>(a, phase, b, m0);
    }
  }
  RunTile<kRows, kVecs>(a, phase, b, m0);
}

// Runs every (group, block, tile, phase) item, in that order: consecutive items share a weight
// block, and a thread's range of items holds every phase of its tiles. Phases differ in work
// (3x3 stride 2: 1, 2, 2 and 4 taps); in (phase, tile) order the two threads of a stride-2 3x3
// layer took phases of 3 and 6 taps' work (ResNet-18's and YOLOv5s' downsampling layers 1.4-1.5x
// oneDNN's time on 2 threads, 1.05-1.25x on one). Phase (0, 0) has the most pixels; items past a
// phase's last tile do nothing.
template <size_t kVecs>
void RunAll(const Conv2dBwdDataArgs& a) {
  constexpr size_t kRows = RowsFor(kVecs);
  const Conv2dProblem& p = *a.p;
  const int64_t icg = p.ic_per_group();
  const int64_t phases = DxPhase::Count(p);
  std::vector<DxPhase> phase_list;
  phase_list.reserve(static_cast<size_t>(phases));
  for (int64_t i = 0; i < phases; ++i) phase_list.emplace_back(p, i);
  const int64_t tiles = (phase_list[0].pixels(p) + kRows - 1) / kRows;
  const int64_t blocks = (icg + a.w.block_cols - 1) / a.w.block_cols;
  const int64_t items = p.groups * blocks * tiles * phases;
  // Each thread's range is walked with counters: item t decomposed per tile took a tenth of a
  // narrow 1x1 layer's time in 64-bit divisions.
  ParallelRanges(a.threads, items, [&](int64_t begin, int64_t end) {
    if (begin >= end) return;
    int64_t phase_index = begin % phases, tile = begin / phases % tiles;
    const int64_t ocg = p.oc_per_group();
    const auto block_of = [&](int64_t g, int64_t block) {
      const int64_t col0 = block * a.w.block_cols;
      return DxBlock{g, block, std::min(a.w.block_cols, icg - col0), g * icg + col0, ocg};
    };
    DxBlock b = block_of(begin / (blocks * tiles * phases), begin / (tiles * phases) % blocks);
    for (int64_t t = begin; t < end; ++t) {
      const DxPhase& phase = phase_list[static_cast<size_t>(phase_index)];
      const int64_t m0 = tile * static_cast<int64_t>(kRows);
      if (m0 < phase.pixels(p)) RunTileVecs<kRows, kVecs>(a, phase, b, m0);
      if (++phase_index < phases) continue;
      phase_index = 0;
      if (++tile < tiles) continue;
      tile = 0;
      b = b.block + 1 < blocks ? block_of(b.g, b.block + 1) : block_of(b.g + 1, 0);
    }
  });
}

// Narrow input channels (one group, ICg below one vector, no dilation along w; conv1: IC = 3):
// a tile of dx channels would fill 3 of 16 lanes. Instead, per image, the im2col gradient dcol
// = dy x w^T (rows: dy pixels, columns m = tap * IC + ic, reduction: OC) with the igemm
// microkernel, then col2im: each kernel row's taps cover consecutive dx pixels, so one dcol row
// segment of KW * IC floats is added to one contiguous dx segment. Each image belongs to one
// thread and is summed in a fixed order (dy pixels, then kh): the same bits for any thread count.
// Chosen in conv2d_bwd_variants.cpp (groups 1, dilation_w 1, IC at most half a vector).

// dst[0, len) += src[0, len).
inline void AddRow(const float* HWY_RESTRICT src, int64_t len, float* HWY_RESTRICT dst) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t j = 0; j < len; j += lanes) {
    const MF m = hn::FirstN(d, static_cast<size_t>(std::min(lanes, len - j)));
    const VF sum = hn::Add(hn::MaskedLoad(m, d, dst + j), hn::MaskedLoad(m, d, src + j));
    hn::BlendedStore(sum, m, d, dst + j);
  }
}

// Adds the dcol row of dy pixel (n, oh, ow) into dx (n = 0 with dx pointing at image n).
void ScatterPixel(const Conv2dProblem& p, const float* dcol, int64_t n, int64_t oh, int64_t ow,
                  float* dx) {
  const int64_t iw0 = ow * p.stride_w - p.pad.left;
  const int64_t kw_lo = std::max<int64_t>(0, -iw0), kw_hi = std::min(p.kw, p.iw - iw0);
  if (kw_lo >= kw_hi) return;
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    const int64_t ih = oh * p.stride_h - p.pad.top + kh * p.dilation_h;
    if (ih < 0 || ih >= p.ih) continue;
    AddRow(dcol + (kh * p.kw + kw_lo) * p.ic, (kw_hi - kw_lo) * p.ic,
           dx + ((n * p.ih + ih) * p.iw + iw0 + kw_lo) * p.ic);
  }
}

// dcol rows (kRows, stride ld) of the dy rows dyp: columns [col0, col0 + kVecs * lanes) of wt
// (OC rows of ld floats, zeros past M).
template <size_t kRows, size_t kVecs>
void NarrowColumns(const float* const (&dyp)[kRows], const float* wt, int64_t ld, int64_t oc,
                   int64_t col0, float* dcol) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  VF acc[kRows][kVecs];
  ZeroTile(acc);
  AccumulateTap<kRows, kVecs>(dyp, wt + col0, ld, oc, hn::FirstN(d, lanes), acc);
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) {
      hn::StoreU(acc[i][j], d, dcol + static_cast<int64_t>(i) * ld + col0 + j * lanes);
    }
  }
}

// All ld columns: blocks of kMaxVecs vectors, then the remainder.
template <size_t kRows>
void NarrowTile(const float* const (&dyp)[kRows], const float* wt, int64_t ld, int64_t oc,
                float* dcol) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t block = static_cast<int64_t>(kMaxVecs) * lanes;
  int64_t col0 = 0;
  for (; col0 + block <= ld; col0 += block) {
    NarrowColumns<kRows, kMaxVecs>(dyp, wt, ld, oc, col0, dcol);
  }
  const int64_t rest = (ld - col0) / lanes;
  if constexpr (kMaxVecs > 3) {
    if (rest == 3) return NarrowColumns<kRows, 3>(dyp, wt, ld, oc, col0, dcol);
  }
  if constexpr (kMaxVecs > 2) {
    if (rest == 2) return NarrowColumns<kRows, 2>(dyp, wt, ld, oc, col0, dcol);
  }
  if (rest == 1) NarrowColumns<kRows, 1>(dyp, wt, ld, oc, col0, dcol);
}

// One image: dx(n) = 0, then every dy pixel's dcol row added, kRows pixels at a time, then the
// epilogue. With a residual (which may be dx itself) the sums go to `image` (one image of
// scratch) and the epilogue writes dx from there.
template <size_t kRows>
void NarrowImage(const Conv2dProblem& p, const float* dy, const float* wt, int64_t ld, int64_t n,
                 const DxEpilogue& epilogue, float* dcol, float* image, float* dx) {
  const int64_t image_size = p.ih * p.iw * p.ic;
  float* dx_image = dx + n * image_size;
  float* sums = epilogue.r != nullptr ? image : dx_image;
  std::fill_n(sums, image_size, 0.0f);
  const int64_t pixels = p.oh * p.ow;
  const float* dy_image = dy + n * pixels * p.oc;
  for (int64_t m0 = 0; m0 < pixels; m0 += static_cast<int64_t>(kRows)) {
    const int64_t rows = std::min(static_cast<int64_t>(kRows), pixels - m0);
    const float* dyp[kRows];
    for (size_t i = 0; i < kRows; ++i) {
      dyp[i] = dy_image + (m0 + std::min(static_cast<int64_t>(i), rows - 1)) * p.oc;
    }
    NarrowTile<kRows>(dyp, wt, ld, p.oc, dcol);
    for (int64_t i = 0; i < rows; ++i) {
      ScatterPixel(p, dcol + i * ld, 0, (m0 + i) / p.ow, (m0 + i) % p.ow, sums);  // image n
    }
  }
  if (!epilogue.empty()) {  // while the image is in cache
    ApplyDxEpilogue(epilogue, p.ih * p.iw, p.ic, sums, dx_image);
  }
}

void RunNarrow(const Conv2dBwdDataArgs& a) {
  constexpr size_t kRows = RowsFor(kMaxVecs);
  const Conv2dProblem& p = *a.p;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t m = p.kh * p.kw * p.ic;
  const int64_t ld = (m + lanes - 1) / lanes * lanes;
  auto wt = hwy::AllocateAligned<float>(static_cast<size_t>(p.oc * ld));  // wt[oc][m] = w[m][oc]
  for (int64_t oc = 0; oc < p.oc; ++oc) {
    for (int64_t col = 0; col < ld; ++col) {
      wt[oc * ld + col] = col < m ? a.w_hwio[col * p.oc + oc] : 0.0f;
    }
  }
  const auto run_images = [&](int64_t begin, int64_t end) {
    auto dcol = hwy::AllocateAligned<float>(kRows * static_cast<size_t>(ld));
    hwy::AlignedFreeUniquePtr<float[]> image;
    if (a.epilogue.r != nullptr) image = hwy::AllocateAligned<float>(p.ih * p.iw * p.ic);
    for (int64_t n = begin; n < end; ++n) {
      NarrowImage<kRows>(p, a.dy, wt.get(), ld, n, a.epilogue, dcol.get(), image.get(), a.dx);
    }
  };
  ParallelRanges(a.threads, p.n, run_images);
}

void Conv2dBwdData(const Conv2dBwdDataArgs& a) {
  const int64_t vecs = a.w.block_cols / static_cast<int64_t>(hn::Lanes(DF()));
  WithVecs<kMaxVecs>(vecs, [&](auto v) { RunAll<decltype(v)::value>(a); });
}

}  // namespace

Conv2dBwdDataKernel GetConv2dBwdDataKernel() {
  return {&Conv2dBwdData, static_cast<int64_t>(hn::Lanes(DF())), kMaxVecs,
          hwy::TargetName(HWY_TARGET)};
}

Conv2dBwdDataKernel GetConv2dBwdNarrowDataKernel() {
  return {&RunNarrow, static_cast<int64_t>(hn::Lanes(DF())), kMaxVecs, hwy::TargetName(HWY_TARGET)};
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dBwdDataKernel);
HWY_EXPORT(GetConv2dBwdNarrowDataKernel);

Conv2dBwdDataKernel ChooseConv2dBwdDataKernel() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dBwdDataKernel)();
}

Conv2dBwdDataKernel ChooseConv2dBwdNarrowDataKernel() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dBwdNarrowDataKernel)();
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
