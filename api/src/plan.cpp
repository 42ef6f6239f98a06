// Plans: everything decided at creation; run() checks dims and pointers, then runs (DESIGN §3).
#include "convkit/plan.hpp"

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

namespace {

// run()'s checks: the planned dims, non-null data, no overlap. A few integer compares.
void check_run_args(std::string_view op, ConstTensorView x, TensorView y, const Dims& x_dims,
                    const Dims& y_dims) {
  check_tensor(op, "x", x, x_dims);
  check_tensor(op, "y", y, y_dims);
  check_no_overlap(op, {{"y", y.data, num_elements(y_dims)}},
                   {{"x", x.data, num_elements(x_dims)}});
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
  const internal::Backend& chosen = internal::select_backend(op, backend, [&](const auto& c) {
    return c.supports_conv2d(p, internal::ConvPass::kForward);
  });
  s.impl = internal::create_reporting_oom(
      op, [&] { return chosen.create_conv2d_fwd(p, w.data, p.has_bias ? b.data() : nullptr); });
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

const Dims& Conv2d::x_dims() const { return state_->x_dims; }
const Dims& Conv2d::y_dims() const { return state_->y_dims; }
const std::string& Conv2d::impl_name() const { return state_->impl_name; }

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
  const internal::Backend& chosen = internal::select_backend(
      op, backend, [&](const auto& c) { return c.supports_conv2d_transpose(p); });
  s.impl = internal::create_reporting_oom(op, [&] {
    return chosen.create_conv2d_transpose_fwd(p, w.data, p.has_bias ? b.data() : nullptr);
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
  const internal::Backend& chosen = internal::select_backend(op, backend, [&](const auto& c) {
    return c.supports_pool2d(p, internal::PoolPass::kForward);
  });
  s.impl = internal::create_reporting_oom(op, [&] { return chosen.create_pool2d_fwd(p); });
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

}  // namespace convkit
