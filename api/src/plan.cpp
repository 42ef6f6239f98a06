// Plans: everything decided at creation; run() checks dims and pointers, then runs (DESIGN §3).
#include "convkit/plan.hpp"

#include <algorithm>
#include <functional>
#include <type_traits>

#include "api/src/auto_select.hpp"
#include "api/src/call.hpp"
#include "api/src/registry.hpp"
#include "api/src/validate.hpp"

namespace convkit {
namespace internal {

struct Conv2dPlanState {
  Conv2dProblem problem;
  Dims x_dims, y_dims;
  std::unique_ptr<Conv2dFwdImpl> impl;
  std::string impl_name;
  bool verbose = false;  // CONVKIT_VERBOSE, read once at creation
};

struct Conv2dTransposePlanState {
  Conv2dTransposeProblem problem;
  Dims x_dims, y_dims;
  std::unique_ptr<Conv2dFwdImpl> impl;
  std::string impl_name;
  bool verbose = false;
};

struct Pool2dPlanState {
  Pool2dProblem problem;
  Dims x_dims, y_dims;
  std::unique_ptr<Pool2dFwdImpl> impl;
  std::string impl_name;
  bool verbose = false;
};

struct Conv2dBackwardPlanState {
  Conv2dProblem problem;
  Dims x_dims, w_dims, y_dims;
  Conv2dGradsWanted wanted;
  std::unique_ptr<Conv2dBwdImpl> impl;
  // Under auto with dx and dw or db wanted: the plan of dw and db, chosen on its own (impl then
  // computes dx only), as the one-shot conv2d_backward chooses per pass. Null otherwise.
  std::unique_ptr<Conv2dBwdImpl> weights_impl;
  std::string impl_name;
  bool verbose = false;
};

struct Pool2dBackwardPlanState {
  Pool2dProblem problem;
  Dims x_dims, y_dims;
  std::unique_ptr<Pool2dBwdImpl> impl;
  std::string impl_name;
  bool verbose = false;
};

namespace {

// run()'s checks: the planned dims, non-null data, no overlap. A few integer compares.
void check_run_args(std::string_view op, ConstTensorView x, TensorView y, const Dims& x_dims,
                    const Dims& y_dims) {
  check_tensor(op, "x", x, x_dims);
  check_tensor(op, "y", y, y_dims);
  check_no_overlap(op, {{"y", y.data, num_elements(y_dims)}},
                   {{"x", x.data, num_elements(x_dims)}});
}

// x * x_scale (x_scale {N, C} per image), for plans that cannot fuse the scale.
Tensor scale_channels(ConstTensorView x, const float* x_scale) {
  Tensor scaled(x.dims);
  const int64_t n = x.dims[0], pixels = x.dims[1] * x.dims[2], c = x.dims[3];
  for (int64_t i = 0; i < n; ++i) {
    const float* s = x_scale + i * c;
    for (int64_t p = 0; p < pixels; ++p) {
      const int64_t row = (i * pixels + p) * c;
      for (int64_t k = 0; k < c; ++k) scaled.data()[row + k] = x.data[row + k] * s[k];
    }
  }
  return scaled;
}

// x as one dense tensor from its channel pieces, for plans that cannot read them in place.
Tensor concatenate_channels(std::span<const ChannelPiece> pieces, const Dims& x_dims) {
  Tensor x(x_dims);
  const int64_t pixels = x_dims[0] * x_dims[1] * x_dims[2], c = x_dims[3];
  int64_t c0 = 0;
  for (const ChannelPiece& piece : pieces) {
    for (int64_t p = 0; p < pixels; ++p) {
      const float* src = piece.data + p * piece.pixel_stride;
      std::copy(src, src + piece.channels, x.data() + p * c + c0);
    }
    c0 += piece.channels;
  }
  return x;
}

// A moved-from plan has no state: refuse to run it rather than crash.
void check_plan(std::string_view op, const void* state) {
  if (state == nullptr)
    fail(ErrorCode::kInvalidArgument, op, "this", "a plan", "a moved-from plan");
}

template <typename Create>
auto create_reporting_oom(std::string_view op, Create create) {
  try {
    return create();
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::kOutOfMemory, std::string(op) + ": out of memory");
  }
}

// How auto's measure mode runs a plan: once, on the scratch x and y that create_plan holds (y is
// dy for backward plans, whose callers give the gradients).
template <typename Impl>
using TrialRun = std::function<void(const Impl& plan, float* x, float* y)>;

// The forward plans' trial run (without a residual); backward plans' callers give theirs.
template <typename Impl>
TrialRun<Impl> forward_trial_run() {
  if constexpr (std::is_same_v<Impl, Conv2dFwdImpl>) {
    return [](const Conv2dFwdImpl& plan, float* x, float* y) { plan.run(x, nullptr, y); };
  } else if constexpr (std::is_same_v<Impl, Pool2dFwdImpl>) {
    return [](const Pool2dFwdImpl& plan, float* x, float* y) { plan.run(x, y); };
  } else {
    return {};
  }
}

// The plan of the backend `requested` names, or auto's choice (DESIGN §5). create(backend)
// makes a backend's plan; a plan made to be timed under CONVKIT_AUTO=measure is the one kept, and
// the others are freed here. The scratch x and y are allocated only when measuring. trial_run:
// how measure mode runs a plan, given for backward plans (forward_trial_run otherwise).
template <typename Impl, typename Supports, typename Create>
std::unique_ptr<Impl> create_plan(std::string_view requested, std::string_view op,
                                  std::string_view verbose_op, const AutoFeatures& features,
                                  const std::string& problem, const Dims& x_dims,
                                  const Dims& y_dims, Supports supports, Create create,
                                  const TrialRun<Impl>& trial_run = {}) {
  PlanSlots<Impl> plans;
  const std::function<void(const Backend&)> attempt = [&](const Backend& c) {
    std::unique_ptr<Impl>& plan = plans[c];
    if (plan == nullptr) plan = create_reporting_oom(op, [&] { return create(c); });
  };
  Scratch x(num_elements(x_dims)), y(num_elements(y_dims));
  const TrialRun<Impl> run_trial = trial_run ? trial_run : forward_trial_run<Impl>();
  std::function<void(const Backend&)> trial;
  if (run_trial) {
    trial = [&](const Backend& c) {
      attempt(c);
      run_trial(*plans[c], x.data(), y.data());
    };
  }
  const Backend& chosen =
      run_on_backend(requested, {.op = op,
                                 .verbose_op = verbose_op,
                                 .features = features,
                                 .describe = [&] { return std::string_view(problem); },
                                 .supports = supports,
                                 .attempt = attempt,
                                 .trial = trial});
  return std::move(plans[chosen]);
}

}  // namespace
}  // namespace internal

