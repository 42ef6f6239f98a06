// The random cases (random.hpp) on every backend against reference, exact on integers and within
// the stated bound on normals; and the generator and the bound themselves.
#include "tests/equivalence/random.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace convkit::test {
namespace {

class RandomTest : public ::testing::TestWithParam<std::string> {
 protected:
  const std::string& backend() const { return GetParam(); }
};

TEST_P(RandomTest, ConvExact) {
  CONVKIT_SKIP_UNLESS_BUILT(backend());
  RandomConvExact(backend(), 1);
}
TEST_P(RandomTest, PoolExact) {
  CONVKIT_SKIP_UNLESS_BUILT(backend());
  RandomPoolExact(backend(), 1);
}
// A fifth of the cases again on real-valued data.
TEST_P(RandomTest, ConvNormalWithinBound) {
  CONVKIT_SKIP_UNLESS_BUILT(backend());
  RandomConvNormal(backend(), 5);
}
TEST_P(RandomTest, PoolNormalWithinBound) {
  CONVKIT_SKIP_UNLESS_BUILT(backend());
  RandomPoolNormal(backend(), 5);
}

INSTANTIATE_TEST_SUITE_P(VsReference, RandomTest, ::testing::ValuesIn(BackendsToCompare()),
                         BackendParamName);

// The generator: deterministic per (seed, index), valid, and varied.
TEST(RandomCases, ReproducibleValidAndVaried) {
  std::map<std::string, int> seen;
  for (int64_t i = 0; i < 400; ++i) {
    const ConvCase a = RandomConvCase(kDefaultRandomSeed, i),
                   b = RandomConvCase(kDefaultRandomSeed, i);
    EXPECT_EQ(a.ToString(), b.ToString());
    EXPECT_NO_THROW(conv2d_output_dims(a.x, a.w(), a.params)) << a.ToString();
    const PoolCase p = RandomPoolCase(kDefaultRandomSeed, i);
    EXPECT_EQ(p.ToString(), RandomPoolCase(kDefaultRandomSeed, i).ToString());
    EXPECT_NO_THROW(pool2d_output_dims(p.x, p.params)) << p.ToString();
    seen["conv stride " + std::to_string(a.params.stride_w)]++;
    seen["conv dilation " + std::to_string(a.params.dilation_h)]++;
    seen[a.params.groups == 1        ? "groups 1"
         : a.params.groups == a.x[3] ? "depthwise"
                                     : "groups 2"]++;
    seen["batch " + std::to_string(a.x[0])]++;
    if (p.params.ceil_mode) seen["ceil_mode"]++;
    if (p.params.global) seen["global"]++;
    if (p.params.count_include_pad) seen["count_include_pad"]++;
  }
  EXPECT_NE(RandomConvCase(1, 0).ToString(), RandomConvCase(2, 0).ToString());
  for (const char* key : {"conv stride 1", "conv stride 2", "conv stride 3", "conv dilation 2",
                          "conv dilation 3", "groups 1", "groups 2", "depthwise", "batch 0",
                          "batch 3", "ceil_mode", "global", "count_include_pad"}) {
    EXPECT_GE(seen[key], 5) << key;
  }
}

// The bound catches a real error: one element off by a few bound widths fails.
TEST(RandomCases, BoundCanFail) {
  Tensor e({1, 1, 1, 3}), a({1, 1, 1, 3}), bound({1, 1, 1, 3}, 10.0f);
  e.data()[1] = 1.0f;
  a.data()[1] = 1.0f + 1e-5f;
  EXPECT_TRUE(CompareWithinBound("bound", "t", e, a, bound, ReductionFactor(100)));
  a.data()[1] = 1.001f;
  EXPECT_FALSE(CompareWithinBound("bound", "t", e, a, bound, ReductionFactor(100)));
}

}  // namespace
}  // namespace convkit::test
