// The C ABI (convkit/convkit.h) over the C++ API: converts the C structs, catches every exception
// at the boundary and keeps its message per thread for convkit_last_error().
#include <array>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "convkit/convkit.h"
#include "convkit/convkit.hpp"

struct convkit_conv2d {
  convkit::Conv2d plan;
};
struct convkit_pool2d {
  convkit::Pool2d plan;
};
struct convkit_conv2d_bwd {
  convkit::Conv2dBackward plan;
};
struct convkit_pool2d_bwd {
  convkit::Pool2dBackward plan;
};
struct convkit_conv2d_transpose {
  convkit::Conv2dTranspose plan;
};

namespace convkit {
namespace {

thread_local std::string last_error;

convkit_status StatusOf(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return CONVKIT_INVALID_ARGUMENT;
    case ErrorCode::kShapeMismatch:
      return CONVKIT_SHAPE_MISMATCH;
    case ErrorCode::kUnsupported:
      return CONVKIT_UNSUPPORTED;
    case ErrorCode::kBackendUnavailable:
      return CONVKIT_BACKEND_UNAVAILABLE;
    case ErrorCode::kOutOfMemory:
      return CONVKIT_OUT_OF_MEMORY;
  }
  return CONVKIT_INTERNAL_ERROR;
}

// Runs `body`, turning what it throws into a status and the thread's last error.
template <typename Body>
convkit_status Guard(Body&& body) {
  try {
    body();
    last_error.clear();
    return CONVKIT_OK;
  } catch (const Error& e) {
    last_error = e.what();
    return StatusOf(e.code());
  } catch (const std::bad_alloc&) {
    last_error = "out of memory";
    return CONVKIT_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    last_error = std::string("internal error: ") + e.what();
  } catch (...) {
    last_error = "internal error: an unknown exception";
  }
  return CONVKIT_INTERNAL_ERROR;
}

[[noreturn]] void Fail(std::string_view op, std::string_view arg, std::string_view expected,
                       const std::string& given) {
  throw Error(ErrorCode::kInvalidArgument, std::string(op) + ": " + std::string(arg) +
                                               ": expected " + std::string(expected) + ", given " +
                                               given);
}

template <typename T>
const T& Required(std::string_view op, std::string_view arg, const T* p) {
  if (p == nullptr) Fail(op, arg, "a non-null pointer", "NULL");
  return *p;
}

Dims DimsOf(std::string_view op, std::string_view arg, const int64_t* d) {
  if (d == nullptr) Fail(op, arg, "4 extents", "NULL");
  return {d[0], d[1], d[2], d[3]};
}

void Store(const Dims& dims, int64_t* out) {
  for (int i = 0; i < 4; ++i) out[i] = dims[i];
}

Dims DimsOf(const int64_t (&d)[4]) { return {d[0], d[1], d[2], d[3]}; }

TensorView View(const convkit_tensor& t) { return {t.data, DimsOf(t.dims)}; }
ConstTensorView View(const convkit_const_tensor& t) { return {t.data, DimsOf(t.dims)}; }

Pads PadsOf(const convkit_pads& p) { return {p.top, p.bottom, p.left, p.right}; }

// A C enum field may hold any int, but in C++ reading a value its enumerators do not span is
// undefined: read the field's bits as the int C stores (C enums are int-sized).
template <typename Enum>
int RawEnum(const Enum& field) {
  static_assert(sizeof(Enum) == sizeof(int));
  int value;
  std::memcpy(&value, &field, sizeof(value));
  return value;
}

bool FlagOf(std::string_view op, std::string_view arg, int flag);

// A convkit_activation field's value (read as its int bits) as the C++ enum, which numbers the
// activations the same way.
Activation ActivationOf(std::string_view op, int activation) {
  if (activation < CONVKIT_ACTIVATION_NONE || activation > CONVKIT_ACTIVATION_GELU) {
    Fail(op, "params.activation",
         "a convkit_activation from CONVKIT_ACTIVATION_NONE (0) to CONVKIT_ACTIVATION_GELU (10)",
         std::to_string(activation));
  }
  return static_cast<Activation>(activation);
}

// A convkit_fpmath field's value (read as its int bits) as the C++ enum.
Fpmath FpmathOf(std::string_view op, int fpmath) {
  if (fpmath != CONVKIT_FPMATH_STRICT && fpmath != CONVKIT_FPMATH_BF16) {
    Fail(op, "params.fpmath", "CONVKIT_FPMATH_STRICT (0) or CONVKIT_FPMATH_BF16 (1)",
         std::to_string(fpmath));
  }
  return fpmath == CONVKIT_FPMATH_BF16 ? Fpmath::kBf16 : Fpmath::kStrict;
}

// Refuses enum values and flags the C++ parameters do not name.
Conv2dParams ParamsOf(std::string_view op, const convkit_conv2d_params* c) {
  const convkit_conv2d_params& p = Required(op, "params", c);
  const Activation activation = ActivationOf(op, RawEnum(p.activation));
  Conv2dParams params;
  params.kernel_h = p.kernel_h;
  params.kernel_w = p.kernel_w;
  params.stride_h = p.stride_h;
  params.stride_w = p.stride_w;
  params.pad = PadsOf(p.pad);
  params.dilation_h = p.dilation_h;
  params.dilation_w = p.dilation_w;
  params.groups = p.groups;
  params.activation = activation;
  params.activation_alpha = p.activation_alpha;
  params.activation_beta = p.activation_beta;
  params.residual_after_activation =
      FlagOf(op, "params.residual_after_activation", p.residual_after_activation);
  params.fpmath = FpmathOf(op, RawEnum(p.fpmath));
  params.post_scale = p.post_scale;
  params.post_shift = p.post_shift;
  return params;
}

bool FlagOf(std::string_view op, std::string_view arg, int flag) {
  if (flag != 0 && flag != 1) Fail(op, arg, "0 or 1", std::to_string(flag));
  return flag == 1;
}

Conv2dTransposeParams ParamsOf(std::string_view op, const convkit_conv2d_transpose_params* c) {
  const convkit_conv2d_transpose_params& p = Required(op, "params", c);
  const Activation activation = ActivationOf(op, RawEnum(p.activation));
  Conv2dTransposeParams params;
  params.kernel_h = p.kernel_h;
  params.kernel_w = p.kernel_w;
  params.stride_h = p.stride_h;
  params.stride_w = p.stride_w;
  params.pad = PadsOf(p.pad);
  params.dilation_h = p.dilation_h;
  params.dilation_w = p.dilation_w;
  params.groups = p.groups;
  params.output_padding_h = p.output_padding_h;
  params.output_padding_w = p.output_padding_w;
  params.activation = activation;
  params.activation_alpha = p.activation_alpha;
  params.activation_beta = p.activation_beta;
  params.residual_after_activation =
      FlagOf(op, "params.residual_after_activation", p.residual_after_activation);
  params.fpmath = FpmathOf(op, RawEnum(p.fpmath));
  params.post_scale = p.post_scale;
  params.post_shift = p.post_shift;
  return params;
}

Pool2dParams ParamsOf(std::string_view op, const convkit_pool2d_params* c) {
  const convkit_pool2d_params& p = Required(op, "params", c);
  const int mode = RawEnum(p.mode);
  if (mode != CONVKIT_POOL_MAX && mode != CONVKIT_POOL_AVERAGE) {
    Fail(op, "params.mode", "CONVKIT_POOL_MAX (0) or CONVKIT_POOL_AVERAGE (1)",
         std::to_string(mode));
  }
  Pool2dParams params;
  params.mode = mode == CONVKIT_POOL_MAX ? PoolMode::kMax : PoolMode::kAverage;
  params.window_h = p.window_h;
  params.window_w = p.window_w;
  params.stride_h = p.stride_h;
  params.stride_w = p.stride_w;
  params.pad = PadsOf(p.pad);
  params.ceil_mode = FlagOf(op, "params.ceil_mode", p.ceil_mode);
  params.count_include_pad = FlagOf(op, "params.count_include_pad", p.count_include_pad);
  params.global = FlagOf(op, "params.global", p.global);
  return params;
}

// `size` floats at `data`: NULL only with size 0.
template <typename T>
std::span<T> SpanOf(std::string_view op, std::string_view arg, T* data, int64_t size) {
  if (size < 0) Fail(op, std::string(arg) + "_size", ">= 0", std::to_string(size));
  if (data == nullptr && size != 0) {
    Fail(op, arg, "a non-null pointer for " + std::string(arg) + "_size " + std::to_string(size),
         "NULL");
  }
  return {data, static_cast<size_t>(size)};
}

Conv2dGradsWanted WantedOf(std::string_view op, int grads) {
  constexpr int kAll = CONVKIT_GRAD_DX | CONVKIT_GRAD_DW | CONVKIT_GRAD_DB;
  if ((grads & ~kAll) != 0) {
    Fail(op, "grads", "an OR of CONVKIT_GRAD_DX (1), CONVKIT_GRAD_DW (2), CONVKIT_GRAD_DB (4)",
         std::to_string(grads));
  }
  return {(grads & CONVKIT_GRAD_DX) != 0, (grads & CONVKIT_GRAD_DW) != 0,
          (grads & CONVKIT_GRAD_DB) != 0};
}

// The gradients given as C pointers: a NULL one is absent.
Conv2dGrads GradsOf(std::string_view op, const convkit_tensor* dx, const convkit_tensor* dw,
                    float* db, int64_t db_size) {
  Conv2dGrads grads;
  if (dx != nullptr) grads.dx = View(*dx);
  if (dw != nullptr) grads.dw = View(*dw);
  if (db != nullptr || db_size != 0) grads.db = SpanOf(op, "db", db, db_size);
  return grads;
}

std::string_view BackendOf(const char* backend) {
  return backend != nullptr ? std::string_view(backend) : std::string_view();
}

}  // namespace
}  // namespace convkit

