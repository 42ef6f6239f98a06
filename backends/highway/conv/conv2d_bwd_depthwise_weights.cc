// Depthwise backward convolution (groups == IC == OC): every channel is its own 2-D problem, so
// both kernels vectorise over channels, as conv2d_fwd_depthwise.cc does forward. Weights are HWIO
// {KH, KW, 1, C}: a tap's weights are contiguous over C.
//
// dw (+ db): dw(kh, kw, c) = sum over (n, oh, ow) of x(n, ih, iw, c) * dy(n, oh, ow, c). A group
// of taps keeps one accumulator per tap and channel vector while it streams over the pixels: per
// pixel one dy load, and per tap one x load and one FMA. Determinism: the reduction over the
// flattened (n, oh) rows is cut into chunks of ChunkRows(p) rows, a function of the shape only
// (never of the thread count). Each (chunk, channel block, tap group) item sums its pixels in
// (n, oh, ow) order into its own partial; the partials are then added in chunk order. So the bits
// are the same for any thread count.
//
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/conv/conv2d_bwd.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv/conv2d_bwd_depthwise_weights.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/common/vec-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
// Internal linkage for everything but the exported entry point (see conv2d_fwd_depthwise.cc).
namespace {

// Accumulators of one tap group: kTaps * kVecs for dw plus kVecs for db, with one dy and one x
// vector live, within the register file.
#if HWY_TARGET == HWY_AVX3
// 32 zmm: 9 taps x 2 vectors (3x3, C >= 32) or 18 taps x 1 vector, + db + dy + x <= 24.
constexpr size_t kWMaxVecs = 2;
constexpr size_t GroupTapsFor(size_t vecs) { return vecs >= 2 ? 9 : 18; }
#elif HWY_TARGET == HWY_AVX2
// 16 ymm: 9 taps x 1 vector + db + dy + x = 12.
constexpr size_t kWMaxVecs = 1;
constexpr size_t GroupTapsFor(size_t /*vecs*/) { return 9; }
#else
constexpr size_t kWMaxVecs = 1;
constexpr size_t GroupTapsFor(size_t /*vecs*/) { return 9; }
#endif

// Pixels per chunk of the reduction: enough that a chunk's partial (taps x C floats) costs little
// next to its FMAs (~1/1000 of them), small enough that a 112x112 layer gives ~25 chunks for two
// threads to share. A property of the shape only: the bits must not depend on the thread count.
constexpr int64_t kChunkPixels = 512;

int64_t ChunkRows(const Conv2dProblem& p) {
  return std::max<int64_t>(1, (kChunkPixels + p.ow - 1) / p.ow);
}

// What a tap reads along w, the same for every row: the ow range [lo, hi) whose input iw = ow *
// stride_w + kw * dilation_w - pad_left lies inside x, and iw at ow = lo. Computed once per call
// (two divisions per tap), not per row.
struct TapCols {
  int64_t kh = 0;
  int64_t lo = 0, hi = 0;
  int64_t iw_lo = 0;
};

std::vector<TapCols> MakeTapCols(const Conv2dProblem& p) {
  std::vector<TapCols> cols(static_cast<size_t>(p.kh * p.kw));
  // No t + s - 1: a stride near 2^63 is valid (one output) and would overflow it.
  const auto ceil_div = [](int64_t t, int64_t s) {
    return t >= 0 ? t / s + (t % s != 0) : -(-t / s);
  };
  for (int64_t tap = 0; tap < p.kh * p.kw; ++tap) {
    TapCols& c = cols[static_cast<size_t>(tap)];
    c.kh = tap / p.kw;
    // iw = ow * s + iw0 in [0, IW)  <=>  ow in [ceil(-iw0 / s), ceil((IW - iw0) / s)).
    const int64_t iw0 = (tap % p.kw) * p.dilation_w - p.pad.left;
    c.lo = std::clamp<int64_t>(ceil_div(-iw0, p.stride_w), 0, p.ow);
    c.hi = std::max(c.lo, std::clamp<int64_t>(ceil_div(p.iw - iw0, p.stride_w), 0, p.ow));
    if (c.lo < c.hi) c.iw_lo = iw0 + c.lo * p.stride_w;
  }
  return cols;
}

// For one (n, oh) row and tap: the ow range [lo, hi) whose input lies inside x, and the offset in
// x of the input of pixel lo (relative to lo, so that no offset outside x is formed: a pad near
// 2^62 is valid).
struct TapRow {
  int64_t lo = 0, hi = 0;
  int64_t x_lo = 0;
};

TapRow MakeTapRow(const Conv2dProblem& p, int64_t n, int64_t oh, const TapCols& c) {
  TapRow r;
  const int64_t ih = oh * p.stride_h - p.pad.top + c.kh * p.dilation_h;
  if (ih < 0 || ih >= p.ih || c.lo >= c.hi) return r;  // empty
  r.lo = c.lo;
  r.hi = c.hi;
  r.x_lo = ((n * p.ih + ih) * p.iw + c.iw_lo) * p.ic;
  return r;
}

// Pixels [ow_begin, ow_end) of one row: acc[t] += x(tap t) * dy, sum += dy. kChecked: some tap's
// input may lie outside x for some of these pixels (then that tap is skipped for them).
template <size_t kTaps, size_t kVecs, bool kChecked>
HWY_INLINE void WeightsPixels(const Conv2dProblem& p, const float* HWY_RESTRICT x,
                              const float* HWY_RESTRICT dy_row, const TapRow (&taps)[kTaps],
                              int64_t ow_begin, int64_t ow_end, MF last, bool with_db,
                              VF (&acc)[kTaps][kVecs], VF (&sum)[kVecs]) {
  // A tap reads two pixels of one row only when stride_w < IW; otherwise step is never used, and
  // stride_w * IC could overflow (a stride near 2^63 is valid: one output).
  const int64_t step = p.stride_w < p.iw ? p.stride_w * p.ic : 0;
  for (int64_t ow = ow_begin; ow < ow_end; ++ow) {
    VF g[kVecs];
    LoadVecs<kVecs>(dy_row + ow * p.oc, last, g);
    if (with_db) {
      HWY_UNROLL(4)
      for (size_t v = 0; v < kVecs; ++v) sum[v] = hn::Add(sum[v], g[v]);
    }
    HWY_UNROLL(32)
    for (size_t t = 0; t < kTaps; ++t) {
      if (kChecked && (ow < taps[t].lo || ow >= taps[t].hi)) continue;
      VF xv[kVecs];
      LoadVecs<kVecs>(x + (taps[t].x_lo + (ow - taps[t].lo) * step), last, xv);
      HWY_UNROLL(4)
      for (size_t v = 0; v < kVecs; ++v) acc[t][v] = hn::MulAdd(xv[v], g[v], acc[t][v]);
    }
  }
}

// One item: the kTaps taps of tap_cols x channels [c0, c0 + cols) summed over the (n, oh) rows
// [row_begin, row_end). Writes dw_out[t * C + c] (row stride C, as dw) and, if db_out is
// non-null, db_out[c].
template <size_t kTaps, size_t kVecs>
void WeightsItem(const Conv2dBwdWeightsArgs& a, const TapCols* tap_cols, int64_t c0, int64_t cols,
                 int64_t row_begin, int64_t row_end, float* dw_out, float* db_out) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * hn::Lanes(d));
  VF acc[kTaps][kVecs], sum[kVecs];
  ZeroTile(acc);
  ZeroVecs(sum);
  const float* x = a.x + c0;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / p.oh, oh = row % p.oh;
    TapRow taps[kTaps];
    int64_t lo = 0, hi = p.ow;  // where every tap is inside
    for (size_t t = 0; t < kTaps; ++t) {
      taps[t] = MakeTapRow(p, n, oh, tap_cols[t]);
      lo = std::max(lo, taps[t].lo);
      hi = std::min(hi, taps[t].hi);
    }
    const float* dy_row = a.dy + row * p.ow * p.oc + c0;
    const bool with_db = db_out != nullptr;
    if (lo >= hi) {
      WeightsPixels<kTaps, kVecs, true>(p, x, dy_row, taps, 0, p.ow, last, with_db, acc, sum);
      continue;
    }
    WeightsPixels<kTaps, kVecs, true>(p, x, dy_row, taps, 0, lo, last, with_db, acc, sum);
    WeightsPixels<kTaps, kVecs, false>(p, x, dy_row, taps, lo, hi, last, with_db, acc, sum);
    WeightsPixels<kTaps, kVecs, true>(p, x, dy_row, taps, hi, p.ow, last, with_db, acc, sum);
  }
  HWY_UNROLL(32)
  for (size_t t = 0; t < kTaps; ++t) StoreVecs<kVecs>(acc[t], last, dw_out + t * p.oc);
  if (db_out != nullptr) StoreVecs<kVecs>(sum, last, db_out);
}

