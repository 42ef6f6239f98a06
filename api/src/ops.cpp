// The one-shot operations: validate, choose a backend, run (DESIGN §3, §5, §6).
#include "convkit/ops.hpp"

#include "api/src/auto_select.hpp"
#include "api/src/call.hpp"
#include "api/src/registry.hpp"
#include "api/src/validate.hpp"

namespace convkit {

using internal::check_no_overlap;
using internal::check_tensor;
using internal::check_vector;
using internal::Conv2dProblem;
using internal::ConvPass;
using internal::Pool2dProblem;
using internal::PoolPass;
using internal::Scratch;

namespace {

int64_t count(const Dims& dims) { return num_elements(dims); }

// conv2d_backward on one backend: dx when non-null, dw and db when non-null. `pass` names the work
// for auto's table and the measure cache (kBackwardData when dx is given, else kBackwardWeights).
// Under CONVKIT_AUTO=measure the first call for a problem times the candidates on scratch data.
const internal::Backend& run_conv2d_bwd(std::string_view requested, std::string_view op,
                                        const Conv2dProblem& p, const float* x, const float* w,
                                        const float* dy, float* dx, float* dw, float* db,
                                        std::string* impl) {
  const ConvPass pass = dx != nullptr ? ConvPass::kBackwardData : ConvPass::kBackwardWeights;
  const int64_t x_size = p.n * p.ih * p.iw * p.ic;
  const int64_t w_size = p.kh * p.kw * p.ic_per_group() * p.oc;
  Scratch xs(x_size), ws(w_size), dys(p.n * p.oh * p.ow * p.oc);
  Scratch dxs(dx ? x_size : 0), dws(dw ? w_size : 0), dbs(db ? p.oc : 0);
  return internal::run_on_backend(
      requested,
      {.op = op,
       .verbose_op = dx != nullptr ? "conv2d_bwd_data" : "conv2d_bwd_weights",
       .features = internal::conv2d_features(p, pass, internal::num_threads()),
       .describe = [&] { return internal::problem_text(p); },
       .supports =
           [&](const internal::Backend& c) {
             if (dx != nullptr) {
               internal::Support s = c.supports_conv2d(p, ConvPass::kBackwardData);
               if (!s.ok || (dw == nullptr && db == nullptr)) return s;
             }
             return c.supports_conv2d(p, ConvPass::kBackwardWeights);
           },
       .attempt = [&](const internal::Backend& c) { c.conv2d_bwd(p, x, w, dy, dx, dw, db, impl); },
       .trial =
           [&](const internal::Backend& c) {
             c.conv2d_bwd(p, xs.data(), ws.data(), dys.data(), dx ? dxs.data() : nullptr,
                          dw ? dws.data() : nullptr, db ? dbs.data() : nullptr, nullptr);
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

void conv2d_forward(const Conv2dParams& params, ConstTensorView x, ConstTensorView w,
                    std::span<const float> b, TensorView y, std::string_view backend) {
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
  const float* bias = p.has_bias ? b.data() : nullptr;
  Scratch xs(count(x.dims)), ws(count(w.dims)), bs(p.has_bias ? p.oc : 0), ys(count(y_dims));
  internal::run_call(
      "conv2d_fwd", internal::verbose_enabled(), [&] { return p.to_string(); },
      [&](std::string* impl) {
        internal::run_on_backend(
            backend,
            {.op = op,
             .verbose_op = "conv2d_fwd",
             .features = internal::conv2d_features(p, ConvPass::kForward, internal::num_threads()),
             .describe = [&] { return internal::problem_text(p); },
             .supports =
                 [&](const internal::Backend& c) {
                   return c.supports_conv2d(p, ConvPass::kForward);
                 },
             .attempt =
                 [&](const internal::Backend& c) {
                   c.conv2d_fwd(p, x.data, w.data, bias, y.data, impl);
                 },
             .trial =
                 [&](const internal::Backend& c) {
                   c.conv2d_fwd(p, xs.data(), ws.data(), p.has_bias ? bs.data() : nullptr,
                                ys.data(), nullptr);
                 }});
      });
}

void conv2d_backward(const Conv2dParams& params, ConstTensorView x, ConstTensorView w,
                     ConstTensorView dy, const Conv2dGrads& grads, std::string_view backend) {
  constexpr std::string_view op = "conv2d_backward";
  if (params.activation != Activation::kNone) {
    internal::fail(ErrorCode::kInvalidArgument, op, "params.activation",
                   "kNone (apply the activation's gradient to dy first)", "kRelu");
  }
  const Conv2dProblem p = internal::make_conv2d_problem(op, params, x.dims, w.dims, false);
  check_tensor(op, "x", x, x.dims);
  check_tensor(op, "w", w, w.dims);
  check_tensor(op, "dy", dy, {p.n, p.oh, p.ow, p.oc});
  const TensorView dx = grads.dx.value_or(TensorView{});
  const TensorView dw = grads.dw.value_or(TensorView{});
  const std::span<float> db = grads.db.value_or(std::span<float>{});
  if (grads.dx) check_tensor(op, "grads.dx", dx, x.dims);
  if (grads.dw) check_tensor(op, "grads.dw", dw, w.dims);
  if (grads.db) check_vector(op, "grads.db", db.data(), static_cast<int64_t>(db.size()), p.oc);
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
  float* dx_out = grads.dx ? dx.data : nullptr;
  float* dw_out = grads.dw ? dw.data : nullptr;
  float* db_out = grads.db ? db.data() : nullptr;
  const bool weights = dw_out != nullptr || db_out != nullptr;
  internal::run_call(
      "conv2d_bwd", internal::verbose_enabled(), [&] { return p.to_string(); },
      [&](std::string* impl) {
        if (!internal::auto_requested(op, backend)) {  // one backend runs every pass asked for
          run_conv2d_bwd(backend, op, p, x.data, w.data, dy.data, dx_out, dw_out, db_out, impl);
          return;
        }
        // auto chooses per pass: the fastest backend for dx is often not the fastest for dw.
        std::string data_impl, weights_impl;
        if (dx_out) {
          run_conv2d_bwd(backend, op, p, x.data, w.data, dy.data, dx_out, nullptr, nullptr,
                         impl ? &data_impl : nullptr);
        }
        if (weights) {
          run_conv2d_bwd(backend, op, p, x.data, w.data, dy.data, nullptr, dw_out, db_out,
                         impl ? &weights_impl : nullptr);
        }
        if (impl) *impl = data_impl + (dx_out && weights ? " + " : "") + weights_impl;
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
  internal::run_call(
      "pool2d_fwd", internal::verbose_enabled(), [&] { return p.to_string(); },
      [&](std::string* impl) {
        internal::run_on_backend(
            backend,
            {.op = op,
             .verbose_op = "pool2d_fwd",
             .features = internal::pool2d_features(p, PoolPass::kForward, internal::num_threads()),
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
  internal::run_call(
      "pool2d_bwd", internal::verbose_enabled(), [&] { return p.to_string(); },
      [&](std::string* impl) {
        internal::run_on_backend(
            backend,
            {.op = op,
             .verbose_op = "pool2d_bwd",
             .features = internal::pool2d_features(p, PoolPass::kBackward, internal::num_threads()),
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
