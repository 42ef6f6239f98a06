// The Highway backend's backward convolution: what the target-independent driver (conv2d_bwd.cpp)
// shares with the per-target kernels in conv2d_bwd_data.cc and conv2d_bwd_weights.cc.
//
// Backward data reuses the forward implicit-GEMM microkernel (conv2d_igemm-inl.h) and the forward
// weight layout (Conv2dFwdWeights): dx is a forward-style GEMM over dx pixels whose "weights" are
// w with its input and output channels swapped, so each dx element is one gather-sum.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "api/src/backend.hpp"
#include "api/src/problem.hpp"
#include "backends/highway/conv2d_fwd.hpp"

namespace convkit::internal::highway {

// Backward data. w holds w^T in the forward weight layout: for group g, row (kh * KW + kw) * OCg
// + oc, column ic (of the group's ICg); conv2d_bwd.cpp stores each column block contiguously
// (row_stride == block_cols). `zeros` holds at least OCg zero floats (taps that fall
// outside dy read them). Not owned; dy and dx do not overlap.
struct Conv2dBwdDataArgs {
  const Conv2dProblem* p = nullptr;
  const float* dy = nullptr;
  Conv2dFwdWeights w;
  const float* zeros = nullptr;
  const float* w_hwio = nullptr;  // w as given (HWIO), for the narrow-channel path
  float* dx = nullptr;
  int threads = 1;  // OpenMP threads; 1 runs on the calling thread with no parallel region
};

// Backward weights (dw, HWIO, overwritten) and bias (db, OC floats, overwritten); either output
// may be null. Not owned; inputs and outputs do not overlap.
struct Conv2dBwdWeightsArgs {
  const Conv2dProblem* p = nullptr;
  const float* x = nullptr;
  const float* dy = nullptr;
  float* dw = nullptr;
  float* db = nullptr;
  int threads = 1;
};

// One target's backward data kernel: entry point, vector width in floats, the widest block (in
// vectors) its microkernel holds, target name. VecsPerBlock applies as in the forward pass.
struct Conv2dBwdDataKernel {
  void (*run)(const Conv2dBwdDataArgs& args) = nullptr;
  int64_t lanes = 1;
  int64_t max_vecs = 1;
  const char* isa = "";
};
struct Conv2dBwdWeightsKernel {
  void (*run)(const Conv2dBwdWeightsArgs& args) = nullptr;
  const char* isa = "";
};

// The chosen target's kernels (one HWY_DYNAMIC_DISPATCH each).
Conv2dBwdDataKernel ChooseConv2dBwdDataKernel();
Conv2dBwdWeightsKernel ChooseConv2dBwdWeightsKernel();
// Depthwise (groups == IC == OC; w is HWIO {KH, KW, 1, C}, read in place through w_hwio; w and
// zeros are not read): vector-over-channels kernels for dx (conv2d_bwd_depthwise_data.cc) and for
// dw with db (conv2d_bwd_depthwise_weights.cc). The latter requires dw != null and N > 0, writes db
// when db != null, and its bits do not depend on the thread count.
Conv2dBwdDataKernel ChooseConv2dBwdDepthwiseDataKernel();
Conv2dBwdWeightsKernel ChooseConv2dBwdDepthwiseWeightsKernel();

// The backend's plan: computes the wanted gradients, each overwritten, dw and db zeros when
// p.n == 0. Depthwise problems run the depthwise kernels ("highway:conv_bwd_depthwise:<isa>"); the
// others ("highway:conv_bwd:<isa>") read w transposed into column blocks, made at creation (and by
// set_weights) when dx is wanted. Keeps a copy of w only when dx is wanted. Runs still allocate
// kernel scratch: the depthwise kernels' per-chunk dw partials and tap lists, the narrow-channel
// data kernel's w^T and tile, the weights kernel's packing panels (README, "Plans and allocation").
std::unique_ptr<Conv2dBwdImpl> CreateConv2dBwd(const Conv2dProblem& p, const float* w,
                                               const Conv2dGradsWanted& wanted);

}  // namespace convkit::internal::highway
