// Per-target store of dx rows with the transposed convolution's post-ops (DxEpilogue,
// conv2d_bwd.hpp): bias, then the activation, applied to the accumulators on their way to memory
// while they are still in registers. Included once per target through foreach_target.h, hence the
// toggle guard (Highway's skeleton-inl.h pattern).
#if defined(CONVKIT_HIGHWAY_CONV2D_BWD_EPILOGUE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CONVKIT_HIGHWAY_CONV2D_BWD_EPILOGUE_INL_H_
#undef CONVKIT_HIGHWAY_CONV2D_BWD_EPILOGUE_INL_H_
#else
#define CONVKIT_HIGHWAY_CONV2D_BWD_EPILOGUE_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/conv2d_bwd.hpp"
#include "backends/highway/conv2d_fwd-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// The epilogue's bias for channels [c0, c0 + kVecs * lanes) (the last vector masked by `last`), or
// zeros without one.
template <size_t kVecs>
HWY_INLINE void LoadDxBias(const DxEpilogue& e, int64_t c0, MF last, VF (&bias)[kVecs]) {
  if (e.b != nullptr) return LoadVecs<kVecs>(e.b + c0, last, bias);
  HWY_UNROLL(4)
  for (size_t j = 0; j < kVecs; ++j) bias[j] = hn::Zero(DF());
}

// max(v, 0) keeping NaN and -0 as v has them, as the reference's relu (v < 0 is false for both).
HWY_INLINE VF ReluKeepNaN(VF v) {
  const DF d;
  return hn::IfThenZeroElse(hn::Lt(v, hn::Zero(d)), v);
}

// Stores one dx row of kVecs vectors at `row`, the last masked by `last`, after the epilogue: the
// bias (from LoadDxBias; adding +0 when there is none changes no bit of a sum that started at +0)
// and the activation.
template <size_t kVecs>
HWY_INLINE void StoreDxRow(const VF (&acc)[kVecs], const DxEpilogue& e, const VF (&bias)[kVecs],
                           MF last, float* HWY_RESTRICT row) {
  if (e.empty()) return StoreVecs<kVecs>(acc, last, row);
  VF v[kVecs];
  HWY_UNROLL(4)
  for (size_t j = 0; j < kVecs; ++j) {
    v[j] = hn::Add(acc[j], bias[j]);
    if (e.activation == Activation::kRelu) v[j] = ReluKeepNaN(v[j]);
  }
  StoreVecs<kVecs>(v, last, row);
}

// The epilogue over `count` contiguous pixels of `channels` floats each (rows written without it,
// e.g. by the narrow kernel's col2im), in place.
HWY_INLINE void ApplyDxEpilogue(const DxEpilogue& e, int64_t count, int64_t channels, float* dx) {
  if (e.empty()) return;
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t i = 0; i < count; ++i, dx += channels) {
    for (int64_t c0 = 0; c0 < channels; c0 += lanes) {
      const MF m = hn::FirstN(d, static_cast<size_t>(std::min(lanes, channels - c0)));
      VF acc[1] = {hn::MaskedLoad(m, d, dx + c0)};
      VF bias[1];
      LoadDxBias<1>(e, c0, m, bias);
      StoreDxRow<1>(acc, e, bias, m, dx + c0);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#endif  // CONVKIT_HIGHWAY_CONV2D_BWD_EPILOGUE_INL_H_ toggle
