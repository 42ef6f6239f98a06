// Golden tests (DESIGN §8): the seed assignment's own cases, run through the public API on every
// built backend.
//
// Inputs come from tests/fixtures/*.txt, written by tools/make_golden_fixtures.py, which replays
// the seed's np.random.seed(1) draws. The values the seed prints are hard-coded below: they are the
// golden. Values it does not print come from the script's float64 oracle, stored in the fixtures
// as tensors named expected_*.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/test_util.hpp"

namespace convkit::test {
namespace {

// fp32 results against float64 values: 1e-5 relative, absolute below magnitude 1 (the seed's
// values are O(1); printed ones carry 8 decimals).
constexpr double kRtol = 1e-5;
constexpr double kFloor = 1.0;
const Tolerance kGoldenTolerance = Tolerance::Relative(kRtol, kFloor);

// The named tensors of one fixture file (format in tools/make_golden_fixtures.py).
class Fixture {
 public:
  explicit Fixture(const std::string& name) : name_(name) {
    const std::string path = std::string(CONVKIT_FIXTURE_DIR) + "/" + name + ".txt";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open fixture " + path);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::string keyword;
      if (!(words >> keyword) || keyword[0] == '#') continue;
      std::string tensor_name;
      Dims dims{};
      if (keyword != "tensor" ||
          !(words >> tensor_name >> dims[0] >> dims[1] >> dims[2] >> dims[3])) {
        throw std::runtime_error(path + ": bad line: " + line);
      }
      Tensor t(dims);
      for (int64_t i = 0; i < t.size(); ++i) {
        std::string token;
        if (!(in >> token)) throw std::runtime_error(path + ": " + tensor_name + " is short");
        t.data()[i] = std::strtof(token.c_str(), nullptr);
      }
      tensors_.emplace(tensor_name, std::move(t));
    }
  }

  const Tensor& operator[](const std::string& tensor_name) const {
    const auto it = tensors_.find(tensor_name);
    if (it == tensors_.end()) throw std::runtime_error(name_ + ": no tensor " + tensor_name);
    return it->second;
  }
  std::span<const float> Vector(const std::string& tensor_name) const {
    const Tensor& t = (*this)[tensor_name];
    return {t.data(), static_cast<size_t>(t.size())};
  }

 private:
  std::string name_;
  std::map<std::string, Tensor> tensors_;
};

Conv2dParams SeedConv(int64_t f, int64_t stride, int64_t pad) {
  Conv2dParams p;
  p.kernel_h = p.kernel_w = f;
  p.stride_h = p.stride_w = stride;
  p.pad = Pads::uniform(pad);
  return p;
}

Pool2dParams SeedPool(PoolMode mode, int64_t f, int64_t stride) {
  Pool2dParams p;
  p.mode = mode;
  p.window_h = p.window_w = f;
  p.stride_h = p.stride_w = stride;
  return p;
}

// y[n, h, w, :] of a 4-D tensor, as a vector.
std::vector<float> Pixel(const Tensor& t, int64_t n, int64_t h, int64_t w) {
  std::vector<float> v(static_cast<size_t>(t.dims()[3]));
  for (int64_t c = 0; c < t.dims()[3]; ++c) v[static_cast<size_t>(c)] = t(n, h, w, c);
  return v;
}

// Checks t[n, h, :, :] (a W x C slice, the seed's A[n, h] or dA_prev[n, h]) against printed values.
::testing::AssertionResult SliceMatches(const std::string& what, const Tensor& t, int64_t n,
                                        int64_t h,
                                        const std::vector<std::vector<double>>& printed) {
  const Dims& d = t.dims();
  Tensor expected({1, 1, d[2], d[3]});
  Tensor actual({1, 1, d[2], d[3]});
  if (static_cast<int64_t>(printed.size()) != d[2]) {
    return ::testing::AssertionFailure() << what << ": printed slice has wrong width";
  }
  for (int64_t w = 0; w < d[2]; ++w) {
    for (int64_t c = 0; c < d[3]; ++c) {
      expected(0, 0, w, c) = static_cast<float>(printed[w][c]);
      actual(0, 0, w, c) = t(n, h, w, c);
    }
  }
  return CompareTensors(what, "slice printed by the seed", expected, actual, kGoldenTolerance);
}

class GoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  const std::string& backend() const { return GetParam(); }
  std::string Case(const std::string& what) const { return backend() + ": " + what; }
};

