// Shared helpers of the convkit test suites (DESIGN §8, STYLE rule 8): the backends to test,
// reproducible fills, exact and tolerance comparisons that print the case and the worst element,
// the zero-trust check, and the skip on a backend's refusal.
//
// Every helper is header-only and allocation-happy: tests are not hot paths.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <limits>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "convkit/convkit.hpp"

namespace convkit::test {

// ---- Backends ----

// The backends every per-backend suite runs on: all built into this copy, reference included.
inline std::vector<std::string> BackendsToTest() { return available_backends(); }

// The backends compared against reference: every known backend but reference, built or not, so a
// backend that is not built still shows up as a skipped test that says why (STYLE rule 8).
inline std::vector<std::string> BackendsToCompare() {
  std::vector<std::string> names;
  for (const BackendInfo& info : all_backends()) {
    if (info.name != "reference") names.push_back(info.name);
  }
  return names;
}

// Empty when `name` is built; otherwise the reason it is not ("not built, because ...").
inline std::optional<std::string> NotBuiltReason(const std::string& name) {
  for (const BackendInfo& info : all_backends()) {
    if (info.name == name) {
      if (info.not_built_reason.empty()) return std::nullopt;
      return info.not_built_reason;
    }
  }
  return "unknown backend";
}

// For INSTANTIATE_TEST_SUITE_P: names the instance after the backend.
inline std::string BackendParamName(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

// Runs `f`; returns the backend's reason when it refuses the call (ErrorCode::kUnsupported),
// nullopt when the call ran. Every other exception propagates and fails the test.
template <typename F>
std::optional<std::string> RefusalOf(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kUnsupported) throw;
    return std::string(e.what());
  }
  return std::nullopt;
}

}  // namespace convkit::test

// Runs `statement` (a call on `backend`); when the backend refuses it (kUnsupported), skips the
// current test with the reason instead of passing silently. Use in a test body, not a helper.
#define CONVKIT_RUN_OR_SKIP(backend, statement)                                   \
  do {                                                                            \
    if (auto convkit_refusal_ = ::convkit::test::RefusalOf([&] { statement; })) { \
      GTEST_SKIP() << (backend) << " refuses: " << *convkit_refusal_;             \
    }                                                                             \
  } while (0)

namespace convkit::test {

// ---- Reproducible fills ----

// splitmix64: the same sequence on every platform and standard library, unlike <random>'s
// distributions, so a failing case can be replayed from its seed anywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform integer in [lo, hi].
  int64_t UniformInt(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }
  // Standard normal (Box-Muller).
  double Normal() {
    const double u1 = 1.0 - Uniform();  // (0, 1]
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // One element of `options`.
  template <typename T>
  const T& Pick(const std::vector<T>& options) {
    return options[static_cast<size_t>(UniformInt(0, static_cast<int64_t>(options.size()) - 1))];
  }

 private:
  uint64_t state_;
};

// Integer values in [lo, hi], skipping 0 when `nonzero`. With small ranges every product and
// partial sum of a convolution is an exact fp32 integer (|sum| < 2^24), so any summation order
// gives the same bits: the benchdnn trick behind exact comparisons (DESIGN §4).
inline void FillIntegers(std::span<float> data, Rng& rng, int lo, int hi, bool nonzero = false) {
  for (float& v : data) {
    int64_t k = 0;
    do {
      k = rng.UniformInt(lo, hi);
    } while (nonzero && k == 0);
    v = static_cast<float>(k);
  }
}

// Normal values, mean `mean`, standard deviation `stddev`.
inline void FillNormal(std::span<float> data, Rng& rng, double mean = 0.0, double stddev = 1.0) {
  for (float& v : data) v = static_cast<float>(mean + stddev * rng.Normal());
}

// Pairwise distinct values spaced by `step`, in random order, centred on 0: max pooling's argmax is
// unique and stays put under perturbations smaller than step / 2.
inline void FillDistinct(std::span<float> data, Rng& rng, float step = 0.125f) {
  const int64_t n = static_cast<int64_t>(data.size());
  for (int64_t i = 0; i < n; ++i) data[i] = static_cast<float>(i - n / 2) * step;
  for (int64_t i = n - 1; i > 0; --i) std::swap(data[i], data[rng.UniformInt(0, i)]);
}

inline std::span<float> Span(Tensor& t) { return {t.data(), static_cast<size_t>(t.size())}; }
inline std::span<float> Span(std::vector<float>& v) { return {v.data(), v.size()}; }

// A tensor holding `values` in row-major order; the count must match the dims.
inline Tensor MakeTensor(const Dims& dims, std::initializer_list<float> values) {
  Tensor t(dims);
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.size()) << "MakeTensor " << to_string(dims);
  std::copy_n(values.begin(), std::min<int64_t>(t.size(), values.size()), t.data());
  return t;
}

