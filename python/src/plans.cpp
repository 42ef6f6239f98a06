// The plans of convkit._convkit: convkit's C++ plans (plan.hpp) held by Python objects. Creation
// parses and converts everything once (w and b are copied into the plan); run() imports x (and dy)
// without a copy when they are dense float32 C-ordered, checks the shapes against the plan, writes
// into `out` when given (else into one new array per output) and releases the GIL while the plan
// runs.
#include "python/src/plans.hpp"

#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <array>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "convkit/error.hpp"
#include "convkit/plan.hpp"
#include "python/src/args.hpp"
#include "python/src/arrays.hpp"
#include "python/src/bindings.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace convkit::python {
namespace {

nb::tuple shape_tuple(const Dims& dims) {
  return nb::make_tuple(dims[0], dims[1], dims[2], dims[3]);
}

// One output of a run: the caller's `out` array, checked and written in place, or a new array
// (with `flat`, 1-D of the dims' element count, as db).
class Output {
 public:
  Output(std::string_view op, std::string_view arg, nb::handle given, const Dims& dims,
         bool flat = false)
      : arg_(arg), dims_(dims), flat_(flat), given_(given) {
    if (given.is_none()) {
      fresh_.emplace(dims);
      data_ = fresh_->data();
    } else {
      caller_ = import_output(op, arg, given, dims, flat);
      data_ = caller_.data();
    }
  }

  TensorView view() const { return {data_, dims_}; }
  std::span<float> span() const { return {data_, static_cast<size_t>(num_elements(dims_))}; }
  std::string_view arg() const { return arg_; }

  // The caller's array, or the new one (which owns its memory from now on).
  nb::object result() && {
    if (!fresh_) return nb::borrow(given_);
    return nb::cast(std::move(*fresh_).release(flat_));
  }

