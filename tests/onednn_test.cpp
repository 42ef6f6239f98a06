// What is particular to the oneDNN backend (issue 3): its refusals (an explicit choice fails with
// the reason, auto falls back), the values oneDNN's max pooling gets wrong and the backend repairs,
// the post-ops it refuses (they would lose NaN), plans against one-shot calls, concurrent runs
// of one plan, batch 0, denormals and the thread count. Equivalence over the shape grid is in
// tests/equivalence/.
#include <gtest/gtest.h>
#include <omp.h>

#include <bit>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "convkit/convkit.hpp"
#include "test_util.hpp"

namespace convkit::test {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kLowest = std::numeric_limits<float>::lowest();

class OnednnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = NotBuiltReason("onednn")) GTEST_SKIP() << "onednn: " << *why;
  }
  void TearDown() override { set_num_threads(0); }
};

Tensor Filled(const Dims& dims, uint64_t seed, int lo = -3, int hi = 3) {
  Tensor t(dims);
  Rng rng(seed);
  FillIntegers(Span(t), rng, lo, hi);
  return t;
}

Tensor PoolForward(const Pool2dParams& params, const Tensor& x, std::string_view backend) {
  Tensor y(pool2d_output_dims(x.dims(), params));
  pool2d_forward(params, x, y, backend);
  return y;
}

Tensor PoolBackward(const Pool2dParams& params, const Tensor& x, const Tensor& dy,
                    std::string_view backend) {
  Tensor dx(x.dims(), 12345.0f);  // garbage: dx must be overwritten
  pool2d_backward(params, x, dy, dx, backend);
  return dx;
}

Tensor ConvForward(const Conv2dParams& params, const Tensor& x, const Tensor& w,
                   std::span<const float> b, std::string_view backend) {
  Tensor y(conv2d_output_dims(x.dims(), w.dims(), params));
  conv2d_forward(params, x, w, b, y, backend);
  return y;
}

// ---- Refusals ----

// Average pooling, count_include_pad, ceil_mode with a last window past the padded input: oneDNN
// divides it by the full window (4), DESIGN §4 by the clipped one (2 for the last column).
Pool2dParams IncludePadCeil() {
  Pool2dParams params;
  params.mode = PoolMode::kAverage;
  params.window_h = params.window_w = 2;
  params.stride_h = params.stride_w = 2;
  params.ceil_mode = true;
  params.count_include_pad = true;
  return params;
}

TEST_F(OnednnTest, RefusesIncludePadDivisorUnderCeilModeWithReason) {
  const Pool2dParams params = IncludePadCeil();
  const Tensor x = Filled({1, 3, 3, 5}, 1);
  Tensor y(pool2d_output_dims(x.dims(), params));
  const auto expect_refusal = [](auto&& call, const char* what) {
    try {
      call();
      ADD_FAILURE() << what << ": onednn ran a case it should refuse";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << what << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find("count_include_pad"), std::string::npos)
          << what << ": " << e.what();
    }
  };
  expect_refusal([&] { pool2d_forward(params, x, y, "onednn"); }, "pool2d_forward");
  expect_refusal([&] { Pool2d plan(params, x.dims(), "onednn"); }, "Pool2d plan");
  expect_refusal([&] { PoolBackward(params, x, y, "onednn"); }, "pool2d_backward");
}

TEST_F(OnednnTest, AutoFallsBackOnRefusedCase) {
  const Pool2dParams params = IncludePadCeil();
  const Tensor x = Filled({2, 5, 7, 3}, 2);
  const Tensor expected = PoolForward(params, x, "reference");
  EXPECT_TRUE(
      CompareTensors("include_pad ceil", "y (auto)", expected, PoolForward(params, x, "auto")));
  Pool2d plan(params, x.dims(), "auto");
  EXPECT_EQ(plan.impl_name().rfind("onednn", 0), std::string::npos) << plan.impl_name();
}

