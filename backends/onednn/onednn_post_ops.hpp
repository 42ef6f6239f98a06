// convkit's post-ops (api/src/problem.hpp) as oneDNN post-ops, and the cases oneDNN 2.6.3 cannot
// run as DESIGN §4 says. Found by experiment on its brgconv, jit and gemm kernels (bit patterns of
// NaN, ±0, ±inf and denormals, pinned by tests/onednn_test.cpp):
// - relu (alpha 0), clip, clip_v2, bounded_relu and binary max/min compute max(z, lo) with vmaxps,
//   whose NaN operand gives lo: relu, relu6, clip and hardsigmoid would turn NaN into a bound.
//   relu with a nonzero alpha (leaky_relu) is z > 0 ? z : alpha * z, which keeps NaN; with alpha
//   -0.0 oneDNN takes the alpha == 0 path. No chain of eltwise ops maps both NaN to NaN and -inf
//   to +0, so these are refused.
// - gelu_erf underflows to 0 around z < -6 (gelu(-7) = -9e-12): refused.
// The residual is a binary_add post-op reading r (a run-time argument): before the activation or
// after it.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "api/src/problem.hpp"

namespace convkit::internal::onednn {

// Why oneDNN cannot run `ops` as DESIGN §4 says; empty when it can.
std::string PostOpsRefusal(const PostOps& ops);

// The post-ops of `ops` (accepted by PostOpsRefusal) for a primitive with y_desc as destination:
// the activation, and with `residual` a binary_add of a tensor of y_desc, whose post-op index
// *residual_index receives (for DNNL_ARG_ATTR_MULTIPLE_POST_OP).
dnnl::post_ops MakePostOps(const PostOps& ops, bool residual, const dnnl::memory::desc& y_desc,
                           int* residual_index);

}  // namespace convkit::internal::onednn
