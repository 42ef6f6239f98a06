// Semantics tests: the decided edge cases of DESIGN §4 on every built backend.
//
// Every expected value here is computed by hand (and explained next to it), never taken from the
// reference backend. The data are chosen so that every result is exact in fp32, and comparisons are
// bit-exact unless a test says otherwise.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "tests/test_util.hpp"

namespace convkit::test {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kGarbage = -12345.5f;  // pre-fills outputs, to prove they are written

Conv2dParams Conv(int64_t kh, int64_t kw, int64_t stride = 1, Pads pad = {}, int64_t dilation = 1,
                  int64_t groups = 1) {
  Conv2dParams p;
  p.kernel_h = kh;
  p.kernel_w = kw;
  p.stride_h = p.stride_w = stride;
  p.pad = pad;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  return p;
}

Pool2dParams Pool(PoolMode mode, int64_t wh, int64_t ww, int64_t sh, int64_t sw, Pads pad = {},
                  bool ceil_mode = false, bool count_include_pad = false) {
  Pool2dParams p;
  p.mode = mode;
  p.window_h = wh;
  p.window_w = ww;
  p.stride_h = sh;
  p.stride_w = sw;
  p.pad = pad;
  p.ceil_mode = ceil_mode;
  p.count_include_pad = count_include_pad;
  return p;
}

// y from the one-shot call and from a plan, both pre-filled with garbage.
struct Outputs {
  Tensor one_shot;
  Tensor plan;
};

Outputs ConvForward(const Conv2dParams& params, const Tensor& x, const Tensor& w,
                    const std::vector<float>& b, const std::string& backend) {
  const Dims y_dims = conv2d_output_dims(x.dims(), w.dims(), params);
  Outputs out{Tensor(y_dims, kGarbage), Tensor(y_dims, kGarbage)};
  conv2d_forward(params, x, w, b, out.one_shot, backend);
  Conv2d(params, x.dims(), w, b, backend).run(x, out.plan);
  return out;
}

Outputs PoolForward(const Pool2dParams& params, const Tensor& x, const std::string& backend) {
  const Dims y_dims = pool2d_output_dims(x.dims(), params);
  Outputs out{Tensor(y_dims, kGarbage), Tensor(y_dims, kGarbage)};
  pool2d_forward(params, x, out.one_shot, backend);
  Pool2d(params, x.dims(), backend).run(x, out.plan);
  return out;
}

Tensor PoolBackward(const Pool2dParams& params, const Tensor& x, const Tensor& dy,
                    const std::string& backend) {
  Tensor dx(x.dims(), kGarbage);
  pool2d_backward(params, x, dy, dx, backend);
  return dx;
}

struct ConvGrads {
  Tensor dx;
  Tensor dw;
  std::vector<float> db;
};

ConvGrads ConvBackward(const Conv2dParams& params, const Tensor& x, const Tensor& w,
                       const Tensor& dy, const std::string& backend) {
  ConvGrads g{Tensor(x.dims(), kGarbage), Tensor(w.dims(), kGarbage),
              std::vector<float>(static_cast<size_t>(w.dims()[3]), kGarbage)};
  conv2d_backward(params, x, w, dy, {g.dx.view(), g.dw.view(), Span(g.db)}, backend);
  return g;
}

// Passes when `f` throws convkit::Error with `code`.
template <typename F>
::testing::AssertionResult ThrowsError(F&& f, ErrorCode code) {
  try {
    std::forward<F>(f)();
  } catch (const Error& e) {
    if (e.code() == code) return ::testing::AssertionSuccess() << e.what();
    return ::testing::AssertionFailure() << "threw " << error_code_name(e.code()) << " instead of "
                                         << error_code_name(code) << ": " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw " << error_code_name(code);
}

bool IsNegativeZero(float v) { return v == 0.0f && std::signbit(v); }
bool IsPositiveZero(float v) { return v == 0.0f && !std::signbit(v); }

class SemanticsTest : public ::testing::TestWithParam<std::string> {
 protected:
  const std::string& backend() const { return GetParam(); }
  std::string Case(const std::string& what) const { return backend() + ": " + what; }

  // Runs forward one-shot and plan and checks both against `expected`.
  void ExpectConv(const std::string& what, const Conv2dParams& params, const Tensor& expected,
                  const Outputs& y) {
    const std::string c = Case(what + " " + to_string(params));
    EXPECT_TRUE(CompareTensors(c, "y (one-shot)", expected, y.one_shot));
    EXPECT_TRUE(CompareTensors(c, "y (plan)", expected, y.plan));
  }
  void ExpectPool(const std::string& what, const Pool2dParams& params, const Tensor& expected,
                  const Outputs& y, Tolerance tol = Tolerance::Exact()) {
    const std::string c = Case(what + " " + to_string(params));
    EXPECT_TRUE(CompareTensors(c, "y (one-shot)", expected, y.one_shot, tol));
    EXPECT_TRUE(CompareTensors(c, "y (plan)", expected, y.plan, tol));
  }
};

// ---- Output sizes and the errors they imply ----

// A kernel larger than the padded input is an error, never an output of 1 (C's truncation of a
// negative numerator would give (3 - 4) / 2 + 1 = 1).
TEST_P(SemanticsTest, KernelLargerThanPaddedInputIsAnError) {
  const Tensor x({1, 3, 3, 1}, 1.0f);
  struct BadCase {
    Conv2dParams params;
    const char* why;
  };
  for (const BadCase& k :
       {BadCase{Conv(4, 4, 2), "k4 on 3x3, stride 2: floor(-1 / 2) + 1 = 0"},
        BadCase{Conv(5, 5, 1), "k5 on 3x3"}, BadCase{Conv(3, 3, 1, {}, 2), "k3 d2 spans 5 > 3"},
        BadCase{Conv(1, 6, 1, {0, 0, 1, 1}), "k6 on 3 + 2 cols"}}) {
    const Tensor w({k.params.kernel_h, k.params.kernel_w, 1, 1}, 1.0f);
    EXPECT_TRUE(ThrowsError([&] { conv2d_output_dims(x.dims(), w.dims(), k.params); },
                            ErrorCode::kInvalidArgument))
        << k.why;
    Tensor y({1, 1, 1, 1}, kGarbage);
    EXPECT_TRUE(ThrowsError([&] { conv2d_forward(k.params, x, w, {}, y, backend()); },
                            ErrorCode::kInvalidArgument))
        << k.why;
    EXPECT_EQ(y(0, 0, 0, 0), kGarbage) << k.why << ": a failed call wrote its output";
    EXPECT_TRUE(ThrowsError([&] { Conv2d(k.params, x.dims(), w, {}, backend()); },
                            ErrorCode::kInvalidArgument))
        << k.why;
  }
  // Padding makes room: k3 on 3 + 1 rows gives 2 outputs.
  EXPECT_EQ(conv2d_output_dims(x.dims(), Dims{3, 1, 1, 1}, Conv(3, 1, 1, {1, 0, 0, 0})),
            (Dims{1, 2, 3, 1}));
  // The exact fit is valid: one output.
  const Tensor w3({3, 3, 1, 1}, 1.0f);
  EXPECT_EQ(conv2d_output_dims(x.dims(), w3.dims(), Conv(3, 3, 2)), (Dims{1, 1, 1, 1}));
  EXPECT_EQ(conv2d_output_dims(x.dims(), w3.dims(), Conv(3, 3, 1, {}, 1)), (Dims{1, 1, 1, 1}));
  // floor((7 + 0 - 3) / 2) + 1 = 3; with pad 1 each side floor(6 / 2) + 1 = 4.
  const Tensor x7({2, 7, 7, 1});
  EXPECT_EQ(conv2d_output_dims(x7.dims(), w3.dims(), Conv(3, 3, 2)), (Dims{2, 3, 3, 1}));
  EXPECT_EQ(conv2d_output_dims(x7.dims(), w3.dims(), Conv(3, 3, 2, Pads::uniform(1))),
            (Dims{2, 4, 4, 1}));
}

// Pooling padding must be smaller than the window, so that every window touches the input.
TEST_P(SemanticsTest, PoolPadAtLeastWindowIsAnError) {
  const Tensor x({1, 4, 4, 1}, 1.0f);
  for (const Pool2dParams& params :
       {Pool(PoolMode::kMax, 2, 2, 1, 1, Pads::uniform(2)),
        Pool(PoolMode::kAverage, 2, 2, 1, 1, Pads::uniform(2)),
        Pool(PoolMode::kMax, 3, 3, 1, 1, {0, 3, 0, 0}),  // bottom == window_h
        Pool(PoolMode::kMax, 3, 2, 1, 1, {0, 0, 0, 2}),  // right == window_w
        Pool(PoolMode::kAverage, 1, 1, 1, 1, {1, 0, 0, 0}),
        Pool(PoolMode::kMax, 5, 1, 1, 1)}) {  // window larger than the unpadded input
    EXPECT_TRUE(
        ThrowsError([&] { pool2d_output_dims(x.dims(), params); }, ErrorCode::kInvalidArgument))
        << to_string(params);
    EXPECT_TRUE(
        ThrowsError([&] { Pool2d(params, x.dims(), backend()); }, ErrorCode::kInvalidArgument))
        << to_string(params);
  }
  // pad == window - 1 is allowed: floor((4 + 2 - 2) / 1) + 1 = 5.
  EXPECT_EQ(pool2d_output_dims(x.dims(), Pool(PoolMode::kMax, 2, 2, 1, 1, Pads::uniform(1))),
            (Dims{1, 5, 5, 1}));
}

// ---- ceil_mode ----

// H = 6, window 3, stride 2, pad 1 top and bottom: floor gives windows at padded rows 0, 2, 4;
// ceil adds one at padded row 6 (input row 5 and the bottom pad; padded row 8 lies beyond the
// padded input). x = [5, 1, 4, 1, 6, 2]:
//   windows {pad, 5, 1}, {1, 4, 1}, {1, 6, 2}, {2, pad}
//   max:                        5, 4, 6, 2
//   average, pad excluded:      6/2, 6/3, 9/3, 2/1 = 3, 2, 3, 2
//   average, pad included:      6/3, 6/3, 9/3, 2/2 = 2, 2, 3, 1   (the last window is clipped to
//                               the padded input: 2 elements, not 3)
// One test per mode, so that a backend refusing one (e.g. the clipped divisor) still runs the rest.
Tensor CeilModeInput() { return MakeTensor({1, 6, 1, 1}, {5, 1, 4, 1, 6, 2}); }
Pool2dParams CeilModeParams(PoolMode mode, bool ceil_mode, bool include_pad = false) {
  return Pool(mode, 3, 1, 2, 1, {1, 1, 0, 0}, ceil_mode, include_pad);
}

TEST_P(SemanticsTest, CeilModeKeepsPartialLastWindowMax) {
  const Tensor x = CeilModeInput();
  const Pool2dParams floor_max = CeilModeParams(PoolMode::kMax, false);
  const Pool2dParams ceil_max = CeilModeParams(PoolMode::kMax, true);
  EXPECT_EQ(pool2d_output_dims(x.dims(), floor_max), (Dims{1, 3, 1, 1}));
  EXPECT_EQ(pool2d_output_dims(x.dims(), ceil_max), (Dims{1, 4, 1, 1}));
  Outputs y_floor, y_max;
  CONVKIT_RUN_OR_SKIP(backend(), y_floor = PoolForward(floor_max, x, backend()));
  CONVKIT_RUN_OR_SKIP(backend(), y_max = PoolForward(ceil_max, x, backend()));
  ExpectPool("ceil_mode", floor_max, MakeTensor({1, 3, 1, 1}, {5, 4, 6}), y_floor);
  ExpectPool("ceil_mode", ceil_max, MakeTensor({1, 4, 1, 1}, {5, 4, 6, 2}), y_max);
  // Backward, dy = [10, 20, 30, 40]: the maxima are x[0], x[2], x[4], x[5].
  Tensor dx;
  CONVKIT_RUN_OR_SKIP(
      backend(),
      dx = PoolBackward(ceil_max, x, MakeTensor({1, 4, 1, 1}, {10, 20, 30, 40}), backend()));
  EXPECT_TRUE(CompareTensors(Case("ceil_mode max backward"), "dx",
                             MakeTensor({1, 6, 1, 1}, {10, 0, 20, 0, 30, 40}), dx));
}

TEST_P(SemanticsTest, CeilModeKeepsPartialLastWindowAverage) {
  const Tensor x = CeilModeInput();
  const Pool2dParams ceil_avg = CeilModeParams(PoolMode::kAverage, true, false);
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(ceil_avg, x, backend()));
  ExpectPool("ceil_mode", ceil_avg, MakeTensor({1, 4, 1, 1}, {3, 2, 3, 2}), y);
  // Backward, dy = [3, 3, 3, 4]: shares 3/2, 3/3, 3/3, 4/1 to the windows' input elements,
  // dx = [1.5, 1.5 + 1, 1, 1 + 1, 1, 1 + 4].
  Tensor dx;
  CONVKIT_RUN_OR_SKIP(
      backend(), dx = PoolBackward(ceil_avg, x, MakeTensor({1, 4, 1, 1}, {3, 3, 3, 4}), backend()));
  EXPECT_TRUE(CompareTensors(Case("ceil_mode average backward"), "dx",
                             MakeTensor({1, 6, 1, 1}, {1.5f, 2.5f, 1, 2, 1, 5}), dx));
}

TEST_P(SemanticsTest, CeilModeKeepsPartialLastWindowAverageIncludePad) {
  const Tensor x = CeilModeInput();
  const Pool2dParams ceil_incl = CeilModeParams(PoolMode::kAverage, true, true);
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(ceil_incl, x, backend()));
  ExpectPool("ceil_mode", ceil_incl, MakeTensor({1, 4, 1, 1}, {2, 2, 3, 1}), y);
  // Backward, dy = [3, 3, 3, 4]: shares 3/3, 3/3, 3/3, 4/2 (the last window clipped to the padded
  // input has 2 elements), dx = [1, 1 + 1, 1, 1 + 1, 1, 1 + 2].
  Tensor dx;
  CONVKIT_RUN_OR_SKIP(
      backend(),
      dx = PoolBackward(ceil_incl, x, MakeTensor({1, 4, 1, 1}, {3, 3, 3, 4}), backend()));
  EXPECT_TRUE(CompareTensors(Case("ceil_mode average (incl. pad) backward"), "dx",
                             MakeTensor({1, 6, 1, 1}, {1, 2, 1, 2, 1, 3}), dx));
}

