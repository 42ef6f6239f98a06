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

// A quarter of the random cases on each pinned Highway target.
TEST_P(HighwayTargetTest, RandomConvExact) { RandomConvExact("highway", 4); }
TEST_P(HighwayTargetTest, RandomPoolExact) { RandomPoolExact("highway", 4); }

INSTANTIATE_TEST_SUITE_P(Pinned, HighwayTargetTest, ::testing::ValuesIn(CompiledHighwayTargets()),
                         HighwayTargetParamName);

}  // namespace
}  // namespace convkit::test
