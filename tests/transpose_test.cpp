// The transposed convolution (DESIGN §3): every backend against reference over a grid, bit for bit
// on integer-valued data (forward one-shot and plans, backward); every activation and residual
// mode (none, before, after the activation, in place) rotating over the grid, exact for relu,
// relu6, clip and leaky_relu and within 4 ulp for the others; the identity with conv2d_backward's
// dx; every compiled Highway target pinned in turn; plan behaviour.
//
// The grid sweeps strides 1-3, symmetric and asymmetric pads, dilation, groups (depthwise too),
// output_padding (including output_padding >= stride, which PyTorch allows below the dilation),
// batch 0, and channel counts around the vector width (1, 3, 15, 16, 17, 31).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <string>
#include <vector>

#include "api/src/bf16.hpp"
#include "bench/shape_sets.hpp"
#include "tests/grid_driver.hpp"
#include "tests/highway_targets.hpp"
#include "tests/test_util.hpp"

namespace convkit::test {
namespace {

struct TransposeCase {
  Dims x;  // {N, H, W, C_in}
  int64_t c_out = 1;
  Conv2dTransposeParams params;
  bool bias = true;

  Dims w() const { return {params.kernel_h, params.kernel_w, c_out / params.groups, x[3]}; }
  std::string ToString() const {
    return "x " + to_string(x) + " c_out " + std::to_string(c_out) + " " + to_string(params) +
           (bias ? " bias" : "");
  }
};

TransposeCase Make(Dims x, int64_t c_out, int64_t k, int64_t s, Pads pad, int64_t d = 1,
                   int64_t g = 1, int64_t op = 0, bool relu = false) {
  TransposeCase c;
  c.x = x;
  c.c_out = c_out;
  c.params.kernel_h = c.params.kernel_w = k;
  c.params.stride_h = c.params.stride_w = s;
  c.params.pad = pad;
  c.params.dilation_h = c.params.dilation_w = d;
  c.params.groups = g;
  c.params.output_padding_h = c.params.output_padding_w = op;
  c.params.activation = relu ? Activation::kRelu : Activation::kNone;
  return c;
}

// Hand-picked: the benchmark's kinds of layer at small sizes, then each special path.
std::vector<TransposeCase> HandCases() {
  std::vector<TransposeCase> cases = {
      Make({1, 5, 6, 16}, 8, 2, 2, {}),                                // UNet 2x2 s2
      Make({2, 4, 5, 17}, 15, 4, 2, Pads::uniform(1)),                 // DCGAN 4x4 s2 p1
      Make({1, 6, 7, 31}, 16, 3, 1, Pads::uniform(1), 1, 1, 0, true),  // 3x3 s1, relu
      Make({2, 5, 4, 3}, 17, 3, 2, Pads::uniform(1), 1, 1, 1),         // output_padding 1
      Make({1, 4, 5, 15}, 3, 3, 3, {0, 1, 2, 0}, 1, 1, 2),             // stride 3, asymmetric
      Make({1, 3, 4, 16}, 16, 5, 3, {1, 2, 0, 3}, 1, 1, 1, true),
      Make({1, 5, 5, 16}, 8, 3, 1, {}, 2, 1, 1),                       // op 1 >= stride, < dilation
      Make({1, 4, 3, 8}, 9, 2, 2, {1, 0, 0, 1}, 3, 1, 2),              // op 2 >= stride, < dilation
      Make({1, 5, 5, 6}, 4, 3, 2, Pads::uniform(1), 1, 2, 1),          // groups 2
      Make({2, 4, 6, 32}, 64, 4, 2, Pads::uniform(1), 1, 4),           // groups 4
      Make({2, 5, 6, 32}, 32, 3, 2, Pads::uniform(1), 1, 8, 1, true),  // narrow groups of 4
      Make({1, 6, 5, 24}, 48, 3, 1, Pads::uniform(1), 1, 6),           // narrow groups, 4 -> 8
      Make({1, 6, 7, 17}, 17, 3, 2, Pads::uniform(1), 1, 17, 1),       // depthwise
      Make({2, 5, 5, 32}, 32, 4, 2, Pads::uniform(1), 1, 32, 0, true),
      Make({1, 7, 20, 16}, 16, 3, 1, Pads::uniform(1), 1, 16),  // depthwise, dense rows
      Make({1, 6, 9, 31}, 31, 5, 1, {2, 1, 0, 2}, 1, 31),
      Make({1, 2, 3, 16}, 16, 17, 2, {3, 1, 2, 0}, 1, 16),  // depthwise, 17 kernel rows
      Make({2, 6, 6, 16}, 3, 4, 2, Pads::uniform(1)),       // 3 outputs: narrow path
      Make({1, 5, 4, 31}, 1, 3, 2, {1, 0, 1, 0}, 1, 1, 1, true),
      Make({0, 4, 4, 8}, 8, 2, 2, {}),                           // empty batch
      Make({1, 5, 5, 16}, 31, 1, 1, {}),                         // 1x1
      Make({1, 4, 4, 3}, 5, 1, 2, {}, 1, 1, 1),                  // stride > kernel: gaps
      Make({3, 1, 1, 16}, 16, 4, 2, Pads::uniform(1)),           // one input pixel
      Make({1, 3, 3, 4}, 4, 5, 1, {2, 3, 1, 0}),                 // crops past the window
      Make({1, 4, 4, 17}, 15, 3, 2, Pads::uniform(1), 2, 1, 1),  // dilated, strided
      // Kernel = stride (highway's shuffle): its 1x1 output in chunks of 2 dy rows (32 pixels of
      // 4096 floats), a last chunk of 1, chunks across images.
      Make({1, 5, 32, 8}, 1024, 2, 2, {}),
      Make({2, 3, 32, 8}, 1024, 2, 2, {1, 0, 0, 1}, 1, 1, 1, true),
      // Kernel < stride (the shuffle in plans): rows and pixels no tap reaches are zeros.
      Make({1, 5, 6, 16}, 8, 2, 3, {1, 0, 0, 1}, 1, 1, 2),
      Make({2, 3, 32, 8}, 1024, 1, 2, {}, 1, 1, 1, true),
  };
  cases.push_back(Make({1, 4, 5, 15}, 16, 2, 2, {}));
  cases.back().bias = false;
  for (const int64_t c_in : {1, 3, 15, 16, 17, 31}) {
    for (const int64_t c_out : {1, 16, 17, 31}) {
      cases.push_back(Make({1, 3, 4, c_in}, c_out, 2, 2, {}, 1, 1, 0, c_in % 2 == 1));
      cases.push_back(Make({1, 4, 3, c_in}, c_out, 3, 1, Pads::uniform(1)));
    }
  }
  return cases;
}

// Every benchmark shape of the "transposed" set (STYLE rule 9), batch 1 and H, W cropped to at most
// 3 (the channel counts, which decide the kernels' blocking, are kept).
std::vector<TransposeCase> BenchCases() {
  std::vector<TransposeCase> cases;
  for (const bench::TransposeShape& shape : bench::TransposeShapes()) {
    TransposeCase c;
    c.x = {1, std::min<int64_t>(shape.x[1], 3), std::min<int64_t>(shape.x[2], 3), shape.x[3]};
    c.c_out = shape.c_out;
    c.params = shape.params;
    cases.push_back(c);
  }
  return cases;
}

// Random valid cases over the whole parameter space, the same ones on every run.
std::vector<TransposeCase> SampledCases() {
  std::vector<TransposeCase> cases;
  Rng rng(0x7a5e);
  const std::vector<int64_t> channels = {1, 3, 15, 16, 17, 31};
  while (cases.size() < 60) {
    TransposeCase c;
    const int64_t k = rng.UniformInt(1, 5), s = rng.UniformInt(1, 3), d = rng.UniformInt(1, 2);
    const int64_t group_kind = rng.UniformInt(0, 2);  // 1, 2 or depthwise
    int64_t c_in = rng.Pick(channels), c_out = rng.Pick(channels);
    int64_t g = 1;
    if (group_kind == 1) {
      g = 2;
      c_in *= 2;
      c_out *= 2;
    } else if (group_kind == 2) {
      g = c_out = c_in;
    }
    Pads pad{rng.UniformInt(0, k - 1), rng.UniformInt(0, k - 1), rng.UniformInt(0, k - 1),
             rng.UniformInt(0, k - 1)};
    const int64_t op_limit = std::max(s, d) - 1;
    c = Make({rng.UniformInt(0, 2), rng.UniformInt(1, 7), rng.UniformInt(1, 7), c_in}, c_out, k, s,
             pad, d, g, rng.UniformInt(0, op_limit), rng.UniformInt(0, 2) == 0);
    c.params.output_padding_w = rng.UniformInt(0, op_limit);
    c.bias = rng.UniformInt(0, 3) != 0;
    try {
      conv2d_transpose_output_dims(c.x, c.w(), c.params);
    } catch (const Error&) {
      continue;  // an output below 1: drawn again
    }
    cases.push_back(c);
  }
  return cases;
}

std::vector<TransposeCase> Cases() {
  std::vector<TransposeCase> cases = HandCases();
  for (const TransposeCase& c : BenchCases()) cases.push_back(c);
  for (const TransposeCase& c : SampledCases()) cases.push_back(c);
  return cases;
}

// The post-ops of grid case `index`: the activations in turn, every 11 cases the next residual
// mode, and every third case the linear map after the activation (kScale, kShift: products that
// need a rounding, and a sign flip).
enum class Residual { kNone, kBefore, kAfter, kInPlace };

struct PostOpsCase {
  static constexpr float kScale = -0.75f, kShift = 1.5f;
  Activation activation = Activation::kNone;
  float alpha = 0.0f, beta = 0.0f;
  Residual residual = Residual::kNone;
  bool linear = false;
};

PostOpsCase PostOpsFor(int index) {
  static constexpr Activation kAll[] = {
      Activation::kNone,      Activation::kRelu,        Activation::kRelu6, Activation::kClip,
      Activation::kLeakyRelu, Activation::kSigmoid,     Activation::kTanh,  Activation::kSilu,
      Activation::kHardSwish, Activation::kHardSigmoid, Activation::kGelu};
  constexpr int kCount = static_cast<int>(std::size(kAll));
  PostOpsCase c;
  c.activation = kAll[index % kCount];
  if (c.activation == Activation::kClip) c = {c.activation, -2.0f, 5.0f};
  if (c.activation == Activation::kLeakyRelu) c = {c.activation, 0.5f, 0.0f};
  if (c.activation == Activation::kHardSigmoid) c = {c.activation, 0.25f, 0.5f};
  c.residual = static_cast<Residual>((index / kCount) % 4);
  c.linear = index % 3 == 2;
  return c;
}

// Exact activations compare bit for bit (the linear map is one fma everywhere); the others within
// 4 ulp of the reference's activation (DESIGN §4). A residual added after the activation, or the
// linear map's shift, may cancel most of it (sigmoid(z) - 1), so there the 4 ulp are of the
// activation's value: with the linear map, 3 * 2^-23 |s act| <= 2^-20 max(|y|, |t| + |r|).
Tolerance ToleranceFor(const PostOpsCase& ops) {
  const Residual residual = ops.residual;
  if (ops.linear && !IsExactActivation(ops.activation)) {
    return Tolerance::Relative(0x1.0p-20, 1.5 + (residual == Residual::kAfter ? 3.0 : 0.0));
  }
  const double floor = residual == Residual::kAfter ? 4.0 : 1e-30;
  switch (ops.activation) {
    case Activation::kNone:
    case Activation::kRelu:
    case Activation::kRelu6:
    case Activation::kClip:
    case Activation::kLeakyRelu:
      return Tolerance::Exact();
    default:
      return Tolerance::Relative(0x1.0p-21, floor);  // 4 ulp: 4 * 2^-23 of the value at most
  }
}

// Integers in [-3, 3] without 0: every partial sum is an exact fp32 integer.
void Fill(std::span<float> data, Rng& rng) { FillIntegers(data, rng, -3, 3, true); }

struct CaseData {
  Tensor x, w;
  std::vector<float> b;
};

CaseData MakeData(const TransposeCase& c, uint64_t seed) {
  Rng rng(seed);
  CaseData data{Tensor(c.x), Tensor(c.w()), std::vector<float>(c.bias ? c.c_out : 0)};
  Fill(Span(data.x), rng);
  Fill(Span(data.w), rng);
  Fill(Span(data.b), rng);
  return data;
}

// y of `c` with the post-ops `ops` into `y` (pre-filled by the caller), one-shot on `backend` or
// through `plan` when given. The residual r is given as its own tensor, or with kInPlace copied
// into y first.
void RunForward(const TransposeCase& c, const CaseData& d, const PostOpsCase& ops, const Tensor& r,
                const std::string& backend, const Conv2dTranspose* plan, Tensor& y) {
  if (ops.residual == Residual::kInPlace) y = r;
  const Tensor* rr = ops.residual == Residual::kNone      ? nullptr
                     : ops.residual == Residual::kInPlace ? &y
                                                          : &r;
  if (plan != nullptr) {
    if (rr == nullptr) return plan->run(d.x, y);
    return plan->run(d.x, *rr, y);
  }
  if (rr == nullptr) return conv2d_transpose_forward(c.params, d.x, d.w, d.b, y, backend);
  conv2d_transpose_forward(c.params, d.x, d.w, d.b, *rr, y, backend);
}

// Forward of grid case `index`, one-shot and a plan run twice, against reference, with the
// post-ops rotating over the cases.
GridStep CheckForward(const std::string& backend, std::string_view isa, int index, TransposeCase c,
                      Tally& tally) {
  const PostOpsCase ops = PostOpsFor(index);
  c.params.activation = ops.activation;
  c.params.activation_alpha = ops.alpha;
  c.params.activation_beta = ops.beta;
  c.params.residual_after_activation = ops.residual == Residual::kAfter;
  if (ops.linear) {
    c.params.post_scale = PostOpsCase::kScale;
    c.params.post_shift = PostOpsCase::kShift;
  }
  static constexpr const char* kResidualNames[] = {"", " residual", " residual",
                                                   " residual (in place)"};
  const std::string cs = c.ToString() + kResidualNames[static_cast<int>(ops.residual)];
  const CaseData d = MakeData(c, 0x7000 + index);
  const Dims y_dims = conv2d_transpose_output_dims(c.x, c.w(), c.params);
  Tensor r(y_dims);
  Rng rng(0x5e5 + index + 1);
  Fill(Span(r), rng);
  Tensor expected(y_dims, kReferenceFill);
  RunForward(c, d, ops, r, "reference", nullptr, expected);
  if (c.bias && ops.activation == Activation::kNone && expected.size() >= 32 &&
      tally.Check(NotMostlyZero(cs, "reference y", expected, 0.3))) {
    return GridStep::kStop;
  }
  const BackendRuns runs{[&](Tensor& y) { RunForward(c, d, ops, r, backend, nullptr, y); },
                         [&](Tensor& y, Tensor& y_again) {
                           const Conv2dTranspose plan(c.params, c.x, d.w, d.b, backend);
                           RunForward(c, d, ops, r, backend, &plan, y);
                           RunForward(c, d, ops, r, backend, &plan, y_again);
                           return plan.impl_name();
                         }};
  return CheckOneShotAndPlan(tally, cs, "y", expected, isa, runs, ToleranceFor(ops));
}

// Backward of grid case `index` against reference; the gradients asked for rotate: all three, dx
// only, dw and db only. One not asked for is not written.
GridStep CheckBackward(const std::string& backend, int index, TransposeCase c, Tally& tally) {
  const int which = index % 3;
  c.params.activation = Activation::kNone;
  const std::string cs = c.ToString() + (which == 1   ? " dx only"
                                         : which == 2 ? " dw, db only"
                                                      : "");
  const CaseData d = MakeData(c, 0xb000 + index);
  Tensor dy(conv2d_transpose_output_dims(c.x, c.w(), c.params));
  Rng rng(0xd1 + index + 1);
  Fill(Span(dy), rng);
  Tensor dx_ref(c.x, kReferenceFill), dw_ref(c.w(), kReferenceFill);
  std::vector<float> db_ref(static_cast<size_t>(c.c_out), kReferenceFill);
  conv2d_transpose_backward(c.params, d.x, d.w, dy, {dx_ref.view(), dw_ref.view(), Span(db_ref)},
                            "reference");
  Tensor dx(c.x, kBackendFill), dw(c.w(), kBackendFill);
  std::vector<float> db(static_cast<size_t>(c.c_out), kBackendFill);
  Conv2dGrads grads;
  if (which != 2) grads.dx = dx.view();
  if (which != 1) {
    grads.dw = dw.view();
    grads.db = Span(db);
  }
  if (auto why =
          RefusalOf([&] { conv2d_transpose_backward(c.params, d.x, d.w, dy, grads, backend); })) {
    tally.Refused(cs, *why);
    return GridStep::kNext;
  }
  tally.Ran();
  const bool stop =
      (which != 2 && tally.Check(CompareTensors(cs, "dx", dx_ref, dx))) ||
      (which != 1 && tally.Check(CompareTensors(cs, "dw", dw_ref, dw))) ||
      (which != 1 && tally.Check(CompareVectors(cs, "db", db_ref, db))) ||
      (which == 2 &&
       tally.Check(CompareTensors(cs, "dx (not asked)", Tensor(c.x, kBackendFill), dx))) ||
      (which == 1 &&
       tally.Check(CompareTensors(cs, "dw (not asked)", Tensor(c.w(), kBackendFill), dw)));
  return stop ? GridStep::kStop : GridStep::kNext;
}

// The grids through the shared driver (tests/grid_driver.hpp); each returns how many cases ran
// (the others were refused, with their reasons) and skips the test when none did.
int ForwardGrid(const std::string& backend, std::string_view isa) {
  return RunGrid(backend, Cases(), [&](int index, const TransposeCase& c, Tally& tally) {
    return CheckForward(backend, isa, index, c, tally);
  });
}

int BackwardGrid(const std::string& backend) {
  return RunGrid(backend, Cases(), [&](int index, const TransposeCase& c, Tally& tally) {
    return CheckBackward(backend, index, c, tally);
  });
}

class TransposeTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (auto why = NotBuiltReason(GetParam())) GTEST_SKIP() << GetParam() << ": " << *why;
  }
  const std::string& backend() const { return GetParam(); }
};