// The same parameters where ceil_mode adds no window (9 - 3 is a multiple of 2): no refusal.
TEST_F(OnednnTest, AcceptsIncludePadUnderCeilModeWithoutExtraWindow) {
  Pool2dParams params = IncludePadCeil();
  params.window_h = params.window_w = 3;
  params.pad = Pads::uniform(1);
  const Tensor x = Filled({2, 7, 7, 17}, 3);
  const Tensor dy = Filled(pool2d_output_dims(x.dims(), params), 4);
  EXPECT_TRUE(CompareTensors("include_pad ceil, no extra window", "y",
                             PoolForward(params, x, "reference"),
                             PoolForward(params, x, "onednn")));
  // Overlapping windows: oneDNN sums dy / divisor in another order, so not bit for bit.
  EXPECT_TRUE(CompareTensors(
      "include_pad ceil, no extra window", "dx", PoolBackward(params, x, dy, "reference"),
      PoolBackward(params, x, dy, "onednn"), Tolerance::ForReduction(9, 1.0)));
}

// ---- Max pooling on special values (oneDNN alone would get these wrong; the backend does not)
// ----

Pool2dParams MaxPool3x3Pad1() {
  Pool2dParams params;
  params.window_h = params.window_w = 3;
  params.stride_h = params.stride_w = 2;
  params.pad = Pads::uniform(1);
  return params;
}

void ExpectMaxPoolMatchesReference(const char* name, const Pool2dParams& params, const Tensor& x) {
  const Tensor dy = Filled(pool2d_output_dims(x.dims(), params), 7, 1, 9);
  const Tensor y = PoolForward(params, x, "onednn");
  EXPECT_TRUE(CompareTensors(name, "y", PoolForward(params, x, "reference"), y));
  EXPECT_TRUE(CompareTensors(name, "dx", PoolBackward(params, x, dy, "reference"),
                             PoolBackward(params, x, dy, "onednn")));
  Pool2d plan(params, x.dims(), "onednn");
  Tensor y_plan(y.dims());
  plan.run(x, y_plan);
  EXPECT_TRUE(CompareTensors(name, "y (plan)", y, y_plan));
}

TEST_F(OnednnTest, MaxPoolPropagatesNaN) {
  Tensor x = Filled({2, 5, 7, 19}, 5);
  x(0, 2, 3, 4) = kNaN;
  x(1, 0, 0, 18) = kNaN;
  x(1, 0, 1, 18) = kNaN;  // two NaN in one window: the first gets the gradient
  const Pool2dParams params = MaxPool3x3Pad1();
  const Tensor y = PoolForward(params, x, "onednn");
  EXPECT_TRUE(std::isnan(y(0, 1, 1, 4)));
  EXPECT_TRUE(std::isnan(y(1, 0, 0, 18)));
  ExpectMaxPoolMatchesReference("NaN", params, x);
}

TEST_F(OnednnTest, MaxPoolOfMinusInfinityIsMinusInfinity) {
  Tensor x(Dims{1, 4, 4, 16}, -kInf);
  x(0, 3, 3, 0) = 1.0f;
  const Tensor y = PoolForward(MaxPool3x3Pad1(), x, "onednn");
  EXPECT_EQ(y(0, 0, 0, 0), -kInf);  // oneDNN's kernel alone yields -FLT_MAX
  ExpectMaxPoolMatchesReference("-inf", MaxPool3x3Pad1(), x);
}

// A window whose maximum is -FLT_MAX: oneDNN's argmax stays on the window's first tap, which is in
// the padding for border windows, and the gradient would be lost.
TEST_F(OnednnTest, MaxPoolBackwardOfLowestKeepsGradient) {
  const Tensor x(Dims{1, 4, 4, 3}, kLowest);
  ExpectMaxPoolMatchesReference("-FLT_MAX", MaxPool3x3Pad1(), x);
}

TEST_F(OnednnTest, MaxPoolBackwardGivesTiesToFirstElement) {
  const Tensor x = Filled({2, 9, 11, 35}, 6, -1, 1);  // three values: ties everywhere
  ExpectMaxPoolMatchesReference("ties", MaxPool3x3Pad1(), x);
}

// ---- Plans, one-shot calls, threads ----

struct ConvCase {
  const char* name;
  Dims x_dims;
  int64_t c_out;
  Conv2dParams params;
  bool bias;
};

