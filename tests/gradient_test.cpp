// Gradient tests (DESIGN §8): each backend's backward pass (convolution, transposed convolution,
// pooling) against central finite differences of its own forward pass, on the scalar loss L = sum(y
// * r) with random r (so dL/dy = r).
//
// L is computed in double from the fp32 y. Convolution and average pooling are linear in every
// input, so central differences have no truncation error: what remains is fp32 rounding in y,
// which a relative tolerance of 1e-3 of the gradient's scale covers many times over, while a wrong
// gradient is off by O(1). Max pooling uses pairwise distinct values spaced 0.125 apart and steps
// of 1/64, so the argmax never moves, every value is exact and the differences are exact too.
//
// Each (backend, case) is one test; a backend that refuses a case skips it with the reason.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "tests/test_util.hpp"

namespace convkit::test {
namespace {

// Elements checked one by one per tensor, and random directions checked for the whole tensor.
constexpr int kSampledElements = 16;
constexpr int kDirections = 3;

// sum(y * r) in double.
double Loss(const Tensor& y, const Tensor& r) {
  double sum = 0.0;
  for (int64_t i = 0; i < y.size(); ++i) sum += static_cast<double>(y.data()[i]) * r.data()[i];
  return sum;
}

// The largest |g|: the scale the tolerance is relative to.
double MaxAbs(std::span<const float> g) {
  double m = 0.0;
  for (const float v : g) m = std::max(m, std::fabs(static_cast<double>(v)));
  return m;
}

// Checks `analytic` = dL/dt against central differences of `loss`, which reads `t`: at
// kSampledElements elements (all of them when t is small) and along kDirections random directions.
// t is perturbed by +-h in place and restored. |fd - analytic| <= rtol * max(|analytic|, scale)
// with scale = max |analytic|.
::testing::AssertionResult CheckGradient(const std::string& case_name, const std::string& what,
                                         std::span<float> t, std::span<const float> analytic,
                                         const std::function<double()>& loss, float h, double rtol,
                                         Rng& rng) {
  const int64_t n = static_cast<int64_t>(t.size());
  const double scale = std::max(MaxAbs(analytic), 1e-6);
  if (MaxAbs(analytic) == 0.0) {
    return ::testing::AssertionFailure()
           << case_name << ": " << what << ": the gradient is all zero";
  }
  const auto fail = [&](const std::string& where, double fd, double an) {
    char buf[200];
    std::snprintf(buf, sizeof(buf), "finite difference %.9g, backward %.9g (scale %.3g)", fd, an,
                  scale);
    return ::testing::AssertionFailure()
           << case_name << ": d" << what << " " << where << ": " << buf;
  };
  // Elements.
  std::vector<int64_t> picks;
  if (n <= kSampledElements) {
    for (int64_t i = 0; i < n; ++i) picks.push_back(i);
  } else {
    for (int k = 0; k < kSampledElements; ++k) picks.push_back(rng.UniformInt(0, n - 1));
  }
  for (const int64_t i : picks) {
    const float saved = t[i];
    t[i] = saved + h;
    const double plus = loss();
    const double up = t[i];
    t[i] = saved - h;
    const double minus = loss();
    const double down = t[i];
    t[i] = saved;
    const double fd = (plus - minus) / (up - down);
    if (std::fabs(fd - analytic[i]) >
        rtol * std::max(std::fabs(static_cast<double>(analytic[i])), scale)) {
      return fail("at element " + std::to_string(i), fd, analytic[i]);
    }
  }
  // Directions: L(t + h v) - L(t - h v) = 2 h <analytic, v> for v with entries in {-1, +1}.
  std::vector<float> saved(t.begin(), t.end());
  for (int k = 0; k < kDirections; ++k) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& e : v) e = rng.UniformInt(0, 1) == 0 ? -1.0f : 1.0f;
    double expected = 0.0, step_norm = 0.0;
    for (int64_t i = 0; i < n; ++i) t[i] = saved[i] + h * v[i];
    const double plus = loss();
    std::vector<double> up(t.begin(), t.end());
    for (int64_t i = 0; i < n; ++i) t[i] = saved[i] - h * v[i];
    const double minus = loss();
    // The steps actually taken after rounding: delta_i = up_i - down_i.
    for (int64_t i = 0; i < n; ++i) {
      const double delta = up[i] - static_cast<double>(t[i]);
      expected += static_cast<double>(analytic[i]) * delta;
      step_norm += std::fabs(delta) * scale;
    }
    std::copy(saved.begin(), saved.end(), t.begin());
    const double fd = plus - minus;
    if (std::fabs(fd - expected) > rtol * std::max(std::fabs(expected), step_norm / std::sqrt(n))) {
      return fail("along random direction " + std::to_string(k), fd, expected);
    }
  }
  return ::testing::AssertionSuccess();
}

