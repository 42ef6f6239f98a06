// The oneDNN backend's registration point (STYLE rule 1): what it runs, why it refuses the rest,
// and the entry points the registry calls. The work is in onednn_conv.cpp and onednn_pool.cpp.
//
// Where oneDNN 2.6.3 departs from DESIGN §4 (each found by experiment, each pinned by a test in
// tests/onednn_test.cpp):
// - refused: average pooling with count_include_pad where ceil_mode's last window reaches past the
//   padded input (oneDNN divides it by the full window, DESIGN §4 by the clipped one);
// - repaired: max pooling on inputs holding NaN, -inf or -FLT_MAX takes an exact path
//   (onednn_pool_exact.hpp), at the cost of one scan of x per call;
// - refused: post-ops oneDNN's kernels cannot run as DESIGN §4 says (onednn_post_ops.hpp: relu,
//   relu6, clip and hardsigmoid, whose clamps turn NaN into a bound; gelu's accuracy).
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "api/src/backend.hpp"
#include "backends/onednn/onednn_ops.hpp"
#include "backends/onednn/onednn_post_ops.hpp"

namespace convkit::internal {
namespace {

// oneDNN 2.6.3's kernels index spatial sizes, strides, pads and dilations with 32-bit ints (a
// dilation of 2^31 gave wrong results: a fuzz finding). Extents past INT32_MAX are refused.
constexpr int64_t kMaxExtent = 0x7fffffff;

Support RefuseHugeExtents(std::initializer_list<int64_t> extents) {
  for (int64_t e : extents) {
    if (e > kMaxExtent) {
      return Support::No("onednn: a size, stride, pad or dilation of " + std::to_string(e) +
                         " exceeds oneDNN's 32-bit limit 2147483647");
    }
  }
  return Support::Yes();
}

class OnednnBackend final : public Backend {
 public:
  std::string_view name() const override { return "onednn"; }

  // Every convolution: groups, dilation, asymmetric pads, fused bias, residual and the
  // activations of onednn_post_ops.hpp, batch 0 (oneDNN runs zero-sized tensors and zeroes dw
  // and db).
  Support supports_conv2d(const Conv2dProblem& p, ConvPass pass) const override {
    if (p.pad.bottom < 0 || p.pad.right < 0) {  // a transposed convolution's equivalent problem
      return Support::No(
          "onednn: a negative bottom or right pad (from a transposed convolution's "
          "output_padding >= stride) is not taken by oneDNN's convolution");
    }
    Support huge =
        RefuseHugeExtents({p.ih, p.iw, p.oh, p.ow, p.kh, p.kw, p.stride_h, p.stride_w, p.dilation_h,
                           p.dilation_w, p.pad.top, p.pad.bottom, p.pad.left, p.pad.right});
    if (!huge.ok || pass != ConvPass::kForward) return huge;
    std::string why = onednn::PostOpsRefusal(p);
    return why.empty() ? Support::Yes() : Support::No(std::move(why));
  }
  // The equivalent convolution's limits, and the deconvolution's own (onednn_deconv.cpp).
  Support supports_conv2d_transpose(const Conv2dTransposeProblem& p) const override {
    Support conv = supports_conv2d(p.conv, ConvPass::kBackwardData);
    if (!conv.ok) return conv;
    std::string why = onednn::Conv2dTransposeRefusal(p);
    return why.empty() ? Support::Yes() : Support::No(std::move(why));
  }
  std::unique_ptr<Conv2dFwdImpl> create_conv2d_transpose_fwd(const Conv2dTransposeProblem& p,
                                                             const float* w,
                                                             const float* b) const override {
    return onednn::CreateConv2dTransposeFwd(p, w, b);
  }
  Support supports_pool2d(const Pool2dProblem& p, PoolPass) const override {
    Support huge = RefuseHugeExtents({p.ih, p.iw, p.oh, p.ow, p.kh, p.kw, p.stride_h, p.stride_w,
                                      p.pad.top, p.pad.bottom, p.pad.left, p.pad.right});
    if (!huge.ok) return huge;
    std::string why = onednn::Pool2dRefusal(p);
    return why.empty() ? Support::Yes() : Support::No(std::move(why));
  }

  std::unique_ptr<Conv2dFwdImpl> create_conv2d_fwd(const Conv2dProblem& p, const float* w,
                                                   const float* b) const override {
    return onednn::CreateConv2dFwd(p, w, b);
  }
  std::unique_ptr<Pool2dFwdImpl> create_pool2d_fwd(const Pool2dProblem& p) const override {
    return onednn::CreatePool2dFwd(p);
  }
  // One-shot forward calls keep Backend's default (make a plan, run it): the weights are
  // reordered per call into oneDNN's layout, which beats its plain-HWIO kernels (49-64 % of the
  // best on 3x3), and the primitive comes from oneDNN's cache.

  std::unique_ptr<Conv2dBwdImpl> create_conv2d_bwd(const Conv2dProblem& p, const float* w,
                                                   const Conv2dGradsWanted& wanted) const override {
    return onednn::CreateConv2dBwd(p, w, wanted);
  }
  std::unique_ptr<Pool2dBwdImpl> create_pool2d_bwd(const Pool2dProblem& p) const override {
    return onednn::CreatePool2dBwd(p);
  }
  // One-shot backward convolution keeps Backend's default (make a plan, run it): what the one-shot
  // call did before plans existed (primitives from oneDNN's cache, w reordered once).
  void pool2d_bwd(const Pool2dProblem& p, const float* x, const float* dy, float* dx,
                  std::string* impl_name) const override {
    onednn::Pool2dBwd(p, x, dy, dx, impl_name);
  }
};

}  // namespace

const Backend& onednn_backend() {
  static const OnednnBackend backend;
  return backend;
}

}  // namespace convkit::internal
