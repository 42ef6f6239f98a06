// Semantics the issue names that need every backend against hand values: denormals (DESIGN §4:
// "denormal inputs give correct results"; highway's flush on request), NaN through a convolution
// and through max pooling's fast paths, every activation over a dense sweep of floats, an in-place
// residual on a long reduction, and the documented deviation between backends: ReLU of a NaN
// pre-activation.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "tests/equivalence/grid.hpp"

namespace convkit::test {
namespace {

class EdgeValueTest : public ::testing::TestWithParam<std::string> {
 protected:
  const std::string& backend() const { return GetParam(); }
};

constexpr float kMinDenormal = 0x1.0p-149f;
constexpr float kInf = std::numeric_limits<float>::infinity();

// Integer data scaled by 2^-149 are exact multiples of the smallest denormal, and so is every
// partial sum: y(x * 2^-149) == y(x) * 2^-149 bit for bit unless a backend flushes denormals.
TEST_P(EdgeValueTest, DenormalsAreNotFlushed) {
  const Conv2dParams params = MakeConv(3, 1, Pads::uniform(1), 1, 1);
  const Dims x_dims{1, 5, 6, 17}, w_dims{3, 3, 17, 19};
  Rng rng(7);
  Tensor x(x_dims), w(w_dims);
  FillIntegers(Span(x), rng, 1, 3);
  FillIntegers(Span(w), rng, -2, 2, true);
  const Dims y_dims = conv2d_output_dims(x_dims, w_dims, params);
  Tensor y_int(y_dims), x_small = x;
  conv2d_forward(params, x, w, {}, y_int, "reference");
  for (float& v : Span(x_small)) v *= kMinDenormal;
  Tensor y(y_dims, kBackendFill);
  CONVKIT_RUN_OR_SKIP(backend(), conv2d_forward(params, x_small, w, {}, y, backend()));
  for (float& v : Span(y_int)) v *= kMinDenormal;
  EXPECT_TRUE(CompareTensors(backend() + " conv2d denormal x", "y", y_int, y));
  EXPECT_TRUE(NotMostlyZero(backend() + " conv2d denormal x", "y", y, 0.2));

  // Max pooling selects a denormal (forward) and routes the gradient by comparing denormals.
  Tensor p(x_dims);
  FillDistinct(Span(p), rng, 1.0f);
  Tensor p_small = p;
  for (float& v : Span(p_small)) v *= kMinDenormal;
  const Pool2dParams pool = MakePool(PoolMode::kMax, 3, 2, Pads::uniform(1));
  const Dims py = pool2d_output_dims(x_dims, pool);
  Tensor expected(py), actual(py, kBackendFill);
  pool2d_forward(pool, p, expected, "reference");
  for (float& v : Span(expected)) v *= kMinDenormal;
  CONVKIT_RUN_OR_SKIP(backend(), pool2d_forward(pool, p_small, actual, backend()));
  EXPECT_TRUE(CompareTensors(backend() + " max pool denormal x", "y", expected, actual));
  Tensor dy(py, 1.0f), dx_ref(x_dims), dx(x_dims, kBackendFill);
  pool2d_backward(pool, p, dy, dx_ref, "reference");
  CONVKIT_RUN_OR_SKIP(backend(), pool2d_backward(pool, p_small, dy, dx, backend()));
  EXPECT_TRUE(CompareTensors(backend() + " max pool denormal x", "dx", dx_ref, dx));
}

// convkit::set_flush_denormals for one scope, then IEEE again.
class FlushDenormals {
 public:
  FlushDenormals() { set_flush_denormals(true); }
  ~FlushDenormals() { set_flush_denormals(false); }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;
};

// conv2d of integer data scaled so that x is denormal (x_scale 2^-149: highway's DAZ reads it as
// zero) or so that every product is (x and w 2^-70: FTZ writes each as zero), against the reference
// on the unscaled data scaled back: y_int * x_scale * w_scale exactly (every partial sum is a
// small multiple of the smallest denormal), or all zero (+0 or -0) when flushed.
::testing::AssertionResult ConvOfScaledIntegers(const std::string& backend, int64_t k,
                                                float x_scale, float w_scale, bool flushed) {
  const Conv2dParams params = MakeConv(k, 1, Pads::uniform(k / 2), 1, 1);
  const Dims x_dims{1, 16, 16, 17}, w_dims{k, k, 17, 19};
  Rng rng(11);
  Tensor x(x_dims), w(w_dims);
  FillIntegers(Span(x), rng, 1, 3);
  FillIntegers(Span(w), rng, -2, 2, true);
  const Dims y_dims = conv2d_output_dims(x_dims, w_dims, params);
  Tensor expected(y_dims);
  conv2d_forward(params, x, w, {}, expected, "reference");
  for (float& v : Span(expected)) v *= x_scale * w_scale;
  for (float& v : Span(x)) v *= x_scale;
  for (float& v : Span(w)) v *= w_scale;
  Tensor y(y_dims, kBackendFill);
  conv2d_forward(params, x, w, {}, y, backend);
  const std::string where = backend + " " + std::to_string(k) + "x" + std::to_string(k) +
                            (flushed ? " flushed" : " IEEE");
  if (!flushed) {
    if (::testing::AssertionResult same = CompareTensors(where, "y", expected, y); !same) {
      return same;
    }
    return NotMostlyZero(where, "y", y, 0.2);
  }
  // Flushed: every output a zero (of the sign of the result FTZ replaced).
  const auto values = Span(y);
  const auto nonzero = std::count_if(values.begin(), values.end(), [](float v) { return v != 0; });
  if (nonzero == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << where << ": " << nonzero << " of " << values.size() << " outputs are not zero";
}

// set_flush_denormals(true): highway reads denormal inputs as zero and writes denormal results as
// zero, on one thread and on two, in its 1x1, 3x3 and 5x5 kernels; reference and
// onednn keep IEEE results. Off again, every thread computes IEEE again: a worker left with DAZ or
// FTZ set would flush the last calls.
TEST_P(EdgeValueTest, FlushDenormalsOnHighwayOnly) {
  const bool highway = backend() == "highway";
  constexpr float kProductScale = 0x1.0p-70f;
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    {
      const FlushDenormals flush;
      for (const int64_t k : {1, 3, 5}) {
        EXPECT_TRUE(ConvOfScaledIntegers(backend(), k, kMinDenormal, 1.0f, highway));
        EXPECT_TRUE(ConvOfScaledIntegers(backend(), k, kProductScale, kProductScale, highway));
      }
    }
    for (const int64_t k : {1, 3, 5}) {
      EXPECT_TRUE(ConvOfScaledIntegers(backend(), k, kMinDenormal, 1.0f, false));
      EXPECT_TRUE(ConvOfScaledIntegers(backend(), k, kProductScale, kProductScale, false));
    }
  }
  set_num_threads(0);
}

// One NaN in x makes NaN exactly the outputs whose window reads it (no activation); every other
// output is finite. 1x1 input pixel (2, 3) of {1, 5, 6, 4}, 3x3 kernel, pad 1, stride 1: outputs
// (h, w) with |h - 2| <= 1 and |w - 3| <= 1, on every output channel.
TEST_P(EdgeValueTest, ConvNaNPropagates) {
  const Conv2dParams params = MakeConv(3, 1, Pads::uniform(1));
  Tensor x({1, 5, 6, 4}, 1.0f), w({3, 3, 4, 5}, 0.5f);
  x(0, 2, 3, 1) = kNaN;
  Tensor y({1, 5, 6, 5}, kBackendFill);
  CONVKIT_RUN_OR_SKIP(backend(), conv2d_forward(params, x, w, {}, y, backend()));
  for (int64_t h = 0; h < 5; ++h) {
    for (int64_t v = 0; v < 6; ++v) {
      for (int64_t o = 0; o < 5; ++o) {
        const bool reads_nan = std::abs(h - 2) <= 1 && std::abs(v - 3) <= 1;
        EXPECT_EQ(std::isnan(y(0, h, v, o)), reads_nan)
            << backend() << ": y at (n, h, w, c) = (0, " << h << ", " << v << ", " << o
            << ") = " << FloatString(y(0, h, v, o));
      }
    }
  }
}

// Every activation over a dense sweep of floats (every 2^14-th bit pattern of each sign: 512 per
// binade, denormals included) and the edge values NaN, ±inf, ±0, ±FLT_MAX, against the reference,
// without and with the linear map after the activation (PostOpVariant::kScale, kShift):
// bit-exact for the exact activations, within 4 ulp for the others, NaN exactly where the
// reference has NaN (DESIGN §4). y = act(x) through a 1x1 depthwise convolution with unit weights
// (x * 1 is exact), so the backends' own epilogues run; 16 channels fill vectors, the odd width a
// masked tail.
TEST_P(EdgeValueTest, ActivationsOverADenseSweep) {
  std::vector<float> values = {kNaN,
                               -kNaN,
                               std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(),
                               0.0f,
                               -0.0f,
                               std::numeric_limits<float>::max(),
                               -std::numeric_limits<float>::max(),
                               std::numeric_limits<float>::denorm_min(),
                               -std::numeric_limits<float>::denorm_min(),
                               -3.0f,
                               3.0f,
                               6.0f,
                               -2.0f,
                               5.0f};
  for (uint64_t bits = 0; bits < 0x7f800000u; bits += 1u << 14) {
    values.push_back(std::bit_cast<float>(static_cast<uint32_t>(bits)));
    values.push_back(-std::bit_cast<float>(static_cast<uint32_t>(bits)));
  }
  constexpr int64_t kChannels = 16;
  const int64_t width = static_cast<int64_t>(values.size() + kChannels - 1) / kChannels;
  Tensor x({1, 3, width, kChannels}, 1.0f);
  std::copy(values.begin(), values.end(), x.data());
  const Tensor w({1, 1, 1, kChannels}, 1.0f);
  for (int64_t i = 0; i < 22; ++i) {
    PostOpVariant post = PostOpVariantFor(i % 11 * 12);  // every activation, no residual
    post.linear = i >= 11;                               // then with the linear map after it
    Conv2dParams params = MakeConv(1, 1, {}, 1, kChannels);
    post.ApplyTo(params);
    const std::string name = backend() + " " + post.ToString();
    Tensor expected(x.dims()), y(x.dims(), kBackendFill);
    conv2d_forward(params, x, w, {}, expected, "reference");
    if (auto why = RefusalOf([&] { conv2d_forward(params, x, w, {}, y, backend()); })) {
      std::printf("%s refused: %s\n", name.c_str(), why->c_str());
      continue;
    }
    EXPECT_TRUE(CompareTensors(name, "y", expected, y, PostOpTolerance(post, 0.0)));
  }
}

// An in-place residual (r is y) on a reduction long enough that highway slices it and keeps
// partial sums in y between slices (it then does not slice: the partial sums would overwrite r),
// before and after the activation, one-shot and through a plan.
TEST_P(EdgeValueTest, InPlaceResidualOnALongReduction) {
  const Dims x_dims{1, 3, 5, 2048};
  Rng rng(77);
  Tensor x(x_dims), w({1, 1, 2048, 64}), r({1, 3, 5, 64});
  FillIntegers(Span(x), rng, -2, 2);
  FillIntegers(Span(w), rng, -2, 2);
  FillIntegers(Span(r), rng, -9, 9);
  for (const bool after : {false, true}) {
    Conv2dParams params = MakeConv(1, 1, {});
    params.activation = Activation::kLeakyRelu;
    params.activation_alpha = 0.125f;
    params.residual_after_activation = after;
    const std::string name = backend() + (after ? " act+r" : " +r") + " in place, K 2048";
    Tensor expected({1, 3, 5, 64}), y({1, 3, 5, 64}), y_plan({1, 3, 5, 64});
    ConvForwardWithResidual(params, x, w, {}, ResidualMode::kBefore, r, expected, "reference");
    CONVKIT_RUN_OR_SKIP(backend(), ConvForwardWithResidual(params, x, w, {}, ResidualMode::kInPlace,
                                                           r, y, backend()));
    EXPECT_TRUE(CompareTensors(name, "y (one-shot)", expected, y));
    const Conv2d plan(params, x_dims, w, {}, backend());
    RunWithResidual(plan, x, ResidualMode::kInPlace, r, y_plan);
    EXPECT_TRUE(CompareTensors(name, "y (plan)", expected, y_plan));
  }
}

// relu(NaN) is NaN and relu(-2) is +0 on every backend that runs relu (DESIGN §4; before issue
// 14, highway's max(z, 0) and oneDNN's clip gave +0 for NaN). oneDNN refuses relu: its kernels
// cannot keep NaN (onednn_post_ops.hpp).
TEST_P(EdgeValueTest, ReluOfNaNIsNaN) {
  Conv2dParams params = MakeConv(1, 1, {});
  params.activation = Activation::kRelu;
  Tensor x({1, 1, 2, 1}), w({1, 1, 1, 1}, 1.0f);
  x(0, 0, 0, 0) = kNaN;
  x(0, 0, 1, 0) = -2.0f;
  Tensor y({1, 1, 2, 1}, kBackendFill);
  CONVKIT_RUN_OR_SKIP(backend(), conv2d_forward(params, x, w, {}, y, backend()));
  EXPECT_EQ(std::bit_cast<uint32_t>(y(0, 0, 1, 0)), 0u) << backend() << ": relu(-2) must be +0";
  EXPECT_TRUE(std::isnan(y(0, 0, 0, 0))) << backend() << ": " << FloatString(y(0, 0, 0, 0));
}

// Max pooling at a size where the vector backends take their fast paths (full windows several at a
// time, a compare-and-keep max on rows with no NaN) with NaN and infinities placed where those
// paths must hand over to the exact one: a NaN after a larger value in its window's row-major
// order, a NaN only in an input row that two output rows share (k3 s2: rows 2 oh + 1), -inf filling
// a window, +inf tied with a later +inf. Forward and backward against reference, at 1 and 2
// threads.
TEST_P(EdgeValueTest, MaxPoolNonFiniteAtScale) {
  const Dims x_dims{2, 41, 45, 37};  // past the backends' serial threshold: 2 threads split it
  Rng rng(41);
  Tensor x(x_dims);
  FillDistinct(Span(x), rng, 0.25f);
  x(0, 4, 6, 3) = 1e6f;    // a large value first ...
  x(0, 5, 6, 3) = kNaN;    // ... then a NaN in the same windows
  x(1, 7, 10, 20) = kNaN;  // row 7 = 2 * 3 + 1: shared by output rows 3 and 4 (k3 s2 p1)
  for (int64_t h = 12; h < 15; ++h) {
    for (int64_t w = 0; w < 45; ++w) x(1, h, w, 36) = -kInf;  // whole windows of -inf
  }
  x(0, 16, 2, 0) = kInf;
  x(0, 16, 3, 0) = kInf;  // tied +inf: the first one wins
  for (const Pool2dParams& params : {MakePool(PoolMode::kMax, 3, 2, Pads::uniform(1)),
                                     MakePool(PoolMode::kMax, 3, 1, Pads::uniform(1))}) {
    const std::string name = backend() + " max pool " + to_string(params);
    const Dims y_dims = pool2d_output_dims(x_dims, params);
    Tensor y_ref(y_dims), dx_ref(x_dims), dy(y_dims);
    FillIntegers(Span(dy), rng, 1, 4);
    pool2d_forward(params, x, y_ref, "reference");
    pool2d_backward(params, x, dy, dx_ref, "reference");
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      Tensor y(y_dims, kBackendFill), dx(x_dims, kBackendFill);
      CONVKIT_RUN_OR_SKIP(backend(), pool2d_forward(params, x, y, backend()));
      CONVKIT_RUN_OR_SKIP(backend(), pool2d_backward(params, x, dy, dx, backend()));
      const std::string at = name + ", " + std::to_string(threads) + " threads";
      EXPECT_TRUE(CompareTensors(at, "y", y_ref, y));
      EXPECT_TRUE(CompareTensors(at, "dx", dx_ref, dx));
    }
    set_num_threads(0);
  }
}

// Global pooling at batch 1 has one output row, so the vector backends split its channels
// between threads (highway: one chunk of whole vectors per thread, C 40 leaving a partial last
// chunk). A NaN in one chunk's channels only must send that chunk, not the other, to the exact
// selection; +inf and -inf fill whole channels. Max and average (integer data: exact sums)
// against the reference at 1 and 2 threads, and real data bit for bit across the thread counts.
TEST_P(EdgeValueTest, GlobalPoolsAcrossThreads) {
  const Dims x_dims{1, 90, 90, 40};  // 324,000 window reads: past the serial threshold
  Rng rng(47);
  Tensor x(x_dims), real(x_dims);
  FillIntegers(Span(x), rng, -8, 8);
  FillNormal(Span(real), rng);
  x(0, 50, 61, 37) = 100.0f;  // a large value first in channel 37 ...
  x(0, 70, 3, 37) = kNaN;     // ... then a NaN in it: channel 37's output is NaN
  for (int64_t h = 0; h < 90; ++h) {
    for (int64_t w = 0; w < 90; ++w) {
      x(0, h, w, 5) = -kInf;  // a channel of -inf
      x(0, h, w, 20) = kInf;  // and one of +inf
    }
  }
  for (const PoolMode mode : {PoolMode::kMax, PoolMode::kAverage}) {
    for (const int64_t stride : {int64_t{1}, int64_t{90}}) {
      const Pool2dParams params = MakePool(mode, 90, stride, Pads{0, 0, 0, 0});
      const std::string name = backend() + " global pool " + to_string(params);
      const Dims y_dims = pool2d_output_dims(x_dims, params);
      Tensor y_ref(y_dims);
      pool2d_forward(params, x, y_ref, "reference");
      ASSERT_TRUE(std::isnan(y_ref(0, 0, 0, 37)));
      std::vector<Tensor> on_real;
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        Tensor y(y_dims, kBackendFill), y_real(y_dims, kBackendFill);
        CONVKIT_RUN_OR_SKIP(backend(), pool2d_forward(params, x, y, backend()));
        CONVKIT_RUN_OR_SKIP(backend(), pool2d_forward(params, real, y_real, backend()));
        EXPECT_TRUE(
            CompareTensors(name + ", " + std::to_string(threads) + " threads", "y", y_ref, y));
        on_real.push_back(std::move(y_real));
      }
      if (backend() != "onednn") {  // oneDNN does not promise bits independent of the threads
        for (int64_t c = 0; c < 40; ++c) {
          EXPECT_EQ(std::bit_cast<uint32_t>(on_real[0](0, 0, 0, c)),
                    std::bit_cast<uint32_t>(on_real[1](0, 0, 0, c)))
              << name << ": channel " << c << " differs between 1 and 2 threads";
        }
      }
    }
  }
  set_num_threads(0);
}

