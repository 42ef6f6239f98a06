// Every built backend other than reference against reference, bit for bit, on integer-valued data
// (DESIGN §4, §8; STYLE rules 8, 9): the grid (grid.hpp) forward and backward, and pooling large
// enough to take the streaming paths no cropped grid case reaches.
#include <gtest/gtest.h>

#include <string>

#include "tests/equivalence/grid.hpp"

namespace convkit::test {
namespace {

class EquivalenceTest : public ::testing::TestWithParam<std::string> {
 protected:
  const std::string& backend() const { return GetParam(); }
};

TEST_P(EquivalenceTest, ConvForward) {
  CONVKIT_SKIP_UNLESS_BUILT(backend());
  ConvForwardGrid(backend(), "");
}
TEST_P(EquivalenceTest, ConvForwardBf16) {
  CONVKIT_SKIP_UNLESS_BUILT(backend());
  ConvForwardGrid(backend(), "", Fpmath::kBf16);
}
TEST_P(EquivalenceTest, ConvBackward) {
  CONVKIT_SKIP_UNLESS_BUILT(backend());
  ConvBackwardGrid(backend(), "");
}
TEST_P(EquivalenceTest, PoolForward) {
  CONVKIT_SKIP_UNLESS_BUILT(backend());
  PoolForwardGrid(backend(), "");
}
TEST_P(EquivalenceTest, PoolBackward) {
  CONVKIT_SKIP_UNLESS_BUILT(backend());
  PoolBackwardGrid(backend(), "");
}

INSTANTIATE_TEST_SUITE_P(VsReference, EquivalenceTest, ::testing::ValuesIn(BackendsToCompare()),
                         BackendParamName);

// ---- Pooling large enough to be DRAM-bound ----

// Calls touching more than 32 MiB take the vector backends' streaming-store paths (highway:
// pool/pool2d.cpp's kStreamBytes; its backward then accumulates rows in a ring buffer), which no
// cropped grid case reaches. The ResNet-50 stem pool at N = 10 (x 32 MB, y 8 MB), exact: values
// are multiples of 2520 (divisible by every window count 1..9), so every average is an integer.
class LargePoolTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LargePoolTest, StreamingPathsMatchReference) {
  const std::string& backend = GetParam();
  const Dims x_dims = {10, 112, 112, 64};
  Tensor x(x_dims), dx_ref(x_dims), dx(x_dims);
  Rng rng(0x5ca1ab1e);
  FillIntegers(Span(x), rng, -8, 8);
  for (float& v : Span(x)) v *= 2520.0f;
  // The stem pool (windows overlap); 2x2/2 and 3x2/3x2, whose windows tile dx along W (the
  // second leaves dx's last row to no window): highway's backward writes them without zeroing.
  struct Window {
    int64_t h, w, stride_h, stride_w, pad;
  };
  for (const auto [mode, window] : {std::pair{PoolMode::kMax, Window{3, 3, 2, 2, 1}},
                                    std::pair{PoolMode::kAverage, Window{3, 3, 2, 2, 1}},
                                    std::pair{PoolMode::kMax, Window{2, 2, 2, 2, 0}},
                                    std::pair{PoolMode::kMax, Window{3, 2, 3, 2, 0}}}) {
    const Pool2dParams params{.mode = mode,
                              .window_h = window.h,
                              .window_w = window.w,
                              .stride_h = window.stride_h,
                              .stride_w = window.stride_w,
                              .pad = Pads::uniform(window.pad)};
    const std::string name = backend + " large " + to_string(params);
    const Dims y_dims = pool2d_output_dims(x_dims, params);
    Tensor y_ref(y_dims), y(y_dims), dy(y_dims);
    FillIntegers(Span(dy), rng, -8, 8);
    for (float& v : Span(dy)) v *= 2520.0f;
    pool2d_forward(params, x, y_ref, "reference");
    pool2d_backward(params, x, dy, dx_ref, "reference");
    CONVKIT_RUN_OR_SKIP(backend, pool2d_forward(params, x, y, backend));
    EXPECT_TRUE(CompareTensors(name, "y", y_ref, y));
    EXPECT_TRUE(NotMostlyZero(name, "y", y));
    CONVKIT_RUN_OR_SKIP(backend, pool2d_backward(params, x, dy, dx, backend));
    EXPECT_TRUE(CompareTensors(name, "dx", dx_ref, dx));
    // Max: a window picks one of its 4-9 inputs, so up to ~85 % of dx is rightly zero.
    EXPECT_TRUE(NotMostlyZero(name, "dx", dx, mode == PoolMode::kMax ? 0.9 : 0.5));
  }
}

INSTANTIATE_TEST_SUITE_P(VsReference, LargePoolTest, ::testing::ValuesIn(BackendsToCompare()),
                         BackendParamName);

}  // namespace
}  // namespace convkit::test