Conv2d::Conv2d(const Conv2dParams& params, const Dims& x_dims, ConstTensorView w,
               std::span<const float> b, std::string_view backend)
    : state_(std::make_unique<internal::Conv2dPlanState>()) {
  constexpr std::string_view op = "Conv2d";
  internal::Conv2dPlanState& s = *state_;
  s.problem = internal::make_conv2d_problem(op, params, x_dims, w.dims, !b.empty());
  const internal::Conv2dProblem& p = s.problem;
  s.x_dims = x_dims;
  s.y_dims = {p.n, p.oh, p.ow, p.oc};
  internal::check_tensor(op, "w", w, w.dims);
  if (!b.empty()) internal::check_vector(op, "b", b.data(), static_cast<int64_t>(b.size()), p.oc);
  constexpr internal::ConvPass pass = internal::ConvPass::kForward;
  s.impl = internal::create_plan<internal::Conv2dFwdImpl>(
      backend, op, "conv2d_fwd",
      internal::conv2d_features(p, pass, internal::num_threads(), internal::CallKind::kPlan),
      p.to_string(), s.x_dims, s.y_dims,
      [&](const internal::Backend& c) { return c.supports_conv2d(p, pass); },
      [&](const internal::Backend& c) {
        return c.create_conv2d_fwd(p, w.data, p.has_bias ? b.data() : nullptr);
      });
  s.impl_name = s.impl->name();
  s.verbose = internal::verbose_enabled();
}