// conv_single_step(a_slice_prev, W, b) = sum(a_slice_prev * W) + b: a 4x4x3 window, one filter.
TEST_P(GoldenTest, ConvSingleStep) {
  const Fixture f("conv_single_step");
  Tensor y({1, 1, 1, 1}, -1.0f);
  CONVKIT_RUN_OR_SKIP(
      backend(), conv2d_forward(SeedConv(4, 1, 0), f["x"], f["w"], f.Vector("b"), y, backend()));
  EXPECT_TRUE(Near(Case("conv_single_step"), "Z", -6.999089450680221, y(0, 0, 0, 0), kRtol));
}

// conv_forward on A_prev 2x5x7x4, W 3x3x4x8, pad 1, stride 2 (seed 003), one-shot and plan.
TEST_P(GoldenTest, ConvForward2x5x7x4) {
  const Fixture f("conv_forward_2x5x7x4");
  const Conv2dParams params = SeedConv(3, 2, 1);
  ASSERT_EQ(conv2d_output_dims(f["x"].dims(), f["w"].dims(), params), (Dims{2, 3, 4, 8}));
  Tensor y({2, 3, 4, 8}, -1.0f);
  CONVKIT_RUN_OR_SKIP(backend(),
                      conv2d_forward(params, f["x"], f["w"], f.Vector("b"), y, backend()));
  const std::string c = Case("conv_forward 2x5x7x4 one-shot");
  EXPECT_TRUE(Near(c, "Z's mean", 0.5511276474566768, Mean(y), kRtol, 0.0));
  EXPECT_TRUE(CompareTensors(c, "Z", f["expected_y"], y, kGoldenTolerance));
  // Z[0, 2, 1] from the float64 oracle on the seed's float64 inputs (the Coursera notebook's
  // expected output; the seeds here print only the mean).
  const std::vector<float> z021 = Pixel(y, 0, 2, 1);
  const double expected_z021[] = {-2.17796037, 8.07171329,  -0.577270397, 3.36286738,
                                  4.48113645,  -2.89198428, 10.9928887,   3.03171932};
  for (int k = 0; k < 8; ++k) {
    EXPECT_TRUE(Near(c, "Z[0,2,1][" + std::to_string(k) + "]", expected_z021[k], z021[k], kRtol));
  }

  Tensor y_plan({2, 3, 4, 8}, -2.0f);
  CONVKIT_RUN_OR_SKIP(backend(), {
    const Conv2d plan(params, f["x"].dims(), f["w"], f.Vector("b"), backend());
    EXPECT_EQ(plan.y_dims(), (Dims{2, 3, 4, 8}));
    plan.run(f["x"], y_plan);
  });
  EXPECT_TRUE(CompareTensors(Case("conv_forward 2x5x7x4 plan"), "Z", f["expected_y"], y_plan,
                             kGoldenTolerance));
}

