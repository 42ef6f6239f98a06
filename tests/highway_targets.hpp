// Every compiled Highway target, pinned one at a time: the shared fixture of the suites that run
// the Highway backend on each target (equivalence, fpmath, transpose).
//
// The Highway backend dispatches once per one-shot call or plan creation to the best target the
// CPU supports. hwy::SetSupportedTargetsForTest narrows "supported" to one target, so a test runs
// on each compiled target in turn (EMU128, AVX2, AVX3 here); a target this CPU lacks is a skip
// naming it. The test binary links the same libhwy as the backend and is compiled with the same
// HWY_DISABLED_TARGETS (tests/CMakeLists.txt), so HWY_TARGETS here is the backend's list.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/test_util.hpp"

#if CONVKIT_TEST_HIGHWAY_TARGETS
#include <hwy/targets.h>
#endif

namespace convkit::test {

#if CONVKIT_TEST_HIGHWAY_TARGETS
// HWY_TARGETS as the backend compiles it, one bit per target.
inline std::vector<int64_t> CompiledHighwayTargets() {
  std::vector<int64_t> targets;
  for (int64_t bits = HWY_TARGETS; bits != 0; bits &= bits - 1) targets.push_back(bits & -bits);
  return targets;
}
inline std::string HighwayTargetName(int64_t target) { return hwy::TargetName(target); }
#else
inline std::vector<int64_t> CompiledHighwayTargets() { return {0}; }  // one instance, which skips
inline std::string HighwayTargetName(int64_t) { return "NoHighway"; }
#endif

// For INSTANTIATE_TEST_SUITE_P: names the instance after the target ("AVX3").
inline std::string HighwayTargetParamName(const ::testing::TestParamInfo<int64_t>& info) {
  return HighwayTargetName(info.param);
}

// A test parameterized by a Highway target bit: skipped when highway is not built, the binary was
// built without libhwy or the CPU lacks the target; otherwise that target is the only one the
// backend may dispatch to until the test ends.
class PinnedHighwayTargetTest : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override {
    if (auto why = NotBuiltReason("highway")) GTEST_SKIP() << "highway: " << *why;
#if CONVKIT_TEST_HIGHWAY_TARGETS
    if ((hwy::SupportedTargets() & GetParam()) == 0) {
      GTEST_SKIP() << "Highway target " << isa() << " is compiled but this CPU does not support it";
    }
    hwy::SetSupportedTargetsForTest(GetParam());
    pinned_ = true;
#else
    GTEST_SKIP() << "this test binary was built without libhwy: cannot pin Highway targets";
#endif
  }
  void TearDown() override {
#if CONVKIT_TEST_HIGHWAY_TARGETS
    if (pinned_) hwy::SetSupportedTargetsForTest(0);
#endif
  }
  // The pinned target's name, as plans end their "backend:variant:isa" name with it.
  std::string isa() const { return HighwayTargetName(GetParam()); }

 private:
  bool pinned_ = false;
};

}  // namespace convkit::test