std::vector<ConvCase> ConvCases() {
  Conv2dParams seed;  // the seed's 2x5x7x4 -> 8, 3x3, stride 2, pad 1
  seed.kernel_h = seed.kernel_w = 3;
  seed.stride_h = seed.stride_w = 2;
  seed.pad = Pads::uniform(1);
  Conv2dParams grouped = seed;
  grouped.groups = 4;
  grouped.stride_h = 1;
  grouped.pad = {0, 2, 1, 0};
  grouped.activation = Activation::kLeakyRelu;  // oneDNN refuses relu (onednn_post_ops.hpp)
  grouped.activation_alpha = 0.125f;
  Conv2dParams depthwise = seed;
  depthwise.groups = 17;
  depthwise.dilation_h = depthwise.dilation_w = 2;
  depthwise.pad = Pads::uniform(2);
  Conv2dParams wide_pad;  // windows wholly in the padding yield the bias
  wide_pad.kernel_h = wide_pad.kernel_w = 2;
  wide_pad.pad = Pads::uniform(3);
  Conv2dParams gemm;  // a small grouped case for which oneDNN picks its gemm-based kernel
  gemm.kernel_h = 3;
  gemm.pad = {3, 3, 1, 1};
  gemm.dilation_w = 3;
  gemm.groups = 2;
  gemm.activation = Activation::kLeakyRelu;
  gemm.activation_alpha = 0.125f;
  return {{"seed", {2, 5, 7, 4}, 8, seed, true},
          {"gemm kernel leaky_relu", {1, 9, 11, 30}, 2, gemm, false},
          {"grouped asym leaky_relu", {2, 9, 8, 16}, 32, grouped, true},
          {"depthwise dilated", {1, 11, 13, 17}, 17, depthwise, false},
          {"wide pad", {1, 3, 4, 5}, 6, wide_pad, true}};
}

Tensor WeightsFor(const ConvCase& c, uint64_t seed) {
  return Filled({c.params.kernel_h, c.params.kernel_w, c.x_dims[3] / c.params.groups, c.c_out},
                seed);
}

// ---- Post-ops oneDNN cannot run as DESIGN §4 says are refused, with the reason ----

// oneDNN's relu (alpha 0), clip and bounded_relu compute max(z, lo) with vmaxps, which returns lo
// on NaN; its gelu_erf underflows early. If one of these starts passing, oneDNN changed: revisit
// onednn_post_ops.hpp.
TEST_F(OnednnTest, PostOpsThatWouldLoseNaNOrAccuracyAreRefused) {
  const ConvCase c = ConvCases()[0];
  const Tensor x = Filled(c.x_dims, 8);
  const Tensor w = WeightsFor(c, 9);
  const std::pair<Activation, const char*> refused[] = {
      {Activation::kRelu, "turns NaN into lo"}, {Activation::kRelu6, "turns NaN into lo"},
      {Activation::kClip, "turns NaN into lo"}, {Activation::kHardSigmoid, "turns NaN"},
      {Activation::kLeakyRelu, "alpha 0"},      {Activation::kGelu, "underflows"},
      {Activation::kSigmoid, "underflows"},     {Activation::kSilu, "underflows"}};
  for (const auto& [activation, reason] : refused) {
    Conv2dParams params = c.params;
    params.activation = activation;
    params.activation_beta = 1.0f;
    try {
      ConvForward(params, x, w, {}, "onednn");
      ADD_FAILURE() << activation_name(activation) << " was not refused";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
      EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
    }
  }
}

// The activations oneDNN runs keep NaN, and the residual (binary_add) propagates it.
TEST_F(OnednnTest, FusedActivationsKeepNaN) {
  for (ConvCase c : ConvCases()) {
    Tensor x = Filled(c.x_dims, 8);
    x(0, 0, 0, 0) = kNaN;  // a tap of some window in every case
    const Tensor w = WeightsFor(c, 9);
    for (const Activation activation :
         {Activation::kLeakyRelu, Activation::kTanh, Activation::kHardSwish}) {
      c.params.activation = activation;
      c.params.activation_alpha = 0.125f;
      const Tensor reference = ConvForward(c.params, x, w, {}, "reference");
      const Tensor onednn = ConvForward(c.params, x, w, {}, "onednn");
      int64_t nans = 0;
      for (int64_t i = 0; i < reference.size(); ++i) {
        nans += std::isnan(reference.data()[i]);
        EXPECT_EQ(std::isnan(reference.data()[i]), std::isnan(onednn.data()[i]))
            << c.name << " " << activation_name(activation) << " element " << i;
      }
      EXPECT_GT(nans, 0) << c.name;
    }
  }
}