 private:
  std::string_view arg_;
  Dims dims_;
  bool flat_;
  nb::handle given_;
  std::optional<OutputBuffer> fresh_;
  WritableArray caller_;
  float* data_ = nullptr;
};

// A caller's `out` must not overlap an input the plan reads (a new array never does).
void check_output_distinct(std::string_view op, const Output& out, std::string_view in_arg,
                           ConstTensorView in) {
  check_distinct(op, out.arg(), out.view().data, num_elements(out.view().dims), in_arg, in.data,
                 num_elements(in.dims));
}

// The (dx, dw, db) of `out`, each None or an array; `out` itself None or a 3-sequence.
std::array<nb::handle, 3> split_out(std::string_view op, nb::handle out) {
  if (out.is_none()) return {nb::none(), nb::none(), nb::none()};
  if (!nb::isinstance<nb::tuple>(out) && !nb::isinstance<nb::list>(out)) {
    fail_argument(op, "out", "None or a sequence (dx, dw, db) of arrays or None",
                  nb::cast<std::string>(nb::repr(out.type())));
  }
  if (nb::len(out) != 3) {
    fail_argument(op, "out", "3 items (dx, dw, db)", std::to_string(nb::len(out)) + " items");
  }
  return {out[0], out[1], out[2]};
}

// The fused residual: None (nullopt) or an array of y's dims (import_input's rules).
std::optional<InputArray> import_residual(std::string_view op, nb::handle residual,
                                          const Dims& y_dims) {
  if (residual.is_none()) return std::nullopt;
  return import_input(op, "residual", residual, y_dims);
}

std::span<const float> bias_span(const std::optional<InputArray>& b) {
  return b ? std::span<const float>(b->data(), b->size()) : std::span<const float>();
}

Conv2d make_conv2d(const InputArray& w, const std::optional<InputArray>& b, nb::handle x_shape,
                   nb::handle stride, nb::handle padding, nb::handle dilation, nb::handle groups,
                   nb::handle activation, bool residual_after_activation,
                   const std::optional<std::string>& backend, const std::string& fpmath) {
  constexpr std::string_view op = "Conv2d";
  const ConstTensorView w_view = view_4d(op, "w", "(KH, KW, C_in / groups, C_out)", w);
  Conv2dParams params = conv2d_params(op, w_view.dims, stride, padding, dilation, groups,
                                      parse_activation(op, activation));
  params.residual_after_activation = residual_after_activation;
  params.fpmath = parse_fpmath(op, fpmath);
  return Conv2d(params, parse_dims(op, "x_shape", x_shape), w_view, bias_span(b),
                backend_name(backend));
}

Conv2dTranspose make_conv2d_transpose(const InputArray& w, const std::optional<InputArray>& b,
                                      nb::handle x_shape, nb::handle stride, nb::handle padding,
                                      nb::handle output_padding, nb::handle dilation,
                                      nb::handle groups, nb::handle activation,
                                      bool residual_after_activation,
                                      const std::optional<std::string>& backend,
                                      const std::string& fpmath) {
  constexpr std::string_view op = "Conv2dTranspose";
  const ConstTensorView w_view = view_4d(op, "w", "(KH, KW, C_out / groups, C_in)", w);
  Conv2dTransposeParams params =
      conv2d_transpose_params(op, w_view.dims, stride, padding, output_padding, dilation, groups,
                              parse_activation(op, activation), residual_after_activation);
  params.fpmath = parse_fpmath(op, fpmath);
  return Conv2dTranspose(params, parse_dims(op, "x_shape", x_shape), w_view, bias_span(b),
                         backend_name(backend));
}

// The run of a forward plan (Conv2d, Conv2dTranspose, Pool2d): x imported, y into `out` or a new
// array, the residual (None, or y's shape; it may be `out` itself, never overlap x) added by the
// plan's fused post-ops.
// x_scale (Conv2d only): None or an array (N, 1, 1, C_in) multiplying x's channels per image.
template <typename Plan>
nb::object run_forward(std::string_view op, const Plan& plan, nb::handle x, nb::handle out,
                       nb::handle residual, nb::handle x_scale = nb::none()) {
  const InputArray x_array = import_input(op, "x", x, plan.x_dims());
  const ConstTensorView x_view{x_array.data(), plan.x_dims()};
  const std::optional<InputArray> r_array = import_residual(op, residual, plan.y_dims());
  const ConstTensorView r_view =
      r_array ? ConstTensorView{r_array->data(), plan.y_dims()} : ConstTensorView{};
  Output y(op, "out", out, plan.y_dims());
  check_output_distinct(op, y, "x", x_view);
  if (r_array) {
    check_distinct(op, "residual", r_view.data, num_elements(r_view.dims), "x", x_view.data,
                   num_elements(x_view.dims));
    if (r_view.data != y.view().data) {  // in place (residual is out) is allowed
      check_output_distinct(op, y, "residual", r_view);
    }
  }
  if constexpr (requires { plan.run_scaled(x_view, x_view, r_view, y.view()); }) {
    if (!x_scale.is_none()) {
      const Dims scale_dims{plan.x_dims()[0], 1, 1, plan.x_dims()[3]};
      const InputArray s_array = import_input(op, "x_scale", x_scale, scale_dims);
      const ConstTensorView s_view{s_array.data(), scale_dims};
      check_output_distinct(op, y, "x_scale", s_view);
      {
        nb::gil_scoped_release unlocked;
        plan.run_scaled(x_view, s_view, r_view, y.view());
      }
      return std::move(y).result();
    }
  }
  {
    nb::gil_scoped_release unlocked;
    if constexpr (requires { plan.run(x_view, r_view, y.view()); }) {
      if (r_array) {
        plan.run(x_view, r_view, y.view());
      } else {
        plan.run(x_view, y.view());
      }
    } else {
      plan.run(x_view, y.view());
    }
  }
  return std::move(y).result();
}

using StridedArray4 = nb::ndarray<const float, nb::ndim<4>, nb::device::cpu>;

// x given as a sequence of channel pieces (Conv2d.run_concatenated): each a float32 array
// (N, H, W, C_i) of x's N, H and W whose channels are consecutive and whose pixels are evenly
// spaced (a dense array, or a channel slice of a wider NHWC array), read in place.
std::vector<ChannelPiece> import_pieces(std::string_view op, nb::handle x, const Dims& x_dims,
                                        std::vector<StridedArray4>& arrays) {
  const size_t count = nb::len(x);
  std::vector<ChannelPiece> pieces;
  for (size_t i = 0; i < count; ++i) {
    const std::string arg = "x[" + std::to_string(i) + "]";
    nb::handle item = x[i];
    StridedArray4 a;
    if (!nb::try_cast(item, a, false)) {
      fail_argument(op, arg, "a float32 array (N, H, W, C_i) on the CPU",
                    nb::cast<std::string>(nb::repr(item.type())));
    }
    const int64_t n = a.shape(0), h = a.shape(1), w = a.shape(2), c = a.shape(3);
    if (n != x_dims[0] || h != x_dims[1] || w != x_dims[2]) {
      const int64_t given[4] = {n, h, w, c};
      fail_argument(op, arg, "x_shape's N, H, W " + shape_string(x_dims.data(), 3),
                    "shape " + shape_string(given, 4));
    }
    // The step from a pixel to the next: the stride of the innermost axis of more than one.
    const int64_t pixel = w > 1 ? a.stride(2) : h > 1 ? a.stride(1) : n > 1 ? a.stride(0) : c;
    const bool unit_channels = c == 1 || a.stride(3) == 1;
    const bool even = (w == 1 || a.stride(2) == pixel) && (h == 1 || a.stride(1) == w * pixel) &&
                      (n == 1 || a.stride(0) == h * w * pixel);
    if (!unit_channels || !even || pixel < c) {
      const int64_t strides[4] = {a.stride(0), a.stride(1), a.stride(2), a.stride(3)};
      fail_argument(op, arg,
                    "consecutive channels and evenly spaced pixels (a dense array or a channel "
                    "slice of one)",
                    "strides (in floats) " + shape_string(strides, 4));
    }
    pieces.push_back({a.data(), c, pixel});
    arrays.push_back(std::move(a));
  }
  return pieces;
}

}  // namespace

