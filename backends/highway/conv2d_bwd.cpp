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

// w^T per group in the forward layout: wt[((kh * KW + kw) * OCg + oc) * IC + g * ICg + ic] =
// w[((kh * KW + kw) * ICg + ic) * OC + g * OCg + oc], i.e. HWIO of the problem with IC and OC
// swapped, read by the backward-data kernel as the forward one-shot reads HWIO.
AlignedFloats TransposeWeights(const Conv2dProblem& p, const float* w) {
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group();
  AlignedFloats wt(static_cast<size_t>(p.kh * p.kw * icg * p.oc));
  for (int64_t tap = 0; tap < p.kh * p.kw; ++tap) {
    for (int64_t g = 0; g < p.groups; ++g) {
      for (int64_t ic = 0; ic < icg; ++ic) {
        const float* src = w + (tap * icg + ic) * p.oc + g * ocg;
        float* dst = wt.data() + tap * ocg * p.ic + g * icg + ic;
        for (int64_t oc = 0; oc < ocg; ++oc) dst[oc * p.ic] = src[oc];
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
    const AlignedFloats wt = TransposeWeights(p, w);
    const AlignedFloats zeros(static_cast<size_t>(std::max<int64_t>(p.oc, 1)), 0.0f);
    const int64_t icg = p.ic_per_group();
    const Conv2dFwdKernel shape{nullptr, kernel.lanes, kernel.max_vecs, kernel.isa};
    const int64_t block_cols =
        VecsPerBlock(shape, icg, p.kh * p.kw * p.oc_per_group()) * kernel.lanes;
    Conv2dBwdDataArgs a;
    a.p = &p;
    a.dy = dy;
    a.w = {wt.data(), p.ic, icg, block_cols, block_cols};
    a.zeros = zeros.data();
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
