// Grouped convolution with narrow groups in the Highway backend, on every pinned target
// (HighwayTargetTest): forward (highway:grouped, backends/highway/conv/conv2d_fwd_grouped.cc),
// backward data (bwd_data_grouped, conv2d_bwd_data_grouped.cc) and weights (bwd_weights_grouped,
// conv2d_bwd_weights_grouped.cc).
#include <gtest/gtest.h>

#include <cstdint>
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

// Around the kernels' choices: groups of 4 and 8 channels (4-channel permutations), ICg < OCg and
// OCg = 2 (one permutation per channel), OCg = the vector width (group_copy at stride 1: tiles of
// one to four rows, rows run one at a time at the padding, wide rows in several tiles with a
// column past OW, slabs of 16 input channels with a short last one, bands of input rows; the
// implicit GEMM at stride 2), OCg = twice the vector
// width (the implicit GEMM in spans of groups), a last block with fewer groups, stride, dilation,
// asymmetric and large padding, 1x1, batch 0 to 3.
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
      // Groups of one vector (group_copy on AVX3; on AVX2, 8 channels a vector, the implicit GEMM
      // in spans of groups: GroupsPerBlock) and of two (spans of 2 on AVX3); a last span with
      // fewer groups, or with one (read as a plain block).
      GroupedCase("OCg 16 x 6, spans of 4 and 2", {1, 7, 9, 96}, 96,
                  MakeConv(3, 1, Pads::uniform(1), 1, 6), true, true),
      GroupedCase("OCg 32 x 3, stride 2, last span one group", {1, 8, 7, 96}, 96,
                  MakeConv(3, 2, Pads::uniform(1), 1, 3), true),
      GroupedCase("ICg 8 -> OCg 16 x 5, 1x1, batch 2", {2, 4, 5, 40}, 80, MakeConv(1, 1, {}, 1, 5),
                  true),
      GroupedCase("OCg 16 x 9, 5x5, asymmetric pads", {1, 6, 8, 144}, 144,
                  MakeConv(5, 1, {2, 1, 0, 2}, 1, 9), false),
      GroupedCase("dilation 2, asymmetric pads", {1, 12, 10, 16}, 16,
                  MakeConv(3, 1, {0, 2, 1, 1}, 2, 4), true),
      GroupedCase("windows in the padding", {1, 3, 3, 16}, 16,
                  MakeConv(3, 1, Pads::uniform(3), 1, 4), true),
      GroupedCase("1x1, batch 3, relu", {3, 4, 5, 16}, 16, MakeConv(1, 1, {}, 1, 4), true, true),
      GroupedCase("batch 0", {0, 6, 6, 32}, 32, MakeConv(3, 1, Pads::uniform(1), 1, 8), true),
      // Wider groups run the implicit GEMM, with a tap table holding group 0's offsets.
      GroupedCase("ICg 12 -> OCg 24, 5x5, stride 2, asymmetric pads", {2, 9, 7, 24}, 48,
                  MakeConv(5, 2, {2, 1, 0, 3}, 1, 2), true),
      // group_copy's geometry (conv2d_fwd_group_copy.hpp) on AVX3; OCg 8 is its case on AVX2.
      GroupedCase("OCg 16, rows of 45: two tiles, a column past OW", {1, 5, 45, 32}, 32,
                  MakeConv(3, 1, Pads::uniform(1), 1, 2), true),
      GroupedCase("OCg 16, 7x7 output: tiles of 4 rows, batch 2", {2, 7, 7, 64}, 64,
                  MakeConv(3, 1, Pads::uniform(1), 1, 4), true, true),
      GroupedCase("OCg 16, one output row", {1, 3, 6, 32}, 32, MakeConv(3, 1, {0, 0, 1, 1}, 1, 2),
                  false),
      GroupedCase("ICg 24 -> OCg 16: a short slab, dilation 2", {1, 11, 12, 48}, 32,
                  MakeConv(3, 1, {1, 2, 0, 1}, 2, 2), true),
      GroupedCase("ICg 40 -> OCg 16, 5x5, asymmetric pads", {1, 9, 10, 80}, 32,
                  MakeConv(5, 1, {2, 1, 2, 0}, 1, 2), true),
      GroupedCase("OCg 16, stride 2: the implicit GEMM", {1, 9, 8, 32}, 32,
                  MakeConv(3, 2, Pads::uniform(1), 1, 2), true),
      GroupedCase("ICg 64 -> OCg 16, 1x1 over 30x40: three bands", {1, 30, 40, 128}, 32,
                  MakeConv(1, 1, {}, 1, 2), true),
      GroupedCase("OCg 8 x 3, stride 2", {1, 9, 10, 24}, 24, MakeConv(3, 2, Pads::uniform(1), 1, 3),
                  true),
      // OCg 8 on AVX3: two groups in half vectors; ICg < OCg with a last block of one group, and
      // an 8x8 kernel whose 64 taps take a second chunk (through the permutations).
      GroupedCase("ICg 4 -> OCg 8 x 5, half vectors", {1, 7, 8, 20}, 40,
                  MakeConv(3, 1, {1, 0, 2, 1}, 1, 5), true),
      GroupedCase("OCg 8 x 2, 8x8: 64 taps in two chunks", {1, 9, 9, 16}, 16,
                  MakeConv(8, 1, Pads::uniform(4), 1, 2), true, true),
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
    const bool eligible = ocg < lanes && lanes % ocg == 0 && icg <= ocg;
    EXPECT_EQ(plan.impl_name().find(":grouped:") != std::string::npos, eligible)
        << cs << ": " << plan.impl_name();
    const bool copies = ocg == lanes && c.params.stride_h == 1 && c.params.stride_w == 1;
    EXPECT_EQ(plan.impl_name().find(":group_copy:") != std::string::npos, copies)
        << cs << ": " << plan.impl_name();
    EXPECT_TRUE(ImplIsOnIsa(cs, plan.impl_name(), isa()));
    EXPECT_TRUE(CompareTensors(cs, "y (plan)", expected, y));
    // One-shot calls take the same kernels (the narrow-groups one packs its weights per call).
    Tensor y_once(expected.dims(), kBackendFill);
    conv2d_forward(c.params, d.x, d.w, d.b, y_once, "highway");
    EXPECT_TRUE(CompareTensors(cs, "y (one-shot)", expected, y_once));
    if (y.size() > 0) {
      EXPECT_TRUE(NotMostlyZero(cs, "y", y, c.params.activation == Activation::kRelu ? 0.8 : 0.3));
    }
  }
}

