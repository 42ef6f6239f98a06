// Winograd F(2x2, 3x3) in the Highway backend.
//
// Highway runs eligible problems (3x3, stride 1, dilation 1, groups 1) by Winograd when
// CONVKIT_HIGHWAY_WINOGRAD=on, or when it chooses to under auto (the default). Its transforms
// have only 0, +-1 and +-1/2 entries (the weights are stored scaled by 4, the output unscaled by
// 1/4 exactly), so on the grid's integer data it must match reference bit for bit too. The grid,
// the random cases and the hand-picked shapes below run with it forced on, on every pinned target
// (HighwayTargetTest); non-eligible cases run the direct kernels as usual.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "tests/equivalence/grid.hpp"
#include "tests/equivalence/random.hpp"

namespace convkit::test {
namespace {

constexpr const char* kWinogradEnv = "CONVKIT_HIGHWAY_WINOGRAD";

ConvCase WinogradCase(std::string origin, Dims x, Pads pad, int64_t oc, bool bias,
                      bool relu = false, int64_t dilation_h = 1, int64_t dilation_w = 1) {
  ConvCase c{"winograd: " + std::move(origin), x, MakeConv(3, 1, pad), oc, bias};
  if (relu) c.params.activation = Activation::kRelu;
  c.params.dilation_h = dilation_h;
  c.params.dilation_w = dilation_w;
  return c;
}

// Eligible shapes around the 2x2 tile and the vector width: odd output sizes (ragged right and
// bottom tiles), asymmetric and large padding, 1-output images, channel counts 1, 3, 13, 17, 29
// and several output-channel blocks with a narrow last one.
std::vector<ConvCase> WinogradConvCases() {
  return {
      WinogradCase("ragged 9x11, 13 -> 29", {1, 9, 11, 13}, Pads::uniform(1), 29, true),
      WinogradCase("asymmetric pads, 3 -> 17", {2, 8, 7, 3}, {0, 2, 1, 0}, 17, false),
      WinogradCase("no padding, 1 -> 1", {1, 6, 5, 1}, {}, 1, false),
      WinogradCase("asymmetric pads, relu, 17 -> 13", {3, 5, 9, 17}, {2, 1, 0, 2}, 13, true, true),
      WinogradCase("29 -> 3", {1, 13, 10, 29}, {1, 0, 0, 1}, 3, false),
      WinogradCase("windows in the padding, 16 -> 16", {1, 4, 4, 16}, Pads::uniform(3), 16, true),
      WinogradCase("one output, 31 -> 33", {1, 3, 3, 31}, {}, 33, true),
      WinogradCase("1-pixel input, 5 -> 7", {2, 1, 1, 5}, Pads::uniform(2), 7, false),
      WinogradCase("channel blocks, 64 -> 80", {1, 12, 12, 64}, Pads::uniform(1), 80, true),
      WinogradCase("batch 2, relu, 40 -> 70", {2, 15, 17, 40}, Pads::uniform(1), 70, true, true),
      WinogradCase("batch 0", {0, 6, 6, 8}, Pads::uniform(1), 8, true),
      // U' of 16 x 2048 x 192 floats (24 MiB) in two passes over each thread's tile blocks.
      WinogradCase("U' in passes, 2048 -> 192", {1, 10, 12, 2048}, Pads::uniform(1), 192, true),
      // Dilated: over the sub-grids of x (winograd_subgrid), of unequal sizes when the dilation
      // does not divide the extent.
      WinogradCase("dilation 2, ragged sub-grids, 13 -> 29", {1, 13, 11, 13}, Pads::uniform(2), 29,
                   true, false, 2, 2),
      WinogradCase("dilation 2x3, bottom and right pads not multiples, relu, 17 -> 20",
                   {2, 12, 14, 17}, {2, 1, 3, 0}, 20, true, true, 2, 3),
      WinogradCase("dilation 3, no padding, 1 -> 1", {1, 11, 10, 1}, {}, 1, false, false, 3, 3),
      WinogradCase("dilation 4, windows in the padding, 16 -> 16", {1, 5, 6, 16}, Pads::uniform(8),
                   16, true, false, 4, 4),
      WinogradCase("dilation 2, batch 0", {0, 6, 6, 8}, Pads::uniform(2), 8, true, false, 2, 2),
  };
}

// The variant a case runs: Winograd itself, or through sub-grids when dilated.
const char* WinogradImpl(const ConvCase& c) {
  return c.params.dilation_h > 1 || c.params.dilation_w > 1 ? ":winograd_subgrid:" : ":winograd:";
}

TEST_P(HighwayTargetTest, WinogradShapesExact) {
  const ScopedEnv on(kWinogradEnv, "on");
  int index = 0;
  for (const ConvCase& c : WinogradConvCases()) {
    const auto [cs, d, expected] = MakeExactConvCase(c, 1000 + index++);
    Tensor y(expected.dims(), kBackendFill), y_plan(expected.dims(), kBackendFill);
    conv2d_forward(c.params, d.x, d.w, d.b, y, "highway");
    const Conv2d plan(c.params, c.x, d.w, d.b, "highway");
    plan.run(d.x, y_plan);
    EXPECT_NE(plan.impl_name().find(WinogradImpl(c)), std::string::npos)
        << cs << ": " << plan.impl_name();
    EXPECT_TRUE(ImplIsOnIsa(cs, plan.impl_name(), isa()));
    EXPECT_TRUE(CompareTensors(cs, "y (one-shot)", expected, y));
    EXPECT_TRUE(CompareTensors(cs, "y (plan)", expected, y_plan));
    if (y.size() > 0) {
      const double allowed = c.params.activation == Activation::kRelu ? 0.8 : 0.3;
      EXPECT_TRUE(NotMostlyZero(cs, "y", y, allowed));
    }
  }
}

// The grid (benchmark shapes, hand-picked and sampled cases) and a quarter of the random cases
// with Winograd forced on wherever eligible.
TEST_P(HighwayTargetTest, WinogradConvForwardGrid) {
  const ScopedEnv on(kWinogradEnv, "on");
  ConvForwardGrid("highway", isa());
}
TEST_P(HighwayTargetTest, WinogradRandomConvExact) {
  const ScopedEnv on(kWinogradEnv, "on");
  RandomConvExact("highway", 4);
}

// The variable: on and off force the choice, auto (and unset) lets the backend choose, anything
// else is an error naming the variable and the accepted values.
TEST(Winograd, EnvironmentVariableChoosesTheKernel) {
  CONVKIT_SKIP_UNLESS_BUILT("highway");
  const Dims x_dims{1, 56, 56, 64}, few_channels{1, 9, 9, 3};
  const Tensor w({3, 3, 64, 64}, 1.0f), w3({3, 3, 3, 4}, 1.0f);
  const Conv2dParams params = MakeConv(3, 1, Pads::uniform(1));
  const auto impl = [&](const char* mode, const Dims& x, const Tensor& weights) {
    const ScopedEnv env(kWinogradEnv, mode);
    return Conv2d(params, x, weights, {}, "highway").impl_name();
  };
  EXPECT_NE(impl("on", x_dims, w).find(":winograd:"), std::string::npos);
  EXPECT_NE(impl("on", few_channels, w3).find(":winograd:"), std::string::npos);
  EXPECT_EQ(impl("off", x_dims, w).find(":winograd:"), std::string::npos);
  EXPECT_NE(impl("auto", x_dims, w).find(":winograd:"), std::string::npos) << "a ResNet-50 layer";
  EXPECT_EQ(impl("auto", few_channels, w3).find(":winograd:"), std::string::npos) << "3 channels";
  // Not eligible: stride 2 never runs Winograd.
  {
    const ScopedEnv env(kWinogradEnv, "on");
    EXPECT_EQ(Conv2d(MakeConv(3, 2, Pads::uniform(1)), x_dims, w, {}, "highway")
                  .impl_name()
                  .find(":winograd:"),
              std::string::npos);
  }
  const ScopedEnv bad(kWinogradEnv, "yes");
  try {
    const Conv2d plan(params, x_dims, w, {}, "highway");
    ADD_FAILURE() << "CONVKIT_HIGHWAY_WINOGRAD=yes was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(kWinogradEnv), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("auto, on, off"), std::string::npos) << e.what();
  }
  Tensor x(few_channels, 1.0f), y(conv2d_output_dims(few_channels, w3.dims(), params));
  EXPECT_THROW(conv2d_forward(params, x, w3, {}, y, "highway"), Error);
}

// Dilated 3x3 layers run Winograd over their sub-grids where that saves multiplications (auto), or
// whenever their top and left pads are multiples of the dilation (on); the others run direct.
TEST(Winograd, DilatedLayersRunOnSubgrids) {
  CONVKIT_SKIP_UNLESS_BUILT("highway");
  const Tensor w({3, 3, 64, 128}, 1.0f), narrow({3, 3, 64, 64}, 1.0f);
  const auto impl = [&](const char* mode, const Dims& x, int64_t pad, int64_t dilation,
                        const Tensor& weights) {
    const ScopedEnv env(kWinogradEnv, mode);
    Conv2dParams params = MakeConv(3, 1, Pads::uniform(pad));
    params.dilation_h = params.dilation_w = dilation;
    return Conv2d(params, x, weights, {}, "highway").impl_name();
  };
  const Dims deeplab{1, 28, 28, 64}, aspp{1, 32, 32, 64};
  EXPECT_NE(impl("auto", deeplab, 2, 2, w).find(":winograd_subgrid:"), std::string::npos);
  EXPECT_NE(impl("auto", deeplab, 2, 2, narrow).find(":winograd_subgrid:"), std::string::npos);
  EXPECT_NE(impl("auto", aspp, 6, 6, w).find(":winograd_subgrid:"), std::string::npos);
  // 1.36x fewer multiplications: enough with 128 output channels, not with 64.
  EXPECT_EQ(impl("auto", aspp, 6, 6, narrow).find("winograd"), std::string::npos);
  // Rate 12 on 32x32: 3x3 sub-grids, most taps in the padding.
  EXPECT_EQ(impl("auto", aspp, 12, 12, w).find("winograd"), std::string::npos);
  EXPECT_NE(impl("on", aspp, 12, 12, w).find(":winograd_subgrid:"), std::string::npos);
  // A pad that is not a multiple of the dilation maps sub-grids onto others: direct.
  EXPECT_EQ(impl("on", deeplab, 1, 2, w).find("winograd"), std::string::npos);
  // A dilation past the output's extent (5x5 outputs, dilation 6) would add sub-grids without
  // outputs: direct.
  EXPECT_EQ(impl("on", {1, 5, 5, 64}, 6, 6, w).find("winograd"), std::string::npos);
  EXPECT_EQ(impl("off", deeplab, 2, 2, w).find("winograd"), std::string::npos);
}

// Error bound on real-valued data. Winograd reassociates the products: output (0, 0) of the 1-D
// F(2, 3) is (d0 - d2) g0 + (d1 + d2)(g0 + g1 + g2) / 2 + (d2 - d1)(g0 - g1 + g2) / 2, whose
// rounding errors scale with products of inputs and weights of *different* taps (|d2||g0|, ...),
// so sum |x||w| over the window cannot bound them (it may cancel where those do not). Per axis the
// absolute transforms give each |d_i||g_k| of the output's window a coefficient of at most 2, so
// in 2-D at most 4:
//   |y_winograd - y| <= gamma_L * (4 * B + |b|),  B = sum over ic of (sum of |x| over the 3x3
//   window) * (sum of |w| over the 9 taps),
// with L = IC + 11 roundings on any path (4 in U' = (2G) w (2G)^T, 2 in B^T d B, IC in the FMA
// chain, 4 in A^T M A, 1 for the bias; the 1/4 is exact) and gamma_L = L u / (1 - L u), u = 2^-24
// (Higham §3.1). The direct kernel's error is at most gamma_{9 IC + 1} (sum |x||w| + |b|), and
// sum |x||w| <= B. Both fit the one bound checked here:
//   |y - y_exact| <= c * gamma_K * (B + |b|),  c = 4, K = 9 IC + 3  (IC + 11 <= 9 IC + 3 for IC >=
//   1).
// y_exact and B are computed in double.
struct ExactConv {
  Tensor y;  // rounded to float for the harness; the comparison uses the double values below
  std::vector<double> y_exact;
  std::vector<double> bound;  // B + |b|
};

ExactConv ExactConv3x3(const ConvCase& c, const Tensor& x, const Tensor& w,
                       const std::vector<float>& b) {
  const Dims y_dims = conv2d_output_dims(c.x, c.w(), c.params);
  const int64_t n = c.x[0], ih = c.x[1], iw = c.x[2], ic = c.x[3];
  const int64_t oh = y_dims[1], ow = y_dims[2], oc = c.oc;
  ExactConv r{Tensor(y_dims), {}, {}};
  r.y_exact.assign(static_cast<size_t>(r.y.size()), 0.0);
  r.bound.assign(r.y_exact.size(), 0.0);
  std::vector<double> w_sum(static_cast<size_t>(ic * oc), 0.0);  // sum of |w| over the taps
  for (int64_t t = 0; t < 9; ++t) {
    for (int64_t i = 0; i < ic * oc; ++i)
      w_sum[static_cast<size_t>(i)] += std::fabs(w.data()[t * ic * oc + i]);
  }
  std::vector<double> x_sum(static_cast<size_t>(ic));
  for (int64_t in = 0; in < n; ++in) {
    for (int64_t h = 0; h < oh; ++h) {
      for (int64_t v = 0; v < ow; ++v) {
        std::fill(x_sum.begin(), x_sum.end(), 0.0);
        double* y = r.y_exact.data() + ((in * oh + h) * ow + v) * oc;
        double* bound = r.bound.data() + ((in * oh + h) * ow + v) * oc;
        for (int64_t kh = 0; kh < 3; ++kh) {
          for (int64_t kw = 0; kw < 3; ++kw) {
            const int64_t xh = h - c.params.pad.top + kh, xw = v - c.params.pad.left + kw;
            if (xh < 0 || xh >= ih || xw < 0 || xw >= iw) continue;
            const float* xp = x.data() + ((in * ih + xh) * iw + xw) * ic;
            const float* wp = w.data() + (kh * 3 + kw) * ic * oc;
            for (int64_t i = 0; i < ic; ++i) {
              x_sum[static_cast<size_t>(i)] += std::fabs(xp[i]);
              for (int64_t o = 0; o < oc; ++o) y[o] += static_cast<double>(xp[i]) * wp[i * oc + o];
            }
          }
        }
        for (int64_t o = 0; o < oc; ++o) {
          for (int64_t i = 0; i < ic; ++i) {
            bound[o] += x_sum[static_cast<size_t>(i)] * w_sum[static_cast<size_t>(i * oc + o)];
          }
          if (!b.empty()) {
            y[o] += b[static_cast<size_t>(o)];
            bound[o] += std::fabs(b[static_cast<size_t>(o)]);
          }
        }
      }
    }
  }
  return r;
}

TEST(Winograd, ErrorWithinBoundOnNormals) {
  CONVKIT_SKIP_UNLESS_BUILT("highway");
  const std::vector<ConvCase> cases = {
      WinogradCase("normals 13 -> 29", {1, 20, 21, 13}, Pads::uniform(1), 29, true),
      WinogradCase("normals 1 -> 5", {2, 9, 8, 1}, {0, 1, 2, 0}, 5, true),
      WinogradCase("normals 64 -> 64", {1, 14, 14, 64}, Pads::uniform(1), 64, false),
      WinogradCase("normals 256 -> 32", {1, 10, 9, 256}, Pads::uniform(1), 32, true),
  };
  int index = 0;
  for (const ConvCase& c : cases) {
    Rng rng(CaseSeed(2000 + index++));
    const ConvData d = MakeConvData(c, rng, FillNormals);
    const ExactConv exact = ExactConv3x3(c, d.x, d.w, d.b);
    const double k = 9.0 * static_cast<double>(c.x[3]) + 3.0;
    const double gamma = k * kUnitRoundoff / (1.0 - k * kUnitRoundoff);
    const double c_factor = 4.0;
    for (const char* mode : {"on", "off"}) {
      const ScopedEnv env(kWinogradEnv, mode);
      Tensor y(exact.y.dims(), kBackendFill);
      conv2d_forward(c.params, d.x, d.w, d.b, y, "highway");
      double worst = 0.0;  // largest error / allowance
      int64_t worst_i = 0;
      for (int64_t i = 0; i < y.size(); ++i) {
        const double err =
            std::fabs(static_cast<double>(y.data()[i]) - exact.y_exact[static_cast<size_t>(i)]);
        const double ratio = err / (c_factor * gamma * exact.bound[static_cast<size_t>(i)]);
        if (ratio > worst) {
          worst = ratio;
          worst_i = i;
        }
      }
      EXPECT_LE(worst, 1.0) << c.ToString() << " winograd=" << mode << ": worst at "
                            << IndexString(y.dims(), worst_i) << ": y "
                            << FloatString(y.data()[worst_i]) << ", exact "
                            << exact.y_exact[static_cast<size_t>(worst_i)];
    }
  }
}

}  // namespace
}  // namespace convkit::test