using namespace convkit;  // NOLINT: the C functions below are the only code in this scope

extern "C" {

const char* convkit_status_name(convkit_status status) {
  switch (status) {
    case CONVKIT_OK:
      return "ok";
    case CONVKIT_INVALID_ARGUMENT:
      return error_code_name(ErrorCode::kInvalidArgument);
    case CONVKIT_SHAPE_MISMATCH:
      return error_code_name(ErrorCode::kShapeMismatch);
    case CONVKIT_UNSUPPORTED:
      return error_code_name(ErrorCode::kUnsupported);
    case CONVKIT_BACKEND_UNAVAILABLE:
      return error_code_name(ErrorCode::kBackendUnavailable);
    case CONVKIT_OUT_OF_MEMORY:
      return error_code_name(ErrorCode::kOutOfMemory);
    case CONVKIT_INTERNAL_ERROR:
      return "internal error";
  }
  return "unknown status";
}

const char* convkit_last_error(void) { return last_error.c_str(); }

void convkit_conv2d_params_init(convkit_conv2d_params* params) {
  if (params == nullptr) return;
  *params = {1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1, CONVKIT_ACTIVATION_NONE, 0.0f, 0.0f, 0};
  params->fpmath = CONVKIT_FPMATH_STRICT;
  params->post_scale = 1.0f;
  params->post_shift = 0.0f;
}

void convkit_conv2d_transpose_params_init(convkit_conv2d_transpose_params* params) {
  if (params == nullptr) return;
  *params = {1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1, 0, 0, CONVKIT_ACTIVATION_NONE, 0.0f, 0.0f, 0};
  params->fpmath = CONVKIT_FPMATH_STRICT;
  params->post_scale = 1.0f;
  params->post_shift = 0.0f;
}

void convkit_pool2d_params_init(convkit_pool2d_params* params) {
  if (params == nullptr) return;
  *params = {CONVKIT_POOL_MAX, 1, 1, 1, 1, {0, 0, 0, 0}, 0, 0, 0};
}

convkit_status convkit_conv2d_output_dims(const convkit_conv2d_params* params,
                                          const int64_t x_dims[4], const int64_t w_dims[4],
                                          int64_t y_dims[4]) {
  constexpr std::string_view op = "convkit_conv2d_output_dims";
  return Guard([&] {
    const Dims y = conv2d_output_dims(DimsOf(op, "x_dims", x_dims), DimsOf(op, "w_dims", w_dims),
                                      ParamsOf(op, params));
    if (y_dims == nullptr) Fail(op, "y_dims", "room for 4 extents", "NULL");
    Store(y, y_dims);
  });
}

convkit_status convkit_pool2d_output_dims(const convkit_pool2d_params* params,
                                          const int64_t x_dims[4], int64_t y_dims[4]) {
  constexpr std::string_view op = "convkit_pool2d_output_dims";
  return Guard([&] {
    const Dims y = pool2d_output_dims(DimsOf(op, "x_dims", x_dims), ParamsOf(op, params));
    if (y_dims == nullptr) Fail(op, "y_dims", "room for 4 extents", "NULL");
    Store(y, y_dims);
  });
}

convkit_status convkit_zero_pad(convkit_const_tensor x, convkit_pads pad, convkit_tensor y) {
  return Guard([&] { zero_pad(View(x), PadsOf(pad), View(y)); });
}

convkit_status convkit_conv2d_forward(const convkit_conv2d_params* params, convkit_const_tensor x,
                                      convkit_const_tensor w, const float* b, int64_t b_size,
                                      convkit_tensor y, const char* backend) {
  constexpr std::string_view op = "convkit_conv2d_forward";
  return Guard([&] {
    conv2d_forward(ParamsOf(op, params), View(x), View(w), SpanOf(op, "b", b, b_size), View(y),
                   BackendOf(backend));
  });
}

convkit_status convkit_conv2d_forward_residual(const convkit_conv2d_params* params,
                                               convkit_const_tensor x, convkit_const_tensor w,
                                               const float* b, int64_t b_size,
                                               convkit_const_tensor r, convkit_tensor y,
                                               const char* backend) {
  constexpr std::string_view op = "convkit_conv2d_forward_residual";
  return Guard([&] {
    conv2d_forward(ParamsOf(op, params), View(x), View(w), SpanOf(op, "b", b, b_size), View(r),
                   View(y), BackendOf(backend));
  });
}

convkit_status convkit_conv2d_backward(const convkit_conv2d_params* params, convkit_const_tensor x,
                                       convkit_const_tensor w, convkit_const_tensor dy,
                                       const convkit_tensor* dx, const convkit_tensor* dw,
                                       float* db, int64_t db_size, const char* backend) {
  constexpr std::string_view op = "convkit_conv2d_backward";
  return Guard([&] {
    conv2d_backward(ParamsOf(op, params), View(x), View(w), View(dy),
                    GradsOf(op, dx, dw, db, db_size), BackendOf(backend));
  });
}

convkit_status convkit_conv2d_transpose_output_dims(const convkit_conv2d_transpose_params* params,
                                                    const int64_t x_dims[4],
                                                    const int64_t w_dims[4], int64_t y_dims[4]) {
  constexpr std::string_view op = "convkit_conv2d_transpose_output_dims";
  return Guard([&] {
    const Dims y = conv2d_transpose_output_dims(DimsOf(op, "x_dims", x_dims),
                                                DimsOf(op, "w_dims", w_dims), ParamsOf(op, params));
    if (y_dims == nullptr) Fail(op, "y_dims", "room for 4 extents", "NULL");
    Store(y, y_dims);
  });
}

convkit_status convkit_conv2d_transpose_forward(const convkit_conv2d_transpose_params* params,
                                                convkit_const_tensor x, convkit_const_tensor w,
                                                const float* b, int64_t b_size, convkit_tensor y,
                                                const char* backend) {
  constexpr std::string_view op = "convkit_conv2d_transpose_forward";
  return Guard([&] {
    conv2d_transpose_forward(ParamsOf(op, params), View(x), View(w), SpanOf(op, "b", b, b_size),
                             View(y), BackendOf(backend));
  });
}

convkit_status convkit_conv2d_transpose_forward_residual(
    const convkit_conv2d_transpose_params* params, convkit_const_tensor x, convkit_const_tensor w,
    const float* b, int64_t b_size, convkit_const_tensor r, convkit_tensor y, const char* backend) {
  constexpr std::string_view op = "convkit_conv2d_transpose_forward_residual";
  return Guard([&] {
    conv2d_transpose_forward(ParamsOf(op, params), View(x), View(w), SpanOf(op, "b", b, b_size),
                             View(r), View(y), BackendOf(backend));
  });
}

convkit_status convkit_conv2d_transpose_backward(const convkit_conv2d_transpose_params* params,
                                                 convkit_const_tensor x, convkit_const_tensor w,
                                                 convkit_const_tensor dy, const convkit_tensor* dx,
                                                 const convkit_tensor* dw, float* db,
                                                 int64_t db_size, const char* backend) {
  constexpr std::string_view op = "convkit_conv2d_transpose_backward";
  return Guard([&] {
    conv2d_transpose_backward(ParamsOf(op, params), View(x), View(w), View(dy),
                              GradsOf(op, dx, dw, db, db_size), BackendOf(backend));
  });
}

convkit_status convkit_pool2d_forward(const convkit_pool2d_params* params, convkit_const_tensor x,
                                      convkit_tensor y, const char* backend) {
  constexpr std::string_view op = "convkit_pool2d_forward";
  return Guard([&] { pool2d_forward(ParamsOf(op, params), View(x), View(y), BackendOf(backend)); });
}

convkit_status convkit_pool2d_backward(const convkit_pool2d_params* params, convkit_const_tensor x,
                                       convkit_const_tensor dy, convkit_tensor dx,
                                       const char* backend) {
  constexpr std::string_view op = "convkit_pool2d_backward";
  return Guard([&] {
    pool2d_backward(ParamsOf(op, params), View(x), View(dy), View(dx), BackendOf(backend));
  });
}

convkit_status convkit_conv2d_create(const convkit_conv2d_params* params, const int64_t x_dims[4],
                                     convkit_const_tensor w, const float* b, int64_t b_size,
                                     const char* backend, convkit_conv2d** plan) {
  constexpr std::string_view op = "convkit_conv2d_create";
  return Guard([&] {
    if (plan == nullptr) Fail(op, "plan", "where to store the new plan", "NULL");
    *plan = new convkit_conv2d{Conv2d(ParamsOf(op, params), DimsOf(op, "x_dims", x_dims), View(w),
                                      SpanOf(op, "b", b, b_size), BackendOf(backend))};
  });
}

convkit_status convkit_conv2d_run(const convkit_conv2d* plan, convkit_const_tensor x,
                                  convkit_tensor y) {
  return Guard([&] { Required("convkit_conv2d_run", "plan", plan).plan.run(View(x), View(y)); });
}

convkit_status convkit_conv2d_run_residual(const convkit_conv2d* plan, convkit_const_tensor x,
                                           convkit_const_tensor r, convkit_tensor y) {
  return Guard([&] {
    Required("convkit_conv2d_run_residual", "plan", plan).plan.run(View(x), View(r), View(y));
  });
}

convkit_status convkit_conv2d_run_scaled(const convkit_conv2d* plan, convkit_const_tensor x,
                                         convkit_const_tensor x_scale, convkit_const_tensor r,
                                         convkit_tensor y) {
  return Guard([&] {
    Required("convkit_conv2d_run_scaled", "plan", plan)
        .plan.run_scaled(View(x), View(x_scale), View(r), View(y));
  });
}

convkit_status convkit_conv2d_run_concatenated(const convkit_conv2d* plan,
                                               const convkit_channel_piece* pieces, int64_t count,
                                               convkit_const_tensor r, convkit_tensor y) {
  constexpr std::string_view op = "convkit_conv2d_run_concatenated";
  return Guard([&] {
    const Conv2d& conv = Required(op, "plan", plan).plan;
    if (count < 1 || pieces == nullptr) {
      Fail(op, "pieces", "at least one piece", count < 1 ? std::to_string(count) : "NULL");
    }
    // Up to 16 pieces (a C2f block has 2 + n) converted on the stack: a run allocates nothing.
    std::array<ChannelPiece, 16> few;
    std::vector<ChannelPiece> many(static_cast<size_t>(count > 16 ? count : 0));
    const std::span<ChannelPiece> all(many.empty() ? few.data() : many.data(),
                                      static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      all[static_cast<size_t>(i)] = {pieces[i].data, pieces[i].channels, pieces[i].pixel_stride};
    }
    conv.run_concatenated(all, View(r), View(y));
  });
}

void convkit_conv2d_y_dims(const convkit_conv2d* plan, int64_t y_dims[4]) {
  if (plan != nullptr && y_dims != nullptr) Store(plan->plan.y_dims(), y_dims);
}

const char* convkit_conv2d_impl_name(const convkit_conv2d* plan) {
  return plan != nullptr ? plan->plan.impl_name().c_str() : "";
}

void convkit_conv2d_destroy(convkit_conv2d* plan) { delete plan; }

convkit_status convkit_conv2d_transpose_create(const convkit_conv2d_transpose_params* params,
                                               const int64_t x_dims[4], convkit_const_tensor w,
                                               const float* b, int64_t b_size, const char* backend,
                                               convkit_conv2d_transpose** plan) {
  constexpr std::string_view op = "convkit_conv2d_transpose_create";
  return Guard([&] {
    if (plan == nullptr) Fail(op, "plan", "where to store the new plan", "NULL");
    *plan = new convkit_conv2d_transpose{
        Conv2dTranspose(ParamsOf(op, params), DimsOf(op, "x_dims", x_dims), View(w),
                        SpanOf(op, "b", b, b_size), BackendOf(backend))};
  });
}

convkit_status convkit_conv2d_transpose_run(const convkit_conv2d_transpose* plan,
                                            convkit_const_tensor x, convkit_tensor y) {
  return Guard(
      [&] { Required("convkit_conv2d_transpose_run", "plan", plan).plan.run(View(x), View(y)); });
}

convkit_status convkit_conv2d_transpose_run_residual(const convkit_conv2d_transpose* plan,
                                                     convkit_const_tensor x, convkit_const_tensor r,
                                                     convkit_tensor y) {
  return Guard([&] {
    Required("convkit_conv2d_transpose_run_residual", "plan", plan)
        .plan.run(View(x), View(r), View(y));
  });
}

void convkit_conv2d_transpose_y_dims(const convkit_conv2d_transpose* plan, int64_t y_dims[4]) {
  if (plan != nullptr && y_dims != nullptr) Store(plan->plan.y_dims(), y_dims);
}

const char* convkit_conv2d_transpose_impl_name(const convkit_conv2d_transpose* plan) {
  return plan != nullptr ? plan->plan.impl_name().c_str() : "";
}

void convkit_conv2d_transpose_destroy(convkit_conv2d_transpose* plan) { delete plan; }

convkit_status convkit_pool2d_create(const convkit_pool2d_params* params, const int64_t x_dims[4],
                                     const char* backend, convkit_pool2d** plan) {
  constexpr std::string_view op = "convkit_pool2d_create";
  return Guard([&] {
    if (plan == nullptr) Fail(op, "plan", "where to store the new plan", "NULL");
    *plan = new convkit_pool2d{
        Pool2d(ParamsOf(op, params), DimsOf(op, "x_dims", x_dims), BackendOf(backend))};
  });
}

convkit_status convkit_pool2d_run(const convkit_pool2d* plan, convkit_const_tensor x,
                                  convkit_tensor y) {
  return Guard([&] { Required("convkit_pool2d_run", "plan", plan).plan.run(View(x), View(y)); });
}

void convkit_pool2d_y_dims(const convkit_pool2d* plan, int64_t y_dims[4]) {
  if (plan != nullptr && y_dims != nullptr) Store(plan->plan.y_dims(), y_dims);
}

const char* convkit_pool2d_impl_name(const convkit_pool2d* plan) {
  return plan != nullptr ? plan->plan.impl_name().c_str() : "";
}

void convkit_pool2d_destroy(convkit_pool2d* plan) { delete plan; }

convkit_status convkit_conv2d_bwd_create(const convkit_conv2d_params* params,
                                         const int64_t x_dims[4], convkit_const_tensor w, int grads,
                                         const char* backend, convkit_conv2d_bwd** plan) {
  constexpr std::string_view op = "convkit_conv2d_bwd_create";
  return Guard([&] {
    if (plan == nullptr) Fail(op, "plan", "where to store the new plan", "NULL");
    *plan =
        new convkit_conv2d_bwd{Conv2dBackward(ParamsOf(op, params), DimsOf(op, "x_dims", x_dims),
                                              View(w), WantedOf(op, grads), BackendOf(backend))};
  });
}

convkit_status convkit_conv2d_bwd_set_weights(convkit_conv2d_bwd* plan, convkit_const_tensor w) {
  return Guard([&] {
    if (plan == nullptr) Fail("convkit_conv2d_bwd_set_weights", "plan", "a plan", "NULL");
    plan->plan.set_weights(View(w));
  });
}

convkit_status convkit_conv2d_bwd_run(const convkit_conv2d_bwd* plan, convkit_const_tensor x,
                                      convkit_const_tensor dy, const convkit_tensor* dx,
                                      const convkit_tensor* dw, float* db, int64_t db_size) {
  constexpr std::string_view op = "convkit_conv2d_bwd_run";
  return Guard([&] {
    Required(op, "plan", plan).plan.run(View(x), View(dy), GradsOf(op, dx, dw, db, db_size));
  });
}

void convkit_conv2d_bwd_y_dims(const convkit_conv2d_bwd* plan, int64_t y_dims[4]) {
  if (plan != nullptr && y_dims != nullptr) Store(plan->plan.y_dims(), y_dims);
}

const char* convkit_conv2d_bwd_impl_name(const convkit_conv2d_bwd* plan) {
  return plan != nullptr ? plan->plan.impl_name().c_str() : "";
}

void convkit_conv2d_bwd_destroy(convkit_conv2d_bwd* plan) { delete plan; }

convkit_status convkit_pool2d_bwd_create(const convkit_pool2d_params* params,
                                         const int64_t x_dims[4], const char* backend,
                                         convkit_pool2d_bwd** plan) {
  constexpr std::string_view op = "convkit_pool2d_bwd_create";
  return Guard([&] {
    if (plan == nullptr) Fail(op, "plan", "where to store the new plan", "NULL");
    *plan = new convkit_pool2d_bwd{
        Pool2dBackward(ParamsOf(op, params), DimsOf(op, "x_dims", x_dims), BackendOf(backend))};
  });
}

convkit_status convkit_pool2d_bwd_run(const convkit_pool2d_bwd* plan, convkit_const_tensor x,
                                      convkit_const_tensor dy, convkit_tensor dx) {
  return Guard([&] {
    Required("convkit_pool2d_bwd_run", "plan", plan).plan.run(View(x), View(dy), View(dx));
  });
}

void convkit_pool2d_bwd_y_dims(const convkit_pool2d_bwd* plan, int64_t y_dims[4]) {
  if (plan != nullptr && y_dims != nullptr) Store(plan->plan.y_dims(), y_dims);
}

const char* convkit_pool2d_bwd_impl_name(const convkit_pool2d_bwd* plan) {
  return plan != nullptr ? plan->plan.impl_name().c_str() : "";
}

void convkit_pool2d_bwd_destroy(convkit_pool2d_bwd* plan) { delete plan; }

const char* convkit_available_backends(void) {
  static const std::string names = [] {
    std::string joined;
    for (const std::string& name : available_backends()) {
      joined.append(joined.empty() ? "" : ",").append(name);
    }
    return joined;
  }();
  return names.c_str();
}

convkit_status convkit_set_num_threads(int n) {
  return Guard([&] { set_num_threads(n); });
}

int convkit_num_threads(void) { return num_threads(); }

void convkit_set_flush_denormals(int on) { set_flush_denormals(on != 0); }

int convkit_flush_denormals(void) { return flush_denormals() ? 1 : 0; }

}  // extern "C"