Conv2dPlan::Conv2dPlan(const InputArray& w, const std::optional<InputArray>& b, nb::handle x_shape,
                       nb::handle stride, nb::handle padding, nb::handle dilation,
                       nb::handle groups, nb::handle activation, bool residual_after_activation,
                       const std::optional<std::string>& backend, const std::string& fpmath)
    : plan_(make_conv2d(w, b, x_shape, stride, padding, dilation, groups, activation,
                        residual_after_activation, backend, fpmath)) {}

nb::object Conv2dPlan::run(nb::handle x, nb::handle out, nb::handle residual,
                           nb::handle x_scale) const {
  constexpr std::string_view op = "Conv2d.run";
  if (!nb::isinstance<nb::list>(x) && !nb::isinstance<nb::tuple>(x)) {
    return run_forward(op, plan_, x, out, residual, x_scale);
  }
  if (!x_scale.is_none()) fail_argument(op, "x_scale", "None with x given as pieces", "a scale");
  std::vector<StridedArray4> arrays;
  const std::vector<ChannelPiece> pieces = import_pieces(op, x, plan_.x_dims(), arrays);
  const std::optional<InputArray> r_array = import_residual(op, residual, plan_.y_dims());
  const ConstTensorView r_view =
      r_array ? ConstTensorView{r_array->data(), plan_.y_dims()} : ConstTensorView{};
  Output y(op, "out", out, plan_.y_dims());
  {
    nb::gil_scoped_release unlocked;
    plan_.run_concatenated(pieces, r_view, y.view());
  }
  return std::move(y).result();
}

Conv2dTransposePlan::Conv2dTransposePlan(const InputArray& w, const std::optional<InputArray>& b,
                                         nb::handle x_shape, nb::handle stride, nb::handle padding,
                                         nb::handle output_padding, nb::handle dilation,
                                         nb::handle groups, nb::handle activation,
                                         bool residual_after_activation,
                                         const std::optional<std::string>& backend,
                                         const std::string& fpmath)
    : plan_(make_conv2d_transpose(w, b, x_shape, stride, padding, output_padding, dilation, groups,
                                  activation, residual_after_activation, backend, fpmath)) {}