// conv_forward on A_prev 10x4x4x3, W 2x2x3x8, pad 2, stride 2 (seed 003 §5.1, seed 002).
TEST_P(GoldenTest, ConvForward10x4x4x3) {
  const Fixture f("conv_10x4x4x3");
  Tensor y({10, 4, 4, 8}, -1.0f);
  CONVKIT_RUN_OR_SKIP(
      backend(), conv2d_forward(SeedConv(2, 2, 2), f["x"], f["w"], f.Vector("b"), y, backend()));
  const std::string c = Case("conv_forward 10x4x4x3");
  EXPECT_TRUE(Near(c, "Z's mean", 0.048995203528855794, Mean(y), kRtol, 0.0));
  // The seed prints Z[3, 2, 1] (one pixel, 8 channels).
  const std::vector<float> z321 = Pixel(y, 3, 2, 1);
  const double printed[] = {-0.61490741, -6.7439236, -2.55153897, 1.75698377,
                            3.56208902,  0.53036437, 5.18531798,  8.75898442};
  for (int k = 0; k < 8; ++k) {
    EXPECT_TRUE(Near(c, "Z[3,2,1][" + std::to_string(k) + "]", printed[k], z321[k], kRtol));
  }
  EXPECT_TRUE(CompareTensors(c, "Z", f["expected_y"], y, kGoldenTolerance));
}

// conv_backward(Z, cache) on the same case: dy = Z (seed 003 §5.1).
TEST_P(GoldenTest, ConvBackward10x4x4x3) {
  const Fixture f("conv_10x4x4x3");
  const Tensor& x = f["x"];
  const Tensor& w = f["w"];
  Tensor dx(x.dims(), -1.0f);
  Tensor dw(w.dims(), -1.0f);
  std::vector<float> db(8, -1.0f);
  CONVKIT_RUN_OR_SKIP(backend(), conv2d_backward(SeedConv(2, 2, 2), x, w, f["expected_y"],
                                                 {dx.view(), dw.view(), Span(db)}, backend()));
  const std::string c = Case("conv_backward 10x4x4x3, dy = Z");
  EXPECT_TRUE(Near(c, "dA_mean", 1.45243777754, Mean(dx), kRtol, 0.0));
  EXPECT_TRUE(Near(c, "dW_mean", 1.72699145831, Mean(dw), kRtol, 0.0));
  EXPECT_TRUE(Near(c, "db_mean", 7.83923256462, Mean(ConstTensorView(db.data(), {1, 1, 1, 8})),
                   kRtol, 0.0));
  // dA and dW sum up to 160 products of O(10) terms: relative to their scale (max |dA| ~ 60).
  const Tolerance sums = Tolerance::Relative(kRtol, 10.0);
  EXPECT_TRUE(CompareTensors(c, "dA", f["expected_dx"], dx, sums));
  EXPECT_TRUE(CompareTensors(c, "dW", f["expected_dw"], dw, sums));
  EXPECT_TRUE(CompareVectors(c, "db", f.Vector("expected_db"), db, sums));
}

// pool_forward on A_prev 2x5x5x3, f 3, stride 1 (seed 003 case 1; A[1, 1] from the oracle) and
// stride 2 (case 2; A[0] for max and A[1] for average printed by the seed).
TEST_P(GoldenTest, PoolForward2x5x5x3) {
  const Fixture f("pool_forward_2x5x5x3");
  struct PoolCase {
    PoolMode mode;
    int64_t stride;
    const char* expected;
    Dims dims;
  };
  for (const PoolCase& k : {PoolCase{PoolMode::kMax, 1, "expected_max_s1", {2, 3, 3, 3}},
                            PoolCase{PoolMode::kAverage, 1, "expected_avg_s1", {2, 3, 3, 3}},
                            PoolCase{PoolMode::kMax, 2, "expected_max_s2", {2, 2, 2, 3}},
                            PoolCase{PoolMode::kAverage, 2, "expected_avg_s2", {2, 2, 2, 3}}}) {
    const Pool2dParams params = SeedPool(k.mode, 3, k.stride);
    const std::string c = Case(std::string("pool_forward 2x5x5x3 ") + to_string(params));
    Tensor y(k.dims, -7.0f);
    CONVKIT_RUN_OR_SKIP(backend(), pool2d_forward(params, f["x"], y, backend()));
    EXPECT_TRUE(CompareTensors(c, "A", f[k.expected], y, kGoldenTolerance));
    Tensor y_plan(k.dims, -8.0f);
    CONVKIT_RUN_OR_SKIP(backend(), Pool2d(params, f["x"].dims(), backend()).run(f["x"], y_plan));
    EXPECT_TRUE(CompareTensors(c + " plan", "A", f[k.expected], y_plan, kGoldenTolerance));
    if (k.stride == 2 && k.mode == PoolMode::kMax) {
      EXPECT_TRUE(SliceMatches(
          c + " A[0, 0]", y, 0, 0,
          {{1.74481176, 0.90159072, 1.65980218}, {1.74481176, 1.6924546, 1.65980218}}));
      EXPECT_TRUE(SliceMatches(
          c + " A[0, 1]", y, 0, 1,
          {{1.13162939, 1.51981682, 2.18557541}, {1.13162939, 1.6924546, 2.18557541}}));
    }
    if (k.stride == 2 && k.mode == PoolMode::kAverage) {
      EXPECT_TRUE(SliceMatches(
          c + " A[1, 0]", y, 1, 0,
          {{-0.17313416, 0.32377198, -0.34317572}, {0.02030094, 0.14141479, -0.01231585}}));
      EXPECT_TRUE(SliceMatches(
          c + " A[1, 1]", y, 1, 1,
          {{0.42944926, 0.08446996, -0.27290905}, {0.15077452, 0.28911175, 0.00123239}}));
    }
  }
}

