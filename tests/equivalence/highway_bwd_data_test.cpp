// Backward data of stride-1 convolutions run as forward convolutions in the Highway backend
// (bwd_data_as_fwd, backends/highway/conv/conv2d_bwd_data_as_fwd.cpp), on every pinned target
// (HighwayTargetTest): dx = conv(dy, w flipped with its channels swapped) with pads
// (K - 1) * dilation - pad, run by whichever forward variant the forward plan picks (Winograd,
// depthwise, direct).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/equivalence/grid.hpp"

namespace convkit::test {
namespace {

ConvCase DataCase(std::string origin, Dims x, int64_t oc, Conv2dParams params) {
  return {"bwd data: " + std::move(origin), x, params, oc, /*bias=*/true};
}

// A 1 x kw kernel, stride 1, pads p.
Conv2dParams MakeRowConv(int64_t kw, Pads p) {
  Conv2dParams params = MakeConv(1, 1, p);
  params.kernel_w = kw;
  return params;
}

// Around the rewrite: each pad from 0 to (K - 1) * dilation and past it, asymmetric pads,
// dilation, 1x1 and 3x3 (the forward takes Winograd for 3x3 s1 dense), 5x5, 1xK, channel counts
// around the vector widths, depthwise and grouped, the narrow-channel path (C_in 3), strides,
// batch 0 to 3. A backward plan rewrites w on every set_weights, so below 1024 dx pixels (N * H *
// W) per weight it keeps the backward kernels unless depthwise, or a dense 1x1 of at most 16384
// weights with 256 or more: most cases have 1024 or more.
std::vector<ConvCase> DataCases() {
  return {
      DataCase("1x1, 24 -> 72", {1, 32, 33, 24}, 72, MakeConv(1, 1, {})),
      DataCase("1x1, 72 -> 24, batch 2", {2, 23, 24, 72}, 24, MakeConv(1, 1, {})),
      DataCase("3x3 pad 1, 17 -> 33", {1, 33, 31, 17}, 33, MakeConv(3, 1, Pads::uniform(1))),
      DataCase("3x3 pad 0, 16 -> 16", {3, 19, 18, 16}, 16, MakeConv(3, 1, {})),
      DataCase("3x3 asymmetric pads 0/2/1/0, 31 -> 15", {1, 35, 30, 31}, 15,
               MakeConv(3, 1, {0, 2, 1, 0})),
      DataCase("5x5 dilation 2, pads 1/4/3/0, 9 -> 20", {1, 34, 31, 9}, 20,
               MakeConv(5, 1, {1, 4, 3, 0}, 2)),
      DataCase("1x7, pad 3 along w, 12 -> 8", {1, 32, 33, 12}, 8, MakeRowConv(7, {0, 0, 3, 3})),
      DataCase("depthwise 3x3, 48 channels", {2, 9, 8, 48}, 48,
               MakeConv(3, 1, Pads::uniform(1), 1, 48)),
      DataCase("depthwise 7x7 pad 3, 19 channels", {1, 11, 12, 19}, 19,
               MakeConv(7, 1, Pads::uniform(3), 1, 19)),
      DataCase("grouped 3x3, 4 groups of 8", {1, 32, 33, 32}, 32,
               MakeConv(3, 1, Pads::uniform(1), 1, 4)),
      DataCase("grouped 1x1, 2 groups, 40 -> 24", {1, 33, 32, 40}, 24, MakeConv(1, 1, {}, 1, 2)),
      DataCase("1 channel (depthwise and narrow), 3x3", {1, 12, 10, 1}, 1,
               MakeConv(3, 1, Pads::uniform(1))),
      DataCase("batch 0", {0, 6, 6, 16}, 16, MakeConv(3, 1, Pads::uniform(1))),
      DataCase("1x1, 72 -> 40, 783 dx pixels (small weights)", {1, 27, 29, 72}, 40,
               MakeConv(1, 1, {})),
      DataCase("1x1, 24 -> 24, 256 dx pixels (small weights)", {1, 16, 16, 24}, 24,
               MakeConv(1, 1, {})),
      // Not rewritten: under 1024 dx pixels, pads beyond (K - 1) * dilation, strides, 3 input
      // channels (narrow path).
      DataCase("3x3 at 9x11: 99 dx pixels per weight", {1, 9, 11, 17}, 33,
               MakeConv(3, 1, Pads::uniform(1))),
      DataCase("1x1, 24 -> 24, 255 dx pixels", {1, 15, 17, 24}, 24, MakeConv(1, 1, {})),
      DataCase("1x1, 128 -> 136, 783 dx pixels (17408 weights)", {1, 27, 29, 128}, 136,
               MakeConv(1, 1, {})),
      DataCase("3x3 pad 3: windows in the padding", {1, 32, 32, 16}, 16,
               MakeConv(3, 1, Pads::uniform(3))),
      DataCase("3x3 stride 2", {1, 9, 9, 16}, 16, MakeConv(3, 2, Pads::uniform(1))),
      DataCase("1x1 stride 2", {1, 8, 8, 32}, 16, MakeConv(1, 2, {})),
      // The shuffle (kernel <= stride): 1x1 stride 2 at 1024+ dx pixels, 2x2 stride 3 below them
      // (refused: the weights' rewrite per set_weights), 2x2 stride 2 (taken at any size).
      DataCase("1x1 stride 2, 1088 dx pixels", {1, 32, 34, 32}, 16, MakeConv(1, 2, {})),
      DataCase("2x2 stride 3, 99 dx pixels", {1, 9, 11, 16}, 8, MakeConv(2, 3, {})),
      DataCase("2x2 stride 2, 99 dx pixels", {1, 9, 11, 16}, 8, MakeConv(2, 2, {})),
      DataCase("3 input channels", {1, 32, 32, 3}, 32, MakeConv(3, 1, Pads::uniform(1))),
  };
}

// Where a backward plan takes the rewrite (conv2d_bwd_data_as_fwd.cpp's RefusesDataAsForward and
// conv2d_bwd_variants.cpp's RefusesAsForward): stride 1, each pad within 0..(K - 1) * dilation, at
// least 1024 dx pixels unless depthwise (256 for a dense 1x1 of at most 16384 weights), and
// neither the narrow-groups kernel (ICg dividing the vector, OCg <= ICg) nor the narrow-channel
// kernel (dense, C_in at most half a vector) first.
bool AsForward(const ConvCase& c, int64_t lanes) {
  const Conv2dParams& p = c.params;
  if (p.stride_h != 1 || p.stride_w != 1) return false;
  const int64_t ic = c.x[3], icg = ic / p.groups, ocg = c.oc / p.groups;
  const bool depthwise = p.groups == ic && p.groups == c.oc;
  if (p.groups > 1 && !depthwise && icg <= lanes && lanes % icg == 0 && ocg <= icg) return false;
  if (p.groups == 1 && !depthwise && p.dilation_w == 1 && ic * 2 <= lanes) return false;
  const int64_t pixels = c.x[0] * c.x[1] * c.x[2];
  const bool small_1x1 =
      p.groups == 1 && p.kernel_h == 1 && p.kernel_w == 1 && ic * c.oc <= 16384 && pixels >= 256;
  if (!depthwise && pixels < 1024 && !small_1x1) return false;
  const int64_t reach_h = (p.kernel_h - 1) * p.dilation_h,
                reach_w = (p.kernel_w - 1) * p.dilation_w;
  for (const int64_t pad : {p.pad.top, p.pad.bottom}) {
    if (pad < 0 || pad > reach_h) return false;
  }
  for (const int64_t pad : {p.pad.left, p.pad.right}) {
    if (pad < 0 || pad > reach_w) return false;
  }
  return true;
}

// Where a backward plan takes the shuffle (conv2d_bwd_data_shuffle.cpp's RefusesDataShuffle and
// conv2d_bwd_variants.cpp's RefusesShuffleData): one group, no dilation, the kernel at most the
// stride and a stride above 1, a batch, and with the kernel below the stride 1024 dx pixels or
// more.
bool Shuffles(const ConvCase& c) {
  const Conv2dParams& p = c.params;
  if (p.groups != 1 || p.dilation_h != 1 || p.dilation_w != 1 || c.x[0] == 0) return false;
  if (p.kernel_h > p.stride_h || p.kernel_w > p.stride_w) return false;
  if (p.stride_h * p.stride_w == 1) return false;
  const bool tiles = p.kernel_h == p.stride_h && p.kernel_w == p.stride_w;
  return tiles || c.x[0] * c.x[1] * c.x[2] >= 1024;
}

int64_t LanesOf(const std::string& isa) { return isa == "AVX3" ? 16 : isa == "AVX2" ? 8 : 1; }

// dx plans take bwd_data_as_fwd and bwd_data_shuffle exactly where each applies, and every
// gradient matches the
// reference bit for bit (one-shot and plans, after set_weights; the gradients asked for rotate).
TEST_P(HighwayTargetTest, BackwardDataAsForwardExact) {
  const std::vector<ConvCase> cases = DataCases();
  for (const ConvCase& c : cases) {
    const Conv2dBackward plan(c.params, c.x, Tensor(c.w()), {.dx = true, .dw = false, .db = false},
                              "highway");
    EXPECT_EQ(plan.impl_name().find(":bwd_data_as_fwd_") != std::string::npos,
              AsForward(c, LanesOf(isa())))
        << c.ToString() << ": " << plan.impl_name();
    EXPECT_EQ(plan.impl_name().find(":bwd_data_shuffle_") != std::string::npos, Shuffles(c))
        << c.ToString() << ": " << plan.impl_name();
  }
  ConvBackwardCases("highway", isa(), cases, 2300);
}

}  // namespace
}  // namespace convkit::test