// ---- Parameters ----

// A square convolution: k x k kernel, stride s and dilation d on both axes, pads p, groups g.
inline Conv2dParams MakeConv(int64_t k, int64_t s, Pads p, int64_t d = 1, int64_t g = 1) {
  Conv2dParams params;
  params.kernel_h = params.kernel_w = k;
  params.stride_h = params.stride_w = s;
  params.pad = p;
  params.dilation_h = params.dilation_w = d;
  params.groups = g;
  return params;
}

// A square pooling window: k x k, stride s on both axes, pads p.
inline Pool2dParams MakePool(PoolMode mode, int64_t k, int64_t s, Pads p, bool ceil_mode = false,
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

// ---- Post-ops (DESIGN §3): the variants equivalence tests rotate through ----

enum class ResidualMode { kNone, kBefore, kAfter, kInPlace };

// One activation with its parameters, the linear map after it or none, and one way of passing
// the residual r.
struct PostOpVariant {
  // The linear map of the variants that have one: a scale whose products need a rounding (they
  // check that it is one, as the reference's fma) and a sign flip.
  static constexpr float kScale = -0.75f, kShift = 1.5f;

  Activation activation = Activation::kNone;
  float alpha = 0.0f;
  float beta = 0.0f;
  ResidualMode residual = ResidualMode::kNone;
  bool linear = false;

  // Sets params' activation fields; kNone leaves the params' own activation.
  void ApplyTo(Conv2dParams& params) const {
    if (activation != Activation::kNone) {
      params.activation = activation;
      params.activation_alpha = alpha;
      params.activation_beta = beta;
    }
    params.residual_after_activation = residual == ResidualMode::kAfter;
    if (linear) {
      params.post_scale = kScale;
      params.post_shift = kShift;
    }
  }
  std::string ToString() const {
    static const char* const kResidual[] = {"", " +r", " act+r", " +r in place"};
    return std::string(activation_name(activation)) + (linear ? " linear" : "") +
           kResidual[static_cast<int>(residual)];
  }
};

// relu, relu6, clip and leaky_relu round as the reference does (bit-exact); the others are within
// 4 ulp of it (DESIGN §4).
inline bool IsExactActivation(Activation a) {
  return a == Activation::kNone || a == Activation::kRelu || a == Activation::kRelu6 ||
         a == Activation::kClip || a == Activation::kLeakyRelu;
}

// Every activation (alpha and beta that make each do something on small integers; leaky_relu's
// slope a power of two, exact on integers), every residual mode, and the linear map after the
// activation or none: case i of a grid takes variant i, so 44 consecutive cases cover every pair
// of activation and residual mode (11 and 4 are coprime), and 132 every triple with the linear
// map (i % 3 == 2).
inline PostOpVariant PostOpVariantFor(int64_t index) {
  static const PostOpVariant kActivations[] = {
      {Activation::kNone},
      {Activation::kRelu},
      {Activation::kRelu6},
      {Activation::kClip, -2.0f, 5.0f},
      {Activation::kLeakyRelu, 0.125f},
      {Activation::kSigmoid},
      {Activation::kTanh},
      {Activation::kSilu},
      {Activation::kHardSwish},
      {Activation::kHardSigmoid, 0.2f, 0.5f},
      {Activation::kGelu},
  };
  PostOpVariant v = kActivations[index % 11];
  v.residual = static_cast<ResidualMode>(index % 4);
  v.linear = index % 3 == 2;
  return v;
}

// conv2d_forward with the variant's residual r (ignored for kNone): r itself, or for kInPlace a
// copy of r in y passed as both r and y.
inline void ConvForwardWithResidual(const Conv2dParams& params, ConstTensorView x,
                                    ConstTensorView w, std::span<const float> b,
                                    ResidualMode residual, ConstTensorView r, TensorView y,
                                    std::string_view backend) {
  switch (residual) {
    case ResidualMode::kNone:
      return conv2d_forward(params, x, w, b, y, backend);
    case ResidualMode::kInPlace:
      std::copy(r.data, r.data + num_elements(r.dims), y.data);
      return conv2d_forward(params, x, w, b, y, y, backend);
    default:
      return conv2d_forward(params, x, w, b, r, y, backend);
  }
}

// The same through a plan's run.
inline void RunWithResidual(const Conv2d& plan, ConstTensorView x, ResidualMode residual,
                            ConstTensorView r, TensorView y) {
  switch (residual) {
    case ResidualMode::kNone:
      return plan.run(x, y);
    case ResidualMode::kInPlace:
      std::copy(r.data, r.data + num_elements(r.dims), y.data);
      return plan.run(x, y, y);
    default:
      return plan.run(x, r, y);
  }
}

// ---- Comparisons ----

// How two tensors must agree. Exact: the same bits, except that any NaN matches any NaN (so +0 and
// -0 differ). Tolerance: |actual - expected| <= rtol * max(|expected|, floor), NaN only where NaN.
struct Tolerance {
  bool exact = true;
  double rtol = 0.0;
  double floor = 0.0;
  int64_t ulps = -1;  // >= 0: at most this many units in the last place apart (+0 and -0 agree)

  static Tolerance Exact() { return {}; }
  static Tolerance Relative(double rtol, double floor) { return {false, rtol, floor}; }
  static Tolerance Ulps(int64_t n) { return {false, 0.0, 0.0, n}; }
  // fp32 accumulation of `length` terms of magnitude about `scale`, in any order: a few units of
  // 2^-24 per term, relative to the terms' scale rather than to a sum that may cancel to ~0.
  static Tolerance ForReduction(int64_t length, double scale = 1.0) {
    const double eps = std::numeric_limits<float>::epsilon() / 2;  // 2^-24
    return Relative(4.0 * eps * static_cast<double>(std::max<int64_t>(length, 1) + 1), scale);
  }
};

// How y of a post-op variant must agree with the reference's y: bit for bit for the exact
// activations (the linear map is one fma everywhere), within 4 ulp of the activation's value for
// the others (DESIGN §4). With the residual added after the activation, or the linear map's shift,
// y = s act(z) + t + r may cancel most of s act(z): its 4 ulp, at most 2^-21 |s act| with
// |s act| <= |y| + |t| + |r| <= 2 max(|y|, |t| + max|r|), are then compared relative to
// max(|y|, |t| + max|r|).
inline Tolerance PostOpTolerance(const PostOpVariant& post, double max_abs_r) {
  if (IsExactActivation(post.activation)) return Tolerance::Exact();
  const double floor = (post.residual == ResidualMode::kAfter ? max_abs_r : 0.0) +
                       (post.linear ? std::abs(double{PostOpVariant::kShift}) : 0.0);
  if (floor > 0.0) return Tolerance::Relative(0x1.0p-20, floor);
  return Tolerance::Ulps(4);
}

inline std::string FloatString(float v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g (0x%08x)", static_cast<double>(v),
                std::bit_cast<uint32_t>(v));
  return buf;
}