nb::object Conv2dTransposePlan::run(nb::handle x, nb::handle out, nb::handle residual) const {
  return run_forward("Conv2dTranspose.run", plan_, x, out, residual);
}

Pool2dPlan::Pool2dPlan(nb::handle window, nb::handle x_shape, nb::handle stride, nb::handle padding,
                       const std::string& mode, bool ceil_mode, bool count_include_pad,
                       const std::optional<std::string>& backend)
    : plan_(pool2d_params("Pool2d", window, stride, padding, mode, ceil_mode, count_include_pad),
            parse_dims("Pool2d", "x_shape", x_shape), backend_name(backend)) {}

nb::object Pool2dPlan::run(nb::handle x, nb::handle out) const {
  return run_forward("Pool2d.run", plan_, x, out, nb::none());
}

namespace {

Conv2dBackward make_conv2d_backward(const InputArray& w, nb::handle x_shape, nb::handle stride,
                                    nb::handle padding, nb::handle dilation, nb::handle groups,
                                    bool dx, bool dw, bool db,
                                    const std::optional<std::string>& backend) {
  constexpr std::string_view op = "Conv2dBackward";
  const ConstTensorView w_view = view_4d(op, "w", "(KH, KW, C_in / groups, C_out)", w);
  const Conv2dParams params =
      conv2d_params(op, w_view.dims, stride, padding, dilation, groups, ActivationArg{});
  return Conv2dBackward(params, parse_dims(op, "x_shape", x_shape), w_view, {dx, dw, db},
                        backend_name(backend));
}

}  // namespace

Conv2dBackwardPlan::Conv2dBackwardPlan(const InputArray& w, nb::handle x_shape, nb::handle stride,
                                       nb::handle padding, nb::handle dilation, nb::handle groups,
                                       bool dx, bool dw, bool db,
                                       const std::optional<std::string>& backend)
    : plan_(make_conv2d_backward(w, x_shape, stride, padding, dilation, groups, dx, dw, db,
                                 backend)) {}

void Conv2dBackwardPlan::set_weights(nb::handle w) {
  const InputArray w_array = import_input("Conv2dBackward.set_weights", "w", w, plan_.w_dims());
  nb::gil_scoped_release unlocked;
  plan_.set_weights({w_array.data(), plan_.w_dims()});
}

nb::tuple Conv2dBackwardPlan::run(nb::handle x, nb::handle dy, nb::handle out) const {
  constexpr std::string_view op = "Conv2dBackward.run";
  const Conv2dGradsWanted& wanted = plan_.wanted();
  // x is read for dw only: without dw it may be None (and is still checked when given).
  std::optional<InputArray> x_array;
  if (wanted.dw || !x.is_none()) x_array = import_input(op, "x", x, plan_.x_dims());
  const ConstTensorView x_view =
      x_array ? ConstTensorView{x_array->data(), plan_.x_dims()} : ConstTensorView{};
  const InputArray dy_array = import_input(op, "dy", dy, plan_.y_dims());
  const ConstTensorView dy_view{dy_array.data(), plan_.y_dims()};

  const std::array<nb::handle, 3> outs = split_out(op, out);
  const std::array<std::string_view, 3> names = {"out[0] (dx)", "out[1] (dw)", "out[2] (db)"};
  const std::array<bool, 3> wants = {wanted.dx, wanted.dw, wanted.db};
  for (size_t i = 0; i < 3; ++i) {
    if (!wants[i] && !outs[i].is_none()) {
      fail_argument(op, names[i], "None (the plan was created without this gradient)", "an array");
    }
  }
  const Dims db_dims = {plan_.w_dims()[3], 1, 1, 1};
  std::optional<Output> dx, dw, db;
  if (wanted.dx) dx.emplace(op, names[0], outs[0], plan_.x_dims());
  if (wanted.dw) dw.emplace(op, names[1], outs[1], plan_.w_dims());
  if (wanted.db) db.emplace(op, names[2], outs[2], db_dims, /*flat=*/true);
  const std::array<const std::optional<Output>*, 3> grads = {&dx, &dw, &db};
  for (size_t i = 0; i < 3; ++i) {
    if (!*grads[i]) continue;
    const Output& g = **grads[i];
    check_output_distinct(op, g, "x", x_view);
    check_output_distinct(op, g, "dy", dy_view);
    for (size_t j = 0; j < i; ++j) {
      if (*grads[j]) check_output_distinct(op, g, (*grads[j])->arg(), (*grads[j])->view());
    }
  }
  Conv2dGrads views;
  if (dx) views.dx = dx->view();
  if (dw) views.dw = dw->view();
  if (db) views.db = db->span();
  {
    nb::gil_scoped_release unlocked;
    plan_.run(x_view, dy_view, views);
  }
  const auto result = [](std::optional<Output>& g) {
    return g ? std::move(*g).result() : nb::none();
  };
  return nb::make_tuple(result(dx), result(dw), result(db));
}

