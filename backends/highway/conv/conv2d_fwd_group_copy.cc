// Forward convolution with groups of exactly one vector of output channels (OC / groups = L:
// ResNeXt-50's 32 groups of 16 channels at 14x14 on AVX-512) at stride 1: any ICg, kernel,
// padding, dilation, bias and post-ops.
//
// Each FMA of such a group needs its own input broadcast (no other group shares it), so the
// broadcasts, one per FMA, are the kernel: the implicit GEMM held one pointer per pixel in a
// general register and so tiles of 6-8 pixels, whose per-tap set-up and short channel loops
// (16 steps) held it at ~80 % of the FMA peak. Here a work item copies one group's band of input
// rows into a zero-padded block (GroupCopyGeometry: slabs of 16 channels per pixel), where a
// tile's pixels lie at compile-time offsets from one pointer per output row: tiles of up to 28
// pixels (tile_rows x tile_cols), one weight load per 28 FMAs, each FMA reading its broadcast
// from memory. Taps in the padding read the block's zeros (tile rows whose taps reach the padding
// run one row at a time, so that rows in the padding are skipped). The copy costs a load and a
// store per input element of the group, against KH * KW FMAs per element; at stride 2 an element
// serves 4x fewer, and the copy made ResNeXt's 3x3 stride-2 layer 0.87x the implicit GEMM's
// speed: the choice refuses strides.
//
// Summation order per output: taps in (kh, kw) order, channels in order, then bias (as the
// implicit GEMM): integer data give the reference's bits.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc); the
// variant's choice and weight packing are in conv2d_fwd_grouped.cpp.
#include "backends/highway/conv/conv2d_fwd_group_copy.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/common/scratch.hpp"
#include "backends/highway/conv/conv2d_fwd_kernel.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv/conv2d_fwd_group_copy.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/conv/conv2d_fwd_epilogue-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
namespace {

// Pixels per tile: as many accumulators as the registers hold beside the weight vector (32 zmm,
// 16 ymm). With fewer than 8 the FMA latency (4 cycles, 2 pipes) shows.
#if HWY_TARGET == HWY_AVX3
constexpr size_t kMaxTile = 28;
#elif HWY_TARGET == HWY_AVX2
constexpr size_t kMaxTile = 12;
#else
constexpr size_t kMaxTile = 4;
#endif
constexpr size_t kMaxTileRows = 4;

// GroupCopyGeometry's tile_rows for tiles of `cols` columns (when the output has that many rows).
constexpr size_t TileRowsFor(size_t cols) {
  return static_cast<size_t>(GroupCopyTileRows(static_cast<int64_t>(kMaxTile),
                                               static_cast<int64_t>(kMaxTileRows),
                                               static_cast<int64_t>(cols)));
}

constexpr int64_t kSlab = kGroupCopySlab;

// One work item: image n, group g, output rows [oh_begin, oh_end), whose input rows from ih_begin
// are in `copy` (ih_begin may lie in the top padding: rows outside the input are never copied).
struct GroupBand {
  int64_t n = 0, g = 0;
  int64_t oh_begin = 0, oh_end = 0;
  int64_t ih_begin = 0;
  float* copy = nullptr;
};

// The copy's floats of slab s, row `row` (band_rows: the zero row).
HWY_INLINE float* CopyRow(const GroupCopyGeometry& geo, float* copy, int64_t s, int64_t row) {
  return copy + (s * (geo.band_rows + 1) + row) * geo.row_floats;
}

// Copies input row ih of the band's group into copy row `row`, every slab: padded column q at
// pixel q; columns outside the input and channels past the group's are zeros.
void CopyInputRow(const Conv2dProblem& p, const GroupCopyGeometry& geo, const float* x,
                  const GroupBand& band, int64_t ih, int64_t row) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t icg = p.ic_per_group();
  const float* x_row = x + ((band.n * p.ih + ih) * p.iw) * p.ic + band.g * icg;
  // Pixels [begin, end) are input columns q - pad_left.
  const int64_t begin = std::min(geo.cols, p.pad.left);
  const int64_t end = std::min(geo.cols, p.pad.left + p.iw);
  for (int64_t s = 0; s < geo.slabs; ++s) {
    float* dst = CopyRow(geo, band.copy, s, row);
    std::fill(dst, dst + begin * kSlab, 0.0f);
    std::fill(dst + end * kSlab, dst + geo.cols * kSlab, 0.0f);
    const int64_t channels = std::min(kSlab, icg - s * kSlab);
    const float* src = x_row + (begin - p.pad.left) * p.ic + s * kSlab;
    // Vectors past the group's channels are zeros without a load: Highway's scalar target reads
    // a masked load's element even where the mask is false.
    for (int64_t c = 0; c < kSlab; c += lanes) {
      if (c >= channels) {
        for (int64_t q = begin; q < end; ++q) hn::Store(hn::Zero(d), d, dst + q * kSlab + c);
        continue;
      }
      const MF m = hn::FirstN(d, static_cast<size_t>(std::min(channels - c, lanes)));
      for (int64_t q = begin; q < end; ++q) {
        hn::Store(hn::MaskedLoad(m, d, src + (q - begin) * p.ic + c), d, dst + q * kSlab + c);
      }
    }
  }
}

