// Depthwise backward convolution (groups == IC == OC): every channel is its own 2-D problem, so
// both kernels vectorise over channels, as conv2d_fwd_depthwise.cc does forward. Weights are HWIO
// {KH, KW, 1, C}: a tap's weights are contiguous over C.
//
// dx: a tile is kRows dx pixels of one dx row and one column phase (iw = rw + stride_w * j for
// consecutive j, as DxPhase in conv2d_bwd_tile.hpp) x kVecs channel vectors. Within a phase each
// tap reads consecutive dy pixels, so per tap: kVecs weight loads, then one dy load and one FMA per
// pixel and vector (dense rows, stride 1: one dy load per KW FMAs). Each dx element is one sum
// over the taps in a fixed order, written once.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/conv/conv2d_bwd.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv/conv2d_bwd_depthwise_data.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/common/vec-inl.h"
#include "backends/highway/conv/conv2d_bwd_epilogue-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
// Internal linkage for everything but the exported entry point (see conv2d_fwd_depthwise.cc).
namespace {

// Tile shapes: kRows * kVecs accumulators (>= 8: FMA latency 4 x 2 pipes) + kVecs weights + one
// dy vector must fit the register file.
#if HWY_TARGET == HWY_AVX3
// 32 zmm: 8 x 3, 12 x 2 or 16 x 1 accumulators.
constexpr size_t kDxMaxVecs = 3;
constexpr size_t DxRowsFor(size_t vecs) { return vecs >= 3 ? 8 : vecs == 2 ? 12 : 16; }
#elif HWY_TARGET == HWY_AVX2
// 16 ymm: 4 x 2 or 8 x 1 accumulators.
constexpr size_t kDxMaxVecs = 2;
constexpr size_t DxRowsFor(size_t vecs) { return vecs >= 2 ? 4 : 8; }
#else
constexpr size_t kDxMaxVecs = 2;
constexpr size_t DxRowsFor(size_t /*vecs*/) { return 4; }
#endif

// q = t / s when s divides t (t may be negative).
inline bool ExactQuotient(int64_t t, int64_t s, int64_t* q) {
  if (t % s != 0) return false;
  *q = t / s;
  return true;
}

// A kernel row that reaches a given dx row: its weights and the dy row it reads (channel c0).
struct DxRowTap {
  const float* w = nullptr;
  const float* dy = nullptr;
};
// A kernel column that reaches a column phase: pixel j of the phase reads dy column j + qw.
struct DxColTap {
  int64_t kw = 0, qw = 0;
};

// Stores the first `rows` rows of a tile through the epilogue, row i at dx_row + i * step * C_in
// (step: dx columns between the tile's pixels). The product is formed from i up, as an offset of a
// pixel that exists: step * C_in alone may overflow (a valid stride near 2^62 with one pixel).
// acc is copied first, so that the caller's tile never escapes (it stays in registers: CopyTile).
template <size_t kRows, size_t kVecs>
HWY_INLINE void StoreDxTile(const VF (&acc)[kRows][kVecs], int64_t rows, const DxEpilogue& e,
                            int64_t c0, MF last, float* dx_row, int64_t step, int64_t channels) {
  VF out[kRows][kVecs];
  CopyTile(acc, out);
  const DxTileEpilogue<kVecs> epilogue(e, c0, last);
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    if (static_cast<int64_t>(i) >= rows) break;
    epilogue.Store(out[i], dx_row + static_cast<int64_t>(i) * step * channels);
  }
}