TEST_P(TransposeTest, ForwardMatchesReference) { ForwardGrid(backend(), ""); }

TEST_P(TransposeTest, BackwardMatchesReference) { BackwardGrid(backend()); }

// The convolution whose backward data `c` is: same kernel, stride, dilation, groups, pads (when
// output_padding < stride: then its output size formula gives back x's H and W).
Conv2dParams EquivalentConv(const TransposeCase& c) {
  Conv2dParams p;
  p.kernel_h = c.params.kernel_h;
  p.kernel_w = c.params.kernel_w;
  p.stride_h = c.params.stride_h;
  p.stride_w = c.params.stride_w;
  p.pad = c.params.pad;
  p.dilation_h = c.params.dilation_h;
  p.dilation_w = c.params.dilation_w;
  p.groups = c.params.groups;
  return p;
}

// conv2d_transpose_forward(x, w) is conv2d_backward's dx with dy = x, bit for bit on each backend,
// on integer data for every backend and on real-valued data where both run the same kernel.
TEST_P(TransposeTest, EqualsConvBackwardData) {
  int ran = 0, index = 0;
  for (TransposeCase c : Cases()) {
    if (c.params.output_padding_h >= c.params.stride_h ||
        c.params.output_padding_w >= c.params.stride_w) {
      continue;  // the equivalent convolution would need a negative pad
    }
    c.params.activation = Activation::kNone;
    const Conv2dParams conv = EquivalentConv(c);
    const Dims y_dims = conv2d_transpose_output_dims(c.x, c.w(), c.params);
    ASSERT_EQ(conv2d_output_dims(y_dims, c.w(), conv), c.x) << c.ToString();
    for (const bool real : {false, true}) {
      const std::string cs = backend() + ": " + c.ToString() + (real ? " real" : " integer");
      Rng rng(0x1de + index++);
      Tensor x(c.x), w(c.w());
      if (real) {
        FillNormal(Span(x), rng);
        FillNormal(Span(w), rng);
      } else {
        Fill(Span(x), rng);
        Fill(Span(w), rng);
      }
      Tensor y(y_dims, kBackendFill), dx(y_dims, kReferenceFill);
      if (RefusalOf([&] { conv2d_transpose_forward(c.params, x, w, {}, y, backend()); }) ||
          RefusalOf(
              [&] { conv2d_backward(conv, Tensor(y_dims), w, x, {.dx = dx.view()}, backend()); })) {
        continue;
      }
      ++ran;
      // Reference scatters (forward) where its dx gathers: the same bits on integer data only.
      // oneDNN's deconvolution is its backward-data kernel: the same bits either way.
      if (real && backend() == "reference") continue;
      EXPECT_TRUE(CompareTensors(cs, "y vs conv2d_backward dx", dx, y));
    }
    if (::testing::Test::HasFailure()) break;
  }
  if (ran == 0) GTEST_SKIP() << backend() << " refused every case";
}