// PyTorch's rule: a last window starting past the input and its top/left padding is dropped.
// H = 5, window 2, stride 2, pad 1 top and bottom: ceil((5 + 2 - 2) / 2) + 1 = 4 windows, but the
// 4th starts at padded row 6 >= 1 + 5, i.e. wholly in the bottom padding: 3 windows remain,
// {pad, x0}, {x1, x2}, {x3, x4}. Without padding, H = 5 keeps its partial window {x4}.
TEST_P(SemanticsTest, CeilModeDropsWindowStartingInPadding) {
  const Tensor x = MakeTensor({1, 5, 1, 1}, {-3, -1, -4, -1, -5});
  const Pool2dParams padded = Pool(PoolMode::kMax, 2, 1, 2, 1, {1, 1, 0, 0}, true);
  const Pool2dParams unpadded = Pool(PoolMode::kMax, 2, 1, 2, 1, {}, true);
  ASSERT_EQ(pool2d_output_dims(x.dims(), padded), (Dims{1, 3, 1, 1}));
  ASSERT_EQ(pool2d_output_dims(x.dims(), unpadded), (Dims{1, 3, 1, 1}));
  Outputs y_padded, y_unpadded;
  CONVKIT_RUN_OR_SKIP(backend(), y_padded = PoolForward(padded, x, backend()));
  CONVKIT_RUN_OR_SKIP(backend(), y_unpadded = PoolForward(unpadded, x, backend()));
  // Padding never wins, even over negative values.
  ExpectPool("ceil_mode drop", padded, MakeTensor({1, 3, 1, 1}, {-3, -1, -1}), y_padded);
  ExpectPool("ceil_mode keep", unpadded, MakeTensor({1, 3, 1, 1}, {-1, -1, -5}), y_unpadded);
  // Average over the same windows, pad excluded and included (the padded input is 7 rows, so no
  // window is clipped): [-3/1, -5/2, -6/2] and [-3/2, -5/2, -6/2].
  Outputs y_avg, y_incl;
  const Pool2dParams avg = Pool(PoolMode::kAverage, 2, 1, 2, 1, {1, 1, 0, 0}, true, false);
  const Pool2dParams incl = Pool(PoolMode::kAverage, 2, 1, 2, 1, {1, 1, 0, 0}, true, true);
  CONVKIT_RUN_OR_SKIP(backend(), y_avg = PoolForward(avg, x, backend()));
  CONVKIT_RUN_OR_SKIP(backend(), y_incl = PoolForward(incl, x, backend()));
  ExpectPool("ceil_mode drop", avg, MakeTensor({1, 3, 1, 1}, {-3, -2.5f, -3}), y_avg);
  ExpectPool("ceil_mode drop", incl, MakeTensor({1, 3, 1, 1}, {-1.5f, -2.5f, -3}), y_incl);
}