Conv2d::Conv2d(Conv2d&&) noexcept = default;
Conv2d& Conv2d::operator=(Conv2d&&) noexcept = default;
Conv2d::~Conv2d() = default;

void Conv2d::run(ConstTensorView x, TensorView y) const {
  internal::check_plan("Conv2d::run", state_.get());
  const internal::Conv2dPlanState& s = *state_;
  internal::check_run_args("Conv2d::run", x, y, s.x_dims, s.y_dims);
  internal::run_call(
      "conv2d_fwd", s.verbose, [&] { return s.problem.to_string(); },
      [&](std::string* impl) {
        s.impl->run(x.data, nullptr, y.data);
        if (impl != nullptr) *impl = s.impl_name;
      });
}

void Conv2d::run(ConstTensorView x, ConstTensorView r, TensorView y) const {
  internal::check_plan("Conv2d::run", state_.get());
  const internal::Conv2dPlanState& s = *state_;
  internal::check_run_args("Conv2d::run", x, y, s.x_dims, s.y_dims);
  internal::check_residual("Conv2d::run", r, x, y, s.y_dims);
  const float* r_data = num_elements(s.y_dims) > 0 ? r.data : nullptr;
  internal::run_call(
      "conv2d_fwd", s.verbose, [&] { return s.problem.to_string() + " residual"; },
      [&](std::string* impl) {
        s.impl->run(x.data, r_data, y.data);
        if (impl != nullptr) *impl = s.impl_name;
      });
}

void Conv2d::run_scaled(ConstTensorView x, ConstTensorView x_scale, ConstTensorView r,
                        TensorView y) const {
  constexpr std::string_view op = "Conv2d::run_scaled";
  internal::check_plan(op, state_.get());
  const internal::Conv2dPlanState& s = *state_;
  internal::check_run_args(op, x, y, s.x_dims, s.y_dims);
  const bool has_r = r.data != nullptr;
  if (has_r) internal::check_residual(op, r, x, y, s.y_dims);
  const Dims scale_dims{s.x_dims[0], 1, 1, s.x_dims[3]};
  internal::check_input_scale(op, x_scale, y, scale_dims);
  const float* r_data = has_r && num_elements(s.y_dims) > 0 ? r.data : nullptr;
  internal::run_call(
      "conv2d_fwd", s.verbose,
      [&] { return s.problem.to_string() + " x_scale" + (has_r ? " residual" : ""); },
      [&](std::string* impl) {
        if (s.impl->fuses_x_scale()) {
          s.impl->run_scaled(x.data, x_scale.data, r_data, y.data);
        } else {
          const Tensor scaled = internal::scale_channels(x, x_scale.data);
          s.impl->run(scaled.data(), r_data, y.data);
        }
        if (impl != nullptr) *impl = s.impl_name;
      });
}

void Conv2d::run_concatenated(std::span<const ChannelPiece> pieces, ConstTensorView r,
                              TensorView y) const {
  constexpr std::string_view op = "Conv2d::run_concatenated";
  internal::check_plan(op, state_.get());
  const internal::Conv2dPlanState& s = *state_;
  internal::check_tensor(op, "y", y, s.y_dims);
  const bool has_r = r.data != nullptr;
  if (has_r) internal::check_residual_against_y(op, r, y, s.y_dims);
  internal::check_channel_pieces(op, pieces, s.x_dims, y, has_r ? r : ConstTensorView());
  const float* r_data = has_r && num_elements(s.y_dims) > 0 ? r.data : nullptr;
  internal::run_call(
      "conv2d_fwd", s.verbose,
      [&] {
        return s.problem.to_string() + " pieces" + std::to_string(pieces.size()) +
               (has_r ? " residual" : "");
      },
      [&](std::string* impl) {
        if (s.impl->fuses_concat()) {
          s.impl->run_concatenated(pieces, r_data, y.data);
        } else {
          const Tensor x = internal::concatenate_channels(pieces, s.x_dims);
          s.impl->run(x.data(), r_data, y.data);
        }
        if (impl != nullptr) *impl = s.impl_name;
      });
}

