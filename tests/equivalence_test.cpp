// Equivalence tests (DESIGN §4, §8; STYLE rules 8, 9): every built backend other than reference
// against reference, bit for bit, on integer-valued data over a grid of shapes and parameters.
//
// The grid is (1) every benchmark shape (bench/shape_sets.hpp), cropped to a small spatial size and
// batch so the run stays short, (2) a few hand-picked corner cases and (3) a seeded random sample
// of stride 1-3, asymmetric pads, dilation 1-3, groups 1, 2 and depthwise, kernels 1-7, channel
// counts around the vector width, odd sizes, batch 0-3, bias and ReLU; pooling max / average with
// ceil_mode, both divisors, padding and global windows.
//
// Exactness: convolution data are small nonzero integers, so every partial sum is an exact fp32
// integer whatever the order. Average pooling data are integer multiples of the lcm of every
// possible divisor, so every average and every backward share is an exact integer too. Max pooling
// data have many ties (testing the first-maximum rule) and, in some cases, NaNs.
//
// A backend refusing a case (ErrorCode::kUnsupported) has the case counted and its reason printed;
// a test whose every case is refused is skipped with the reasons.
//
// Beyond the grid: the grid again on every compiled Highway target, pinned one at a time
// (HighwayTargetTest); a seeded random generator of valid cases, exact on integers and within a
// stated bound on normals (RandomTest; CONVKIT_RANDOM_CASES, CONVKIT_RANDOM_SEED,
// CONVKIT_RANDOM_CASE); and the edge values every backend must get right or pins as a deviation
// (EdgeValueTest: denormals, NaN through a convolution, ReLU of NaN).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "bench/shape_sets.hpp"
#include "tests/test_util.hpp"

#if CONVKIT_TEST_HIGHWAY_TARGETS
#include <hwy/targets.h>
#endif

namespace convkit::test {
namespace {

constexpr uint64_t kGridSeed = 0x5eed0c0417ull;
constexpr int kSampledConvCases = 140;
constexpr int kSampledPoolCases = 160;
// Multiply-accumulates allowed per case: keeps the reference's share of the run short.
constexpr double kMaxConvMacs = 4e6;
constexpr double kMaxBenchConvMacs = 8e6;
// Failing cases reported per test before it stops looking.
constexpr int kMaxReportedFailures = 8;
// Output pre-fills: distinct, so an element neither side writes still shows as a difference.
constexpr float kReferenceFill = 7777.0f;
constexpr float kBackendFill = -9999.0f;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---- The grid ----

struct ConvCase {
  std::string origin;  // "bench resnet50/res2_3x3_64", "hand: ...", "sampled 17"
  Dims x{};
  Conv2dParams params;
  int64_t oc = 0;
  bool bias = false;

  Dims w() const { return {params.kernel_h, params.kernel_w, x[3] / params.groups, oc}; }
  std::string ToString() const {
    return origin + " [x " + to_string(x) + " oc " + std::to_string(oc) + " " + to_string(params) +
           (bias ? " bias" : "") + "]";
  }
};

struct PoolCase {
  std::string origin;
  Dims x{};
  Pool2dParams params;
  bool with_nans = false;  // max pooling: a few NaNs in x

  std::string ToString() const {
    return origin + " [x " + to_string(x) + " " + to_string(params) + (with_nans ? " NaNs" : "") +
           "]";
  }
};

int64_t KernelSpan(int64_t k, int64_t d) { return d * (k - 1) + 1; }

double ConvMacs(const ConvCase& c) {
  const Dims y = conv2d_output_dims(c.x, c.w(), c.params);
  return static_cast<double>(y[0]) * y[1] * y[2] * c.oc * c.params.kernel_h * c.params.kernel_w *
         (c.x[3] / c.params.groups);
}

// The largest extent <= `limit` with the parity of `extent` (so stride-2 layers keep their edge
// behaviour) that still fits the kernel; `extent` itself when it is small already.
int64_t Crop(int64_t extent, int64_t limit, int64_t min_extent) {
  if (extent <= limit) return extent;
  int64_t e = limit - ((limit - extent) % 2 != 0 ? 1 : 0);
  return std::max(e, min_extent);
}

// Every benchmark shape, cropped to at most 15x15 (less for the heaviest) and batch <= 2.
std::vector<ConvCase> BenchConvCases() {
  std::vector<ConvCase> cases;
  int index = 0;
  for (const bench::ConvShape& shape : bench::ConvShapes()) {
    ConvCase c;
    c.origin = "bench " + std::string(shape.set) + "/" + std::string(shape.name);
    c.params = shape.params;
    c.oc = shape.c_out;
    c.bias = true;
    if (index++ % 3 == 1) c.params.activation = Activation::kRelu;
    const int64_t min_h = std::max<int64_t>(1, KernelSpan(c.params.kernel_h, c.params.dilation_h) -
                                                   c.params.pad.top - c.params.pad.bottom);
    const int64_t min_w = std::max<int64_t>(1, KernelSpan(c.params.kernel_w, c.params.dilation_w) -
                                                   c.params.pad.left - c.params.pad.right);
    for (int64_t limit = 15; limit >= 1; limit -= 2) {
      c.x = {std::min<int64_t>(shape.default_batch(), 2), Crop(shape.x[1], limit, min_h),
             Crop(shape.x[2], limit, min_w), shape.x[3]};
      if (ConvMacs(c) <= kMaxBenchConvMacs) break;
    }
    cases.push_back(c);
  }
  return cases;
}

Conv2dParams MakeConv(int64_t k, int64_t s, Pads p, int64_t d = 1, int64_t g = 1) {
  Conv2dParams params;
  params.kernel_h = params.kernel_w = k;
  params.stride_h = params.stride_w = s;
  params.pad = p;
  params.dilation_h = params.dilation_w = d;
  params.groups = g;
  return params;
}

std::vector<ConvCase> HandConvCases() {
  Conv2dParams tall = MakeConv(5, 1, {2, 0, 1, 3}, 1);
  tall.kernel_w = 1;
  tall.stride_h = 2;
  tall.dilation_w = 3;
  return {
      {"hand: 1x1 input, all but one window in padding",
       {2, 1, 1, 5},
       MakeConv(3, 1, Pads::uniform(2)),
       7,
       false},
      {"hand: stride 3 > kernel 1 (dx mostly structural zeros)",
       {1, 11, 13, 17},
       MakeConv(1, 3, {}),
       16,
       true},
      {"hand: dilation 3, pad 3", {2, 7, 9, 3}, MakeConv(3, 1, Pads::uniform(3), 3), 5, true},
      {"hand: batch 0", {0, 9, 9, 16}, MakeConv(3, 2, Pads::uniform(1)), 16, true},
      {"hand: kernel == padded input", {3, 5, 4, 3}, MakeConv(7, 1, {1, 1, 2, 1}), 2, true},
      {"hand: depthwise multiplier 2",
       {1, 9, 7, 16},
       MakeConv(3, 2, {0, 1, 1, 0}, 1, 16),
       32,
       true},
      {"hand: non-square kernel, stride and dilation", {2, 12, 11, 6}, tall, 9, false},
  };
}

// Odd channel counts made even for groups 2.
int64_t Even(int64_t c) { return c % 2 == 0 ? c : 2 * c; }

std::vector<ConvCase> SampledConvCases() {
  const std::vector<int64_t> channels = {1, 3, 15, 16, 17, 31, 33, 64};
  const std::vector<int64_t> kernels = {1, 3, 5, 7};
  const std::vector<int64_t> sizes = {1, 3, 5, 7, 9, 11, 13};
  Rng rng(kGridSeed);
  std::vector<ConvCase> cases;
  while (static_cast<int>(cases.size()) < kSampledConvCases) {
    ConvCase c;
    Conv2dParams& p = c.params;
    int64_t ic = rng.Pick(channels);
    c.oc = rng.Pick(channels);
    switch (rng.UniformInt(0, 2)) {
      case 0:
        break;
      case 1:
        p.groups = 2;
        ic = Even(ic);
        c.oc = Even(c.oc);
        break;
      default:  // depthwise, sometimes with a channel multiplier
        p.groups = ic;
        c.oc = ic * (rng.UniformInt(0, 3) == 0 ? 2 : 1);
        break;
    }
    p.kernel_h = rng.Pick(kernels);
    p.kernel_w = rng.UniformInt(0, 2) == 0 ? rng.Pick(kernels) : p.kernel_h;
    p.stride_h = rng.UniformInt(1, 3);
    p.stride_w = rng.UniformInt(0, 2) == 0 ? rng.UniformInt(1, 3) : p.stride_h;
    p.dilation_h = rng.UniformInt(0, 1) == 0 ? 1 : rng.UniformInt(2, 3);
    p.dilation_w = rng.UniformInt(0, 2) == 0 ? rng.UniformInt(1, 3) : p.dilation_h;
    p.pad = {rng.UniformInt(0, 3), rng.UniformInt(0, 3), rng.UniformInt(0, 3),
             rng.UniformInt(0, 3)};
    // relu, or leaky_relu with a slope exact on integers (oneDNN refuses relu).
    const int64_t activation = rng.UniformInt(0, 2);
    p.activation = activation == 0   ? Activation::kNone
                   : activation == 1 ? Activation::kRelu
                                     : Activation::kLeakyRelu;
    p.activation_alpha = 0.125f;
    c.bias = rng.UniformInt(0, 1) == 0;
    c.x = {rng.UniformInt(0, 3), rng.Pick(sizes), rng.Pick(sizes), ic};
    if (c.x[1] + p.pad.top + p.pad.bottom < KernelSpan(p.kernel_h, p.dilation_h) ||
        c.x[2] + p.pad.left + p.pad.right < KernelSpan(p.kernel_w, p.dilation_w)) {
      continue;  // a kernel larger than the padded input is an error, not a case
    }
    if (ConvMacs(c) > kMaxConvMacs) continue;
    c.origin = "sampled " + std::to_string(cases.size());
    cases.push_back(c);
  }
  return cases;
}

std::vector<ConvCase> ConvCases() {
  std::vector<ConvCase> all = BenchConvCases();
  for (auto* part : {HandConvCases, SampledConvCases}) {
    for (ConvCase& c : part()) all.push_back(std::move(c));
  }
  return all;
}

Pool2dParams MakePool(PoolMode mode, int64_t k, int64_t s, Pads p, bool ceil_mode = false,
                      bool include_pad = false) {
  Pool2dParams params;
  params.mode = mode;
  params.window_h = params.window_w = k;
  params.stride_h = params.stride_w = s;
  params.pad = p;
  params.ceil_mode = ceil_mode;
  params.count_include_pad = include_pad;
  return params;
}

std::vector<PoolCase> PoolCases() {
  std::vector<PoolCase> cases;
  // Every benchmark shape in both modes, batch <= 2, at most 15x15.
  for (const bench::PoolShape& shape : bench::PoolShapes()) {
    for (const PoolMode mode : {PoolMode::kMax, PoolMode::kAverage}) {
      PoolCase c;
      c.origin = "bench " + std::string(shape.set) + "/" + std::string(shape.name);
      c.params = shape.params;
      c.params.mode = mode;
      if (mode == PoolMode::kMax) c.params.count_include_pad = false;
      const int64_t min_h = shape.params.global ? 1 : shape.params.window_h;
      const int64_t min_w = shape.params.global ? 1 : shape.params.window_w;
      c.x = {std::min<int64_t>(shape.default_batch(), 2), Crop(shape.x[1], 15, min_h),
             Crop(shape.x[2], 15, min_w), shape.x[3]};
      cases.push_back(c);
    }
  }
  // Hand-picked.
  cases.push_back({"hand: ceil_mode drops a window in the padding",
                   {2, 5, 5, 3},
                   MakePool(PoolMode::kMax, 2, 2, Pads::uniform(1), true)});
  cases.push_back({"hand: ceil_mode drops a window in the padding",
                   {2, 5, 5, 3},
                   MakePool(PoolMode::kAverage, 2, 2, Pads::uniform(1), true, true)});
  cases.push_back(
      {"hand: batch 0", {0, 7, 7, 16}, MakePool(PoolMode::kAverage, 3, 2, {1, 0, 0, 1})});
  cases.push_back(
      {"hand: NaNs", {3, 9, 9, 17}, MakePool(PoolMode::kMax, 3, 1, Pads::uniform(1)), true});
  // Sampled.
  const std::vector<int64_t> channels = {1, 3, 15, 16, 17, 31, 33, 64};
  const std::vector<int64_t> windows = {1, 2, 3, 5, 7};
  const std::vector<int64_t> sizes = {1, 3, 5, 7, 9, 11, 13, 15};
  Rng rng(kGridSeed + 1);
  int sampled = 0;
  while (sampled < kSampledPoolCases) {
    PoolCase c;
    Pool2dParams& p = c.params;
    p.mode = rng.UniformInt(0, 1) == 0 ? PoolMode::kMax : PoolMode::kAverage;
    c.x = {rng.UniformInt(0, 3), rng.Pick(sizes), rng.Pick(sizes), rng.Pick(channels)};
    if (rng.UniformInt(0, 9) == 0) {
      p.global = true;
    } else {
      p.window_h = rng.Pick(windows);
      p.window_w = rng.UniformInt(0, 2) == 0 ? rng.Pick(windows) : p.window_h;
      p.stride_h = rng.UniformInt(1, 3);
      p.stride_w = rng.UniformInt(0, 2) == 0 ? rng.UniformInt(1, 3) : p.stride_h;
      p.pad = {rng.UniformInt(0, std::min<int64_t>(p.window_h - 1, 3)),
               rng.UniformInt(0, std::min<int64_t>(p.window_h - 1, 3)),
               rng.UniformInt(0, std::min<int64_t>(p.window_w - 1, 3)),
               rng.UniformInt(0, std::min<int64_t>(p.window_w - 1, 3))};
      p.ceil_mode = rng.UniformInt(0, 1) == 0;
      p.count_include_pad = p.mode == PoolMode::kAverage && rng.UniformInt(0, 1) == 0;
      if (c.x[1] + p.pad.top + p.pad.bottom < p.window_h ||
          c.x[2] + p.pad.left + p.pad.right < p.window_w) {
        continue;
      }
    }
    c.with_nans = p.mode == PoolMode::kMax && rng.UniformInt(0, 4) == 0;
    c.origin = "sampled " + std::to_string(sampled++);
    cases.push_back(c);
  }
  return cases;
}

// ---- Exact data ----

// Nonzero integers in [-3, 3]: products up to 9, sums far below 2^24 for every grid shape.
void FillConvData(std::span<float> data, Rng& rng) { FillIntegers(data, rng, -3, 3, true); }

uint64_t OddPart(uint64_t v) { return v >> std::countr_zero(v); }

// A multiple of every divisor an average window can have: r * c for r <= window_h, c <= window_w
// (the window clipped to the input, or to the padded input). x and dy are multiples of it, so every
// average and every backward share is an exact integer.
uint64_t AverageScale(int64_t window_h, int64_t window_w) {
  uint64_t scale = 1;
  for (int64_t r = 1; r <= window_h; ++r) {
    for (int64_t c = 1; c <= window_w; ++c) scale = std::lcm(scale, static_cast<uint64_t>(r * c));
  }
  return scale;
}

// The scale for a pooling case: a global window has the one divisor H * W.
uint64_t PoolScale(const PoolCase& c) {
  if (c.params.global) return static_cast<uint64_t>(c.x[1] * c.x[2]);
  return AverageScale(c.params.window_h, c.params.window_w);
}

// Nonzero multiples of `scale` in [-3, 3] * scale.
void FillScaled(std::span<float> data, Rng& rng, uint64_t scale) {
  FillIntegers(data, rng, -3, 3, true);
  for (float& v : data) v *= static_cast<float>(scale);
}

// ---- Zero trust with the structural zeros taken out ----

// Along one axis of a window sweep: how many outputs have a tap inside the input, how many inputs
// some tap reads, how many taps read the input for some output.
struct AxisCoverage {
  int64_t outputs_touching = 0;
  int64_t inputs_read = 0;
  int64_t taps_reading = 0;
};

AxisCoverage Coverage(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad_before,
                      int64_t dilation) {
  std::vector<char> input_read(static_cast<size_t>(in)), tap_reads(static_cast<size_t>(k));
  AxisCoverage a;
  for (int64_t o = 0; o < out; ++o) {
    bool touching = false;
    for (int64_t t = 0; t < k; ++t) {
      const int64_t i = o * stride - pad_before + t * dilation;
      if (i < 0 || i >= in) continue;
      input_read[static_cast<size_t>(i)] = 1;
      tap_reads[static_cast<size_t>(t)] = 1;
      touching = true;
    }
    a.outputs_touching += touching ? 1 : 0;
  }
  a.inputs_read = std::count(input_read.begin(), input_read.end(), 1);
  a.taps_reading = std::count(tap_reads.begin(), tap_reads.end(), 1);
  return a;
}

// The zero fraction zero trust allows: the structural zeros (`reachable` is the fraction of
// elements that can be nonzero at all) plus `slack` of the rest, for the data's chance zeros.
double AllowedZeros(double reachable, double slack) {
  return (1.0 - reachable) + reachable * slack;
}

constexpr int64_t kZeroTrustMinElements = 32;  // fewer elements prove too little either way

// ---- Running a grid ----

// Counts the cases run and refused, and reports failures up to kMaxReportedFailures.
class Tally {
 public:
  explicit Tally(std::string backend) : backend_(std::move(backend)) {}