// ---- Max pooling: ties, NaN, infinities, padding ----

// The whole gradient goes to the first maximal element in row-major window order.
TEST_P(SemanticsTest, MaxPoolTiesGradientGoesToFirst) {
  // Channel 0: [[1, 5], [5, 2]] -> (0, 1). Channel 1: [[7, 7], [7, 7]] -> (0, 0).
  // Channel 2: [[0, 1], [3, 3]] -> (1, 0).
  const Tensor x = MakeTensor({1, 2, 2, 3}, {1, 7, 0, 5, 7, 1,  //
                                             5, 7, 3, 2, 7, 3});
  const Pool2dParams params = Pool(PoolMode::kMax, 2, 2, 1, 1);
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(params, x, backend()));
  ExpectPool("ties", params, MakeTensor({1, 1, 1, 3}, {5, 7, 3}), y);
  Tensor dx;
  CONVKIT_RUN_OR_SKIP(backend(),
                      dx = PoolBackward(params, x, MakeTensor({1, 1, 1, 3}, {2, 4, 8}), backend()));
  EXPECT_TRUE(CompareTensors(Case("ties backward"), "dx",
                             MakeTensor({1, 2, 2, 3}, {0, 4, 0, 2, 0, 0,  //
                                                       0, 0, 8, 0, 0, 0}),
                             dx));
  // Overlapping windows over [3, 5, 5, 1], window 1x3, stride 1: both windows pick x[1].
  const Tensor row = MakeTensor({1, 1, 4, 1}, {3, 5, 5, 1});
  const Pool2dParams row_params = Pool(PoolMode::kMax, 1, 3, 1, 1);
  CONVKIT_RUN_OR_SKIP(
      backend(), dx = PoolBackward(row_params, row, MakeTensor({1, 1, 2, 1}, {1, 10}), backend()));
  EXPECT_TRUE(CompareTensors(Case("overlapping ties backward"), "dx",
                             MakeTensor({1, 1, 4, 1}, {0, 11, 0, 0}), dx));
}

// A window holding a NaN yields NaN; backward sends the gradient to the first NaN.
TEST_P(SemanticsTest, MaxPoolNaNPropagates) {
  // Four 2x2 windows side by side (window 2x2, stride 2), one channel:
  //   [[1, NaN], [NaN, 9]]  -> NaN, gradient to (0, 1)
  //   [[1, 9],   [2, NaN]]  -> NaN, gradient to (1, 1) (the NaN comes last)
  //   [[NaN, 1], [2, 3]]    -> NaN, gradient to (0, 0)
  //   [[4, -1],  [2, 3]]    -> 4, no NaN next door leaks in
  const Tensor x = MakeTensor({1, 2, 8, 1}, {1, kNaN, 1, 9, kNaN, 1, 4, -1,  //
                                             kNaN, 9, 2, kNaN, 2, 3, 2, 3});
  const Pool2dParams params = Pool(PoolMode::kMax, 2, 2, 2, 2);
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(params, x, backend()));
  ExpectPool("NaN", params, MakeTensor({1, 1, 4, 1}, {kNaN, kNaN, kNaN, 4}), y);
  Tensor dx;
  CONVKIT_RUN_OR_SKIP(
      backend(), dx = PoolBackward(params, x, MakeTensor({1, 1, 4, 1}, {1, 2, 3, 4}), backend()));
  EXPECT_TRUE(CompareTensors(Case("NaN backward"), "dx",
                             MakeTensor({1, 2, 8, 1}, {0, 1, 0, 0, 3, 0, 4, 0,  //
                                                       0, 0, 0, 2, 0, 0, 0, 0}),
                             dx));
  // Average pooling propagates NaN too, as IEEE arithmetic does.
  const Pool2dParams avg = Pool(PoolMode::kAverage, 2, 2, 2, 2);
  CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(avg, x, backend()));
  ExpectPool("NaN", avg, MakeTensor({1, 1, 4, 1}, {kNaN, kNaN, kNaN, 2}), y);
}

