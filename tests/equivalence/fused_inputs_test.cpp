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

struct ScaleCase {
  std::string name;
  Dims x;
  int64_t oc;
  Conv2dParams params;
  bool residual;
};

Conv2dParams WithRelu(Conv2dParams params, bool after = false) {
  params.activation = Activation::kRelu;
  params.residual_after_activation = after;
  return params;
}

// Pointwise layers around the fused kernel's choices (several images, one pixel, groups, a
// reduction long enough to be sliced through y, partial blocks of output channels), and layers
// that take the copy (3x3, strided 1x1).
std::vector<ScaleCase> ScaleCases() {
  return {
      {"1x1 SE projection, relu", {1, 7, 9, 48}, 24, WithRelu(MakeConv(1, 1, {})), false},
      {"1x1, 3 images, residual after relu",
       {3, 5, 4, 32},
       70,
       WithRelu(MakeConv(1, 1, {}), true),
       true},
      {"1x1, one pixel", {2, 1, 1, 96}, 40, MakeConv(1, 1, {}), false},
      {"1x1, 2 groups, residual", {2, 4, 6, 32}, 48, MakeConv(1, 1, {}, 1, 2), true},
      {"1x1, sliced reduction", {1, 6, 6, 2048}, 64, MakeConv(1, 1, {}), false},
      {"3x3, padded (a copy of x)", {2, 6, 5, 16}, 24, MakeConv(3, 1, Pads::uniform(1)), true},
      {"1x1 stride 2 (a copy of x)", {1, 8, 8, 24}, 16, MakeConv(1, 2, {}), false},
      {"batch 0", {0, 4, 4, 16}, 16, MakeConv(1, 1, {}), false},
  };
}

struct ScaleData {
  Tensor x, w, x_scale, r;
  std::vector<float> b;
  Tensor expected;
};

// Integer data small enough that every sum is exact; the reference convolves x * x_scale.
ScaleData MakeScaleData(const ScaleCase& c, uint64_t seed) {
  Rng rng(seed);
  const Dims w_dims{c.params.kernel_h, c.params.kernel_w, c.x[3] / c.params.groups, c.oc};
  const Dims y_dims = conv2d_output_dims(c.x, w_dims, c.params);
  ScaleData d{Tensor(c.x),
              Tensor(w_dims),
              Tensor({c.x[0], 1, 1, c.x[3]}),
              Tensor(y_dims),
              std::vector<float>(static_cast<size_t>(c.oc)),
              Tensor(y_dims)};
  FillIntegers(Span(d.x), rng, -3, 3);
  FillIntegers(Span(d.w), rng, -3, 3);
  FillIntegers(Span(d.x_scale), rng, -2, 2);
  FillIntegers(Span(d.r), rng, -9, 9);
  FillIntegers(Span(d.b), rng, -5, 5);
  Tensor scaled(c.x);
  const int64_t pixels = c.x[1] * c.x[2], channels = c.x[3];
  for (int64_t i = 0; i < scaled.size(); ++i) {
    const int64_t image = i / (pixels * channels);
    scaled.data()[i] = d.x.data()[i] * d.x_scale.data()[image * channels + i % channels];
  }
  if (c.residual) {
    conv2d_forward(c.params, scaled, d.w, d.b, d.r, d.expected, "reference");
  } else {
    conv2d_forward(c.params, scaled, d.w, d.b, d.expected, "reference");
  }
  return d;
}

// Runs every case on `backend`: the plan's run_scaled matches the reference bit for bit, and
// whether the plan fused the scale is what `fused(case)` says.
template <typename Fused>
void CheckScaledRuns(const std::string& backend, const std::string& where, Fused fused) {
  uint64_t seed = 300;
  for (ScaleCase c : ScaleCases()) {
    // oneDNN 2.6 refuses relu (its post-op turns NaN into 0): its cases run without.
    if (backend == "onednn") c.params.activation = Activation::kNone;
    const ScaleData d = MakeScaleData(c, seed++);
    const std::string name = c.name + " on " + where;
    const Conv2d plan(c.params, c.x, d.w, d.b, backend);
    Tensor y(d.expected.dims(), kBackendFill);
    plan.run_scaled(d.x, d.x_scale, c.residual ? ConstTensorView(d.r) : ConstTensorView(), y);
    EXPECT_TRUE(CompareTensors(name, "y", d.expected, y));
    EXPECT_EQ(plan.fuses_x_scale(), fused(c)) << name << ": " << plan.impl_name();
  }
}

