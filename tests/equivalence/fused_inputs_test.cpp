// The inputs a convolution takes in a pipeline without a pass of its own, bit for bit against
// the reference on integer data, on every backend (each runs a copy) and on every pinned Highway
// target (where the implicit GEMM reads them in place in 1x1 layers):
// - Conv2d::run_scaled: x * x_scale, a squeeze-and-excitation gate per image and input channel;
// - Conv2d::run_concatenated: x as channel pieces, the Concat before a 1x1 layer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tests/equivalence/grid.hpp"

namespace convkit::test {
namespace {

// A case: x's dims, C_out, the parameters, whether a residual is added; for pieces, the widths
// x's channels are cut into and whether the pieces are runs of channels of one wider buffer (a
// split's halves) rather than dense tensors of their own.
struct Layer {
  std::string name;
  Dims x;
  int64_t oc;
  Conv2dParams params;
  bool residual;
  std::vector<int64_t> widths = {};
  bool strided = false;
};

// A layer's integer data (small enough that every sum is exact) and the reference's y for x_ref,
// the x the fused input stands for.
struct LayerData {
  Tensor x, w, r;
  std::vector<float> b;
  Tensor x_ref, expected;

  LayerData(const Layer& l, Rng& rng)
      : x(l.x),
        w(Dims{l.params.kernel_h, l.params.kernel_w, l.x[3] / l.params.groups, l.oc}),
        r(conv2d_output_dims(l.x, w.dims(), l.params)),
        b(static_cast<size_t>(l.oc)),
        x_ref(l.x),
        expected(r.dims()) {
    FillIntegers(Span(x), rng, -3, 3);
    FillIntegers(Span(w), rng, -3, 3);
    FillIntegers(Span(r), rng, -9, 9);
    FillIntegers(Span(b), rng, -5, 5);
  }

  void Expect(const Layer& l) {
    if (l.residual) {
      conv2d_forward(l.params, x_ref, w, b, r, expected, "reference");
    } else {
      conv2d_forward(l.params, x_ref, w, b, expected, "reference");
    }
  }
  ConstTensorView Residual(const Layer& l) const {
    return l.residual ? r.view() : ConstTensorView();
  }
};

Conv2dParams WithRelu(Conv2dParams params, bool after = false) {
  params.activation = Activation::kRelu;
  params.residual_after_activation = after;
  return params;
}

bool IsPointwise(const Layer& l) { return l.params.kernel_h == 1 && l.params.stride_h == 1; }

// ---- The two inputs ----

struct ScaledInput {
  // Pointwise layers around the fused kernel's choices (several images, one pixel, groups, a
  // reduction long enough to be sliced through y, partial blocks of output channels; sweeps of
  // many pixels scale the weight panel, of few each tile's input rows), and layers that take the
  // API's copy (3x3, strided 1x1).
  static std::vector<Layer> Layers() {
    return {
        {"1x1 SE projection, relu", {1, 7, 9, 48}, 24, WithRelu(MakeConv(1, 1, {})), false},
        {"1x1, 3 images, residual after relu",
         {3, 5, 4, 32},
         70,
         WithRelu(MakeConv(1, 1, {}), true),
         true},
        {"1x1, one pixel", {2, 1, 1, 96}, 40, MakeConv(1, 1, {}), false},
        {"1x1, 2 groups, residual", {2, 8, 8, 32}, 48, MakeConv(1, 1, {}, 1, 2), true},
        {"1x1, 2 groups, few pixels", {2, 4, 6, 32}, 48, MakeConv(1, 1, {}, 1, 2), true},
        {"1x1, sliced reduction", {1, 9, 9, 2048}, 64, MakeConv(1, 1, {}), false},
        {"1x1, sliced reduction, few pixels", {1, 6, 6, 2048}, 64, MakeConv(1, 1, {}), false},
        {"1x1, many pixels (scaled panels)",
         {2, 20, 20, 32},
         16,
         WithRelu(MakeConv(1, 1, {})),
         true},
        {"1x1, long reduction, many pixels", {1, 32, 32, 1024}, 64, MakeConv(1, 1, {}), false},
        {"3x3, padded (a copy of x)", {2, 6, 5, 16}, 24, MakeConv(3, 1, Pads::uniform(1)), true},
        {"1x1 stride 2 (a copy of x)", {1, 8, 8, 24}, 16, MakeConv(1, 2, {}), false},
        {"batch 0", {0, 4, 4, 16}, 16, MakeConv(1, 1, {}), false},
    };
  }
  static bool Fusable(const Layer& l) { return IsPointwise(l); }
  static bool Fuses(const Conv2d& plan) { return plan.fuses_x_scale(); }

