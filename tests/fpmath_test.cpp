// fpmath = bf16 (DESIGN §3, §4; issue 19), part of the equivalence binary (it pins Highway targets
// as tests/equivalence/ does):
// - the reference backend defines the mode: x and w rounded to bf16 (nearest even, NaN kept), then
//   the fp32 loops;
// - every backend is bit-exact with it on integer data that bf16 represents (|v| <= 256) and whose
//   partial sums fp32 represents, over channel counts around the vector width (odd C_in: the pair
//   padding) and C_out tails;
// - on real data every backend stays within the stated bound of the exact (double) result:
//     |y - y_exact| <= (2^-7 + (K + 3) 2^-23) * (sum |x||w| + |b|),  K = KH KW C_in / groups;
//   2^-7 covers rounding both operands (bf16 has 8 significant bits: each within 2^-8 relative,
//   the product within 2^-7 + 2^-16), the second term the fp32 accumulation of the K exact bf16
//   products (bf16 x bf16 fits fp32's 24-bit significand) and of the bias;
// - Highway runs its bf16 kernel only on AVX3 with AVX512-BF16; every other pinned target runs the
//   fp32 kernel (the permission), which the implementation name says, with fp32's results.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "api/src/bf16.hpp"
#include "api/src/cpu.hpp"
#include "tests/highway_targets.hpp"
#include "tests/test_util.hpp"

namespace convkit::test {
namespace {

using internal::RoundToBf16;

Conv2dParams Bf16Conv(int64_t k, int64_t s, int64_t pad, int64_t groups = 1) {
  Conv2dParams p;
  p.kernel_h = p.kernel_w = k;
  p.stride_h = p.stride_w = s;
  p.pad = Pads::uniform(pad);
  p.groups = groups;
  p.fpmath = Fpmath::kBf16;
  return p;
}

Dims WeightDims(const Conv2dParams& p, int64_t ic, int64_t oc) {
  return {p.kernel_h, p.kernel_w, ic / p.groups, oc};
}

// The exact result of the unrounded inputs, in double: what the bound is stated against.
std::vector<double> ExactConv(const Conv2dParams& p, const Tensor& x, const Tensor& w,
                              const std::vector<float>& b, const Dims& y_dims, bool abs) {
  const int64_t ih = x.dims()[1], iw = x.dims()[2], ic = x.dims()[3];
  const int64_t oh = y_dims[1], ow = y_dims[2], oc = y_dims[3];
  const int64_t icg = ic / p.groups, ocg = oc / p.groups;
  std::vector<double> y(static_cast<size_t>(num_elements(y_dims)));
  const auto f = [abs](double v) { return abs ? std::fabs(v) : v; };
  size_t i = 0;
  for (int64_t n = 0; n < y_dims[0]; ++n) {
    for (int64_t h = 0; h < oh; ++h) {
      for (int64_t v = 0; v < ow; ++v) {
        for (int64_t c = 0; c < oc; ++c, ++i) {
          double z = b.empty() ? 0.0 : f(b[static_cast<size_t>(c)]);
          const int64_t g = c / ocg;
          for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
            const int64_t r = h * p.stride_h - p.pad.top + kh * p.dilation_h;
            if (r < 0 || r >= ih) continue;
            for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
              const int64_t q = v * p.stride_w - p.pad.left + kw * p.dilation_w;
              if (q < 0 || q >= iw) continue;
              for (int64_t j = 0; j < icg; ++j) {
                z += f(x.data()[((n * ih + r) * iw + q) * ic + g * icg + j]) *
                     f(w.data()[((kh * p.kernel_w + kw) * icg + j) * oc + c]);
              }
            }
          }
          y[i] = z;
        }
      }
    }
  }
  return y;
}

struct Bf16Case {
  Conv2dParams params;
  Dims x{};
  int64_t oc = 0;
  std::string ToString() const {
    return "x " + to_string(x) + " oc " + std::to_string(oc) + " " + to_string(params);
  }
};

// Channel counts around the 16-lane vector (odd C_in exercises the bf16 pair padding), the
// kernels the bf16 kernel is for (1x1, 3x3 s1 and s2, 7x7 s2 stems) and groups.
std::vector<Bf16Case> Bf16Cases() {
  std::vector<Bf16Case> cases;
  for (int64_t ic : {1, 3, 15, 16, 17, 31, 64}) {
    for (int64_t oc : {1, 3, 16, 17, 31, 65}) {
      cases.push_back({Bf16Conv(1, 1, 0), {2, 5, 7, ic}, oc});
      cases.push_back({Bf16Conv(3, 2, 1), {1, 9, 8, ic}, oc});
      if (ic <= 17) cases.push_back({Bf16Conv(7, 2, 3), {1, 11, 10, ic}, oc});
      if (ic % 2 == 0 && oc % 2 == 0) cases.push_back({Bf16Conv(3, 1, 1, 2), {1, 6, 5, ic}, oc});
    }
  }
  cases.push_back({Bf16Conv(3, 1, 1), {1, 13, 13, 64}, 128});  // several blocks of 4 vectors
  return cases;
}