TEST_F(OnednnTest, ConvPlanMatchesOneShotAndReference) {
  for (const ConvCase& c : ConvCases()) {
    const Tensor x = Filled(c.x_dims, 10);
    const Tensor w = WeightsFor(c, 11);
    std::vector<float> b(c.bias ? c.c_out : 0);
    Rng rng(12);
    FillIntegers(Span(b), rng, -5, 5);
    const Tensor one_shot = ConvForward(c.params, x, w, b, "onednn");
    Conv2d plan(c.params, x.dims(), w, b, "onednn");
    Tensor y(plan.y_dims());
    plan.run(x, y);
    EXPECT_TRUE(CompareTensors(c.name, "plan vs one-shot", one_shot, y));
    EXPECT_TRUE(
        CompareTensors(c.name, "vs reference", ConvForward(c.params, x, w, b, "reference"), y));
    EXPECT_TRUE(NotMostlyZero(c.name, "y", y, 0.5));
    EXPECT_EQ(plan.impl_name().rfind("onednn:", 0), 0u) << plan.impl_name();
  }
}

// Each subset of {dx, dw, db}: the backend picks different paths (dw straight into the caller's
// buffer or through a reorder; a temporary dw when only db is wanted).
TEST_F(OnednnTest, ConvBackwardSubsetsMatchReference) {
  for (ConvCase c : ConvCases()) {
    c.params.activation = Activation::kNone;  // the API's backward takes no activation
    const Tensor x = Filled(c.x_dims, 18);
    const Tensor w = WeightsFor(c, 19);
    const Tensor dy = Filled(conv2d_output_dims(x.dims(), w.dims(), c.params), 20);
    Tensor dx_ref(x.dims()), dw_ref(w.dims());
    std::vector<float> db_ref(c.c_out);
    conv2d_backward(c.params, x, w, dy, {dx_ref, dw_ref, std::span<float>(db_ref)}, "reference");
    for (int mask = 1; mask < 8; ++mask) {
      Tensor dx(x.dims(), 7.0f), dw(w.dims(), 7.0f);
      std::vector<float> db(c.c_out, 7.0f);
      Conv2dGrads grads;
      if (mask & 1) grads.dx = dx.view();
      if (mask & 2) grads.dw = dw.view();
      if (mask & 4) grads.db = std::span<float>(db);
      conv2d_backward(c.params, x, w, dy, grads, "onednn");
      const std::string name = std::string(c.name) + " grads mask " + std::to_string(mask);
      if (mask & 1) EXPECT_TRUE(CompareTensors(name, "dx", dx_ref, dx));
      if (mask & 2) EXPECT_TRUE(CompareTensors(name, "dw", dw_ref, dw));
      if (mask & 4) EXPECT_TRUE(CompareVectors(name, "db", db_ref, db));
      if (!(mask & 2)) EXPECT_EQ(dw(0, 0, 0, 0), 7.0f) << name << ": dw written";
    }
  }
}

TEST_F(OnednnTest, PoolPlanMatchesOneShot) {
  for (PoolMode mode : {PoolMode::kMax, PoolMode::kAverage}) {
    Pool2dParams params = MaxPool3x3Pad1();
    params.mode = mode;
    params.ceil_mode = true;
    params.pad = {1, 0, 2, 1};
    const Tensor x = Filled({2, 10, 9, 21}, 13);
    Pool2d plan(params, x.dims(), "onednn");
    Tensor y(plan.y_dims());
    plan.run(x, y);
    EXPECT_TRUE(CompareTensors("pool", "plan vs one-shot", PoolForward(params, x, "onednn"), y));
    EXPECT_TRUE(CompareTensors("pool", "vs reference", PoolForward(params, x, "reference"), y));
  }
}