  // x_scale's integers; x_ref = x * x_scale.
  ScaledInput(const Layer& l, LayerData& d, Rng& rng) : x_scale({l.x[0], 1, 1, l.x[3]}) {
    FillIntegers(Span(x_scale), rng, -2, 2);
    const int64_t pixel_floats = l.x[1] * l.x[2] * l.x[3], c = l.x[3];
    for (int64_t i = 0; i < d.x.size(); ++i) {
      d.x_ref.data()[i] = d.x.data()[i] * x_scale.data()[i / pixel_floats * c + i % c];
    }
  }
  void Run(const Conv2d& plan, const LayerData& d, const Layer& l, Tensor& y) const {
    plan.run_scaled(d.x, x_scale, d.Residual(l), y);
  }

  Tensor x_scale;
};

struct PiecesInput {
  static std::vector<Layer> Layers() {
    const Conv2dParams pw = MakeConv(1, 1, {});
    return {
        {"1x1, C2f's 3 pieces, relu", {1, 6, 7, 48}, 32, WithRelu(pw), false, {16, 16, 16}},
        {"1x1, strided pieces, residual", {2, 5, 4, 40}, 24, pw, true, {8, 12, 20}, true},
        {"1x1, one piece, one pixel", {3, 1, 1, 70}, 33, pw, false, {70}, true},
        {"1x1, SPPF's 4 pieces, wide", {1, 5, 5, 512}, 80, pw, true, {128, 128, 128, 128}},
        {"1x1, 2 groups (a copy)", {1, 4, 4, 16}, 8, MakeConv(1, 1, {}, 1, 2), false, {5, 11}},
        {"3x3 (a copy)", {2, 5, 6, 12}, 8, MakeConv(3, 1, Pads::uniform(1)), true, {4, 8}, true},
        {"batch 0", {0, 3, 3, 8}, 8, pw, false, {3, 5}},
    };
  }
  static bool Fusable(const Layer& l) { return IsPointwise(l) && l.params.groups == 1; }
  static bool Fuses(const Conv2d& plan) { return plan.fuses_concat(); }

  // The pieces hold x's channels (strided: in one buffer with 3 spare channels per pixel, filled
  // with a value the kernel must never read); x_ref = x.
  PiecesInput(const Layer& l, LayerData& d, Rng& /*rng*/) {
    std::copy_n(d.x.data(), d.x.size(), d.x_ref.data());
    const int64_t pixels = l.x[0] * l.x[1] * l.x[2], wide = l.x[3] + 3;
    if (l.strided) buffers.emplace_back(Dims{l.x[0], l.x[1], l.x[2], wide}, 1e30f);
    int64_t c0 = 0;
    for (const int64_t width : l.widths) {
      if (!l.strided) buffers.emplace_back(Dims{l.x[0], l.x[1], l.x[2], width});
      float* base = l.strided ? buffers[0].data() + c0 : buffers.back().data();
      const int64_t stride = l.strided ? wide : width;
      for (int64_t p = 0; p < pixels; ++p) {
        std::copy_n(d.x.data() + p * l.x[3] + c0, width, base + p * stride);
      }
      pieces.push_back({base, width, stride});
      c0 += width;
    }
  }
  void Run(const Conv2d& plan, const LayerData& d, const Layer& l, Tensor& y) const {
    plan.run_concatenated(pieces, d.Residual(l), y);
  }

