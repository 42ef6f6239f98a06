// Per-target store of dx rows with the transposed convolution's post-ops (DxEpilogue,
// conv2d_bwd.hpp): bias, then the residual and activation of post_ops-inl.h (VecPostOps), applied
// to the accumulators on their way to memory while they are still in registers. Rows sit at any
// offset in dx (phases, strides), so the store is per row, with the bias and post-op constants
// set up once per tile. Included once per target through foreach_target.h, hence the toggle guard
// (Highway's skeleton-inl.h pattern).
#if defined(CONVKIT_HIGHWAY_CONV2D_BWD_EPILOGUE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CONVKIT_HIGHWAY_CONV2D_BWD_EPILOGUE_INL_H_
#undef CONVKIT_HIGHWAY_CONV2D_BWD_EPILOGUE_INL_H_
#else
#define CONVKIT_HIGHWAY_CONV2D_BWD_EPILOGUE_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/post_ops-inl.h"
#include "backends/highway/common/vec-inl.h"
#include "backends/highway/conv/conv2d_bwd.hpp"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// One tile's epilogue over channels [c0, c0 + kVecs * lanes), the last vector masked by `last`.
template <size_t kVecs>
class DxTileEpilogue {
 public:
  DxTileEpilogue(const DxEpilogue& e, int64_t c0, MF last)
      : e_(e), post_(DF(), e.post_ops != nullptr ? *e.post_ops : PostOps{}), last_(last) {
    fused_ = e.r != nullptr || post_.has_elementwise();
    if (e.b != nullptr) {
      LoadVecs<kVecs>(e.b + c0, last, bias_);
    } else {
      ZeroVecs(bias_);
    }
  }

  // Stores one row of accumulators at `row` (a pointer into dx; the residual is read at the same
  // offset of r, before the row is written, so r may equal dx). Adding +0 when there is no bias
  // changes no bit of a sum that started at +0.
  HWY_INLINE void Store(const VF (&acc)[kVecs], float* HWY_RESTRICT row) const {
    if (e_.empty()) return StoreVecs<kVecs>(acc, last_, row);
    const DF d;
    VF v[kVecs];
    HWY_UNROLL(4)
    for (size_t j = 0; j < kVecs; ++j) v[j] = hn::Add(acc[j], bias_[j]);
    if (fused_) {
      VF rv[kVecs];
      const bool has_r = e_.r != nullptr;
      if (has_r) {
        LoadVecs<kVecs>(e_.r + (row - e_.dx), last_, rv);
      } else {
        ZeroVecs(rv);
      }
      HWY_UNROLL(4)
      for (size_t j = 0; j < kVecs; ++j) v[j] = post_.Apply(d, v[j], rv[j], has_r);
    }
    StoreVecs<kVecs>(v, last_, row);
  }

 private:
  const DxEpilogue& e_;
  VecPostOps<DF> post_;
  MF last_;
  bool fused_ = false;
  VF bias_[kVecs];
};

// The epilogue over `count` contiguous pixels of `channels` floats each: reads the sums from `src`
// (rows written without the epilogue, e.g. by the narrow kernel's col2im), stores to `dx` (which
// may be src). The residual is read at dx's offset in r. Channels dividing the vector width (1, 2,
// 4, 8) go whole vectors at a time, lanes / channels pixels per vector with the bias repeated:
// one channel per vector wasted 15 of 16 lanes on a sigmoid (a text detector's 1-channel map).
HWY_INLINE void ApplyDxEpilogue(const DxEpilogue& e, int64_t count, int64_t channels,
                                const float* src, float* dx) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  if (channels < lanes && lanes % channels == 0) {
    HWY_ALIGN float tiled[hn::MaxLanes(DF())];
    DxEpilogue flat = e;
    if (e.b != nullptr) {
      for (int64_t i = 0; i < lanes; ++i) tiled[i] = e.b[i % channels];
      flat.b = tiled;
    }
    const int64_t total = count * channels;
    const DxTileEpilogue<1> whole(flat, 0, hn::FirstN(d, static_cast<size_t>(lanes)));
    int64_t i = 0;
    for (; i + lanes <= total; i += lanes) {
      const VF acc[1] = {hn::LoadU(d, src + i)};
      whole.Store(acc, dx + i);
    }
    if (i < total) {
      const MF m = hn::FirstN(d, static_cast<size_t>(total - i));
      const DxTileEpilogue<1> tail(flat, 0, m);
      const VF acc[1] = {hn::MaskedLoad(m, d, src + i)};
      tail.Store(acc, dx + i);
    }
    return;
  }
  for (int64_t c0 = 0; c0 < channels; c0 += lanes) {
    const MF m = hn::FirstN(d, static_cast<size_t>(std::min(lanes, channels - c0)));
    const DxTileEpilogue<1> epilogue(e, c0, m);
    for (int64_t i = 0; i < count; ++i) {
      const VF acc[1] = {hn::MaskedLoad(m, d, src + i * channels + c0)};
      epilogue.Store(acc, dx + i * channels + c0);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#endif  // CONVKIT_HIGHWAY_CONV2D_BWD_EPILOGUE_INL_H_ toggle
