// The equivalence grid's cases and their exact data (grid.hpp).
#include <algorithm>
#include <bit>
#include <numeric>
#include <string>
#include <vector>

#include "bench/shape_sets.hpp"
#include "tests/equivalence/grid.hpp"

namespace convkit::test {
namespace {

// Multiply-accumulates allowed per case: keeps the reference's share of the run short.
constexpr double kMaxConvMacs = 4e6;
constexpr double kMaxBenchConvMacs = 8e6;

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
      // x and y past 32 MiB: highway's dense-rows depthwise stores y with streaming stores.
      {"hand: depthwise, x and y past L3",
       {1, 129, 129, 256},
       MakeConv(3, 1, Pads::uniform(1), 1, 256),
       256,
       true},
      // Rows wide enough for interior tiles of 8 pixels 2 columns apart (23 input columns).
      {"hand: depthwise 5x5, dilation 2, wide rows",
       {1, 5, 41, 40},
       MakeConv(5, 1, {4, 2, 4, 3}, 2, 40),
       40,
       true},
  };
}

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
    DrawPadsActivationBias(c, rng);
    c.x = {rng.UniformInt(0, 3), rng.Pick(sizes), rng.Pick(sizes), ic};
    if (!KernelFitsPaddedInput(c)) continue;  // an error, not a case
    if (ConvMacs(c) > kMaxConvMacs) continue;
    c.origin = "sampled " + std::to_string(cases.size());
    cases.push_back(c);
  }
  return cases;
}

// Every benchmark shape in both modes, batch <= 2, at most 15x15.
std::vector<PoolCase> BenchPoolCases() {
  std::vector<PoolCase> cases;
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
  return cases;
}

std::vector<PoolCase> HandPoolCases() {
  std::vector<PoolCase> cases;
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
  // highway's wide variant with runs of window elements (pixels of 193-256 channels on AVX3).
  cases.push_back({"hand: 240 channels",
                   {2, 9, 11, 240},
                   MakePool(PoolMode::kMax, 3, 2, Pads::uniform(1)),
                   true});
  cases.push_back({"hand: 240 channels",
                   {2, 9, 11, 240},
                   MakePool(PoolMode::kAverage, 3, 2, Pads::uniform(1), false, true)});
  // highway's separable pooling (stride 1, windows of 16+ elements, pixels wider than three
  // channel steps): NaNs, then asymmetric pads and channel blocks with a short last one.
  cases.push_back({"hand: separable, NaNs",
                   {2, 9, 11, 200},
                   MakePool(PoolMode::kMax, 5, 1, Pads::uniform(2)),
                   true});
  cases.push_back({"hand: separable, asymmetric pads",
                   {1, 6, 7, 208},
                   MakePool(PoolMode::kMax, 4, 1, {1, 2, 3, 0})});
  // The same as averages: sums along W then H, divided by the window's count without and with
  // the padding.
  cases.push_back({"hand: separable average",
                   {2, 9, 11, 200},
                   MakePool(PoolMode::kAverage, 5, 1, Pads::uniform(2))});
  cases.push_back({"hand: separable average, asymmetric pads, padding counted",
                   {1, 6, 7, 208},
                   MakePool(PoolMode::kAverage, 4, 1, {1, 2, 3, 0}, false, true)});
  // Global pooling of wide pixels (the wide variant, not the separable one): NaNs, an average.
  // The sums take four window elements per load and store up to 256 channels, two past that where
  // x fits the threads' L2 (1 MiB each), one where it does not (5.7 MB: four threads' worth).
  for (const int64_t c : {200, 264}) {
    const std::string width = ", " + std::to_string(c) + " channels";
    cases.push_back({"hand: one window, NaNs" + width,
                     {2, 7, 7, c},
                     MakePool(PoolMode::kMax, 7, 1, Pads::uniform(0)),
                     true});
    cases.push_back({"hand: one window average" + width,
                     {2, 7, 7, c},
                     MakePool(PoolMode::kAverage, 7, 1, Pads::uniform(0))});
  }
  cases.push_back({"hand: 1040 channels, x past the L2s",
                   {1, 37, 37, 1040},
                   MakePool(PoolMode::kAverage, 3, 2, Pads::uniform(1))});
  // highway's average backward gather in one pass over dx rows too wide for its two-pass form.
  cases.push_back(
      {"hand: wide rows", {2, 7, 200, 32}, MakePool(PoolMode::kAverage, 3, 2, Pads::uniform(1))});
  return cases;
}

