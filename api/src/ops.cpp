// The one-shot operations: validate, choose a backend, run (DESIGN §3, §5, §6).
#include "convkit/ops.hpp"

#include "api/src/call.hpp"
#include "api/src/registry.hpp"
#include "api/src/validate.hpp"

namespace convkit {

using internal::check_no_overlap;
using internal::check_tensor;
using internal::check_vector;
using internal::Conv2dProblem;
using internal::Conv2dTransposeProblem;
using internal::Pool2dProblem;

namespace {

int64_t count(const Dims& dims) { return num_elements(dims); }

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
  const internal::Backend& chosen = internal::select_backend(op, backend, [&](const auto& c) {
    return c.supports_conv2d(p, internal::ConvPass::kForward);
  });
  internal::run_call(
      "conv2d_fwd", internal::verbose_enabled(),
      [&] { return p.to_string() + (r != nullptr ? " residual" : ""); },
      [&](std::string* impl) {
        chosen.conv2d_fwd(p, x.data, w.data, p.has_bias ? b.data() : nullptr, r_data, y.data, impl);
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
  internal::check_backward_activation(op, params.activation);
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
  const Conv2dGradsWanted wanted{grads.dx.has_value(), grads.dw.has_value(), grads.db.has_value()};
  const internal::Backend& chosen = internal::select_backend(
      op, backend, [&](const auto& c) { return internal::supports_conv2d_bwd(c, p, wanted); });
  internal::run_call(
      "conv2d_bwd", internal::verbose_enabled(), [&] { return p.to_string(); },
      [&](std::string* impl) {
        chosen.conv2d_bwd(p, x.data, w.data, dy.data, out.dx, out.dw, out.db, impl);
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
  const internal::Backend& chosen = internal::select_backend(
      op, backend, [&](const auto& c) { return c.supports_conv2d_transpose(p); });
  internal::run_call(
      "conv2d_transpose_fwd", internal::verbose_enabled(),
      [&] { return p.to_string() + (r != nullptr ? " residual" : ""); },
      [&](std::string* impl) {
        chosen.conv2d_transpose_fwd(p, x.data, w.data, p.has_bias ? b.data() : nullptr, r_data,
                                    y.data, impl);
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
  internal::check_backward_activation(op, params.activation);
  const Conv2dTransposeProblem p =
      internal::make_conv2d_transpose_problem(op, params, x.dims, w.dims, false);
  check_tensor(op, "x", x, x.dims);
  check_tensor(op, "w", w, w.dims);
  check_tensor(op, "dy", dy, {p.n(), p.oh(), p.ow(), p.c_out()});
  const TensorView dx = grads.dx.value_or(TensorView{});
  const TensorView dw = grads.dw.value_or(TensorView{});
  const std::span<float> db = grads.db.value_or(std::span<float>{});
  if (grads.dx) check_tensor(op, "grads.dx", dx, x.dims);
  if (grads.dw) check_tensor(op, "grads.dw", dw, w.dims);
  if (grads.db) {
    check_vector(op, "grads.db", db.data(), static_cast<int64_t>(db.size()), p.c_out());
  }
  const int64_t dx_size = grads.dx ? count(x.dims) : 0;
  const int64_t dw_size = grads.dw ? count(w.dims) : 0;
  const int64_t db_size = static_cast<int64_t>(db.size());
  check_no_overlap(op,
                   {{"grads.dx", dx.data, dx_size},
                    {"grads.dw", dw.data, dw_size},
                    {"grads.db", db.data(), db_size}},
                   {{"x", x.data, count(x.dims)},
                    {"w", w.data, count(w.dims)},
                    {"dy", dy.data, count(dy.dims)}});
  if (!grads.dx && !grads.dw && !grads.db) return;
  const internal::Backend& chosen =
      internal::select_backend(op, backend, [&](const internal::Backend& c) {
        return internal::TransposeBwdSupport(c, p, grads.dx.has_value(), grads.dw.has_value(),
                                             grads.db.has_value());
      });
  internal::run_call(
      "conv2d_transpose_bwd", internal::verbose_enabled(), [&] { return p.to_string(); },
      [&](std::string* impl) {
        chosen.conv2d_transpose_bwd(p, x.data, w.data, dy.data, grads.dx ? dx.data : nullptr,
                                    grads.dw ? dw.data : nullptr, grads.db ? db.data() : nullptr,
                                    impl);
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
  const internal::Backend& chosen = internal::select_backend(op, backend, [&](const auto& c) {
    return c.supports_pool2d(p, internal::PoolPass::kForward);
  });
  internal::run_call(
      "pool2d_fwd", internal::verbose_enabled(), [&] { return p.to_string(); },
      [&](std::string* impl) { chosen.pool2d_fwd(p, x.data, y.data, impl); });
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
  const internal::Backend& chosen = internal::select_backend(op, backend, [&](const auto& c) {
    return c.supports_pool2d(p, internal::PoolPass::kBackward);
  });
  internal::run_call(
      "pool2d_bwd", internal::verbose_enabled(), [&] { return p.to_string(); },
      [&](std::string* impl) { chosen.pool2d_bwd(p, x.data, dy.data, dx.data, impl); });
}

}  // namespace convkit