// WeightsItem with kTaps = taps (1 <= taps <= kTaps) and as many vectors as `cols` need.
template <size_t kTaps, size_t kVecs>
void WeightsItemFor(int64_t taps, const Conv2dBwdWeightsArgs& a, const TapCols* tap_cols,
                    int64_t c0, int64_t cols, int64_t row_begin, int64_t row_end, float* dw_out,
                    float* db_out) {
  if constexpr (kVecs > 1) {
    if (cols <= static_cast<int64_t>((kVecs - 1) * hn::Lanes(DF()))) {
      return WeightsItemFor<GroupTapsFor(kVecs - 1), kVecs - 1>(taps, a, tap_cols, c0, cols,
                                                                row_begin, row_end, dw_out, db_out);
    }
  }
  if constexpr (kTaps > 1) {
    if (taps < static_cast<int64_t>(kTaps)) {
      return WeightsItemFor<kTaps - 1, kVecs>(taps, a, tap_cols, c0, cols, row_begin, row_end,
                                              dw_out, db_out);
    }
  }
  WeightsItem<kTaps, kVecs>(a, tap_cols, c0, cols, row_begin, row_end, dw_out, db_out);
}

// Chunks x channel blocks x tap groups; every item writes its partial (or, with one chunk, dw and
// db directly); the partials are then summed in chunk order.
template <size_t kVecs>
void RunWeights(const Conv2dBwdWeightsArgs& a) {
  const Conv2dProblem& p = *a.p;
  const int64_t taps = p.kh * p.kw;
  const int64_t block = static_cast<int64_t>(kVecs * hn::Lanes(DF()));
  const int64_t blocks = (p.oc + block - 1) / block;
  const int64_t group_max = static_cast<int64_t>(GroupTapsFor(kVecs));
  const int64_t groups = (taps + group_max - 1) / group_max;
  const int64_t group_taps = (taps + groups - 1) / groups;  // balanced
  const int64_t all_rows = p.n * p.oh;
  const int64_t chunk_rows = ChunkRows(p);
  const int64_t chunks = (all_rows + chunk_rows - 1) / chunk_rows;
  // Per chunk: taps rows of C floats (dw), then one row (db).
  const int64_t part_floats = (taps + 1) * p.oc;
  std::vector<float> parts;
  if (chunks > 1) parts.resize(static_cast<size_t>(chunks * part_floats));
  const int64_t items = chunks * blocks * groups;
  const std::vector<TapCols> tap_cols = MakeTapCols(p);
  const auto run_item = [&](int64_t t) {
    const int64_t group = t % groups;
    const int64_t b = (t / groups) % blocks;
    const int64_t chunk = t / (groups * blocks);
    const int64_t tap0 = group * group_taps;
    const int64_t c0 = b * block;
    float* dw_out = a.dw;
    float* db_out = a.db;
    if (chunks > 1) {
      dw_out = parts.data() + chunk * part_floats;
      db_out = dw_out + taps * p.oc;
    }
    WeightsItemFor<GroupTapsFor(kVecs), kVecs>(
        std::min(group_taps, taps - tap0), a, tap_cols.data() + tap0, c0,
        std::min(block, p.oc - c0), chunk * chunk_rows,
        std::min(all_rows, (chunk + 1) * chunk_rows), dw_out + tap0 * p.oc + c0,
        group == 0 && db_out != nullptr ? db_out + c0 : nullptr);
  };
  // The chunk-order sum of element e of the partials (dw elements, then db).
  const auto reduce = [&](int64_t e) {
    float s = parts[static_cast<size_t>(e)];
    for (int64_t c = 1; c < chunks; ++c) s += parts[static_cast<size_t>(c * part_floats + e)];
    if (e < taps * p.oc) {
      a.dw[e] = s;
    } else if (a.db != nullptr) {
      a.db[e - taps * p.oc] = s;
    }
  };
  ParallelForThen(a.threads, items, run_item, chunks > 1 ? part_floats : 0, reduce);
}

// Requires dw != null and N > 0 (conv2d_bwd.cpp routes the other cases to the generic kernel).
void Conv2dBwdDepthwiseWeights(const Conv2dBwdWeightsArgs& a) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t vecs = (a.p->oc + lanes - 1) / lanes;
  if constexpr (kWMaxVecs >= 2) {
    if (vecs >= 2) return RunWeights<2>(a);
  }
  RunWeights<1>(a);
}

}  // namespace

Conv2dBwdWeightsKernel GetConv2dBwdDepthwiseWeightsKernel() {
  return {&Conv2dBwdDepthwiseWeights, hwy::TargetName(HWY_TARGET)};
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dBwdDepthwiseWeightsKernel);

Conv2dBwdWeightsKernel ChooseConv2dBwdDepthwiseWeightsKernel() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dBwdDepthwiseWeightsKernel)();
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
