// Every validation rule of the public API raises convkit::Error with its code and a message naming
// the argument, the expected and the given value (DESIGN §6). Nothing is written on error.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "convkit/convkit.hpp"

namespace convkit {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// Runs `call`, expects a convkit::Error with `code` whose message contains `text`.
void ExpectError(const std::function<void()>& call, ErrorCode code, const std::string& text) {
  try {
    call();
  } catch (const Error& e) {
    EXPECT_EQ(error_code_name(e.code()), std::string(error_code_name(code))) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << text;
    return;
  }
  ADD_FAILURE() << "no convkit::Error thrown; expected: " << text;
}

// A valid convolution (the seed's first conv_forward) that each test breaks in one way.
struct ConvCase {
  Conv2dParams params{
      .kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad = Pads::uniform(1)};
  Tensor x{{2, 5, 7, 4}, 1.0f};
  Tensor w{{3, 3, 4, 8}, 1.0f};
  Tensor b{{8, 1, 1, 1}, 1.0f};
  Tensor y{{2, 3, 4, 8}, -7.0f};

  std::span<const float> bias() const { return {b.data(), static_cast<size_t>(b.size())}; }
  void forward() { conv2d_forward(params, x, w, bias(), y, "reference"); }
};

struct ConvError {
  std::string name;
  std::function<void(ConvCase&)> breaks;
  ErrorCode code;
  std::string message;
};

void PrintTo(const ConvError& e, std::ostream* out) { *out << e.name; }

class ConvForwardErrors : public testing::TestWithParam<ConvError> {};

TEST_P(ConvForwardErrors, RaisesItsMessageAndWritesNothing) {
  ConvCase c;
  GetParam().breaks(c);
  const Tensor y_before = c.y;
  ExpectError([&] { c.forward(); }, GetParam().code, GetParam().message);
  if (c.y.dims() == y_before.dims()) {
    for (int64_t i = 0; i < c.y.size(); ++i)
      ASSERT_EQ(c.y.data()[i], y_before.data()[i]) << "y[" << i << "]";
  }
}

const ConvError kConvErrors[] = {
    {"KernelH", [](ConvCase& c) { c.params.kernel_h = 0; }, ErrorCode::kInvalidArgument,
     "conv2d_forward: params.kernel_h: expected >= 1, given 0"},
    {"KernelW", [](ConvCase& c) { c.params.kernel_w = -2; }, ErrorCode::kInvalidArgument,
     "conv2d_forward: params.kernel_w: expected >= 1, given -2"},
    {"StrideH", [](ConvCase& c) { c.params.stride_h = 0; }, ErrorCode::kInvalidArgument,
     "params.stride_h: expected >= 1, given 0"},
    {"StrideW", [](ConvCase& c) { c.params.stride_w = -1; }, ErrorCode::kInvalidArgument,
     "params.stride_w: expected >= 1, given -1"},
    {"DilationH", [](ConvCase& c) { c.params.dilation_h = 0; }, ErrorCode::kInvalidArgument,
     "params.dilation_h: expected >= 1, given 0"},
    {"DilationW", [](ConvCase& c) { c.params.dilation_w = 0; }, ErrorCode::kInvalidArgument,
     "params.dilation_w: expected >= 1, given 0"},
    {"Groups", [](ConvCase& c) { c.params.groups = 0; }, ErrorCode::kInvalidArgument,
     "params.groups: expected >= 1, given 0"},
    {"PadTop", [](ConvCase& c) { c.params.pad.top = -1; }, ErrorCode::kInvalidArgument,
     "params.pad.top: expected >= 0, given -1"},
    {"PadBottom", [](ConvCase& c) { c.params.pad.bottom = -1; }, ErrorCode::kInvalidArgument,
     "params.pad.bottom: expected >= 0, given -1"},
    {"PadLeft", [](ConvCase& c) { c.params.pad.left = -3; }, ErrorCode::kInvalidArgument,
     "params.pad.left: expected >= 0, given -3"},
    {"PadRight", [](ConvCase& c) { c.params.pad.right = -1; }, ErrorCode::kInvalidArgument,
     "params.pad.right: expected >= 0, given -1"},
    {"Activation", [](ConvCase& c) { c.params.activation = static_cast<Activation>(11); },
     ErrorCode::kInvalidArgument,
     "params.activation: expected an Activation from kNone (0) to kGelu (10), given 11"},
    {"ClipLoAboveHi",
     [](ConvCase& c) {
       c.params.activation = Activation::kClip;
       c.params.activation_alpha = 6.0f;
       c.params.activation_beta = 1.0f;
     },
     ErrorCode::kInvalidArgument,
     "conv2d_forward: params.activation_alpha: expected clip's lo (alpha) <= hi (beta) = 1, given "
     "6"},
    {"ClipNaN",
     [](ConvCase& c) {
       c.params.activation = Activation::kClip;
       c.params.activation_beta = std::numeric_limits<float>::quiet_NaN();
     },
     ErrorCode::kInvalidArgument,
     "conv2d_forward: params.activation_beta: expected a finite value for clip, given nan"},
    {"LeakyReluInfiniteSlope",
     [](ConvCase& c) {
       c.params.activation = Activation::kLeakyRelu;
       c.params.activation_alpha = std::numeric_limits<float>::infinity();
     },
     ErrorCode::kInvalidArgument,
     "conv2d_forward: params.activation_alpha: expected a finite value for leaky_relu, given inf"},
    {"HardSigmoidNaNAlpha",
     [](ConvCase& c) {
       c.params.activation = Activation::kHardSigmoid;
       c.params.activation_alpha = std::numeric_limits<float>::quiet_NaN();
     },
     ErrorCode::kInvalidArgument,
     "conv2d_forward: params.activation_alpha: expected a finite value for hardsigmoid, given nan"},
    {"PostScaleNaN",
     [](ConvCase& c) { c.params.post_scale = std::numeric_limits<float>::quiet_NaN(); },
     ErrorCode::kInvalidArgument,
     "conv2d_forward: params.post_scale: expected a finite value for the scale after the "
     "activation, given nan"},
    {"PostShiftInfinite",
     [](ConvCase& c) { c.params.post_shift = -std::numeric_limits<float>::infinity(); },
     ErrorCode::kInvalidArgument,
     "conv2d_forward: params.post_shift: expected a finite value for the shift after the "
     "activation, given -inf"},
    {"XZeroHeight",
     [](ConvCase& c) {
       c.x = Tensor({2, 0, 7, 4});
     },
     ErrorCode::kInvalidArgument,
     "x: expected dims {N >= 0, H >= 1, W >= 1, C >= 1}, given {2, 0, 7, 4}"},
    {"GroupsNotDividingCin", [](ConvCase& c) { c.params.groups = 3; }, ErrorCode::kInvalidArgument,
     "params.groups: expected a divisor of C_in = 4, given 3"},
    {"CoutNotMultipleOfGroups",
     [](ConvCase& c) {
       c.params.groups = 2;
       c.w = Tensor({3, 3, 2, 7});
     },
     ErrorCode::kShapeMismatch,
     "w: expected C_out (dims[3]) >= 1 and a multiple of groups = 2, given {3, 3, 2, 7}"},
    {"WeightDims",
     [](ConvCase& c) {
       c.w = Tensor({3, 2, 4, 8});
     },
     ErrorCode::kShapeMismatch,
     "w: expected dims {3, 3, 4, 8} (KH, KW, C_in / groups, C_out), given {3, 2, 4, 8}"},
    {"WeightDimsGroups", [](ConvCase& c) { c.params.groups = 2; }, ErrorCode::kShapeMismatch,
     "w: expected dims {3, 3, 2, 8} (KH, KW, C_in / groups, C_out), given {3, 3, 4, 8}"},
    {"KernelLargerThanPaddedHeight",
     [](ConvCase& c) {
       c.params.kernel_h = 8;
       c.w = Tensor({8, 3, 4, 8});
     },
     ErrorCode::kInvalidArgument,
     "x height (H + pad.top + pad.bottom): expected a padded input extent >= the (dilated) window "
     "extent 8, given 5 + 1 + 1 = 7"},
    {"DilatedKernelLargerThanPaddedWidth", [](ConvCase& c) { c.params.dilation_w = 5; },
     ErrorCode::kInvalidArgument,
     "x width (W + pad.left + pad.right): expected a padded input extent >= the (dilated) window "
     "extent 11, given 7 + 1 + 1 = 9"},
    {"BiasSize",
     [](ConvCase& c) {
       c.b = Tensor({7, 1, 1, 1});
     },
     ErrorCode::kShapeMismatch, "b: expected 8 elements (C_out), given 7 elements"},
    {"YDims",
     [](ConvCase& c) {
       c.y = Tensor({2, 3, 3, 8});
     },
     ErrorCode::kShapeMismatch, "y: expected dims {2, 3, 4, 8}, given {2, 3, 3, 8}"},
};

INSTANTIATE_TEST_SUITE_P(Rules, ConvForwardErrors, testing::ValuesIn(kConvErrors),
                         [](const auto& info) { return info.param.name; });

TEST(ConvForwardErrorsByView, NullData) {
  ConvCase c;
  ExpectError(
      [&] {
        conv2d_forward(c.params, {nullptr, c.x.dims()}, c.w, c.bias(), c.y);
      },
      ErrorCode::kInvalidArgument,
      "conv2d_forward: x: expected non-null data for {2, 5, 7, 4}, given null");
  ExpectError(
      [&] {
        conv2d_forward(c.params, c.x, {nullptr, c.w.dims()}, c.bias(), c.y);
      },
      ErrorCode::kInvalidArgument, "w: expected non-null data");
  ExpectError(
      [&] {
        conv2d_forward(c.params, c.x, c.w, c.bias(), {nullptr, c.y.dims()});
      },
      ErrorCode::kInvalidArgument, "y: expected non-null data");
  ExpectError(
      [&] {
        conv2d_forward(c.params, c.x, c.w,
                       std::span<const float>(static_cast<const float*>(nullptr), 8), c.y);
      },
      ErrorCode::kInvalidArgument, "b: expected non-null data, given null");
}

TEST(ConvForwardErrorsByView, NegativeBatch) {
  ConvCase c;
  ExpectError(
      [&] {
        conv2d_forward(c.params, {c.x.data(), {-1, 5, 7, 4}}, c.w, c.bias(), c.y);
      },
      ErrorCode::kInvalidArgument,
      "x: expected dims {N >= 0, H >= 1, W >= 1, C >= 1}, given {-1, 5, 7, 4}");
}

TEST(ConvForwardErrorsByView, ElementCountOverflow) {
  ConvCase c;
  ExpectError(
      [&] {
        conv2d_forward(c.params, {c.x.data(), {kMax / 2, 5, 7, 4}}, c.w, c.bias(), c.y);
      },
      ErrorCode::kInvalidArgument, "x: expected an element count that fits in int64");
}

TEST(ConvForwardErrorsByView, PadOverflow) {
  ConvCase c;
  c.params.pad.bottom = kMax;
  ExpectError([&] { c.forward(); }, ErrorCode::kInvalidArgument, "a sum that fits in int64");
}

TEST(ConvForwardErrorsByView, DilationOverflow) {
  ConvCase c;
  c.params.dilation_h = kMax;
  ExpectError([&] { c.forward(); }, ErrorCode::kInvalidArgument,
              "params.dilation_h: expected a product that fits in int64");
}

TEST(ConvForwardErrorsByView, OutputOverlapsInput) {
  ConvCase c;
  Tensor big({2, 5, 7, 8});
  ExpectError(
      [&] {
        conv2d_forward(c.params, {big.data(), {2, 5, 7, 8}}, Tensor({3, 3, 8, 8}), {},
                       {big.data() + 8, {2, 3, 4, 8}});
      },
      ErrorCode::kInvalidArgument, "y: expected memory that does not overlap x");
  ExpectError(
      [&] {
        conv2d_forward(c.params, c.x, c.w, {c.y.data(), 8}, c.y);
      },
      ErrorCode::kInvalidArgument, "y: expected memory that does not overlap b");
}

TEST(ConvForwardErrorsByView, UnknownBackend) {
  ConvCase c;
  ExpectError([&] { conv2d_forward(c.params, c.x, c.w, c.bias(), c.y, "cudnn"); },
              ErrorCode::kBackendUnavailable, "conv2d_forward: backend: expected one of auto, ");
  ExpectError([&] { conv2d_forward(c.params, c.x, c.w, c.bias(), c.y, "cudnn"); },
              ErrorCode::kBackendUnavailable, "given 'cudnn'");
}

// conv2d_backward: its own rules on top of the forward's.
struct BackwardCase : ConvCase {
  Tensor dy{{2, 3, 4, 8}, 1.0f};
  Tensor dx{{2, 5, 7, 4}, -7.0f};
  Tensor dw{{3, 3, 4, 8}, -7.0f};
  Tensor db{{8, 1, 1, 1}, -7.0f};
};

// ---- The residual r of the forward convolution ----

TEST(ConvResidualErrors, WrongDims) {
  ConvCase c;
  const Tensor r({2, 3, 4, 7}, 1.0f);
  const Tensor y_before = c.y;
  ExpectError([&] { conv2d_forward(c.params, c.x, c.w, c.bias(), r, c.y, "reference"); },
              ErrorCode::kShapeMismatch,
              "conv2d_forward: r: expected dims {2, 3, 4, 8}, given {2, 3, 4, 7}");
  for (int64_t i = 0; i < c.y.size(); ++i) ASSERT_EQ(c.y.data()[i], y_before.data()[i]);
}

TEST(ConvResidualErrors, AliasingX) {
  ConvCase c;
  // The first 96 floats of x (which has 280) viewed as a residual of y's dims.
  const ConstTensorView r{c.x.data(), c.y.dims()};
  ExpectError([&] { conv2d_forward(c.params, c.x, c.w, c.bias(), r, c.y, "reference"); },
              ErrorCode::kInvalidArgument,
              "conv2d_forward: r: expected memory that does not overlap x, given overlapping "
              "memory");
}

TEST(ConvResidualErrors, PartlyOverlappingY) {
  ConvCase c;
  std::vector<float> buffer(static_cast<size_t>(c.y.size()) + 1, 1.0f);
  const TensorView y{buffer.data(), c.y.dims()};
  const ConstTensorView r{buffer.data() + 1, c.y.dims()};
  ExpectError([&] { conv2d_forward(c.params, c.x, c.w, c.bias(), r, y, "reference"); },
              ErrorCode::kInvalidArgument,
              "conv2d_forward: r: expected memory that does not overlap y, given overlapping "
              "memory");
}

TEST(ConvResidualErrors, PlanRunChecksR) {
  ConvCase c;
  const Conv2d plan(c.params, c.x.dims(), c.w, c.bias(), "reference");
  const Tensor r({2, 3, 4, 9}, 1.0f);
  ExpectError([&] { plan.run(c.x, r, c.y); }, ErrorCode::kShapeMismatch,
              "Conv2d::run: r: expected dims {2, 3, 4, 8}, given {2, 3, 4, 9}");
  ExpectError(
      [&] {
        plan.run(c.x, ConstTensorView{nullptr, c.y.dims()}, c.y);
      },
      ErrorCode::kInvalidArgument, "Conv2d::run: r: expected non-null data");
}

TEST(ConvBackwardErrors, ActivationMustBeNone) {
  BackwardCase c;
  c.params.activation = Activation::kRelu;
  ExpectError([&] { conv2d_backward(c.params, c.x, c.w, c.dy, {.dx = c.dx.view()}); },
              ErrorCode::kInvalidArgument,
              "conv2d_backward: params.activation: expected kNone (apply the activation's "
              "gradient to dy first), given relu");
}

// The linear map after the activation is the forward pass's too: 1 and 0 (its identity) only,
// one-shot and through the plan.
TEST(ConvBackwardErrors, LinearMapMustBeTheIdentity) {
  BackwardCase c;
  c.params.post_scale = 2.0f;
  ExpectError([&] { conv2d_backward(c.params, c.x, c.w, c.dy, {.dx = c.dx.view()}); },
              ErrorCode::kInvalidArgument,
              "conv2d_backward: params.post_scale: expected 1 (scale dy by post_scale first), "
              "given 2");
  c.params.post_scale = 1.0f;
  c.params.post_shift = 0.5f;
  ExpectError([&] { Conv2dBackward(c.params, c.x.dims(), c.w, {.dx = true}); },
              ErrorCode::kInvalidArgument,
              "Conv2dBackward: params.post_shift: expected 0 (a shift after the activation "
              "passes dy unchanged), given 0.5");
}

TEST(ConvBackwardErrors, DyDims) {
  BackwardCase c;
  ExpectError(
      [&] {
        conv2d_backward(c.params, c.x, c.w, Tensor({2, 3, 4, 7}), {.dx = c.dx.view()});
      },
      ErrorCode::kShapeMismatch, "dy: expected dims {2, 3, 4, 8}, given {2, 3, 4, 7}");
}

TEST(ConvBackwardErrors, GradientDims) {
  BackwardCase c;
  Tensor bad({1, 1, 1, 1});
  ExpectError([&] { conv2d_backward(c.params, c.x, c.w, c.dy, {.dx = bad.view()}); },
              ErrorCode::kShapeMismatch,
              "grads.dx: expected dims {2, 5, 7, 4}, given {1, 1, 1, 1}");
  ExpectError([&] { conv2d_backward(c.params, c.x, c.w, c.dy, {.dw = bad.view()}); },
              ErrorCode::kShapeMismatch,
              "grads.dw: expected dims {3, 3, 4, 8}, given {1, 1, 1, 1}");
  ExpectError(
      [&] { conv2d_backward(c.params, c.x, c.w, c.dy, {.db = std::span<float>(bad.data(), 1)}); },
      ErrorCode::kShapeMismatch, "grads.db: expected 8 elements (C_out), given 1 elements");
  for (int64_t i = 0; i < c.dx.size(); ++i) ASSERT_EQ(c.dx.data()[i], -7.0f);
}

TEST(ConvBackwardErrors, GradientsOverlap) {
  BackwardCase c;
  ExpectError(
      [&] {
        conv2d_backward(c.params, c.x, c.w, c.dy,
                        {.dx = c.dx.view(), .db = std::span<float>(c.dx.data() + 3, 8)});
      },
      ErrorCode::kInvalidArgument, "grads.db: expected memory that does not overlap grads.dx");
  ExpectError(
      [&] {
        conv2d_backward(c.params, c.x, c.w, c.dy, {.dx = TensorView{c.x.data(), c.x.dims()}});
      },
      ErrorCode::kInvalidArgument, "grads.dx: expected memory that does not overlap x");
}

// The transposed convolution: a valid case (x {2, 3, 4, 8} -> y {2, 6, 8, 4}, 4x4 stride 2 pad
// 1, 2 groups) that each test breaks in one way. Nothing is written on error.
struct TransposeCase {
  Conv2dTransposeParams params{.kernel_h = 4,
                               .kernel_w = 4,
                               .stride_h = 2,
                               .stride_w = 2,
                               .pad = Pads::uniform(1),
                               .groups = 2};
  Tensor x{{2, 3, 4, 8}, 1.0f};
  Tensor w{{4, 4, 2, 8}, 1.0f};
  Tensor y{{2, 6, 8, 4}, -7.0f};

