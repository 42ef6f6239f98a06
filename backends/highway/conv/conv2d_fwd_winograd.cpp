// The Winograd F(2x2, 3x3) forward variant's target-independent part: when it runs, the weight
// transform, plans and one-shot calls. The vector code is in conv2d_fwd_winograd.cc.
//
// Eligible: 3x3 kernel, stride 1, dilation 1, groups 1 (any padding, N, H, W, C, bias, post-ops);
// with dilation > 1, through sub-grids (winograd_subgrid, below) when the top and left pads are
// multiples of the dilation.
// Chosen per problem by CONVKIT_HIGHWAY_WINOGRAD, read at each plan creation and one-shot call:
//   auto (or unset, or empty)  eligible problems where WinogradPays (measured; see below)
//   on                          every eligible problem
//   off                         never
// Any other value is an error (convkit::Error, invalid argument) naming the variable.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/common/scratch.hpp"
#include "backends/highway/common/variants.hpp"
#include "backends/highway/conv/conv2d_fwd_plan.hpp"
#include "backends/highway/conv/conv2d_fwd_subgrid.hpp"
#include "backends/highway/conv/conv2d_fwd_variant.hpp"
#include "hwy/base.h"

namespace convkit::internal::highway {
namespace {

constexpr const char* kWinogradEnv = "CONVKIT_HIGHWAY_WINOGRAD";

bool Eligible(const Conv2dProblem& p) {
  return p.kh == 3 && p.kw == 3 && p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 &&
         p.dilation_w == 1 && p.groups == 1;
}

// Where Winograd beats the implicit GEMM kernel. Measured with plans on one thread of a 2-core
// Zen 4 (min of 10 runs, pad 1), direct time / Winograd time:
// - IC < 8: never. The transforms cost more than the multiplications saved (3 -> 17: 0.72x,
//   4 -> 64: 0.96x, 6 -> 32: 0.91x at 56x56).
// - 8 <= IC < 16: only with OC >= 24 (8 -> 64: 1.47x, 8 -> 32 at 112x112: 1.11x, 13 -> 29:
//   1.27x; 8 -> 16: 0.89x, 12 -> 16: 0.99x, 13 -> 13: 1.07x).
// - IC >= 16: yes (16 -> 8: 1.22x, 32 -> 4: 1.46x, 64 -> 1: 1.44x; ResNet-50 and VGG-16 3x3
//   layers 1.3-2.1x).
// - fewer than 9 outputs per image: never. The direct kernel skips taps in the padding, which
//   tiles do not (256 -> 256 at 2x2: 0.64x; at 3x3 and 4x4: 1.16x and 2.1x).
// - under kMinFlops: never, fixed costs dominate (16 -> 16 at 7x7: 0.76x, 32 -> 32 at 5x5:
//   0.92x; 64 -> 64 at 4x4, 1.2 MFLOP: 1.8x).
// - one-shot calls transform the weights each time (16 floats per (ic, oc) written): only with
//   at least 32 tiles (ResNet-50 res5, 16 tiles: 2.3x slower than the direct one-shot call; res4,
//   49 tiles: 1.3x faster).
constexpr int64_t kMinChannels = 8;
constexpr int64_t kManyChannels = 16;
constexpr int64_t kMinOutChannelsForFew = 24;
constexpr int64_t kMinOutputs = 9;
constexpr int64_t kMinOneShotTiles = 32;
constexpr double kMinFlops = 1 << 20;

bool WinogradPays(const Conv2dProblem& p, bool one_shot) {
  if (p.ic < kMinChannels) return false;
  if (p.ic < kManyChannels && p.oc < kMinOutChannelsForFew) return false;
  if (p.oh * p.ow < kMinOutputs || p.flops() < kMinFlops) return false;
  const int64_t tiles = p.n * ((p.oh + 1) / 2) * ((p.ow + 1) / 2);
  return !one_shot || tiles >= kMinOneShotTiles;
}

// Dilated 3x3 layers (DeepLab's atrous convolutions) run Winograd over their sub-grids
// (conv2d_fwd_subgrid.hpp) where that does fewer multiplications than the direct kernel, which
// skips taps in the padding: per (ic, oc) pair, 16 per 2x2 tile of every sub-grid image against
// one per tap inside the input. The time saved is a fraction of the multiplications saved, smaller
// with fewer output channels (the transforms and the sub-grid copies weigh more). Measured (2
// threads, 1 image; MACs fewer -> faster than the direct kernel): 256 -> 256 dilation 2 at 28x28
// 2.04x -> 1.81x, 512 -> 512 dilation 4 at 28x28 1.41x -> 1.22x, 512 -> 256 rate 6 at 32x32 1.36x
// -> 1.22x, 2048 -> 256 rate 12 at 65x65 1.41x -> 1.10x; with 64 outputs, at 65x65: 64 -> 64
// dilation 2 1.97x -> 1.28x, dilation 4 1.69x -> 1.0x, 256 -> 64 rate 6 1.61x -> 1.10x, rate 12
// 1.41x -> 0.94x. Rate 12 on 32x32 (3x3 sub-grids, most taps in the padding): 0.56x, direct. Few
// input channels: 32 -> 32 dilation 2 at 56x56 2.04x -> 1.35x, 17 -> 31 at 28x28 2.04x -> 0.95x.
constexpr double kMinSubgridGain = 1.2;
constexpr int64_t kMinSubgridChannels = 32;
constexpr double kMinSubgridGainNarrow = 1.9;  // below kNarrowOutputs output channels
constexpr int64_t kNarrowOutputs = 128;

// Output positions of one axis, summed over its 3 taps, whose tap lies inside the input.
int64_t InsideTaps(int64_t out, int64_t in, int64_t pad, int64_t dilation) {
  int64_t count = 0;
  for (int64_t k = 0; k < 3; ++k) {
    const int64_t first = std::max<int64_t>(0, pad - k * dilation);
    const int64_t end = std::min(out, in + pad - k * dilation);
    count += std::max<int64_t>(0, end - first);
  }
  return count;
}

bool SubgridPays(const Conv2dProblem& p, const Conv2dProblem& sub, bool one_shot) {
  if (p.ic < kMinSubgridChannels || !WinogradPays(sub, one_shot)) return false;
  const double direct = static_cast<double>(InsideTaps(p.oh, p.ih, p.pad.top, p.dilation_h)) *
                        static_cast<double>(InsideTaps(p.ow, p.iw, p.pad.left, p.dilation_w));
  const double winograd = 16.0 * static_cast<double>(p.dilation_h * p.dilation_w) *
                          static_cast<double>(((sub.oh + 1) / 2) * ((sub.ow + 1) / 2));
  const double gain = p.oc < kNarrowOutputs ? kMinSubgridGainNarrow : kMinSubgridGain;
  return direct >= gain * winograd;
}

// The widest output-channel block of any target (AVX-512: 4 vectors of 16).
constexpr int64_t kTransformChunk = 64;

// r[pos][o] = ((2G) g (2G)^T)[pos] for the 3x3 kernels g[tap][o], o < cols; one order of
// operations, so that every target packs the same U'. Loops over o innermost: vectorized.
void TransformWeightRows(const float (&g)[9][kTransformChunk], int64_t cols,
                         float (&r)[16][kTransformChunk]) {
  float t[4][3][kTransformChunk];  // (2G) g
  for (int l = 0; l < 3; ++l) {
    for (int64_t o = 0; o < cols; ++o) {
      const float g0 = g[l][o], g1 = g[3 + l][o], g2 = g[6 + l][o];
      t[0][l][o] = 2.0f * g0;
      t[1][l][o] = (g0 + g1) + g2;
      t[2][l][o] = (g0 - g1) + g2;
      t[3][l][o] = 2.0f * g2;
    }
  }
  for (int row = 0; row < 4; ++row) {  // t (2G)^T
    for (int64_t o = 0; o < cols; ++o) {
      const float t0 = t[row][0][o], t1 = t[row][1][o], t2 = t[row][2][o];
      r[row * 4][o] = 2.0f * t0;
      r[row * 4 + 1][o] = (t0 + t1) + t2;
      r[row * 4 + 2][o] = (t0 - t1) + t2;
      r[row * 4 + 3][o] = 2.0f * t2;
    }
  }
}

// U' = (2G) w (2G)^T = 4 G w G^T for every (ic, oc), G = [[1,0,0],[1/2,1/2,1/2],[1/2,-1/2,1/2],
// [0,0,1]], packed as position pos (0-15, row-major in the 4x4 tile), output-channel block j,
// row ic: u + pos * group_stride + j * block_stride + ic * block_cols, zeros past OC. In fp32 in a
// fixed order, the same on every target; exact on integer weights.
AlignedFloats TransformWeights(const Conv2dProblem& p, const float* w, int64_t block_cols,
                               int threads, Conv2dFwdWeights* layout) {
  HWY_DASSERT(block_cols <= kTransformChunk);
  const int64_t blocks = (p.oc + block_cols - 1) / block_cols;
  const int64_t block_stride = p.ic * block_cols;
  const int64_t pos_stride = blocks * block_stride;
  AlignedFloats u(static_cast<size_t>(16 * pos_stride), 0.0f);
  float* const out = u.data();
  ParallelFor(threads, p.ic, [&](int64_t ic) {
    for (int64_t j = 0; j < blocks; ++j) {
      const int64_t oc0 = j * block_cols;
      const int64_t cols = std::min(block_cols, p.oc - oc0);
      // Through local rows: the 9 taps' rows of w and the 16 positions' rows of u are 1 MiB
      // apart at 512 x 512, on the same L1 sets; read and written directly, element by element,
      // they thrashed the cache (16 ms for 512 x 512, now under 2).
      float g[9][kTransformChunk];
      float r[16][kTransformChunk];
      for (int64_t k = 0; k < 9; ++k) {
        const float* src = w + (k * p.ic + ic) * p.oc + oc0;
        std::copy(src, src + cols, g[k]);
      }
      TransformWeightRows(g, cols, r);
      float* dst = out + j * block_stride + ic * block_cols;
      for (int64_t pos = 0; pos < 16; ++pos)
        std::copy(r[pos], r[pos] + cols, dst + pos * pos_stride);
    }
  });
  *layout = {u.data(), block_cols, pos_stride, block_stride, block_cols};
  return u;
}

int64_t BlockCols(const Conv2dProblem& p, const Conv2dFwdKernel& kernel) {
  return VecsPerBlock(p.oc, kernel.lanes, kernel.max_vecs) * kernel.lanes;
}

int Threads(const Conv2dProblem& p) { return ThreadsFor(p.flops()); }

// A plan: transforms and packs the weights once (on the calling thread).
std::unique_ptr<Conv2dFwdImpl> CreateWinograd(const Conv2dProblem& p, const float* w,
                                              const float* b) {
  const Conv2dFwdKernel kernel = Conv2dFwdWinogradKernel();
  Conv2dFwdPacked packed;
  packed.w = TransformWeights(p, w, BlockCols(p, kernel), 1, &packed.layout);
  return MakeConv2dFwdPlan(p, kernel, std::move(packed), b, Threads(p) == 1, "winograd");
}

// A one-shot call: transforms the weights into a buffer allocated per call.
void WinogradOneShot(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                     const float* r, float* y, std::string* impl_name) {
  const Conv2dFwdKernel kernel = Conv2dFwdWinogradKernel();
  const int threads = Threads(p);
  Conv2dFwdWeights layout;
  const AlignedFloats u = TransformWeights(p, w, BlockCols(p, kernel), threads, &layout);
  kernel.run({.p = &p, .x = x, .w = layout, .b = b, .r = r, .y = y, .threads = threads});
  if (impl_name != nullptr) *impl_name = Conv2dFwdImplName("winograd", kernel);
}

// A plan for a dilated problem: Winograd's plan of its sub-grid problem, inside the gather and
// scatter of the sub-grids.
std::unique_ptr<Conv2dFwdImpl> CreateWinogradSubgrid(const Conv2dProblem& p, const float* w,
                                                     const float* b) {
  const Conv2dProblem sub = *SubgridProblem(p);
  return MakeSubgridPlan(p, sub, CreateWinograd(sub, w, b),
                         Conv2dFwdImplName("winograd_subgrid", Conv2dFwdWinogradKernel()));
}

const char* RefusesWinogradSubgrid(const Conv2dFwdQuery& q) {
  const VariantMode mode = ReadVariantMode(kWinogradEnv);
  if (mode == VariantMode::kOff) return "CONVKIT_HIGHWAY_WINOGRAD=off";
  const Conv2dProblem& p = q.p;
  if (p.kh != 3 || p.kw != 3 || p.groups != 1) return "needs 3x3, groups 1";
  const std::optional<Conv2dProblem> sub = SubgridProblem(p);
  if (!sub) return "needs stride 1, dilation > 1, top and left pads multiples of it";
  if (mode == VariantMode::kOn || SubgridPays(p, *sub, q.one_shot)) return nullptr;
  return "direct is faster here";
}

const char* RefusesWinograd(const Conv2dFwdQuery& q) {
  const VariantMode mode = ReadVariantMode(kWinogradEnv);
  if (mode == VariantMode::kOff) return "CONVKIT_HIGHWAY_WINOGRAD=off";
  if (!Eligible(q.p)) return "needs 3x3, stride 1, dilation 1, groups 1";
  if (mode == VariantMode::kOn || WinogradPays(q.p, q.one_shot)) return nullptr;
  return "direct is faster here";
}

}  // namespace

Conv2dFwdVariant Conv2dFwdWinogradVariant() {
  return {"winograd", &RefusesWinograd, &CreateWinograd, &WinogradOneShot};
}

Conv2dFwdVariant Conv2dFwdWinogradSubgridVariant() {
  return {"winograd_subgrid", &RefusesWinogradSubgrid, &CreateWinogradSubgrid, nullptr};
}

}  // namespace convkit::internal::highway
