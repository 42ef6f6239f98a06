// The one-shot operations: validate, choose a backend, run (DESIGN §3, §5, §6).
#include "convkit/ops.hpp"

#include "api/src/auto_select.hpp"
#include "api/src/call.hpp"
#include "api/src/registry.hpp"
#include "api/src/validate.hpp"

namespace convkit {

using internal::CallKind;
using internal::check_no_overlap;
using internal::check_tensor;
using internal::check_vector;
using internal::Conv2dProblem;
using internal::Conv2dTransposeProblem;
using internal::ConvPass;
using internal::Pool2dProblem;
using internal::PoolPass;
using internal::Scratch;

namespace {

int64_t count(const Dims& dims) { return num_elements(dims); }

// conv2d_backward on one backend: dx when non-null, dw and db when non-null. `pass` names the work
// for auto's table and the measure cache (kBackwardData when dx is given, else kBackwardWeights).
// Under CONVKIT_AUTO=measure the first call for a problem times the candidates on scratch data.
void run_conv2d_bwd(std::string_view requested, std::string_view op, const Conv2dProblem& p,
                    const float* x, const float* w, const float* dy, float* dx, float* dw,
                    float* db, std::string* impl) {
  const ConvPass pass = dx != nullptr ? ConvPass::kBackwardData : ConvPass::kBackwardWeights;
  Scratch xs(p.n * p.ih * p.iw * p.ic), ws(p.w_size()), dys(p.n * p.oh * p.ow * p.oc);
  const Conv2dGradsWanted wanted{dx != nullptr, dw != nullptr, db != nullptr};
  internal::ScratchGrads grads(p, wanted);
  internal::run_on_backend(
      requested,
      {.op = op,
       .verbose_op = dx != nullptr ? "conv2d_bwd_data" : "conv2d_bwd_weights",
       .features = internal::conv2d_features(p, pass, internal::num_threads(), CallKind::kOneShot),
       .describe = [&] { return internal::problem_text(p); },
       .supports =
           [&](const internal::Backend& c) { return internal::supports_conv2d_bwd(c, p, wanted); },
       .attempt = [&](const internal::Backend& c) { c.conv2d_bwd(p, x, w, dy, dx, dw, db, impl); },
       .trial =
           [&](const internal::Backend& c) {
             c.conv2d_bwd(p, xs.data(), ws.data(), dys.data(), grads.dx(), grads.dw(), grads.db(),
                          nullptr);
           }});
}

}  // namespace

Dims conv2d_output_dims(const Dims& x_dims, const Dims& w_dims, const Conv2dParams& params) {
  const Conv2dProblem p =
      internal::make_conv2d_problem("conv2d_output_dims", params, x_dims, w_dims, false);
  return {p.n, p.oh, p.ow, p.oc};
}

Dims pool2d_output_dims(const Dims& x_dims, const Pool2dParams& params) {
  const Pool2dProblem p = internal::make_pool2d_problem("pool2d_output_dims", params, x_dims);
  return {p.n, p.oh, p.ow, p.c};
}

namespace {

// Both conv2d_forward overloads; r is null without a residual.
void conv2d_forward_impl(const Conv2dParams& params, ConstTensorView x, ConstTensorView w,
                         std::span<const float> b, const ConstTensorView* r, TensorView y,
                         std::string_view backend) {
  constexpr std::string_view op = "conv2d_forward";
  const Conv2dProblem p = internal::make_conv2d_problem(op, params, x.dims, w.dims, !b.empty());
  const Dims y_dims = {p.n, p.oh, p.ow, p.oc};
  check_tensor(op, "x", x, x.dims);
  check_tensor(op, "w", w, w.dims);
  if (!b.empty()) check_vector(op, "b", b.data(), static_cast<int64_t>(b.size()), p.oc);
  check_tensor(op, "y", y, y_dims);
  check_no_overlap(op, {{"y", y.data, count(y_dims)}},
                   {{"x", x.data, count(x.dims)},
                    {"w", w.data, count(w.dims)},
                    {"b", b.data(), static_cast<int64_t>(b.size())}});
  if (r != nullptr) internal::check_residual(op, *r, x, y, y_dims);
  const float* r_data = r != nullptr && count(y_dims) > 0 ? r->data : nullptr;
  const float* bias = p.has_bias ? b.data() : nullptr;
  Scratch xs(count(x.dims)), ws(count(w.dims)), bs(p.has_bias ? p.oc : 0), ys(count(y_dims));
  internal::run_one_shot(
      "conv2d_fwd", internal::verbose_level(),
      [&] { return p.to_string() + (r != nullptr ? " residual" : ""); },
      [&](std::string* impl) {
        internal::run_on_backend(
            backend, {.op = op,
                      .verbose_op = "conv2d_fwd",
                      .features = internal::conv2d_features(
                          p, ConvPass::kForward, internal::num_threads(), CallKind::kOneShot),
                      .describe = [&] { return internal::problem_text(p); },
                      .supports =
                          [&](const internal::Backend& c) {
                            return c.supports_conv2d(p, ConvPass::kForward);
                          },
                      .attempt =
                          [&](const internal::Backend& c) {
                            c.conv2d_fwd(p, x.data, w.data, bias, r_data, y.data, impl);
                          },
                      .trial =
                          [&](const internal::Backend& c) {
                            c.conv2d_fwd(p, xs.data(), ws.data(), p.has_bias ? bs.data() : nullptr,
                                         r_data != nullptr ? ys.data() : nullptr, ys.data(),
                                         nullptr);
                          }});
      });
}

}  // namespace

void conv2d_forward(const Conv2dParams& params, ConstTensorView x, ConstTensorView w,
                    std::span<const float> b, TensorView y, std::string_view backend) {
  conv2d_forward_impl(params, x, w, b, nullptr, y, backend);
}

void conv2d_forward(const Conv2dParams& params, ConstTensorView x, ConstTensorView w,
                    std::span<const float> b, ConstTensorView r, TensorView y,
                    std::string_view backend) {
  conv2d_forward_impl(params, x, w, b, &r, y, backend);
}

void conv2d_backward(const Conv2dParams& params, ConstTensorView x, ConstTensorView w,
                     ConstTensorView dy, const Conv2dGrads& grads, std::string_view backend) {
  constexpr std::string_view op = "conv2d_backward";
  internal::check_backward_activation(op, params.activation, params.post_scale, params.post_shift);
  Conv2dProblem p = internal::make_conv2d_problem(op, params, x.dims, w.dims, false);
  p.fpmath = Fpmath::kStrict;  // fpmath is the forward pass's (kBf16 permits fp32)
  check_tensor(op, "x", x, x.dims);
  check_tensor(op, "w", w, w.dims);
  check_tensor(op, "dy", dy, {p.n, p.oh, p.ow, p.oc});
  const internal::Conv2dGradPointers out =
      internal::check_conv2d_grads(op, grads, x.dims, w.dims, p.oc,
                                   {{"x", x.data, count(x.dims)},
                                    {"w", w.data, count(w.dims)},
                                    {"dy", dy.data, count(dy.dims)}});
  if (!grads.dx && !grads.dw && !grads.db) return;
  internal::run_one_shot(
      "conv2d_bwd", internal::verbose_level(), [&] { return p.to_string(); },
      [&](std::string* impl) {
        if (!internal::auto_requested(op, backend)) {  // one backend runs every pass asked for
          run_conv2d_bwd(backend, op, p, x.data, w.data, dy.data, out.dx, out.dw, out.db, impl);
          return;
        }
        // auto chooses per pass: the fastest backend for dx is often not the fastest for dw.
        const bool weights = out.dw != nullptr || out.db != nullptr;
        std::string data_impl, weights_impl;
        if (out.dx != nullptr) {
          run_conv2d_bwd(backend, op, p, x.data, w.data, dy.data, out.dx, nullptr, nullptr,
                         impl ? &data_impl : nullptr);
        }
        if (weights) {
          run_conv2d_bwd(backend, op, p, x.data, w.data, dy.data, nullptr, out.dw, out.db,
                         impl ? &weights_impl : nullptr);
        }
        if (impl) *impl = data_impl + (out.dx != nullptr && weights ? " + " : "") + weights_impl;
      });
}

Dims conv2d_transpose_output_dims(const Dims& x_dims, const Dims& w_dims,
                                  const Conv2dTransposeParams& params) {
  const Conv2dTransposeProblem p = internal::make_conv2d_transpose_problem(
      "conv2d_transpose_output_dims", params, x_dims, w_dims, false);
  return {p.n(), p.oh(), p.ow(), p.c_out()};
}

namespace {

// Both conv2d_transpose_forward overloads; r is null without a residual.
void conv2d_transpose_forward_impl(const Conv2dTransposeParams& params, ConstTensorView x,
                                   ConstTensorView w, std::span<const float> b,
                                   const ConstTensorView* r, TensorView y,
                                   std::string_view backend) {
  constexpr std::string_view op = "conv2d_transpose_forward";
  const Conv2dTransposeProblem p =
      internal::make_conv2d_transpose_problem(op, params, x.dims, w.dims, !b.empty());
  const Dims y_dims = {p.n(), p.oh(), p.ow(), p.c_out()};
  check_tensor(op, "x", x, x.dims);
  check_tensor(op, "w", w, w.dims);
  if (!b.empty()) check_vector(op, "b", b.data(), static_cast<int64_t>(b.size()), p.c_out());
  check_tensor(op, "y", y, y_dims);
  check_no_overlap(op, {{"y", y.data, count(y_dims)}},
                   {{"x", x.data, count(x.dims)},
                    {"w", w.data, count(w.dims)},
                    {"b", b.data(), static_cast<int64_t>(b.size())}});
  if (r != nullptr) internal::check_residual(op, *r, x, y, y_dims);
  const float* r_data = r != nullptr && count(y_dims) > 0 ? r->data : nullptr;
  internal::run_one_shot(
      "conv2d_transpose_fwd", internal::verbose_level(),
      [&] { return p.to_string() + (r != nullptr ? " residual" : ""); },
      [&](std::string* impl) {
        const std::string text = p.to_string();
        // The table knows this op as its convolution's backward data.
        internal::run_on_backend(
            backend,
            {.op = op,
             .verbose_op = "conv2d_transpose_fwd",
             .features = internal::conv2d_features(p.conv, ConvPass::kBackwardData,
                                                   internal::num_threads(), CallKind::kOneShot),
             .describe = [&] { return std::string_view(text); },
             .supports = [&](const internal::Backend& c) { return c.supports_conv2d_transpose(p); },
             .attempt =
                 [&](const internal::Backend& c) {
                   c.conv2d_transpose_fwd(p, x.data, w.data, p.has_bias ? b.data() : nullptr,
                                          r_data, y.data, impl);
                 },
             .trial = nullptr});
      });
}

}  // namespace

void conv2d_transpose_forward(const Conv2dTransposeParams& params, ConstTensorView x,
                              ConstTensorView w, std::span<const float> b, TensorView y,
                              std::string_view backend) {
  conv2d_transpose_forward_impl(params, x, w, b, nullptr, y, backend);
}

void conv2d_transpose_forward(const Conv2dTransposeParams& params, ConstTensorView x,
                              ConstTensorView w, std::span<const float> b, ConstTensorView r,
                              TensorView y, std::string_view backend) {
  conv2d_transpose_forward_impl(params, x, w, b, &r, y, backend);
}

void conv2d_transpose_backward(const Conv2dTransposeParams& params, ConstTensorView x,
                               ConstTensorView w, ConstTensorView dy, const Conv2dGrads& grads,
                               std::string_view backend) {
  constexpr std::string_view op = "conv2d_transpose_backward";
  internal::check_backward_activation(op, params.activation, params.post_scale, params.post_shift);
  const Conv2dTransposeProblem p =
      internal::make_conv2d_transpose_problem(op, params, x.dims, w.dims, false);
  check_tensor(op, "x", x, x.dims);
  check_tensor(op, "w", w, w.dims);
  check_tensor(op, "dy", dy, {p.n(), p.oh(), p.ow(), p.c_out()});
  const internal::Conv2dGradPointers out =
      internal::check_conv2d_grads(op, grads, x.dims, w.dims, p.c_out(),
                                   {{"x", x.data, count(x.dims)},
                                    {"w", w.data, count(w.dims)},
                                    {"dy", dy.data, count(dy.dims)}});
  if (!grads.dx && !grads.dw && !grads.db) return;
  internal::run_one_shot(
      "conv2d_transpose_bwd", internal::verbose_level(), [&] { return p.to_string(); },
      [&](std::string* impl) {
        const std::string text = p.to_string();
        internal::run_on_backend(
            backend,
            {.op = op,
             .verbose_op = "conv2d_transpose_bwd",
             .features = internal::conv2d_features(
                 p.conv, grads.dx ? ConvPass::kForward : ConvPass::kBackwardWeights,
                 internal::num_threads(), CallKind::kOneShot),
             .describe = [&] { return std::string_view(text); },
             .supports =
                 [&](const internal::Backend& c) {
                   return internal::TransposeBwdSupport(c, p, grads.dx.has_value(),
                                                        grads.dw.has_value(), grads.db.has_value());
                 },
             .attempt =
                 [&](const internal::Backend& c) {
                   c.conv2d_transpose_bwd(p, x.data, w.data, dy.data, out.dx, out.dw, out.db, impl);
                 },
             .trial = nullptr});
      });
}

void pool2d_forward(const Pool2dParams& params, ConstTensorView x, TensorView y,
                    std::string_view backend) {
  constexpr std::string_view op = "pool2d_forward";
  const Pool2dProblem p = internal::make_pool2d_problem(op, params, x.dims);
  const Dims y_dims = {p.n, p.oh, p.ow, p.c};
  check_tensor(op, "x", x, x.dims);
  check_tensor(op, "y", y, y_dims);
  check_no_overlap(op, {{"y", y.data, count(y_dims)}}, {{"x", x.data, count(x.dims)}});
  Scratch xs(count(x.dims)), ys(count(y_dims));
  internal::run_one_shot(
      "pool2d_fwd", internal::verbose_level(), [&] { return p.to_string(); },
      [&](std::string* impl) {
        internal::run_on_backend(
            backend,
            {.op = op,
             .verbose_op = "pool2d_fwd",
             .features = internal::pool2d_features(p, PoolPass::kForward, internal::num_threads(),
                                                   CallKind::kOneShot),
             .describe = [&] { return internal::problem_text(p); },
             .supports =
                 [&](const internal::Backend& c) {
                   return c.supports_pool2d(p, PoolPass::kForward);
                 },
             .attempt = [&](const internal::Backend& c) { c.pool2d_fwd(p, x.data, y.data, impl); },
             .trial =
                 [&](const internal::Backend& c) {
                   c.pool2d_fwd(p, xs.data(), ys.data(), nullptr);
                 }});
      });
}

void pool2d_backward(const Pool2dParams& params, ConstTensorView x, ConstTensorView dy,
                     TensorView dx, std::string_view backend) {
  constexpr std::string_view op = "pool2d_backward";
  const Pool2dProblem p = internal::make_pool2d_problem(op, params, x.dims);
  check_tensor(op, "x", x, x.dims);
  check_tensor(op, "dy", dy, {p.n, p.oh, p.ow, p.c});
  check_tensor(op, "dx", dx, x.dims);
  check_no_overlap(op, {{"dx", dx.data, count(x.dims)}},
                   {{"x", x.data, count(x.dims)}, {"dy", dy.data, count(dy.dims)}});
  Scratch xs(count(x.dims)), dys(count(dy.dims)), dxs(count(x.dims));
  internal::run_one_shot(
      "pool2d_bwd", internal::verbose_level(), [&] { return p.to_string(); },
      [&](std::string* impl) {
        internal::run_on_backend(
            backend, {.op = op,
                      .verbose_op = "pool2d_bwd",
                      .features = internal::pool2d_features(
                          p, PoolPass::kBackward, internal::num_threads(), CallKind::kOneShot),
                      .describe = [&] { return internal::problem_text(p); },
                      .supports =
                          [&](const internal::Backend& c) {
                            return c.supports_pool2d(p, PoolPass::kBackward);
                          },
                      .attempt =
                          [&](const internal::Backend& c) {
                            c.pool2d_bwd(p, x.data, dy.data, dx.data, impl);
                          },
                      .trial =
                          [&](const internal::Backend& c) {
                            c.pool2d_bwd(p, xs.data(), dys.data(), dxs.data(), nullptr);
                          }});
      });
}

}  // namespace convkit