  void Refused(const std::string& case_string, const std::string& reason) {
    ++refused_;
    if (reasons_.emplace(reason, case_string).second) {
      std::printf("[ REFUSED  ] %s: %s: %s\n", backend_.c_str(), case_string.c_str(),
                  reason.c_str());
    }
  }
  void Ran() { ++ran_; }
  // Records a failed check; true when enough failures were reported to stop.
  bool Check(const ::testing::AssertionResult& result) {
    if (result) return false;
    ADD_FAILURE() << result.message();
    return ++failures_ >= kMaxReportedFailures;
  }
  int ran() const { return ran_; }
  int refused() const { return refused_; }
  std::string Summary() const {
    std::string s = backend_ + " ran " + std::to_string(ran_) + " cases and refused " +
                    std::to_string(refused_) + ", for " + std::to_string(reasons_.size()) +
                    " distinct reasons:";
    for (const auto& [reason, example] : reasons_) s += "\n  " + reason + " (e.g. " + example + ")";
    return s;
  }

 private:
  std::string backend_;
  int ran_ = 0;
  int refused_ = 0;
  int failures_ = 0;
  std::map<std::string, std::string> reasons_;
};

class EquivalenceTest : public ::testing::TestWithParam<std::string> {
 protected:
  const std::string& backend() const { return GetParam(); }
};

// Skips the test when the backend under test is not built into this copy.
#define CONVKIT_SKIP_UNLESS_BUILT(backend)                                                    \
  do {                                                                                        \
    if (auto convkit_why_ = NotBuiltReason(backend)) {                                        \
      GTEST_SKIP() << (backend) << ": " << *convkit_why_                                      \
                   << (available_backends().size() <= 1                                       \
                           ? "; no backend other than reference is built, nothing to compare" \
                           : "");                                                             \
    }                                                                                         \
  } while (0)

// Ends a grid test: skipped when every case was refused, with the reasons; otherwise the refusals
// are printed (and recorded as a test property) and the test stands on the cases it ran.
#define CONVKIT_FINISH_GRID(tally)                                                            \
  do {                                                                                        \
    if ((tally).refused() > 0) ::testing::Test::RecordProperty("refused", (tally).Summary()); \
    if ((tally).ran() == 0) GTEST_SKIP() << (tally).Summary();                                \
    if ((tally).refused() > 0) std::printf("%s\n", (tally).Summary().c_str());                \
  } while (0)

uint64_t CaseSeed(int index) {
  return kGridSeed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(index);
}

// Success when `isa` is empty or the plan's "backend:variant:isa" ends with it: a pinned Highway
// target really ran.
::testing::AssertionResult ImplIsOnIsa(std::string_view case_name, const std::string& impl,
                                       std::string_view isa) {
  if (isa.empty() || impl.ends_with(":" + std::string(isa))) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << case_name << ": plan runs on " << impl << ", not on the pinned target " << isa;
}

// Forward convolution, one-shot and through a plan run twice, against reference. Case i also
// takes post-op variant i (PostOpVariantFor): every activation and residual mode runs over the
// grid, bit-exact for the exact activations and within 4 ulp for the others (the data are
// integers, so the sums agree exactly and only the activation may differ). With fpmath = bf16
// too: the grid's integers (|v| <= 3) are bf16 values, so bf16 products change no bit.
void ConvForwardGrid(const std::string& backend, std::string_view isa,
                     Fpmath fpmath = Fpmath::kStrict) {
  Tally tally(backend);
  int index = 0;
  for (ConvCase c : ConvCases()) {
    c.params.fpmath = fpmath;
    const PostOpVariant post = PostOpVariantFor(index);
    Rng rng(CaseSeed(index++));
    const std::string cs = c.ToString() + " " + post.ToString();
    Tensor x(c.x), w(c.w());
    std::vector<float> b(static_cast<size_t>(c.bias ? c.oc : 0));
    FillConvData(Span(x), rng);
    FillConvData(Span(w), rng);
    FillConvData(Span(b), rng);
    const Dims y_dims = conv2d_output_dims(c.x, c.w(), c.params);
    Tensor expected(y_dims, kReferenceFill);
    conv2d_forward(c.params, x, w, b, expected, "reference");
    if (expected.size() >= kZeroTrustMinElements) {
      const AxisCoverage h = Coverage(c.x[1], y_dims[1], c.params.kernel_h, c.params.stride_h,
                                      c.params.pad.top, c.params.dilation_h);
      const AxisCoverage v = Coverage(c.x[2], y_dims[2], c.params.kernel_w, c.params.stride_w,
                                      c.params.pad.left, c.params.dilation_w);
      // A window wholly in the padding yields the bias: zero without one, and maybe after ReLU.
      const bool relu = c.params.activation == Activation::kRelu;
      const double reachable = c.bias && !relu
                                   ? 1.0
                                   : static_cast<double>(h.outputs_touching * v.outputs_touching) /
                                         static_cast<double>(y_dims[1] * y_dims[2]);
      const double slack = relu ? 0.8 : 0.3;
      if (tally.Check(NotMostlyZero(cs, "reference y", expected, AllowedZeros(reachable, slack))))
        break;
    }
    Conv2dParams params = c.params;
    post.ApplyTo(params);
    Tensor r(y_dims);
    FillConvData(Span(r), rng);
    ConvForwardWithResidual(params, x, w, b, post.residual, r, expected, "reference");
    const Tolerance tol = PostOpTolerance(post, 3.0);  // r: FillConvData's integers in [-3, 3]

    Tensor y(y_dims, kBackendFill);
    if (auto why = RefusalOf(
            [&] { ConvForwardWithResidual(params, x, w, b, post.residual, r, y, backend); })) {
      tally.Refused(cs, *why);
      continue;
    }
    tally.Ran();
    if (tally.Check(CompareTensors(cs, "y (one-shot)", expected, y, tol))) break;

    std::string impl;
    Tensor y_plan(y_dims, kBackendFill), y_plan_again(y_dims, kBackendFill);
    if (auto why = RefusalOf([&] {
          const Conv2d plan(params, c.x, w, b, backend);
          impl = plan.impl_name();
          RunWithResidual(plan, x, post.residual, r, y_plan);
          RunWithResidual(plan, x, post.residual, r, y_plan_again);
        })) {
      tally.Refused(cs + " (plan)", *why);
      continue;
    }
    if (tally.Check(ImplIsOnIsa(cs, impl, isa))) break;
    if (tally.Check(CompareTensors(cs, "y (plan)", expected, y_plan, tol))) break;
    if (tally.Check(CompareTensors(cs, "y (plan, second run)", expected, y_plan_again, tol))) break;
  }
  CONVKIT_FINISH_GRID(tally);
}

// Reference gradients of one backward case.
struct ConvGradsRef {
  const Tensor& dx;
  const Tensor& dw;
  const std::vector<float>& db;
};

// The backward plan of a case gives the reference's bits: created with other weights, then
// set_weights(w) (as a training step would), run twice. `which` as in ConvBackwardGrid; without dw
// the plan gets no x.
::testing::AssertionResult ConvBackwardPlanMatches(const ConvCase& c, const std::string& cs,
                                                   int which, const Tensor& x, const Tensor& w,
                                                   const Tensor& dy, const ConvGradsRef& ref,
                                                   const std::string& backend, std::string_view isa,
                                                   Rng& rng, Tally& tally) {
  Tensor w_other(c.w());
  FillConvData(Span(w_other), rng);
  const Conv2dGradsWanted wanted{which != 2, which != 1, which != 1};
  Tensor dx[2] = {Tensor(c.x, kBackendFill), Tensor(c.x, kBackendFill)};
  Tensor dw[2] = {Tensor(c.w(), kBackendFill), Tensor(c.w(), kBackendFill)};
  std::vector<float> db[2] = {std::vector<float>(static_cast<size_t>(c.oc), kBackendFill),
                              std::vector<float>(static_cast<size_t>(c.oc), kBackendFill)};
  const auto grads = [&](int i) {
    Conv2dGrads g;
    if (wanted.dx) g.dx = dx[i].view();
    if (wanted.dw) g.dw = dw[i].view();
    if (wanted.db) g.db = Span(db[i]);
    return g;
  };
  const ConstTensorView x_given = wanted.dw ? x.view() : ConstTensorView();
  std::string impl;
  if (auto why = RefusalOf([&] {
        Conv2dBackward plan(c.params, c.x, w_other, wanted, backend);
        impl = plan.impl_name();
        plan.run(x_given, dy, grads(0));
        plan.set_weights(w);
        plan.run(x_given, dy, grads(0));
        plan.run(x_given, dy, grads(1));
      })) {
    tally.Refused(cs + " (plan)", *why);
    return ::testing::AssertionSuccess();
  }
  for (int i = 0; i < 2; ++i) {
    const std::string run = i == 0 ? " (plan after set_weights)" : " (plan, second run)";
    ::testing::AssertionResult r = ImplIsOnIsa(cs, impl, isa);
    if (r && wanted.dx) r = CompareTensors(cs, "dx" + run, ref.dx, dx[i]);
    if (r && wanted.dw) r = CompareTensors(cs, "dw" + run, ref.dw, dw[i]);
    if (r && wanted.db) r = CompareVectors(cs, "db" + run, ref.db, db[i]);
    if (!r) return r;
  }
  return ::testing::AssertionSuccess();
}

// Backward convolution against reference, one-shot and through a plan. The gradients asked for
// rotate per case: all three, dx only, dw and db only.
void ConvBackwardGrid(const std::string& backend, std::string_view isa) {
  Tally tally(backend);
  int index = 0;
  for (ConvCase c : ConvCases()) {
    const int which = index % 3;
    Rng rng(CaseSeed(index++) ^ 0xb0b0);
    c.params.activation = Activation::kNone;  // backward takes dy after the activation's gradient
    const std::string cs = c.ToString() + (which == 1   ? " dx only"
                                           : which == 2 ? " dw, db only"
                                                        : "");
    Tensor x(c.x), w(c.w());
    FillConvData(Span(x), rng);
    FillConvData(Span(w), rng);
    const Dims y_dims = conv2d_output_dims(c.x, c.w(), c.params);
    Tensor dy(y_dims);
    FillConvData(Span(dy), rng);

    Tensor dx_ref(c.x, kReferenceFill), dw_ref(c.w(), kReferenceFill);
    std::vector<float> db_ref(static_cast<size_t>(c.oc), kReferenceFill);
    conv2d_backward(c.params, x, w, dy, {dx_ref.view(), dw_ref.view(), Span(db_ref)}, "reference");
    const AxisCoverage h = Coverage(c.x[1], y_dims[1], c.params.kernel_h, c.params.stride_h,
                                    c.params.pad.top, c.params.dilation_h);
    const AxisCoverage v = Coverage(c.x[2], y_dims[2], c.params.kernel_w, c.params.stride_w,
                                    c.params.pad.left, c.params.dilation_w);
    if (dx_ref.size() >= kZeroTrustMinElements) {
      const double reachable =
          static_cast<double>(h.inputs_read * v.inputs_read) / static_cast<double>(c.x[1] * c.x[2]);
      if (tally.Check(NotMostlyZero(cs, "reference dx", dx_ref, AllowedZeros(reachable, 0.3))))
        break;
    }
    if (c.x[0] > 0 && dw_ref.size() >= kZeroTrustMinElements) {
      const double reachable = static_cast<double>(h.taps_reading * v.taps_reading) /
                               static_cast<double>(c.params.kernel_h * c.params.kernel_w);
      if (tally.Check(NotMostlyZero(cs, "reference dw", dw_ref, AllowedZeros(reachable, 0.3))))
        break;
    }

    Tensor dx(c.x, kBackendFill), dw(c.w(), kBackendFill);
    std::vector<float> db(static_cast<size_t>(c.oc), kBackendFill);
    Conv2dGrads grads;
    if (which != 2) grads.dx = dx.view();
    if (which != 1) {
      grads.dw = dw.view();
      grads.db = Span(db);
    }
    if (auto why = RefusalOf([&] { conv2d_backward(c.params, x, w, dy, grads, backend); })) {
      tally.Refused(cs, *why);
      continue;
    }
    tally.Ran();
    if (which != 2 && tally.Check(CompareTensors(cs, "dx", dx_ref, dx))) break;
    if (which != 1 && tally.Check(CompareTensors(cs, "dw", dw_ref, dw))) break;
    if (which != 1 && tally.Check(CompareVectors(cs, "db", db_ref, db))) break;
    // A gradient not asked for is not written.
    if (which == 2 &&
        tally.Check(CompareTensors(cs, "dx (not asked for)", Tensor(c.x, kBackendFill), dx)))
      break;
    if (which == 1 &&
        tally.Check(CompareTensors(cs, "dw (not asked for)", Tensor(c.w(), kBackendFill), dw)))
      break;
    if (tally.Check(ConvBackwardPlanMatches(c, cs, which, x, w, dy, {dx_ref, dw_ref, db_ref},
                                            backend, isa, rng, tally)))
      break;
  }
  CONVKIT_FINISH_GRID(tally);
}

struct PoolData {
  Tensor x;
  Tensor dy;
  int64_t window_h = 0, window_w = 0;  // resolved (global: H x W)
};

PoolData MakePoolData(const PoolCase& c, Rng& rng) {
  const Dims y_dims = pool2d_output_dims(c.x, c.params);
  PoolData d{Tensor(c.x), Tensor(y_dims), c.params.global ? c.x[1] : c.params.window_h,
             c.params.global ? c.x[2] : c.params.window_w};
  if (c.params.mode == PoolMode::kMax) {
    FillIntegers(Span(d.x), rng, -4, 4, true);  // many ties: tests the first-maximum rule
    if (c.with_nans) {
      for (float& v : Span(d.x)) {
        if (rng.UniformInt(0, 29) == 0) v = kNaN;
      }
    }
    FillIntegers(Span(d.dy), rng, -3, 3, true);
  } else {
    const uint64_t scale = PoolScale(c);
    FillScaled(Span(d.x), rng, scale);
    FillScaled(Span(d.dy), rng, scale);
  }
  return d;
}

void PoolForwardGrid(const std::string& backend, std::string_view isa) {
  Tally tally(backend);
  int index = 0;
  for (const PoolCase& c : PoolCases()) {
    Rng rng(CaseSeed(index++) ^ 0x9001);
    const std::string cs = c.ToString();
    const PoolData d = MakePoolData(c, rng);
    const Dims y_dims = pool2d_output_dims(c.x, c.params);
    Tensor expected(y_dims, kReferenceFill);
    pool2d_forward(c.params, d.x, expected, "reference");
    if (expected.size() >= kZeroTrustMinElements &&
        tally.Check(NotMostlyZero(cs, "reference y", expected, 0.5))) {
      break;
    }
    Tensor y(y_dims, kBackendFill);
    if (auto why = RefusalOf([&] { pool2d_forward(c.params, d.x, y, backend); })) {
      tally.Refused(cs, *why);
      continue;
    }
    tally.Ran();
    if (tally.Check(CompareTensors(cs, "y (one-shot)", expected, y))) break;
    std::string impl;
    Tensor y_plan(y_dims, kBackendFill), y_plan_again(y_dims, kBackendFill);
    if (auto why = RefusalOf([&] {
          const Pool2d plan(c.params, c.x, backend);
          impl = plan.impl_name();
          plan.run(d.x, y_plan);
          plan.run(d.x, y_plan_again);
        })) {
      tally.Refused(cs + " (plan)", *why);
      continue;
    }
    if (tally.Check(ImplIsOnIsa(cs, impl, isa))) break;
    if (tally.Check(CompareTensors(cs, "y (plan)", expected, y_plan))) break;
    if (tally.Check(CompareTensors(cs, "y (plan, second run)", expected, y_plan_again))) break;
  }
  CONVKIT_FINISH_GRID(tally);
}

void PoolBackwardGrid(const std::string& backend, std::string_view isa) {
  Tally tally(backend);
  int index = 0;
  for (const PoolCase& c : PoolCases()) {
    Rng rng(CaseSeed(index++) ^ 0x9002);
    const std::string cs = c.ToString();
    const PoolData d = MakePoolData(c, rng);
    const Dims y_dims = d.dy.dims();
    Tensor expected(c.x, kReferenceFill);
    pool2d_backward(c.params, d.x, d.dy, expected, "reference");
    if (expected.size() >= kZeroTrustMinElements) {
      const int64_t stride_h = c.params.global ? 1 : c.params.stride_h;
      const int64_t stride_w = c.params.global ? 1 : c.params.stride_w;
      const AxisCoverage h = Coverage(c.x[1], y_dims[1], d.window_h, stride_h, c.params.pad.top, 1);
      const AxisCoverage v =
          Coverage(c.x[2], y_dims[2], d.window_w, stride_w, c.params.pad.left, 1);
      double reachable =
          static_cast<double>(h.inputs_read * v.inputs_read) / static_cast<double>(c.x[1] * c.x[2]);
      if (c.params.mode == PoolMode::kMax) {
        // Each window's dy goes to one element, and one element is in at most
        // ceil(window / stride) windows per axis: that many distinct maxima at least.
        const double per_input = static_cast<double>(((d.window_h + stride_h - 1) / stride_h) *
                                                     ((d.window_w + stride_w - 1) / stride_w));
        reachable = std::min(1.0, static_cast<double>(y_dims[1] * y_dims[2]) / per_input /
                                      static_cast<double>(c.x[1] * c.x[2]));
      }
      if (tally.Check(NotMostlyZero(cs, "reference dx", expected, AllowedZeros(reachable, 0.5)))) {
        break;
      }
    }
    Tensor dx(c.x, kBackendFill);
    if (auto why = RefusalOf([&] { pool2d_backward(c.params, d.x, d.dy, dx, backend); })) {
      tally.Refused(cs, *why);
      continue;
    }
    tally.Ran();
    if (tally.Check(CompareTensors(cs, "dx", expected, dx))) break;
    std::string impl;
    Tensor dx_plan(c.x, kBackendFill), dx_plan_again(c.x, kBackendFill);
    if (auto why = RefusalOf([&] {
          const Pool2dBackward plan(c.params, c.x, backend);
          impl = plan.impl_name();
          plan.run(d.x, d.dy, dx_plan);
          plan.run(d.x, d.dy, dx_plan_again);
        })) {
      tally.Refused(cs + " (plan)", *why);
      continue;
    }
    if (tally.Check(ImplIsOnIsa(cs, impl, isa))) break;
    if (tally.Check(CompareTensors(cs, "dx (plan)", expected, dx_plan))) break;
    if (tally.Check(CompareTensors(cs, "dx (plan, second run)", expected, dx_plan_again))) break;
  }
  CONVKIT_FINISH_GRID(tally);
}

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

// The grid itself: every case is valid, exact data stay exact, and it covers what it claims.
TEST(EquivalenceGrid, CoversTheParameterSpace) {
  const std::vector<ConvCase> conv = ConvCases();
  const std::vector<PoolCase> pool = PoolCases();
  EXPECT_GE(conv.size(), bench::ConvShapes().size() + kSampledConvCases);
  EXPECT_GE(pool.size(), 2 * bench::PoolShapes().size() + kSampledPoolCases);
  std::map<std::string, int> seen;
  for (const ConvCase& c : conv) {
    const Conv2dParams& p = c.params;
    seen["stride " + std::to_string(p.stride_h)]++;
    seen["dilation " + std::to_string(p.dilation_h)]++;
    seen["kernel " + std::to_string(p.kernel_h)]++;
    seen["channels " + std::to_string(c.x[3])]++;
    seen["batch " + std::to_string(c.x[0])]++;
    seen[p.groups == 1 ? "groups 1" : p.groups == c.x[3] ? "depthwise" : "groups 2"]++;
    if (p.pad.top != p.pad.bottom || p.pad.left != p.pad.right) seen["asymmetric pads"]++;
    if (c.bias) seen["bias"]++;
    if (p.activation == Activation::kRelu) seen["relu"]++;
    // Exactness: |partial sums| <= 9 * taps < 2^24.
    EXPECT_LT(9.0 * p.kernel_h * p.kernel_w * (c.x[3] / p.groups) + 3, 16777216.0) << c.ToString();
  }
  for (const PoolCase& c : pool) {
    const Pool2dParams& p = c.params;
    seen[p.mode == PoolMode::kMax ? "max" : "average"]++;
    if (p.ceil_mode) seen["ceil_mode"]++;
    if (p.count_include_pad) seen["count_include_pad"]++;
    if (p.global) seen["global"]++;
    if (p.pad != Pads{}) seen["pool padding"]++;
    if (c.with_nans) seen["NaNs"]++;
    if (p.mode == PoolMode::kAverage) {
      const int64_t wh = p.global ? c.x[1] : p.window_h, ww = p.global ? c.x[2] : p.window_w;
      // The largest sum, 3 * scale * window area, must be exact in fp32.
      EXPECT_LT(static_cast<double>(OddPart(PoolScale(c))) * 3 * wh * ww, 16777216.0)
          << c.ToString();
    }
  }
  for (const char* key : {"stride 1",    "stride 2",        "stride 3",    "dilation 1",
                          "dilation 2",  "dilation 3",      "kernel 1",    "kernel 3",
                          "kernel 5",    "kernel 7",        "channels 1",  "channels 3",
                          "channels 15", "channels 16",     "channels 17", "channels 31",
                          "channels 33", "channels 64",     "batch 0",     "batch 1",
                          "batch 2",     "batch 3",         "groups 1",    "groups 2",
                          "depthwise",   "asymmetric pads", "bias",        "relu",
                          "max",         "average",         "ceil_mode",   "count_include_pad",
                          "global",      "pool padding",    "NaNs"}) {
    EXPECT_GE(seen[key], 2) << "the grid has too few cases with " << key;
  }
}

// ---- Every compiled Highway target, pinned one at a time ----
//
// The Highway backend dispatches once per one-shot call or plan creation to the best target the
// CPU supports. hwy::SetSupportedTargetsForTest narrows "supported" to one target, so the grid runs
// on each compiled target in turn (EMU128, AVX2, AVX3 here); a target this CPU lacks is a skip
// naming it. Plans report the target they run on, which the grid checks.

#if CONVKIT_TEST_HIGHWAY_TARGETS
// HWY_TARGETS as the backend compiles it: this file gets the same HWY_DISABLED_TARGETS.
std::vector<int64_t> CompiledHighwayTargets() {
  std::vector<int64_t> targets;
  for (int64_t bits = HWY_TARGETS; bits != 0; bits &= bits - 1) targets.push_back(bits & -bits);
  return targets;
}
std::string HighwayTargetName(int64_t target) { return hwy::TargetName(target); }
#else
std::vector<int64_t> CompiledHighwayTargets() { return {0}; }  // one instance, which skips
std::string HighwayTargetName(int64_t) { return "NoHighway"; }
#endif

class HighwayTargetTest : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override {
    if (auto why = NotBuiltReason("highway")) GTEST_SKIP() << "highway: " << *why;
#if CONVKIT_TEST_HIGHWAY_TARGETS
    if ((hwy::SupportedTargets() & GetParam()) == 0) {
      GTEST_SKIP() << "Highway target " << isa() << " is compiled but this CPU does not support it";
    }
    hwy::SetSupportedTargetsForTest(GetParam());
    pinned_ = true;
#else
    GTEST_SKIP() << "this test binary was built without libhwy: cannot pin Highway targets";
#endif
  }
  void TearDown() override {
#if CONVKIT_TEST_HIGHWAY_TARGETS
    if (pinned_) hwy::SetSupportedTargetsForTest(0);
#endif
  }
  std::string isa() const { return HighwayTargetName(GetParam()); }