// The input rows the band's output rows read (the last band's may be fewer than band_rows).
int64_t BandInputRows(const Conv2dProblem& p, const GroupCopyGeometry& geo, const GroupBand& band) {
  return std::min<int64_t>(geo.band_rows, band.oh_end - band.oh_begin + (p.kh - 1) * p.dilation_h);
}

// The band's input rows into its copy, and the zero row after them.
void CopyBand(const Conv2dProblem& p, const GroupCopyGeometry& geo, const float* x,
              const GroupBand& band) {
  const int64_t rows = BandInputRows(p, geo, band);
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t ih = band.ih_begin + row;
    if (ih >= 0 && ih < p.ih) CopyInputRow(p, geo, x, band, ih, row);
  }
  for (int64_t s = 0; s < geo.slabs; ++s) {
    float* zero = CopyRow(geo, band.copy, s, geo.band_rows);
    std::fill(zero, zero + geo.row_floats, 0.0f);
  }
}

// acc[r][i] += sum over `steps` steps c of xs[r][i * kSlab + c] * w[c * L ..]: one weight load
// per step, each product's input broadcast from memory at a fixed offset.
template <size_t kRows, size_t kCols>
HWY_INLINE void AccumulateSteps(const float* const (&xs)[kRows], const float* HWY_RESTRICT w,
                                int64_t steps, VF (&acc)[kRows][kCols][1]) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  // A local copy that never escapes, kept in registers across the loop (AccumulateTap's note).
  VF a[kRows][kCols];
  HWY_UNROLL(16)
  for (size_t r = 0; r < kRows; ++r) {
    HWY_UNROLL(32)
    for (size_t i = 0; i < kCols; ++i) a[r][i] = acc[r][i][0];
  }
  for (int64_t c = 0; c < steps; ++c, w += lanes) {
    const VF wv = hn::Load(d, w);
    HWY_UNROLL(16)
    for (size_t r = 0; r < kRows; ++r) {
      HWY_UNROLL(32)
      for (size_t i = 0; i < kCols; ++i) {
        a[r][i] = hn::MulAdd(hn::Set(d, xs[r][static_cast<int64_t>(i) * kSlab + c]), wv, a[r][i]);
      }
    }
  }
  HWY_UNROLL(16)
  for (size_t r = 0; r < kRows; ++r) {
    HWY_UNROLL(32)
    for (size_t i = 0; i < kCols; ++i) acc[r][i][0] = a[r][i];
  }
}

