// convkit's post-ops (api/src/problem.hpp) as oneDNN post-ops, and the cases oneDNN 2.6.3 cannot
// run as DESIGN §4 says. Found by experiment on its brgconv, jit and gemm kernels (bit patterns of
// NaN, ±0, ±inf and denormals, pinned by tests/onednn_test.cpp):
// - relu (alpha 0), clip, clip_v2, bounded_relu and binary max/min compute max(z, lo) with vmaxps,
//   whose NaN operand gives lo: relu, relu6, clip and hardsigmoid would turn NaN into a bound.
//   relu with a nonzero alpha (leaky_relu) is z > 0 ? z : alpha * z, which keeps NaN; with alpha
//   -0.0 oneDNN takes the alpha == 0 path. No chain of eltwise ops maps both NaN to NaN and -inf
//   to +0, so these are refused.
// - gelu_erf underflows to 0 around z < -6 (gelu(-7) = -9e-12), logistic and swish below z = -87
//   (where the reference gives denormals); the gemm kernel's logistic maps NaN to a number:
//   gelu, sigmoid and silu are refused. tanh, hardswish and leaky_relu pass the dense sweep of
//   tests/equivalence/edge_values_test.cpp (ActivationsOverADenseSweep).
// The residual is a sum post-op (dst += its previous value) before or after the activation: the
// plan copies r into y first unless r is y. (A binary_add post-op reading r would save that copy,
// but oneDNN 2.6's brgconv adds the wrong elements of a full-tensor src1 where windows lie in the
// padding: found by the equivalence grid.)
// - brgconv gets the sum post-op wrong (wrong elements, or a SIGSEGV in its JIT code together with
//   an eltwise post-op) when some output window lies wholly in the padding: the residual
//   primitive of such problems skips brgconv for oneDNN's next implementation.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "api/src/problem.hpp"

namespace convkit::internal::onednn {

// Why oneDNN cannot run the post-ops of `p` as DESIGN §4 says; empty when it can.
std::string PostOpsRefusal(const Conv2dProblem& p);

// True when some output window of `p` reads no input element (lies wholly in the padding).
bool HasWindowInPadding(const Conv2dProblem& p);

// The post-ops of `ops` (accepted by PostOpsRefusal): the activation and the linear map after
// it, and with `residual` a sum (y must hold r when the primitive runs).
dnnl::post_ops MakePostOps(const PostOps& ops, bool residual);

}  // namespace convkit::internal::onednn