// A plan keeps no reference to w and b; runs from several threads agree.
TEST_P(TransposeTest, PlanOwnsItsWeights) {
  TransposeCase c = Make({2, 5, 6, 16}, 8, 4, 2, Pads::uniform(1), 1, 1, 1);
  c.params.activation = Activation::kLeakyRelu;  // run by every backend
  c.params.activation_alpha = 0.25f;
  CaseData d = MakeData(c, 0x91a);
  const Dims y_dims = conv2d_transpose_output_dims(c.x, c.w(), c.params);
  Tensor expected(y_dims);
  conv2d_transpose_forward(c.params, d.x, d.w, d.b, expected, "reference");
  const Conv2dTranspose plan(c.params, c.x, d.w, d.b, backend());
  EXPECT_EQ(plan.x_dims(), c.x);
  EXPECT_EQ(plan.y_dims(), y_dims);
  EXPECT_TRUE(plan.impl_name().starts_with(backend() + ":")) << plan.impl_name();
  std::fill(d.w.data(), d.w.data() + d.w.size(), 100.0f);
  std::fill(d.b.begin(), d.b.end(), 100.0f);
  GuardedTensor y(y_dims, kBackendFill);
  plan.run(d.x, y.view());
  EXPECT_TRUE(CompareTensors(c.ToString(), "y", expected, y.view()));
  EXPECT_TRUE(y.GuardsIntact(c.ToString(), "y"));
}

