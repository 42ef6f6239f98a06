// Backend selection (DESIGN §5): the argument beats CONVKIT_BACKEND beats auto; unknown and
// not-built names are errors listing the names available; CONVKIT_VERBOSE prints one line a call.
#include <gtest/gtest.h>
#include <omp.h>
#include <stdlib.h>

#include <algorithm>
#include <string>

#include "api/src/auto_table.hpp"
#include "api/src/cpu.hpp"
#include "convkit/convkit.hpp"
#include "tests/test_util.hpp"

namespace convkit {
namespace {

using test::ScopedEnv;

const Conv2dParams kParams{.kernel_h = 3, .kernel_w = 3, .pad = Pads::uniform(1)};
const Dims kX = {1, 6, 6, 3};
const Dims kW = {3, 3, 3, 5};
// 5 input channels: not a stem, so the Highway backend's choice (igemm) is the same on every CPU.
const Dims kX5 = {1, 6, 6, 5};
const Dims kW5 = {3, 3, 5, 5};

std::string BackendOf(const std::string& impl_name) {
  return impl_name.substr(0, impl_name.find(':'));
}

std::string ConvBackend(std::string_view requested) {
  const Tensor w(kW, 1.0f);
  return BackendOf(Conv2d(kParams, kX, w, {}, requested).impl_name());
}

// The implementation a one-shot call under auto ran, from its CONVKIT_VERBOSE=1 line.
std::string OneShotImpl(std::string_view op) {
  const ScopedEnv verbose("CONVKIT_VERBOSE", "1");
  const Tensor x({2, 9, 9, 17}, 1.0f), w({3, 3, 17, 8}, 1.0f), dy({2, 9, 9, 8}, 1.0f);
  const Conv2dParams conv{.kernel_h = 3, .kernel_w = 3, .pad = Pads::uniform(1)};
  const Pool2dParams pool{.window_h = 3, .window_w = 3, .stride_h = 2, .stride_w = 2};
  testing::internal::CaptureStderr();
  if (op == "conv2d_fwd") {
    Tensor y({2, 9, 9, 8});
    conv2d_forward(conv, x, w, {}, y, "auto");
  } else if (op == "conv2d_bwd") {
    Tensor dx(x.dims()), dw(w.dims());
    conv2d_backward(conv, x, w, dy, {.dx = dx.view(), .dw = dw.view()}, "auto");
  } else {
    Tensor y(pool2d_output_dims(x.dims(), pool)), dx(x.dims());
    if (op == "pool2d_fwd") pool2d_forward(pool, x, y, "auto");
    if (op == "pool2d_bwd") pool2d_backward(pool, x, y, dx, "auto");
  }
  const std::string out = testing::internal::GetCapturedStderr();
  const size_t start = out.find(',', out.find(',') + 1) + 1;  // after "convkit_verbose,<op>,"
  return out.substr(start, out.find(',', start) - start);
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

// auto (DESIGN §5): a built backend, never reference while another runs the op, whichever mode.
TEST(Dispatch, AutoNeverPicksReferenceWhenAnotherRuns) {
  if (available_backends().size() < 2) GTEST_SKIP() << "only reference is built";
  for (const char* mode : {"table", "measure"}) {
    const ScopedEnv env("CONVKIT_AUTO", mode);
    for (const std::string& requested : {std::string("auto"), std::string()}) {
      const std::string conv = ConvBackend(requested);
      EXPECT_NE(conv, "reference") << mode;
      EXPECT_TRUE(IsBuilt(conv)) << conv;
      const Pool2d pool(Pool2dParams{.window_h = 3, .window_w = 3, .stride_h = 2, .stride_w = 2},
                        {2, 9, 9, 17}, requested);
      EXPECT_NE(BackendOf(pool.impl_name()), "reference") << mode;
    }
    // One-shot calls, forward and backward: the verbose line names the implementation.
    for (const std::string& impl : {OneShotImpl("conv2d_fwd"), OneShotImpl("conv2d_bwd"),
                                    OneShotImpl("pool2d_fwd"), OneShotImpl("pool2d_bwd")}) {
      EXPECT_EQ(impl.find("reference"), std::string::npos) << mode << ": " << impl;
      EXPECT_FALSE(impl.empty()) << mode;
    }
  }
}

// The backend auto would take; then that backend refuses when its plan is created (the test-only
// CONVKIT_TEST_REFUSE), and auto falls through to the next one, saying so at verbose level 2.
TEST(Dispatch, AutoFallsThroughWhenABackendRefusesAtCreation) {
  const std::string first = ConvBackend("auto");
  const ScopedEnv refuse("CONVKIT_TEST_REFUSE", first.c_str());
  const ScopedEnv verbose("CONVKIT_VERBOSE", "2");
  testing::internal::CaptureStderr();
  const std::string next = ConvBackend("auto");
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_NE(next, first);
  if (available_backends().size() > 2) EXPECT_NE(next, "reference");
  EXPECT_NE(out.find("refused: " + first + ": refused at creation (CONVKIT_TEST_REFUSE)"),
            std::string::npos)
      << out;
  // An explicit choice is not auto: the injection does not touch it.
  EXPECT_EQ(ConvBackend(first), first);
}

TEST(Dispatch, AutoErrorListsEveryBackendsReason) {
  std::string all;
  for (const std::string& name : available_backends()) all += (all.empty() ? "" : ",") + name;
  const ScopedEnv refuse("CONVKIT_TEST_REFUSE", all.c_str());
  for (const char* mode : {"table", "measure"}) {
    const ScopedEnv env("CONVKIT_AUTO", mode);
    try {
      ConvBackend("auto");
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
      const std::string what = e.what();
      EXPECT_EQ(what.rfind("Conv2d: backend: expected a built backend that runs this problem, "
                           "given auto, refused by every backend: ",
                           0),
                0u)
          << what;
      for (const std::string& name : available_backends()) {
        EXPECT_NE(what.find(name + ": refused at creation (CONVKIT_TEST_REFUSE)"),
                  std::string::npos)
            << name << ": " << what;
      }
    }
  }
}

// CONVKIT_AUTO=measure times the candidates at the first creation for a problem and reuses the
// choice afterwards: the verbose level 2 line says which happened (no timing decides the test).
TEST(Dispatch, MeasureTimesOnceThenUsesTheCache) {
  const ScopedEnv env("CONVKIT_AUTO", "measure");
  const ScopedEnv verbose("CONVKIT_VERBOSE", "2");
  const Conv2dParams params{.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2};
  const Dims x_dims = {1, 17, 15, 31};  // a problem no other test creates
  const Tensor w({3, 3, 31, 16}, 0.5f);
  testing::internal::CaptureStderr();
  const Conv2d first(params, x_dims, w, {}, "auto");
  const Conv2d second(params, x_dims, w, {}, "auto");
  const std::string out = testing::internal::GetCapturedStderr();
  const size_t measured = out.find(",measured: ");
  const size_t cached = out.find(",measured earlier (cached): ");
  ASSERT_NE(measured, std::string::npos) << out;
  ASSERT_NE(cached, std::string::npos) << out;
  EXPECT_LT(measured, cached) << out;
  EXPECT_EQ(out.find(",measured: ", measured + 1), std::string::npos) << "measured twice: " << out;
  for (const std::string& name : available_backends()) {
    if (name != "reference") EXPECT_NE(out.find(name + " ", measured), std::string::npos) << out;
  }
  EXPECT_EQ(first.impl_name(), second.impl_name());
  EXPECT_NE(BackendOf(first.impl_name()), "reference");
  // The result is right: every backend agrees bit for bit on integer-valued data.
  const Tensor x(x_dims, 2.0f);
  Tensor y(first.y_dims()), expected(first.y_dims());
  first.run(x, y);
  Conv2d(params, x_dims, w, {}, "reference").run(x, expected);
  EXPECT_EQ(std::vector<float>(y.data(), y.data() + y.size()),
            std::vector<float>(expected.data(), expected.data() + expected.size()));
}

// Backward plans are timed too (DESIGN §5: measure mode times the candidates at plan creation):
// a Conv2dBackward plan for dx, dw and db makes two choices under auto (backward data, backward
// weights), a Pool2dBackward plan one; each line says what was measured, and the plans compute
// the reference's gradients.
TEST(Dispatch, MeasureTimesBackwardPlans) {
  const ScopedEnv env("CONVKIT_AUTO", "measure");
  const ScopedEnv verbose("CONVKIT_VERBOSE", "2");
  const Conv2dParams params{.kernel_h = 3, .kernel_w = 3, .stride_h = 1, .stride_w = 1};
  const Dims x_dims = {1, 13, 11, 19};  // problems no other test creates
  const Tensor w({3, 3, 19, 12}, 0.5f);
  Pool2dParams pool;
  pool.mode = PoolMode::kMax;
  pool.window_h = pool.window_w = 3;
  pool.stride_h = pool.stride_w = 2;
  testing::internal::CaptureStderr();
  const Conv2dBackward conv(params, x_dims, w, {.dx = true, .dw = true, .db = true}, "auto");
  const Pool2dBackward pooling(pool, x_dims, "auto");
  const std::string out = testing::internal::GetCapturedStderr();
  int measured = 0;
  for (size_t at = out.find(",measured: "); at != std::string::npos;
       at = out.find(",measured: ", at + 1)) {
    ++measured;
  }
  EXPECT_EQ(measured, 3) << out;
  EXPECT_NE(BackendOf(conv.impl_name()), "reference") << conv.impl_name();
  EXPECT_NE(BackendOf(pooling.impl_name()), "reference") << pooling.impl_name();
  const Tensor x(x_dims, 2.0f);
  const Tensor dy(conv.y_dims(), 1.0f);
  Tensor dx(x_dims), dw(w.dims()), dx_ref(x_dims), dw_ref(w.dims());
  std::vector<float> db(12), db_ref(12);
  conv.run(x, dy, {.dx = dx.view(), .dw = dw.view(), .db = std::span<float>(db)});
  Conv2dBackward(params, x_dims, w, {.dx = true, .dw = true, .db = true}, "reference")
      .run(x, dy, {.dx = dx_ref.view(), .dw = dw_ref.view(), .db = std::span<float>(db_ref)});
  EXPECT_EQ(std::vector<float>(dx.data(), dx.data() + dx.size()),
            std::vector<float>(dx_ref.data(), dx_ref.data() + dx_ref.size()));
  EXPECT_EQ(std::vector<float>(dw.data(), dw.data() + dw.size()),
            std::vector<float>(dw_ref.data(), dw_ref.data() + dw_ref.size()));
  EXPECT_EQ(db, db_ref);
}

TEST(Dispatch, InvalidAutoModeIsAnErrorNamingTheVariable) {
  const ScopedEnv env("CONVKIT_AUTO", "fastest");
  try {
    ConvBackend("auto");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(std::string(e.what()),
              "Conv2d: CONVKIT_AUTO: expected table or measure (or unset), given 'fastest'");
  }
  EXPECT_EQ(ConvBackend("reference"), "reference") << "an explicit choice does not read it";
}

TEST(Dispatch, VerboseLevelTwoSaysWhy) {
  const ScopedEnv verbose("CONVKIT_VERBOSE", "2");
  testing::internal::CaptureStderr();
  const std::string chosen = ConvBackend("auto");
  const std::string out = testing::internal::GetCapturedStderr();
  // A line of its own (the chosen backend may print its own choice line before it).
  EXPECT_NE(("\n" + out)
                .find("\nconvkit_verbose,auto,conv2d_fwd,x=1x6x6x3 w=3x3x3x5 y=1x6x6x5 "
                      "s1x1 p1,1,1,1 d1x1 g1," +
                      chosen + ","),
            std::string::npos)
      << out;
  EXPECT_TRUE(out.find(",rule: ") != std::string::npos ||
              out.find(",no rule for conv_fwd k3 dense ic3 oc5 spatial36 n1 s1 t") !=
                  std::string::npos)
      << out;
  const ScopedEnv level1("CONVKIT_VERBOSE", "1");
  testing::internal::CaptureStderr();
  ConvBackend("auto");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "") << "level 1 prints runs, not choices";
}

// The table auto follows is the one measured on this CPU's vendor, if there is one, else the first;
// each table names where it comes from and holds at least one rule (a never-matching one when no
// rule qualified).
TEST(Dispatch, AutoFollowsTheTableOfTheCpusVendor) {
  const auto tables = internal::auto_tables();
  ASSERT_FALSE(tables.empty());
  for (const internal::AutoTable& table : tables) {
    EXPECT_EQ(&internal::auto_table_for(table.vendor), &table) << table.vendor;
    EXPECT_FALSE(table.rules.empty()) << table.vendor;
    EXPECT_NE(table.source.find("tools/make_auto_table.py on "), std::string_view::npos)
        << table.source;
  }
  EXPECT_EQ(&internal::auto_table_for("NoSuchVendor"), &tables.front());
  EXPECT_EQ(&internal::auto_table_for(""), &tables.front());
  const internal::AutoTable& own = internal::auto_table_for(internal::cpu_vendor());
  EXPECT_EQ(internal::auto_rules().data(), own.rules.data());
  EXPECT_EQ(internal::auto_rules_source(), own.source);
#if defined(__x86_64__) || defined(__i386__)
  EXPECT_EQ(internal::cpu_vendor().size(), 12u) << internal::cpu_vendor();
#endif
}

// auto tells plans from one-shot calls (their costs differ, so the table fits them apart and the
// measure cache keeps them apart): the features a one-shot call's why-line names end in
// "one-shot", a plan's do not. The seed-size problem is below every rule's work floor.
TEST(Dispatch, AutoTellsOneShotCallsFromPlans) {
  const ScopedEnv verbose("CONVKIT_VERBOSE", "2");
  const std::string features = "no rule for conv_fwd k3 dense ic3 oc5 spatial36 n1 s1 t";
  testing::internal::CaptureStderr();
  ConvBackend("auto");
  const std::string plan = testing::internal::GetCapturedStderr();
  const size_t at_plan = plan.find(features);
  ASSERT_NE(at_plan, std::string::npos) << plan;
  EXPECT_EQ(plan.find(" one-shot", at_plan), std::string::npos) << plan;

  const Tensor x(kX, 1.0f), w(kW, 1.0f);
  Tensor y(conv2d_output_dims(kX, kW, kParams));
  testing::internal::CaptureStderr();
  conv2d_forward(kParams, x, w, {}, y, "auto");
  const std::string one_shot = testing::internal::GetCapturedStderr();
  const size_t at = one_shot.find(features);
  ASSERT_NE(at, std::string::npos) << one_shot;
  EXPECT_NE(one_shot.find(" one-shot: highway", at), std::string::npos) << one_shot;
}

// conv2d_backward under auto chooses dx's backend and dw's separately; the gradients are those of
// the reference backend, bit for bit on integer-valued data.
TEST(Dispatch, AutoBackwardMatchesReference) {
  const Conv2dParams params{.kernel_h = 3, .kernel_w = 3, .pad = Pads::uniform(1)};
  const Dims x_dims = {2, 7, 5, 17}, w_dims = {3, 3, 17, 16};
  Tensor x(x_dims), w(w_dims), dy({2, 7, 5, 16});
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(i % 5) - 2.0f;
  for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = static_cast<float>(i % 3) - 1.0f;
  for (int64_t i = 0; i < dy.size(); ++i) dy.data()[i] = static_cast<float>(i % 7) - 3.0f;
  const auto grads = [&](std::string_view backend) {
    std::vector<std::vector<float>> g = {std::vector<float>(num_elements(x_dims)),
                                         std::vector<float>(num_elements(w_dims)),
                                         std::vector<float>(16)};
    conv2d_backward(params, x, w, dy,
                    {.dx = TensorView{g[0].data(), x_dims},
                     .dw = TensorView{g[1].data(), w_dims},
                     .db = std::span<float>(g[2])},
                    backend);
    return g;
  };
  const std::vector<std::vector<float>> expected = grads("reference");
  for (const char* mode : {"table", "measure"}) {
    const ScopedEnv env("CONVKIT_AUTO", mode);
    const std::vector<std::vector<float>> got = grads("auto");
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], expected[i]) << mode << ", " << i;
  }
}