// Average backward with the stride past the window: dx rows and columns that no window covers get
// no term and must be +0 (the gather form writes every dx element once).
TEST_P(EdgeValueTest, AveragePoolBackwardLeavesUncoveredZero) {
  const Dims x_dims{2, 17, 19, 40};
  const Pool2dParams params = MakePool(PoolMode::kAverage, 2, 3, Pads{0, 0, 0, 0});
  const Dims y_dims = pool2d_output_dims(x_dims, params);
  Rng rng(43);
  Tensor x(x_dims), dy(y_dims), dx_ref(x_dims);
  FillIntegers(Span(x), rng, -3, 3);
  FillIntegers(Span(dy), rng, -8, 8, true);
  pool2d_backward(params, x, dy, dx_ref, "reference");
  Tensor dx(x_dims, kBackendFill);
  CONVKIT_RUN_OR_SKIP(backend(), pool2d_backward(params, x, dy, dx, backend()));
  EXPECT_TRUE(CompareTensors(backend() + " avg k2 s3", "dx", dx_ref, dx));
  EXPECT_EQ(std::bit_cast<uint32_t>(dx(1, 2, 5, 39)), 0u) << "row 2 is in no window";
  EXPECT_EQ(std::bit_cast<uint32_t>(dx(0, 0, 2, 0)), 0u) << "column 2 is in no window";
  EXPECT_TRUE(NotMostlyZero(backend() + " avg k2 s3", "dx", dx, 0.6));
}

INSTANTIATE_TEST_SUITE_P(EveryBackend, EdgeValueTest, ::testing::ValuesIn(BackendsToTest()),
                         BackendParamName);

}  // namespace
}  // namespace convkit::test