 private:
  bool pinned_ = false;
};

TEST_P(HighwayTargetTest, PlansRunOnThePinnedTarget) {
  Tensor w({3, 3, 4, 8}, 1.0f);
  const Conv2d conv(MakeConv(3, 1, Pads::uniform(1)), {1, 5, 5, 4}, w, {}, "highway");
  EXPECT_TRUE(ImplIsOnIsa("conv 3x3", conv.impl_name(), isa()));
  Tensor dw_w({3, 3, 1, 8}, 1.0f);
  const Conv2d depthwise(MakeConv(3, 1, Pads::uniform(1), 1, 8), {1, 5, 5, 8}, dw_w, {}, "highway");
  EXPECT_TRUE(ImplIsOnIsa("depthwise 3x3", depthwise.impl_name(), isa()));
  const Pool2d pool(MakePool(PoolMode::kMax, 3, 2, {}), {1, 5, 5, 8}, "highway");
  EXPECT_TRUE(ImplIsOnIsa("max pool 3x3", pool.impl_name(), isa()));
}
TEST_P(HighwayTargetTest, ConvForward) { ConvForwardGrid("highway", isa()); }
TEST_P(HighwayTargetTest, ConvForwardBf16) { ConvForwardGrid("highway", isa(), Fpmath::kBf16); }
TEST_P(HighwayTargetTest, ConvBackward) { ConvBackwardGrid("highway", isa()); }
TEST_P(HighwayTargetTest, PoolForward) { PoolForwardGrid("highway", isa()); }
TEST_P(HighwayTargetTest, PoolBackward) { PoolBackwardGrid("highway", isa()); }

INSTANTIATE_TEST_SUITE_P(Pinned, HighwayTargetTest, ::testing::ValuesIn(CompiledHighwayTargets()),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return HighwayTargetName(info.param);
                         });