// A backward plan under auto chooses dx's backend and dw/db's separately, as the one-shot call
// does (one backend for both ran oneDNN's 40x slower depthwise dw where its dx was the faster), and
// gives the reference's bits on integer data in both modes.
TEST(Dispatch, AutoBackwardPlanChoosesPerPass) {
  const Conv2dParams params{.kernel_h = 5,
                            .kernel_w = 5,
                            .stride_h = 2,
                            .stride_w = 2,
                            .pad = Pads::uniform(2),
                            .groups = 24};
  const Dims x_dims = {1, 23, 21, 24}, w_dims = {5, 5, 1, 24}, y_dims = {1, 12, 11, 24};
  Tensor x(x_dims), w(w_dims), dy(y_dims);
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(i % 5) - 2.0f;
  for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = static_cast<float>(i % 3) - 1.0f;
  for (int64_t i = 0; i < dy.size(); ++i) dy.data()[i] = static_cast<float>(i % 7) - 3.0f;
  const auto grads = [&](const Conv2dBackward& plan) {
    std::vector<std::vector<float>> g = {std::vector<float>(num_elements(x_dims)),
                                         std::vector<float>(num_elements(w_dims)),
                                         std::vector<float>(24)};
    plan.run(x, dy,
             {.dx = TensorView{g[0].data(), x_dims},
              .dw = TensorView{g[1].data(), w_dims},
              .db = std::span<float>(g[2])});
    return g;
  };
  const auto expected = grads(Conv2dBackward(params, x_dims, w, {}, "reference"));
  for (const char* mode : {"table", "measure"}) {
    const ScopedEnv env("CONVKIT_AUTO", mode);
    const Conv2dBackward plan(params, x_dims, w, {}, "auto");
    const Conv2dBackward data(params, x_dims, w, {.dx = true, .dw = false, .db = false}, "auto");
    const Conv2dBackward weights(params, x_dims, w, {.dx = false, .dw = true, .db = true}, "auto");
    EXPECT_EQ(plan.impl_name(), data.impl_name() + " + " + weights.impl_name()) << mode;
    EXPECT_EQ(grads(plan), expected) << mode;
  }
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

// The Highway backend chooses among its variants through one ordered list: at level 2 a plan's
// creation names the variant that runs and why each earlier one refused; the plan's name agrees.
TEST(Dispatch, VerboseLevelTwoNamesTheHighwayVariant) {
  const auto names = available_backends();
  if (std::find(names.begin(), names.end(), "highway") == names.end()) {
    GTEST_SKIP() << "highway is not built into this copy";
  }
  const ScopedEnv verbose("CONVKIT_VERBOSE", "2");
  const Tensor w(kW5, 1.0f);
  testing::internal::CaptureStderr();
  const Conv2d plan(kParams, kX5, w, {}, "highway");
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out.rfind("convkit_verbose,highway,conv2d_fwd,x=1x6x6x5 w=3x3x5x5 y=1x6x6x5 s1x1 "
                      "p1,1,1,1 d1x1 g1,igemm,refused: igemm_bf16 (fpmath strict); winograd (",
                      0),
            0u)
      << out;
  EXPECT_NE(out.find("; depthwise (not depthwise); stem (C_in > 4)\n"), std::string::npos) << out;
  EXPECT_EQ(plan.impl_name().rfind("highway:igemm:", 0), 0u) << plan.impl_name();
}

