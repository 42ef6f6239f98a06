// The equivalence grid (DESIGN §4, §8; STYLE rules 8, 9): the cases every backend runs against
// reference, their exact data, the zero-trust allowances, and the grids, each run through the one
// driver (tests/grid_driver.hpp) as the random cases are.
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
// The folder: cases.cpp (the cases and their data), grid.cpp (zero trust), conv_grid.cpp and
// pool_grid.cpp (one case's checks), random.hpp (the random cases); the suites, one concern each:
// vs_reference_test.cpp (every backend vs reference), highway_targets_test.cpp (each compiled
// Highway target pinned), highway_winograd_test.cpp, highway_grouped_test.cpp, random_test.cpp,
// edge_values_test.cpp (denormals, NaN, infinities, activations), grid_test.cpp (the grid and the
// harness can fail).
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tests/grid_driver.hpp"
#include "tests/highway_targets.hpp"
#include "tests/test_util.hpp"

namespace convkit::test {

constexpr uint64_t kGridSeed = 0x5eed0c0417ull;
constexpr int kSampledConvCases = 140;
constexpr int kSampledPoolCases = 160;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int64_t kZeroTrustMinElements = 32;  // fewer elements prove too little either way

// ---- The cases ----

struct ConvCase {
  std::string origin;  // "bench resnet50/res2_3x3_64", "hand: ...", "sampled 17"
  Dims x{};
  Conv2dParams params;
  int64_t oc = 0;
  bool bias = false;

  Dims w() const { return {params.kernel_h, params.kernel_w, x[3] / params.groups, oc}; }
  std::string ToString() const;
};

struct PoolCase {
  std::string origin;
  Dims x{};
  Pool2dParams params;
  bool with_nans = false;  // max pooling: a few NaNs in x

  std::string ToString() const;
};

int64_t KernelSpan(int64_t k, int64_t d);
double ConvMacs(const ConvCase& c);
int64_t Even(int64_t c);  // odd channel counts made even for groups 2
// False when the kernel's span exceeds the padded input (an error, not a case).
bool KernelFitsPaddedInput(const ConvCase& c);
// Draws the pads (0-3 each side), the activation (none, relu, or leaky_relu with a slope exact on
// integers: oneDNN refuses relu) and the bias of a sampled or random case.
void DrawPadsActivationBias(ConvCase& c, Rng& rng);

// The grid: benchmark shapes cropped, hand-picked cases, then the seeded sample.
std::vector<ConvCase> ConvCases();
std::vector<PoolCase> PoolCases();

// The seed of grid case `index`.
uint64_t CaseSeed(int index);

// ---- Exact data ----

// Nonzero integers in [-3, 3]: products up to 9, sums far below 2^24 for every grid shape.
void FillConvData(std::span<float> data, Rng& rng);

// Standard normal values.
void FillNormals(std::span<float> data, Rng& rng);

// x, w and b of a convolution case, filled in that order from `rng` by `fill`.
struct ConvData {
  Tensor x;
  Tensor w;
  std::vector<float> b;  // empty without bias
};
using FillFunction = void (*)(std::span<float>, Rng&);
ConvData MakeConvData(const ConvCase& c, Rng& rng, FillFunction fill = FillConvData);

// The reference's y of a case, over a kReferenceFill pre-fill.
Tensor ReferenceConvY(const ConvCase& c, const ConvData& d);

// What a test of one case on one backend starts from: its name, integer data from the seed of
// case `index` (CaseSeed) and the reference's y.
struct ExactConvCase {
  std::string name;
  ConvData d;
  Tensor expected;
};
ExactConvCase MakeExactConvCase(const ConvCase& c, int index);

uint64_t OddPart(uint64_t v);
// A multiple of every divisor an average window of at most window_h x window_w can have.
uint64_t AverageScale(int64_t window_h, int64_t window_w);
// The scale for a pooling case: a global window has the one divisor H * W.
uint64_t PoolScale(const PoolCase& c);

struct PoolData {
  Tensor x;
  Tensor dy;
  int64_t window_h = 0, window_w = 0;  // resolved (global: H x W)
};
// Max pooling: integers with many ties (and NaNs when the case asks); average: multiples of
// PoolScale, so every average and share is exact.
PoolData MakePoolData(const PoolCase& c, Rng& rng);

// ---- Zero trust with the structural zeros taken out ----
//
// The zero fraction allowed in a reference result: the structural zeros (elements no window can
// make nonzero) plus a share of the rest for the data's chance zeros.

double ConvYAllowedZeros(const ConvCase& c, const Dims& y_dims);
double ConvDxAllowedZeros(const ConvCase& c, const Dims& y_dims);
double ConvDwAllowedZeros(const ConvCase& c, const Dims& y_dims);
double PoolDxAllowedZeros(const PoolCase& c, const PoolData& d);

// The grids, each against reference on `backend`; `isa` non-empty: every plan must run on it.
//
// Forward convolution, one-shot and through a plan run twice. Case i also takes post-op variant i
// (PostOpVariantFor): every activation and residual mode runs over the grid, bit-exact for the
// exact activations and within 4 ulp for the others (the data are integers, so the sums agree
// exactly and only the activation may differ). With fpmath = bf16 too: the grid's integers
// (|v| <= 3) are bf16 values, so bf16 products change no bit.
void ConvForwardGrid(const std::string& backend, std::string_view isa,
                     Fpmath fpmath = Fpmath::kStrict);
// ConvForwardGrid's checks over `cases` instead of the grid: case i takes post-op variant and seed
// first_index + i.
void ConvForwardCases(const std::string& backend, std::string_view isa,
                      const std::vector<ConvCase>& cases, int first_index);
// Backward convolution, one-shot and through a plan. The gradients asked for rotate per case: all
// three, dx only, dw and db only; one not asked for must not be written.
void ConvBackwardGrid(const std::string& backend, std::string_view isa);
// The same checks over the given cases, seeded from first_index (highway_grouped_test.cpp).
void ConvBackwardCases(const std::string& backend, std::string_view isa,
                       const std::vector<ConvCase>& cases, int first_index);
// Pooling forward and backward, one-shot and through a plan run twice.
void PoolForwardGrid(const std::string& backend, std::string_view isa);
void PoolBackwardGrid(const std::string& backend, std::string_view isa);

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

// The grids on every compiled Highway target, pinned one at a time (highway_targets_test.cpp,
// highway_winograd_test.cpp, highway_grouped_test.cpp).
class HighwayTargetTest : public PinnedHighwayTargetTest {};

}  // namespace convkit::test