// pool_forward on A_prev 2x4x4x3, f 3, stride 2 (seed 002).
TEST_P(GoldenTest, PoolForward2x4x4x3) {
  const Fixture f("pool_forward_2x4x4x3");
  Tensor y_max({2, 1, 1, 3}, -7.0f);
  Tensor y_avg({2, 1, 1, 3}, -7.0f);
  CONVKIT_RUN_OR_SKIP(backend(),
                      pool2d_forward(SeedPool(PoolMode::kMax, 3, 2), f["x"], y_max, backend()));
  CONVKIT_RUN_OR_SKIP(backend(),
                      pool2d_forward(SeedPool(PoolMode::kAverage, 3, 2), f["x"], y_avg, backend()));
  const std::string c = Case("pool_forward 2x4x4x3 f3 s2");
  EXPECT_TRUE(SliceMatches(c + " max A[0]", y_max, 0, 0, {{1.74481176, 0.86540763, 1.13376944}}));
  EXPECT_TRUE(SliceMatches(c + " max A[1]", y_max, 1, 0, {{1.13162939, 1.51981682, 2.18557541}}));
  EXPECT_TRUE(
      SliceMatches(c + " average A[0]", y_avg, 0, 0, {{0.02105773, -0.20328806, -0.40389855}}));
  EXPECT_TRUE(
      SliceMatches(c + " average A[1]", y_avg, 1, 0, {{-0.22154621, 0.51716526, 0.48155844}}));
}

// create_mask_from_window on the seed's x = randn(2, 3): max pooling's backward over one 2x3
// window sends the whole dy to the maximum, x[0, 0] = 1.62434536.
TEST_P(GoldenTest, CreateMaskFromWindow) {
  const Fixture f("create_mask");
  const Tensor& x = f["x"];
  EXPECT_TRUE(Near("create_mask", "x[0, 0]", 1.62434536, x(0, 0, 0, 0), kRtol));
  EXPECT_TRUE(Near("create_mask", "x[1, 2]", -2.3015387, x(0, 1, 2, 0), kRtol));
  Pool2dParams window = SeedPool(PoolMode::kMax, 2, 1);
  window.window_w = 3;
  Tensor y({1, 1, 1, 1}, -7.0f);
  CONVKIT_RUN_OR_SKIP(backend(), pool2d_forward(window, x, y, backend()));
  EXPECT_TRUE(Near(Case("create_mask"), "max", 1.62434536, y(0, 0, 0, 0), kRtol));
  const Tensor dy({1, 1, 1, 1}, 2.5f);
  Tensor dx(x.dims(), -7.0f);
  CONVKIT_RUN_OR_SKIP(backend(), pool2d_backward(window, x, dy, dx, backend()));
  Tensor expected = f["expected_mask"];
  for (int64_t i = 0; i < expected.size(); ++i) expected.data()[i] *= 2.5f;
  EXPECT_TRUE(CompareTensors(Case("create_mask"), "mask * dy", expected, dx));
}