const Dims& Conv2d::x_dims() const { return state_->x_dims; }
const Dims& Conv2d::y_dims() const { return state_->y_dims; }
const std::string& Conv2d::impl_name() const { return state_->impl_name; }
// A moved-from plan fuses nothing (and runs nothing: check_plan).
bool Conv2d::fuses_x_scale() const { return state_ != nullptr && state_->impl->fuses_x_scale(); }
bool Conv2d::fuses_concat() const { return state_ != nullptr && state_->impl->fuses_concat(); }

Conv2dTranspose::Conv2dTranspose(const Conv2dTransposeParams& params, const Dims& x_dims,
                                 ConstTensorView w, std::span<const float> b,
                                 std::string_view backend)
    : state_(std::make_unique<internal::Conv2dTransposePlanState>()) {
  constexpr std::string_view op = "Conv2dTranspose";
  internal::Conv2dTransposePlanState& s = *state_;
  s.problem = internal::make_conv2d_transpose_problem(op, params, x_dims, w.dims, !b.empty());
  const internal::Conv2dTransposeProblem& p = s.problem;
  s.x_dims = x_dims;
  s.y_dims = {p.n(), p.oh(), p.ow(), p.c_out()};
  internal::check_tensor(op, "w", w, w.dims);
  if (!b.empty()) {
    internal::check_vector(op, "b", b.data(), static_cast<int64_t>(b.size()), p.c_out());
  }
  // auto's table knows this op as its convolution's backward data.
  s.impl = internal::create_plan<internal::Conv2dFwdImpl>(
      backend, op, "conv2d_transpose_fwd",
      internal::conv2d_features(p.conv, internal::ConvPass::kBackwardData, internal::num_threads(),
                                internal::CallKind::kPlan),
      p.to_string(), s.x_dims, s.y_dims,
      [&](const internal::Backend& c) { return c.supports_conv2d_transpose(p); },
      [&](const internal::Backend& c) {
        return c.create_conv2d_transpose_fwd(p, w.data, p.has_bias ? b.data() : nullptr);
      });
  s.impl_name = s.impl->name();
  s.verbose = internal::verbose_enabled();
}

Conv2dTranspose::Conv2dTranspose(Conv2dTranspose&&) noexcept = default;
Conv2dTranspose& Conv2dTranspose::operator=(Conv2dTranspose&&) noexcept = default;
Conv2dTranspose::~Conv2dTranspose() = default;

void Conv2dTranspose::run(ConstTensorView x, TensorView y) const {
  internal::check_plan("Conv2dTranspose::run", state_.get());
  const internal::Conv2dTransposePlanState& s = *state_;
  internal::check_run_args("Conv2dTranspose::run", x, y, s.x_dims, s.y_dims);
  internal::run_call(
      "conv2d_transpose_fwd", s.verbose, [&] { return s.problem.to_string(); },
      [&](std::string* impl) {
        s.impl->run(x.data, nullptr, y.data);
        if (impl != nullptr) *impl = s.impl_name;
      });
}

void Conv2dTranspose::run(ConstTensorView x, ConstTensorView r, TensorView y) const {
  internal::check_plan("Conv2dTranspose::run", state_.get());
  const internal::Conv2dTransposePlanState& s = *state_;
  internal::check_run_args("Conv2dTranspose::run", x, y, s.x_dims, s.y_dims);
  internal::check_residual("Conv2dTranspose::run", r, x, y, s.y_dims);
  const float* r_data = num_elements(s.y_dims) > 0 ? r.data : nullptr;
  internal::run_call(
      "conv2d_transpose_fwd", s.verbose, [&] { return s.problem.to_string() + " residual"; },
      [&](std::string* impl) {
        s.impl->run(x.data, r_data, y.data);
        if (impl != nullptr) *impl = s.impl_name;
      });
}