// ---- The cases ----

struct ConvGradCase {
  Dims x;
  int64_t oc;
  Conv2dParams params;

  Dims w() const { return {params.kernel_h, params.kernel_w, x[3] / params.groups, oc}; }
};

Conv2dParams MakeConv(int64_t kh, int64_t kw, int64_t sh, int64_t sw, Pads pad, int64_t d,
                      int64_t g) {
  Conv2dParams p;
  p.kernel_h = kh;
  p.kernel_w = kw;
  p.stride_h = sh;
  p.stride_w = sw;
  p.pad = pad;
  p.dilation_h = p.dilation_w = d;
  p.groups = g;
  return p;
}

const std::vector<ConvGradCase>& ConvGradCases() {
  static const std::vector<ConvGradCase> cases = {
      {{2, 5, 6, 4}, 6, MakeConv(3, 3, 1, 1, Pads::uniform(1), 1, 1)},
      {{2, 6, 5, 3}, 5, MakeConv(3, 3, 2, 2, {1, 0, 2, 1}, 1, 1)},
      {{1, 7, 6, 3}, 4, MakeConv(2, 3, 2, 1, {}, 2, 1)},
      {{2, 6, 6, 4}, 6, MakeConv(3, 3, 1, 1, Pads::uniform(2), 2, 2)},
      {{2, 7, 5, 4}, 4, MakeConv(3, 3, 2, 2, Pads::uniform(1), 1, 4)},  // depthwise
      {{1, 7, 8, 3}, 4, MakeConv(1, 1, 3, 3, {}, 1, 1)},                // stride > kernel
      {{1, 6, 5, 3}, 2, MakeConv(5, 5, 1, 1, {2, 2, 0, 1}, 1, 1)},
  };
  return cases;
}

Pool2dParams MakePool(PoolMode mode, int64_t kh, int64_t kw, int64_t sh, int64_t sw, Pads pad,
                      bool ceil_mode = false, bool include_pad = false) {
  Pool2dParams p;
  p.mode = mode;
  p.window_h = kh;
  p.window_w = kw;
  p.stride_h = sh;
  p.stride_w = sw;
  p.pad = pad;
  p.ceil_mode = ceil_mode;
  p.count_include_pad = include_pad;
  return p;
}

Pool2dParams Global(PoolMode mode) {
  Pool2dParams p;
  p.mode = mode;
  p.global = true;
  return p;
}

struct PoolGradCase {
  Dims x;
  Pool2dParams params;
};

const std::vector<PoolGradCase>& PoolGradCases() {
  static const std::vector<PoolGradCase> cases = {
      {{2, 6, 6, 3}, MakePool(PoolMode::kMax, 2, 2, 2, 2, {})},
      {{2, 5, 6, 3}, MakePool(PoolMode::kMax, 3, 3, 1, 1, Pads::uniform(1))},
      {{1, 7, 6, 2}, MakePool(PoolMode::kMax, 3, 3, 2, 2, Pads::uniform(1), true)},
      {{1, 7, 5, 3}, MakePool(PoolMode::kMax, 3, 2, 2, 1, {0, 2, 1, 0})},
      {{2, 5, 6, 3}, MakePool(PoolMode::kAverage, 3, 3, 1, 1, Pads::uniform(1), false, false)},
      {{2, 5, 6, 3}, MakePool(PoolMode::kAverage, 3, 3, 1, 1, Pads::uniform(1), false, true)},
      {{1, 7, 7, 2}, MakePool(PoolMode::kAverage, 2, 2, 2, 2, Pads::uniform(1), true, true)},
      {{2, 4, 5, 3}, Global(PoolMode::kMax)},
      {{2, 4, 5, 3}, Global(PoolMode::kAverage)},
  };
  return cases;
}

// gtest parameter names: [A-Za-z0-9_] only.
std::string Sanitize(const std::string& s) {
  std::string out;
  for (const char ch : s) {
    out += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  }
  return out;
}