class FpmathTest : public ::testing::TestWithParam<std::string> {
 protected:
  const std::string& backend() const { return GetParam(); }
};

TEST_P(FpmathTest, Bf16ExactOnBf16Integers) {
  // highway's bf16 kernel wherever it can run, also on CPUs where auto keeps fp32 (Intel's).
  const ScopedEnv bf16_on("CONVKIT_HIGHWAY_BF16", "on");
  if (auto why = NotBuiltReason(backend())) GTEST_SKIP() << backend() << ": " << *why;
  Rng rng(0xbf16);
  for (const Bf16Case& c : Bf16Cases()) {
    // |x| <= 256 and |w| <= 16: bf16 holds them, and every partial sum (< 49 * 64 * 4096 < 2^24)
    // is an exact fp32 integer in any order.
    const Dims w_dims = WeightDims(c.params, c.x[3], c.oc);
    Tensor x(c.x), w(w_dims);
    std::vector<float> b(static_cast<size_t>(c.oc));
    FillIntegers(Span(x), rng, -256, 256);
    FillIntegers(Span(w), rng, -16, 16);
    FillIntegers(Span(b), rng, -100, 100);
    const Dims y_dims = conv2d_output_dims(c.x, w_dims, c.params);
    Tensor expected(y_dims, 7777.0f), y(y_dims, -9999.0f), y_plan(y_dims, -9999.0f);
    conv2d_forward(c.params, x, w, b, expected, "reference");
    conv2d_forward(c.params, x, w, b, y, backend());
    ASSERT_TRUE(CompareTensors(c.ToString(), "y (one-shot)", expected, y));
    const Conv2d plan(c.params, c.x, w, b, backend());
    plan.run(x, y_plan);
    ASSERT_TRUE(
        CompareTensors(c.ToString() + " " + plan.impl_name(), "y (plan)", expected, y_plan));
  }
}

// Bias, residual and activation stay fp32 after the bf16 products: the same epilogue as strict.
TEST_P(FpmathTest, Bf16ThroughTheFusedEpilogue) {
  if (auto why = NotBuiltReason(backend())) GTEST_SKIP() << backend() << ": " << *why;
  Rng rng(0xe9109);
  int ran = 0;
  for (Bf16Case c : Bf16Cases()) {
    c.params.activation = Activation::kClip;
    c.params.activation_alpha = -300.0f;
    c.params.activation_beta = 5000.0f;
    c.params.residual_after_activation = c.oc % 2 == 1;
    const Dims w_dims = WeightDims(c.params, c.x[3], c.oc);
    Tensor x(c.x), w(w_dims);
    std::vector<float> b(static_cast<size_t>(c.oc));
    FillIntegers(Span(x), rng, -256, 256);
    FillIntegers(Span(w), rng, -16, 16);
    FillIntegers(Span(b), rng, -100, 100);
    const Dims y_dims = conv2d_output_dims(c.x, w_dims, c.params);
    Tensor r(y_dims), expected(y_dims), y(y_dims, -9999.0f);
    FillIntegers(Span(r), rng, -1000, 1000);
    conv2d_forward(c.params, x, w, b, r, expected, "reference");
    if (RefusalOf([&] { conv2d_forward(c.params, x, w, b, r, y, backend()); })) continue;
    ++ran;
    ASSERT_TRUE(CompareTensors(c.ToString(), "y", expected, y));
  }
  if (ran == 0) GTEST_SKIP() << backend() << " refuses clip with a residual";
}