// distribute_value(2, (2, 2)) = 0.5 everywhere, and distribute_value(100, (10, 10)) sums to 100:
// average pooling's backward over one window.
TEST_P(GoldenTest, DistributeValue) {
  const Pool2dParams two = SeedPool(PoolMode::kAverage, 2, 1);
  const Tensor x2({1, 2, 2, 1}, 3.0f);
  Tensor dx2(x2.dims(), -7.0f);
  CONVKIT_RUN_OR_SKIP(backend(),
                      pool2d_backward(two, x2, Tensor({1, 1, 1, 1}, 2.0f), dx2, backend()));
  EXPECT_TRUE(
      CompareTensors(Case("distribute_value(2, (2, 2))"), "dx", Tensor({1, 2, 2, 1}, 0.5f), dx2));
  const Pool2dParams ten = SeedPool(PoolMode::kAverage, 10, 1);
  const Tensor x10({1, 10, 10, 1}, 3.0f);
  Tensor dx10(x10.dims(), -7.0f);
  CONVKIT_RUN_OR_SKIP(backend(),
                      pool2d_backward(ten, x10, Tensor({1, 1, 1, 1}, 100.0f), dx10, backend()));
  EXPECT_TRUE(CompareTensors(Case("distribute_value(100, (10, 10))"), "dx",
                             Tensor({1, 10, 10, 1}, 1.0f), dx10));
}

// pool_backward on A_prev 5x5x3x2, f 2, stride 1, dA = randn(5, 4, 2, 2) (seed 003 §5.2.3).
TEST_P(GoldenTest, PoolBackwardStride1) {
  const Fixture f("pool_backward_s1");
  const Tensor& x = f["x"];
  const Tensor& dy = f["dy"];
  EXPECT_TRUE(Near("pool_backward fixture", "mean of dA", 0.145713902729, Mean(dy), 1e-6, 0.0));
  Tensor dx_max(x.dims(), -7.0f);
  Tensor dx_avg(x.dims(), -7.0f);
  CONVKIT_RUN_OR_SKIP(backend(),
                      pool2d_backward(SeedPool(PoolMode::kMax, 2, 1), x, dy, dx_max, backend()));
  CONVKIT_RUN_OR_SKIP(
      backend(), pool2d_backward(SeedPool(PoolMode::kAverage, 2, 1), x, dy, dx_avg, backend()));
  const std::string c = Case("pool_backward 5x5x3x2 f2 s1");
  EXPECT_TRUE(SliceMatches(c + " max dA_prev1[1,1]", dx_max, 1, 1,
                           {{0, 0}, {5.05844394, -1.68282702}, {0, 0}}));
  EXPECT_TRUE(SliceMatches(
      c + " average dA_prev2[1,1]", dx_avg, 1, 1,
      {{0.08485462, 0.2787552}, {1.26461098, -0.25749373}, {1.17975636, -0.53624893}}));
  EXPECT_TRUE(
      CompareTensors(c + " max", "dA_prev", f["expected_dx_max"], dx_max, kGoldenTolerance));
  EXPECT_TRUE(
      CompareTensors(c + " average", "dA_prev", f["expected_dx_avg"], dx_avg, kGoldenTolerance));
}

