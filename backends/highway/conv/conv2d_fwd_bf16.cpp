// bf16 forward convolution plans of the Highway backend: the choice, the weight packing into bf16
// pairs, the threading policy. Target-independent; the vector code is in conv2d_fwd_bf16.cc.
#include "backends/highway/conv/conv2d_fwd_bf16.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "api/src/bf16.hpp"
#include "api/src/cpu.hpp"
#include "backends/highway/common/parallel.hpp"
#include "backends/highway/common/variants.hpp"
#include "backends/highway/conv/conv2d_fwd_kernel.hpp"
#include "backends/highway/conv/conv2d_fwd_plan.hpp"
#include "backends/highway/conv/conv2d_fwd_variant.hpp"
#include "convkit/tensor.hpp"

namespace convkit::internal::highway {
namespace {

using AlignedWords = std::vector<uint32_t, AlignedAllocator<uint32_t>>;

int64_t BlockCols(const Conv2dProblem& p, const Conv2dFwdBf16Kernel& kernel) {
  return VecsPerBlock(p.oc_per_group(), kernel.lanes, kernel.max_vecs) * kernel.lanes;
}

int64_t RowPairs(const Conv2dProblem& p) { return (p.kw * p.ic_per_group() + 1) / 2; }

// Converting a kernel row of a pixel to bf16 costs ~15 cycles (index arithmetic, a masked convert
// per 32 floats); the dot products of a row save ~2 cycles per pair over fp32 (4 vectors of
// outputs). Below 8 pairs per row the conversion eats the gain: VGG's 3x3 over 3 channels (5 pairs)
// ran 1.26x slower in bf16 than fp32, ResNet's 7x7 stem over 3 channels (11 pairs) 1.18x faster.
constexpr int64_t kMinRowPairs = 8;

// Packs HWIO weights into the bf16 pair panels of Conv2dFwdBf16Weights.
AlignedWords PackWeights(const Conv2dProblem& p, const float* w, int64_t block_cols,
                         Conv2dFwdBf16Weights* layout) {
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group();
  const int64_t row_pairs = RowPairs(p);
  const int64_t blocks = (ocg + block_cols - 1) / block_cols;
  const int64_t panel_stride = p.kh * row_pairs * block_cols;
  AlignedWords packed(static_cast<size_t>(p.groups * blocks * panel_stride), 0u);
  for (int64_t g = 0; g < p.groups; ++g) {
    for (int64_t j = 0; j < blocks; ++j) {
      uint32_t* panel = packed.data() + (g * blocks + j) * panel_stride;
      const int64_t cols = std::min(block_cols, ocg - j * block_cols);
      for (int64_t kh = 0; kh < p.kh; ++kh) {
        // HWIO rows (kh, kw, ic) for kw, ic in order are the row's elements e = kw * ICg + ic.
        for (int64_t e = 0; e < p.kw * icg; ++e) {
          const float* src = w + (kh * p.kw * icg + e) * p.oc + g * ocg + j * block_cols;
          uint32_t* dst = panel + (kh * row_pairs + e / 2) * block_cols;
          const int shift = e % 2 == 0 ? 0 : 16;
          for (int64_t c = 0; c < cols; ++c) dst[c] |= uint32_t{Bf16Bits(src[c])} << shift;
        }
      }
    }
  }
  *layout = {packed.data(), row_pairs, block_cols, panel_stride};
  return packed;
}

class Conv2dFwdBf16Plan final : public Conv2dFwdImpl {
 public:
  Conv2dFwdBf16Plan(const Conv2dProblem& p, const float* w, const float* b,
                    const Conv2dFwdBf16Kernel& kernel)
      : p_(p), kernel_(kernel) {
    w_ = PackWeights(p, w, BlockCols(p, kernel), &layout_);
    if (b != nullptr) b_.assign(b, b + p.oc);
    serial_ = ThreadsFor(p.flops()) == 1;
  }

  void run(const float* x, const float* r, float* y) const override {
    kernel_.run(Args(p_, x, r, y));
  }

  // 1x1 stride-1 layers without groups read a gate or pieces while converting x to bf16.
  bool fuses_x_scale() const override { return IsPointwise(p_) && p_.groups == 1; }
  bool fuses_concat() const override { return fuses_x_scale(); }

  void run_scaled(const float* x, const float* x_scale, const float* r, float* y) const override {
    RunScaledPerImage(
        p_, x, x_scale, r, y, [this](const auto&... a) { return Args(a...); }, kernel_.run);
  }

  void run_concatenated(std::span<const ChannelPiece> pieces, const float* r,
                        float* y) const override {
    kernel_.run(WithPieces(Args(p_, nullptr, r, y), pieces));
  }

  std::string name() const override { return std::string("highway:igemm_bf16:") + kernel_.isa; }

 private:
  Conv2dFwdBf16Args Args(const Conv2dProblem& p, const float* x, const float* r, float* y) const {
    Conv2dFwdBf16Args a;
    a.p = &p;
    a.x = x;
    a.w = layout_;
    a.b = b_.empty() ? nullptr : b_.data();
    a.r = r;
    a.y = y;
    a.threads = serial_ ? 1 : num_threads();
    return a;
  }