TEST_F(OnednnTest, ConcurrentRunsOfOnePlanGiveIdenticalBits) {
  Conv2dParams params;
  params.kernel_h = params.kernel_w = 3;
  params.pad = Pads::uniform(1);
  params.activation = Activation::kLeakyRelu;
  params.activation_alpha = 0.125f;
  Rng rng(14);
  Tensor x({1, 28, 28, 64});
  Tensor w({3, 3, 64, 64});
  FillNormal(Span(x), rng);  // real values: any change of summation order would show
  FillNormal(Span(w), rng);
  std::vector<float> b(64, 0.5f);
  const Conv2d plan(params, x.dims(), w, b, "onednn");
  Tensor expected(plan.y_dims());
  plan.run(x, expected);

  constexpr int kThreads = 4, kRuns = 20;
  std::vector<Tensor> ys(kThreads, Tensor(plan.y_dims()));
  std::vector<int> mismatched_runs(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRuns; ++r) {
        plan.run(x, ys[t]);
        if (!std::equal(ys[t].data(), ys[t].data() + ys[t].size(), expected.data())) {
          ++mismatched_runs[t];
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(mismatched_runs[t], 0) << "thread " << t;
    EXPECT_TRUE(CompareTensors("concurrent", "y of thread " + std::to_string(t), expected, ys[t]));
  }
}

// convkit's thread count governs oneDNN, and the caller's OpenMP setting survives the call.
TEST_F(OnednnTest, ThreadCountIsScopedToTheCall) {
  omp_set_num_threads(2);
  set_num_threads(1);
  const ConvCase c = ConvCases()[2];
  const Tensor x = Filled(c.x_dims, 15);
  const Tensor w = WeightsFor(c, 16);
  const Tensor one_thread = ConvForward(c.params, x, w, {}, "onednn");
  EXPECT_EQ(omp_get_max_threads(), 2);
  set_num_threads(2);
  EXPECT_TRUE(CompareTensors(c.name, "1 vs 2 threads", one_thread,
                             ConvForward(c.params, x, w, {}, "onednn")));
  EXPECT_EQ(omp_get_max_threads(), 2);
}

// ---- Edge cases ----

TEST_F(OnednnTest, BatchZero) {
  const ConvCase c = ConvCases()[0];
  const Tensor x(Dims{0, 5, 7, 4});
  const Tensor w = WeightsFor(c, 17);
  std::vector<float> b(8, 1.0f);
  Tensor y(conv2d_output_dims(x.dims(), w.dims(), c.params));
  conv2d_forward(c.params, x, w, b, y, "onednn");
  Conv2d plan(c.params, x.dims(), w, b, "onednn");
  plan.run(x, y);

  Tensor dx(x.dims()), dw(w.dims(), 3.0f);
  std::vector<float> db(8, 3.0f);
  conv2d_backward(c.params, x, w, y, {dx, dw, std::span<float>(db)}, "onednn");
  EXPECT_TRUE(CompareTensors("batch 0", "dw", Tensor(w.dims()), dw));
  EXPECT_TRUE(CompareVectors("batch 0", "db", std::vector<float>(8, 0.0f), db));

  const Tensor py = PoolForward(MaxPool3x3Pad1(), x, "onednn");
  EXPECT_EQ(py.size(), 0);
  EXPECT_EQ(PoolBackward(MaxPool3x3Pad1(), x, py, "onednn").size(), 0);
}

// Denormals are neither flushed on input nor on output (oneDNN leaves MXCSR alone).
TEST_F(OnednnTest, DenormalsAreKept) {
  constexpr float kDenormal = 1e-40f;
  Conv2dParams params;
  params.activation = Activation::kLeakyRelu;  // passes positive z through
  params.activation_alpha = 0.125f;
  const Tensor x({1, 2, 3, 16}, kDenormal);
  Tensor w({1, 1, 16, 16});
  for (int64_t i = 0; i < 16; ++i) w(0, 0, i, i) = 1.0f;  // identity: y = x
  const Tensor y = ConvForward(params, x, w, {}, "onednn");
  EXPECT_TRUE(CompareTensors("denormal", "y", x, y));
}

}  // namespace
}  // namespace convkit::test
