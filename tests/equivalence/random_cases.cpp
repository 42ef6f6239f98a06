// The random-case generator and the run's environment (random.hpp).
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "tests/equivalence/random.hpp"

namespace convkit::test {
namespace {

constexpr double kMaxRandomConvMacs = 3e5;

}  // namespace

std::vector<int64_t> RandomRun::Indices(int64_t count) const {
  if (only >= 0) return {only};
  std::vector<int64_t> indices(static_cast<size_t>(count));
  std::iota(indices.begin(), indices.end(), 0);
  return indices;
}

std::string RandomRun::Prefix(int64_t index) const {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "CONVKIT_RANDOM_SEED=0x%llx CONVKIT_RANDOM_CASE=%lld",
                static_cast<unsigned long long>(seed), static_cast<long long>(index));
  return buf;
}

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
    DrawPadsActivationBias(c, rng);
    c.x = {rng.UniformInt(0, 3), rng.UniformInt(1, 12), rng.UniformInt(1, 12), ic};
    if (!KernelFitsPaddedInput(c) || ConvMacs(c) > kMaxRandomConvMacs) {
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

}  // namespace convkit::test