// Padding is -inf and never wins, not even over -inf or over all-negative windows; an input -inf
// is a value like any other (the gradient goes to it, not to the padding).
TEST_P(SemanticsTest, MaxPoolPaddingNeverWins) {
  // x = [[-5, -6], [-7, -8]], window 2, stride 1, pad 1: each output is the max of the input
  // elements its window covers.
  const Tensor x = MakeTensor({1, 2, 2, 1}, {-5, -6, -7, -8});
  const Pool2dParams params = Pool(PoolMode::kMax, 2, 2, 1, 1, Pads::uniform(1));
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(params, x, backend()));
  ExpectPool("padding", params,
             MakeTensor({1, 3, 3, 1}, {-5, -5, -6,  //
                                       -5, -5, -6,  //
                                       -7, -7, -8}),
             y);
  // dy = 1: x00 is the max of 4 windows, x01 and x10 of 2 each, x11 of 1.
  Tensor dx;
  CONVKIT_RUN_OR_SKIP(backend(),
                      dx = PoolBackward(params, x, Tensor({1, 3, 3, 1}, 1.0f), backend()));
  EXPECT_TRUE(
      CompareTensors(Case("padding backward"), "dx", MakeTensor({1, 2, 2, 1}, {4, 2, 2, 1}), dx));

  const Tensor minus_inf = MakeTensor({1, 1, 2, 1}, {-kInf, -kInf});
  const Pool2dParams pad_left = Pool(PoolMode::kMax, 1, 2, 1, 1, {0, 0, 1, 0});
  CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(pad_left, minus_inf, backend()));
  ExpectPool("-inf", pad_left, MakeTensor({1, 1, 2, 1}, {-kInf, -kInf}), y);
  CONVKIT_RUN_OR_SKIP(backend(), dx = PoolBackward(pad_left, minus_inf,
                                                   MakeTensor({1, 1, 2, 1}, {1, 2}), backend()));
  // Window 0 = {pad, x0}: x0. Window 1 = {x0, x1}: the first, x0.
  EXPECT_TRUE(CompareTensors(Case("-inf backward"), "dx", MakeTensor({1, 1, 2, 1}, {3, 0}), dx));
}

// -0 and +0 compare equal (IEEE), so in a window {-0, +0} both are maximal and the first gets the
// gradient. The forward value is a zero; its sign must be that of the element backward picks, so
// that y == x[argmax] bit for bit.
TEST_P(SemanticsTest, MaxPoolSignedZeros) {
  const Tensor x = MakeTensor({1, 1, 4, 1}, {-0.0f, 0.0f, 0.0f, -0.0f});
  const Pool2dParams params = Pool(PoolMode::kMax, 1, 2, 1, 2);
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(params, x, backend()));
  Tensor dx;
  CONVKIT_RUN_OR_SKIP(backend(),
                      dx = PoolBackward(params, x, MakeTensor({1, 1, 2, 1}, {1, 2}), backend()));
  EXPECT_TRUE(CompareTensors(Case("max {-0, +0}, {+0, -0} backward"), "dx",
                             MakeTensor({1, 1, 4, 1}, {1, 0, 2, 0}), dx));
  for (int64_t o = 0; o < 2; ++o) {
    const float picked = x(0, 0, 2 * o, 0);
    for (const Tensor* out : {&y.one_shot, &y.plan}) {
      const float v = (*out)(0, 0, o, 0);
      EXPECT_EQ(v, 0.0f) << Case("max of signed zeros") << ", window " << o;
      EXPECT_EQ(std::signbit(v), std::signbit(picked))
          << Case("max of signed zeros") << ", window " << o << ": y = " << FloatString(v)
          << " but backward picks the first element, " << FloatString(picked);
    }
  }
}

// ---- Convolution: signed zeros, padding, ReLU ----

// The seed's conv_single_step is np.sum(a * W) + b, and np.sum of an all -0 array is +0 (the sum
// starts from its identity +0). So a convolution output that is zero is +0, whatever the signs of
// the zero products and of a zero bias: +0 + -0 = +0 under IEEE round-to-nearest.
TEST_P(SemanticsTest, ConvZeroResultsArePositiveZero) {
  struct ZeroCase {
    const char* what;
    Tensor x;
    Tensor w;
    std::vector<float> b;
  };
  const ZeroCase cases[] = {
      {"all products -0, no bias",
       MakeTensor({1, 1, 1, 2}, {-0.0f, -0.0f}),
       MakeTensor({1, 1, 2, 1}, {1, 2}),
       {}},
      {"all products -0, bias -0",
       MakeTensor({1, 1, 1, 2}, {-0.0f, -0.0f}),
       MakeTensor({1, 1, 2, 1}, {1, 2}),
       {-0.0f}},
      {"all products -0, bias +0",
       MakeTensor({1, 1, 1, 2}, {-0.0f, -0.0f}),
       MakeTensor({1, 1, 2, 1}, {1, 2}),
       {0.0f}},
      {"products -0 and +0, bias -0",
       MakeTensor({1, 1, 1, 2}, {-0.0f, 0.0f}),
       MakeTensor({1, 1, 2, 1}, {3, 4}),
       {-0.0f}},
      {"+0 times negative weights, bias -0",
       MakeTensor({1, 1, 1, 2}, {0.0f, 0.0f}),
       MakeTensor({1, 1, 2, 1}, {-1, -2}),
       {-0.0f}},
      {"products cancel: 2*3 + (-3)*2",
       MakeTensor({1, 1, 1, 2}, {2, -3}),
       MakeTensor({1, 1, 2, 1}, {3, 2}),
       {}},
  };
  for (const ZeroCase& k : cases) {
    Outputs y;
    CONVKIT_RUN_OR_SKIP(backend(), y = ConvForward(Conv(1, 1), k.x, k.w, k.b, backend()));
    for (const Tensor* out : {&y.one_shot, &y.plan}) {
      EXPECT_TRUE(IsPositiveZero((*out)(0, 0, 0, 0)))
          << Case(k.what) << ": y = " << FloatString((*out)(0, 0, 0, 0)) << ", expected +0";
    }
  }
}

// A window lying wholly in the padding yields the bias, exactly. x is one pixel with 2 channels,
// pad 2 on every side, 1x1 kernel: only the centre of the 5x5 output reads the input.
//   w = [[1, 2], [3, -1]] (rows: input channel, cols: output channel), b = [0.75, -1.25]
//   centre: [3*1 + (-2)*3 + 0.75, 3*2 + (-2)*(-1) - 1.25] = [-2.25, 6.75]
TEST_P(SemanticsTest, WindowWhollyInPaddingYieldsBias) {
  const Tensor x = MakeTensor({1, 1, 1, 2}, {3, -2});
  const Tensor w = MakeTensor({1, 1, 2, 2}, {1, 2, 3, -1});
  const std::vector<float> b = {0.75f, -1.25f};
  const Conv2dParams params = Conv(1, 1, 1, Pads::uniform(2));
  Tensor expected({1, 5, 5, 2});
  for (int64_t h = 0; h < 5; ++h) {
    for (int64_t ww = 0; ww < 5; ++ww) {
      expected(0, h, ww, 0) = 0.75f;
      expected(0, h, ww, 1) = -1.25f;
    }
  }
  expected(0, 2, 2, 0) = -2.25f;
  expected(0, 2, 2, 1) = 6.75f;
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = ConvForward(params, x, w, b, backend()));
  ExpectConv("window in padding", params, expected, y);

  // A 3x3 kernel with dilation 3, stride 3, pad 4 on a 2x2 input: the kernel spans 7, so
  // OH = OW = floor((2 + 8 - 7) / 3) + 1 = 2. Output 0 taps input rows (cols) -4, -1, 2 and
  // output 1 taps -1, 2, 5: none lies in [0, 2), so every window misses the input and yields 0.5.
  const Conv2dParams dilated = Conv(3, 3, 3, Pads::uniform(4), 3);
  const Tensor x2({1, 2, 2, 1}, 1.0f);
  const Tensor w2({3, 3, 1, 1}, 1.0f);
  ASSERT_EQ(conv2d_output_dims(x2.dims(), w2.dims(), dilated), (Dims{1, 2, 2, 1}));
  CONVKIT_RUN_OR_SKIP(backend(), y = ConvForward(dilated, x2, w2, {0.5f}, backend()));
  ExpectConv("dilated window in padding", dilated, Tensor({1, 2, 2, 1}, 0.5f), y);
}