// fpmath = bf16 (DESIGN §3, §4): on integer data (bf16 values, exact fp32 sums) every backend
// gives the reference's strict bits, whether it rounds to bf16 or computes in fp32 (the
// permission); the plan names the reference's bf16 loops as such.
TEST_P(TransposeTest, Bf16IsExactOnIntegerData) {
  RunGrid(backend(), Cases(), [&](int index, TransposeCase c, Tally& tally) {
    c.params.activation = Activation::kNone;
    const CaseData d = MakeData(c, 0xbf16 + index);
    const Dims y_dims = conv2d_transpose_output_dims(c.x, c.w(), c.params);
    Tensor expected(y_dims, kReferenceFill);
    conv2d_transpose_forward(c.params, d.x, d.w, d.b, expected, "reference");
    c.params.fpmath = Fpmath::kBf16;
    Tensor y(y_dims, kBackendFill);
    if (auto why =
            RefusalOf([&] { conv2d_transpose_forward(c.params, d.x, d.w, d.b, y, backend()); })) {
      tally.Refused(c.ToString() + " bf16", *why);
      return GridStep::kNext;
    }
    tally.Ran();
    return tally.Check(CompareTensors(c.ToString() + " bf16", "y", expected, y)) ? GridStep::kStop
                                                                                 : GridStep::kNext;
  });
  if (backend() == "reference") {
    const TransposeCase c = Make({1, 3, 3, 4}, 4, 3, 1, Pads::uniform(1), 1, 1, 0);
    Conv2dTransposeParams params = c.params;
    params.fpmath = Fpmath::kBf16;
    EXPECT_EQ(Conv2dTranspose(params, c.x, Tensor(c.w(), 1.0f), {}, "reference").impl_name(),
              "reference:direct_bf16:scalar");
  }
}