// The same with stride 2, where the circulating solution (vert_start = h) is wrong; the expected
// values come from the script's stride-aware oracle.
TEST_P(GoldenTest, PoolBackwardStride2) {
  const Fixture f("pool_backward_s2");
  const Tensor& x = f["x"];
  const Tensor& dy = f["dy"];
  Tensor dx_max(x.dims(), -7.0f);
  Tensor dx_avg(x.dims(), -7.0f);
  CONVKIT_RUN_OR_SKIP(backend(),
                      pool2d_backward(SeedPool(PoolMode::kMax, 2, 2), x, dy, dx_max, backend()));
  CONVKIT_RUN_OR_SKIP(
      backend(), pool2d_backward(SeedPool(PoolMode::kAverage, 2, 2), x, dy, dx_avg, backend()));
  const std::string c = Case("pool_backward 5x5x3x2 f2 s2");
  EXPECT_TRUE(
      CompareTensors(c + " max", "dA_prev", f["expected_dx_max"], dx_max, kGoldenTolerance));
  EXPECT_TRUE(
      CompareTensors(c + " average", "dA_prev", f["expected_dx_avg"], dx_avg, kGoldenTolerance));
  // Row 4 of each image lies in no window (windows cover rows 0-1 and 2-3): its gradient is zero.
  for (int64_t n = 0; n < 5; ++n) {
    for (int64_t w = 0; w < 3; ++w) {
      for (int64_t ch = 0; ch < 2; ++ch) {
        EXPECT_EQ(dx_max(n, 4, w, ch), 0.0f) << c << " (n, h, w, c) = " << n << ", 4, " << w;
        EXPECT_EQ(dx_avg(n, 4, w, ch), 0.0f) << c << " (n, h, w, c) = " << n << ", 4, " << w;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Built, GoldenTest, ::testing::ValuesIn(BackendsToTest()),
                         BackendParamName);

// zero_pad(x, 3) on the seed's x = randn(4, 3, 3, 2). zero_pad runs in the API, not a backend.
TEST(GoldenZeroPad, SeedPad3) {
  const Fixture f("zero_pad");
  const Tensor& x = f["x"];
  ASSERT_EQ(zero_pad_output_dims(x.dims(), Pads::uniform(3)), (Dims{4, 9, 9, 2}));
  Tensor y({4, 9, 9, 2}, -7.0f);
  zero_pad(x, Pads::uniform(3), y);
  EXPECT_TRUE(SliceMatches(
      "zero_pad x[1,1]", x, 1, 1,
      {{0.90085595, -0.68372786}, {-0.12289023, -0.93576943}, {-0.26788808, 0.53035547}}));
  // x_pad[:, 3:6, 3:6, :] == x exactly; every other element is +0.
  Tensor expected({4, 9, 9, 2});
  for (int64_t n = 0; n < 4; ++n) {
    for (int64_t h = 0; h < 3; ++h) {
      for (int64_t w = 0; w < 3; ++w) {
        for (int64_t c = 0; c < 2; ++c) expected(n, h + 3, w + 3, c) = x(n, h, w, c);
      }
    }
  }
  EXPECT_TRUE(CompareTensors("zero_pad(x, 3)", "x_pad", expected, y));
  EXPECT_TRUE(NotMostlyZero("zero_pad(x, 3)", "x_pad[:, 3:6, 3:6, :]", x));
}

// Asymmetric pads: top 1, bottom 0, left 2, right 1.
TEST(GoldenZeroPad, AsymmetricPads) {
  const Tensor x = MakeTensor({1, 2, 2, 1}, {1, 2, 3, 4});
  const Pads pad{1, 0, 2, 1};
  ASSERT_EQ(zero_pad_output_dims(x.dims(), pad), (Dims{1, 3, 5, 1}));
  Tensor y({1, 3, 5, 1}, -7.0f);
  zero_pad(x, pad, y);
  EXPECT_TRUE(CompareTensors("zero_pad asymmetric", "y",
                             MakeTensor({1, 3, 5, 1}, {0, 0, 0, 0, 0,  //
                                                       0, 0, 1, 2, 0,  //
                                                       0, 0, 3, 4, 0}),
                             y));
}

}  // namespace
}  // namespace convkit::test