const Dims& Conv2dTranspose::x_dims() const { return state_->x_dims; }
const Dims& Conv2dTranspose::y_dims() const { return state_->y_dims; }
const std::string& Conv2dTranspose::impl_name() const { return state_->impl_name; }

Pool2d::Pool2d(const Pool2dParams& params, const Dims& x_dims, std::string_view backend)
    : state_(std::make_unique<internal::Pool2dPlanState>()) {
  constexpr std::string_view op = "Pool2d";
  internal::Pool2dPlanState& s = *state_;
  s.problem = internal::make_pool2d_problem(op, params, x_dims);
  const internal::Pool2dProblem& p = s.problem;
  s.x_dims = x_dims;
  s.y_dims = {p.n, p.oh, p.ow, p.c};
  constexpr internal::PoolPass pass = internal::PoolPass::kForward;
  s.impl = internal::create_plan<internal::Pool2dFwdImpl>(
      backend, op, "pool2d_fwd",
      internal::pool2d_features(p, pass, internal::num_threads(), internal::CallKind::kPlan),
      p.to_string(), s.x_dims, s.y_dims,
      [&](const internal::Backend& c) { return c.supports_pool2d(p, pass); },
      [&](const internal::Backend& c) { return c.create_pool2d_fwd(p); });
  s.impl_name = s.impl->name();
  s.verbose = internal::verbose_enabled();
}

Pool2d::Pool2d(Pool2d&&) noexcept = default;
Pool2d& Pool2d::operator=(Pool2d&&) noexcept = default;
Pool2d::~Pool2d() = default;

void Pool2d::run(ConstTensorView x, TensorView y) const {
  internal::check_plan("Pool2d::run", state_.get());
  const internal::Pool2dPlanState& s = *state_;
  internal::check_run_args("Pool2d::run", x, y, s.x_dims, s.y_dims);
  internal::run_call(
      "pool2d_fwd", s.verbose, [&] { return s.problem.to_string(); },
      [&](std::string* impl) {
        s.impl->run(x.data, y.data);
        if (impl != nullptr) *impl = s.impl_name;
      });
}

const Dims& Pool2d::x_dims() const { return state_->x_dims; }
const Dims& Pool2d::y_dims() const { return state_->y_dims; }
const std::string& Pool2d::impl_name() const { return state_->impl_name; }

namespace {

// A backward plan's run() requires exactly the gradients it was created for.
void check_wanted(std::string_view op, std::string_view arg, bool wanted, bool given) {
  if (wanted == given) return;
  internal::fail(
      ErrorCode::kInvalidArgument, op, arg,
      wanted ? "a gradient (the plan computes it)" : "none (the plan was created without it)",
      given ? "a gradient" : "none");
}

// The backward plan of the passes `wanted` on the backend `backend` names, or auto's choice for
// them (keyed as the backward data when dx is wanted, else as the backward weights).
std::unique_ptr<internal::Conv2dBwdImpl> create_conv2d_bwd_plan(
    std::string_view op, std::string_view backend, const internal::Conv2dProblem& p, const float* w,
    Conv2dGradsWanted wanted, const Dims& x_dims, const Dims& y_dims) {
  const internal::ConvPass pass =
      wanted.dx ? internal::ConvPass::kBackwardData : internal::ConvPass::kBackwardWeights;
  internal::ScratchGrads grads(p, wanted);  // measure mode's trial runs write them
  const internal::TrialRun<internal::Conv2dBwdImpl> trial_run =
      [&](const internal::Conv2dBwdImpl& plan, float* x, float* dy) {
        plan.run(x, dy, grads.dx(), grads.dw(), grads.db());
      };
  return internal::create_plan<internal::Conv2dBwdImpl>(
      backend, op,
      pass == internal::ConvPass::kBackwardData ? "conv2d_bwd_data" : "conv2d_bwd_weights",
      internal::conv2d_features(p, pass, internal::num_threads(), internal::CallKind::kPlan),
      p.to_string(), x_dims, y_dims,
      [&](const internal::Backend& c) { return internal::supports_conv2d_bwd(c, p, wanted); },
      [&](const internal::Backend& c) { return c.create_conv2d_bwd(p, w, wanted); }, trial_run);
}

}  // namespace