// ReLU: y = max(0, conv + b), and a negative pre-activation gives +0 (not alpha * z = -0, as
// oneDNN's eltwise_relu does in some kernels). x = [1], w = [2, -3, 0.5], b = [1, 1, -0.5] ->
// pre-activation [3, -2, 0] -> [3, +0, +0].
TEST_P(SemanticsTest, FusedRelu) {
  const Tensor x = MakeTensor({1, 1, 1, 1}, {1});
  const Tensor w = MakeTensor({1, 1, 1, 3}, {2, -3, 0.5f});
  const std::vector<float> b = {1, 1, -0.5f};
  Conv2dParams params = Conv(1, 1);
  params.activation = Activation::kRelu;
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = ConvForward(params, x, w, b, backend()));
  ExpectConv("relu", params, MakeTensor({1, 1, 1, 3}, {3, 0, 0}), y);
}

// The same through a grouped and a depthwise 3x3 convolution (other kernels in some backends):
// x = 1 on {1, 3, 3, 4}, pad 1, w = -1 for even output channels and +1 for odd ones, no bias:
// pre-activations are -taps and +taps, so y is +0 on even channels and taps on odd ones.
TEST_P(SemanticsTest, FusedReluGroupedAndDepthwise) {
  const Tensor x({1, 3, 3, 4}, 1.0f);
  for (const int64_t groups : {2, 4}) {
    Conv2dParams params = Conv(3, 3, 1, Pads::uniform(1), 1, groups);
    params.activation = Activation::kRelu;
    Tensor w({3, 3, 4 / groups, 4});
    for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = (i % 4) % 2 == 0 ? -1.0f : 1.0f;
    Tensor expected({1, 3, 3, 4});
    for (int64_t h = 0; h < 3; ++h) {
      for (int64_t ww = 0; ww < 3; ++ww) {
        const int64_t taps = (h == 1 ? 3 : 2) * (ww == 1 ? 3 : 2) * (4 / groups);
        for (int64_t c = 1; c < 4; c += 2) expected(0, h, ww, c) = static_cast<float>(taps);
      }
    }
    Outputs y;
    CONVKIT_RUN_OR_SKIP(backend(), y = ConvForward(params, x, w, {}, backend()));
    ExpectConv("relu", params, expected, y);
  }
}

// ---- Batch 0 ----

// A batch of 0 is valid: empty outputs; dw and db are zeros (they are overwritten, not left).
TEST_P(SemanticsTest, EmptyBatch) {
  const Conv2dParams params = Conv(3, 3, 2, Pads::uniform(1));
  const Tensor x({0, 5, 7, 4});
  const Tensor w({3, 3, 4, 8}, 1.0f);
  const std::vector<float> b(8, 1.0f);
  ASSERT_EQ(conv2d_output_dims(x.dims(), w.dims(), params), (Dims{0, 3, 4, 8}));
  // Null data is allowed for tensors without elements.
  const ConstTensorView x_null(nullptr, x.dims());
  const TensorView y_null{nullptr, {0, 3, 4, 8}};
  CONVKIT_RUN_OR_SKIP(backend(), conv2d_forward(params, x_null, w, b, y_null, backend()));
  CONVKIT_RUN_OR_SKIP(backend(), Conv2d(params, x.dims(), w, b, backend()).run(x_null, y_null));

  Tensor dw(w.dims(), kGarbage);
  std::vector<float> db(8, kGarbage);
  const ConstTensorView dy_null(nullptr, {0, 3, 4, 8});
  const TensorView dx_null{nullptr, x.dims()};
  CONVKIT_RUN_OR_SKIP(backend(), conv2d_backward(params, x_null, w, dy_null,
                                                 {dx_null, dw.view(), Span(db)}, backend()));
  EXPECT_TRUE(CompareTensors(Case("batch 0"), "dw", Tensor(w.dims()), dw));
  EXPECT_TRUE(CompareVectors(Case("batch 0"), "db", std::vector<float>(8, 0.0f), db));

  for (const PoolMode mode : {PoolMode::kMax, PoolMode::kAverage}) {
    const Pool2dParams pool = Pool(mode, 3, 3, 2, 2, Pads::uniform(1));
    ASSERT_EQ(pool2d_output_dims(x.dims(), pool), (Dims{0, 3, 4, 4}));
    const TensorView py_null{nullptr, {0, 3, 4, 4}};
    CONVKIT_RUN_OR_SKIP(backend(), pool2d_forward(pool, x_null, py_null, backend()));
    CONVKIT_RUN_OR_SKIP(backend(), Pool2d(pool, x.dims(), backend()).run(x_null, py_null));
    CONVKIT_RUN_OR_SKIP(backend(),
                        pool2d_backward(pool, x_null, ConstTensorView(nullptr, {0, 3, 4, 4}),
                                        TensorView{nullptr, x.dims()}, backend()));
  }
}

// ---- Channels, strides, pads, dilation, groups ----

// x = 1 everywhere on {1, 4, 5, C}, w(kh, kw, c, o) = (c + 1) * (o + 1), 3x3, pad 1, b = [0.5, -1]:
// y(h, w, o) = taps(h) * taps(w) * (o + 1) * C (C + 1) / 2 + b[o], where taps counts the kernel
// rows (cols) inside the input: 2 on the border, 3 inside.
TEST_P(SemanticsTest, ConvChannelCounts) {
  for (const int64_t channels : {1, 3, 17}) {
    const Tensor x({1, 4, 5, channels}, 1.0f);
    Tensor w({3, 3, channels, 2});
    for (int64_t kh = 0; kh < 3; ++kh) {
      for (int64_t kw = 0; kw < 3; ++kw) {
        for (int64_t c = 0; c < channels; ++c) {
          for (int64_t o = 0; o < 2; ++o) w(kh, kw, c, o) = static_cast<float>((c + 1) * (o + 1));
        }
      }
    }
    const std::vector<float> b = {0.5f, -1.0f};
    const Conv2dParams params = Conv(3, 3, 1, Pads::uniform(1));
    Tensor expected({1, 4, 5, 2});
    const float channel_sum = static_cast<float>(channels * (channels + 1) / 2);
    for (int64_t h = 0; h < 4; ++h) {
      for (int64_t ww = 0; ww < 5; ++ww) {
        const float taps =
            static_cast<float>((h == 0 || h == 3 ? 2 : 3) * (ww == 0 || ww == 4 ? 2 : 3));
        for (int64_t o = 0; o < 2; ++o) {
          expected(0, h, ww, o) = taps * static_cast<float>(o + 1) * channel_sum + b[o];
        }
      }
    }
    Outputs y;
    CONVKIT_RUN_OR_SKIP(backend(), y = ConvForward(params, x, w, b, backend()));
    ExpectConv("C_in = " + std::to_string(channels), params, expected, y);
  }
}

