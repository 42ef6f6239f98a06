// Forward convolution plans and one-shot calls of the Highway backend: kernel choice, weight
// packing, threading policy. Target-independent; the vector code is in conv2d_fwd_*.cc.
#include "backends/highway/conv/conv2d_fwd.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/highway/conv/conv2d_fwd_bf16.hpp"
#include "backends/highway/conv/conv2d_fwd_grouped.hpp"
#include "backends/highway/conv/conv2d_fwd_winograd.hpp"
#include "convkit/tensor.hpp"

namespace convkit::internal::highway {
namespace {

using AlignedFloats = std::vector<float, AlignedAllocator<float>>;

// Below this many vector FMAs (~2.5 us on one core at one FMA per cycle) a call runs on the calling
// thread: waking the OpenMP team costs ~1 us, as much as it would save. Counted in vectors, not
// FLOPs, because that is what the time follows when few lanes are busy: 15 -> 16 1x1 at 2x31x29
// (0.9 MFLOP, 27 K FMAs) ran at 70 GFLOP/s on one thread, 1.8x that on two.
constexpr double kSerialVectorFmas = 1 << 13;

int ThreadsFor(const Conv2dProblem& p, const Conv2dFwdKernel& kernel) {
  // The depthwise kernel vectorises over all channels, the implicit GEMM over a group's outputs.
  const int64_t cols = p.depthwise() ? p.oc : p.oc_per_group();
  const int64_t col_sets = p.depthwise() ? 1 : p.groups;
  const double fmas = static_cast<double>(p.n * p.oh * p.ow) *
                      static_cast<double>(col_sets * ((cols + kernel.lanes - 1) / kernel.lanes)) *
                      static_cast<double>(p.kh * p.kw * p.ic_per_group());
  return fmas < kSerialVectorFmas ? 1 : num_threads();
}

// The depthwise kernel reads w as HWIO {KH, KW, 1, C}: row (kh, kw) of C floats.
Conv2dFwdWeights DepthwiseLayout(const Conv2dProblem& p, const float* w) {
  return {w, p.oc, 0, 0, p.oc};
}

// HWIO weights read in place: row r of group g is w + r * OC + g * OCg.
Conv2dFwdWeights HwioLayout(const Conv2dProblem& p, const float* w, int64_t block_cols) {
  return {w, p.oc, p.oc_per_group(), block_cols, block_cols};
}

// How many zero floats Conv2dFwdArgs::zeros needs: a row of KW taps over all input channels.
int64_t ZerosFor(const Conv2dProblem& p) { return p.kw * p.ic; }

int64_t K(const Conv2dProblem& p) { return p.kh * p.kw * p.ic_per_group(); }

// Packs HWIO weights into panels: group g, block j, row r, column c at
// ((g * blocks + j) * K + r) * block_cols + c, zero for columns at or past OCg. A panel is read
// front to back by one microkernel tile.
AlignedFloats PackWeights(const Conv2dProblem& p, const float* w, int64_t block_cols,
                          Conv2dFwdWeights* layout) {
  const int64_t k = K(p);
  const int64_t ocg = p.oc_per_group();
  const int64_t blocks = (ocg + block_cols - 1) / block_cols;
  AlignedFloats packed(static_cast<size_t>(p.groups * blocks * k * block_cols), 0.0f);
  for (int64_t g = 0; g < p.groups; ++g) {
    for (int64_t j = 0; j < blocks; ++j) {
      const int64_t cols = std::min(block_cols, ocg - j * block_cols);
      float* panel = packed.data() + (g * blocks + j) * k * block_cols;
      for (int64_t r = 0; r < k; ++r) {
        const float* src = w + r * p.oc + g * ocg + j * block_cols;
        std::copy(src, src + cols, panel + r * block_cols);
      }
    }
  }
  *layout = {packed.data(), block_cols, blocks * k * block_cols, k * block_cols, block_cols};
  return packed;
}

// A tap table (Conv2dFwdTaps) and what it needs.
struct TapTable {
  std::vector<int32_t> entries;
  std::vector<int32_t> tile_begin;
  int64_t rows = 0;
  int64_t zeros = 0;  // floats of zeros the longest entry reads
};

// Tap tables are for small-channel problems: with ICg <= 32 a tap is only a few FMA steps per
// pixel, so computing its offsets (PixelTile) costs as much as the FMAs. Larger ICg, groups (whose
// slices of x are not consecutive across taps) and pointwise GEMMs (no index arithmetic) keep the
// kernel's own path; so do tables past 4 MiB. A table is read once per run, front to back (about
// 100 bytes per tile of ~650 FMA cycles), so its size matters little: 224x224 3 -> 64 3x3 ran
// 1.1x faster with its ~1 MiB table than through PixelTile, 7x7/2 3 -> 64 1.05x.
constexpr int64_t kTapTableMaxChannels = 32;
constexpr int64_t kTapTableMaxInts = int64_t{1} << 20;

bool WantsTapTable(const Conv2dProblem& p, int64_t rows) {
  if (rows <= 0 || p.groups != 1 || p.ic > kTapTableMaxChannels) return false;
  if (p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad.top == 0 &&
      p.pad.left == 0 && p.pad.bottom == 0 && p.pad.right == 0) {
    return false;
  }
  if (p.n * p.ih * p.iw * p.ic >= (int64_t{1} << 31)) return false;
  const int64_t tiles = (p.n * p.oh * p.ow + rows - 1) / rows;
  // With dense columns the taps of a kernel row merge into one entry, except near the padding.
  const int64_t entries = p.dilation_w == 1 ? std::min(2 * p.kh, p.kh * p.kw) : p.kh * p.kw;
  return tiles * entries * (Conv2dFwdTaps::kEntryHeader + rows) <= kTapTableMaxInts;
}

// Builds the table for tiles of `rows` pixels, merging consecutive taps whose input is consecutive
// for every pixel (or in the padding for every pixel reading it).
TapTable BuildTapTable(const Conv2dProblem& p, int64_t rows) {
  TapTable t;
  t.rows = rows;
  const int64_t m_end = p.n * p.oh * p.ow;
  const int64_t tiles = (m_end + rows - 1) / rows;
  const int64_t entry_ints = Conv2dFwdTaps::kEntryHeader + rows;
  std::vector<int64_t> off(static_cast<size_t>(rows));
  t.tile_begin.push_back(0);
  for (int64_t tile = 0; tile < tiles; ++tile) {
    int64_t open = -1;  // index of the entry the next tap may extend, or -1
    for (int64_t kh = 0; kh < p.kh; ++kh) {
      for (int64_t kw = 0; kw < p.kw; ++kw) {
        bool any = false;
        for (int64_t i = 0; i < rows; ++i) {
          const int64_t m = std::min(tile * rows + i, m_end - 1);
          const int64_t n = m / (p.oh * p.ow);
          const int64_t ih = (m / p.ow) % p.oh * p.stride_h - p.pad.top + kh * p.dilation_h;
          const int64_t iw = m % p.ow * p.stride_w - p.pad.left + kw * p.dilation_w;
          const bool inside = ih >= 0 && ih < p.ih && iw >= 0 && iw < p.iw;
          off[i] = inside ? ((n * p.ih + ih) * p.iw + iw) * p.ic : -1;
          any |= inside;
        }
        if (!any) {  // skipped; the next tap's weight rows do not follow the open entry's
          open = -1;
          continue;
        }
        if (open >= 0) {
          const int32_t* e = t.entries.data() + open * entry_ints;
          const int64_t steps = e[1];
          bool extends = true;
          for (int64_t i = 0; i < rows && extends; ++i) {
            const int64_t prev = e[Conv2dFwdTaps::kEntryHeader + i];
            extends = prev < 0 ? off[i] < 0 : off[i] == prev + steps;
          }
          if (extends) {
            t.entries[static_cast<size_t>(open * entry_ints + 1)] += static_cast<int32_t>(p.ic);
            t.zeros = std::max(t.zeros, steps + p.ic);
            continue;
          }
        }
        open = static_cast<int64_t>(t.entries.size()) / entry_ints;
        t.entries.push_back(static_cast<int32_t>((kh * p.kw + kw) * p.ic));
        t.entries.push_back(static_cast<int32_t>(p.ic));
        for (int64_t i = 0; i < rows; ++i) t.entries.push_back(static_cast<int32_t>(off[i]));
        t.zeros = std::max(t.zeros, p.ic);
      }
    }
    t.tile_begin.push_back(static_cast<int32_t>(t.entries.size() / entry_ints));
  }
  return t;
}

std::string ImplName(const char* variant, const Conv2dFwdKernel& kernel) {
  return std::string("highway:") + variant + ":" + kernel.isa;
}

class Conv2dFwdPlan final : public Conv2dFwdImpl {
 public:
  Conv2dFwdPlan(const Conv2dProblem& p, const float* w, const float* b)
      : p_(p),
        depthwise_(p.depthwise()),
        kernel_(depthwise_ ? Conv2dFwdDepthwiseKernel() : Conv2dFwdIgemmKernel()),
        threads_(ThreadsFor(p, kernel_)) {
    int64_t zeros = ZerosFor(p);
    if (depthwise_) {
      w_.assign(w, w + p.kh * p.kw * p.oc);
      layout_ = DepthwiseLayout(p, w_.data());
    } else {
      const int64_t vecs = VecsPerBlock(kernel_, p.oc_per_group(), K(p));
      w_ = PackWeights(p, w, vecs * kernel_.lanes, &layout_);
      const int64_t rows = vecs <= 4 ? kernel_.rows[vecs - 1] : 0;
      if (WantsTapTable(p, rows)) {
        taps_ = BuildTapTable(p, rows);
        zeros = std::max(zeros, taps_.zeros);
      }
    }
    zeros_.assign(static_cast<size_t>(zeros), 0.0f);
    if (b != nullptr) b_.assign(b, b + p.oc);
  }

