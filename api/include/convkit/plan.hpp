// Plans: created once for given parameters, input dims and backend, then run many times (DESIGN
// §3), like oneDNN primitives, XNNPACK operators or FFTW plans.
//
// Creation validates everything, chooses the backend and implementation, and packs the weights; it
// keeps no reference to the given w and b. run() checks only that x and y have the planned dims and
// distinct, non-null data; it is const, allocates nothing and may be called from several threads at
// once on distinct outputs.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "convkit/params.hpp"
#include "convkit/tensor.hpp"

namespace convkit {

namespace internal {
struct Conv2dPlanState;
struct Conv2dTransposePlanState;
struct Pool2dPlanState;
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

  const Dims& x_dims() const;
  const Dims& y_dims() const;
  // The implementation chosen, "backend:variant:isa", e.g. "highway:direct:AVX3".
  const std::string& impl_name() const;

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

}  // namespace convkit