// x(h, w, c) = 100 c + 10 h + w on {1, 4, 6, C}, window 2x2, stride 2: max = 100 c + 10 (h0 + 1)
// + (w0 + 1), average = 100 c + 10 h0 + w0 + 5.5 (exact in fp32).
TEST_P(SemanticsTest, PoolChannelCounts) {
  for (const int64_t channels : {1, 3, 17}) {
    Tensor x({1, 4, 6, channels});
    for (int64_t h = 0; h < 4; ++h) {
      for (int64_t ww = 0; ww < 6; ++ww) {
        for (int64_t c = 0; c < channels; ++c)
          x(0, h, ww, c) = static_cast<float>(100 * c + 10 * h + ww);
      }
    }
    Tensor expected_max({1, 2, 3, channels});
    Tensor expected_avg({1, 2, 3, channels});
    for (int64_t oh = 0; oh < 2; ++oh) {
      for (int64_t ow = 0; ow < 3; ++ow) {
        for (int64_t c = 0; c < channels; ++c) {
          const float base = static_cast<float>(100 * c + 20 * oh + 2 * ow);
          expected_max(0, oh, ow, c) = base + 11.0f;
          expected_avg(0, oh, ow, c) = base + 5.5f;
        }
      }
    }
    const Pool2dParams max = Pool(PoolMode::kMax, 2, 2, 2, 2);
    const Pool2dParams avg = Pool(PoolMode::kAverage, 2, 2, 2, 2);
    Outputs y;
    CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(max, x, backend()));
    ExpectPool("C = " + std::to_string(channels), max, expected_max, y);
    CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(avg, x, backend()));
    ExpectPool("C = " + std::to_string(channels), avg, expected_avg, y);
  }
}

// Stride 2 with asymmetric pads (top 1, bottom 0, left 0, right 1), 2x2 kernel of ones on
// x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]: OH = OW = floor((3 + 1 - 2) / 2) + 1 = 2.
//   y(0, 0) = x00 + x01 = 3            (row 0 of the window is the top pad)
//   y(0, 1) = x02 = 3                  (col 1 of the window is the right pad)
//   y(1, 0) = x10 + x11 + x20 + x21 = 24
//   y(1, 1) = x12 + x22 = 15
TEST_P(SemanticsTest, ConvStrideAndAsymmetricPads) {
  const Tensor x = MakeTensor({1, 3, 3, 1}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  const Tensor w({2, 2, 1, 1}, 1.0f);
  const Conv2dParams params = Conv(2, 2, 2, {1, 0, 0, 1});
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = ConvForward(params, x, w, {}, backend()));
  ExpectConv("asymmetric pads", params, MakeTensor({1, 2, 2, 1}, {3, 3, 24, 15}), y);

  // Backward with dy = [[1, 2], [3, 4]]: each dy spreads over the input elements of its window,
  // dx = [[1, 1, 2], [3, 3, 4], [3, 3, 4]]; dw(kh, kw) sums x at the tap over the windows:
  //   dw(0, 0) = 0*1 + 0*2 + 4*3 + 6*4 = 36   (top row of windows 0, 1 is padding)
  //   dw(0, 1) = 0*1 + 0*2 + 5*3 + 0*4 = 15   (window 1 and 3's right col is padding)
  //   dw(1, 0) = 1*1 + 3*2 + 7*3 + 9*4 = 64
  //   dw(1, 1) = 2*1 + 0*2 + 8*3 + 0*4 = 26
  //   db = 1 + 2 + 3 + 4 = 10
  ConvGrads g;
  CONVKIT_RUN_OR_SKIP(
      backend(), g = ConvBackward(params, x, w, MakeTensor({1, 2, 2, 1}, {1, 2, 3, 4}), backend()));
  EXPECT_TRUE(CompareTensors(Case("asymmetric pads backward"), "dx",
                             MakeTensor({1, 3, 3, 1}, {1, 1, 2, 3, 3, 4, 3, 3, 4}), g.dx));
  EXPECT_TRUE(CompareTensors(Case("asymmetric pads backward"), "dw",
                             MakeTensor({2, 2, 1, 1}, {36, 15, 64, 26}), g.dw));
  EXPECT_TRUE(CompareVectors(Case("asymmetric pads backward"), "db", std::vector<float>{10}, g.db));
}

// A stride far beyond the input is valid (the axis then has one output) and must not overflow or
// loop per stride phase (a fuzz finding in highway's backward data). x = 1..15 as 3x5, 1x1 kernel
// of 1, stride 2 x (2^62 + 1): y = [[x(0, 0)], [x(2, 0)]] = [[1], [11]]; with dy = [[1], [2]],
// dx has 1 at (0, 0) and 2 at (2, 0), dw = 1*1 + 11*2 = 23, db = 3.
TEST_P(SemanticsTest, HugeStride) {
  const Tensor x = MakeTensor({1, 3, 5, 1}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15});
  const Tensor w({1, 1, 1, 1}, 1.0f);
  Conv2dParams params = Conv(1, 1, 2, {});
  params.stride_w = (int64_t{1} << 62) + 1;
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = ConvForward(params, x, w, {}, backend()));
  ExpectConv("huge stride", params, MakeTensor({1, 2, 1, 1}, {1, 11}), y);
  ConvGrads g;
  CONVKIT_RUN_OR_SKIP(backend(),
                      g = ConvBackward(params, x, w, MakeTensor({1, 2, 1, 1}, {1, 2}), backend()));
  Tensor dx({1, 3, 5, 1});
  dx(0, 0, 0, 0) = 1;
  dx(0, 2, 0, 0) = 2;
  EXPECT_TRUE(CompareTensors(Case("huge stride backward"), "dx", dx, g.dx));
  EXPECT_TRUE(
      CompareTensors(Case("huge stride backward"), "dw", MakeTensor({1, 1, 1, 1}, {23}), g.dw));
  EXPECT_TRUE(CompareVectors(Case("huge stride backward"), "db", std::vector<float>{3}, g.db));
}

// The seed's "convolution" is a correlation: the kernel is not flipped. A single 1 at the centre
// of a 3x3 input, 2x2 kernel [[1, 2], [3, 4]]: output (oh, ow) reads the 1 through tap
// (1 - oh, 1 - ow), so y = [[4, 3], [2, 1]].
TEST_P(SemanticsTest, ConvIsCorrelation) {
  const Tensor x = MakeTensor({1, 3, 3, 1}, {0, 0, 0, 0, 1, 0, 0, 0, 0});
  const Tensor w = MakeTensor({2, 2, 1, 1}, {1, 2, 3, 4});
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = ConvForward(Conv(2, 2), x, w, {}, backend()));
  ExpectConv("correlation", Conv(2, 2), MakeTensor({1, 2, 2, 1}, {4, 3, 2, 1}), y);
  // Backward, dy = [[1, 0], [0, 0]]: dx = w at the top-left, dw = the top-left window of x.
  ConvGrads g;
  CONVKIT_RUN_OR_SKIP(
      backend(),
      g = ConvBackward(Conv(2, 2), x, w, MakeTensor({1, 2, 2, 1}, {1, 0, 0, 0}), backend()));
  EXPECT_TRUE(CompareTensors(Case("correlation backward"), "dx",
                             MakeTensor({1, 3, 3, 1}, {1, 2, 0, 3, 4, 0, 0, 0, 0}), g.dx));
  EXPECT_TRUE(CompareTensors(Case("correlation backward"), "dw",
                             MakeTensor({2, 2, 1, 1}, {0, 0, 0, 1}), g.dw));
  EXPECT_TRUE(CompareVectors(Case("correlation backward"), "db", std::vector<float>{1}, g.db));
}