  const Conv2dProblem p_;
  const Conv2dFwdBf16Kernel kernel_;
  AlignedWords w_;
  Conv2dFwdBf16Weights layout_;
  std::vector<float, AlignedAllocator<float>> b_;
  bool serial_ = false;
};

std::unique_ptr<Conv2dFwdImpl> CreateBf16(const Conv2dProblem& p, const float* w, const float* b) {
  return std::make_unique<Conv2dFwdBf16Plan>(p, w, b, Conv2dFwdBf16KernelForCpu());
}

// Whether bf16 pays where the fp32 kernels are at their best: x is converted once per pixel and
// kernel row, and that cost is repaid per output channel and per pair of the reduction. With
// fewer than 64 input channels per group it pays only with 64 output channels or more and a
// reduction of 128 or more (stems: 7x7 over 3 channels 1.11x, 16x16 patches 1.9x); otherwise the
// fp32 kernels (tap tables, Winograd) ran as fast or faster (2 threads, highway bf16 against
// highway fp32: 1x1 16 -> 16 0.47x, 32 -> 64 0.71x, 40 -> 80 0.87x; 3x3 17 -> 31 0.42x, 16-channel
// groups 0.65x, 4x4/4 4 -> 32 0.66x; 1x1 with 64 or more input channels 1.0-1.8x). Since chunks
// split evenly between the threads (2026-12-06), 1x1 layers with 24 or more input channels and
// 48 or more output channels pay too: 32 -> 64 at 112x112 1.34x, 40 -> 120 1.49x, 24 -> 72 1.27x,
// 58 -> 58 1.37x, 24 -> 58 1.12x, 48 -> 48 at 14x14 1.15x; 24 -> 24 0.81x. Converted as one run
// (FlatBf16Chunks), 1x1 layers of 16 or more channels pay whatever their outputs: 16 -> 64 at
// 112x112 0.96x -> 1.42x, 16 -> 16 1.12x. 3x3 layers under 64 channels stay fp32 (0.71-1.12x),
// as do 1x1 layers of an odd channel count under 24 (15 -> 16 0.56x) or 64 (31 -> 33 0.80x).
bool Bf16Pays(const Conv2dProblem& p) {
  constexpr int64_t kChannels = 64, kMinReduction = 128;
  constexpr int64_t kPointwiseIn = 24, kPointwiseOut = 48, kFlatIn = 16;
  const bool pointwise = p.kh * p.kw == 1;
  return p.ic_per_group() >= kChannels ||
         (p.oc_per_group() >= kChannels && p.kh * p.kw * p.ic_per_group() >= kMinReduction) ||
         (pointwise && p.ic_per_group() >= kPointwiseIn && p.oc_per_group() >= kPointwiseOut) ||
         (FlatBf16Chunks(p) && p.ic >= kFlatIn);
}

constexpr const char* kBf16Env = "CONVKIT_HIGHWAY_BF16";

// Whether this CPU's bf16 dot products outrun its fp32 FMAs. On AMD's Zen 4 vdpbf16ps does twice
// the multiply-adds of an fp32 FMA per cycle; on an Intel Xeon with AVX512-BF16 (Sapphire Rapids
// class, two 512-bit FMA units) half (bench/convkit_peak: 217 against 422 GFLOP/s on 2 threads),
// and the bf16 kernel ran 1.6-2.8x slower than fp32 (1x1 256 -> 64 at 56x56 0.50 against 0.32 ms,
// 3x3 64 -> 64 against Winograd 1.11 against 0.39). Intel's bf16 speed is in AMX, which this
// kernel does not use.
bool Bf16DotOutrunsFma() { return cpu_vendor() != "GenuineIntel"; }

// Depthwise is memory-bound: fp32 runs it as fast. Narrow groups fill a fraction of this kernel's
// lanes, every lane of the fp32 grouped kernel's (4x faster on RegNetY's and ResNeXt's groups of
// 8). Below kMinRowPairs converting x costs more than bf16 saves. The input of a tile is converted
// into a fixed stack buffer: max_pairs bounds the reduction.
const char* RefusesBf16(const Conv2dFwdQuery& q) {
  const Conv2dProblem& p = q.p;
  if (!p.bf16()) return "fpmath strict";
  const VariantMode mode = ReadVariantMode(kBf16Env);
  if (mode == VariantMode::kOff) return "CONVKIT_HIGHWAY_BF16=off";
  if (p.depthwise()) return "depthwise";
  if (Conv2dFwdGroupedVariant().refuses(q) == nullptr) return "narrow groups (grouped runs them)";
  if (RowPairs(p) < kMinRowPairs) return "kernel rows under 8 bf16 pairs";
  if (mode == VariantMode::kAuto && !Bf16Pays(p)) {
    return "under 64 input channels, too few outputs or too short a reduction";
  }
  const Conv2dFwdBf16Kernel kernel = Conv2dFwdBf16KernelForCpu();
  if (kernel.run == nullptr) return "no AVX512-BF16 on this CPU or target";
  if (mode == VariantMode::kAuto && !Bf16DotOutrunsFma()) {
    return "bf16 dot products slower than fp32 FMAs on this CPU (Intel)";
  }
  if (p.kh * RowPairs(p) > kernel.max_pairs) return "reduction too long";
  return nullptr;
}

}  // namespace

Conv2dFwdVariant Conv2dFwdBf16Variant() {
  return {"igemm_bf16", &RefusesBf16, &CreateBf16, nullptr};
}

}  // namespace convkit::internal::highway