Pool2dBackwardPlan::Pool2dBackwardPlan(nb::handle window, nb::handle x_shape, nb::handle stride,
                                       nb::handle padding, const std::string& mode, bool ceil_mode,
                                       bool count_include_pad,
                                       const std::optional<std::string>& backend)
    : plan_(pool2d_params("Pool2dBackward", window, stride, padding, mode, ceil_mode,
                          count_include_pad),
            parse_dims("Pool2dBackward", "x_shape", x_shape), backend_name(backend)) {}

nb::object Pool2dBackwardPlan::run(nb::handle x, nb::handle dy, nb::handle out) const {
  constexpr std::string_view op = "Pool2dBackward.run";
  const InputArray x_array = import_input(op, "x", x, plan_.x_dims());
  const ConstTensorView x_view{x_array.data(), plan_.x_dims()};
  const InputArray dy_array = import_input(op, "dy", dy, plan_.y_dims());
  const ConstTensorView dy_view{dy_array.data(), plan_.y_dims()};
  Output dx(op, "out", out, plan_.x_dims());
  check_output_distinct(op, dx, "x", x_view);
  check_output_distinct(op, dx, "dy", dy_view);
  {
    nb::gil_scoped_release unlocked;
    plan_.run(x_view, dy_view, dx.view());
  }
  return std::move(dx).result();
}

namespace {

// The read-only properties every plan has.
template <typename Class, typename Plan>
void add_shape_properties(nb::class_<Class>& c, const Plan& (Class::*plan)() const) {
  c.def_prop_ro(
       "impl", [plan](const Class& self) { return (self.*plan)().impl_name(); },
       "The implementation chosen, 'backend:variant:isa'.")
      .def_prop_ro(
          "x_shape", [plan](const Class& self) { return shape_tuple((self.*plan)().x_dims()); },
          "The planned input shape (N, H, W, C).")
      .def_prop_ro(
          "y_shape", [plan](const Class& self) { return shape_tuple((self.*plan)().y_dims()); },
          "The planned output shape (N, OH, OW, C_out): y's, or dy's for backward plans.");
}

}  // namespace