  void forward() { conv2d_transpose_forward(params, x, w, {}, y, "reference"); }
  void expect_untouched() {
    for (int64_t i = 0; i < y.size(); ++i) ASSERT_EQ(y.data()[i], -7.0f);
  }
};

TEST(ConvTransposeErrors, TheValidCaseRuns) {
  TransposeCase c;
  c.forward();
  EXPECT_EQ(c.y.data()[0], 4.0f);  // pixel (0, 0): taps (1, 1) of x(0, 0), 4 input channels
}

TEST(ConvTransposeErrors, OutputPaddingBelowStrideOrDilation) {
  TransposeCase c;
  c.params.output_padding_h = 2;  // stride 2, dilation 1
  ExpectError([&] { c.forward(); }, ErrorCode::kInvalidArgument,
              "conv2d_transpose_forward: params.output_padding_h: expected < stride = 2 or < "
              "dilation = 1, given 2");
  c.expect_untouched();
  c.params.output_padding_h = 0;
  c.params.output_padding_w = -1;
  ExpectError([&] { c.forward(); }, ErrorCode::kInvalidArgument,
              "params.output_padding_w: expected >= 0, given -1");
  // Below the dilation is enough (PyTorch's rule): stride 1, dilation 3, output_padding 2.
  Conv2dTransposeParams p;
  p.kernel_h = p.kernel_w = 2;
  p.dilation_h = 3;
  p.output_padding_h = 2;
  EXPECT_EQ(conv2d_transpose_output_dims({1, 4, 4, 3}, {2, 2, 5, 3}, p), (Dims{1, 9, 5, 5}));
}

TEST(ConvTransposeErrors, OutputBelowOne) {
  TransposeCase c;
  c.params.pad = {3, 5, 0, 0};  // the full height (3 - 1) * 2 + (4 - 1) + 1 = 8, all cropped
  ExpectError([&] { c.forward(); }, ErrorCode::kInvalidArgument,
              "conv2d_transpose_forward: y height: expected an output extent >= 1 (the full "
              "output 8 minus the pads), given 8 - 3 - 5 < 1");
  c.expect_untouched();
}

TEST(ConvTransposeErrors, WeightDims) {
  TransposeCase c;
  c.w = Tensor({4, 4, 2, 7}, 1.0f);  // C_in must be x's 8
  ExpectError([&] { c.forward(); }, ErrorCode::kShapeMismatch,
              "conv2d_transpose_forward: w: expected dims {4, 4, 2, 8} (KH, KW, C_out / groups, "
              "C_in), given {4, 4, 2, 7}");
  c.w = Tensor({3, 4, 2, 8}, 1.0f);
  ExpectError([&] { c.forward(); }, ErrorCode::kShapeMismatch, "given {3, 4, 2, 8}");
  c.w = Tensor({4, 4, 0, 8}, 1.0f);
  ExpectError([&] { c.forward(); }, ErrorCode::kShapeMismatch,
              "w: expected C_out / groups (dims[2]) >= 1, given {4, 4, 0, 8}");
  c.expect_untouched();
}

TEST(ConvTransposeErrors, GroupsMustDivideCin) {
  TransposeCase c;
  c.params.groups = 3;
  ExpectError([&] { c.forward(); }, ErrorCode::kInvalidArgument,
              "conv2d_transpose_forward: params.groups: expected a divisor of C_in = 8, given 3");
  c.expect_untouched();
}

TEST(ConvTransposeErrors, TensorsAndResidual) {
  TransposeCase c;
  Tensor wrong_y({2, 6, 7, 4});
  ExpectError([&] { conv2d_transpose_forward(c.params, c.x, c.w, {}, wrong_y, "reference"); },
              ErrorCode::kShapeMismatch, "y: expected dims {2, 6, 8, 4}, given {2, 6, 7, 4}");
  std::vector<float> b(3, 1.0f);
  ExpectError([&] { conv2d_transpose_forward(c.params, c.x, c.w, b, c.y, "reference"); },
              ErrorCode::kShapeMismatch, "b: expected 4 elements (C_out), given 3 elements");
  Tensor r({2, 6, 8, 3});
  ExpectError([&] { conv2d_transpose_forward(c.params, c.x, c.w, {}, r, c.y, "reference"); },
              ErrorCode::kShapeMismatch, "r: expected dims {2, 6, 8, 4}, given {2, 6, 8, 3}");
  // A residual over x's memory.
  Tensor big({2, 6, 8, 4});
  const ConstTensorView x_alias(big.data(), c.x.dims());
  ExpectError([&] { conv2d_transpose_forward(c.params, x_alias, c.w, {}, big, c.y, "reference"); },
              ErrorCode::kInvalidArgument, "r: expected memory that does not overlap x");
  c.params.activation = Activation::kClip;
  c.params.activation_alpha = 2.0f;
  c.params.activation_beta = 1.0f;
  ExpectError([&] { c.forward(); }, ErrorCode::kInvalidArgument, "params.activation_alpha");
  c.expect_untouched();
}

TEST(ConvTransposeErrors, Backward) {
  TransposeCase c;
  Tensor dy({2, 6, 8, 4}, 1.0f), dx({2, 3, 4, 8}, -7.0f), bad({1, 1, 1, 1});
  c.params.activation = Activation::kRelu;
  ExpectError(
      [&] { conv2d_transpose_backward(c.params, c.x, c.w, dy, {.dx = dx.view()}); },
      ErrorCode::kInvalidArgument,
      "conv2d_transpose_backward: params.activation: expected kNone (apply the activation's "
      "gradient to dy first), given relu");
  c.params.activation = Activation::kNone;
  c.params.post_shift = 1.0f;
  ExpectError([&] { conv2d_transpose_backward(c.params, c.x, c.w, dy, {.dx = dx.view()}); },
              ErrorCode::kInvalidArgument, "conv2d_transpose_backward: params.post_shift");
  c.params.post_shift = 0.0f;
  ExpectError([&] { conv2d_transpose_backward(c.params, c.x, c.w, bad, {.dx = dx.view()}); },
              ErrorCode::kShapeMismatch, "dy: expected dims {2, 6, 8, 4}, given {1, 1, 1, 1}");
  ExpectError([&] { conv2d_transpose_backward(c.params, c.x, c.w, dy, {.dw = bad.view()}); },
              ErrorCode::kShapeMismatch, "grads.dw: expected dims {4, 4, 2, 8}, given");
  ExpectError(
      [&] {
        conv2d_transpose_backward(c.params, c.x, c.w, dy, {.db = std::span<float>(bad.data(), 1)});
      },
      ErrorCode::kShapeMismatch, "grads.db: expected 4 elements (C_out), given 1 elements");
  for (int64_t i = 0; i < dx.size(); ++i) ASSERT_EQ(dx.data()[i], -7.0f);
}

TEST(ConvTransposeErrors, PlanChecksRunArguments) {
  TransposeCase c;
  const Conv2dTranspose plan(c.params, c.x.dims(), c.w, {}, "reference");
  EXPECT_EQ(plan.y_dims(), (Dims{2, 6, 8, 4}));
  Tensor wrong_x({2, 3, 4, 7});
  ExpectError([&] { plan.run(wrong_x, c.y); }, ErrorCode::kShapeMismatch,
              "Conv2dTranspose::run: x: expected dims {2, 3, 4, 8}, given {2, 3, 4, 7}");
  Tensor r({2, 6, 8, 4});
  ExpectError(
      [&] {
        plan.run(c.x, Tensor({1, 6, 8, 4}), c.y);
      },
      ErrorCode::kShapeMismatch, "Conv2dTranspose::run: r: expected dims {2, 6, 8, 4}");
  c.expect_untouched();
  c.params.output_padding_w = 5;
  ExpectError([&] { Conv2dTranspose(c.params, c.x.dims(), c.w); }, ErrorCode::kInvalidArgument,
              "Conv2dTranspose: params.output_padding_w");
  Conv2dTranspose moved(TransposeCase().params, c.x.dims(), c.w, {}, "reference");
  Conv2dTranspose taken = std::move(moved);
  ExpectError([&] { moved.run(c.x, c.y); }, ErrorCode::kInvalidArgument,  // NOLINT: on purpose
              "a moved-from plan");
}

// Pooling.
struct PoolError {
  std::string name;
  std::function<void(Pool2dParams&)> breaks;
  std::string message;
};

void PrintTo(const PoolError& e, std::ostream* out) { *out << e.name; }

class PoolForwardErrors : public testing::TestWithParam<PoolError> {};

TEST_P(PoolForwardErrors, RaisesItsMessage) {
  Pool2dParams params{
      .window_h = 3, .window_w = 3, .stride_h = 2, .stride_w = 2, .pad = Pads::uniform(1)};
  GetParam().breaks(params);
  Tensor x({2, 5, 5, 3}, 1.0f);
  ExpectError([&] { pool2d_output_dims(x.dims(), params); }, ErrorCode::kInvalidArgument,
              "pool2d_output_dims: " + GetParam().message);
  Tensor y({2, 3, 3, 3});
  ExpectError([&] { pool2d_forward(params, x, y); }, ErrorCode::kInvalidArgument,
              "pool2d_forward: " + GetParam().message);
}

const PoolError kPoolErrors[] = {
    {"WindowH", [](Pool2dParams& p) { p.window_h = 0; }, "params.window_h: expected >= 1, given 0"},
    {"WindowW", [](Pool2dParams& p) { p.window_w = -1; },
     "params.window_w: expected >= 1, given -1"},
    {"StrideH", [](Pool2dParams& p) { p.stride_h = 0; }, "params.stride_h: expected >= 1, given 0"},
    {"StrideW", [](Pool2dParams& p) { p.stride_w = 0; }, "params.stride_w: expected >= 1, given 0"},
    {"NegativePad", [](Pool2dParams& p) { p.pad.left = -1; },
     "params.pad.left: expected >= 0, given -1"},
    {"PadTopNotBelowWindow", [](Pool2dParams& p) { p.pad.top = 3; },
     "params.pad.top: expected < window_h = 3 (every window must touch the input), given 3"},
    {"PadBottomNotBelowWindow", [](Pool2dParams& p) { p.pad.bottom = 4; },
     "params.pad.bottom: expected < window_h = 3"},
    {"PadLeftNotBelowWindow", [](Pool2dParams& p) { p.pad.left = 3; },
     "params.pad.left: expected < window_w = 3"},
    {"PadRightNotBelowWindow", [](Pool2dParams& p) { p.pad.right = 5; },
     "params.pad.right: expected < window_w = 3"},
    {"WindowLargerThanPaddedInput",
     [](Pool2dParams& p) {
       p.window_h = 8;
       p.pad = {};
     },
     "x height (H + pad.top + pad.bottom): expected a padded input extent >= the (dilated) window "
     "extent 8, given 5 + 0 + 0 = 5"},
    {"GlobalWithPads", [](Pool2dParams& p) { p.global = true; },
     "params.pad: expected all 0 with global pooling"},
    {"Mode", [](Pool2dParams& p) { p.mode = static_cast<PoolMode>(5); },
     "params.mode: expected kMax or kAverage, given 5"},
};

INSTANTIATE_TEST_SUITE_P(Rules, PoolForwardErrors, testing::ValuesIn(kPoolErrors),
                         [](const auto& info) { return info.param.name; });

TEST(PoolErrors, TensorDims) {
  const Pool2dParams params{.window_h = 2, .window_w = 2, .stride_h = 2, .stride_w = 2};
  Tensor x({2, 4, 4, 3}, 1.0f), y({2, 2, 2, 3}), dx({2, 4, 4, 3});
  ExpectError(
      [&] {
        pool2d_forward(params, x, Tensor({2, 2, 3, 3}));
      },
      ErrorCode::kShapeMismatch,
      "pool2d_forward: y: expected dims {2, 2, 2, 3}, given {2, 2, 3, 3}");
  ExpectError(
      [&] {
        pool2d_backward(params, x, Tensor({2, 2, 2, 4}), dx);
      },
      ErrorCode::kShapeMismatch,
      "pool2d_backward: dy: expected dims {2, 2, 2, 3}, given {2, 2, 2, 4}");
  ExpectError(
      [&] {
        pool2d_backward(params, x, y, Tensor({2, 4, 4, 2}));
      },
      ErrorCode::kShapeMismatch,
      "pool2d_backward: dx: expected dims {2, 4, 4, 3}, given {2, 4, 4, 2}");
  ExpectError(
      [&] {
        pool2d_backward(params, x, y, {x.data(), x.dims()});
      },
      ErrorCode::kInvalidArgument, "dx: expected memory that does not overlap x");
  ExpectError(
      [&] {
        pool2d_forward(params, {nullptr, x.dims()}, y);
      },
      ErrorCode::kInvalidArgument, "pool2d_forward: x: expected non-null data");
}

// Huge strides are valid; ceil_mode's output size must not overflow computing them (fuzz finding).
TEST(PoolErrors, HugeStrideWithCeilModeIsValid) {
  const Pool2dParams params{
      .window_h = 1, .window_w = 1, .stride_h = kMax, .stride_w = kMax, .ceil_mode = true};
  EXPECT_EQ(pool2d_output_dims({1, 3, 11, 1}, params), (Dims{1, 1, 1, 1}));
  const Pool2dParams padded{.window_h = 2,
                            .window_w = 3,
                            .stride_h = kMax - 1,
                            .stride_w = 2,
                            .pad = {1, 1, 2, 2},
                            .ceil_mode = true};
  // W: (11 + 4 - 3) / 2 = 6, + 1 = 7 windows; H: one window (the second would start past the
  // input).
  EXPECT_EQ(pool2d_output_dims({1, 3, 11, 1}, padded), (Dims{1, 1, 7, 1}));
}

TEST(ZeroPadErrors, Rules) {
  Tensor x({1, 2, 2, 1}, 1.0f);
  ExpectError(
      [&] {
        zero_pad(x, {.top = -1}, Tensor({1, 2, 2, 1}));
      },
      ErrorCode::kInvalidArgument, "zero_pad: pad.top: expected >= 0, given -1");
  ExpectError(
      [&] {
        zero_pad(x, Pads::uniform(1), Tensor({1, 4, 3, 1}));
      },
      ErrorCode::kShapeMismatch, "zero_pad: y: expected dims {1, 4, 4, 1}, given {1, 4, 3, 1}");
  ExpectError(
      [&] {
        zero_pad(x, {.right = kMax}, Tensor({1, 4, 3, 1}));
      },
      ErrorCode::kInvalidArgument, "zero_pad: pad: expected padded extents that fit in int64");
}

TEST(PlanErrors, RunChecksPlannedDims) {
  ConvCase c;
  const Conv2d plan(c.params, c.x.dims(), c.w, c.bias(), "reference");
  EXPECT_EQ(plan.y_dims(), (Dims{2, 3, 4, 8}));
  ExpectError(
      [&] {
        plan.run(Tensor({1, 5, 7, 4}), c.y);
      },
      ErrorCode::kShapeMismatch, "Conv2d::run: x: expected dims {2, 5, 7, 4}, given {1, 5, 7, 4}");
  ExpectError(
      [&] {
        plan.run(c.x, Tensor({2, 3, 4, 9}));
      },
      ErrorCode::kShapeMismatch, "Conv2d::run: y: expected dims {2, 3, 4, 8}, given {2, 3, 4, 9}");
  const Pool2d pool(Pool2dParams{.window_h = 2, .window_w = 2}, {1, 3, 3, 1}, "reference");
  ExpectError(
      [&] {
        pool.run(Tensor({1, 3, 3, 1}), {nullptr, {1, 2, 2, 1}});
      },
      ErrorCode::kInvalidArgument, "Pool2d::run: y: expected non-null data");
}

TEST(PlanErrors, CreationValidates) {
  ConvCase c;
  c.params.stride_h = 0;
  ExpectError([&] { Conv2d(c.params, c.x.dims(), c.w, c.bias()); }, ErrorCode::kInvalidArgument,
              "Conv2d: params.stride_h: expected >= 1, given 0");
  ExpectError(
      [&] {
        Pool2d(Pool2dParams{.window_h = 0}, {1, 3, 3, 1});
      },
      ErrorCode::kInvalidArgument, "Pool2d: params.window_h: expected >= 1, given 0");
}

TEST(PlanErrors, MovedFromPlanRefusesToRun) {
  ConvCase c;
  Conv2d plan(c.params, c.x.dims(), c.w, c.bias(), "reference");
  Conv2d moved = std::move(plan);
  ExpectError([&] { plan.run(c.x, c.y); },  // NOLINT(bugprone-use-after-move): on purpose
              ErrorCode::kInvalidArgument,
              "Conv2d::run: this: expected a plan, given a moved-from plan");
  const ChannelPiece piece{c.x.data(), c.x.dims()[3], c.x.dims()[3]};
  ExpectError(
      [&] {
        plan.run_concatenated({&piece, 1}, {}, c.y);
      },  // NOLINT: on purpose
      ErrorCode::kInvalidArgument,
      "Conv2d::run_concatenated: this: expected a plan, given a moved-from plan");
  EXPECT_FALSE(plan.fuses_x_scale() || plan.fuses_concat());  // NOLINT: on purpose
  moved.run(c.x, c.y);
  EXPECT_EQ(c.y(0, 0, 0, 0), 4.0f * 4.0f + 1.0f);  // 2x2 taps inside, 4 channels, bias 1
}

// Backward plans: creation, set_weights and run check what they are given; a failed call writes
// nothing and leaves the plan as it was.
TEST(PlanErrors, BackwardPlansCheckTheirArguments) {
  ConvCase c;
  ExpectError(
      [&] {
        Conv2dBackward(c.params, c.x.dims(), c.w, {false, false, false});
      },
      ErrorCode::kInvalidArgument,
      "Conv2dBackward: wanted: expected at least one of dx, dw, db, given none");
  Conv2dParams relu = c.params;
  relu.activation = Activation::kRelu;
  ExpectError([&] { Conv2dBackward(relu, c.x.dims(), c.w); }, ErrorCode::kInvalidArgument,
              "Conv2dBackward: params.activation: expected kNone");

  Conv2dBackward plan(c.params, c.x.dims(), c.w, {.dx = true, .dw = false, .db = true},
                      "reference");
  EXPECT_EQ(plan.y_dims(), (Dims{2, 3, 4, 8}));
  EXPECT_EQ(plan.w_dims(), (Dims{3, 3, 4, 8}));
  Tensor dy({2, 3, 4, 8}, 1.0f), dx({2, 5, 7, 4}, -7.0f), dw({3, 3, 4, 8}, -7.0f);
  std::vector<float> db(8, -7.0f);
  ExpectError(
      [&] {
        plan.run({}, dy, {dx.view(), std::nullopt, std::nullopt});
      },
      ErrorCode::kInvalidArgument,
      "Conv2dBackward::run: grads.db: expected a gradient (the plan computes it), given none");
  ExpectError(
      [&] {
        plan.run({}, dy, {dx.view(), dw.view(), std::span<float>(db)});
      },
      ErrorCode::kInvalidArgument,
      "Conv2dBackward::run: grads.dw: expected none (the plan was created without it)");
  ExpectError(
      [&] {
        plan.run({}, Tensor({2, 3, 4, 7}), {dx.view(), std::nullopt, std::span<float>(db)});
      },
      ErrorCode::kShapeMismatch,
      "Conv2dBackward::run: dy: expected dims {2, 3, 4, 8}, given {2, 3, 4, 7}");
  ExpectError(
      [&] {
        plan.run(Tensor({2, 5, 7, 3}), dy, {dx.view(), std::nullopt, std::span<float>(db)});
      },
      ErrorCode::kShapeMismatch, "Conv2dBackward::run: x: expected dims {2, 5, 7, 4}");
  ExpectError(
      [&] {
        plan.run({}, dy, {Tensor({2, 5, 6, 4}).view(), std::nullopt, std::span<float>(db)});
      },
      ErrorCode::kShapeMismatch, "Conv2dBackward::run: grads.dx: expected dims");
  std::vector<float> db7(7);
  ExpectError(
      [&] {
        plan.run({}, dy, {dx.view(), std::nullopt, std::span<float>(db7)});
      },
      ErrorCode::kShapeMismatch, "Conv2dBackward::run: grads.db: expected 8 elements");
  ExpectError(
      [&] {
        plan.run({}, dy, {TensorView{dy.data(), dx.dims()}, std::nullopt, std::span<float>(db)});
      },
      ErrorCode::kInvalidArgument,
      "Conv2dBackward::run: grads.dx: expected memory that does not overlap dy");
  EXPECT_EQ(dx(0, 0, 0, 0), -7.0f);
  EXPECT_EQ(db[0], -7.0f);
  ExpectError(
      [&] {
        plan.set_weights(Tensor({3, 3, 4, 9}));
      },
      ErrorCode::kShapeMismatch,
      "Conv2dBackward::set_weights: w: expected dims {3, 3, 4, 8}, given {3, 3, 4, 9}");
  plan.run({}, dy,
           {dx.view(), std::nullopt, std::span<float>(db)});  // the weights are still all ones
  EXPECT_EQ(dx(0, 1, 1, 0), 4.0f * 8.0f);  // taps (1..2) x (1..2) of dy's pixel (0, 0), 8 C_out
  EXPECT_EQ(db[0], 2.0f * 3.0f * 4.0f);

  const Pool2dBackward pool(Pool2dParams{.window_h = 2, .window_w = 2}, {1, 3, 3, 1}, "reference");
  EXPECT_EQ(pool.y_dims(), (Dims{1, 2, 2, 1}));
  ExpectError(
      [&] {
        pool.run(Tensor({1, 3, 3, 1}), Tensor({1, 2, 3, 1}), Tensor({1, 3, 3, 1}));
      },
      ErrorCode::kShapeMismatch,
      "Pool2dBackward::run: dy: expected dims {1, 2, 2, 1}, given {1, 2, 3, 1}");
  Tensor px({1, 3, 3, 1});
  ExpectError(
      [&] {
        pool.run(px, Tensor({1, 2, 2, 1}), px);
      },
      ErrorCode::kInvalidArgument,
      "Pool2dBackward::run: dx: expected memory that does not overlap x");
  Pool2dBackward moved = Pool2dBackward(Pool2dParams{.window_h = 2, .window_w = 2}, {1, 3, 3, 1});
  Pool2dBackward taken = std::move(moved);
  ExpectError(
      [&] {
        moved.run(px, Tensor({1, 2, 2, 1}), Tensor({1, 3, 3, 1}));
      },  // NOLINT
      ErrorCode::kInvalidArgument, "Pool2dBackward::run: this: expected a plan");
}

TEST(RuntimeErrors, SetNumThreads) {
  ExpectError([] { set_num_threads(-1); }, ErrorCode::kInvalidArgument,
              "set_num_threads: n: expected >= 0 (0 = OpenMP's default), given -1");
}

TEST(RuntimeErrors, TensorDims) {
  ExpectError(
      [] {
        Tensor({1, -2, 1, 1});
      },
      ErrorCode::kInvalidArgument,
      "num_elements: dims: expected extents >= 0, given {1, -2, 1, 1}");
  ExpectError(
      [] {
        num_elements({kMax, 2, 1, 1});
      },
      ErrorCode::kInvalidArgument, "expected an element count that fits in int64");
}

}  // namespace
}  // namespace convkit
