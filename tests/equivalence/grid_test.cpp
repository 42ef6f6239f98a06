// The equivalence suite's own machinery can fail: the grid covers what it claims and keeps its data
// exact, and the comparisons, zero trust and fills the grid relies on catch what they must.
#include "tests/equivalence/grid.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "bench/shape_sets.hpp"

namespace convkit::test {
namespace {

// Counts the conv grid's features into `seen`; expects every case's partial sums exact.
void CountConvFeatures(const std::vector<ConvCase>& conv, std::map<std::string, int>& seen) {
  for (const ConvCase& c : conv) {
    const Conv2dParams& p = c.params;
    seen["stride " + std::to_string(p.stride_h)]++;
    seen["dilation " + std::to_string(p.dilation_h)]++;
    seen["kernel " + std::to_string(p.kernel_h)]++;
    seen["channels " + std::to_string(c.x[3])]++;
    seen["batch " + std::to_string(c.x[0])]++;
    seen[p.groups == 1 ? "groups 1" : p.groups == c.x[3] ? "depthwise" : "groups 2"]++;
    if (p.pad.top != p.pad.bottom || p.pad.left != p.pad.right) seen["asymmetric pads"]++;
    if (c.bias) seen["bias"]++;
    if (p.activation == Activation::kRelu) seen["relu"]++;
    // Exactness: |partial sums| <= 9 * taps < 2^24.
    EXPECT_LT(9.0 * p.kernel_h * p.kernel_w * (c.x[3] / p.groups) + 3, 16777216.0) << c.ToString();
  }
}

// Counts the pool grid's features into `seen`; expects every average case's sums exact.
void CountPoolFeatures(const std::vector<PoolCase>& pool, std::map<std::string, int>& seen) {
  for (const PoolCase& c : pool) {
    const Pool2dParams& p = c.params;
    seen[p.mode == PoolMode::kMax ? "max" : "average"]++;
    if (p.ceil_mode) seen["ceil_mode"]++;
    if (p.count_include_pad) seen["count_include_pad"]++;
    if (p.global) seen["global"]++;
    if (p.pad != Pads{}) seen["pool padding"]++;
    if (c.with_nans) seen["NaNs"]++;
    if (p.mode == PoolMode::kAverage) {
      const int64_t wh = p.global ? c.x[1] : p.window_h, ww = p.global ? c.x[2] : p.window_w;
      // The largest sum, 3 * scale * window area, must be exact in fp32.
      EXPECT_LT(static_cast<double>(OddPart(PoolScale(c))) * 3 * wh * ww, 16777216.0)
          << c.ToString();
    }
  }
}

// The grid itself: every case is valid, exact data stay exact, and it covers what it claims.
TEST(EquivalenceGrid, CoversTheParameterSpace) {
  const std::vector<ConvCase> conv = ConvCases();
  const std::vector<PoolCase> pool = PoolCases();
  EXPECT_GE(conv.size(), bench::ConvShapes().size() + kSampledConvCases);
  EXPECT_GE(pool.size(), 2 * bench::PoolShapes().size() + kSampledPoolCases);
  std::map<std::string, int> seen;
  CountConvFeatures(conv, seen);
  CountPoolFeatures(pool, seen);
  for (const char* key : {"stride 1",    "stride 2",        "stride 3",    "dilation 1",
                          "dilation 2",  "dilation 3",      "kernel 1",    "kernel 3",
                          "kernel 5",    "kernel 7",        "channels 1",  "channels 3",
                          "channels 15", "channels 16",     "channels 17", "channels 31",
                          "channels 33", "channels 64",     "batch 0",     "batch 1",
                          "batch 2",     "batch 3",         "groups 1",    "groups 2",
                          "depthwise",   "asymmetric pads", "bias",        "relu",
                          "max",         "average",         "ceil_mode",   "count_include_pad",
                          "global",      "pool padding",    "NaNs"}) {
    EXPECT_GE(seen[key], 2) << "the grid has too few cases with " << key;
  }
}

// ---- The harness can fail: the comparisons and checks the grid relies on ----

TEST(EquivalenceHarness, ExactComparisonSeesEveryBit) {
  Tensor a({1, 2, 3, 4});
  for (int64_t i = 0; i < a.size(); ++i) a.data()[i] = static_cast<float>(i + 1);
  Tensor b = a;
  EXPECT_TRUE(CompareTensors("harness", "same", a, b));
  b(0, 1, 2, 3) = std::nextafter(a(0, 1, 2, 3), 100.0f);  // one ulp
  const ::testing::AssertionResult one_ulp = CompareTensors("harness case", "t", a, b);
  EXPECT_FALSE(one_ulp);
  EXPECT_NE(std::string(one_ulp.message()).find("(n, h, w, c) = (0, 1, 2, 3)"), std::string::npos)
      << one_ulp.message();
  EXPECT_NE(std::string(one_ulp.message()).find("harness case"), std::string::npos);
  EXPECT_NE(std::string(one_ulp.message()).find("expected 24"), std::string::npos)
      << one_ulp.message();
  Tensor z({1, 1, 1, 2}), nz({1, 1, 1, 2});
  nz(0, 0, 0, 1) = -0.0f;
  EXPECT_FALSE(CompareTensors("harness", "+0 vs -0", z, nz));
  Tensor n1({1, 1, 1, 2}, kNaN), n2({1, 1, 1, 2}, -kNaN);
  EXPECT_TRUE(CompareTensors("harness", "NaN == NaN", n1, n2));
  EXPECT_FALSE(CompareTensors("harness", "NaN vs 0", n1, z));
  EXPECT_FALSE(CompareTensors("harness", "dims", a, Tensor({1, 2, 4, 3})));
  // Tolerance mode: relative to max(|expected|, floor).
  Tensor c = a;
  c(0, 0, 0, 0) += 1e-3f;  // 1 -> 1.001
  EXPECT_TRUE(CompareTensors("harness", "tol", a, c, Tolerance::Relative(2e-3, 1.0)));
  EXPECT_FALSE(CompareTensors("harness", "tol", a, c, Tolerance::Relative(5e-4, 1.0)));
  EXPECT_FALSE(CompareVectors("harness", "db", std::vector<float>{1, 2}, std::vector<float>{1, 3}));
}

TEST(EquivalenceHarness, ZeroTrustAndFills) {
  Tensor t({1, 1, 1, 10});
  EXPECT_FALSE(NotMostlyZero("harness", "all zero", t));
  for (int i = 0; i < 4; ++i) t.data()[i] = 1.0f;  // 6 of 10 zero
  EXPECT_FALSE(NotMostlyZero("harness", "60% zero", t, 0.5));
  EXPECT_TRUE(NotMostlyZero("harness", "60% zero", t, 0.7));
  EXPECT_FALSE(NotMostlyZero("harness", "empty", Tensor({0, 1, 1, 1})));

  Rng r1(42), r2(42);
  std::vector<float> a(1000), b(1000);
  FillIntegers(Span(a), r1, -3, 3, true);
  FillIntegers(Span(b), r2, -3, 3, true);
  EXPECT_EQ(a, b) << "fills must be reproducible from the seed";
  EXPECT_EQ(std::count(a.begin(), a.end(), 0.0f), 0);
  EXPECT_EQ(*std::min_element(a.begin(), a.end()), -3.0f);
  EXPECT_EQ(*std::max_element(a.begin(), a.end()), 3.0f);
  FillDistinct(Span(a), r1, 0.125f);
  std::sort(a.begin(), a.end());
  EXPECT_EQ(std::adjacent_find(a.begin(), a.end()), a.end()) << "FillDistinct repeated a value";
  for (int64_t kh = 1; kh <= 7; ++kh) {
    for (int64_t kw = 1; kw <= 7; ++kw) {
      for (int64_t r = 1; r <= kh; ++r) {
        for (int64_t c = 1; c <= kw; ++c) EXPECT_EQ(AverageScale(kh, kw) % (r * c), 0u);
      }
    }
  }
}

}  // namespace
}  // namespace convkit::test