bool IsPointwise(const ScaleCase& c) { return c.params.kernel_h == 1 && c.params.stride_h == 1; }

TEST(InputScale, EveryBackendMatchesTheReference) {
  for (const std::string& backend : BackendsToTest()) {
    CheckScaledRuns(backend, backend,
                    [&](const ScaleCase& c) { return backend == "highway" && IsPointwise(c); });
  }
}

// (Instantiated over the pinned targets in highway_targets_test.cpp.)
TEST_P(HighwayTargetTest, InputScaleFusedExact) { CheckScaledRuns("highway", isa(), IsPointwise); }

// x_scale of the wrong dims, or overlapping y, is refused before anything is written.
TEST(InputScale, BadScalesAreRefused) {
  const ScaleCase c = ScaleCases()[0];
  const ScaleData d = MakeScaleData(c, 7);
  const Conv2d plan(c.params, c.x, d.w, d.b, "highway");
  Tensor y(d.expected.dims(), kBackendFill);
  const Tensor wrong({1, 1, 1, c.x[3] + 1});
  try {
    plan.run_scaled(d.x, wrong, {}, y);
    ADD_FAILURE() << "x_scale of the wrong dims accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kShapeMismatch);
    EXPECT_NE(std::string(e.what()).find("x_scale"), std::string::npos) << e.what();
  }
  try {
    plan.run_scaled(d.x, ConstTensorView(y.data(), d.x_scale.dims()), {}, y);
    ADD_FAILURE() << "x_scale overlapping y accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("x_scale"), std::string::npos) << e.what();
  }
  for (int64_t i = 0; i < y.size(); ++i) ASSERT_EQ(y.data()[i], kBackendFill) << "y written";
}

// ---- Channel pieces ----

// x's channels cut into pieces of these widths; `strided` pieces are runs of channels of one
// wider buffer (a split's halves), the others dense tensors of their own.
struct PiecesCase {
  std::string name;
  Dims x;
  int64_t oc;
  Conv2dParams params;
  std::vector<int64_t> widths;
  bool strided;
  bool residual;
};

std::vector<PiecesCase> PiecesCases() {
  return {
      {"1x1, C2f's 3 pieces, relu",
       {1, 6, 7, 48},
       32,
       WithRelu(MakeConv(1, 1, {})),
       {16, 16, 16},
       false,
       false},
      {"1x1, split halves and a dense piece, residual",
       {2, 5, 4, 40},
       24,
       MakeConv(1, 1, {}),
       {8, 12, 20},
       true,
       true},
      {"1x1, one piece, one pixel", {3, 1, 1, 70}, 33, MakeConv(1, 1, {}), {70}, true, false},
      {"1x1, SPPF's 4 pieces, wide",
       {1, 5, 5, 512},
       80,
       MakeConv(1, 1, {}),
       {128, 128, 128, 128},
       false,
       true},
      {"1x1, 2 groups (a copy)", {1, 4, 4, 16}, 8, MakeConv(1, 1, {}, 1, 2), {5, 11}, false, false},
      {"3x3 (a copy)", {2, 5, 6, 12}, 8, MakeConv(3, 1, Pads::uniform(1)), {4, 8}, true, true},
      {"batch 0", {0, 3, 3, 8}, 8, MakeConv(1, 1, {}), {3, 5}, false, false},
  };
}

struct PiecesData {
  Tensor x, w, r;
  std::vector<float> b;
  std::vector<Tensor> buffers;  // what the pieces point into
  std::vector<ChannelPiece> pieces;
  Tensor expected;
};