// The tile of output rows [oh0, oh0 + kRows) (those at or past band.oh_end not stored) x columns
// [ow0, ow0 + kCols) (those at or past OW not stored) of the band's group.
template <size_t kRows, size_t kCols>
HWY_INLINE void RunTile(const Conv2dFwdArgs& a, const GroupCopyGeometry& geo, const GroupBand& band,
                        int64_t oh0, int64_t ow0) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t icg = p.ic_per_group();
  const float* w = a.w.data + band.g * a.w.group_stride;
  // Taps (kh, 0..KW-1) read consecutive pixels of one slab, and their weight rows follow each
  // other: one run of KW * 16 steps per kernel row.
  const bool merged = p.dilation_w == 1 && icg == kSlab;
  VF acc[kRows][kCols][1];
  HWY_UNROLL(16)
  for (size_t r = 0; r < kRows; ++r) {
    HWY_UNROLL(32)
    for (size_t i = 0; i < kCols; ++i) acc[r][i][0] = hn::Zero(d);
  }
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    int64_t rows[kRows];  // the copy row each tile row reads at this kh
    bool any = false;
    HWY_UNROLL(16)
    for (size_t r = 0; r < kRows; ++r) {
      const int64_t oh = oh0 + static_cast<int64_t>(r);
      const int64_t ih = oh - p.pad.top + kh * p.dilation_h;
      const bool inside = oh < band.oh_end && ih >= 0 && ih < p.ih;
      rows[r] = inside ? ih - band.ih_begin : geo.band_rows;
      any |= inside;
    }
    if (!any) continue;
    const float* w_row = w + kh * p.kw * icg * a.w.row_stride;
    if (merged) {
      const float* xs[kRows];
      HWY_UNROLL(16)
      for (size_t r = 0; r < kRows; ++r) xs[r] = CopyRow(geo, band.copy, 0, rows[r]) + ow0 * kSlab;
      AccumulateSteps<kRows, kCols>(xs, w_row, p.kw * kSlab, acc);
      continue;
    }
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      const int64_t at = (ow0 + kw * p.dilation_w) * kSlab;
      for (int64_t s = 0; s < geo.slabs; ++s) {
        const float* xs[kRows];
        HWY_UNROLL(16)
        for (size_t r = 0; r < kRows; ++r) xs[r] = CopyRow(geo, band.copy, s, rows[r]) + at;
        const int64_t c0 = s * kSlab;
        AccumulateSteps<kRows, kCols>(xs, w_row + (kw * icg + c0) * a.w.row_stride,
                                      std::min(kSlab, icg - c0), acc);
      }
    }
  }
  const MF all = hn::FirstN(d, static_cast<size_t>(lanes));
  const size_t cols = static_cast<size_t>(std::min<int64_t>(kCols, p.ow - ow0));
  const int64_t col0 = band.g * lanes;
  HWY_UNROLL(16)
  for (size_t r = 0; r < kRows; ++r) {
    const int64_t oh = oh0 + static_cast<int64_t>(r);
    if (oh >= band.oh_end) break;
    const int64_t y_at = ((band.n * p.oh + oh) * p.ow + ow0) * p.oc + col0;
    StoreTile<kCols, 1>(acc[r], cols, a.b != nullptr ? a.b + col0 : nullptr, &p.post_ops,
                        a.r != nullptr ? a.r + y_at : nullptr, all, a.y + y_at, p.oc);
  }
}

// True when some of the `rows` output rows from oh0 lie past the band, or read input rows in the
// padding at some kh: such tiles run a row at a time, so that a row's taps in the padding are
// skipped, not multiplied by the zero row (a 3x3 layer at 14x14 in tiles of 2 rows: 5 % of the
// FMAs).
bool RowsClipped(const Conv2dProblem& p, const GroupBand& band, int64_t oh0, int64_t rows) {
  const int64_t top = oh0 - p.pad.top;
  const int64_t bottom = oh0 + rows - 1 - p.pad.top + (p.kh - 1) * p.dilation_h;
  return oh0 + rows > band.oh_end || top < 0 || bottom >= p.ih;
}

// Work item `item`'s band (image, group, band, in that order from the slowest); copy unset.
GroupBand BandOf(const Conv2dProblem& p, const GroupCopyGeometry& geo, int64_t bands,
                 int64_t item) {
  GroupBand band;
  const int64_t b = item % bands;
  band.g = item / bands % p.groups;
  band.n = item / bands / p.groups;
  band.oh_begin = b * geo.band_tiles * geo.tile_rows;
  band.oh_end = std::min(p.oh, band.oh_begin + geo.band_tiles * geo.tile_rows);
  band.ih_begin = band.oh_begin - p.pad.top;
  return band;
}