  std::vector<Tensor> buffers;  // what the pieces point into
  std::vector<ChannelPiece> pieces;
};

// Every layer of Input on `backend`: y matches the reference bit for bit, and the plan reads the
// input in place exactly where highway's implicit GEMM can (its bf16 kernel: 1x1 stride-1 layers
// without groups, both inputs).
template <typename Input>
void CheckRuns(const std::string& backend, const std::string& where, uint64_t seed,
               Fpmath fpmath = Fpmath::kStrict) {
  for (Layer l : Input::Layers()) {
    // oneDNN 2.6 refuses relu (its post-op turns NaN into 0): its cases run without.
    if (backend == "onednn") l.params.activation = Activation::kNone;
    l.params.fpmath = fpmath;
    Rng rng(seed++);
    LayerData d(l, rng);
    const Input input(l, d, rng);
    d.Expect(l);
    const std::string name = l.name + " on " + where;
    const Conv2d plan(l.params, l.x, d.w, d.b, backend);
    Tensor y(d.expected.dims(), kBackendFill);
    input.Run(plan, d, l, y);
    EXPECT_TRUE(CompareTensors(name, "y", d.expected, y));
    const bool bf16_kernel = plan.impl_name().find("igemm_bf16") != std::string::npos;
    const bool fusable = bf16_kernel ? IsPointwise(l) && l.params.groups == 1 : Input::Fusable(l);
    EXPECT_EQ(Input::Fuses(plan), backend == "highway" && fusable)
        << name << ": " << plan.impl_name();
  }
}

TEST(FusedInputs, EveryBackendMatchesTheReference) {
  for (const std::string& backend : BackendsToTest()) {
    CheckRuns<ScaledInput>(backend, backend, 300);
    CheckRuns<PiecesInput>(backend, backend, 500);
  }
}

// fpmath bf16 (integer data: bf16 is exact on them): the wide layers run the bf16 kernel, which
// reads the gate or the pieces while converting x.
TEST(FusedInputs, Bf16MatchesTheReference) {
  CheckRuns<ScaledInput>("highway", "highway bf16", 300, Fpmath::kBf16);
  CheckRuns<PiecesInput>("highway", "highway bf16", 500, Fpmath::kBf16);
}

// (Instantiated over the pinned targets in highway_targets_test.cpp.)
TEST_P(HighwayTargetTest, FusedInputsExact) {
  CheckRuns<ScaledInput>("highway", isa(), 300);
  CheckRuns<PiecesInput>("highway", isa(), 500);
}

// ---- Refusals: before anything is written ----

// Expects `run` to throw `code` with `what` in the message.
template <typename Run>
void ExpectRefused(Run run, ErrorCode code, const std::string& what) {
  try {
    run();
    ADD_FAILURE() << what << ": accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST(FusedInputs, BadInputsAreRefused) {
  Rng rng(7);
  const Layer scaled = ScaledInput::Layers()[0];
  LayerData d(scaled, rng);
  const ScaledInput scale(scaled, d, rng);
  const Conv2d plan(scaled.params, scaled.x, d.w, d.b, "highway");
  Tensor y(d.expected.dims(), kBackendFill);
  const Tensor wrong({1, 1, 1, scaled.x[3] + 1});
  ExpectRefused([&] { plan.run_scaled(d.x, wrong, {}, y); }, ErrorCode::kShapeMismatch, "x_scale");
  ExpectRefused(
      [&] { plan.run_scaled(d.x, ConstTensorView(y.data(), scale.x_scale.dims()), {}, y); },
      ErrorCode::kInvalidArgument, "x_scale");

  const Layer cut = PiecesInput::Layers()[0];
  LayerData e(cut, rng);
  const PiecesInput input(cut, e, rng);
  const Conv2d concat(cut.params, cut.x, e.w, e.b, "highway");
  Tensor z(e.expected.dims(), kBackendFill);
  ExpectRefused([&] { concat.run_concatenated(std::span(input.pieces).first(2), {}, z); },
                ErrorCode::kShapeMismatch, "pieces");
  std::vector<ChannelPiece> onto_z = input.pieces;
  onto_z[1].data = z.data();
  ExpectRefused([&] { concat.run_concatenated(onto_z, {}, z); }, ErrorCode::kInvalidArgument,
                "pieces[1]");
  for (const Tensor* t : {&y, &z}) {
    for (int64_t i = 0; i < t->size(); ++i) ASSERT_EQ(t->data()[i], kBackendFill) << "written";
  }
}

}  // namespace
}  // namespace convkit::test
