// Backward convolution of the Highway backend: weight transposition, threading policy, and the
// calls into the per-target kernels (conv2d_bwd_data.cc, conv2d_bwd_weights.cc).
#include "backends/highway/conv2d_bwd.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "api/src/backend.hpp"
#include "convkit/tensor.hpp"

namespace convkit::internal::highway {
namespace {

using AlignedFloats = std::vector<float, AlignedAllocator<float>>;

// Below this many FLOPs a call runs on the calling thread (as conv2d_fwd.cpp: an OpenMP region
// costs ~1-3 us, 1 MFLOP ~5 us on one core).
constexpr double kSerialFlops = 1 << 20;

// w^T in column blocks of block_cols input channels, each block contiguous: for group g and
// block b, row tap * OCg + oc holds w(tap, ic, g * OCg + oc) for the block's ic (zeros past ICg).
// A block is what one backward-data tile reads, row after row at a 64-float (256 B) stride: a
// row stride of IC floats instead (2 KiB at IC = 512) maps the rows to a few of the L1D's 64 sets
// and evicts them between tiles (res5 3x3 s2: 0.66x oneDNN).
struct BlockedWeights {
  AlignedFloats data;
  int64_t block_stride = 0, group_stride = 0;
};
BlockedWeights TransposeWeights(const Conv2dProblem& p, const float* w, int64_t block_cols) {
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group(), taps = p.kh * p.kw;
  const int64_t blocks = (icg + block_cols - 1) / block_cols;
  BlockedWeights wt;
  wt.block_stride = taps * ocg * block_cols;
  wt.group_stride = blocks * wt.block_stride;
  wt.data.assign(static_cast<size_t>(p.groups * wt.group_stride), 0.0f);
  for (int64_t g = 0; g < p.groups; ++g) {
    for (int64_t tap = 0; tap < taps; ++tap) {
      for (int64_t ic = 0; ic < icg; ++ic) {
        const float* src = w + (tap * icg + ic) * p.oc + g * ocg;
        float* dst = wt.data.data() + g * wt.group_stride + (ic / block_cols) * wt.block_stride +
                     tap * ocg * block_cols + ic % block_cols;
        for (int64_t oc = 0; oc < ocg; ++oc) dst[oc * block_cols] = src[oc];
      }
    }
  }
  return wt;
}

}  // namespace

void Conv2dBwd(const Conv2dProblem& p, const float* x, const float* w, const float* dy, float* dx,
               float* dw, float* db, std::string* impl_name) {
  const int threads = p.flops() < kSerialFlops ? 1 : num_threads();
  const char* isa = "";
  if (dx != nullptr) {
    const Conv2dBwdDataKernel kernel = ChooseConv2dBwdDataKernel();
    isa = kernel.isa;
    const AlignedFloats zeros(static_cast<size_t>(std::max<int64_t>(p.oc, 1)), 0.0f);
    const int64_t icg = p.ic_per_group();
    const Conv2dFwdKernel shape{nullptr, kernel.lanes, kernel.max_vecs, kernel.isa};
    const int64_t block_cols =
        VecsPerBlock(shape, icg, p.kh * p.kw * p.oc_per_group()) * kernel.lanes;
    const BlockedWeights wt = TransposeWeights(p, w, block_cols);
    Conv2dBwdDataArgs a;
    a.p = &p;
    a.dy = dy;
    a.w = {wt.data.data(), block_cols, wt.group_stride, wt.block_stride, block_cols};
    a.zeros = zeros.data();
    a.w_hwio = w;
    a.dx = dx;
    a.threads = threads;
    kernel.run(a);
  }
  if (dw != nullptr || db != nullptr || dx == nullptr) {  // nothing asked: still name the ISA
    const Conv2dBwdWeightsKernel kernel = ChooseConv2dBwdWeightsKernel();
    isa = kernel.isa;
    Conv2dBwdWeightsArgs a;
    a.p = &p;
    a.x = x;
    a.dy = dy;
    a.dw = dw;
    a.db = db;
    a.threads = threads;
    kernel.run(a);
  }
  if (impl_name != nullptr) *impl_name = std::string("highway:conv_bwd:") + isa;
}

}  // namespace convkit::internal::highway
