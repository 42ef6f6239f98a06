// The per-target row of conv2d_bwd_data_shuffle.cpp's depth to space: one dx row from the 1x1
// convolution's output for one dy row, then the epilogue (bias, residual, activation) on its way
// to dx.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstdint>

#include "backends/highway/conv/conv2d_bwd.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv/conv2d_bwd_data_shuffle.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/conv/conv2d_bwd_epilogue-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
namespace {

// dx row dx_row (IW * IC floats) from tap row kh of `cols` (OW pixels of KH * KW * IC floats; null:
// no dy row reaches this dx row): dy pixel ow's KW * IC floats of tap row kh go to dx pixels from
// ow * stride_w - pad.left on, cropped to the row; pixels between and past the dy pixels' taps
// are zeros.
// With an epilogue the row is put together in buf (IW * IC floats) and stored through it (r may
// be dx: it is read before the row is written).
void ShuffleRow(const Conv2dProblem& p, const float* cols, int64_t kh, const DxEpilogue& e,
                float* buf, float* dx_row) {
  float* row = e.empty() ? dx_row : buf;
  const int64_t seg = p.kw * p.ic, stride = p.kh * seg;
  int64_t reached = 0;  // floats of the row written
  if (cols != nullptr) {
    for (int64_t ow = 0; ow < p.ow; ++ow) {
      const int64_t iw0 = ow * p.stride_w - p.pad.left;
      const int64_t lo = std::max<int64_t>(0, -iw0), hi = std::min(p.kw, p.iw - iw0);
      if (lo >= hi) continue;
      const int64_t at = (iw0 + lo) * p.ic;
      std::fill(row + reached, row + at, 0.0f);  // pixels between taps (KW < stride_w)
      std::copy_n(cols + ow * stride + kh * seg + lo * p.ic, (hi - lo) * p.ic, row + at);
      reached = (iw0 + hi) * p.ic;
    }
  }
  std::fill(row + reached, row + p.iw * p.ic, 0.0f);
  if (!e.empty()) ApplyDxEpilogue(e, p.iw, p.ic, buf, dx_row);
}

}  // namespace

ShuffleRowFn GetShuffleRow() { return &ShuffleRow; }

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetShuffleRow);

ShuffleRowFn ChooseShuffleRow() { return HWY_DYNAMIC_DISPATCH(GetShuffleRow)(); }

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