// Prefetches into L2 (prefetcht1) the input the band's copy will read: a group's pixel is one
// cache line of a long row (2 KiB apart at 512 channels), which the copy otherwise waits for line
// by line (7 % of ResNeXt's 14x14 layer). Issued for the next item before this one's tiles run;
// into L1 it evicted the copy those tiles read.
void PrefetchBand(const Conv2dProblem& p, const GroupCopyGeometry& geo, const float* x,
                  const GroupBand& band) {
  const int64_t rows = BandInputRows(p, geo, band);
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t ih = band.ih_begin + row;
    if (ih < 0 || ih >= p.ih) continue;
    const float* x_row = x + ((band.n * p.ih + ih) * p.iw) * p.ic + band.g * p.ic_per_group();
    for (int64_t iw = 0; iw < p.iw; ++iw) {
      for (int64_t s = 0; s < geo.slabs; ++s)
        __builtin_prefetch(x_row + iw * p.ic + s * kSlab, 0, /*locality=*/2);
    }
  }
}

// Work item `item` of `items`: copies its band, prefetches the next item's input, then runs its
// tiles.
template <size_t kRows, size_t kCols>
void RunItem(const Conv2dFwdArgs& a, const GroupCopyGeometry& geo, int64_t bands, int64_t item,
             int64_t items) {
  const Conv2dProblem& p = *a.p;
  GroupBand band = BandOf(p, geo, bands, item);
  band.copy = ThreadScratch(geo.copy_floats);
  CopyBand(p, geo, a.x, band);
  if (item + 1 < items) PrefetchBand(p, geo, a.x, BandOf(p, geo, bands, item + 1));
  for (int64_t oh0 = band.oh_begin; oh0 < band.oh_end; oh0 += geo.tile_rows) {
    const bool whole = kRows == 1 || !RowsClipped(p, band, oh0, static_cast<int64_t>(kRows));
    for (int64_t t = 0; t < geo.row_tiles; ++t) {
      if (whole) {
        RunTile<kRows, kCols>(a, geo, band, oh0, t * geo.tile_cols);
        continue;
      }
      for (int64_t oh = oh0; oh < std::min(band.oh_end, oh0 + geo.tile_rows); ++oh) {
        RunTile<1, kCols>(a, geo, band, oh, t * geo.tile_cols);
      }
    }
  }
}

template <size_t kRows, size_t kCols>
void RunAll(const Conv2dFwdArgs& a, const GroupCopyGeometry& geo) {
  const Conv2dProblem& p = *a.p;
  const int64_t rows_of_tiles = (p.oh + geo.tile_rows - 1) / geo.tile_rows;
  const int64_t bands = (rows_of_tiles + geo.band_tiles - 1) / geo.band_tiles;
  const int64_t items = p.n * p.groups * bands;
  ParallelFor(a.threads, items,
              [&](int64_t item) { RunItem<kRows, kCols>(a, geo, bands, item, items); });
}

// RunAll with the geometry's tile shape as compile-time constants (kCols from kMaxTile down).
template <size_t kCols>
void RunAllFor(const Conv2dFwdArgs& a, const GroupCopyGeometry& geo) {
  if constexpr (kCols > 1) {
    if (geo.tile_cols < static_cast<int64_t>(kCols)) return RunAllFor<kCols - 1>(a, geo);
  }
  constexpr size_t kRows = TileRowsFor(kCols);
  if constexpr (kRows > 1) {
    if (geo.tile_rows == static_cast<int64_t>(kRows)) return RunAll<kRows, kCols>(a, geo);
  }
  RunAll<1, kCols>(a, geo);
}

void Conv2dFwdGroupCopy(const Conv2dFwdArgs& a) {
  const GroupCopyGeometry geo = GroupCopyGeometryFor(*a.p, kMaxTile, kMaxTileRows);
  RunAllFor<kMaxTile>(a, geo);
}

}  // namespace

Conv2dFwdKernel GetConv2dFwdGroupCopyKernel() {
  Conv2dFwdKernel kernel{&Conv2dFwdGroupCopy, static_cast<int64_t>(hn::Lanes(DF())), 1,
                         hwy::TargetName(HWY_TARGET)};
  kernel.rows[0] = static_cast<int64_t>(kMaxTile);
  kernel.rows[1] = static_cast<int64_t>(kMaxTileRows);
  return kernel;
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dFwdGroupCopyKernel);

Conv2dFwdKernel Conv2dFwdGroupCopyKernel() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dFwdGroupCopyKernel)();
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
