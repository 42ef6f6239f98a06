// Randomized cases (DESIGN §8): a seeded generator of valid parameter combinations over small
// shapes (so that thousands run in seconds): CONVKIT_RANDOM_CASES cases of each kind (default 1000;
// CI runs the default, a soak run sets 10000 or more), from CONVKIT_RANDOM_SEED (printed; default
// fixed, so CI is deterministic). Case i depends only on (seed, i): CONVKIT_RANDOM_CASE=i replays
// it alone. A failing case prints as one line: seed, index, operation and problem.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/equivalence/grid.hpp"

namespace convkit::test {

constexpr uint64_t kDefaultRandomSeed = 0xc0417c0deull;
constexpr uint64_t kDefaultRandomCases = 1000;

// The run the environment asks for.
struct RandomRun {
  uint64_t seed = kDefaultRandomSeed;
  int64_t cases = kDefaultRandomCases;
  int64_t only = -1;  // >= 0: replay this case alone

  // The case indices of a run of `count` cases (or the one replayed).
  std::vector<int64_t> Indices(int64_t count) const;
  // "CONVKIT_RANDOM_SEED=0x... CONVKIT_RANDOM_CASE=i": what replays case `index`.
  std::string Prefix(int64_t index) const;
};

// Reads the environment, prints the seed and records it as a test property.
RandomRun GetRandomRun();

// Random case `index` of the run from `seed`: valid, and small.
ConvCase RandomConvCase(uint64_t seed, int64_t index);
PoolCase RandomPoolCase(uint64_t seed, int64_t index);

// The random cases against reference on `backend`, run / count_divisor of them (random_checks.cpp).
// Exact (integer data): conv2d forward and backward, pool2d forward and backward; every fourth
// case also through a plan.
void RandomConvExact(const std::string& backend, int64_t count_divisor);
void RandomPoolExact(const std::string& backend, int64_t count_divisor);
// Within the stated bound on normal data.
void RandomConvNormal(const std::string& backend, int64_t count_divisor);
void RandomPoolNormal(const std::string& backend, int64_t count_divisor);

// Tolerance mode, on standard normal data. Any order of summing L terms t_i in fp32 (with or
// without FMA) errs by at most gamma_L * sum |t_i|, gamma_L = L u / (1 - L u), u = 2^-24 (Higham,
// Accuracy and Stability, §3.1). Two such results differ by at most twice that, so we allow
//   |backend - reference| <= 2 (L + 2) u * sum |t_i|        element-wise,
// with L the reduction length (conv y: KH KW C_in/groups + 1 for the bias; dx: KH KW C_out/groups;
// dw and db: N OH OW; average pooling: the window area + 1 for the division; max pooling backward:
// the window area) and sum |t_i| the same operation run by reference on |x|, |w|, |b|, |dy|. ReLU
// is 1-Lipschitz and keeps the bound.
constexpr double kUnitRoundoff = 0x1.0p-24;

inline double ReductionFactor(int64_t length) {
  return 2.0 * static_cast<double>(length + 2) * kUnitRoundoff;
}

}  // namespace convkit::test
