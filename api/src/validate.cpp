#include "api/src/validate.hpp"

#include <cmath>
#include <sstream>
#include <string>

namespace convkit::internal {

void fail(ErrorCode code, std::string_view op, std::string_view arg, std::string_view expected,
          std::string_view given) {
  std::string message;
  message.append(op).append(": ").append(arg).append(": expected ").append(expected);
  message.append(", given ").append(given);
  throw Error(code, message);
}

namespace {

std::string str(int64_t v) { return std::to_string(v); }

int64_t checked_add(std::string_view op, std::string_view what, int64_t a, int64_t b) {
  int64_t sum;
  if (__builtin_add_overflow(a, b, &sum)) {
    fail(ErrorCode::kInvalidArgument, op, what, "a sum that fits in int64",
         str(a) + " + " + str(b) + " overflows");
  }
  return sum;
}

int64_t checked_mul(std::string_view op, std::string_view what, int64_t a, int64_t b) {
  int64_t product;
  if (__builtin_mul_overflow(a, b, &product)) {
    fail(ErrorCode::kInvalidArgument, op, what, "a product that fits in int64",
         str(a) + " * " + str(b) + " overflows");
  }
  return product;
}

void check_at_least(std::string_view op, std::string_view arg, int64_t value, int64_t minimum) {
  if (value < minimum) {
    fail(ErrorCode::kInvalidArgument, op, arg, ">= " + str(minimum), str(value));
  }
}

void check_pads(std::string_view op, const Pads& pad) {
  check_at_least(op, "params.pad.top", pad.top, 0);
  check_at_least(op, "params.pad.bottom", pad.bottom, 0);
  check_at_least(op, "params.pad.left", pad.left, 0);
  check_at_least(op, "params.pad.right", pad.right, 0);
}

void check_fpmath(std::string_view op, Fpmath fpmath) {
  if (fpmath != Fpmath::kStrict && fpmath != Fpmath::kBf16) {
    fail(ErrorCode::kInvalidArgument, op, "params.fpmath", "kStrict or kBf16",
         str(static_cast<int64_t>(fpmath)));
  }
}

// The element count of dims, or an error naming `arg` when it overflows int64_t.
int64_t checked_elements(std::string_view op, std::string_view arg, const Dims& dims) {
  int64_t count = 1;
  for (int64_t d : dims) {
    if (__builtin_mul_overflow(count, d, &count)) {
      fail(ErrorCode::kInvalidArgument, op, arg, "an element count that fits in int64",
           to_string(dims) + ", whose product overflows");
    }
  }
  return count;
}

// floor((extent + before + after - span) / stride) + 1 for one axis, or the ceil_mode variant;
// `span` is the (dilated) kernel extent. Throws when the kernel exceeds the padded input.
int64_t output_extent(std::string_view op, std::string_view axis, int64_t extent, int64_t before,
                      int64_t after, int64_t span, int64_t stride, bool ceil_mode) {
  const int64_t padded = checked_add(op, axis, checked_add(op, axis, extent, before), after);
  if (padded < span) {
    fail(ErrorCode::kInvalidArgument, op, axis,
         "a padded input extent >= the (dilated) window extent " + str(span),
         str(extent) + " + " + str(before) + " + " + str(after) + " = " + str(padded));
  }
  const int64_t numerator = padded - span;
  int64_t out = numerator / stride + 1;
  if (ceil_mode) {
    if (numerator % stride != 0) ++out;
    // PyTorch's rule: the last window must start inside the input or its leading padding, i.e.
    // (out - 1) * stride < extent + before, written without the multiplication that could overflow.
    const int64_t start_limit = extent + before;  // >= 1
    if (out - 1 > (start_limit - 1) / stride) --out;
  }
  return out;
}

// make_post_ops from the fields Conv2dParams and Conv2dTransposeParams share.
template <typename Params>
PostOps post_ops_of(std::string_view op, const Params& params) {
  return make_post_ops(op, params.activation, params.activation_alpha, params.activation_beta,
                       params.residual_after_activation, params.post_scale, params.post_shift);
}

}  // namespace

void check_activation_dims(std::string_view op, std::string_view arg, const Dims& dims) {
  if (dims[0] < 0 || dims[1] < 1 || dims[2] < 1 || dims[3] < 1) {
    fail(ErrorCode::kInvalidArgument, op, arg, "dims {N >= 0, H >= 1, W >= 1, C >= 1}",
         to_string(dims));
  }
  checked_elements(op, arg, dims);
}

Conv2dProblem make_conv2d_problem(std::string_view op, const Conv2dParams& params,
                                  const Dims& x_dims, const Dims& w_dims, bool has_bias) {
  check_at_least(op, "params.kernel_h", params.kernel_h, 1);
  check_at_least(op, "params.kernel_w", params.kernel_w, 1);
  check_at_least(op, "params.stride_h", params.stride_h, 1);
  check_at_least(op, "params.stride_w", params.stride_w, 1);
  check_at_least(op, "params.dilation_h", params.dilation_h, 1);
  check_at_least(op, "params.dilation_w", params.dilation_w, 1);
  check_at_least(op, "params.groups", params.groups, 1);
  check_pads(op, params.pad);
  check_fpmath(op, params.fpmath);
  const PostOps post_ops = post_ops_of(op, params);
  check_activation_dims(op, "x", x_dims);

  const int64_t ic = x_dims[3];
  const int64_t groups = params.groups;
  if (ic % groups != 0) {
    fail(ErrorCode::kInvalidArgument, op, "params.groups", "a divisor of C_in = " + str(ic),
         str(groups));
  }
  const int64_t oc = w_dims[3];
  if (oc < 1 || oc % groups != 0) {
    fail(ErrorCode::kShapeMismatch, op, "w",
         "C_out (dims[3]) >= 1 and a multiple of groups = " + str(groups), to_string(w_dims));
  }
  const Dims w_expected = {params.kernel_h, params.kernel_w, ic / groups, oc};
  if (w_dims != w_expected) {
    fail(ErrorCode::kShapeMismatch, op, "w",
         "dims " + to_string(w_expected) + " (KH, KW, C_in / groups, C_out)", to_string(w_dims));
  }
  checked_elements(op, "w", w_dims);

  Conv2dProblem p;
  p.n = x_dims[0];
  p.ih = x_dims[1];
  p.iw = x_dims[2];
  p.ic = ic;
  p.oc = oc;
  p.kh = params.kernel_h;
  p.kw = params.kernel_w;
  p.stride_h = params.stride_h;
  p.stride_w = params.stride_w;
  p.dilation_h = params.dilation_h;
  p.dilation_w = params.dilation_w;
  p.pad = params.pad;
  p.groups = groups;
  p.post_ops = post_ops;
  p.has_bias = has_bias;
  p.fpmath = params.fpmath;
  const int64_t span_h = checked_add(
      op, "params.dilation_h", checked_mul(op, "params.dilation_h", p.dilation_h, p.kh - 1), 1);
  const int64_t span_w = checked_add(
      op, "params.dilation_w", checked_mul(op, "params.dilation_w", p.dilation_w, p.kw - 1), 1);
  p.oh = output_extent(op, "x height (H + pad.top + pad.bottom)", p.ih, p.pad.top, p.pad.bottom,
                       span_h, p.stride_h, false);
  p.ow = output_extent(op, "x width (W + pad.left + pad.right)", p.iw, p.pad.left, p.pad.right,
                       span_w, p.stride_w, false);
  checked_elements(op, "y", {p.n, p.oh, p.ow, p.oc});
  return p;
}

namespace {

// PyTorch's rule: 0 <= output_padding < stride or < dilation along the axis.
void check_output_padding(std::string_view op, std::string_view arg, int64_t output_padding,
                          int64_t stride, int64_t dilation) {
  check_at_least(op, arg, output_padding, 0);
  if (output_padding >= stride && output_padding >= dilation) {
    fail(ErrorCode::kInvalidArgument, op, arg,
         "< stride = " + str(stride) + " or < dilation = " + str(dilation), str(output_padding));
  }
}

// (extent - 1) * stride - before - after + dilation * (kernel - 1) + output_padding + 1, the
// transposed convolution's output extent along one axis; an error when it is below 1.
int64_t transpose_output_extent(std::string_view op, std::string_view axis, int64_t extent,
                                int64_t stride, int64_t before, int64_t after, int64_t dilation,
                                int64_t kernel, int64_t output_padding) {
  const int64_t full = checked_add(op, axis,
                                   checked_add(op, axis, checked_mul(op, axis, extent - 1, stride),
                                               checked_mul(op, axis, dilation, kernel - 1)),
                                   output_padding + 1);
  // full >= 1 and the pads >= 0: each comparison and difference below fits in int64.
  if (before > full - 1 || after > full - 1 - before) {
    fail(ErrorCode::kInvalidArgument, op, axis,
         "an output extent >= 1 (the full output " + str(full) + " minus the pads)",
         str(full) + " - " + str(before) + " - " + str(after) + " < 1");
  }
  return full - before - after;
}

}  // namespace

Conv2dTransposeProblem make_conv2d_transpose_problem(std::string_view op,
                                                     const Conv2dTransposeParams& params,
                                                     const Dims& x_dims, const Dims& w_dims,
                                                     bool has_bias) {
  check_at_least(op, "params.kernel_h", params.kernel_h, 1);
  check_at_least(op, "params.kernel_w", params.kernel_w, 1);
  check_at_least(op, "params.stride_h", params.stride_h, 1);
  check_at_least(op, "params.stride_w", params.stride_w, 1);
  check_at_least(op, "params.dilation_h", params.dilation_h, 1);
  check_at_least(op, "params.dilation_w", params.dilation_w, 1);
  check_at_least(op, "params.groups", params.groups, 1);
  check_pads(op, params.pad);
  check_output_padding(op, "params.output_padding_h", params.output_padding_h, params.stride_h,
                       params.dilation_h);
  check_output_padding(op, "params.output_padding_w", params.output_padding_w, params.stride_w,
                       params.dilation_w);
  check_fpmath(op, params.fpmath);
  const PostOps post_ops = post_ops_of(op, params);
  check_activation_dims(op, "x", x_dims);

  const int64_t c_in = x_dims[3];
  const int64_t groups = params.groups;
  if (c_in % groups != 0) {
    fail(ErrorCode::kInvalidArgument, op, "params.groups", "a divisor of C_in = " + str(c_in),
         str(groups));
  }
  const int64_t c_out_per_group = w_dims[2];
  if (c_out_per_group < 1) {
    fail(ErrorCode::kShapeMismatch, op, "w", "C_out / groups (dims[2]) >= 1", to_string(w_dims));
  }
  const int64_t c_out = checked_mul(op, "w", c_out_per_group, groups);
  const Dims w_expected = {params.kernel_h, params.kernel_w, c_out_per_group, c_in};
  if (w_dims != w_expected) {
    fail(ErrorCode::kShapeMismatch, op, "w",
         "dims " + to_string(w_expected) + " (KH, KW, C_out / groups, C_in)", to_string(w_dims));
  }
  checked_elements(op, "w", w_dims);

  Conv2dTransposeProblem t;
  t.pad = params.pad;
  t.output_padding_h = params.output_padding_h;
  t.output_padding_w = params.output_padding_w;
  t.post_ops = post_ops;
  t.has_bias = has_bias;
  t.fpmath = params.fpmath;
  Conv2dProblem& p = t.conv;
  p.n = x_dims[0];
  p.oh = x_dims[1];
  p.ow = x_dims[2];
  p.oc = c_in;
  p.ic = c_out;
  p.kh = params.kernel_h;
  p.kw = params.kernel_w;
  p.stride_h = params.stride_h;
  p.stride_w = params.stride_w;
  p.dilation_h = params.dilation_h;
  p.dilation_w = params.dilation_w;
  p.groups = groups;
  p.ih = transpose_output_extent(op, "y height", p.oh, p.stride_h, params.pad.top,
                                 params.pad.bottom, p.dilation_h, p.kh, params.output_padding_h);
  p.iw = transpose_output_extent(op, "y width", p.ow, p.stride_w, params.pad.left, params.pad.right,
                                 p.dilation_w, p.kw, params.output_padding_w);
  p.pad = params.pad;
  p.pad.bottom -= params.output_padding_h / p.stride_h * p.stride_h;
  p.pad.right -= params.output_padding_w / p.stride_w * p.stride_w;
  checked_elements(op, "y", {p.n, p.ih, p.iw, p.ic});
  return t;
}

namespace {

std::string str(float v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

void check_finite(std::string_view op, std::string_view arg, float value, std::string_view what) {
  if (!std::isfinite(value)) {
    fail(ErrorCode::kInvalidArgument, op, arg, "a finite value for " + std::string(what),
         str(value));
  }
}

void check_finite(std::string_view op, std::string_view arg, float value, Activation activation) {
  check_finite(op, arg, value, activation_name(activation));
}

}  // namespace

PostOps make_post_ops(std::string_view op, Activation activation, float alpha, float beta,
                      bool residual_after_activation, float scale, float shift) {
  const auto raw = static_cast<int64_t>(activation);
  if (raw < static_cast<int64_t>(Activation::kNone) ||
      raw > static_cast<int64_t>(Activation::kGelu)) {
    fail(ErrorCode::kInvalidArgument, op, "params.activation",
         "an Activation from kNone (0) to kGelu (10)", str(raw));
  }
  switch (activation) {
    case Activation::kClip:
      check_finite(op, "params.activation_alpha", alpha, activation);
      check_finite(op, "params.activation_beta", beta, activation);
      if (alpha > beta) {
        fail(ErrorCode::kInvalidArgument, op, "params.activation_alpha",
             "clip's lo (alpha) <= hi (beta) = " + str(beta), str(alpha));
      }
      break;
    case Activation::kLeakyRelu:
      check_finite(op, "params.activation_alpha", alpha, activation);
      break;
    case Activation::kHardSigmoid:
      check_finite(op, "params.activation_alpha", alpha, activation);
      check_finite(op, "params.activation_beta", beta, activation);
      break;
    default:
      break;
  }
  check_finite(op, "params.post_scale", scale, "the scale after the activation");
  check_finite(op, "params.post_shift", shift, "the shift after the activation");
  PostOps post_ops;
  post_ops.activation = activation;
  post_ops.alpha = alpha;
  post_ops.beta = beta;
  post_ops.residual_after_activation = residual_after_activation;
  post_ops.scale = scale;
  post_ops.shift = shift;
  return post_ops;
}

void check_residual_against_y(std::string_view op, ConstTensorView r, TensorView y,
                              const Dims& y_dims) {
  check_tensor(op, "r", r, y_dims);
  const int64_t size = num_elements(y_dims);
  if (r.data != y.data) {
    check_no_overlap(op, {{"r", r.data, size}}, {{"y", y.data, size}});
  }
}

void check_residual(std::string_view op, ConstTensorView r, ConstTensorView x, TensorView y,
                    const Dims& y_dims) {
  check_residual_against_y(op, r, y, y_dims);
  check_no_overlap(op, {{"r", r.data, num_elements(y_dims)}},
                   {{"x", x.data, num_elements(x.dims)}});
}

void check_input_scale(std::string_view op, ConstTensorView x_scale, TensorView y,
                       const Dims& scale_dims) {
  check_tensor(op, "x_scale", x_scale, scale_dims);
  check_no_overlap(op, {{"y", y.data, num_elements(y.dims)}},
                   {{"x_scale", x_scale.data, num_elements(scale_dims)}});
}

void check_channel_pieces(std::string_view op, std::span<const ChannelPiece> pieces,
                          const Dims& x_dims, TensorView y, ConstTensorView r) {
  if (pieces.empty()) fail(ErrorCode::kInvalidArgument, op, "pieces", "at least one", "none");
  const int64_t pixels = x_dims[0] * x_dims[1] * x_dims[2];
  int64_t channels = 0;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const ChannelPiece& piece = pieces[i];
    const std::string arg = "pieces[" + std::to_string(i) + "]";
    if (piece.channels < 1) {
      fail(ErrorCode::kInvalidArgument, op, arg + ".channels", ">= 1", str(piece.channels));
    }
    if (piece.pixel_stride < piece.channels) {
      fail(ErrorCode::kInvalidArgument, op, arg + ".pixel_stride",
           ">= its channels (" + str(piece.channels) + ")", str(piece.pixel_stride));
    }
    if (pixels > 0 && piece.data == nullptr) {
      fail(ErrorCode::kInvalidArgument, op, arg + ".data", "non-null data", "null");
    }
    channels += piece.channels;
    if (pixels == 0) continue;
    // Reads span from the first pixel's first channel to the last pixel's last one.
    const int64_t span = (pixels - 1) * piece.pixel_stride + piece.channels;
    check_no_overlap(op, {{"y", y.data, num_elements(y.dims)}}, {{arg, piece.data, span}});
    if (r.data != nullptr) {
      check_no_overlap(op, {{"r", r.data, num_elements(y.dims)}}, {{arg, piece.data, span}});
    }
  }
  if (channels != x_dims[3]) {
    fail(ErrorCode::kShapeMismatch, op, "pieces",
         "channels summing to x's C_in (" + str(x_dims[3]) + ")", str(channels));
  }
}

Pool2dProblem make_pool2d_problem(std::string_view op, const Pool2dParams& params,
                                  const Dims& x_dims) {
  if (params.mode != PoolMode::kMax && params.mode != PoolMode::kAverage) {
    fail(ErrorCode::kInvalidArgument, op, "params.mode", "kMax or kAverage",
         str(static_cast<int64_t>(params.mode)));
  }
  check_activation_dims(op, "x", x_dims);
  Pool2dProblem p;
  p.n = x_dims[0];
  p.ih = x_dims[1];
  p.iw = x_dims[2];
  p.c = x_dims[3];
  p.mode = params.mode;
  p.count_include_pad = params.count_include_pad;
  if (params.global) {
    if (params.pad != Pads{}) {
      fail(ErrorCode::kInvalidArgument, op, "params.pad", "all 0 with global pooling",
           to_string(params));
    }
    p.kh = p.ih;
    p.kw = p.iw;
    p.oh = p.ow = 1;
    return p;
  }
  check_at_least(op, "params.window_h", params.window_h, 1);
  check_at_least(op, "params.window_w", params.window_w, 1);
  check_at_least(op, "params.stride_h", params.stride_h, 1);
  check_at_least(op, "params.stride_w", params.stride_w, 1);
  check_pads(op, params.pad);
  const auto check_pad_below_window = [&](std::string_view arg, int64_t pad, int64_t window,
                                          std::string_view window_name) {
    if (pad >= window) {
      fail(ErrorCode::kInvalidArgument, op, arg,
           "< " + std::string(window_name) + " = " + str(window) +
               " (every window must touch the input)",
           str(pad));
    }
  };
  check_pad_below_window("params.pad.top", params.pad.top, params.window_h, "window_h");
  check_pad_below_window("params.pad.bottom", params.pad.bottom, params.window_h, "window_h");
  check_pad_below_window("params.pad.left", params.pad.left, params.window_w, "window_w");
  check_pad_below_window("params.pad.right", params.pad.right, params.window_w, "window_w");
  p.kh = params.window_h;
  p.kw = params.window_w;
  p.stride_h = params.stride_h;
  p.stride_w = params.stride_w;
  p.pad = params.pad;
  p.ceil_mode = params.ceil_mode;
  p.oh = output_extent(op, "x height (H + pad.top + pad.bottom)", p.ih, p.pad.top, p.pad.bottom,
                       p.kh, p.stride_h, p.ceil_mode);
  p.ow = output_extent(op, "x width (W + pad.left + pad.right)", p.iw, p.pad.left, p.pad.right,
                       p.kw, p.stride_w, p.ceil_mode);
  return p;
}

void check_backward_activation(std::string_view op, Activation activation, float post_scale,
                               float post_shift) {
  if (activation != Activation::kNone) {
    fail(ErrorCode::kInvalidArgument, op, "params.activation",
         "kNone (apply the activation's gradient to dy first)", activation_name(activation));
  }
  if (post_scale != 1.0f) {
    fail(ErrorCode::kInvalidArgument, op, "params.post_scale", "1 (scale dy by post_scale first)",
         str(post_scale));
  }
  if (post_shift != 0.0f) {
    fail(ErrorCode::kInvalidArgument, op, "params.post_shift",
         "0 (a shift after the activation passes dy unchanged)", str(post_shift));
  }
}

void check_tensor(std::string_view op, std::string_view arg, ConstTensorView given,
                  const Dims& expected) {
  if (given.dims != expected) {
    fail(ErrorCode::kShapeMismatch, op, arg, "dims " + to_string(expected), to_string(given.dims));
  }
  if (given.data == nullptr && num_elements(expected) > 0) {
    fail(ErrorCode::kInvalidArgument, op, arg, "non-null data for " + to_string(expected), "null");
  }
}

void check_vector(std::string_view op, std::string_view arg, const float* data, int64_t size,
                  int64_t expected) {
  if (size != expected) {
    fail(ErrorCode::kShapeMismatch, op, arg, str(expected) + " elements (C_out)",
         str(size) + " elements");
  }
  if (data == nullptr && size > 0) {
    fail(ErrorCode::kInvalidArgument, op, arg, "non-null data", "null");
  }
}

namespace {

bool overlap(const Region& a, const Region& b) {
  if (a.size == 0 || b.size == 0) return false;
  const auto a0 = reinterpret_cast<std::uintptr_t>(a.data);
  const auto b0 = reinterpret_cast<std::uintptr_t>(b.data);
  const auto a1 = a0 + static_cast<std::uintptr_t>(a.size) * sizeof(float);
  const auto b1 = b0 + static_cast<std::uintptr_t>(b.size) * sizeof(float);
  return a0 < b1 && b0 < a1;
}

}  // namespace

void check_no_overlap(std::string_view op, std::initializer_list<Region> outputs,
                      std::initializer_list<Region> inputs) {
  for (auto out = outputs.begin(); out != outputs.end(); ++out) {
    for (const Region& in : inputs) {
      if (overlap(*out, in)) {
        fail(ErrorCode::kInvalidArgument, op, out->arg,
             "memory that does not overlap " + std::string(in.arg), "overlapping memory");
      }
    }
    for (auto other = outputs.begin(); other != out; ++other) {
      if (overlap(*out, *other)) {
        fail(ErrorCode::kInvalidArgument, op, out->arg,
             "memory that does not overlap " + std::string(other->arg), "overlapping memory");
      }
    }
  }
}

Conv2dGradPointers check_conv2d_grads(std::string_view op, const Conv2dGrads& grads,
                                      const Dims& x_dims, const Dims& w_dims, int64_t oc,
                                      std::initializer_list<Region> inputs) {
  const TensorView dx = grads.dx.value_or(TensorView{});
  const TensorView dw = grads.dw.value_or(TensorView{});
  const std::span<float> db = grads.db.value_or(std::span<float>{});
  if (grads.dx) check_tensor(op, "grads.dx", dx, x_dims);
  if (grads.dw) check_tensor(op, "grads.dw", dw, w_dims);
  if (grads.db) check_vector(op, "grads.db", db.data(), static_cast<int64_t>(db.size()), oc);
  const int64_t dx_size = grads.dx ? num_elements(x_dims) : 0;
  const int64_t dw_size = grads.dw ? num_elements(w_dims) : 0;
  const int64_t db_size = static_cast<int64_t>(db.size());
  const std::initializer_list<Region> outputs = {{"grads.dx", dx.data, dx_size},
                                                 {"grads.dw", dw.data, dw_size},
                                                 {"grads.db", db.data(), db_size}};
  check_no_overlap(op, outputs, inputs);
  return {grads.dx ? dx.data : nullptr, grads.dw ? dw.data : nullptr,
          grads.db ? db.data() : nullptr};
}

}  // namespace convkit::internal