// ---- Randomized cases ----
//
// A seeded generator of valid parameter combinations over small shapes (so that thousands run in
// seconds): CONVKIT_RANDOM_CASES cases of each kind (default 1000; CI runs the default, a soak run
// sets 10000 or more), from CONVKIT_RANDOM_SEED (printed; default fixed, so CI is deterministic).
// Case i depends only on (seed, i): CONVKIT_RANDOM_CASE=i replays it alone. A failing case prints
// as one line: seed, index, operation and problem.

constexpr uint64_t kDefaultRandomSeed = 0xc0417c0deull;
constexpr uint64_t kDefaultRandomCases = 1000;
constexpr double kMaxRandomConvMacs = 3e5;

struct RandomRun {
  uint64_t seed = kDefaultRandomSeed;
  int64_t cases = kDefaultRandomCases;
  int64_t only = -1;  // >= 0: replay this case alone

  std::vector<int64_t> Indices(int64_t count) const {
    if (only >= 0) return {only};
    std::vector<int64_t> indices(static_cast<size_t>(count));
    std::iota(indices.begin(), indices.end(), 0);
    return indices;
  }
  std::string Prefix(int64_t index) const {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "CONVKIT_RANDOM_SEED=0x%llx CONVKIT_RANDOM_CASE=%lld",
                  static_cast<unsigned long long>(seed), static_cast<long long>(index));
    return buf;
  }
};

RandomRun GetRandomRun() {
  RandomRun run;
  run.seed = EnvUnsigned("CONVKIT_RANDOM_SEED", kDefaultRandomSeed);
  run.cases = static_cast<int64_t>(EnvUnsigned("CONVKIT_RANDOM_CASES", kDefaultRandomCases));
  if (const char* only = std::getenv("CONVKIT_RANDOM_CASE"); only != nullptr && *only != '\0') {
    run.only = static_cast<int64_t>(EnvUnsigned("CONVKIT_RANDOM_CASE", 0));
  }
  std::printf("[   SEED   ] CONVKIT_RANDOM_SEED=0x%llx CONVKIT_RANDOM_CASES=%lld%s\n",
              static_cast<unsigned long long>(run.seed), static_cast<long long>(run.cases),
              run.only >= 0 ? (" CONVKIT_RANDOM_CASE=" + std::to_string(run.only)).c_str() : "");
  ::testing::Test::RecordProperty("random_seed", std::to_string(run.seed));
  return run;
}