void add_plans(nb::module_& m) {
  nb::class_<Conv2dPlan> conv(m, "Conv2d",
                              "A planned convolution: y = activation(conv2d(x, w) + b), with a "
                              "residual when run() is given one, for inputs of x_shape; w and b "
                              "copied and packed once. run() is thread-safe.");
  conv.def(nb::init<const InputArray&, const std::optional<InputArray>&, nb::handle, nb::handle,
                    nb::handle, nb::handle, nb::handle, nb::handle, bool,
                    const std::optional<std::string>&, const std::string&>(),
           "w"_a, "b"_a.none() = nb::none(), nb::kw_only(), "x_shape"_a, "stride"_a = 1,
           "padding"_a = 0, "dilation"_a = 1, "groups"_a = 1, "activation"_a.none() = nb::none(),
           "residual_after_activation"_a = false, "backend"_a.none() = nb::none(),
           "fpmath"_a = "strict",
           "w (KH, KW, C_in / groups, C_out); b None or C_out elements; x_shape (N, H, W, C_in); "
           "the other arguments as for conv2d().")
      .def("run", &Conv2dPlan::run, "x"_a.none(), "out"_a.none() = nb::none(),
           "residual"_a.none() = nb::none(), "x_scale"_a.none() = nb::none(),
           "y for x of x_shape (numpy or any DLPack producer; float32 C-ordered data are read in "
           "place, others converted). With out (a writable C-contiguous float32 array of y_shape) "
           "y is written there and out returned; otherwise a new array. residual: None or an "
           "array of y_shape added before the activation (after it with "
           "residual_after_activation); it may be out itself, never overlap x. x_scale: None or "
           "an array (N, 1, 1, C_in): the convolution then reads x * x_scale (a "
           "squeeze-and-excitation gate; fused into 1x1 layers on highway, see fuses_x_scale). "
           "x may also be a list of float32 arrays (N, H, W, C_i) whose channels sum to C_in: "
           "their concatenation along C, read in place (dense arrays or channel slices of "
           "wider ones; see fuses_concat).")
      .def("__call__", &Conv2dPlan::run, "x"_a.none(), "out"_a.none() = nb::none(),
           "residual"_a.none() = nb::none(), "x_scale"_a.none() = nb::none(), "As run().")
      .def_prop_ro(
          "fuses_x_scale", [](const Conv2dPlan& self) { return self.plan().fuses_x_scale(); },
          "Whether run(x_scale=...) applies the scale inside the convolution; otherwise the plan "
          "scales a copy of x first.")
      .def_prop_ro(
          "fuses_concat", [](const Conv2dPlan& self) { return self.plan().fuses_concat(); },
          "Whether run([x0, x1, ...]) reads the pieces in place; otherwise the plan "
          "concatenates them into a copy first.");
  add_shape_properties(conv, &Conv2dPlan::plan);

  nb::class_<Conv2dTransposePlan> transpose(
      m, "Conv2dTranspose",
      "A planned transposed convolution (PyTorch's ConvTranspose2d in NHWC): y = "
      "activation(conv2d_transpose(x, w) + b), with a residual when run() is given one, for "
      "inputs of x_shape. run() is thread-safe.");
  transpose
      .def(nb::init<const InputArray&, const std::optional<InputArray>&, nb::handle, nb::handle,
                    nb::handle, nb::handle, nb::handle, nb::handle, nb::handle, bool,
                    const std::optional<std::string>&, const std::string&>(),
           "w"_a, "b"_a.none() = nb::none(), nb::kw_only(), "x_shape"_a, "stride"_a = 1,
           "padding"_a = 0, "output_padding"_a = 0, "dilation"_a = 1, "groups"_a = 1,
           "activation"_a.none() = nb::none(), "residual_after_activation"_a = false,
           "backend"_a.none() = nb::none(), "fpmath"_a = "strict",
           "w (KH, KW, C_out / groups, C_in); b None or C_out elements; x_shape (N, H, W, C_in); "
           "the other arguments as for conv2d_transpose().")
      .def("run", &Conv2dTransposePlan::run, "x"_a.none(), "out"_a.none() = nb::none(),
           "residual"_a.none() = nb::none(), "As Conv2d.run.")
      .def("__call__", &Conv2dTransposePlan::run, "x"_a.none(), "out"_a.none() = nb::none(),
           "residual"_a.none() = nb::none(), "As run().");
  add_shape_properties(transpose, &Conv2dTransposePlan::plan);

  nb::class_<Pool2dPlan> pool(m, "Pool2d",
                              "A planned max or average pooling for inputs of x_shape. run() is "
                              "thread-safe.");
  pool.def(nb::init<nb::handle, nb::handle, nb::handle, nb::handle, const std::string&, bool, bool,
                    const std::optional<std::string>&>(),
           "window"_a, nb::kw_only(), "x_shape"_a, "stride"_a.none() = nb::none(), "padding"_a = 0,
           "mode"_a = "max", "ceil_mode"_a = false, "count_include_pad"_a = false,
           "backend"_a.none() = nb::none(), "Arguments as for pool2d(); x_shape (N, H, W, C).")
      .def("run", &Pool2dPlan::run, "x"_a.none(), "out"_a.none() = nb::none(),
           "y for x of x_shape; out as for Conv2d.run.")
      .def("__call__", &Pool2dPlan::run, "x"_a.none(), "out"_a.none() = nb::none(), "As run().");
  add_shape_properties(pool, &Pool2dPlan::plan);

  nb::class_<Conv2dBackwardPlan> conv_bwd(
      m, "Conv2dBackward",
      "The planned gradients of conv2d (without activation): those chosen by dx, dw, db at "
      "creation, w held transposed / reordered as the backward kernels read it. run() is "
      "thread-safe; set_weights() is not (no run may overlap it).");
  conv_bwd
      .def(nb::init<const InputArray&, nb::handle, nb::handle, nb::handle, nb::handle, nb::handle,
                    bool, bool, bool, const std::optional<std::string>&>(),
           "w"_a, nb::kw_only(), "x_shape"_a, "stride"_a = 1, "padding"_a = 0, "dilation"_a = 1,
           "groups"_a = 1, "dx"_a = true, "dw"_a = true, "db"_a = true,
           "backend"_a.none() = nb::none(),
           "w (KH, KW, C_in / groups, C_out); x_shape (N, H, W, C_in); at least one of dx, dw, "
           "db; the other arguments as for conv2d_backward().")
      .def("set_weights", &Conv2dBackwardPlan::set_weights, "w"_a,
           "Replaces w (same shape), as a new plan would; e.g. after an optimizer step.")
      .def("run", &Conv2dBackwardPlan::run, "x"_a.none(), "dy"_a.none(),
           "out"_a.none() = nb::none(),
           "(dx, dw, db) given dy (y_shape), None for a gradient not planned. x (x_shape) is read "
           "for dw only and may be None without it. out: None or (dx, dw, db), each None (a new "
           "array) or a writable C-contiguous float32 array (db of shape (C_out,)).")
      .def("__call__", &Conv2dBackwardPlan::run, "x"_a.none(), "dy"_a.none(),
           "out"_a.none() = nb::none(), "As run().")
      .def_prop_ro(
          "w_shape",
          [](const Conv2dBackwardPlan& self) { return shape_tuple(self.plan().w_dims()); },
          "The planned weights' shape (KH, KW, C_in / groups, C_out).");
  add_shape_properties(conv_bwd, &Conv2dBackwardPlan::plan);

  nb::class_<Pool2dBackwardPlan> pool_bwd(
      m, "Pool2dBackward", "The planned dx of pool2d for inputs of x_shape. run() is thread-safe.");
  pool_bwd
      .def(nb::init<nb::handle, nb::handle, nb::handle, nb::handle, const std::string&, bool, bool,
                    const std::optional<std::string>&>(),
           "window"_a, nb::kw_only(), "x_shape"_a, "stride"_a.none() = nb::none(), "padding"_a = 0,
           "mode"_a = "max", "ceil_mode"_a = false, "count_include_pad"_a = false,
           "backend"_a.none() = nb::none(),
           "Arguments as for pool2d_backward(); x_shape (N, H, W, C).")
      .def("run", &Pool2dBackwardPlan::run, "x"_a.none(), "dy"_a.none(),
           "out"_a.none() = nb::none(),
           "dx given x (x_shape; read by max pooling only) and dy (y_shape); out as for "
           "Conv2d.run.")
      .def("__call__", &Pool2dBackwardPlan::run, "x"_a.none(), "dy"_a.none(),
           "out"_a.none() = nb::none(), "As run().");
  add_shape_properties(pool_bwd, &Pool2dBackwardPlan::plan);
}

}  // namespace convkit::python
