// The stem variant of the Highway backend (highway:stem, backends/highway/conv/conv2d_fwd_stem.cc)
// on every pinned target (HighwayTargetTest): 1-4 input channels, groups 1, dilation 1,
// K = KH * KW * C_in <= 256, stride_w * C_in in {1, 2, 3, 4, 6, 12}.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/equivalence/grid.hpp"

namespace convkit::test {
namespace {

Conv2dParams Strided(int64_t kh, int64_t kw, int64_t sh, int64_t sw, Pads pad) {
  return {.kernel_h = kh, .kernel_w = kw, .stride_h = sh, .stride_w = sw, .pad = pad};
}

ConvCase StemCase(std::string origin, Dims x, Conv2dParams params, int64_t oc, bool bias) {
  return {"stem: " + std::move(origin), x, params, oc, bias};
}

// Around the kernel's choices: every compiled pixel step, tiles of 4-16 pixels with rows of 12 to
// 43 outputs (a row shorter than one tile, ragged last tiles; each wastes at most a quarter of its
// tiles on every target, as the variant requires), 1-6 vectors of output channels
// with a narrow last one (2, 3, 5, 15, 17, 31, 33, 96 columns), windows crossing the left and right
// padding and kernel rows in the padding, asymmetric pads, stride_h != stride_w, K = 256, batch 0.
std::vector<ConvCase> StemConvCases() {
  return {
      StemCase("MobileNetV3 3x3/2, 3 -> 16", {1, 33, 57, 3}, MakeConv(3, 2, Pads::uniform(1)), 16,
               true),
      StemCase("EfficientNet 3x3/2, 3 -> 17, batch 2", {2, 21, 54, 3},
               MakeConv(3, 2, Pads::uniform(1)), 17, true),
      StemCase("ResNet 7x7/2, 3 -> 31", {2, 23, 23, 3}, MakeConv(7, 2, Pads::uniform(3)), 31,
               false),
      StemCase("ResNet 7x7/2, 3 -> 64", {1, 19, 34, 3}, MakeConv(7, 2, Pads::uniform(3)), 64, true),
      StemCase("ConvNeXt 4x4/4, 3 -> 96", {1, 16, 64, 3}, MakeConv(4, 4, {}), 96, true),
      StemCase("UNet 3x3, 1 -> 64, unpadded", {1, 9, 45, 1}, MakeConv(3, 1, {}), 64, true),
      StemCase("3x3, 1 -> 2", {1, 7, 15, 1}, MakeConv(3, 1, Pads::uniform(1)), 2, false),
      StemCase("5x5/2, 2 -> 15, asymmetric pads", {1, 12, 31, 2}, MakeConv(5, 2, {0, 2, 1, 3}), 15,
               true),
      StemCase("3x3, 4 -> 33", {1, 6, 19, 4}, MakeConv(3, 1, {1, 0, 2, 1}), 33, true),
      StemCase("1x7, 1 -> 3, stride 3x4", {2, 10, 51, 1}, Strided(1, 7, 3, 4, {0, 1, 2, 2}), 3,
               true),
      StemCase("6x4/2x1, 3 -> 32", {1, 14, 14, 3}, Strided(6, 4, 2, 1, {2, 1, 1, 2}), 32, false),
      StemCase("16x16, 1 -> 16 (K = 256)", {1, 18, 27, 1}, MakeConv(16, 1, {}), 16, true),
      StemCase("kernel rows in the padding, 3 -> 16", {1, 2, 10, 3},
               MakeConv(3, 1, Pads::uniform(3)), 16, true),
      StemCase("batch 0", {0, 9, 27, 3}, MakeConv(3, 2, Pads::uniform(1)), 16, true),
  };
}

// Near misses the stem variant refuses (each for one reason): 5 channels, dilation 2, groups 3,
// stride_w * C_in = 8, K = 9 x 9 x 4 > 256, 1-pixel output rows (tiles mostly empty).
std::vector<ConvCase> NotStemCases() {
  return {
      StemCase("5 channels", {1, 9, 9, 5}, MakeConv(3, 2, Pads::uniform(1)), 16, true),
      StemCase("dilation 2", {1, 9, 9, 3}, MakeConv(3, 1, Pads::uniform(2), 2), 16, true),
      StemCase("groups 3", {1, 9, 9, 3}, MakeConv(3, 1, Pads::uniform(1), 1, 3), 6, true),
      StemCase("step 8", {1, 9, 9, 4}, MakeConv(3, 2, Pads::uniform(1)), 16, true),
      StemCase("K 324", {1, 12, 12, 4}, MakeConv(9, 1, {}), 16, true),
      StemCase("1-pixel output rows", {3, 5, 4, 2}, MakeConv(4, 2, {1, 1, 0, 0}), 5, true),
  };
}

// Plans take the stem variant exactly for the stem cases, and match the reference bit for bit.
TEST_P(HighwayTargetTest, StemShapesChooseStemExactly) {
  const std::vector<ConvCase> stems = StemConvCases(), others = NotStemCases();
  int index = 0;
  for (const std::vector<ConvCase>* cases : {&stems, &others}) {
    for (const ConvCase& c : *cases) {
      const auto [cs, d, expected] = MakeExactConvCase(c, 3000 + index++);
      Tensor y(expected.dims(), kBackendFill);
      const Conv2d plan(c.params, c.x, d.w, d.b, "highway");
      plan.run(d.x, y);
      EXPECT_EQ(plan.impl_name().find(":stem:") != std::string::npos, cases == &stems)
          << cs << ": " << plan.impl_name();
      EXPECT_TRUE(ImplIsOnIsa(cs, plan.impl_name(), isa()));
      EXPECT_TRUE(CompareTensors(cs, "y (plan)", expected, y));
      if (y.size() > 0) EXPECT_TRUE(NotMostlyZero(cs, "y", y, 0.3));
    }
  }
}

// An output of at least 32 MiB (UNet's 1 -> 64 at 258x258x128, 34 MB) is written with
// non-temporal stores: through the plain store (bias) and the clamp (relu), plan and one-shot.
TEST_P(HighwayTargetTest, StemStreamedOutputExact) {
  for (const bool relu : {false, true}) {
    ConvCase c =
        StemCase("streamed 3x3, 1 -> 128", {1, 260, 260, 1}, MakeConv(3, 1, {}), 128, true);
    if (relu) c.params.activation = Activation::kRelu;
    const auto [cs, d, expected] = MakeExactConvCase(c, 3100 + relu);
    Tensor y(expected.dims(), kBackendFill), y_plan(expected.dims(), kBackendFill);
    conv2d_forward(c.params, d.x, d.w, d.b, y, "highway");
    const Conv2d plan(c.params, c.x, d.w, d.b, "highway");
    plan.run(d.x, y_plan);
    EXPECT_NE(plan.impl_name().find(":stem:"), std::string::npos) << cs << ": " << plan.impl_name();
    EXPECT_TRUE(ImplIsOnIsa(cs, plan.impl_name(), isa()));
    EXPECT_TRUE(CompareTensors(cs, "y (one-shot)", expected, y));
    EXPECT_TRUE(CompareTensors(cs, "y (plan)", expected, y_plan));
    EXPECT_TRUE(NotMostlyZero(cs, "y", y, relu ? 0.8 : 0.3));
  }
}

// Every activation and residual mode (in place too) on the stem cases, one-shot and through a
// plan run twice: four rounds over the 14 cases give each case four of the 44 post-op variants
// and cover all of them.
TEST_P(HighwayTargetTest, StemPostOpsExact) {
  const std::vector<ConvCase> cases = StemConvCases();
  for (int round = 0; round < 4; ++round) {
    ConvForwardCases("highway", isa(), cases, round * static_cast<int>(cases.size()));
  }
}

}  // namespace
}  // namespace convkit::test
