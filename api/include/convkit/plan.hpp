// Plans: created once for given parameters, input dims and backend, then run many times (DESIGN
// §3), like oneDNN primitives, XNNPACK operators or FFTW plans.
//
// Creation validates everything, chooses the backend and implementation, and packs the weights; it
// keeps no reference to the given w and b. run() checks only that its tensors have the planned dims
// and distinct, non-null data; it is const and may be called from several threads at once on
// distinct outputs. run() allocates nothing, with the exceptions the README lists under "Plans and
// allocation" (scratch that some Highway kernels still allocate per run or per calling thread).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "convkit/ops.hpp"
#include "convkit/params.hpp"
#include "convkit/tensor.hpp"

namespace convkit {

namespace internal {
struct Conv2dPlanState;
struct Conv2dTransposePlanState;
struct Pool2dPlanState;
struct Conv2dBackwardPlanState;
struct Pool2dBackwardPlanState;
}  // namespace internal

class Conv2d {
 public:
  // w {KH, KW, C_in / groups, C_out}; b has C_out elements or is empty. `backend` as in ops.hpp.
  Conv2d(const Conv2dParams& params, const Dims& x_dims, ConstTensorView w,
         std::span<const float> b = {}, std::string_view backend = {});
  Conv2d(Conv2d&&) noexcept;
  Conv2d& operator=(Conv2d&&) noexcept;
  ~Conv2d();

  // y = activation(conv2d(x, w) + b) with x of x_dims() and y of y_dims().
  void run(ConstTensorView x, TensorView y) const;
  // The same with a residual r of y_dims(), added before or after the activation as
  // params.residual_after_activation says (ops.hpp). r.data may equal y.data; otherwise r must not
  // overlap y, and never x.
  void run(ConstTensorView x, ConstTensorView r, TensorView y) const;
  // y = activation(conv2d(x * x_scale, w) + b [+ r]): x_scale {N, 1, 1, C_in} multiplies every
  // pixel's input channels, per image -- a squeeze-and-excitation block's gate, applied inside
  // the convolution that follows it instead of in a pass over x. r is an empty view (null data)
  // for no residual, else as in run(x, r, y). x_scale must not overlap y. Highway fuses the scale
  // into 1x1 stride-1 convolutions on the implicit GEMM (and on its bf16 kernel, without groups);
  // every other plan scales a copy of x, which it allocates per run.
  void run_scaled(ConstTensorView x, ConstTensorView x_scale, ConstTensorView r,
                  TensorView y) const;
  // run(x, r, y) with x the concatenation of `pieces` along C (their channels sum to C_in), so
  // that the Concat before a 1x1 layer (YOLO's C2f, SPPF, FPN necks) is never written out.
  // r: an empty view for no residual; it must not overlap a piece. Highway reads the pieces in
  // place in 1x1 stride-1 convolutions without groups on the implicit GEMM and its bf16 kernel
  // (fuses_concat()); every other plan concatenates them into a copy, allocated per run.
  void run_concatenated(std::span<const ChannelPiece> pieces, ConstTensorView r,
                        TensorView y) const;

  const Dims& x_dims() const;
  const Dims& y_dims() const;
  // The implementation chosen, "backend:variant:isa", e.g. "highway:igemm:AVX3".
  const std::string& impl_name() const;
  // Whether run_scaled() applies x_scale inside the convolution (no copy of x).
  bool fuses_x_scale() const;
  // Whether run_concatenated() reads the pieces in place (no copy of x).
  bool fuses_concat() const;

 private:
  std::unique_ptr<internal::Conv2dPlanState> state_;
};

// The transposed convolution (ops.hpp's conv2d_transpose_forward) as a plan.
class Conv2dTranspose {
 public:
  // w {KH, KW, C_out / groups, C_in}; b has C_out elements or is empty. `backend` as in ops.hpp.
  Conv2dTranspose(const Conv2dTransposeParams& params, const Dims& x_dims, ConstTensorView w,
                  std::span<const float> b = {}, std::string_view backend = {});
  Conv2dTranspose(Conv2dTranspose&&) noexcept;
  Conv2dTranspose& operator=(Conv2dTranspose&&) noexcept;
  ~Conv2dTranspose();

