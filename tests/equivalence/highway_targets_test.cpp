// The Highway backend on every compiled target, pinned one at a time (tests/highway_targets.hpp):
// plans report the target they run on, and the grid (grid.hpp) and a quarter of the random cases
// (random.hpp) match reference bit for bit on each. Winograd and the grouped kernel on each target:
// highway_winograd_test.cpp, highway_grouped_test.cpp.
#include <gtest/gtest.h>

#include "tests/equivalence/grid.hpp"
#include "tests/equivalence/random.hpp"

namespace convkit::test {
namespace {

TEST_P(HighwayTargetTest, PlansRunOnThePinnedTarget) {
  Tensor w({3, 3, 4, 8}, 1.0f);
  const Conv2d conv(MakeConv(3, 1, Pads::uniform(1)), {1, 5, 5, 4}, w, {}, "highway");
  EXPECT_TRUE(ImplIsOnIsa("conv 3x3", conv.impl_name(), isa()));
  Tensor dw_w({3, 3, 1, 8}, 1.0f);
  const Conv2d depthwise(MakeConv(3, 1, Pads::uniform(1), 1, 8), {1, 5, 5, 8}, dw_w, {}, "highway");
  EXPECT_TRUE(ImplIsOnIsa("depthwise 3x3", depthwise.impl_name(), isa()));
  const Pool2d pool(MakePool(PoolMode::kMax, 3, 2, {}), {1, 5, 5, 8}, "highway");
  EXPECT_TRUE(ImplIsOnIsa("max pool 3x3", pool.impl_name(), isa()));
}
TEST_P(HighwayTargetTest, ConvForward) { ConvForwardGrid("highway", isa()); }
TEST_P(HighwayTargetTest, ConvForwardBf16) { ConvForwardGrid("highway", isa(), Fpmath::kBf16); }
TEST_P(HighwayTargetTest, ConvBackward) { ConvBackwardGrid("highway", isa()); }
TEST_P(HighwayTargetTest, PoolForward) { PoolForwardGrid("highway", isa()); }
TEST_P(HighwayTargetTest, PoolBackward) { PoolBackwardGrid("highway", isa()); }

// Plan and one-shot calls of `params` over x dims `x_dims` -> `oc` channels, with bias and a
// residual, bit for bit against the reference on integer data.
void ExpectLayerExact(const Dims& x_dims, const Conv2dParams& params, int64_t oc, Rng& rng,
                      const std::string& isa) {
  const Dims w_dims{params.kernel_h, params.kernel_w, x_dims[3] / params.groups, oc};
  const Dims y_dims = conv2d_output_dims(x_dims, w_dims, params);
  Tensor x(x_dims), w(w_dims), r(y_dims);
  std::vector<float> b(static_cast<size_t>(oc));
  FillIntegers(Span(x), rng, -3, 3);
  FillIntegers(Span(w), rng, -3, 3);
  FillIntegers(Span(r), rng, -9, 9);
  FillIntegers(std::span<float>(b), rng, -5, 5);
  const std::string name =
      to_string(x_dims) + " -> " + std::to_string(oc) + " " + to_string(params) + " on " + isa;
  Tensor y_ref(y_dims), y_plan(y_dims, kBackendFill), y_call(y_dims, kBackendFill);
  conv2d_forward(params, x, w, b, r, y_ref, "reference");
  const Conv2d plan(params, x_dims, w, b, "highway");
  EXPECT_TRUE(ImplIsOnIsa(name, plan.impl_name(), isa));
  plan.run(x, r, y_plan);
  conv2d_forward(params, x, w, b, r, y_call, "highway");
  EXPECT_TRUE(CompareTensors(name + ", plan", "y", y_ref, y_plan));
  EXPECT_TRUE(CompareTensors(name + ", one-shot", "y", y_ref, y_call));
}

// Layers with one output pixel (a classifier at batch 1, a squeeze-and-excitation block's 1x1
// layers) run the implicit GEMM in tiles of one row: C_in 2048 slices the reduction through y,
// C_out 1000 and 70 end in partial blocks, a 3x3 over a padded 1x1 input reads only its centre tap.
TEST_P(HighwayTargetTest, OnePixelLayers) {
  Conv2dParams relu_residual = MakeConv(1, 1, {});
  relu_residual.activation = Activation::kRelu;
  relu_residual.residual_after_activation = true;
  Rng rng(53);
  ExpectLayerExact({1, 1, 1, 2048}, MakeConv(1, 1, {}), 1000, rng, isa());
  ExpectLayerExact({1, 1, 1, 96}, relu_residual, 70, rng, isa());
  ExpectLayerExact({1, 1, 1, 64}, MakeConv(3, 1, Pads::uniform(1)), 70, rng, isa());
  ExpectLayerExact({1, 3, 3, 33}, MakeConv(3, 1, {}), 17, rng, isa());
}

// Pointwise layers with at least 1 MiB of weights and several tiles a panel prefetch the thread's
// next panel (or slice) over a panel's later tiles (Lookahead, AVX3): one slice (512 -> 1024 over
// 7x7, ResNet-50's res5), two slices (2048 -> 160: the next is the same panel's second slice, and
// a last block of 32 columns), batch 2 with relu after the residual and a last block of 16
// columns: bit for bit against the reference.
TEST_P(HighwayTargetTest, PointwiseLayersWithWeightsFromMemory) {
  Conv2dParams relu = MakeConv(1, 1, {});
  relu.activation = Activation::kRelu;
  Rng rng(59);
  ExpectLayerExact({1, 7, 7, 512}, MakeConv(1, 1, {}), 1024, rng, isa());
  ExpectLayerExact({1, 5, 9, 2048}, MakeConv(1, 1, {}), 160, rng, isa());
  ExpectLayerExact({2, 4, 7, 256}, relu, 1040, rng, isa());
}

// Pointwise layers with one or two vectors of output channels and 8-32 input channels (the
// implicit GEMM's narrow pointwise tiles, 24 or 12 pixels on AVX3): every compiled input channel
// count, output channels filling vectors or part of the last, pixel counts below, at and past whole
// tiles (the last tile reads a padded copy), batch 2, a residual after relu and before leaky relu
// (the epilogue's inline and out-of-line paths).
TEST_P(HighwayTargetTest, NarrowPointwiseLayers) {
  Conv2dParams relu_after = MakeConv(1, 1, {});
  relu_after.activation = Activation::kRelu;
  relu_after.residual_after_activation = true;
  Conv2dParams leaky = MakeConv(1, 1, {});
  leaky.activation = Activation::kLeakyRelu;
  leaky.activation_alpha = 0.25f;
  Rng rng(54);
  ExpectLayerExact({1, 7, 9, 16}, MakeConv(1, 1, {}), 16, rng, isa());
  ExpectLayerExact({2, 5, 5, 8}, relu_after, 16, rng, isa());
  ExpectLayerExact({1, 12, 12, 24}, MakeConv(1, 1, {}), 8, rng, isa());
  ExpectLayerExact({1, 3, 3, 32}, relu_after, 5, rng, isa());
  ExpectLayerExact({1, 11, 13, 32}, MakeConv(1, 1, {}), 1, rng, isa());
  ExpectLayerExact({1, 4, 25, 16}, leaky, 12, rng, isa());
  ExpectLayerExact({1, 5, 7, 24}, relu_after, 24, rng, isa());  // two vectors, the last partial
  ExpectLayerExact({2, 3, 9, 8}, MakeConv(1, 1, {}), 32, rng, isa());
}

// Depthwise layers of 512 channels or more whose rows of one channel offset crowd a few L1 sets,
// which copy each block's input rows into a ring (conv2d_fwd_depthwise.cc, RunAllCopiedRows): 3x3,
// 5x5 with asymmetric pads and batch 2, 7x7 with a last block of 16 channels (528), and 8 threads,
// which cut the rows of each block into bands.
TEST_P(HighwayTargetTest, DepthwiseCopiedRows) {
  const auto depthwise = [](int64_t k, Pads pads, int64_t c) { return MakeConv(k, 1, pads, 1, c); };
  Rng rng(55);
  ExpectLayerExact({1, 7, 7, 1024}, depthwise(3, Pads::uniform(1), 1024), 1024, rng, isa());
  ExpectLayerExact({2, 9, 14, 512}, depthwise(5, {2, 1, 0, 2}, 512), 512, rng, isa());
  ExpectLayerExact({1, 8, 112, 528}, depthwise(7, Pads::uniform(3), 528), 528, rng, isa());
  const int threads = num_threads();
  set_num_threads(8);
  ExpectLayerExact({1, 13, 9, 512}, depthwise(3, {1, 0, 1, 1}, 512), 512, rng, isa());
  set_num_threads(threads);
}

// Depthwise dense rows whose last block of channels is one vector or less (16 channels, the last
// 16 of 48, 8 on AVX2), which AVX3 runs in tiles of 16 pixels at stride 1: rows of 37 (two whole
// tiles and 5 left) and 20 pixels, padding on either side, kernels 3, 5 and 7, dilation 2 (two
// sub-grids of a row), and stride 2 (tiles of 8).
TEST_P(HighwayTargetTest, DepthwiseOneVectorRows) {
  const auto depthwise = [](int64_t k, Pads pads, int64_t c, int64_t s = 1, int64_t d = 1) {
    return MakeConv(k, s, pads, d, c);
  };
  Rng rng(56);
  ExpectLayerExact({2, 6, 37, 16}, depthwise(3, {1, 1, 0, 2}, 16), 16, rng, isa());
  ExpectLayerExact({1, 9, 20, 48}, depthwise(5, Pads::uniform(2), 48), 48, rng, isa());
  ExpectLayerExact({1, 8, 40, 24}, depthwise(7, {3, 0, 3, 1}, 24), 24, rng, isa());
  ExpectLayerExact({1, 7, 35, 16}, depthwise(3, Pads::uniform(2), 16, 1, 2), 16, rng, isa());
  ExpectLayerExact({1, 9, 41, 8}, depthwise(3, Pads::uniform(1), 8, 2), 8, rng, isa());
}

// A quarter of the random cases on each pinned Highway target.
TEST_P(HighwayTargetTest, RandomConvExact) { RandomConvExact("highway", 4); }
TEST_P(HighwayTargetTest, RandomPoolExact) { RandomPoolExact("highway", 4); }

INSTANTIATE_TEST_SUITE_P(Pinned, HighwayTargetTest, ::testing::ValuesIn(CompiledHighwayTargets()),
                         HighwayTargetParamName);

}  // namespace
}  // namespace convkit::test
