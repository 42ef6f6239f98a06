// convkit-activation-ulps: the distance, in ulps, between a backend's fused activations and the
// reference's (double, rounded once), over every float or a stride through them. DESIGN §4 allows
// 4 ulp for sigmoid, tanh, silu, hardswish and gelu; the dense sweep in
// tests/equivalence/edge_values_test.cpp checks 2^-14 of the floats in every test run, this tool
// all of them, through the same path a network takes: a 1x1 depthwise convolution with unit
// weights (x * 1 is exact), so the backend's own epilogue computes act(x).
//
//   build/release/tools/convkit-activation-ulps [--backend=highway] [--stride=1]
//       [--activations=sigmoid,tanh,silu,gelu,hardswish]
//
// Prints, per activation, the largest distance, the input where it occurs and how many inputs
// are 0, 1, 2, 3 and more ulps away; NaN must be NaN exactly where the reference has NaN (counted
// as a mismatch otherwise). Exits 1 if any distance exceeds 4 ulp or a NaN mismatches. Every
// float at --stride=1 takes about a minute per activation on two cores (the reference dominates).
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "convkit/convkit.hpp"

namespace {

using convkit::Activation;

struct Named {
  const char* name;
  Activation activation;
};
constexpr std::array<Named, 5> kActivations = {{{"sigmoid", Activation::kSigmoid},
                                                {"tanh", Activation::kTanh},
                                                {"silu", Activation::kSilu},
                                                {"gelu", Activation::kGelu},
                                                {"hardswish", Activation::kHardSwish}}};

// Floats as integers in the order of their values (-0 and +0 both 0), so that the distance of two
// finite floats is their difference.
int64_t OrderedBits(float f) {
  const auto bits = std::bit_cast<int32_t>(f);
  return bits < 0 ? -static_cast<int64_t>(bits & 0x7fffffff) : bits;
}

struct Tally {
  int64_t max_ulps = 0;
  float worst_x = 0.0f;
  std::array<uint64_t, 5> counts{};  // 0, 1, 2, 3, >= 4 ulps
  uint64_t nan_mismatches = 0;

  void Add(float x, float expected, float y) {
    if (std::isnan(expected) || std::isnan(y)) {
      if (std::isnan(expected) != std::isnan(y)) ++nan_mismatches;
      return;
    }
    const int64_t ulps = std::llabs(OrderedBits(expected) - OrderedBits(y));
    if (ulps > max_ulps) {
      max_ulps = ulps;
      worst_x = x;
    }
    ++counts[static_cast<size_t>(std::min<int64_t>(ulps, 4))];
  }
};

// act(x) for the chunk x on `backend`: y {1, 1, count / 16, 16} from a 1x1 depthwise convolution.
void Activate(Activation activation, const std::vector<float>& x, std::vector<float>& y,
              std::string_view backend) {
  constexpr int64_t kChannels = 16;
  convkit::Conv2dParams params;
  params.groups = kChannels;
  params.activation = activation;
  const std::vector<float> w(kChannels, 1.0f);
  const convkit::Dims dims{1, 1, static_cast<int64_t>(x.size()) / kChannels, kChannels};
  convkit::conv2d_forward(params, {x.data(), dims}, {w.data(), {1, 1, 1, kChannels}}, {},
                          {y.data(), dims}, backend);
}

Tally Sweep(Activation activation, uint64_t stride, std::string_view backend) {
  constexpr size_t kChunk = size_t{1} << 22;
  std::vector<float> x, expected(kChunk), y(kChunk);
  Tally tally;
  uint64_t bits = 0;
  while (bits < (uint64_t{1} << 32)) {
    x.clear();
    for (; bits < (uint64_t{1} << 32) && x.size() < kChunk; bits += stride) {
      x.push_back(std::bit_cast<float>(static_cast<uint32_t>(bits)));
    }
    while (x.size() % 16 != 0) x.push_back(0.0f);
    expected.resize(x.size());
    y.resize(x.size());
    Activate(activation, x, expected, "reference");
    Activate(activation, x, y, backend);
    for (size_t i = 0; i < x.size(); ++i) tally.Add(x[i], expected[i], y[i]);
  }
  return tally;
}

std::string_view ValueOf(std::string_view arg, std::string_view flag) {
  return arg.substr(0, flag.size()) == flag ? arg.substr(flag.size()) : std::string_view{};
}

}  // namespace

int main(int argc, char** argv) {
  std::string backend = "highway";
  uint64_t stride = 1;
  std::string wanted = "sigmoid,tanh,silu,gelu,hardswish";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (auto v = ValueOf(arg, "--backend="); !v.empty()) {
      backend = v;
    } else if (auto v = ValueOf(arg, "--stride="); !v.empty()) {
      stride = std::strtoull(std::string(v).c_str(), nullptr, 10);
    } else if (auto v = ValueOf(arg, "--activations="); !v.empty()) {
      wanted = v;
    } else {
      std::fprintf(stderr, "convkit-activation-ulps: unknown argument '%s' (see the source)\n",
                   argv[i]);
      return 2;
    }
  }
  if (stride == 0) {
    std::fprintf(stderr, "convkit-activation-ulps: --stride: expected >= 1, given 0\n");
    return 2;
  }
  bool ok = true;
  for (const Named& a : kActivations) {
    if (("," + wanted + ",").find(std::string(",") + a.name + ",") == std::string::npos) continue;
    const Tally t = Sweep(a.activation, stride, backend);
    std::printf(
        "%s %s: max %lld ulp at %.9g; inputs at 0/1/2/3/>=4 ulp: %llu %llu %llu %llu %llu;"
        " NaN mismatches %llu\n",
        backend.c_str(), a.name, static_cast<long long>(t.max_ulps), t.worst_x,
        static_cast<unsigned long long>(t.counts[0]), static_cast<unsigned long long>(t.counts[1]),
        static_cast<unsigned long long>(t.counts[2]), static_cast<unsigned long long>(t.counts[3]),
        static_cast<unsigned long long>(t.counts[4]),
        static_cast<unsigned long long>(t.nan_mismatches));
    std::fflush(stdout);
    ok = ok && t.max_ulps <= 4 && t.nan_mismatches == 0;
  }
  return ok ? 0 : 1;
}