// Backward, around the kernels' choices (the forward cases above too, for their OCg > ICg): ICg (dx
// lanes per group) 1 to 16 with OCg = ICg (4-channel permutations from 4 up, broadcasts at ICg = 16
// on AVX-512), OCg < ICg (OCg 1, 2, 3: one permutation per channel), OCg > ICg and ICg not dividing
// the vector width (refused), a last block with fewer groups, strides 1 to 3 (dx phases; 1x1 stride
// 2 leaves dx pixels no tap reaches), dilation, asymmetric and large padding, 64 taps (more than
// one tap chunk), batch 0 to 3.
std::vector<ConvCase> GroupedBackwardCases() {
  std::vector<ConvCase> cases = GroupedConvCases();
  for (ConvCase& c : cases) c.params.activation = Activation::kNone;  // backward has none
  for (const int64_t icg : {1, 2, 3, 4, 5, 8, 16}) {
    const int64_t groups = icg == 16 ? 3 : 5;
    cases.push_back(GroupedCase("ICg " + std::to_string(icg), {2, 7, 9, icg * groups}, icg * groups,
                                MakeConv(3, 1, Pads::uniform(1), 1, groups), true));
    cases.push_back(GroupedCase("ICg " + std::to_string(icg) + ", stride 2",
                                {1, 9, 8, icg * groups}, icg * groups,
                                MakeConv(3, 2, Pads::uniform(1), 1, groups), false));
  }
  const std::vector<ConvCase> more = {
      GroupedCase("ResNeXt-like 32 x 4", {1, 6, 7, 128}, 128,
                  MakeConv(3, 1, Pads::uniform(1), 1, 32), false),
      GroupedCase("ResNeXt-like 32 x 8, stride 2", {2, 9, 7, 256}, 256,
                  MakeConv(3, 2, Pads::uniform(1), 1, 32), false),
      GroupedCase("OCg 4 < ICg 8, stride 2", {1, 8, 9, 48}, 24,
                  MakeConv(3, 2, Pads::uniform(1), 1, 6), true),
      GroupedCase("OCg 3 < ICg 4", {1, 6, 6, 28}, 21, MakeConv(3, 1, Pads::uniform(1), 1, 7), true),
      GroupedCase("OCg 1 < ICg 8", {1, 5, 6, 24}, 3, MakeConv(3, 1, Pads::uniform(1), 1, 3), true),
      GroupedCase("OCg 8 < ICg 16, 5x5", {1, 7, 6, 64}, 32, MakeConv(5, 1, Pads::uniform(2), 1, 4),
                  true),
      GroupedCase("OCg 8 > ICg 4", {1, 6, 6, 16}, 32, MakeConv(3, 1, Pads::uniform(1), 1, 4), true),
      GroupedCase("stride 3, asymmetric pads", {1, 11, 10, 32}, 32,
                  MakeConv(3, 3, {2, 0, 1, 2}, 1, 8), true),
      GroupedCase("dilation 2, stride 2", {2, 12, 11, 32}, 32, MakeConv(3, 2, {1, 2, 2, 1}, 2, 4),
                  true),
      GroupedCase("1x1 stride 2: dx pixels no tap reaches", {1, 7, 8, 32}, 32,
                  MakeConv(1, 2, {}, 1, 8), true),
      GroupedCase("8x8: 64 taps", {1, 10, 9, 16}, 16, MakeConv(8, 1, Pads::uniform(3), 1, 4), true),
      GroupedCase("8x8: 64 taps, ICg 16", {1, 9, 10, 48}, 48,
                  MakeConv(8, 1, Pads::uniform(3), 1, 3), true),
      GroupedCase("windows in the padding", {1, 3, 3, 16}, 16,
                  MakeConv(3, 1, Pads::uniform(3), 1, 4), true),
      GroupedCase("batch 3", {3, 4, 5, 16}, 16, MakeConv(3, 1, Pads::uniform(1), 1, 4), true),
      GroupedCase("batch 0", {0, 6, 6, 32}, 32, MakeConv(3, 1, Pads::uniform(1), 1, 8), true),
      // Wider groups run the implicit GEMM, with a tap table holding group 0's offsets.
      GroupedCase("ICg 12 -> OCg 24, 5x5, stride 2, asymmetric pads", {2, 9, 7, 24}, 48,
                  MakeConv(5, 2, {2, 1, 0, 3}, 1, 2), true),
  };
  cases.insert(cases.end(), more.begin(), more.end());
  return cases;
}

