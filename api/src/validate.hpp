// Validation at the boundary (DESIGN §6, STYLE rule 6): every public entry point checks its
// arguments here, once, and throws convkit::Error with "<op>: <argument>: expected ..., given ...".
// Backends then rely on the resulting problem.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include "api/src/problem.hpp"
#include "convkit/error.hpp"
#include "convkit/ops.hpp"
#include "convkit/params.hpp"
#include "convkit/tensor.hpp"

namespace convkit::internal {

// Throws Error(code, "<op>: <arg>: expected <expected>, given <given>").
[[noreturn]] void fail(ErrorCode code, std::string_view op, std::string_view arg,
                       std::string_view expected, std::string_view given);

// Resolves and checks everything about a convolution but the tensors' data: parameter ranges,
// x dims {N >= 0, H, W, C >= 1}, w dims {KH, KW, C_in / groups, C_out}, output size >= 1.
Conv2dProblem make_conv2d_problem(std::string_view op, const Conv2dParams& params,
                                  const Dims& x_dims, const Dims& w_dims, bool has_bias);

// The same for a transposed convolution: parameter ranges (output_padding below stride or
// dilation), x dims, w dims {KH, KW, C_out / groups, C_in}, output size >= 1; returns the problem
// with its equivalent convolution resolved (problem.hpp).
Conv2dTransposeProblem make_conv2d_transpose_problem(std::string_view op,
                                                     const Conv2dTransposeParams& params,
                                                     const Dims& x_dims, const Dims& w_dims,
                                                     bool has_bias);

// The post-ops of a forward convolution (plain or transposed) from the fields of its params; errors
// name params.activation, params.activation_alpha, params.activation_beta, params.post_scale,
// params.post_shift.
PostOps make_post_ops(std::string_view op, Activation activation, float alpha, float beta,
                      bool residual_after_activation, float scale, float shift);

// A residual r of a forward convolution: dims y_dims, non-null data, either exactly y's memory (an
// in-place residual) or disjoint from it, and disjoint from x. Errors name `r`.
void check_residual(std::string_view op, ConstTensorView r, ConstTensorView x, TensorView y,
                    const Dims& y_dims);
// check_residual without x (Conv2d::run_concatenated checks r against the pieces).
void check_residual_against_y(std::string_view op, ConstTensorView r, TensorView y,
                              const Dims& y_dims);

// An input scale of Conv2d::run_scaled: dims {N, 1, 1, C_in} (scale_dims), non-null data when
// it has elements, disjoint from y. Errors name `x_scale`.
void check_input_scale(std::string_view op, ConstTensorView x_scale, TensorView y,
                       const Dims& scale_dims);

// The pieces of Conv2d::run_concatenated for x of x_dims: at least one; each with channels >= 1,
// pixel_stride >= channels and non-null data when x has elements; channels summing to x's C;
// none overlapping y or r (r.data may be null). Errors name `pieces[i]`.
void check_channel_pieces(std::string_view op, std::span<const ChannelPiece> pieces,
                          const Dims& x_dims, TensorView y, ConstTensorView r);

// The same for pooling; applies global pooling and ceil_mode.
Pool2dProblem make_pool2d_problem(std::string_view op, const Pool2dParams& params,
                                  const Dims& x_dims);

// A backward (plain or transposed) convolution's params.activation is kNone and its post_scale
// and post_shift 1 and 0: the caller applies the post-ops' gradient to dy.
void check_backward_activation(std::string_view op, Activation activation, float post_scale,
                               float post_shift);

// Activation dims {N >= 0, H >= 1, W >= 1, C >= 1} whose element count fits in int64_t.
void check_activation_dims(std::string_view op, std::string_view arg, const Dims& dims);

// `given` has dims `expected` (kShapeMismatch otherwise) and non-null data if it has elements.
void check_tensor(std::string_view op, std::string_view arg, ConstTensorView given,
                  const Dims& expected);

// A bias or bias gradient: `size` elements expected, non-null data when size > 0.
void check_vector(std::string_view op, std::string_view arg, const float* data, int64_t size,
                  int64_t expected);

// A memory region a call reads or writes.
struct Region {
  std::string_view arg;
  const float* data;
  int64_t size;  // elements
};

// No output overlaps an input or another output (kInvalidArgument naming both).
void check_no_overlap(std::string_view op, std::initializer_list<Region> outputs,
                      std::initializer_list<Region> inputs);

// The given gradients of a backward convolution as pointers (null when absent), after checking
// each given one (grads.dx dims x_dims, grads.dw dims w_dims, grads.db oc elements) and that none
// overlaps another or one of `inputs`.
struct Conv2dGradPointers {
  float* dx = nullptr;
  float* dw = nullptr;
  float* db = nullptr;
};
Conv2dGradPointers check_conv2d_grads(std::string_view op, const Conv2dGrads& grads,
                                      const Dims& x_dims, const Dims& w_dims, int64_t oc,
                                      std::initializer_list<Region> inputs);

}  // namespace convkit::internal