// The dx pixels (row dx_row, columns rw + stride_w * (j0 + i)), i < rows <= kRows, channels [c0,
// c0 + cols): the sum over row_taps x col_taps, in (kh, kw) order.
template <size_t kRows, size_t kVecs>
void DxTile(const Conv2dProblem& p, const DxRowTap* row_taps, int64_t row_count,
            const DxColTap* col_taps, int64_t col_count, int64_t j0, int64_t rows, int64_t cols,
            const DxEpilogue& e, int64_t c0, float* dx_row) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * lanes);
  VF acc[kRows][kVecs];
  ZeroTile(acc);
  for (int64_t r = 0; r < row_count; ++r) {
    for (int64_t c = 0; c < col_count; ++c) {
      const int64_t ow0 = j0 + col_taps[c].qw;
      const int64_t lo = std::max<int64_t>(0, -ow0), hi = std::min(rows, p.ow - ow0);
      if (lo >= hi) continue;
      VF wv[kVecs];
      LoadVecs<kVecs>(row_taps[r].w + col_taps[c].kw * p.oc, last, wv);
      const float* dy = row_taps[r].dy;
      if (lo == 0 && hi == static_cast<int64_t>(kRows)) {  // the common, interior case
        HWY_UNROLL(16)
        for (size_t i = 0; i < kRows; ++i) {
          VF g[kVecs];
          LoadVecs<kVecs>(dy + (ow0 + static_cast<int64_t>(i)) * p.oc, last, g);
          HWY_UNROLL(4)
          for (size_t v = 0; v < kVecs; ++v) acc[i][v] = hn::MulAdd(g[v], wv[v], acc[i][v]);
        }
        continue;
      }
      HWY_UNROLL(16)
      for (size_t i = 0; i < kRows; ++i) {
        const int64_t ii = static_cast<int64_t>(i);
        if (ii < lo || ii >= hi) continue;
        VF g[kVecs];
        LoadVecs<kVecs>(dy + (ow0 + ii) * p.oc, last, g);
        HWY_UNROLL(4)
        for (size_t v = 0; v < kVecs; ++v) acc[i][v] = hn::MulAdd(g[v], wv[v], acc[i][v]);
      }
    }
  }
  StoreDxTile<kRows, kVecs>(acc, rows, e, c0, last, dx_row, p.stride_w, p.ic);
}

// DxTile with as many vectors as `cols` channels need (the last block may be narrower).
template <size_t kRows, size_t kVecs>
void DxTileVecs(const Conv2dProblem& p, const DxRowTap* row_taps, int64_t row_count,
                const DxColTap* col_taps, int64_t col_count, int64_t j0, int64_t rows, int64_t cols,
                const DxEpilogue& e, int64_t c0, float* dx_row) {
  if constexpr (kVecs > 1) {
    if (cols <= static_cast<int64_t>((kVecs - 1) * hn::Lanes(DF()))) {
      return DxTileVecs<kRows, kVecs - 1>(p, row_taps, row_count, col_taps, col_count, j0, rows,
                                          cols, e, c0, dx_row);
    }
  }
  DxTile<kRows, kVecs>(p, row_taps, row_count, col_taps, col_count, j0, rows, cols, e, c0, dx_row);
}

// Dense rows (stride_w == dilation_w == 1, KW of 3 or 5): pixel i of a tile reads dy column
// j0 + i + pad_left - kw at tap kw, so a kernel row's taps read kRows + KW - 1 consecutive dy
// columns. Each is loaded once and feeds every pixel it reaches (KW FMAs per load instead of
// one: this kernel is load-bound otherwise). The taps of a kernel row are summed in descending kw.
#if HWY_TARGET == HWY_AVX3
constexpr size_t kDenseRegs = 30;  // of 32 zmm
#else
constexpr size_t kDenseRegs = 15;  // of 16 ymm / xmm
#endif
// Accumulators + KW weights + one dy vector, per vector of channels, within kDenseRegs.
constexpr size_t DenseRowsFor(size_t kw, size_t vecs) {
  const size_t rows = kDenseRegs / vecs > kw + 1 ? kDenseRegs / vecs - kw - 1 : 0;
  return rows < 4 ? 4 : rows > 12 ? 12 : rows;
}

bool HasDenseRows(const Conv2dProblem& p) {
  return p.stride_w == 1 && p.dilation_w == 1 && (p.kw == 3 || p.kw == 5);
}