// Integer x, w, b, r; the pieces hold x's channels (strided: inside one buffer with 3 spare
// channels per pixel, filled with a value the kernel must never read).
PiecesData MakePiecesData(const PiecesCase& c, uint64_t seed) {
  Rng rng(seed);
  const Dims w_dims{c.params.kernel_h, c.params.kernel_w, c.x[3] / c.params.groups, c.oc};
  const Dims y_dims = conv2d_output_dims(c.x, w_dims, c.params);
  PiecesData d{Tensor(c.x),
               Tensor(w_dims),
               Tensor(y_dims),
               std::vector<float>(static_cast<size_t>(c.oc)),
               {},
               {},
               Tensor(y_dims)};
  FillIntegers(Span(d.x), rng, -3, 3);
  FillIntegers(Span(d.w), rng, -3, 3);
  FillIntegers(Span(d.r), rng, -9, 9);
  FillIntegers(Span(d.b), rng, -5, 5);
  const int64_t pixels = c.x[0] * c.x[1] * c.x[2];
  const int64_t wide = c.x[3] + 3;
  if (c.strided) d.buffers.emplace_back(Dims{c.x[0], c.x[1], c.x[2], wide}, 1e30f);
  int64_t c0 = 0;
  for (const int64_t width : c.widths) {
    if (!c.strided) d.buffers.emplace_back(Dims{c.x[0], c.x[1], c.x[2], width});
    float* base = c.strided ? d.buffers[0].data() + c0 : d.buffers.back().data();
    const int64_t stride = c.strided ? wide : width;
    for (int64_t p = 0; p < pixels; ++p) {
      std::copy_n(d.x.data() + p * c.x[3] + c0, width, base + p * stride);
    }
    d.pieces.push_back({base, width, stride});
    c0 += width;
  }
  if (c.residual) {
    conv2d_forward(c.params, d.x, d.w, d.b, d.r, d.expected, "reference");
  } else {
    conv2d_forward(c.params, d.x, d.w, d.b, d.expected, "reference");
  }
  return d;
}

void CheckConcatenatedRuns(const std::string& backend, const std::string& where) {
  uint64_t seed = 500;
  for (PiecesCase c : PiecesCases()) {
    if (backend == "onednn") c.params.activation = Activation::kNone;  // as in CheckScaledRuns
    const PiecesData d = MakePiecesData(c, seed++);
    const std::string name = c.name + " on " + where;
    const Conv2d plan(c.params, c.x, d.w, d.b, backend);
    Tensor y(d.expected.dims(), kBackendFill);
    plan.run_concatenated(d.pieces, c.residual ? ConstTensorView(d.r) : ConstTensorView(), y);
    EXPECT_TRUE(CompareTensors(name, "y", d.expected, y));
    const bool fusable = c.params.kernel_h == 1 && c.params.groups == 1;
    EXPECT_EQ(plan.fuses_concat(), backend == "highway" && fusable) << name << plan.impl_name();
  }
}

TEST(ConcatenatedInput, EveryBackendMatchesTheReference) {
  for (const std::string& backend : BackendsToTest()) CheckConcatenatedRuns(backend, backend);
}

TEST_P(HighwayTargetTest, ConcatenatedInputExact) { CheckConcatenatedRuns("highway", isa()); }

// Pieces whose channels do not sum to C_in, or that overlap y, are refused; y is untouched.
TEST(ConcatenatedInput, BadPiecesAreRefused) {
  const PiecesCase c = PiecesCases()[0];
  const PiecesData d = MakePiecesData(c, 9);
  const Conv2d plan(c.params, c.x, d.w, d.b, "highway");
  Tensor y(d.expected.dims(), kBackendFill);
  const auto refused = [&](std::span<const ChannelPiece> pieces, ErrorCode code,
                           const std::string& what) {
    try {
      plan.run_concatenated(pieces, {}, y);
      ADD_FAILURE() << what << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  refused(std::span(d.pieces).first(2), ErrorCode::kShapeMismatch, "pieces");
  std::vector<ChannelPiece> onto_y = d.pieces;
  onto_y[1].data = y.data();
  refused(onto_y, ErrorCode::kInvalidArgument, "pieces[1]");
  for (int64_t i = 0; i < y.size(); ++i) ASSERT_EQ(y.data()[i], kBackendFill) << "y written";
}

}  // namespace
}  // namespace convkit::test
