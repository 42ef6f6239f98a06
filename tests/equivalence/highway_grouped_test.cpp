// Grouped convolution with narrow groups in the Highway backend (highway:grouped,
// backends/highway/conv/conv2d_fwd_grouped.cc), on every pinned target (HighwayTargetTest).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/equivalence/grid.hpp"

namespace convkit::test {
namespace {

ConvCase GroupedCase(std::string origin, Dims x, int64_t oc, Conv2dParams params, bool bias,
                     bool relu = false) {
  if (relu) params.activation = Activation::kRelu;
  return {"grouped: " + std::move(origin), x, params, oc, bias};
}

// Around the kernel's choices: groups of 4 and 8 channels (4-channel permutations), ICg < OCg and
// OCg = 2 (one permutation per channel), OCg = the vector width (broadcasts), a last block with
// fewer groups, stride, dilation, asymmetric and large padding, 1x1, batch 0 to 3.
std::vector<ConvCase> GroupedConvCases() {
  return {
      GroupedCase("ResNeXt-like 8 x 4", {1, 9, 11, 32}, 32, MakeConv(3, 1, Pads::uniform(1), 1, 8),
                  true),
      GroupedCase("3 x 8, last block short", {2, 7, 6, 24}, 24,
                  MakeConv(3, 1, Pads::uniform(1), 1, 3), true, true),
      GroupedCase("RegNet-like 13 x 8, stride 2", {1, 7, 6, 104}, 104,
                  MakeConv(3, 2, Pads::uniform(1), 1, 13), false),
      GroupedCase("ICg 2 < OCg 4", {1, 8, 8, 12}, 24, MakeConv(3, 1, Pads::uniform(1), 1, 6), true),
      GroupedCase("OCg 2, 5x5", {1, 5, 7, 6}, 6, MakeConv(5, 1, Pads::uniform(2), 1, 3), true),
      GroupedCase("OCg 16", {1, 5, 5, 32}, 32, MakeConv(3, 1, Pads::uniform(1), 1, 2), true),
      GroupedCase("dilation 2, asymmetric pads", {1, 12, 10, 16}, 16,
                  MakeConv(3, 1, {0, 2, 1, 1}, 2, 4), true),
      GroupedCase("windows in the padding", {1, 3, 3, 16}, 16,
                  MakeConv(3, 1, Pads::uniform(3), 1, 4), true),
      GroupedCase("1x1, batch 3, relu", {3, 4, 5, 16}, 16, MakeConv(1, 1, {}, 1, 4), true, true),
      GroupedCase("batch 0", {0, 6, 6, 32}, 32, MakeConv(3, 1, Pads::uniform(1), 1, 8), true),
  };
}

// The vector width of a Highway target, in floats, as conv/conv2d_fwd_grouped.cpp (RefusesGrouped)
// sees it.
int64_t LanesOf(const std::string& isa) { return isa == "AVX3" ? 16 : isa == "AVX2" ? 8 : 1; }

// Plans take the grouped kernel exactly where it is eligible on the pinned target, and match the
// reference bit for bit (integer data).
TEST_P(HighwayTargetTest, GroupedShapesExact) {
  int index = 0;
  for (const ConvCase& c : GroupedConvCases()) {
    const auto [cs, d, expected] = MakeExactConvCase(c, 2000 + index++);
    Tensor y(expected.dims(), kBackendFill);
    const Conv2d plan(c.params, c.x, d.w, d.b, "highway");
    plan.run(d.x, y);
    const int64_t icg = c.x[3] / c.params.groups, ocg = c.oc / c.params.groups;
    const int64_t lanes = LanesOf(isa());
    const bool eligible = ocg <= lanes && lanes % ocg == 0 && icg <= ocg;
    EXPECT_EQ(plan.impl_name().find(":grouped:") != std::string::npos, eligible)
        << cs << ": " << plan.impl_name();
    EXPECT_TRUE(ImplIsOnIsa(cs, plan.impl_name(), isa()));
    EXPECT_TRUE(CompareTensors(cs, "y (plan)", expected, y));
    if (y.size() > 0) {
      EXPECT_TRUE(NotMostlyZero(cs, "y", y, c.params.activation == Activation::kRelu ? 0.8 : 0.3));
    }
  }
}

}  // namespace
}  // namespace convkit::test