// Random case `index`: a valid convolution of at most kMaxRandomConvMacs multiply-accumulates.
ConvCase RandomConvCase(uint64_t seed, int64_t index) {
  const std::vector<int64_t> channels = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33};
  Rng rng(CaseSeedOf(seed, static_cast<uint64_t>(index)));
  for (;;) {
    ConvCase c;
    Conv2dParams& p = c.params;
    int64_t ic = rng.Pick(channels);
    c.oc = rng.Pick(channels);
    switch (rng.UniformInt(0, 3)) {
      case 0:
        p.groups = 2;
        ic = Even(ic);
        c.oc = Even(c.oc);
        break;
      case 1:
        p.groups = ic;
        c.oc = ic * rng.UniformInt(1, 2);
        break;
      default:
        break;
    }
    p.kernel_h = rng.UniformInt(1, 5);
    p.kernel_w = rng.UniformInt(0, 1) == 0 ? p.kernel_h : rng.UniformInt(1, 5);
    p.stride_h = rng.UniformInt(1, 3);
    p.stride_w = rng.UniformInt(0, 1) == 0 ? p.stride_h : rng.UniformInt(1, 3);
    p.dilation_h = rng.UniformInt(0, 1) == 0 ? 1 : rng.UniformInt(1, 3);
    p.dilation_w = rng.UniformInt(0, 1) == 0 ? p.dilation_h : rng.UniformInt(1, 3);
    p.pad = {rng.UniformInt(0, 3), rng.UniformInt(0, 3), rng.UniformInt(0, 3),
             rng.UniformInt(0, 3)};
    // relu, or leaky_relu with a slope exact on integers (oneDNN refuses relu).
    const int64_t activation = rng.UniformInt(0, 2);
    p.activation = activation == 0   ? Activation::kNone
                   : activation == 1 ? Activation::kRelu
                                     : Activation::kLeakyRelu;
    p.activation_alpha = 0.125f;
    c.bias = rng.UniformInt(0, 1) == 0;
    c.x = {rng.UniformInt(0, 3), rng.UniformInt(1, 12), rng.UniformInt(1, 12), ic};
    if (c.x[1] + p.pad.top + p.pad.bottom < KernelSpan(p.kernel_h, p.dilation_h) ||
        c.x[2] + p.pad.left + p.pad.right < KernelSpan(p.kernel_w, p.dilation_w) ||
        ConvMacs(c) > kMaxRandomConvMacs) {
      continue;  // invalid or too large: draw again (deterministically, from the same rng)
    }
    c.origin = "random";
    return c;
  }
}

PoolCase RandomPoolCase(uint64_t seed, int64_t index) {
  const std::vector<int64_t> channels = {1, 2, 3, 5, 8, 15, 16, 17, 31, 32, 33, 64};
  Rng rng(CaseSeedOf(seed, static_cast<uint64_t>(index)) ^ 0x9001);
  for (;;) {
    PoolCase c;
    Pool2dParams& p = c.params;
    p.mode = rng.UniformInt(0, 1) == 0 ? PoolMode::kMax : PoolMode::kAverage;
    c.x = {rng.UniformInt(0, 3), rng.UniformInt(1, 13), rng.UniformInt(1, 13), rng.Pick(channels)};
    if (rng.UniformInt(0, 11) == 0) {
      p.global = true;
    } else {
      p.window_h = rng.UniformInt(1, 5);
      p.window_w = rng.UniformInt(0, 1) == 0 ? p.window_h : rng.UniformInt(1, 5);
      p.stride_h = rng.UniformInt(1, 3);
      p.stride_w = rng.UniformInt(0, 1) == 0 ? p.stride_h : rng.UniformInt(1, 3);
      p.pad = {rng.UniformInt(0, p.window_h - 1), rng.UniformInt(0, p.window_h - 1),
               rng.UniformInt(0, p.window_w - 1), rng.UniformInt(0, p.window_w - 1)};
      p.ceil_mode = rng.UniformInt(0, 1) == 0;
      p.count_include_pad = p.mode == PoolMode::kAverage && rng.UniformInt(0, 1) == 0;
      if (c.x[1] + p.pad.top + p.pad.bottom < p.window_h ||
          c.x[2] + p.pad.left + p.pad.right < p.window_w) {
        continue;
      }
    }
    c.with_nans = p.mode == PoolMode::kMax && rng.UniformInt(0, 5) == 0;
    c.origin = "random";
    return c;
  }
}

class RandomTest : public ::testing::TestWithParam<std::string> {
 protected:
  const std::string& backend() const { return GetParam(); }
};