template <size_t kKw, size_t kRows, size_t kVecs>
void DxTileDense(const Conv2dProblem& p, const DxRowTap* row_taps, int64_t row_count, int64_t j0,
                 int64_t rows, int64_t cols, const DxEpilogue& e, int64_t c0, float* dx_row) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * lanes);
  VF acc[kRows][kVecs];
  ZeroTile(acc);
  const int64_t ow_base = j0 + p.pad.left - static_cast<int64_t>(kKw - 1);  // column u = 0
  for (int64_t r = 0; r < row_count; ++r) {
    VF wv[kKw][kVecs];
    HWY_UNROLL(8)
    for (size_t kw = 0; kw < kKw; ++kw) {
      LoadVecs<kVecs>(row_taps[r].w + static_cast<int64_t>(kw) * p.oc, last, wv[kw]);
    }
    const float* dy = row_taps[r].dy;
    // Fully unrolled (<= 16 steps), so that acc is indexed by constants and stays in registers.
    HWY_UNROLL(32)
    for (size_t u = 0; u < kRows + kKw - 1; ++u) {
      const int64_t ow = ow_base + static_cast<int64_t>(u);
      if (ow < 0 || ow >= p.ow) continue;
      VF g[kVecs];
      LoadVecs<kVecs>(dy + ow * p.oc, last, g);
      HWY_UNROLL(8)
      for (size_t kw = 0; kw < kKw; ++kw) {
        // Pixel i = u - (KW - 1 - kw) reads this column at tap kw; resolved at compile time.
        if (u + kw < kKw - 1 || u + kw - (kKw - 1) >= kRows) continue;
        const size_t i = u + kw - (kKw - 1);
        HWY_UNROLL(4)
        for (size_t v = 0; v < kVecs; ++v) acc[i][v] = hn::MulAdd(g[v], wv[kw][v], acc[i][v]);
      }
    }
  }
  StoreDxTile<kRows, kVecs>(acc, rows, e, c0, last, dx_row, 1, p.ic);
}

// DxTileDense with as many vectors as `cols` channels need.
template <size_t kKw, size_t kRows, size_t kVecs>
void DxTileDenseVecs(const Conv2dProblem& p, const DxRowTap* row_taps, int64_t row_count,
                     int64_t j0, int64_t rows, int64_t cols, const DxEpilogue& e, int64_t c0,
                     float* dx_row) {
  if constexpr (kVecs > 1) {
    if (cols <= static_cast<int64_t>((kVecs - 1) * hn::Lanes(DF()))) {
      return DxTileDenseVecs<kKw, kRows, kVecs - 1>(p, row_taps, row_count, j0, rows, cols, e, c0,
                                                    dx_row);
    }
  }
  DxTileDense<kKw, kRows, kVecs>(p, row_taps, row_count, j0, rows, cols, e, c0, dx_row);
}

// A dense dx row: tiles of DenseRowsFor(KW, kVecs) pixels.
template <size_t kKw, size_t kVecs>
void DxRowDense(const Conv2dProblem& p, const DxRowTap* row_taps, int64_t row_count, int64_t cols,
                const DxEpilogue& e, int64_t c0, float* dx_row) {
  constexpr int64_t kRows = static_cast<int64_t>(DenseRowsFor(kKw, kVecs));
  for (int64_t j0 = 0; j0 < p.iw; j0 += kRows) {
    DxTileDenseVecs<kKw, kRows, kVecs>(p, row_taps, row_count, j0, std::min(kRows, p.iw - j0), cols,
                                       e, c0, dx_row + j0 * p.ic);
  }
}

// The column taps of every column phase rw < min(stride_w, IW) (phases past IW hold no pixel: a
// stride of 2^62 is valid): taps[rw * KW, rw * KW + count[rw]).
struct DxColTaps {
  std::vector<DxColTap> taps;
  std::vector<int64_t> count;

  explicit DxColTaps(const Conv2dProblem& p) {
    const int64_t phases = std::min(p.stride_w, p.iw);
    taps.resize(static_cast<size_t>(phases * p.kw));
    count.assign(static_cast<size_t>(phases), 0);
    for (int64_t rw = 0; rw < phases; ++rw) {
      for (int64_t kw = 0; kw < p.kw; ++kw) {
        int64_t qw;
        if (!ExactQuotient(rw + p.pad.left - kw * p.dilation_w, p.stride_w, &qw)) continue;
        taps[static_cast<size_t>(rw * p.kw + count[static_cast<size_t>(rw)]++)] = {kw, qw};
      }
    }
  }
};