// On real data each backend stays within the bf16 bound of the strict result: rounding x and w
// moves each product by at most 2^-7 of its size, and fp32 accumulation adds (K + 3) 2^-23 of the
// sum of |products| (fpmath_test.cpp states the bound for the convolution; K = KH KW C_out/groups).
TEST_P(TransposeTest, Bf16StaysWithinTheBound) {
  int index = 0;
  for (TransposeCase c : SampledCases()) {
    c.params.activation = Activation::kNone;
    Rng rng(0xb0b + index++);
    Tensor x(c.x), w(c.w());
    FillNormal(Span(x), rng);
    FillNormal(Span(w), rng);
    const Dims y_dims = conv2d_transpose_output_dims(c.x, c.w(), c.params);
    Tensor strict(y_dims), sum_abs(y_dims), y(y_dims, kBackendFill);
    conv2d_transpose_forward(c.params, x, w, {}, strict, "reference");
    Tensor x_abs(x), w_abs(w);
    for (float& v : Span(x_abs)) v = std::fabs(v);
    for (float& v : Span(w_abs)) v = std::fabs(v);
    conv2d_transpose_forward(c.params, x_abs, w_abs, {}, sum_abs, "reference");
    c.params.fpmath = Fpmath::kBf16;
    if (RefusalOf([&] { conv2d_transpose_forward(c.params, x, w, {}, y, backend()); })) continue;
    const double k = static_cast<double>(c.params.kernel_h * c.params.kernel_w * c.w()[2]);
    const double rel = 0x1.0p-7 + 2.0 * (k + 3.0) * 0x1.0p-23;
    for (int64_t i = 0; i < y.size(); ++i) {
      const double bound = rel * sum_abs.data()[i];
      ASSERT_LE(std::fabs(static_cast<double>(y.data()[i]) - strict.data()[i]), bound)
          << backend() << ": " << c.ToString() << " element " << i;
    }
  }
}