  // y = activation(conv2d_transpose(x, w) + b) with x of x_dims() and y of y_dims().
  void run(ConstTensorView x, TensorView y) const;
  // The same with a residual r of y_dims(), as conv2d_transpose_forward's (r may be y).
  void run(ConstTensorView x, ConstTensorView r, TensorView y) const;

  const Dims& x_dims() const;
  const Dims& y_dims() const;
  // The implementation chosen, "backend:variant:isa", e.g. "highway:conv_bwd:AVX3".
  const std::string& impl_name() const;

 private:
  std::unique_ptr<internal::Conv2dTransposePlanState> state_;
};

class Pool2d {
 public:
  Pool2d(const Pool2dParams& params, const Dims& x_dims, std::string_view backend = {});
  Pool2d(Pool2d&&) noexcept;
  Pool2d& operator=(Pool2d&&) noexcept;
  ~Pool2d();

  void run(ConstTensorView x, TensorView y) const;

  const Dims& x_dims() const;
  const Dims& y_dims() const;
  const std::string& impl_name() const;

 private:
  std::unique_ptr<internal::Pool2dPlanState> state_;
};

// The gradients of y = conv2d(x, w) + b (params.activation must be kNone, as for
// conv2d_backward): those `wanted` at creation, computed by every run. Holds w in the layouts the
// backward kernels read (Highway: w transposed into column blocks; oneDNN: reordered for its
// backward-data primitive, whose primitives are created once).
class Conv2dBackward {
 public:
  // w {KH, KW, C_in / groups, C_out}; at least one gradient wanted. `backend` as in ops.hpp.
  Conv2dBackward(const Conv2dParams& params, const Dims& x_dims, ConstTensorView w,
                 Conv2dGradsWanted wanted = {}, std::string_view backend = {});
  Conv2dBackward(Conv2dBackward&&) noexcept;
  Conv2dBackward& operator=(Conv2dBackward&&) noexcept;
  ~Conv2dBackward();

  // Replaces the weights (dims w_dims()) as a new plan would, e.g. after an optimizer step. Not
  // thread-safe: no run() of this plan may be in progress or start during the call. Allocates
  // nothing. On error (dims, null data) the plan keeps its weights.
  void set_weights(ConstTensorView w);

  // Writes the wanted gradients given dy = dL/dy (dims y_dims()): grads holds exactly the wanted
  // ones, dx of x_dims(), dw of w_dims(), db of C_out elements; each is overwritten (with N == 0,
  // dw and db are zeros). x (x_dims()) is read only for dw: without dw it may be an empty view
  // (null data). Outputs must not overlap each other, x or dy.
  void run(ConstTensorView x, ConstTensorView dy, const Conv2dGrads& grads) const;

  const Dims& x_dims() const;
  const Dims& w_dims() const;
  const Dims& y_dims() const;
  const Conv2dGradsWanted& wanted() const;
  const std::string& impl_name() const;

 private:
  std::unique_ptr<internal::Conv2dBackwardPlanState> state_;
};

// dx of y = pool2d(x) given dy: as pool2d_backward. x is read by max pooling only (its dims are
// checked in both modes).
class Pool2dBackward {
 public:
  Pool2dBackward(const Pool2dParams& params, const Dims& x_dims, std::string_view backend = {});
  Pool2dBackward(Pool2dBackward&&) noexcept;
  Pool2dBackward& operator=(Pool2dBackward&&) noexcept;
  ~Pool2dBackward();

  // x of x_dims(), dy of y_dims(), dx of x_dims() (overwritten; must not overlap x or dy).
  void run(ConstTensorView x, ConstTensorView dy, TensorView dx) const;

  const Dims& x_dims() const;
  const Dims& y_dims() const;
  const std::string& impl_name() const;

 private:
  std::unique_ptr<internal::Pool2dBackwardPlanState> state_;
};

}  // namespace convkit