// Dilation 2, 3x3 kernel w(i, j) = 1 + 3 i + j on x(h, w) = 5 h + w (5x5): the one output taps
// x(2i, 2j), y = sum (1 + 3i + j)(10 i + 2 j) over i, j in 0..2 = 732.
TEST_P(SemanticsTest, ConvDilation) {
  Tensor x({1, 5, 5, 1});
  for (int64_t h = 0; h < 5; ++h) {
    for (int64_t ww = 0; ww < 5; ++ww) x(0, h, ww, 0) = static_cast<float>(5 * h + ww);
  }
  Tensor w({3, 3, 1, 1});
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 3; ++j) w(i, j, 0, 0) = static_cast<float>(1 + 3 * i + j);
  }
  const Conv2dParams params = Conv(3, 3, 1, {}, 2);
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = ConvForward(params, x, w, {}, backend()));
  ExpectConv("dilation 2", params, MakeTensor({1, 1, 1, 1}, {732}), y);

  // Backward, dy = [2]: dx(2i, 2j) = 2 w(i, j), zero between the taps; dw(i, j) = 2 x(2i, 2j).
  ConvGrads g;
  CONVKIT_RUN_OR_SKIP(backend(),
                      g = ConvBackward(params, x, w, MakeTensor({1, 1, 1, 1}, {2}), backend()));
  Tensor expected_dx({1, 5, 5, 1});
  Tensor expected_dw({3, 3, 1, 1});
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      expected_dx(0, 2 * i, 2 * j, 0) = 2.0f * static_cast<float>(1 + 3 * i + j);
      expected_dw(i, j, 0, 0) = 2.0f * static_cast<float>(10 * i + 2 * j);
    }
  }
  EXPECT_TRUE(CompareTensors(Case("dilation 2 backward"), "dx", expected_dx, g.dx));
  EXPECT_TRUE(CompareTensors(Case("dilation 2 backward"), "dw", expected_dw, g.dw));
  EXPECT_TRUE(CompareVectors(Case("dilation 2 backward"), "db", std::vector<float>{2}, g.db));
}

// Groups 2 on x = [1, 2, 3, 4], 1x1 kernel w {1, 1, 2, 4} with rows = input channel within the
// group, cols = output channel: [[1, 10, 100, 1000], [2, 20, 200, 2000]]. Outputs 0, 1 read inputs
// 0, 1; outputs 2, 3 read inputs 2, 3:
//   y = [1*1 + 2*2, 1*10 + 2*20, 3*100 + 4*200, 3*1000 + 4*2000] = [5, 50, 1100, 11000]
TEST_P(SemanticsTest, ConvGroups) {
  const Tensor x = MakeTensor({1, 1, 1, 4}, {1, 2, 3, 4});
  const Tensor w = MakeTensor({1, 1, 2, 4}, {1, 10, 100, 1000, 2, 20, 200, 2000});
  const Conv2dParams params = Conv(1, 1, 1, {}, 1, 2);
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = ConvForward(params, x, w, {}, backend()));
  ExpectConv("groups 2", params, MakeTensor({1, 1, 1, 4}, {5, 50, 1100, 11000}), y);
  // Backward, dy = [1, 1, 1, 1]: dx[i] sums w over its group's outputs, [11, 22, 1100, 2200];
  // dw(i, o) = x[group(o) * 2 + i]: [[1, 1, 3, 3], [2, 2, 4, 4]].
  ConvGrads g;
  CONVKIT_RUN_OR_SKIP(backend(),
                      g = ConvBackward(params, x, w, Tensor({1, 1, 1, 4}, 1.0f), backend()));
  EXPECT_TRUE(CompareTensors(Case("groups 2 backward"), "dx",
                             MakeTensor({1, 1, 1, 4}, {11, 22, 1100, 2200}), g.dx));
  EXPECT_TRUE(CompareTensors(Case("groups 2 backward"), "dw",
                             MakeTensor({1, 1, 2, 4}, {1, 1, 3, 3, 2, 2, 4, 4}), g.dw));
  EXPECT_TRUE(CompareVectors(Case("groups 2 backward"), "db", std::vector<float>(4, 1.0f), g.db));
}

// Depthwise (groups = C_in = C_out = 3), 3x3 kernel, pad 1, on x = c + 1 everywhere (4x4):
// w(kh, kw, 0, c) = c + 2, so y(h, w, c) = taps(h) * taps(w) * (c + 1) * (c + 2).
TEST_P(SemanticsTest, ConvDepthwise) {
  Tensor x({1, 4, 4, 3});
  for (int64_t h = 0; h < 4; ++h) {
    for (int64_t ww = 0; ww < 4; ++ww) {
      for (int64_t c = 0; c < 3; ++c) x(0, h, ww, c) = static_cast<float>(c + 1);
    }
  }
  Tensor w({3, 3, 1, 3});
  for (int64_t i = 0; i < 9; ++i) {
    for (int64_t c = 0; c < 3; ++c) w.data()[i * 3 + c] = static_cast<float>(c + 2);
  }
  const Conv2dParams params = Conv(3, 3, 1, Pads::uniform(1), 1, 3);
  Tensor expected({1, 4, 4, 3});
  for (int64_t h = 0; h < 4; ++h) {
    for (int64_t ww = 0; ww < 4; ++ww) {
      const int64_t taps = (h == 0 || h == 3 ? 2 : 3) * (ww == 0 || ww == 3 ? 2 : 3);
      for (int64_t c = 0; c < 3; ++c)
        expected(0, h, ww, c) = static_cast<float>(taps * (c + 1) * (c + 2));
    }
  }
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = ConvForward(params, x, w, {}, backend()));
  ExpectConv("depthwise", params, expected, y);
}

// ---- Average pooling divisors, global pooling ----

// 4x4 input x(h, w) = 4 h + w + 1, window 2, stride 2, pad 1: windows cover 1, 2 or 4 input
// elements (corners, edges, centre); with the padding every window has 4. All divisors are powers
// of two, so every average is exact.
//   pad excluded: [[1, 5/2, 4], [14/2, 34/4, 20/2], [13, 29/2, 16]]
//   pad included: [[1/4, 5/4, 4/4], [14/4, 34/4, 20/4], [13/4, 29/4, 16/4]]
TEST_P(SemanticsTest, AverageDivisors) {
  Tensor x({1, 4, 4, 1});
  for (int64_t i = 0; i < 16; ++i) x.data()[i] = static_cast<float>(i + 1);
  const Pool2dParams excl = Pool(PoolMode::kAverage, 2, 2, 2, 2, Pads::uniform(1), false, false);
  const Pool2dParams incl = Pool(PoolMode::kAverage, 2, 2, 2, 2, Pads::uniform(1), false, true);
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(excl, x, backend()));
  ExpectPool("divisor", excl, MakeTensor({1, 3, 3, 1}, {1, 2.5f, 4, 7, 8.5f, 10, 13, 14.5f, 16}),
             y);
  CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(incl, x, backend()));
  ExpectPool("divisor", incl,
             MakeTensor({1, 3, 3, 1}, {0.25f, 1.25f, 1, 3.5f, 8.5f, 5, 3.25f, 7.25f, 4}), y);
  // Backward, dy = 1: each input is in one window and gets 1 / divisor.
  Tensor dx;
  const Tensor ones({1, 3, 3, 1}, 1.0f);
  CONVKIT_RUN_OR_SKIP(backend(), dx = PoolBackward(excl, x, ones, backend()));
  EXPECT_TRUE(CompareTensors(Case("divisor, pad excluded, backward"), "dx",
                             MakeTensor({1, 4, 4, 1}, {1, .5f, .5f, 1, .5f, .25f, .25f, .5f,  //
                                                       .5f, .25f, .25f, .5f, 1, .5f, .5f, 1}),
                             dx));
  CONVKIT_RUN_OR_SKIP(backend(), dx = PoolBackward(incl, x, ones, backend()));
  EXPECT_TRUE(CompareTensors(Case("divisor, pad included, backward"), "dx",
                             Tensor({1, 4, 4, 1}, 0.25f), dx));
}