std::vector<PoolCase> SampledPoolCases() {
  std::vector<PoolCase> cases;
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

// Nonzero multiples of `scale` in [-3, 3] * scale.
void FillScaled(std::span<float> data, Rng& rng, uint64_t scale) {
  FillIntegers(data, rng, -3, 3, true);
  for (float& v : data) v *= static_cast<float>(scale);
}

}  // namespace

std::string ConvCase::ToString() const {
  return origin + " [x " + to_string(x) + " oc " + std::to_string(oc) + " " + to_string(params) +
         (bias ? " bias" : "") + "]";
}

std::string PoolCase::ToString() const {
  return origin + " [x " + to_string(x) + " " + to_string(params) + (with_nans ? " NaNs" : "") +
         "]";
}

int64_t KernelSpan(int64_t k, int64_t d) { return d * (k - 1) + 1; }

double ConvMacs(const ConvCase& c) {
  const Dims y = conv2d_output_dims(c.x, c.w(), c.params);
  return static_cast<double>(y[0]) * y[1] * y[2] * c.oc * c.params.kernel_h * c.params.kernel_w *
         (c.x[3] / c.params.groups);
}

int64_t Even(int64_t c) { return c % 2 == 0 ? c : 2 * c; }

bool KernelFitsPaddedInput(const ConvCase& c) {
  const Conv2dParams& p = c.params;
  return c.x[1] + p.pad.top + p.pad.bottom >= KernelSpan(p.kernel_h, p.dilation_h) &&
         c.x[2] + p.pad.left + p.pad.right >= KernelSpan(p.kernel_w, p.dilation_w);
}

void DrawPadsActivationBias(ConvCase& c, Rng& rng) {
  Conv2dParams& p = c.params;
  p.pad = {rng.UniformInt(0, 3), rng.UniformInt(0, 3), rng.UniformInt(0, 3), rng.UniformInt(0, 3)};
  // relu, or leaky_relu with a slope exact on integers (oneDNN refuses relu).
  const int64_t activation = rng.UniformInt(0, 2);
  p.activation = activation == 0   ? Activation::kNone
                 : activation == 1 ? Activation::kRelu
                                   : Activation::kLeakyRelu;
  p.activation_alpha = 0.125f;
  c.bias = rng.UniformInt(0, 1) == 0;
}

std::vector<ConvCase> ConvCases() {
  std::vector<ConvCase> all = BenchConvCases();
  for (auto* part : {HandConvCases, SampledConvCases}) {
    for (ConvCase& c : part()) all.push_back(std::move(c));
  }
  return all;
}

std::vector<PoolCase> PoolCases() {
  std::vector<PoolCase> all = BenchPoolCases();
  for (auto* part : {HandPoolCases, SampledPoolCases}) {
    for (PoolCase& c : part()) all.push_back(std::move(c));
  }
  return all;
}

uint64_t CaseSeed(int index) {
  return kGridSeed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(index);
}

// ---- Exact data ----

void FillConvData(std::span<float> data, Rng& rng) { FillIntegers(data, rng, -3, 3, true); }

void FillNormals(std::span<float> data, Rng& rng) { FillNormal(data, rng); }

ConvData MakeConvData(const ConvCase& c, Rng& rng, FillFunction fill) {
  ConvData d{Tensor(c.x), Tensor(c.w()),
             std::vector<float>(static_cast<size_t>(c.bias ? c.oc : 0))};
  fill(Span(d.x), rng);
  fill(Span(d.w), rng);
  fill(Span(d.b), rng);
  return d;
}

Tensor ReferenceConvY(const ConvCase& c, const ConvData& d) {
  Tensor y(conv2d_output_dims(c.x, c.w(), c.params), kReferenceFill);
  conv2d_forward(c.params, d.x, d.w, d.b, y, "reference");
  return y;
}

ExactConvCase MakeExactConvCase(const ConvCase& c, int index) {
  Rng rng(CaseSeed(index));
  ConvData d = MakeConvData(c, rng);
  Tensor expected = ReferenceConvY(c, d);
  return {c.ToString(), std::move(d), std::move(expected)};
}

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

uint64_t PoolScale(const PoolCase& c) {
  if (c.params.global) return static_cast<uint64_t>(c.x[1] * c.x[2]);
  return AverageScale(c.params.window_h, c.params.window_w);
}

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

}  // namespace convkit::test