// Stems (1-4 input channels, a short reduction) take the stem variant, plans and one-shot calls
// alike; a problem it refuses names the reason and falls through to the implicit GEMM.
TEST(Dispatch, HighwayChoosesTheStemVariantForStems) {
  const auto names = available_backends();
  if (std::find(names.begin(), names.end(), "highway") == names.end()) {
    GTEST_SKIP() << "highway is not built into this copy";
  }
  const ScopedEnv verbose("CONVKIT_VERBOSE", "2");
  // MobileNetV3's stem, cropped: 3x3/2, 3 -> 16.
  const Conv2dParams stem{
      .kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad = Pads::uniform(1)};
  const Dims x_dims = {1, 32, 32, 3};
  const Tensor w({3, 3, 3, 16}, 1.0f), x(x_dims, 1.0f);
  Tensor y({1, 16, 16, 16});
  testing::internal::CaptureStderr();
  const Conv2d plan(stem, x_dims, w, {}, "highway");
  conv2d_forward(stem, x, w, {}, y, "highway");
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(plan.impl_name().rfind("highway:stem:", 0), 0u) << plan.impl_name();
  for (const char* op : {"conv2d_fwd", "conv2d_fwd_oneshot"}) {
    EXPECT_NE(out.find(std::string("convkit_verbose,highway,") + op +
                       ",x=1x32x32x3 w=3x3x3x16 y=1x16x16x16 s2x2 p1,1,1,1 d1x1 g1,stem,"),
              std::string::npos)
        << op << ": " << out;
  }
  // 5 input channels: not a stem.
  testing::internal::CaptureStderr();
  const Conv2d wide(stem, {1, 32, 32, 5}, Tensor({3, 3, 5, 16}, 1.0f), {}, "highway");
  const std::string wide_out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(wide.impl_name().rfind("highway:igemm:", 0), 0u) << wide.impl_name();
  EXPECT_NE(wide_out.find("; stem (C_in > 4)\n"), std::string::npos) << wide_out;
}

// A one-shot call chooses the variant on every call, at the level the call read once
// (CallVerboseScope): level 2 prints the choice line, level 1 does not.
TEST(Dispatch, OneShotVerboseLevelTwoNamesTheHighwayVariant) {
  const auto names = available_backends();
  if (std::find(names.begin(), names.end(), "highway") == names.end()) {
    GTEST_SKIP() << "highway is not built into this copy";
  }
  const Tensor x(kX5, 1.0f), w(kW5, 1.0f);
  Tensor y({1, 6, 6, 5});
  for (const char* level : {"2", "1"}) {
    const ScopedEnv verbose("CONVKIT_VERBOSE", level);
    testing::internal::CaptureStderr();
    conv2d_forward(kParams, x, w, {}, y, "highway");
    const std::string out = testing::internal::GetCapturedStderr();
    const bool has_choice =
        out.find(
            "convkit_verbose,highway,conv2d_fwd_oneshot,x=1x6x6x5 w=3x3x5x5 "
            "y=1x6x6x5 s1x1 p1,1,1,1 d1x1 g1,igemm,refused: ") != std::string::npos;
    EXPECT_EQ(has_choice, std::string(level) == "2") << "level " << level << ": " << out;
  }
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