// The stated bound, on normal data, against the double result of the unrounded inputs.
TEST_P(FpmathTest, Bf16WithinBoundOfExact) {
  // highway's bf16 kernel wherever it can run, also on CPUs where auto keeps fp32 (Intel's).
  const ScopedEnv bf16_on("CONVKIT_HIGHWAY_BF16", "on");
  if (auto why = NotBuiltReason(backend())) GTEST_SKIP() << backend() << ": " << *why;
  Rng rng(0x0b0d);
  for (const Bf16Case& c : Bf16Cases()) {
    const Dims w_dims = WeightDims(c.params, c.x[3], c.oc);
    Tensor x(c.x), w(w_dims);
    std::vector<float> b(static_cast<size_t>(c.oc));
    FillNormal(Span(x), rng);
    FillNormal(Span(w), rng);
    FillNormal(Span(b), rng);
    const Dims y_dims = conv2d_output_dims(c.x, w_dims, c.params);
    Tensor y(y_dims, -9999.0f);
    const Conv2d plan(c.params, c.x, w, b, backend());
    plan.run(x, y);
    const std::vector<double> exact = ExactConv(c.params, x, w, b, y_dims, false);
    const std::vector<double> magnitude = ExactConv(c.params, x, w, b, y_dims, true);
    const double k = static_cast<double>(w_dims[0] * w_dims[1] * w_dims[2]);
    const double factor = 0x1.0p-7 + (k + 3.0) * 0x1.0p-23;
    for (size_t i = 0; i < exact.size(); ++i) {
      const double expected = exact[i];
      ASSERT_LE(std::fabs(y.data()[i] - expected), factor * magnitude[i])
          << c.ToString() << " " << plan.impl_name() << " at "
          << IndexString(y_dims, static_cast<int64_t>(i)) << ": exact " << expected;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryBackend, FpmathTest, ::testing::ValuesIn(BackendsToTest()),
                         BackendParamName);

// The reference defines the mode: bf16 x and w, rounded to nearest even, then the fp32 loops.
TEST(FpmathReference, RoundsInputsToBf16ThenComputesInFp32) {
  EXPECT_EQ(RoundToBf16(1.0f + 0x1.0p-8f), 1.0f);                           // tie to even (down)
  EXPECT_EQ(RoundToBf16(1.0f + 3 * 0x1.0p-8f), 1.0f + 0x1.0p-6f);           // tie to even (up)
  EXPECT_EQ(RoundToBf16(1.0f + 0x1.0p-8f + 0x1.0p-20f), 1.0f + 0x1.0p-7f);  // past the tie
  EXPECT_EQ(RoundToBf16(-std::numeric_limits<float>::max()),                // past the largest bf16
            -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(RoundToBf16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(RoundToBf16(std::bit_cast<float>(0x7f800001u))));  // NaN, not inf

  Rng rng(0x5eed);
  const Conv2dParams bf16 = Bf16Conv(3, 1, 1);
  Conv2dParams strict = bf16;
  strict.fpmath = Fpmath::kStrict;
  const Dims x_dims{1, 6, 5, 7}, w_dims = WeightDims(bf16, 7, 9);
  Tensor x(x_dims), w(w_dims);
  FillNormal(Span(x), rng);
  FillNormal(Span(w), rng);
  Tensor x_rounded = x, w_rounded = w;
  for (float& v : Span(x_rounded)) v = RoundToBf16(v);
  for (float& v : Span(w_rounded)) v = RoundToBf16(v);
  const Dims y_dims = conv2d_output_dims(x_dims, w_dims, bf16);
  Tensor y(y_dims), expected(y_dims), unrounded(y_dims);
  conv2d_forward(bf16, x, w, {}, y, "reference");
  conv2d_forward(strict, x_rounded, w_rounded, {}, expected, "reference");
  conv2d_forward(strict, x, w, {}, unrounded, "reference");
  EXPECT_TRUE(CompareTensors("reference bf16", "y", expected, y));
  EXPECT_FALSE(CompareTensors("reference strict", "y", expected, unrounded));  // it did round
  EXPECT_EQ(Conv2d(bf16, x_dims, w, {}, "reference").impl_name(), "reference:direct_bf16:scalar");
}

TEST(FpmathParams, NamedInTextAndValidated) {
  Conv2dParams p = Bf16Conv(3, 2, 1);
  EXPECT_EQ(to_string(p), "k3x3 s2x2 p1,1,1,1 d1x1 g1 bf16");
  p.fpmath = static_cast<Fpmath>(7);
  try {
    conv2d_output_dims({1, 5, 5, 3}, {3, 3, 3, 4}, p);
    FAIL() << "fpmath 7 was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("params.fpmath"), std::string::npos) << e.what();
  }
}

// ---- Highway: the bf16 kernel only where the instruction is, fp32 elsewhere ----

class FpmathHighwayTarget : public PinnedHighwayTargetTest {};

// CONVKIT_HIGHWAY_BF16 takes auto, on or off; anything else is an error naming it, also on CPUs
// without the instruction (the switch is read before the CPU is asked).
TEST(FpmathHighwaySwitch, UnknownValueIsAnErrorNamingTheVariable) {
  if (NotBuiltReason("highway")) GTEST_SKIP() << "highway not built";
  const ScopedEnv bad("CONVKIT_HIGHWAY_BF16", "yes");
  Conv2dParams params = Bf16Conv(1, 1, 0);
  const Dims x_dims{1, 4, 4, 64};
  const Tensor w(WeightDims(params, 64, 64), 1.0f);
  try {
    const Conv2d plan(params, x_dims, w, {}, "highway");
    ADD_FAILURE() << "CONVKIT_HIGHWAY_BF16=yes was accepted: " << plan.impl_name();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("CONVKIT_HIGHWAY_BF16"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'yes'"), std::string::npos) << e.what();
  }
}

// The cases of Bf16KernelOnlyWithTheInstruction under one CONVKIT_HIGHWAY_BF16 mode: `bf16` says
// whether the bf16 kernel may run, isa names the pinned target.
void CheckBf16Choice(const std::string& isa, bool bf16, Rng& rng) {
  for (const Bf16Case& c : Bf16Cases()) {
    Conv2dParams strict = c.params;
    strict.fpmath = Fpmath::kStrict;
    const Dims w_dims = WeightDims(c.params, c.x[3], c.oc);
    Tensor x(c.x), w(w_dims);
    FillIntegers(Span(x), rng, -256, 256);
    FillIntegers(Span(w), rng, -16, 16);
    const Conv2d bf16_plan(c.params, c.x, w, {}, "highway");
    const Conv2d strict_plan(strict, c.x, w, {}, "highway");
    const std::string name = bf16_plan.impl_name();
    ASSERT_TRUE(name.ends_with(":" + isa)) << c.ToString() << ": " << name;
    // bf16 where the instruction is and it pays (conv2d_fwd_bf16.cpp's Bf16Pays: 64 input
    // channels a group, or 64 outputs over a reduction of 128, or a 1x1 of 24 inputs and 48
    // outputs a group, or a dense unpadded stride-1 1x1 of an even channel count), for every such
    // case with 16 channels or more a group; elsewhere (short kernel rows, depthwise, narrow
    // problems) highway may keep fp32. Without the instruction always fp32.
    const bool depthwise = c.x[3] == c.params.groups && c.oc == c.params.groups;
    const int64_t icg = c.x[3] / c.params.groups, ocg = c.oc / c.params.groups;
    const bool pointwise = w_dims[0] * w_dims[1] == 1;
    const bool flat = pointwise && c.params.stride_h == 1 && c.params.stride_w == 1 &&
                      c.params.pad == Pads{} && c.params.groups == 1 && icg % 2 == 0;
    const bool pays = icg >= 64 || (ocg >= 64 && w_dims[0] * w_dims[1] * icg >= 128) ||
                      (pointwise && icg >= 24 && ocg >= 48) || flat;
    if (bf16 && !depthwise && icg >= 16 && pays) {
      ASSERT_EQ(name, "highway:igemm_bf16:AVX3") << c.ToString();
    } else if (!bf16) {
      ASSERT_EQ(name, strict_plan.impl_name()) << c.ToString();
    }
    const Dims y_dims = bf16_plan.y_dims();
    Tensor y(y_dims), expected(y_dims);
    bf16_plan.run(x, y);
    conv2d_forward(c.params, x, w, {}, expected, "reference");
    ASSERT_TRUE(CompareTensors(c.ToString() + " " + name, "y", expected, y));
    if (name ==
        strict_plan
            .impl_name()) {  // the fallback is fp32: on real data too, the strict plan's bits
      FillNormal(Span(x), rng);
      Tensor y_strict(y_dims);
      bf16_plan.run(x, y);
      strict_plan.run(x, y_strict);
      ASSERT_TRUE(CompareTensors(c.ToString() + " " + name, "y (normals)", y_strict, y));
    }
  }
}

// With the instruction, the bf16 kernel runs and its name says so; without it (other targets, other
// CPUs) the fp32 kernel runs, named as fp32 and giving fp32's bits. Exact vs reference on integers.
TEST_P(FpmathHighwayTarget, Bf16KernelOnlyWithTheInstruction) {
  const bool has_bf16 = isa() == "AVX3" && __builtin_cpu_supports("avx512bf16");
  Rng rng(0xfa11);
  for (const std::string mode : {"auto", "on", "off"}) {
    const ScopedEnv bf16_mode("CONVKIT_HIGHWAY_BF16", mode.c_str());
    // auto keeps fp32 where the CPU's bf16 dot products are slower than its FMAs (Intel's).
    const bool wanted =
        mode == "on" || (mode == "auto" && internal::cpu_vendor() != "GenuineIntel");
    SCOPED_TRACE("CONVKIT_HIGHWAY_BF16=" + mode);
    CheckBf16Choice(isa(), has_bf16 && wanted, rng);
  }
}

INSTANTIATE_TEST_SUITE_P(Pinned, FpmathHighwayTarget, ::testing::ValuesIn(CompiledHighwayTargets()),
                         HighwayTargetParamName);

}  // namespace
}  // namespace convkit::test
