// The reference backend's kernels: plain loops written to be read, mirroring the seed assignment
// ("Convolutional Neural Networks: Step by Step") step by step. They are the ground truth every
// other backend is tested against, so they favour obviousness over speed (STYLE rule 2).
//
// Every kernel receives a validated problem (api/src/problem.hpp) and dense buffers that do not
// overlap: NHWC activations, HWIO weights. Each output element is one accumulator summed in a fixed
// order, so results do not depend on the thread count.
#pragma once

#include <cassert>
#include <cstdint>

#include "api/src/problem.hpp"

namespace convkit::internal::reference {

// The offset of element (i0, i1, i2, i3) of a dense row-major 4-D tensor with extents
// {d0, d1, d2, d3}: NHWC activations {n, h, w, c} and HWIO weights {kh, kw, ic, oc} alike. Debug
// builds check every index against its extent.
class Offset4d {
 public:
  Offset4d(int64_t d0, int64_t d1, int64_t d2, int64_t d3) : d0_(d0), d1_(d1), d2_(d2), d3_(d3) {}
  int64_t operator()(int64_t i0, int64_t i1, int64_t i2, int64_t i3) const {
    assert(0 <= i0 && i0 < d0_ && 0 <= i1 && i1 < d1_ && 0 <= i2 && i2 < d2_ && 0 <= i3 &&
           i3 < d3_);
    return ((i0 * d1_ + i1) * d2_ + i2) * d3_ + i3;
  }

 private:
  int64_t d0_, d1_, d2_, d3_;
};

// The OpenMP threads for a loop doing about `work` multiply-adds: 1 below ~64k, where starting a
// parallel region costs more than it saves (and much more on an oversubscribed machine).
int threads_for(double work);

// y = the post-ops of conv2d(x, w) + b (post_ops.hpp). b is null when !p.has_bias; r, the residual,
// is null or has y's dims and may equal y.
void conv2d_fwd(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                const float* r, float* y);

// The gradients of conv2d_fwd (activation kNone) given dy; each overwrites its output.
// dx: the transposed convolution of dy with w.
void conv2d_bwd_data(const Conv2dProblem& p, const float* w, const float* dy, float* dx);
// dw: the correlation of x with dy; zeros when p.n == 0.
void conv2d_bwd_weights(const Conv2dProblem& p, const float* x, const float* dy, float* dw);
// db: the sum of dy over n, oh, ow; zeros when p.n == 0.
void conv2d_bwd_bias(const Conv2dProblem& p, const float* dy, float* db);

// y = post_ops(conv2d_transpose(x, w) + b, r): x {n, h, w, c_in}, w {kh, kw, c_out / groups,
// c_in}, y {n, oh, ow, c_out} (Conv2dTransposeProblem's accessors). b is null when !p.has_bias; r
// (y's dims) is null without a residual and may equal y.
void conv2d_transpose_fwd(const Conv2dTransposeProblem& p, const float* x, const float* w,
                          const float* b, const float* r, float* y);

// One pooling window clipped to the input: it reads input rows [h_begin, h_end) and columns
// [w_begin, w_end), never empty (validation keeps every pad smaller than the window). `divisor` is
// what average pooling divides by: the in-input element count, or with count_include_pad the
// window clipped to the padded input (PyTorch's rule).
struct PoolWindow {
  int64_t h_begin, h_end;
  int64_t w_begin, w_end;
  int64_t divisor;
};
PoolWindow pool_window(const Pool2dProblem& p, int64_t oh, int64_t ow);

// The seed's create_mask_from_window, as an index: the offset in x of the element of image n,
// channel c that max pooling selects in `window` -- the first maximal element in row-major window
// order, or the first NaN if there is one. (The seed's mask marks every tied element; we follow
// PyTorch and oneDNN and pick one, DESIGN §4.) Forward and backward both use it, so the gradient
// always goes to the element whose value the forward pass output.
int64_t create_mask_from_window(const Pool2dProblem& p, const float* x, int64_t n, int64_t c,
                                const PoolWindow& window);

// y = max or average pooling of x.
void pool2d_fwd(const Pool2dProblem& p, const float* x, float* y);
// dx = the gradient of pool2d_fwd given dy; overwritten. x is read by max pooling only.
void pool2d_bwd(const Pool2dProblem& p, const float* x, const float* dy, float* dx);

}  // namespace convkit::internal::reference