Conv2dBackward::Conv2dBackward(const Conv2dParams& params, const Dims& x_dims, ConstTensorView w,
                               Conv2dGradsWanted wanted, std::string_view backend)
    : state_(std::make_unique<internal::Conv2dBackwardPlanState>()) {
  constexpr std::string_view op = "Conv2dBackward";
  internal::check_backward_activation(op, params.activation, params.post_scale, params.post_shift);
  if (!wanted.dx && !wanted.dw && !wanted.db) {
    internal::fail(ErrorCode::kInvalidArgument, op, "wanted", "at least one of dx, dw, db", "none");
  }
  internal::Conv2dBackwardPlanState& s = *state_;
  s.problem = internal::make_conv2d_problem(op, params, x_dims, w.dims, false);
  s.problem.fpmath = Fpmath::kStrict;  // fpmath is the forward pass's (kBf16 permits fp32)
  const internal::Conv2dProblem& p = s.problem;
  internal::check_tensor(op, "w", w, w.dims);
  s.x_dims = x_dims;
  s.w_dims = w.dims;
  s.y_dims = {p.n, p.oh, p.ow, p.oc};
  s.wanted = wanted;
  // auto chooses per pass: the fastest backend for dx is often not the fastest for dw (oneDNN's
  // depthwise dw runs 40x highway's where its dx is the faster).
  const bool split = (wanted.dw || wanted.db) && wanted.dx && internal::auto_requested(op, backend);
  const Conv2dGradsWanted data_wanted =
      split ? Conv2dGradsWanted{.dx = true, .dw = false, .db = false} : wanted;
  s.impl = create_conv2d_bwd_plan(op, backend, p, w.data, data_wanted, s.x_dims, s.y_dims);
  s.impl_name = s.impl->name();
  if (split) {
    const Conv2dGradsWanted weights_wanted{.dx = false, .dw = wanted.dw, .db = wanted.db};
    s.weights_impl =
        create_conv2d_bwd_plan(op, backend, p, w.data, weights_wanted, s.x_dims, s.y_dims);
    s.impl_name += " + " + s.weights_impl->name();
  }
  s.verbose = internal::verbose_enabled();
}

Conv2dBackward::Conv2dBackward(Conv2dBackward&&) noexcept = default;
Conv2dBackward& Conv2dBackward::operator=(Conv2dBackward&&) noexcept = default;
Conv2dBackward::~Conv2dBackward() = default;

void Conv2dBackward::set_weights(ConstTensorView w) {
  constexpr std::string_view op = "Conv2dBackward::set_weights";
  internal::check_plan(op, state_.get());
  internal::Conv2dBackwardPlanState& s = *state_;
  internal::check_tensor(op, "w", w, s.w_dims);
  internal::create_reporting_oom(op, [&] {
    s.impl->set_weights(w.data);
    if (s.weights_impl != nullptr) s.weights_impl->set_weights(w.data);
    return 0;
  });
}

void Conv2dBackward::run(ConstTensorView x, ConstTensorView dy, const Conv2dGrads& grads) const {
  constexpr std::string_view op = "Conv2dBackward::run";
  internal::check_plan(op, state_.get());
  const internal::Conv2dBackwardPlanState& s = *state_;
  check_wanted(op, "grads.dx", s.wanted.dx, grads.dx.has_value());
  check_wanted(op, "grads.dw", s.wanted.dw, grads.dw.has_value());
  check_wanted(op, "grads.db", s.wanted.db, grads.db.has_value());
  // x is read for dw only; otherwise it may be absent (null data), and is checked when given.
  const bool x_given = s.wanted.dw || x.data != nullptr;
  if (x_given) internal::check_tensor(op, "x", x, s.x_dims);
  internal::check_tensor(op, "dy", dy, s.y_dims);
  const internal::Conv2dGradPointers out =
      internal::check_conv2d_grads(op, grads, s.x_dims, s.w_dims, s.problem.oc,
                                   {{"x", x.data, x_given ? num_elements(s.x_dims) : 0},
                                    {"dy", dy.data, num_elements(s.y_dims)}});
  internal::run_call(
      "conv2d_bwd", s.verbose, [&] { return s.problem.to_string(); },
      [&](std::string* impl) {
        const float* x_data = x_given ? x.data : nullptr;
        if (s.weights_impl == nullptr) {
          s.impl->run(x_data, dy.data, out.dx, out.dw, out.db);
        } else {
          s.impl->run(x_data, dy.data, out.dx, nullptr, nullptr);
          s.weights_impl->run(x_data, dy.data, nullptr, out.dw, out.db);
        }
        if (impl != nullptr) *impl = s.impl_name;
      });
}