// Backward plans take bwd_data_grouped for dx and bwd_weights_grouped for dw exactly where each is
// eligible on the pinned target, and every gradient matches the reference bit for bit (one-shot
// and plans, after set_weights; the gradients asked for rotate per case).
TEST_P(HighwayTargetTest, GroupedBackwardExact) {
  const std::vector<ConvCase> cases = GroupedBackwardCases();
  for (const ConvCase& c : cases) {
    const int64_t icg = c.x[3] / c.params.groups, ocg = c.oc / c.params.groups;
    const int64_t lanes = LanesOf(isa());
    const bool grouped = c.params.groups > 1 && !(icg == 1 && ocg == 1);
    const bool data = grouped && icg <= lanes && lanes % icg == 0 && ocg <= icg;
    const bool weights = grouped && c.x[0] > 0 && ocg <= lanes && lanes % ocg == 0 && icg <= ocg &&
                         (icg == 1 || icg == 2 || icg == 4 || icg == 8 || icg == 16);
    const Tensor w(c.w());
    const Conv2dBackward dx_plan(c.params, c.x, w, {.dx = true, .dw = false, .db = false},
                                 "highway");
    EXPECT_EQ(dx_plan.impl_name().find(":bwd_data_grouped:") != std::string::npos, data)
        << c.ToString() << ": " << dx_plan.impl_name();
    const Conv2dBackward dw_plan(c.params, c.x, w, {.dx = false, .dw = true, .db = true},
                                 "highway");
    EXPECT_EQ(dw_plan.impl_name().find(":bwd_weights_grouped") != std::string::npos, weights)
        << c.ToString() << ": " << dw_plan.impl_name();
  }
  ConvBackwardCases("highway", isa(), cases, 2100);
}

}  // namespace
}  // namespace convkit::test
