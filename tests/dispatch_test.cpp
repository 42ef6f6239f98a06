// Backend selection (DESIGN §5): the argument beats CONVKIT_BACKEND beats auto; unknown and
// not-built names are errors listing the names available; CONVKIT_VERBOSE prints one line a call.
#include <gtest/gtest.h>
#include <omp.h>
#include <stdlib.h>

#include <algorithm>
#include <string>

#include "convkit/convkit.hpp"

namespace convkit {
namespace {

// Sets an environment variable for the scope of one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old, had_old_ = true;
    setenv(name, value, 1);
  }
  ~ScopedEnv() { had_old_ ? setenv(name_, old_.c_str(), 1) : unsetenv(name_); }

 private:
  const char* name_;
  std::string old_;
  bool had_old_ = false;
};

const Conv2dParams kParams{.kernel_h = 3, .kernel_w = 3, .pad = Pads::uniform(1)};
const Dims kX = {1, 6, 6, 3};
const Dims kW = {3, 3, 3, 5};

std::string BackendOf(const std::string& impl_name) {
  return impl_name.substr(0, impl_name.find(':'));
}

std::string ConvBackend(std::string_view requested) {
  const Tensor w(kW, 1.0f);
  return BackendOf(Conv2d(kParams, kX, w, {}, requested).impl_name());
}

bool IsBuilt(const std::string& name) {
  const auto names = available_backends();
  return std::find(names.begin(), names.end(), name) != names.end();
}

TEST(Dispatch, ReferenceIsAlwaysBuiltAndListedLast) {
  const auto names = available_backends();
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names.back(), "reference");
  EXPECT_EQ(all_backends().size(), 3u);
}

TEST(Dispatch, NotBuiltBackendsSayWhy) {
  for (const BackendInfo& info : all_backends()) {
    if (IsBuilt(info.name)) {
      EXPECT_TRUE(info.not_built_reason.empty()) << info.name;
    } else {
      EXPECT_NE(info.not_built_reason.find("not built, because"), std::string::npos)
          << info.name << ": " << info.not_built_reason;
    }
  }
}

TEST(Dispatch, ExplicitNameIsUsed) {
  for (const std::string& name : available_backends()) {
    try {
      EXPECT_EQ(ConvBackend(name), name);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
    }
  }
}

TEST(Dispatch, AutoTakesTheFirstBuiltBackendThatRunsTheCall) {
  std::string expected;
  for (const std::string& name : available_backends()) {
    try {
      ConvBackend(name);
      expected = name;
      break;
    } catch (const Error& e) {
      ASSERT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
    }
  }
  EXPECT_EQ(ConvBackend("auto"), expected);
  EXPECT_EQ(ConvBackend(""), expected);
  if (available_backends().size() > 1) EXPECT_NE(expected, "reference");
}

TEST(Dispatch, EnvironmentVariableChoosesWhenNoArgument) {
  const ScopedEnv env("CONVKIT_BACKEND", "reference");
  EXPECT_EQ(ConvBackend(""), "reference");
}

TEST(Dispatch, ArgumentBeatsEnvironmentVariable) {
  const ScopedEnv env("CONVKIT_BACKEND", "no-such-backend");
  EXPECT_EQ(ConvBackend("reference"), "reference");
}

TEST(Dispatch, UnknownNameListsAvailableNames) {
  std::string names = "auto";
  for (const std::string& name : available_backends()) names += ", " + name;
  try {
    ConvBackend("cudnn");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBackendUnavailable);
    EXPECT_EQ(std::string(e.what()),
              "Conv2d: backend: expected one of " + names + ", given 'cudnn'");
  }
}

TEST(Dispatch, UnknownNameInEnvironmentSaysWhereItCameFrom) {
  const ScopedEnv env("CONVKIT_BACKEND", "cudnn");
  try {
    ConvBackend("");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBackendUnavailable);
    EXPECT_NE(std::string(e.what()).find("Conv2d: backend (from CONVKIT_BACKEND): expected one of"),
              std::string::npos)
        << e.what();
  }
}

TEST(Dispatch, NotBuiltNameIsAnErrorNotAFallback) {
  for (const BackendInfo& info : all_backends()) {
    if (info.not_built_reason.empty()) continue;
    try {
      ConvBackend(info.name);
      FAIL() << info.name << " ran although not built";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kBackendUnavailable);
      EXPECT_NE(std::string(e.what()).find("'" + info.name + "', which is not built, because"),
                std::string::npos)
          << e.what();
    }
    return;
  }
  GTEST_SKIP() << "every backend is built into this copy";
}

TEST(Dispatch, VerbosePrintsOneLinePerCall) {
  const ScopedEnv env("CONVKIT_VERBOSE", "1");
  const Tensor x(kX, 1.0f), w(kW, 1.0f);
  Tensor y({1, 6, 6, 5});
  testing::internal::CaptureStderr();
  conv2d_forward(kParams, x, w, {}, y, "reference");
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_EQ(out.rfind("convkit_verbose,conv2d_fwd,reference:direct:scalar,x=1x6x6x3 w=3x3x3x5 "
                      "y=1x6x6x5 s1x1 p1,1,1,1 d1x1 g1,",
                      0),
            0u)
      << out;
  EXPECT_NE(out.find(" ms\n"), std::string::npos) << out;
}

TEST(Dispatch, VerbosePlanPrintsOnEachRun) {
  const ScopedEnv env("CONVKIT_VERBOSE", "1");
  const Pool2d plan(Pool2dParams{.window_h = 2, .window_w = 2, .stride_h = 2, .stride_w = 2},
                    {1, 4, 4, 2}, "reference");
  const Tensor x({1, 4, 4, 2}, 1.0f);
  Tensor y(plan.y_dims());
  testing::internal::CaptureStderr();
  plan.run(x, y);
  plan.run(x, y);
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
  EXPECT_NE(out.find("convkit_verbose,pool2d_fwd,reference:direct:scalar,max x=1x4x4x2"),
            std::string::npos)
      << out;
}

TEST(Dispatch, QuietWithoutVerbose) {
  const ScopedEnv env("CONVKIT_VERBOSE", "0");
  const Tensor x(kX, 1.0f), w(kW, 1.0f);
  Tensor y({1, 6, 6, 5});
  testing::internal::CaptureStderr();
  conv2d_forward(kParams, x, w, {}, y, "reference");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST(Threads, SetNumThreadsOverridesAndResets) {
  set_num_threads(1);
  EXPECT_EQ(num_threads(), 1);
  set_num_threads(3);
  EXPECT_EQ(num_threads(), 3);
  set_num_threads(0);
  EXPECT_EQ(num_threads(), omp_get_max_threads());
}

}  // namespace
}  // namespace convkit