// The reference defines the mode: x and w rounded to bf16 (nearest even), then the fp32 loops.
TEST(TransposeBf16, ReferenceRoundsXAndWFirst) {
  const TransposeCase c = Make({2, 5, 4, 7}, 6, 3, 2, Pads::uniform(1), 1, 1, 1);
  Rng rng(0x5eed);
  Tensor x(c.x), w(c.w());
  FillNormal(Span(x), rng);
  FillNormal(Span(w), rng);
  Tensor x_rounded(x), w_rounded(w);
  for (float& v : Span(x_rounded)) v = internal::RoundToBf16(v);
  for (float& v : Span(w_rounded)) v = internal::RoundToBf16(v);
  const Dims y_dims = conv2d_transpose_output_dims(c.x, c.w(), c.params);
  Tensor expected(y_dims), strict(y_dims), y(y_dims, kBackendFill);
  conv2d_transpose_forward(c.params, x_rounded, w_rounded, {}, expected, "reference");
  conv2d_transpose_forward(c.params, x, w, {}, strict, "reference");
  Conv2dTransposeParams params = c.params;
  params.fpmath = Fpmath::kBf16;
  conv2d_transpose_forward(params, x, w, {}, y, "reference");
  EXPECT_TRUE(CompareTensors(c.ToString(), "y", expected, y));
  EXPECT_FALSE(std::equal(strict.data(), strict.data() + strict.size(), y.data()))
      << "bf16 rounding changed nothing: the data are not what the test needs";
}

INSTANTIATE_TEST_SUITE_P(Backends, TransposeTest, ::testing::ValuesIn(BackendsToTest()),
                         BackendParamName);

// Every compiled Highway target, pinned in turn (tests/highway_targets.hpp): the backward-data
// kernels with the fused epilogue on each vector width.
class TransposeHighwayTargetTest : public PinnedHighwayTargetTest {};

TEST_P(TransposeHighwayTargetTest, ForwardMatchesReference) {
  EXPECT_GT(ForwardGrid("highway", isa()), 0);
}

INSTANTIATE_TEST_SUITE_P(Compiled, TransposeHighwayTargetTest,
                         ::testing::ValuesIn(CompiledHighwayTargets()), HighwayTargetParamName);

}  // namespace
}  // namespace convkit::test
