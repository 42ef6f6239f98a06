// The backward convolution's variant lists (conv2d_bwd.hpp; common/variants.hpp): the first entry
// that accepts a problem runs it, and CONVKIT_VERBOSE=2 prints the choice and the refusals.
#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "backends/highway/common/variants.hpp"
#include "backends/highway/conv/conv2d_bwd.hpp"

namespace convkit::internal::highway {
namespace {

struct DataQuery {
  const Conv2dProblem& p;
  DxUse use;
};

struct DataVariant {
  const char* name;
  const char* (*refuses)(const DataQuery& q);
  Conv2dBwdDataKernel (*kernel)();
  DxWeights weights;
};

const char* RefusesDepthwiseData(const DataQuery& q) {
  return q.p.depthwise() ? nullptr : "not depthwise";
}

// The narrow kernel fills whole vectors with KW * IC columns of the im2col gradient; it pays when
// a tile of IC channels would fill at most half a vector (conv1's IC = 3).
const char* RefusesNarrow(const Conv2dProblem& p) {
  if (p.groups != 1) return "groups > 1";
  if (p.dilation_w != 1) return "dilated along w";
  if (p.ic * 2 > ChooseConv2dBwdDataKernel().lanes) return "C_in wider than half a vector";
  return nullptr;
}
const char* RefusesNarrowData(const DataQuery& q) { return RefusesNarrow(q.p); }

// The narrow-groups kernel fills every lane with the dx channels of L / ICg groups; the implicit
// GEMM fills ICg lanes of each vector. Dense problems never take it.
const char* RefusesGroupedData(const DataQuery& q) {
  const Conv2dProblem& p = q.p;
  if (p.groups <= 1 || p.depthwise()) return "not grouped, or depthwise";
  const int64_t lanes = ChooseConv2dBwdDataGroupedKernel().lanes;
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group();
  if (icg > lanes || lanes % icg != 0) return "C_in / groups does not divide the vector width";
  if (ocg > icg) return "C_out / groups > C_in / groups";
  return nullptr;
}

// Stride 1 as a forward convolution (conv2d_bwd_data_as_fwd.cpp), except where a backward kernel
// measured faster: the narrow-groups kernel (which goes first) and the narrow-channel kernel,
// whose forward problem would have C_in output channels. Against the kernels it replaces
// (convkit_bench --ops=conv2d_bwd_data, 2 threads): 1.16x on ResNet-50's layers (3x3 by Winograd
// 1.5-1.9x), 1.5x on narrow 1x1, 1.2x on large depthwise kernels; narrow groups 0.85-0.98x.
// A one-shot call pays the weights' rewrite and the forward plan's packing on every call, and a
// training plan on every set_weights (one per step): where each weight meets fewer than
// kMinUsesPerRewrite dx pixels (ResNet-50's res3-res5 layers at batch 1: 49-784) the passes over
// w cost more than the forward kernel saves (res5 3x3 512: Winograd's packing 9.8 ms against a
// 0.4 ms run). Depthwise weights are only flipped, and the forward depthwise kernel reads them in
// place. Dense 1x1 layers with at most kSmallRewriteWeights weights pay little for the rewrite
// and take the forward kernel from kMinSmallUses dx pixels: a training plan's set_weights and run
// against the implicit GEMM's (one process, the two alternated 40 times, 2 threads) 1.03-1.80x at
// 256-576 pixels and 1.01-2.67x at 784 (MobileNetV3's 72 -> 40 dx at 28x28 2.67x, 96 -> 16
// 2.23x; 64 -> 64 and 256 -> 64 0.97-1.05x), one-shot conv2d_backward 1.06-1.52x; with 55-65 K
// weights (96 -> 576, 128 -> 512) 0.86-0.99x, below 256 pixels 0.69-1.15x.
constexpr int64_t kMinUsesPerRewrite = 1024;
constexpr int64_t kSmallRewriteWeights = 16384;
constexpr int64_t kMinSmallUses = 256;
bool SmallDense1x1(const Conv2dProblem& p) {
  return p.kh == 1 && p.kw == 1 && p.groups == 1 && p.w_size() <= kSmallRewriteWeights &&
         p.n * p.ih * p.iw >= kMinSmallUses;
}
const char* RefusesAsForward(const DataQuery& q) {
  const Conv2dProblem& p = q.p;
  if (!p.depthwise() && RefusesNarrow(p) == nullptr) return "C_in at most half a vector";
  if (q.use != DxUse::kPlan && !p.depthwise() && p.n * p.ih * p.iw < kMinUsesPerRewrite &&
      !SmallDense1x1(p)) {
    return "one-shot or training plan, fewer than 1024 dx pixels per weight (256 for a dense 1x1 "
           "of at most 16384 weights)";
  }
  return RefusesDataAsForward(p);
}

// Kernel <= stride: the 1x1 convolution and a shuffle (conv2d_bwd_data_shuffle.cpp). Against the
// gather kernels it replaces (convkit-run deconv, 2 threads): DBNet's 2x2 s2 24 -> 1 at 320x320
// 3.58 -> 0.58 ms (narrow) and 24 -> 24 at 160x160 0.83 -> 0.53 ms (igemm); ResNet-50's 1x1
// stride-2 projections 1.07-1.34x (plans). With the kernel below the stride, one-shot calls and
// training plans follow the as-forward rule (kMinUsesPerRewrite): the res5 projection's one-shot
// call at batch 1 (49 dy pixels per weight) took 3.8x the implicit GEMM's time.
const char* RefusesShuffleData(const DataQuery& q) {
  const Conv2dProblem& p = q.p;
  const bool tiles = p.kh == p.stride_h && p.kw == p.stride_w;
  if (!tiles && q.use != DxUse::kPlan && p.n * p.ih * p.iw < kMinUsesPerRewrite) {
    return "kernel < stride, one-shot or training plan, fewer than 1024 dx pixels per weight";
  }
  return RefusesDataShuffle(p);
}

const char* AcceptsAll(const DataQuery&) { return nullptr; }

struct WeightsQuery {
  const Conv2dProblem& p;
  bool dw_wanted;
};

struct WeightsVariant {
  const char* name;
  const char* (*refuses)(const WeightsQuery& q);
  Conv2dBwdWeightsKernel (*kernel)();
};

// db alone, or an empty batch, take the generic kernel (its bias pass and zero fill).
const char* RefusesDepthwiseWeights(const WeightsQuery& q) {
  if (!q.p.depthwise()) return "not depthwise";
  if (!q.dw_wanted) return "db only";
  if (q.p.n == 0) return "empty batch";
  return nullptr;
}

// The narrow-groups kernel fills every lane with the dw columns of L / OCg groups; the GEMM fills
// OCg lanes of each vector. At OCg = L both fill whole vectors, and the grouped kernel was still
// the faster (ResNeXt conv4, 32 x 16 channels: 98 against 164 us).
const char* RefusesGroupedWeights(const WeightsQuery& q) {
  const Conv2dProblem& p = q.p;
  if (p.groups <= 1 || p.depthwise()) return "not grouped, or depthwise";
  if (!q.dw_wanted) return "db only";
  if (p.n == 0) return "empty batch";
  const int64_t lanes = Conv2dBwdWeightsGroupedLanes();
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group();
  if (ocg > lanes || lanes % ocg != 0) return "C_out / groups does not divide the vector width";
  if (icg > ocg) return "C_in / groups > C_out / groups";
  if (icg != 1 && icg != 2 && icg != 4 && icg != 8 && icg != 16) {
    return "C_in / groups not 1, 2, 4, 8 or 16";
  }
  return nullptr;
}

const char* AcceptsAllWeights(const WeightsQuery&) { return nullptr; }

}  // namespace

Conv2dBwdDataChoice ChooseConv2dBwdData(const Conv2dProblem& p, DxUse use) {
  static constexpr std::array<DataVariant, 6> kList = {{
      {"bwd_data_shuffle", &RefusesShuffleData, &ChooseConv2dBwdDataKernel, DxWeights::kShuffle},
      {"bwd_data_grouped", &RefusesGroupedData, &ChooseConv2dBwdDataGroupedKernel,
       DxWeights::kGroupedBlocks},
      {"bwd_data_as_fwd", &RefusesAsForward, &ChooseConv2dBwdDataKernel, DxWeights::kForward},
      {"bwd_data_depthwise", &RefusesDepthwiseData, &ChooseConv2dBwdDepthwiseDataKernel,
       DxWeights::kHwio},
      {"bwd_data_narrow", &RefusesNarrowData, &ChooseConv2dBwdNarrowDataKernel, DxWeights::kHwio},
      {"bwd_data_igemm", &AcceptsAll, &ChooseConv2dBwdDataKernel, DxWeights::kTransposedBlocks},
  }};
  const DataQuery q{p, use};
  const DataVariant& v =
      kList[ChooseVariant(use == DxUse::kOneShot ? "conv2d_bwd_data_oneshot" : "conv2d_bwd_data",
                          std::span<const DataVariant>(kList), q,
                          [](const DataQuery& query) { return query.p.to_string(); })];
  return {v.name, v.kernel(), v.weights};
}

Conv2dBwdWeightsChoice ChooseConv2dBwdWeights(const Conv2dProblem& p, bool dw_wanted) {
  static constexpr std::array<WeightsVariant, 3> kList = {{
      {"bwd_weights_depthwise", &RefusesDepthwiseWeights, &ChooseConv2dBwdDepthwiseWeightsKernel},
      {"bwd_weights_grouped", &RefusesGroupedWeights, &ChooseConv2dBwdWeightsGroupedKernel},
      {"bwd_weights_gemm", &AcceptsAllWeights, &ChooseConv2dBwdWeightsKernel},
  }};
  const WeightsQuery q{p, dw_wanted};
  const WeightsVariant& v =
      kList[ChooseVariant("conv2d_bwd_weights", std::span<const WeightsVariant>(kList), q,
                          [](const WeightsQuery& query) { return query.p.to_string(); })];
  return {v.name, v.kernel()};
}

}  // namespace convkit::internal::highway
