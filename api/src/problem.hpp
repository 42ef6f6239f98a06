// Validated problems: what a backend receives. Every extent is resolved (output size, global
// pooling, ceil_mode) and every rule of DESIGN §4 already holds, so backends need no checks.
#pragma once

#include <cstdint>
#include <string>

#include "convkit/params.hpp"

namespace convkit::internal {

// The post-ops fused at the end of a forward convolution, plain or transposed (DESIGN §3): bias
// (held by the problem), then a residual r given at run time -- before the activation or after it
// -- around the activation and the linear map after it: y = fma(scale, act(z [+ r]), shift) [+ r].
// Validated: activation is an enum value, alpha and beta are finite where used, clip's alpha <=
// beta, scale and shift are finite. A backend's kernel receives r as a nullable pointer of y's
// dims (r may equal y, never overlap x).
struct PostOps {
  Activation activation = Activation::kNone;
  float alpha = 0.0f;  // clip: lo; leaky_relu: slope; hardsigmoid: alpha
  float beta = 0.0f;   // clip: hi; hardsigmoid: beta
  bool residual_after_activation = false;
  float scale = 1.0f;  // the linear map after the activation (Conv2dParams::post_scale)
  float shift = 0.0f;  // (Conv2dParams::post_shift)

  bool has_activation() const { return activation != Activation::kNone; }
  bool has_linear() const { return scale != 1.0f || shift != 0.0f; }
  // Whether anything but the residual acts on each value (the activation or the linear map).
  bool has_elementwise() const { return has_activation() || has_linear(); }
  bool operator==(const PostOps&) const = default;
  // "", "relu", "clip:0:6", "leaky_relu:0.1", "hardsigmoid:0.2:0.5", ..., then " linear:S:T" when
  // has_linear() and " residual_after" when residual_after_activation (for problems' to_string).
  std::string to_string() const;
};

struct Conv2dProblem {
  int64_t n = 0;  // batch; may be 0
  int64_t ih = 0, iw = 0, ic = 0;
  int64_t oh = 0, ow = 0, oc = 0;
  int64_t kh = 0, kw = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;  // 1 = dense
  Pads pad;
  int64_t groups = 1;
  PostOps post_ops;
  bool has_bias = false;
  Fpmath fpmath = Fpmath::kStrict;  // the forward pass may round x and w to bf16

  bool bf16() const { return fpmath == Fpmath::kBf16; }

  int64_t ic_per_group() const { return ic / groups; }
  int64_t oc_per_group() const { return oc / groups; }
  bool depthwise() const { return groups == ic && groups == oc; }
  // Elements of w, HWIO {KH, KW, C_in / groups, C_out}.
  int64_t w_size() const { return kh * kw * ic_per_group() * oc; }
  // Nominal FLOPs of the forward pass: 2 * N * OH * OW * OC * KH * KW * IC / groups.
  double flops() const;
  // "n2 ih5 iw7 ic4 oc8 oh3 ow4 k3x3 s2x2 p1,1,1,1 d1x1 g1 bias relu bf16".
  std::string to_string() const;

  bool operator==(const Conv2dProblem&) const = default;
};

// A transposed convolution, held as the convolution whose backward data it is (DESIGN §3), so that
// backends run it with their backward-data code: this op's x is `conv`'s dy {n, oh, ow, oc}, its y
// is conv's dx {n, ih, iw, ic}, and its w {kh, kw, C_out / groups, C_in} is conv's HWIO weight.
// conv.ih and conv.iw already include output_padding; conv.has_bias is false and conv.post_ops
// empty: the bias and post-ops below belong to this op and come after the sum.
//
// conv.pad.bottom (right) is the crop pad.bottom minus stride * floor(output_padding / stride),
// which keeps conv's output-size formula (DESIGN §4) true: it equals the crop unless
// output_padding >= stride (allowed when dilation > output_padding), where it may be negative,
// i.e. the convolution ignores the last input rows. Backends that cannot run a negative pad refuse.
struct Conv2dTransposeProblem {
  Conv2dProblem conv;
  Pads pad;  // the crops as given
  int64_t output_padding_h = 0, output_padding_w = 0;
  PostOps post_ops;
  bool has_bias = false;
  Fpmath fpmath = Fpmath::kStrict;  // x and w may be rounded to bf16 (conv.fpmath stays strict)

  bool bf16() const { return fpmath == Fpmath::kBf16; }
  // This op's extents: x {n, h, w, c_in}, y {n, oh, ow, c_out}.
  int64_t n() const { return conv.n; }
  int64_t h() const { return conv.oh; }
  int64_t w() const { return conv.ow; }
  int64_t c_in() const { return conv.oc; }
  int64_t oh() const { return conv.ih; }
  int64_t ow() const { return conv.iw; }
  int64_t c_out() const { return conv.ic; }
  // Nominal FLOPs: those of conv's backward data, 2 * N * H * W * C_in * KH * KW * C_out / groups.
  double flops() const { return conv.flops(); }
  // "x=1x16x16x64 w=4x4x32x64 y=1x32x32x32 s2x2 p1,1,1,1 d1x1 g1 op0x0 bias relu".
  std::string to_string() const;
};

struct Pool2dProblem {
  int64_t n = 0;  // batch; may be 0
  int64_t ih = 0, iw = 0, c = 0;
  int64_t oh = 0, ow = 0;  // ceil_mode is already applied
  int64_t kh = 0, kw = 0;  // the window (H x W for global pooling)
  int64_t stride_h = 1, stride_w = 1;
  Pads pad;  // each side smaller than the window on its axis
  PoolMode mode = PoolMode::kMax;
  bool count_include_pad = false;
  bool ceil_mode = false;  // informative: oh and ow already include its effect

  std::string to_string() const;

  bool operator==(const Pool2dProblem&) const = default;
};

}  // namespace convkit::internal