// How many floats lie between a and b (0 for equal values, 1 for neighbours; +0 and -0 are 0 apart;
// the largest float and infinity are neighbours). Neither is NaN.
inline int64_t UlpDistance(float a, float b) {
  const auto ordered = [](float f) {
    const int64_t bits = std::bit_cast<int32_t>(f);
    return bits < 0 ? int64_t{INT32_MIN} - bits : bits;
  };
  const int64_t d = ordered(a) - ordered(b);
  return d < 0 ? -d : d;
}

// "(n, h, w, c) = (1, 2, 0, 5)" for element `i` of a tensor of dims `d`.
inline std::string IndexString(const Dims& d, int64_t i) {
  int64_t idx[4];
  for (int k = 3; k >= 0; --k) {
    idx[k] = d[k] > 0 ? i % d[k] : 0;
    i = d[k] > 0 ? i / d[k] : 0;
  }
  std::ostringstream s;
  s << "(n, h, w, c) = (" << idx[0] << ", " << idx[1] << ", " << idx[2] << ", " << idx[3] << ")";
  return s.str();
}

// Compares `actual` with `expected`. On failure the message names the case, the tensor, how many
// elements differ and the worst of them: (n, h, w, c), expected and actual values and bits.
inline ::testing::AssertionResult CompareTensors(std::string_view case_name, std::string_view what,
                                                 ConstTensorView expected, ConstTensorView actual,
                                                 Tolerance tol = Tolerance::Exact()) {
  if (expected.dims != actual.dims) {
    return ::testing::AssertionFailure()
           << case_name << ": " << what << ": dims differ: expected " << to_string(expected.dims)
           << ", actual " << to_string(actual.dims);
  }
  const int64_t n = num_elements(expected.dims);
  int64_t mismatches = 0;
  int64_t worst = -1;
  double worst_excess = -1.0;  // how far past the allowance; +inf for NaN or sign mismatches
  for (int64_t i = 0; i < n; ++i) {
    const float e = expected.data[i];
    const float a = actual.data[i];
    double excess = 0.0;
    bool ok = false;
    if (std::isnan(e) || std::isnan(a)) {
      ok = std::isnan(e) && std::isnan(a);
      excess = std::numeric_limits<double>::infinity();
    } else if (tol.ulps >= 0) {
      const int64_t distance = UlpDistance(e, a);
      ok = distance <= tol.ulps;
      excess = static_cast<double>(distance - tol.ulps);
    } else if (tol.exact) {
      ok = std::bit_cast<uint32_t>(e) == std::bit_cast<uint32_t>(a);
      excess = std::fabs(static_cast<double>(a) - e);
      if (!ok && excess == 0.0) excess = std::numeric_limits<double>::min();  // +0 vs -0
    } else {
      const double allowed = tol.rtol * std::max(std::fabs(static_cast<double>(e)), tol.floor);
      excess = a == e ? 0.0 : std::fabs(static_cast<double>(a) - e) - allowed;  // inf == inf
      ok = excess <= 0.0;
    }
    if (ok) continue;
    ++mismatches;
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = i;
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  std::ostringstream s;
  s << case_name << ": " << what << ": " << mismatches << " of " << n << " elements differ ("
    << (tol.ulps >= 0 ? std::to_string(tol.ulps) + " ulp"
        : tol.exact   ? std::string("exact")
                      : "rtol " + std::to_string(tol.rtol) + " floor " + std::to_string(tol.floor))
    << "); worst at " << IndexString(expected.dims, worst) << ": expected "
    << FloatString(expected.data[worst]) << ", actual " << FloatString(actual.data[worst]);
  return ::testing::AssertionFailure() << s.str();
}

// The same for flat vectors (bias gradients), reported as (0, 0, 0, c).
inline ::testing::AssertionResult CompareVectors(std::string_view case_name, std::string_view what,
                                                 std::span<const float> expected,
                                                 std::span<const float> actual,
                                                 Tolerance tol = Tolerance::Exact()) {
  if (expected.size() != actual.size()) {
    return ::testing::AssertionFailure() << case_name << ": " << what << ": sizes differ: expected "
                                         << expected.size() << ", actual " << actual.size();
  }
  const Dims d{1, 1, 1, static_cast<int64_t>(expected.size())};
  return CompareTensors(case_name, what, ConstTensorView(expected.data(), d),
                        ConstTensorView(actual.data(), d), tol);
}

// Zero trust (benchdnn): a result whose elements are mostly zero proves little, since a kernel that
// writes nothing into a zeroed buffer would match it. Fails when more than `max_zero_fraction` of
// the elements are zero, and on an empty tensor (nothing was checked).
inline ::testing::AssertionResult NotMostlyZero(std::string_view case_name, std::string_view what,
                                                ConstTensorView t, double max_zero_fraction = 0.5) {
  const int64_t n = num_elements(t.dims);
  if (n == 0) {
    return ::testing::AssertionFailure() << case_name << ": " << what << ": empty, nothing checked";
  }
  const int64_t zeros = std::count(t.data, t.data + n, 0.0f);
  if (static_cast<double>(zeros) <= max_zero_fraction * static_cast<double>(n)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << case_name << ": " << what << ": " << zeros << " of " << n
         << " elements are zero (zero trust allows " << max_zero_fraction * 100 << "%)";
}

// The mean of a tensor's elements, in double (the seed's np.mean).
inline double Mean(ConstTensorView t) {
  const int64_t n = num_elements(t.dims);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += t.data[i];
  return n > 0 ? sum / static_cast<double>(n) : 0.0;
}

// |actual - expected| <= rtol * max(|expected|, floor), reported with the case.
inline ::testing::AssertionResult Near(std::string_view case_name, std::string_view what,
                                       double expected, double actual, double rtol,
                                       double floor = 1.0) {
  const double allowed = rtol * std::max(std::fabs(expected), floor);
  if (std::fabs(actual - expected) <= allowed) return ::testing::AssertionSuccess();
  char buf[160];
  std::snprintf(buf, sizeof(buf), "expected %.17g, actual %.17g (allowed %.3g)", expected, actual,
                allowed);
  return ::testing::AssertionFailure() << case_name << ": " << what << ": " << buf;
}

// ---- Environment knobs of the randomized suites ----

// The value of environment variable `name` as an unsigned integer (decimal or 0x-hex), or
// `fallback` when it is unset or empty. A value that does not parse fails the calling test.
inline uint64_t EnvUnsigned(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long parsed = std::strtoull(v, &end, 0);
  if (end == nullptr || *end != '\0') {
    ADD_FAILURE() << name << "=" << v << " is not an unsigned integer; using " << fallback;
    return fallback;
  }
  return parsed;
}

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

// Mixes a run seed and a case index into the seed of that case (splitmix64's finalizer), so that
// every case can be replayed alone from the printed seed and its index.
inline uint64_t CaseSeedOf(uint64_t run_seed, uint64_t index) {
  uint64_t z = run_seed + 0x9e3779b97f4a7c15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// ---- Guard zones ----

// A buffer holding one tensor between two guard zones of canary values, to prove that a call
// writes nothing outside the output it was given. The canary is a signalling-NaN bit pattern no
// kernel computes, compared by bits.
class GuardedTensor {
 public:
  static constexpr int64_t kGuard = 67;  // > one AVX-512 vector, odd: misaligns the tensor
  static constexpr uint32_t kCanaryBits = 0x7fa5c0deu;

  explicit GuardedTensor(const Dims& dims, float fill = 0.0f)
      : dims_(dims),
        size_(num_elements(dims)),
        buffer_(static_cast<size_t>(size_ + 2 * kGuard), std::bit_cast<float>(kCanaryBits)) {
    std::fill_n(data(), size_, fill);
  }
  float* data() { return buffer_.data() + kGuard; }
  const float* data() const { return buffer_.data() + kGuard; }
  int64_t size() const { return size_; }
  TensorView view() { return {data(), dims_}; }
  ConstTensorView view() const { return {data(), dims_}; }
  std::span<float> span() { return {data(), static_cast<size_t>(size_)}; }
  std::span<const float> span() const { return {data(), static_cast<size_t>(size_)}; }

  // Success when both guard zones still hold the canary; otherwise names the first changed slot.
  ::testing::AssertionResult GuardsIntact(std::string_view case_name, std::string_view what) const {
    for (int64_t i = 0; i < static_cast<int64_t>(buffer_.size()); ++i) {
      if (i == kGuard) i += size_;  // skip the tensor itself
      if (i >= static_cast<int64_t>(buffer_.size())) break;
      if (std::bit_cast<uint32_t>(buffer_[static_cast<size_t>(i)]) == kCanaryBits) continue;
      const bool before = i < kGuard;
      const int64_t distance = before ? kGuard - i : i - kGuard - size_ + 1;
      return ::testing::AssertionFailure()
             << case_name << ": " << what << ": wrote " << distance << " element(s) "
             << (before ? "before" : "after") << " the output of " << size_
             << " elements: " << FloatString(buffer_[static_cast<size_t>(i)]);
    }
    return ::testing::AssertionSuccess();
  }

 private:
  Dims dims_;
  int64_t size_;
  std::vector<float> buffer_;
};

// Element-wise bound: |actual - expected| <= factor * bound[i] (bound >= 0, e.g. the sum of the
// absolute values of the terms reduced into element i), NaN only where NaN. Reports the worst
// element relative to its allowance.
inline ::testing::AssertionResult CompareWithinBound(std::string_view case_name,
                                                     std::string_view what,
                                                     ConstTensorView expected,
                                                     ConstTensorView actual, ConstTensorView bound,
                                                     double factor) {
  if (expected.dims != actual.dims || expected.dims != bound.dims) {
    return ::testing::AssertionFailure() << case_name << ": " << what << ": dims differ";
  }
  const int64_t n = num_elements(expected.dims);
  int64_t mismatches = 0, worst = -1;
  double worst_ratio = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = expected.data[i], a = actual.data[i];
    const double allowed = factor * std::fabs(static_cast<double>(bound.data[i]));
    double ratio = 0.0;
    if (std::isnan(e) || std::isnan(a)) {
      if (std::isnan(e) && std::isnan(a)) continue;
      ratio = std::numeric_limits<double>::infinity();
    } else {
      const double diff = std::fabs(a - e);
      if (diff <= allowed) continue;
      ratio = allowed > 0.0 ? diff / allowed : std::numeric_limits<double>::infinity();
    }
    ++mismatches;
    if (worst < 0 || ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%.3g", factor * std::fabs(bound.data[worst]));
  return ::testing::AssertionFailure()
         << case_name << ": " << what << ": " << mismatches << " of " << n
         << " elements exceed the bound; worst at " << IndexString(expected.dims, worst)
         << ": expected " << FloatString(expected.data[worst]) << ", actual "
         << FloatString(actual.data[worst]) << ", allowed difference " << buf;
}

}  // namespace convkit::test