  void run(const float* x, const float* r, float* y) const override {
    Conv2dFwdArgs a;
    a.p = &p_;
    a.x = x;
    a.w = layout_;
    a.b = b_.empty() ? nullptr : b_.data();
    a.zeros = zeros_.data();
    a.r = r;
    a.y = y;
    a.threads = threads_ > 1 ? num_threads() : 1;
    if (!taps_.entries.empty()) {
      a.taps = {taps_.entries.data(), taps_.tile_begin.data(), taps_.rows};
    }
    kernel_.run(a);
  }

  std::string name() const override {
    return ImplName(depthwise_ ? "depthwise" : "igemm", kernel_);
  }

 private:
  const Conv2dProblem p_;
  const bool depthwise_;
  const Conv2dFwdKernel kernel_;
  AlignedFloats w_;
  Conv2dFwdWeights layout_;
  AlignedFloats b_;
  AlignedFloats zeros_;
  TapTable taps_;  // empty unless WantsTapTable
  const int threads_;
};

}  // namespace

int64_t VecsPerBlock(const Conv2dFwdKernel& kernel, int64_t ocg, int64_t /*k*/) {
  const int64_t vecs = (ocg + kernel.lanes - 1) / kernel.lanes;
  if (vecs <= kernel.max_vecs) return vecs;
  // Prefer the widest block that divides the channels evenly (no narrow, slower tail block).
  for (int64_t v = kernel.max_vecs; v >= 2; --v) {
    if (vecs % v == 0) return v;
  }
  return kernel.max_vecs;
}

std::unique_ptr<Conv2dFwdImpl> CreateConv2dFwd(const Conv2dProblem& p, const float* w,
                                               const float* b) {
  // fpmath = bf16 prefers the bf16 kernel, even over Winograd; without it, fp32 runs.
  if (auto bf16 = CreateConv2dFwdBf16(p, w, b)) return bf16;
  if (UseWinograd(p, /*one_shot=*/false)) return CreateConv2dFwdWinograd(p, w, b);
  if (UseGrouped(p)) return CreateConv2dFwdGrouped(p, w, b, ThreadsFor(p, Conv2dFwdIgemmKernel()));
  return std::make_unique<Conv2dFwdPlan>(p, w, b);
}

void Conv2dFwdOneShot(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                      const float* r, float* y, std::string* impl_name) {
  // bf16 needs its weights packed as bf16 pairs: a one-shot call packs them, as a plan does.
  if (auto bf16 = CreateConv2dFwdBf16(p, w, b)) {
    bf16->run(x, r, y);
    if (impl_name != nullptr) *impl_name = bf16->name();
    return;
  }
  if (UseWinograd(p, /*one_shot=*/true)) {
    return Conv2dFwdWinogradOneShot(p, x, w, b, r, y, impl_name);
  }
  // Taps in the padding read this zero row; 4096 floats cover every common layer.
  static const AlignedFloats kZeros(4096, 0.0f);
  AlignedFloats more_zeros;
  const float* zeros = kZeros.data();
  if (ZerosFor(p) > static_cast<int64_t>(kZeros.size())) {
    more_zeros.assign(static_cast<size_t>(ZerosFor(p)), 0.0f);
    zeros = more_zeros.data();
  }
  const bool depthwise = p.depthwise();
  const Conv2dFwdKernel kernel = depthwise ? Conv2dFwdDepthwiseKernel() : Conv2dFwdIgemmKernel();
  Conv2dFwdArgs a;
  a.p = &p;
  a.x = x;
  a.w = depthwise ? DepthwiseLayout(p, w)
                  : HwioLayout(p, w, VecsPerBlock(kernel, p.oc_per_group(), K(p)) * kernel.lanes);
  a.b = b;
  a.zeros = zeros;
  a.r = r;
  a.y = y;
  a.threads = ThreadsFor(p, kernel);
  kernel.run(a);
  if (impl_name != nullptr) *impl_name = ImplName(depthwise ? "depthwise" : "igemm", kernel);
}

}  // namespace convkit::internal::highway