// One item: dx row `row` (= n * IH + ih), channels [c0, c0 + cols), every column phase and tile.
// The kernel rows that reach the row are found once for all its tiles.
template <size_t kVecs>
void DxRow(const Conv2dBwdDataArgs& a, const DxColTaps& col, int64_t row, int64_t c0,
           int64_t cols) {
  constexpr int64_t kRows = static_cast<int64_t>(DxRowsFor(kVecs));
  const Conv2dProblem& p = *a.p;
  const int64_t n = row / p.ih, ih = row % p.ih;
  // On the stack for kernels of up to kStackRows rows (every network's): no allocation per row.
  constexpr int64_t kStackRows = 16;
  DxRowTap stack_taps[kStackRows];
  std::vector<DxRowTap> heap_taps(static_cast<size_t>(p.kh > kStackRows ? p.kh : 0));
  DxRowTap* const row_taps = p.kh > kStackRows ? heap_taps.data() : stack_taps;
  int64_t row_count = 0;
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    int64_t oh;
    if (!ExactQuotient(ih + p.pad.top - kh * p.dilation_h, p.stride_h, &oh)) continue;
    if (oh < 0 || oh >= p.oh) continue;
    row_taps[row_count++] = {a.w_hwio + kh * p.kw * p.oc + c0,
                             a.dy + (n * p.oh + oh) * p.ow * p.oc + c0};
  }
  float* dx_row = a.dx + row * p.iw * p.ic + c0;
  if (HasDenseRows(p)) {
    if (p.kw == 3) {
      return DxRowDense<3, kVecs>(p, row_taps, row_count, cols, a.epilogue, c0, dx_row);
    }
    return DxRowDense<5, kVecs>(p, row_taps, row_count, cols, a.epilogue, c0, dx_row);
  }
  for (int64_t rw = 0; rw < static_cast<int64_t>(col.count.size()); ++rw) {
    const int64_t nw = (p.iw - rw - 1) / p.stride_w + 1;
    const DxColTap* col_taps = col.taps.data() + rw * p.kw;
    const int64_t col_count = col.count[static_cast<size_t>(rw)];
    for (int64_t j0 = 0; j0 < nw; j0 += kRows) {
      DxTileVecs<kRows, kVecs>(p, row_taps, row_count, col_taps, col_count, j0,
                               std::min(kRows, nw - j0), cols, a.epilogue, c0,
                               dx_row + (rw + p.stride_w * j0) * p.ic);
    }
  }
}

// Every (dx row, channel block) item, channel blocks innermost (consecutive items read the same
// dy rows); threads take contiguous ranges.
template <size_t kVecs>
void RunDx(const Conv2dBwdDataArgs& a) {
  const Conv2dProblem& p = *a.p;
  const int64_t block = static_cast<int64_t>(kVecs * hn::Lanes(DF()));
  const int64_t blocks = (p.ic + block - 1) / block;
  const int64_t items = p.n * p.ih * blocks;
  const DxColTaps col(p);
  const auto run_item = [&](int64_t t) {
    const int64_t c0 = (t % blocks) * block;
    DxRow<kVecs>(a, col, t / blocks, c0, std::min(block, p.ic - c0));
  };
  ParallelFor(a.threads, items, run_item);
}

// Blocks as even as the widest block allows: C = 64 on AVX3 runs as 2 x 2 vectors (12-pixel tiles),
// not 3 + 1 (8-pixel tiles, the second pass a single vector wide).
void Conv2dBwdDepthwiseData(const Conv2dBwdDataArgs& a) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t all_vecs = (a.p->ic + lanes - 1) / lanes;
  const int64_t blocks = (all_vecs + kDxMaxVecs - 1) / kDxMaxVecs;
  const int64_t vecs = (all_vecs + blocks - 1) / blocks;
  WithVecs<kDxMaxVecs>(vecs, [&](auto v) { RunDx<decltype(v)::value>(a); });
}

}  // namespace

Conv2dBwdDataKernel GetConv2dBwdDepthwiseDataKernel() {
  return {&Conv2dBwdDepthwiseData, static_cast<int64_t>(hn::Lanes(DF())), kDxMaxVecs,
          hwy::TargetName(HWY_TARGET)};
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dBwdDepthwiseDataKernel);

Conv2dBwdDataKernel ChooseConv2dBwdDepthwiseDataKernel() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dBwdDepthwiseDataKernel)();
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
