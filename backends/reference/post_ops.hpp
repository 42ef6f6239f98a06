// The reference post-ops of a forward convolution (DESIGN §3-§4), one output element at a time:
// shared by the plain and the transposed convolution, and the ground truth of every backend's
// vector epilogue.
#pragma once

#include "api/src/problem.hpp"

namespace convkit::internal::reference {

// The activation of z. relu, relu6, clip and leaky_relu are exact in float; the others are
// evaluated in double and rounded once to float. NaN maps to NaN; a zero keeps its sign where the
// activation passes z through (relu(-0) = -0).
float activate(const PostOps& ops, float z);

// One output element: z is the convolution's sum plus bias, r the element's residual (null
// without one). Returns L(act(z + r)), or L(act(z)) + r with ops.residual_after_activation, each
// addition rounded to float, where L(v) = fma(ops.scale, v, ops.shift) when ops.has_linear() (one
// rounding, as oneDNN's eltwise_linear) and v otherwise (which keeps -0).
float apply_post_ops(const PostOps& ops, float z, const float* r);

}  // namespace convkit::internal::reference