// A suite over (backend, case index) of `Cases()`: one test per pair, named
// "backend_index_params".
using GradParam = std::tuple<std::string, int>;
template <auto Cases>
class GradientTest : public ::testing::TestWithParam<GradParam> {
 protected:
  const std::string& backend() const { return std::get<0>(GetParam()); }
  int index() const { return std::get<1>(GetParam()); }
  const auto& grad_case() const { return Cases()[index()]; }

 public:
  static auto Params() {
    return ::testing::Combine(::testing::ValuesIn(BackendsToTest()),
                              ::testing::Range(0, static_cast<int>(Cases().size())));
  }
  static std::string Name(const ::testing::TestParamInfo<GradParam>& info) {
    return std::get<0>(info.param) + "_" + std::to_string(std::get<1>(info.param)) + "_" +
           Sanitize(to_string(Cases()[std::get<1>(info.param)].params));
  }
};

// A layer with weights and a bias (convolution, transposed convolution) on one backend.
struct WeightedLayer {
  Dims x, w, y;
  int64_t c_out = 0;
  std::function<void(ConstTensorView x, ConstTensorView w, std::span<const float> b, TensorView y)>
      forward;
  std::function<void(ConstTensorView x, ConstTensorView w, ConstTensorView dy, const Conv2dGrads&)>
      backward;
};

// The layer's dx, dw and db against central finite differences of its forward, on normal x, w, b
// and r drawn from `seed` in that order. A refusal skips the test: call it last in a test body.
void ExpectGradientsMatch(const std::string& name, const std::string& backend,
                          const WeightedLayer& layer, uint64_t seed) {
  Rng rng(seed);
  Tensor x(layer.x), w(layer.w), r(layer.y), y(layer.y);
  std::vector<float> b(static_cast<size_t>(layer.c_out));
  FillNormal(Span(x), rng);
  FillNormal(Span(w), rng);
  FillNormal(Span(b), rng);
  FillNormal(Span(r), rng);
  const auto loss = [&] {
    layer.forward(x, w, b, y);
    return Loss(y, r);
  };
  CONVKIT_RUN_OR_SKIP(backend, loss());
  Tensor dx(layer.x, -7.0f), dw(layer.w, -7.0f);
  std::vector<float> db(static_cast<size_t>(layer.c_out), -7.0f);
  CONVKIT_RUN_OR_SKIP(backend, layer.backward(x, w, r, {dx.view(), dw.view(), Span(db)}));
  const float h = 0x1.0p-4f;
  const double rtol = 1e-3;
  EXPECT_TRUE(CheckGradient(name, "x", Span(x), Span(dx), loss, h, rtol, rng));
  EXPECT_TRUE(CheckGradient(name, "w", Span(w), Span(dw), loss, h, rtol, rng));
  EXPECT_TRUE(CheckGradient(name, "b", Span(b), Span(db), loss, h, rtol, rng));
}

// ---- Convolution ----

class ConvGradientTest : public GradientTest<ConvGradCases> {};

TEST_P(ConvGradientTest, MatchesFiniteDifferences) {
  const ConvGradCase& c = grad_case();
  const std::string name = backend() + ": conv2d x " + to_string(c.x) + " oc " +
                           std::to_string(c.oc) + " " + to_string(c.params);
  const WeightedLayer layer{
      c.x,
      c.w(),
      conv2d_output_dims(c.x, c.w(), c.params),
      c.oc,
      [&](ConstTensorView x, ConstTensorView w, std::span<const float> b, TensorView y) {
        conv2d_forward(c.params, x, w, b, y, backend());
      },
      [&](ConstTensorView x, ConstTensorView w, ConstTensorView dy, const Conv2dGrads& g) {
        conv2d_backward(c.params, x, w, dy, g, backend());
      }};
  ExpectGradientsMatch(name, backend(), layer, 0xc0ffee + index());
}

INSTANTIATE_TEST_SUITE_P(Built, ConvGradientTest, ConvGradientTest::Params(),
                         ConvGradientTest::Name);

// ---- Transposed convolution ----

struct TransposeGradCase {
  Dims x;
  int64_t c_out;
  Conv2dTransposeParams params;

  Dims w() const { return {params.kernel_h, params.kernel_w, c_out / params.groups, x[3]}; }
};