// Counts the zeros of the reference results over a whole run: zero trust in aggregate, since a
// small random case may legitimately be mostly zero (windows in padding, ReLU).
struct ZeroCount {
  int64_t zeros = 0, total = 0;
  void Add(ConstTensorView t) {
    const int64_t n = num_elements(t.dims);
    zeros += std::count(t.data, t.data + n, 0.0f);
    total += n;
  }
  ::testing::AssertionResult NotMostlyZero(std::string_view what, double max_fraction) const {
    if (total > 0 && zeros <= max_fraction * static_cast<double>(total)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << what << ": " << zeros << " of " << total
                                         << " reference elements are zero over the run";
  }
};

// Exact: conv2d forward and backward (dx, dw, db) of every random case, one-shot; every fourth
// case also through a plan.
void RandomConvExact(const std::string& backend, int64_t count_divisor) {
  const RandomRun run = GetRandomRun();
  Tally tally(backend);
  ZeroCount y_zeros, dx_zeros;
  for (const int64_t index : run.Indices(run.cases / count_divisor)) {
    ConvCase c = RandomConvCase(run.seed, index);
    Rng rng(CaseSeedOf(run.seed, static_cast<uint64_t>(index)) ^ 0xda7a);
    Tensor x(c.x), w(c.w());
    std::vector<float> b(static_cast<size_t>(c.bias ? c.oc : 0));
    FillConvData(Span(x), rng);
    FillConvData(Span(w), rng);
    FillConvData(Span(b), rng);
    const Dims y_dims = conv2d_output_dims(c.x, c.w(), c.params);
    const std::string cs = run.Prefix(index) + " conv2d " + c.ToString();

    Tensor expected(y_dims, kReferenceFill), y(y_dims, kBackendFill);
    conv2d_forward(c.params, x, w, b, expected, "reference");
    y_zeros.Add(expected);
    if (auto why = RefusalOf([&] { conv2d_forward(c.params, x, w, b, y, backend); })) {
      tally.Refused(cs, *why);
      continue;
    }
    tally.Ran();
    if (tally.Check(CompareTensors(cs, "y", expected, y))) break;
    if (index % 4 == 0) {
      Tensor y_plan(y_dims, kBackendFill);
      if (!RefusalOf([&] { Conv2d(c.params, c.x, w, b, backend).run(x, y_plan); }) &&
          tally.Check(CompareTensors(cs, "y (plan)", expected, y_plan))) {
        break;
      }
    }

    c.params.activation = Activation::kNone;
    Tensor dy(y_dims);
    FillConvData(Span(dy), rng);
    Tensor dx_ref(c.x, kReferenceFill), dw_ref(c.w(), kReferenceFill);
    Tensor dx(c.x, kBackendFill), dw(c.w(), kBackendFill);
    std::vector<float> db_ref(static_cast<size_t>(c.oc), kReferenceFill);
    std::vector<float> db(static_cast<size_t>(c.oc), kBackendFill);
    conv2d_backward(c.params, x, w, dy, {dx_ref.view(), dw_ref.view(), Span(db_ref)}, "reference");
    dx_zeros.Add(dx_ref);
    if (auto why = RefusalOf([&] {
          conv2d_backward(c.params, x, w, dy, {dx.view(), dw.view(), Span(db)}, backend);
        })) {
      tally.Refused(cs + " backward", *why);
      continue;
    }
    if (tally.Check(CompareTensors(cs + " backward", "dx", dx_ref, dx))) break;
    if (tally.Check(CompareTensors(cs + " backward", "dw", dw_ref, dw))) break;
    if (tally.Check(CompareVectors(cs + " backward", "db", db_ref, db))) break;
  }
  if (run.only < 0) {
    EXPECT_TRUE(y_zeros.NotMostlyZero("conv2d y", 0.5));
    EXPECT_TRUE(dx_zeros.NotMostlyZero("conv2d dx", 0.5));
  }
  CONVKIT_FINISH_GRID(tally);
}

// Exact: pool2d forward (one-shot; every fourth case also a plan) and backward.
void RandomPoolExact(const std::string& backend, int64_t count_divisor) {
  const RandomRun run = GetRandomRun();
  Tally tally(backend);
  ZeroCount y_zeros;
  for (const int64_t index : run.Indices(run.cases / count_divisor)) {
    const PoolCase c = RandomPoolCase(run.seed, index);
    Rng rng(CaseSeedOf(run.seed, static_cast<uint64_t>(index)) ^ 0x9002);
    const PoolData d = MakePoolData(c, rng);
    const Dims y_dims = d.dy.dims();
    const std::string cs = run.Prefix(index) + " pool2d " + c.ToString();
    Tensor expected(y_dims, kReferenceFill), y(y_dims, kBackendFill);
    pool2d_forward(c.params, d.x, expected, "reference");
    y_zeros.Add(expected);
    if (auto why = RefusalOf([&] { pool2d_forward(c.params, d.x, y, backend); })) {
      tally.Refused(cs, *why);
      continue;
    }
    tally.Ran();
    if (tally.Check(CompareTensors(cs, "y", expected, y))) break;
    if (index % 4 == 0) {
      Tensor y_plan(y_dims, kBackendFill);
      if (!RefusalOf([&] { Pool2d(c.params, c.x, backend).run(d.x, y_plan); }) &&
          tally.Check(CompareTensors(cs, "y (plan)", expected, y_plan))) {
        break;
      }
    }
    Tensor dx_ref(c.x, kReferenceFill), dx(c.x, kBackendFill);
    pool2d_backward(c.params, d.x, d.dy, dx_ref, "reference");
    if (auto why = RefusalOf([&] { pool2d_backward(c.params, d.x, d.dy, dx, backend); })) {
      tally.Refused(cs + " backward", *why);
      continue;
    }
    if (tally.Check(CompareTensors(cs + " backward", "dx", dx_ref, dx))) break;
  }
  if (run.only < 0) EXPECT_TRUE(y_zeros.NotMostlyZero("pool2d y", 0.3));
  CONVKIT_FINISH_GRID(tally);
}

// Tolerance mode, on standard normal data. Any order of summing L terms t_i in fp32 (with or
// without FMA) errs by at most gamma_L * sum |t_i|, gamma_L = L u / (1 - L u), u = 2^-24 (Higham,
// Accuracy and Stability, §3.1). Two such results differ by at most twice that, so we allow
//   |backend - reference| <= 2 (L + 2) u * sum |t_i|        element-wise,
// with L the reduction length (conv y: KH KW C_in/groups + 1 for the bias; dx: KH KW C_out/groups;
// dw and db: N OH OW; average pooling: the window area + 1 for the division; max pooling backward:
// the window area) and sum |t_i| the
// same operation run by reference on |x|, |w|, |b|, |dy|. ReLU is 1-Lipschitz and keeps the bound.
constexpr double kUnitRoundoff = 0x1.0p-24;

double ReductionFactor(int64_t length) {
  return 2.0 * static_cast<double>(length + 2) * kUnitRoundoff;
}

Tensor Abs(const Tensor& t) {
  Tensor a = t;
  for (float& v : Span(a)) v = std::fabs(v);
  return a;
}

void RandomConvNormal(const std::string& backend, int64_t count_divisor) {
  const RandomRun run = GetRandomRun();
  Tally tally(backend);
  for (const int64_t index : run.Indices(run.cases / count_divisor)) {
    ConvCase c = RandomConvCase(run.seed, index);
    Rng rng(CaseSeedOf(run.seed, static_cast<uint64_t>(index)) ^ 0x0e11);
    Tensor x(c.x), w(c.w());
    std::vector<float> b(static_cast<size_t>(c.bias ? c.oc : 0));
    FillNormal(Span(x), rng);
    FillNormal(Span(w), rng);
    FillNormal(Span(b), rng);
    const Dims y_dims = conv2d_output_dims(c.x, c.w(), c.params);
    const std::string cs = run.Prefix(index) + " conv2d normals " + c.ToString();
    const Tensor x_abs = Abs(x), w_abs = Abs(w);
    std::vector<float> b_abs = b;
    for (float& v : b_abs) v = std::fabs(v);
    Conv2dParams linear = c.params;
    linear.activation = Activation::kNone;

    Tensor expected(y_dims), y(y_dims, kBackendFill), y_bound(y_dims);
    conv2d_forward(c.params, x, w, b, expected, "reference");
    conv2d_forward(linear, x_abs, w_abs, b_abs, y_bound, "reference");
    if (auto why = RefusalOf([&] { conv2d_forward(c.params, x, w, b, y, backend); })) {
      tally.Refused(cs, *why);
      continue;
    }
    tally.Ran();
    const int64_t taps = c.params.kernel_h * c.params.kernel_w;
    if (tally.Check(CompareWithinBound(cs, "y", expected, y, y_bound,
                                       ReductionFactor(taps * (c.x[3] / c.params.groups) + 1)))) {
      break;
    }

    Tensor dy(y_dims);
    FillNormal(Span(dy), rng);
    const Tensor dy_abs = Abs(dy);
    Tensor dx_ref(c.x), dw_ref(c.w()), dx(c.x, kBackendFill), dw(c.w(), kBackendFill);
    Tensor dx_bound(c.x), dw_bound(c.w());
    std::vector<float> db_ref(static_cast<size_t>(c.oc)), db(db_ref.size(), kBackendFill),
        db_bound(db_ref.size());
    conv2d_backward(linear, x, w, dy, {dx_ref.view(), dw_ref.view(), Span(db_ref)}, "reference");
    conv2d_backward(linear, x_abs, w_abs, dy_abs,
                    {dx_bound.view(), dw_bound.view(), Span(db_bound)}, "reference");
    if (auto why = RefusalOf([&] {
          conv2d_backward(linear, x, w, dy, {dx.view(), dw.view(), Span(db)}, backend);
        })) {
      tally.Refused(cs + " backward", *why);
      continue;
    }
    const int64_t pixels = y_dims[0] * y_dims[1] * y_dims[2];
    const Dims db_dims{1, 1, 1, c.oc};
    if (tally.Check(CompareWithinBound(cs + " backward", "dx", dx_ref, dx, dx_bound,
                                       ReductionFactor(taps * (c.oc / c.params.groups))))) {
      break;
    }
    if (tally.Check(CompareWithinBound(cs + " backward", "dw", dw_ref, dw, dw_bound,
                                       ReductionFactor(pixels)))) {
      break;
    }
    if (tally.Check(CompareWithinBound(
            cs + " backward", "db", ConstTensorView(db_ref.data(), db_dims),
            ConstTensorView(db.data(), db_dims), ConstTensorView(db_bound.data(), db_dims),
            ReductionFactor(pixels)))) {
      break;
    }
  }
  CONVKIT_FINISH_GRID(tally);
}

// Average pooling on normals within the bound above; max pooling forward is exact (it selects).
void RandomPoolNormal(const std::string& backend, int64_t count_divisor) {
  const RandomRun run = GetRandomRun();
  Tally tally(backend);
  for (const int64_t index : run.Indices(run.cases / count_divisor)) {
    const PoolCase c = RandomPoolCase(run.seed, index);
    Rng rng(CaseSeedOf(run.seed, static_cast<uint64_t>(index)) ^ 0x0e12);
    const Dims y_dims = pool2d_output_dims(c.x, c.params);
    Tensor x(c.x), dy(y_dims);
    FillNormal(Span(x), rng);
    FillNormal(Span(dy), rng);
    const std::string cs = run.Prefix(index) + " pool2d normals " + c.ToString();
    const bool max = c.params.mode == PoolMode::kMax;
    const int64_t area = c.params.global ? c.x[1] * c.x[2] : c.params.window_h * c.params.window_w;

    Tensor expected(y_dims), y(y_dims, kBackendFill), y_bound(y_dims);
    pool2d_forward(c.params, x, expected, "reference");
    if (auto why = RefusalOf([&] { pool2d_forward(c.params, x, y, backend); })) {
      tally.Refused(cs, *why);
      continue;
    }
    tally.Ran();
    Tensor dx_ref(c.x), dx(c.x, kBackendFill), dx_bound(c.x);
    pool2d_backward(c.params, x, dy, dx_ref, "reference");
    if (auto why = RefusalOf([&] { pool2d_backward(c.params, x, dy, dx, backend); })) {
      tally.Refused(cs + " backward", *why);
      continue;
    }
    // Max backward routes each dy to one element, but an element that wins several overlapping
    // windows sums their dy: a reduction of up to `area` terms, bounded like the others.
    pool2d_backward(c.params, x, Abs(dy), dx_bound, "reference");
    if (max) {
      if (tally.Check(CompareTensors(cs, "y", expected, y))) break;
      if (tally.Check(CompareWithinBound(cs + " backward", "dx", dx_ref, dx, dx_bound,
                                         ReductionFactor(area)))) {
        break;
      }
      continue;
    }
    pool2d_forward(c.params, Abs(x), y_bound, "reference");
    if (tally.Check(CompareWithinBound(cs, "y", expected, y, y_bound, ReductionFactor(area + 1)))) {
      break;
    }
    if (tally.Check(CompareWithinBound(cs + " backward", "dx", dx_ref, dx, dx_bound,
                                       ReductionFactor(area + 1)))) {
      break;
    }
  }
  CONVKIT_FINISH_GRID(tally);
}

TEST_P(RandomTest, ConvExact) {
  CONVKIT_SKIP_UNLESS_BUILT(backend());
  RandomConvExact(backend(), 1);
}
TEST_P(RandomTest, PoolExact) {
  CONVKIT_SKIP_UNLESS_BUILT(backend());
  RandomPoolExact(backend(), 1);
}
// A fifth of the cases again on real-valued data.
TEST_P(RandomTest, ConvNormalWithinBound) {
  CONVKIT_SKIP_UNLESS_BUILT(backend());
  RandomConvNormal(backend(), 5);
}
TEST_P(RandomTest, PoolNormalWithinBound) {
  CONVKIT_SKIP_UNLESS_BUILT(backend());
  RandomPoolNormal(backend(), 5);
}

INSTANTIATE_TEST_SUITE_P(VsReference, RandomTest, ::testing::ValuesIn(BackendsToCompare()),
                         BackendParamName);

// A quarter of the random cases on each pinned Highway target.
TEST_P(HighwayTargetTest, RandomConvExact) { RandomConvExact("highway", 4); }
TEST_P(HighwayTargetTest, RandomPoolExact) { RandomPoolExact("highway", 4); }

// The generator: deterministic per (seed, index), valid, and varied.
TEST(RandomCases, ReproducibleValidAndVaried) {
  std::map<std::string, int> seen;
  for (int64_t i = 0; i < 400; ++i) {
    const ConvCase a = RandomConvCase(kDefaultRandomSeed, i),
                   b = RandomConvCase(kDefaultRandomSeed, i);
    EXPECT_EQ(a.ToString(), b.ToString());
    EXPECT_NO_THROW(conv2d_output_dims(a.x, a.w(), a.params)) << a.ToString();
    const PoolCase p = RandomPoolCase(kDefaultRandomSeed, i);
    EXPECT_EQ(p.ToString(), RandomPoolCase(kDefaultRandomSeed, i).ToString());
    EXPECT_NO_THROW(pool2d_output_dims(p.x, p.params)) << p.ToString();
    seen["conv stride " + std::to_string(a.params.stride_w)]++;
    seen["conv dilation " + std::to_string(a.params.dilation_h)]++;
    seen[a.params.groups == 1        ? "groups 1"
         : a.params.groups == a.x[3] ? "depthwise"
                                     : "groups 2"]++;
    seen["batch " + std::to_string(a.x[0])]++;
    if (p.params.ceil_mode) seen["ceil_mode"]++;
    if (p.params.global) seen["global"]++;
    if (p.params.count_include_pad) seen["count_include_pad"]++;
  }
  EXPECT_NE(RandomConvCase(1, 0).ToString(), RandomConvCase(2, 0).ToString());
  for (const char* key : {"conv stride 1", "conv stride 2", "conv stride 3", "conv dilation 2",
                          "conv dilation 3", "groups 1", "groups 2", "depthwise", "batch 0",
                          "batch 3", "ceil_mode", "global", "count_include_pad"}) {
    EXPECT_GE(seen[key], 5) << key;
  }
}

// The bound catches a real error: one element off by a few bound widths fails.
TEST(RandomCases, BoundCanFail) {
  Tensor e({1, 1, 1, 3}), a({1, 1, 1, 3}), bound({1, 1, 1, 3}, 10.0f);
  e.data()[1] = 1.0f;
  a.data()[1] = 1.0f + 1e-5f;
  EXPECT_TRUE(CompareWithinBound("bound", "t", e, a, bound, ReductionFactor(100)));
  a.data()[1] = 1.001f;
  EXPECT_FALSE(CompareWithinBound("bound", "t", e, a, bound, ReductionFactor(100)));
}

// ---- Semantics the issue names that need every backend against hand values ----
//
// Denormals (DESIGN §4: "denormal inputs give correct results"), NaN through a convolution, and
// the one documented deviation between backends: ReLU of a NaN pre-activation.

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
// binade, denormals included) and the edge values NaN, ±inf, ±0, ±FLT_MAX, against the reference:
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
  for (int64_t i = 0; i < 11; ++i) {
    const PostOpVariant post = PostOpVariantFor(i * 4);  // every activation, no residual
    Conv2dParams params = MakeConv(1, 1, {}, 1, kChannels);
    post.ApplyTo(params);
    const std::string name = backend() + " " + post.ToString();
    Tensor expected(x.dims()), y(x.dims(), kBackendFill);
    conv2d_forward(params, x, w, {}, expected, "reference");
    if (auto why = RefusalOf([&] { conv2d_forward(params, x, w, {}, y, backend()); })) {
      std::printf("%s refused: %s\n", name.c_str(), why->c_str());
      continue;
    }
    EXPECT_TRUE(CompareTensors(
        name, "y", expected, y,
        IsExactActivation(post.activation) ? Tolerance::Exact() : Tolerance::Ulps(4)));
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

// ---- Pooling large enough to be DRAM-bound ----

// Calls touching more than 32 MiB take the vector backends' streaming-store paths (highway:
// pool2d.cpp's kStreamBytes; its backward then accumulates rows in a ring buffer), which no
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
  for (const PoolMode mode : {PoolMode::kMax, PoolMode::kAverage}) {
    const Pool2dParams params{.mode = mode,
                              .window_h = 3,
                              .window_w = 3,
                              .stride_h = 2,
                              .stride_w = 2,
                              .pad = Pads::uniform(1)};
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
    // Max: a 3x3 window at stride 2 picks one of ~4 inputs, so ~85 % of dx is rightly zero.
    EXPECT_TRUE(NotMostlyZero(name, "dx", dx, mode == PoolMode::kMax ? 0.9 : 0.5));
  }
}

INSTANTIATE_TEST_SUITE_P(VsReference, LargePoolTest, ::testing::ValuesIn(BackendsToCompare()),
                         BackendParamName);

// ---- The harness can fail: the comparisons and checks the grid relies on ----

TEST(EquivalenceHarness, ExactComparisonSeesEveryBit) {
  Tensor a({1, 2, 3, 4});
  for (int64_t i = 0; i < a.size(); ++i) a.data()[i] = static_cast<float>(i + 1);
  Tensor b = a;
  EXPECT_TRUE(CompareTensors("harness", "same", a, b));
  b(0, 1, 2, 3) = std::nextafter(a(0, 1, 2, 3), 100.0f);  // one ulp
  const ::testing::AssertionResult one_ulp = CompareTensors("harness case", "t", a, b);
  EXPECT_FALSE(one_ulp);
  EXPECT_NE(std::string(one_ulp.message()).find("(n, h, w, c) = (0, 1, 2, 3)"), std::string::npos)
      << one_ulp.message();
  EXPECT_NE(std::string(one_ulp.message()).find("harness case"), std::string::npos);
  EXPECT_NE(std::string(one_ulp.message()).find("expected 24"), std::string::npos)
      << one_ulp.message();
  Tensor z({1, 1, 1, 2}), nz({1, 1, 1, 2});
  nz(0, 0, 0, 1) = -0.0f;
  EXPECT_FALSE(CompareTensors("harness", "+0 vs -0", z, nz));
  Tensor n1({1, 1, 1, 2}, kNaN), n2({1, 1, 1, 2}, -kNaN);
  EXPECT_TRUE(CompareTensors("harness", "NaN == NaN", n1, n2));
  EXPECT_FALSE(CompareTensors("harness", "NaN vs 0", n1, z));
  EXPECT_FALSE(CompareTensors("harness", "dims", a, Tensor({1, 2, 4, 3})));
  // Tolerance mode: relative to max(|expected|, floor).
  Tensor c = a;
  c(0, 0, 0, 0) += 1e-3f;  // 1 -> 1.001
  EXPECT_TRUE(CompareTensors("harness", "tol", a, c, Tolerance::Relative(2e-3, 1.0)));
  EXPECT_FALSE(CompareTensors("harness", "tol", a, c, Tolerance::Relative(5e-4, 1.0)));
  EXPECT_FALSE(CompareVectors("harness", "db", std::vector<float>{1, 2}, std::vector<float>{1, 3}));
}

TEST(EquivalenceHarness, ZeroTrustAndFills) {
  Tensor t({1, 1, 1, 10});
  EXPECT_FALSE(NotMostlyZero("harness", "all zero", t));
  for (int i = 0; i < 4; ++i) t.data()[i] = 1.0f;  // 6 of 10 zero
  EXPECT_FALSE(NotMostlyZero("harness", "60% zero", t, 0.5));
  EXPECT_TRUE(NotMostlyZero("harness", "60% zero", t, 0.7));
  EXPECT_FALSE(NotMostlyZero("harness", "empty", Tensor({0, 1, 1, 1})));

  Rng r1(42), r2(42);
  std::vector<float> a(1000), b(1000);
  FillIntegers(Span(a), r1, -3, 3, true);
  FillIntegers(Span(b), r2, -3, 3, true);
  EXPECT_EQ(a, b) << "fills must be reproducible from the seed";
  EXPECT_EQ(std::count(a.begin(), a.end(), 0.0f), 0);
  EXPECT_EQ(*std::min_element(a.begin(), a.end()), -3.0f);
  EXPECT_EQ(*std::max_element(a.begin(), a.end()), 3.0f);
  FillDistinct(Span(a), r1, 0.125f);
  std::sort(a.begin(), a.end());
  EXPECT_EQ(std::adjacent_find(a.begin(), a.end()), a.end()) << "FillDistinct repeated a value";
  for (int64_t kh = 1; kh <= 7; ++kh) {
    for (int64_t kw = 1; kw <= 7; ++kw) {
      for (int64_t r = 1; r <= kh; ++r) {
        for (int64_t c = 1; c <= kw; ++c) EXPECT_EQ(AverageScale(kh, kw) % (r * c), 0u);
      }
    }
  }
}

// ---- Winograd F(2x2, 3x3) in the Highway backend ----
//
// Highway runs eligible problems (3x3, stride 1, dilation 1, groups 1) by Winograd when
// CONVKIT_HIGHWAY_WINOGRAD=on, or when it chooses to under auto (the default). Its transforms
// have only 0, +-1 and +-1/2 entries (the weights are stored scaled by 4, the output unscaled by
// 1/4 exactly), so on the integer data of this file it must match reference bit for bit too. The
// grid, the random cases and the hand-picked shapes below run with it forced on, on every pinned
// target; non-eligible cases run the direct kernels as usual.

// Sets an environment variable for a scope, restoring the previous value (or its absence).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    if (old != nullptr) old_ = old;
    had_ = old != nullptr;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_) {
      setenv(name_, old_.c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

constexpr const char* kWinogradEnv = "CONVKIT_HIGHWAY_WINOGRAD";

ConvCase WinogradCase(std::string origin, Dims x, Pads pad, int64_t oc, bool bias,
                      bool relu = false) {
  ConvCase c{"winograd: " + std::move(origin), x, MakeConv(3, 1, pad), oc, bias};
  if (relu) c.params.activation = Activation::kRelu;
  return c;
}

// Eligible shapes around the 2x2 tile and the vector width: odd output sizes (ragged right and
// bottom tiles), asymmetric and large padding, 1-output images, channel counts 1, 3, 13, 17, 29
// and several output-channel blocks with a narrow last one.
std::vector<ConvCase> WinogradConvCases() {
  return {
      WinogradCase("ragged 9x11, 13 -> 29", {1, 9, 11, 13}, Pads::uniform(1), 29, true),
      WinogradCase("asymmetric pads, 3 -> 17", {2, 8, 7, 3}, {0, 2, 1, 0}, 17, false),
      WinogradCase("no padding, 1 -> 1", {1, 6, 5, 1}, {}, 1, false),
      WinogradCase("asymmetric pads, relu, 17 -> 13", {3, 5, 9, 17}, {2, 1, 0, 2}, 13, true, true),
      WinogradCase("29 -> 3", {1, 13, 10, 29}, {1, 0, 0, 1}, 3, false),
      WinogradCase("windows in the padding, 16 -> 16", {1, 4, 4, 16}, Pads::uniform(3), 16, true),
      WinogradCase("one output, 31 -> 33", {1, 3, 3, 31}, {}, 33, true),
      WinogradCase("1-pixel input, 5 -> 7", {2, 1, 1, 5}, Pads::uniform(2), 7, false),
      WinogradCase("channel blocks, 64 -> 80", {1, 12, 12, 64}, Pads::uniform(1), 80, true),
      WinogradCase("batch 2, relu, 40 -> 70", {2, 15, 17, 40}, Pads::uniform(1), 70, true, true),
      WinogradCase("batch 0", {0, 6, 6, 8}, Pads::uniform(1), 8, true),
  };
}

TEST_P(HighwayTargetTest, WinogradShapesExact) {
  const ScopedEnv on(kWinogradEnv, "on");
  int index = 0;
  for (const ConvCase& c : WinogradConvCases()) {
    Rng rng(CaseSeed(1000 + index++));
    const std::string cs = c.ToString();
    Tensor x(c.x), w(c.w());
    std::vector<float> b(static_cast<size_t>(c.bias ? c.oc : 0));
    FillConvData(Span(x), rng);
    FillConvData(Span(w), rng);
    FillConvData(Span(b), rng);
    const Dims y_dims = conv2d_output_dims(c.x, c.w(), c.params);
    Tensor expected(y_dims, kReferenceFill), y(y_dims, kBackendFill), y_plan(y_dims, kBackendFill);
    conv2d_forward(c.params, x, w, b, expected, "reference");
    conv2d_forward(c.params, x, w, b, y, "highway");
    const Conv2d plan(c.params, c.x, w, b, "highway");
    plan.run(x, y_plan);
    EXPECT_NE(plan.impl_name().find(":winograd:"), std::string::npos)
        << cs << ": " << plan.impl_name();
    EXPECT_TRUE(ImplIsOnIsa(cs, plan.impl_name(), isa()));
    EXPECT_TRUE(CompareTensors(cs, "y (one-shot)", expected, y));
    EXPECT_TRUE(CompareTensors(cs, "y (plan)", expected, y_plan));
    if (y.size() > 0) {
      const double allowed = c.params.activation == Activation::kRelu ? 0.8 : 0.3;
      EXPECT_TRUE(NotMostlyZero(cs, "y", y, allowed));
    }
  }
}

// The grid (benchmark shapes, hand-picked and sampled cases) and a quarter of the random cases
// with Winograd forced on wherever eligible.
TEST_P(HighwayTargetTest, WinogradConvForwardGrid) {
  const ScopedEnv on(kWinogradEnv, "on");
  ConvForwardGrid("highway", isa());
}
TEST_P(HighwayTargetTest, WinogradRandomConvExact) {
  const ScopedEnv on(kWinogradEnv, "on");
  RandomConvExact("highway", 4);
}

// ---- Grouped convolution with narrow groups (highway:grouped, conv2d_fwd_grouped.cc) ----

ConvCase GroupedCase(std::string origin, Dims x, int64_t oc, Conv2dParams params, bool bias,
                     bool relu = false) {
  if (relu) params.activation = Activation::kRelu;
  return {"grouped: " + std::move(origin), x, params, oc, bias};
}

// Around the kernel's choices: groups of 4 and 8 channels (4-channel permutations), ICg < OCg and
// OCg = 2 (one permutation per channel), OCg = the vector width (broadcasts), a last block with
// fewer groups, stride, dilation, asymmetric and large padding, 1x1, batch 0 to 3.
std::vector<ConvCase> GroupedConvCases() {
  return {
      GroupedCase("ResNeXt-like 8 x 4", {1, 9, 11, 32}, 32, MakeConv(3, 1, Pads::uniform(1), 1, 8),
                  true),
      GroupedCase("3 x 8, last block short", {2, 7, 6, 24}, 24,
                  MakeConv(3, 1, Pads::uniform(1), 1, 3), true, true),
      GroupedCase("RegNet-like 13 x 8, stride 2", {1, 7, 6, 104}, 104,
                  MakeConv(3, 2, Pads::uniform(1), 1, 13), false),
      GroupedCase("ICg 2 < OCg 4", {1, 8, 8, 12}, 24, MakeConv(3, 1, Pads::uniform(1), 1, 6), true),
      GroupedCase("OCg 2, 5x5", {1, 5, 7, 6}, 6, MakeConv(5, 1, Pads::uniform(2), 1, 3), true),
      GroupedCase("OCg 16", {1, 5, 5, 32}, 32, MakeConv(3, 1, Pads::uniform(1), 1, 2), true),
      GroupedCase("dilation 2, asymmetric pads", {1, 12, 10, 16}, 16,
                  MakeConv(3, 1, {0, 2, 1, 1}, 2, 4), true),
      GroupedCase("windows in the padding", {1, 3, 3, 16}, 16,
                  MakeConv(3, 1, Pads::uniform(3), 1, 4), true),
      GroupedCase("1x1, batch 3, relu", {3, 4, 5, 16}, 16, MakeConv(1, 1, {}, 1, 4), true, true),
      GroupedCase("batch 0", {0, 6, 6, 32}, 32, MakeConv(3, 1, Pads::uniform(1), 1, 8), true),
  };
}

// The vector width of a Highway target, in floats, as conv2d_fwd_grouped.cc sees it.
int64_t LanesOf(const std::string& isa) { return isa == "AVX3" ? 16 : isa == "AVX2" ? 8 : 1; }

// Plans take the grouped kernel exactly where it is eligible on the pinned target, and match the
// reference bit for bit (integer data).
TEST_P(HighwayTargetTest, GroupedShapesExact) {
  int index = 0;
  for (const ConvCase& c : GroupedConvCases()) {
    Rng rng(CaseSeed(2000 + index++));
    const std::string cs = c.ToString();
    Tensor x(c.x), w(c.w());
    std::vector<float> b(static_cast<size_t>(c.bias ? c.oc : 0));
    FillConvData(Span(x), rng);
    FillConvData(Span(w), rng);
    FillConvData(Span(b), rng);
    const Dims y_dims = conv2d_output_dims(c.x, c.w(), c.params);
    Tensor expected(y_dims, kReferenceFill), y(y_dims, kBackendFill);
    conv2d_forward(c.params, x, w, b, expected, "reference");
    const Conv2d plan(c.params, c.x, w, b, "highway");
    plan.run(x, y);
    const int64_t icg = c.x[3] / c.params.groups, ocg = c.oc / c.params.groups;
    const int64_t lanes = LanesOf(isa());
    const bool eligible = ocg <= lanes && lanes % ocg == 0 && icg <= ocg;
    EXPECT_EQ(plan.impl_name().find(":grouped:") != std::string::npos, eligible)
        << cs << ": " << plan.impl_name();
    EXPECT_TRUE(ImplIsOnIsa(cs, plan.impl_name(), isa()));
    EXPECT_TRUE(CompareTensors(cs, "y (plan)", expected, y));
    if (y.size() > 0) {
      EXPECT_TRUE(NotMostlyZero(cs, "y", y, c.params.activation == Activation::kRelu ? 0.8 : 0.3));
    }
  }
}

// The variable: on and off force the choice, auto (and unset) lets the backend choose, anything
// else is an error naming the variable and the accepted values.
TEST(Winograd, EnvironmentVariableChoosesTheKernel) {
  CONVKIT_SKIP_UNLESS_BUILT("highway");
  const Dims x_dims{1, 56, 56, 64}, few_channels{1, 9, 9, 3};
  const Tensor w({3, 3, 64, 64}, 1.0f), w3({3, 3, 3, 4}, 1.0f);
  const Conv2dParams params = MakeConv(3, 1, Pads::uniform(1));
  const auto impl = [&](const char* mode, const Dims& x, const Tensor& weights) {
    const ScopedEnv env(kWinogradEnv, mode);
    return Conv2d(params, x, weights, {}, "highway").impl_name();
  };
  EXPECT_NE(impl("on", x_dims, w).find(":winograd:"), std::string::npos);
  EXPECT_NE(impl("on", few_channels, w3).find(":winograd:"), std::string::npos);
  EXPECT_EQ(impl("off", x_dims, w).find(":winograd:"), std::string::npos);
  EXPECT_NE(impl("auto", x_dims, w).find(":winograd:"), std::string::npos) << "a ResNet-50 layer";
  EXPECT_EQ(impl("auto", few_channels, w3).find(":winograd:"), std::string::npos) << "3 channels";
  // Not eligible: stride 2 never runs Winograd.
  {
    const ScopedEnv env(kWinogradEnv, "on");
    EXPECT_EQ(Conv2d(MakeConv(3, 2, Pads::uniform(1)), x_dims, w, {}, "highway")
                  .impl_name()
                  .find(":winograd:"),
              std::string::npos);
  }
  const ScopedEnv bad(kWinogradEnv, "yes");
  try {
    const Conv2d plan(params, x_dims, w, {}, "highway");
    ADD_FAILURE() << "CONVKIT_HIGHWAY_WINOGRAD=yes was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(kWinogradEnv), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("auto, on, off"), std::string::npos) << e.what();
  }
  Tensor x(few_channels, 1.0f), y(conv2d_output_dims(few_channels, w3.dims(), params));
  EXPECT_THROW(conv2d_forward(params, x, w3, {}, y, "highway"), Error);
}

// Error bound on real-valued data. Winograd reassociates the products: output (0, 0) of the 1-D
// F(2, 3) is (d0 - d2) g0 + (d1 + d2)(g0 + g1 + g2) / 2 + (d2 - d1)(g0 - g1 + g2) / 2, whose
// rounding errors scale with products of inputs and weights of *different* taps (|d2||g0|, ...),
// so sum |x||w| over the window cannot bound them (it may cancel where those do not). Per axis the
// absolute transforms give each |d_i||g_k| of the output's window a coefficient of at most 2, so
// in 2-D at most 4:
//   |y_winograd - y| <= gamma_L * (4 * B + |b|),  B = sum over ic of (sum of |x| over the 3x3
//   window) * (sum of |w| over the 9 taps),
// with L = IC + 11 roundings on any path (4 in U' = (2G) w (2G)^T, 2 in B^T d B, IC in the FMA
// chain, 4 in A^T M A, 1 for the bias; the 1/4 is exact) and gamma_L = L u / (1 - L u), u = 2^-24
// (Higham §3.1). The direct kernel's error is at most gamma_{9 IC + 1} (sum |x||w| + |b|), and
// sum |x||w| <= B. Both fit the one bound checked here:
//   |y - y_exact| <= c * gamma_K * (B + |b|),  c = 4, K = 9 IC + 3  (IC + 11 <= 9 IC + 3 for IC >=
//   1).
// y_exact and B are computed in double.
struct ExactConv {
  Tensor y;  // rounded to float for the harness; the comparison uses the double values below
  std::vector<double> y_exact;
  std::vector<double> bound;  // B + |b|
};

ExactConv ExactConv3x3(const ConvCase& c, const Tensor& x, const Tensor& w,
                       const std::vector<float>& b) {
  const Dims y_dims = conv2d_output_dims(c.x, c.w(), c.params);
  const int64_t n = c.x[0], ih = c.x[1], iw = c.x[2], ic = c.x[3];
  const int64_t oh = y_dims[1], ow = y_dims[2], oc = c.oc;
  ExactConv r{Tensor(y_dims), {}, {}};
  r.y_exact.assign(static_cast<size_t>(r.y.size()), 0.0);
  r.bound.assign(r.y_exact.size(), 0.0);
  std::vector<double> w_sum(static_cast<size_t>(ic * oc), 0.0);  // sum of |w| over the taps
  for (int64_t t = 0; t < 9; ++t) {
    for (int64_t i = 0; i < ic * oc; ++i)
      w_sum[static_cast<size_t>(i)] += std::fabs(w.data()[t * ic * oc + i]);
  }
  std::vector<double> x_sum(static_cast<size_t>(ic));
  for (int64_t in = 0; in < n; ++in) {
    for (int64_t h = 0; h < oh; ++h) {
      for (int64_t v = 0; v < ow; ++v) {
        std::fill(x_sum.begin(), x_sum.end(), 0.0);
        double* y = r.y_exact.data() + ((in * oh + h) * ow + v) * oc;
        double* bound = r.bound.data() + ((in * oh + h) * ow + v) * oc;
        for (int64_t kh = 0; kh < 3; ++kh) {
          for (int64_t kw = 0; kw < 3; ++kw) {
            const int64_t xh = h - c.params.pad.top + kh, xw = v - c.params.pad.left + kw;
            if (xh < 0 || xh >= ih || xw < 0 || xw >= iw) continue;
            const float* xp = x.data() + ((in * ih + xh) * iw + xw) * ic;
            const float* wp = w.data() + (kh * 3 + kw) * ic * oc;
            for (int64_t i = 0; i < ic; ++i) {
              x_sum[static_cast<size_t>(i)] += std::fabs(xp[i]);
              for (int64_t o = 0; o < oc; ++o) y[o] += static_cast<double>(xp[i]) * wp[i * oc + o];
            }
          }
        }
        for (int64_t o = 0; o < oc; ++o) {
          for (int64_t i = 0; i < ic; ++i) {
            bound[o] += x_sum[static_cast<size_t>(i)] * w_sum[static_cast<size_t>(i * oc + o)];
          }
          if (!b.empty()) {
            y[o] += b[static_cast<size_t>(o)];
            bound[o] += std::fabs(b[static_cast<size_t>(o)]);
          }
        }
      }
    }
  }
  return r;
}

TEST(Winograd, ErrorWithinBoundOnNormals) {
  CONVKIT_SKIP_UNLESS_BUILT("highway");
  const std::vector<ConvCase> cases = {
      WinogradCase("normals 13 -> 29", {1, 20, 21, 13}, Pads::uniform(1), 29, true),
      WinogradCase("normals 1 -> 5", {2, 9, 8, 1}, {0, 1, 2, 0}, 5, true),
      WinogradCase("normals 64 -> 64", {1, 14, 14, 64}, Pads::uniform(1), 64, false),
      WinogradCase("normals 256 -> 32", {1, 10, 9, 256}, Pads::uniform(1), 32, true),
  };
  int index = 0;
  for (const ConvCase& c : cases) {
    Rng rng(CaseSeed(2000 + index++));
    Tensor x(c.x), w(c.w());
    std::vector<float> b(static_cast<size_t>(c.bias ? c.oc : 0));
    FillNormal(Span(x), rng);
    FillNormal(Span(w), rng);
    FillNormal(Span(b), rng);
    const ExactConv exact = ExactConv3x3(c, x, w, b);
    const double k = 9.0 * static_cast<double>(c.x[3]) + 3.0;
    const double gamma = k * kUnitRoundoff / (1.0 - k * kUnitRoundoff);
    const double c_factor = 4.0;
    for (const char* mode : {"on", "off"}) {
      const ScopedEnv env(kWinogradEnv, mode);
      Tensor y(exact.y.dims(), kBackendFill);
      conv2d_forward(c.params, x, w, b, y, "highway");
      double worst = 0.0;  // largest error / allowance
      int64_t worst_i = 0;
      for (int64_t i = 0; i < y.size(); ++i) {
        const double err =
            std::fabs(static_cast<double>(y.data()[i]) - exact.y_exact[static_cast<size_t>(i)]);
        const double ratio = err / (c_factor * gamma * exact.bound[static_cast<size_t>(i)]);
        if (ratio > worst) {
          worst = ratio;
          worst_i = i;
        }
      }
      EXPECT_LE(worst, 1.0) << c.ToString() << " winograd=" << mode << ": worst at "
                            << IndexString(y.dims(), worst_i) << ": y "
                            << FloatString(y.data()[worst_i]) << ", exact "
                            << exact.y_exact[static_cast<size_t>(worst_i)];
    }
  }
}

}  // namespace
}  // namespace convkit::test