// Overlapping windows with divisors 4, 6 and 9: x = 1..9 (3x3), window 3, stride 1, pad 1. The
// divisions are not exact in binary, so this compares within 2 ulps of the correctly rounded
// quotient. Window (oh, ow) covers rows max(oh-1, 0)..min(oh+1, 2), likewise cols.
TEST_P(SemanticsTest, AverageDivisorsOverlapping) {
  Tensor x({1, 3, 3, 1});
  for (int64_t i = 0; i < 9; ++i) x.data()[i] = static_cast<float>(i + 1);
  Tensor expected_excl({1, 3, 3, 1});
  Tensor expected_incl({1, 3, 3, 1});
  for (int64_t oh = 0; oh < 3; ++oh) {
    for (int64_t ow = 0; ow < 3; ++ow) {
      double sum = 0;
      int count = 0;
      for (int64_t h = std::max<int64_t>(oh - 1, 0); h <= std::min<int64_t>(oh + 1, 2); ++h) {
        for (int64_t ww = std::max<int64_t>(ow - 1, 0); ww <= std::min<int64_t>(ow + 1, 2); ++ww) {
          sum += x(0, h, ww, 0);
          ++count;
        }
      }
      expected_excl(0, oh, ow, 0) = static_cast<float>(sum / count);
      expected_incl(0, oh, ow, 0) = static_cast<float>(sum / 9);
    }
  }
  // Corner (0, 0): (1 + 2 + 4 + 5) / 4 = 3 and 12 / 9; centre: 45 / 9 = 5 both ways.
  EXPECT_EQ(expected_excl(0, 0, 0, 0), 3.0f);
  EXPECT_EQ(expected_excl(0, 1, 1, 0), 5.0f);
  const Tolerance two_ulps = Tolerance::Relative(0x1.0p-22, 0.0);
  Outputs y;
  const Pool2dParams excl = Pool(PoolMode::kAverage, 3, 3, 1, 1, Pads::uniform(1), false, false);
  const Pool2dParams incl = Pool(PoolMode::kAverage, 3, 3, 1, 1, Pads::uniform(1), false, true);
  CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(excl, x, backend()));
  ExpectPool("overlapping divisor", excl, expected_excl, y, two_ulps);
  CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(incl, x, backend()));
  ExpectPool("overlapping divisor", incl, expected_incl, y, two_ulps);
  // Backward, dy = 36 everywhere. Pad included: 36 / 9 = 4 per window; corners are in 4 windows,
  // edges in 6, the centre in 9: [[16, 24, 16], [24, 36, 24], [16, 24, 16]]. Pad excluded: the
  // shares are 36/4 = 9 (corner windows), 36/6 = 6 (edge windows), 36/9 = 4 (centre window):
  //   corner input: 9 + 6 + 6 + 4 = 25; edge input (0, 1): 9 + 6 + 9 + 6 + 4 + 6 = 40;
  //   centre input: 4 * 9 + 4 * 6 + 4 = 64.
  const Tensor dy({1, 3, 3, 1}, 36.0f);
  Tensor dx;
  CONVKIT_RUN_OR_SKIP(backend(), dx = PoolBackward(incl, x, dy, backend()));
  EXPECT_TRUE(CompareTensors(Case("overlapping divisor, pad included, backward"), "dx",
                             MakeTensor({1, 3, 3, 1}, {16, 24, 16, 24, 36, 24, 16, 24, 16}), dx));
  CONVKIT_RUN_OR_SKIP(backend(), dx = PoolBackward(excl, x, dy, backend()));
  EXPECT_TRUE(CompareTensors(Case("overlapping divisor, pad excluded, backward"), "dx",
                             MakeTensor({1, 3, 3, 1}, {25, 40, 25, 40, 64, 40, 25, 40, 25}), dx));
}

// Global pooling: one window over the whole H x W. x {2, 3, 4, 2}: image n, channel c holds
// 24 n + 12 c + (0..11) in a shuffled order whose maximum sits at (h, w) = (1, 2).
TEST_P(SemanticsTest, GlobalPooling) {
  // Positions in row-major (h, w) order; value 11 at index 6 = (1, 2).
  const float order[12] = {3, 0, 7, 5, 1, 9, 11, 2, 10, 4, 8, 6};
  Tensor x({2, 3, 4, 2});
  for (int64_t n = 0; n < 2; ++n) {
    for (int64_t i = 0; i < 12; ++i) {
      for (int64_t c = 0; c < 2; ++c) {
        x(n, i / 4, i % 4, c) = static_cast<float>(24 * n + 12 * c) + order[i];
      }
    }
  }
  Pool2dParams max;
  max.mode = PoolMode::kMax;
  max.global = true;
  max.window_h = max.window_w = 99;  // ignored with global
  Pool2dParams avg = max;
  avg.mode = PoolMode::kAverage;
  ASSERT_EQ(pool2d_output_dims(x.dims(), max), (Dims{2, 1, 1, 2}));
  // max = base + 11, average = base + 5.5.
  Outputs y;
  CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(max, x, backend()));
  ExpectPool("global", max, MakeTensor({2, 1, 1, 2}, {11, 23, 35, 47}), y);
  CONVKIT_RUN_OR_SKIP(backend(), y = PoolForward(avg, x, backend()));
  ExpectPool("global", avg, MakeTensor({2, 1, 1, 2}, {5.5f, 17.5f, 29.5f, 41.5f}), y);
  // Backward: max sends dy to (1, 2); average spreads dy / 12 (dy = 24 -> 2 everywhere).
  const Tensor dy({2, 1, 1, 2}, 24.0f);
  Tensor dx;
  CONVKIT_RUN_OR_SKIP(backend(), dx = PoolBackward(max, x, dy, backend()));
  Tensor expected_max_dx({2, 3, 4, 2});
  for (int64_t n = 0; n < 2; ++n) {
    for (int64_t c = 0; c < 2; ++c) expected_max_dx(n, 1, 2, c) = 24.0f;
  }
  EXPECT_TRUE(CompareTensors(Case("global max backward"), "dx", expected_max_dx, dx));
  CONVKIT_RUN_OR_SKIP(backend(), dx = PoolBackward(avg, x, dy, backend()));
  EXPECT_TRUE(
      CompareTensors(Case("global average backward"), "dx", Tensor({2, 3, 4, 2}, 2.0f), dx));
}

INSTANTIATE_TEST_SUITE_P(Built, SemanticsTest, ::testing::ValuesIn(BackendsToTest()),
                         BackendParamName);

}  // namespace
}  // namespace convkit::test