Conv2dTransposeParams MakeTranspose(int64_t k, int64_t s, Pads pad, int64_t d, int64_t g,
                                    int64_t op) {
  Conv2dTransposeParams p;
  p.kernel_h = p.kernel_w = k;
  p.stride_h = p.stride_w = s;
  p.pad = pad;
  p.dilation_h = p.dilation_w = d;
  p.groups = g;
  p.output_padding_h = p.output_padding_w = op;
  return p;
}

const std::vector<TransposeGradCase>& TransposeGradCases() {
  static const std::vector<TransposeGradCase> cases = {
      {{2, 3, 4, 4}, 6, MakeTranspose(2, 2, {}, 1, 1, 0)},
      {{2, 3, 3, 5}, 4, MakeTranspose(4, 2, Pads::uniform(1), 1, 1, 0)},
      {{1, 4, 3, 3}, 5, MakeTranspose(3, 2, {1, 0, 2, 1}, 1, 1, 1)},
      {{2, 4, 4, 4}, 6, MakeTranspose(3, 1, Pads::uniform(1), 2, 2, 0)},
      {{2, 4, 3, 4}, 4, MakeTranspose(3, 2, Pads::uniform(1), 1, 4, 1)},  // depthwise
      {{1, 3, 4, 3}, 4, MakeTranspose(3, 1, {}, 2, 1, 1)},  // output_padding >= stride
  };
  return cases;
}

class TransposeGradientTest : public GradientTest<TransposeGradCases> {};

TEST_P(TransposeGradientTest, MatchesFiniteDifferences) {
  const TransposeGradCase& c = grad_case();
  const std::string name = backend() + ": conv2d_transpose x " + to_string(c.x) + " c_out " +
                           std::to_string(c.c_out) + " " + to_string(c.params);
  const WeightedLayer layer{
      c.x,
      c.w(),
      conv2d_transpose_output_dims(c.x, c.w(), c.params),
      c.c_out,
      [&](ConstTensorView x, ConstTensorView w, std::span<const float> b, TensorView y) {
        conv2d_transpose_forward(c.params, x, w, b, y, backend());
      },
      [&](ConstTensorView x, ConstTensorView w, ConstTensorView dy, const Conv2dGrads& g) {
        conv2d_transpose_backward(c.params, x, w, dy, g, backend());
      }};
  ExpectGradientsMatch(name, backend(), layer, 0x7a0 + index());
}

INSTANTIATE_TEST_SUITE_P(Built, TransposeGradientTest, TransposeGradientTest::Params(),
                         TransposeGradientTest::Name);

// ---- Pooling ----

class PoolGradientTest : public GradientTest<PoolGradCases> {};

TEST_P(PoolGradientTest, MatchesFiniteDifferences) {
  const PoolGradCase& c = grad_case();
  const bool max_mode = c.params.mode == PoolMode::kMax;
  const std::string name = backend() + ": pool2d x " + to_string(c.x) + " " + to_string(c.params);
  Rng rng(0xfeed + index());
  Tensor x(c.x);
  if (max_mode) {
    FillDistinct(Span(x), rng, 0.125f);  // the argmax must not move under +-1/64 steps
  } else {
    FillNormal(Span(x), rng);
  }
  const Dims y_dims = pool2d_output_dims(c.x, c.params);
  Tensor r(y_dims);
  FillNormal(Span(r), rng);

  Tensor y(y_dims);
  const auto loss = [&] {
    pool2d_forward(c.params, x, y, backend());
    return Loss(y, r);
  };
  CONVKIT_RUN_OR_SKIP(backend(), loss());
  Tensor dx(c.x, -7.0f);
  CONVKIT_RUN_OR_SKIP(backend(), pool2d_backward(c.params, x, r, dx, backend()));

  // Max pooling: exact values, exact differences; average: fp32 rounding of the quotients.
  const float h = max_mode ? 0x1.0p-6f : 0x1.0p-4f;
  const double rtol = max_mode ? 1e-6 : 1e-3;
  EXPECT_TRUE(CheckGradient(name, "x", Span(x), Span(dx), loss, h, rtol, rng));
}

INSTANTIATE_TEST_SUITE_P(Built, PoolGradientTest, PoolGradientTest::Params(),
                         PoolGradientTest::Name);

}  // namespace
}  // namespace convkit::test
