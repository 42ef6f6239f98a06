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

// Layers with one output pixel (a classifier at batch 1, a squeeze-and-excitation block's 1x1
// layers) run the implicit GEMM in tiles of one row: C_in 2048 slices the reduction through y,
// C_out 1000 and 70 end in partial blocks, a 3x3 over a padded 1x1 input reads only its centre tap.
// Plan and one-shot, with bias, relu and a residual, bit for bit against the reference on integer
// data.
TEST_P(HighwayTargetTest, OnePixelLayers) {
  struct OnePixel {
    Dims x;
    Conv2dParams params;
    int64_t oc;
  };
  Conv2dParams relu_residual = MakeConv(1, 1, {});
  relu_residual.activation = Activation::kRelu;
  relu_residual.residual_after_activation = true;
  const OnePixel cases[] = {{{1, 1, 1, 2048}, MakeConv(1, 1, {}), 1000},
                            {{1, 1, 1, 96}, relu_residual, 70},
                            {{1, 1, 1, 64}, MakeConv(3, 1, Pads::uniform(1)), 70},
                            {{1, 3, 3, 33}, MakeConv(3, 1, {}), 17}};
  Rng rng(53);
  for (const OnePixel& c : cases) {
    const Dims w_dims{c.params.kernel_h, c.params.kernel_w, c.x[3], c.oc};
    Tensor x(c.x), w(w_dims), r({1, 1, 1, c.oc});
    std::vector<float> b(static_cast<size_t>(c.oc));
    FillIntegers(Span(x), rng, -3, 3);
    FillIntegers(Span(w), rng, -3, 3);
    FillIntegers(Span(r), rng, -9, 9);
    FillIntegers(std::span<float>(b), rng, -5, 5);
    const std::string name =
        to_string(c.x) + " -> " + std::to_string(c.oc) + " " + to_string(c.params) + " on " + isa();
    Tensor y_ref({1, 1, 1, c.oc}), y_plan({1, 1, 1, c.oc}, kBackendFill),
        y_call({1, 1, 1, c.oc}, kBackendFill);
    conv2d_forward(c.params, x, w, b, r, y_ref, "reference");
    const Conv2d plan(c.params, c.x, w, b, "highway");
    EXPECT_TRUE(ImplIsOnIsa(name, plan.impl_name(), isa()));
    plan.run(x, r, y_plan);
    conv2d_forward(c.params, x, w, b, r, y_call, "highway");
    EXPECT_TRUE(CompareTensors(name + ", plan", "y", y_ref, y_plan));
    EXPECT_TRUE(CompareTensors(name + ", one-shot", "y", y_ref, y_call));
  }
}

// A quarter of the random cases on each pinned Highway target.
TEST_P(HighwayTargetTest, RandomConvExact) { RandomConvExact("highway", 4); }
TEST_P(HighwayTargetTest, RandomPoolExact) { RandomPoolExact("highway", 4); }

INSTANTIATE_TEST_SUITE_P(Pinned, HighwayTargetTest, ::testing::ValuesIn(CompiledHighwayTargets()),
                         HighwayTargetParamName);

}  // namespace
}  // namespace convkit::test