const Dims& Conv2dBackward::x_dims() const { return state_->x_dims; }
const Dims& Conv2dBackward::w_dims() const { return state_->w_dims; }
const Dims& Conv2dBackward::y_dims() const { return state_->y_dims; }
const Conv2dGradsWanted& Conv2dBackward::wanted() const { return state_->wanted; }
const std::string& Conv2dBackward::impl_name() const { return state_->impl_name; }

Pool2dBackward::Pool2dBackward(const Pool2dParams& params, const Dims& x_dims,
                               std::string_view backend)
    : state_(std::make_unique<internal::Pool2dBackwardPlanState>()) {
  constexpr std::string_view op = "Pool2dBackward";
  internal::Pool2dBackwardPlanState& s = *state_;
  s.problem = internal::make_pool2d_problem(op, params, x_dims);
  const internal::Pool2dProblem& p = s.problem;
  s.x_dims = x_dims;
  s.y_dims = {p.n, p.oh, p.ow, p.c};
  constexpr internal::PoolPass pass = internal::PoolPass::kBackward;
  internal::Scratch dx(num_elements(x_dims));  // measure mode's trial runs write it
  const internal::TrialRun<internal::Pool2dBwdImpl> trial_run =
      [&](const internal::Pool2dBwdImpl& plan, float* x, float* dy) { plan.run(x, dy, dx.data()); };
  s.impl = internal::create_plan<internal::Pool2dBwdImpl>(
      backend, op, "pool2d_bwd",
      internal::pool2d_features(p, pass, internal::num_threads(), internal::CallKind::kPlan),
      p.to_string(), s.x_dims, s.y_dims,
      [&](const internal::Backend& c) { return c.supports_pool2d(p, pass); },
      [&](const internal::Backend& c) { return c.create_pool2d_bwd(p); }, trial_run);
  s.impl_name = s.impl->name();
  s.verbose = internal::verbose_enabled();
}

Pool2dBackward::Pool2dBackward(Pool2dBackward&&) noexcept = default;
Pool2dBackward& Pool2dBackward::operator=(Pool2dBackward&&) noexcept = default;
Pool2dBackward::~Pool2dBackward() = default;

void Pool2dBackward::run(ConstTensorView x, ConstTensorView dy, TensorView dx) const {
  constexpr std::string_view op = "Pool2dBackward::run";
  internal::check_plan(op, state_.get());
  const internal::Pool2dBackwardPlanState& s = *state_;
  internal::check_tensor(op, "x", x, s.x_dims);
  internal::check_tensor(op, "dy", dy, s.y_dims);
  internal::check_tensor(op, "dx", dx, s.x_dims);
  internal::check_no_overlap(
      op, {{"dx", dx.data, num_elements(s.x_dims)}},
      {{"x", x.data, num_elements(s.x_dims)}, {"dy", dy.data, num_elements(s.y_dims)}});
  internal::run_call(
      "pool2d_bwd", s.verbose, [&] { return s.problem.to_string(); },
      [&](std::string* impl) {
        s.impl->run(x.data, dy.data, dx.data);
        if (impl != nullptr) *impl = s.impl_name;
      });
}

const Dims& Pool2dBackward::x_dims() const { return state_->x_dims; }
const Dims& Pool2dBackward::y_dims() const { return state_->y_dims; }
const std::string& Pool2dBackward::impl_name() const { return state_->impl_name; }

}  // namespace convkit
