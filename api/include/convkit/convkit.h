/* convkit's C ABI (DESIGN §1, §6): the C++ API (convkit.hpp) for C and for foreign-function
 * interfaces (ctypes, cffi, Rust, Go). The same operations, plans, backends and semantics.
 *
 * Errors: every function that can fail returns a convkit_status; CONVKIT_OK is 0. On failure it
 * writes nothing (no output, no plan) and keeps the message, which names the operation, the
 * argument, what was expected and what was given, for convkit_last_error(). No C++ exception
 * crosses this boundary.
 *
 * Tensors are dense row-major fp32 views owned by the caller: activations NHWC {N, H, W, C},
 * weights HWIO {KH, KW, C_in / groups, C_out}. Outputs must not overlap inputs. `backend` is
 * "reference", "highway", "onednn", "auto", or NULL / "" for $CONVKIT_BACKEND else "auto".
 * Threads: calls on distinct outputs may run concurrently; a plan's run may be called from
 * several threads at once; create and destroy a plan from one thread. */
#ifndef CONVKIT_CONVKIT_H_
#define CONVKIT_CONVKIT_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The codes of convkit::ErrorCode, plus one for a failure the library did not classify. */
typedef enum convkit_status {
  CONVKIT_OK = 0,
  CONVKIT_INVALID_ARGUMENT = 1,    /* a parameter out of range, a null pointer, a bad enum */
  CONVKIT_SHAPE_MISMATCH = 2,      /* a tensor whose dims differ from what the parameters imply */
  CONVKIT_UNSUPPORTED = 3,         /* the chosen backend cannot run this parameter combination */
  CONVKIT_BACKEND_UNAVAILABLE = 4, /* an unknown backend name, or one not built into this copy */
  CONVKIT_OUT_OF_MEMORY = 5,       /* an allocation failed */
  CONVKIT_INTERNAL_ERROR = 6       /* anything else: a bug, please report the message */
} convkit_status;

/* "ok", "invalid argument", ... (static storage). */
const char* convkit_status_name(convkit_status status);

/* The message of the calling thread's last failed call, or "" when its last call succeeded. Valid
 * until the thread's next convkit call. */
const char* convkit_last_error(void);

typedef struct convkit_tensor {
  float* data; /* may be NULL only when the tensor has no elements */
  int64_t dims[4];
} convkit_tensor;

typedef struct convkit_const_tensor {
  const float* data;
  int64_t dims[4];
} convkit_const_tensor;

typedef struct convkit_pads {
  int64_t top, bottom, left, right;
} convkit_pads;

/* As convkit::Activation (params.hpp, which defines each); alpha and beta are the params'
 * activation_alpha and activation_beta. */
typedef enum convkit_activation {
  CONVKIT_ACTIVATION_NONE = 0,
  CONVKIT_ACTIVATION_RELU = 1,
  CONVKIT_ACTIVATION_RELU6 = 2,
  CONVKIT_ACTIVATION_CLIP = 3,       /* lo = alpha <= hi = beta */
  CONVKIT_ACTIVATION_LEAKY_RELU = 4, /* slope alpha */
  CONVKIT_ACTIVATION_SIGMOID = 5,
  CONVKIT_ACTIVATION_TANH = 6,
  CONVKIT_ACTIVATION_SILU = 7,
  CONVKIT_ACTIVATION_HARDSWISH = 8,
  CONVKIT_ACTIVATION_HARDSIGMOID = 9, /* clip(alpha * z + beta, 0, 1); ONNX: 0.2, 0.5 */
  CONVKIT_ACTIVATION_GELU = 10        /* erf form */
} convkit_activation;

/* As convkit::Fpmath: how the forward convolution may multiply. BF16 permits rounding x and w to
 * bf16 with fp32 accumulation; the implementation name says whether bf16 arithmetic ran. */
typedef enum convkit_fpmath { CONVKIT_FPMATH_STRICT = 0, CONVKIT_FPMATH_BF16 = 1 } convkit_fpmath;

/* As convkit::Conv2dParams; convkit_conv2d_params_init sets its defaults (1x1 kernel, stride 1,
 * no padding, dilation 1 = dense taps, 1 group, no activation, alpha = beta = 0, residual before
 * the activation, strict fp32, post_scale 1 and post_shift 0). The fields from activation on were
 * added with the post-ops (issue 14), fpmath (issue 19) and the linear map after the activation:
 * code compiled against an older, shorter struct must be rebuilt. A struct not set by
 * convkit_conv2d_params_init must set post_scale to 1 (0 makes y the shift). */
typedef struct convkit_conv2d_params {
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w;
  convkit_pads pad;
  int64_t dilation_h, dilation_w;
  int64_t groups;
  convkit_activation activation;
  float activation_alpha;
  float activation_beta;
  int residual_after_activation; /* 0: y = act(conv + b + r); 1: y = act(conv + b) + r */
  convkit_fpmath fpmath;
  float post_scale; /* after the activation: fma(post_scale, act(...), post_shift), then an */
  float post_shift; /* r added after the activation; finite; 1 and 0 skip it */
} convkit_conv2d_params;

/* As convkit::Conv2dTransposeParams (PyTorch's ConvTranspose2d in NHWC; w is {KH, KW,
 * C_out / groups, C_in}); convkit_conv2d_transpose_params_init sets its defaults (1x1 kernel,
 * stride 1, no crop, dilation 1, 1 group, no output padding, no activation, alpha = beta = 0,
 * residual before the activation, strict fp32, post_scale 1, post_shift 0). The post-op fields
 * and fpmath mean what convkit_conv2d_params' do; fpmath (issue 19), post_scale and post_shift
 * were added last: code compiled against a shorter struct must be rebuilt. */
typedef struct convkit_conv2d_transpose_params {
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w;
  convkit_pads pad; /* cropped from the full output */
  int64_t dilation_h, dilation_w;
  int64_t groups;
  int64_t output_padding_h, output_padding_w; /* < stride or < dilation per axis */
  convkit_activation activation;
  float activation_alpha, activation_beta;
  int residual_after_activation; /* 0 or 1 */
  convkit_fpmath fpmath;
  float post_scale, post_shift; /* as in convkit_conv2d_params */
} convkit_conv2d_transpose_params;

typedef enum convkit_pool_mode { CONVKIT_POOL_MAX = 0, CONVKIT_POOL_AVERAGE = 1 } convkit_pool_mode;

/* As convkit::Pool2dParams (flags are 0 or 1); convkit_pool2d_params_init sets its defaults. */
typedef struct convkit_pool2d_params {
  convkit_pool_mode mode;
  int64_t window_h, window_w;
  int64_t stride_h, stride_w;
  convkit_pads pad;
  int ceil_mode;
  int count_include_pad;
  int global;
} convkit_pool2d_params;

void convkit_conv2d_params_init(convkit_conv2d_params* params);
void convkit_pool2d_params_init(convkit_pool2d_params* params);
void convkit_conv2d_transpose_params_init(convkit_conv2d_transpose_params* params);

/* ---- One-shot operations (convkit/ops.hpp) ---- */

convkit_status convkit_conv2d_output_dims(const convkit_conv2d_params* params,
                                          const int64_t x_dims[4], const int64_t w_dims[4],
                                          int64_t y_dims[4]);
convkit_status convkit_pool2d_output_dims(const convkit_pool2d_params* params,
                                          const int64_t x_dims[4], int64_t y_dims[4]);

/* y = zero-padded x, y of dims {N, H + top + bottom, W + left + right, C}. */
convkit_status convkit_zero_pad(convkit_const_tensor x, convkit_pads pad, convkit_tensor y);

/* y = activation(conv2d(x, w) + b). b holds b_size = C_out floats, or is NULL with b_size 0. */
convkit_status convkit_conv2d_forward(const convkit_conv2d_params* params, convkit_const_tensor x,
                                      convkit_const_tensor w, const float* b, int64_t b_size,
                                      convkit_tensor y, const char* backend);

/* The same with a residual r of y's dims, added before or after the activation as
 * params->residual_after_activation says. r.data may equal y.data (in place); otherwise r must
 * not overlap y, and never x. */
convkit_status convkit_conv2d_forward_residual(const convkit_conv2d_params* params,
                                               convkit_const_tensor x, convkit_const_tensor w,
                                               const float* b, int64_t b_size,
                                               convkit_const_tensor r, convkit_tensor y,
                                               const char* backend);

/* Gradients given dy; a NULL dx, dw or db is skipped (db holds db_size = C_out floats).
 * params->activation must be CONVKIT_ACTIVATION_NONE. */
convkit_status convkit_conv2d_backward(const convkit_conv2d_params* params, convkit_const_tensor x,
                                       convkit_const_tensor w, convkit_const_tensor dy,
                                       const convkit_tensor* dx, const convkit_tensor* dw,
                                       float* db, int64_t db_size, const char* backend);

/* The transposed convolution: y = activation(conv2d_transpose(x, w) + b), y of
 * convkit_conv2d_transpose_output_dims; its gradients as convkit_conv2d_backward's (activation
 * CONVKIT_ACTIVATION_NONE; dx has x's dims, dw w's, db C_out floats). */
convkit_status convkit_conv2d_transpose_output_dims(const convkit_conv2d_transpose_params* params,
                                                    const int64_t x_dims[4],
                                                    const int64_t w_dims[4], int64_t y_dims[4]);
convkit_status convkit_conv2d_transpose_forward(const convkit_conv2d_transpose_params* params,
                                                convkit_const_tensor x, convkit_const_tensor w,
                                                const float* b, int64_t b_size, convkit_tensor y,
                                                const char* backend);
/* The same with a residual r of y's dims (as convkit_conv2d_forward_residual's). */
convkit_status convkit_conv2d_transpose_forward_residual(
    const convkit_conv2d_transpose_params* params, convkit_const_tensor x, convkit_const_tensor w,
    const float* b, int64_t b_size, convkit_const_tensor r, convkit_tensor y, const char* backend);
convkit_status convkit_conv2d_transpose_backward(const convkit_conv2d_transpose_params* params,
                                                 convkit_const_tensor x, convkit_const_tensor w,
                                                 convkit_const_tensor dy, const convkit_tensor* dx,
                                                 const convkit_tensor* dw, float* db,
                                                 int64_t db_size, const char* backend);

convkit_status convkit_pool2d_forward(const convkit_pool2d_params* params, convkit_const_tensor x,
                                      convkit_tensor y, const char* backend);
convkit_status convkit_pool2d_backward(const convkit_pool2d_params* params, convkit_const_tensor x,
                                       convkit_const_tensor dy, convkit_tensor dx,
                                       const char* backend);

/* ---- Plans (convkit/plan.hpp): create once, run many times without allocating ---- */

typedef struct convkit_conv2d convkit_conv2d;
typedef struct convkit_pool2d convkit_pool2d;
typedef struct convkit_conv2d_transpose convkit_conv2d_transpose;

/* On success *plan is a new plan (free it with convkit_conv2d_destroy); it keeps no reference to
 * w or b. On failure *plan is left as it was. */
convkit_status convkit_conv2d_create(const convkit_conv2d_params* params, const int64_t x_dims[4],
                                     convkit_const_tensor w, const float* b, int64_t b_size,
                                     const char* backend, convkit_conv2d** plan);
convkit_status convkit_conv2d_run(const convkit_conv2d* plan, convkit_const_tensor x,
                                  convkit_tensor y);
/* A run with a residual r of y's dims (as convkit_conv2d_forward_residual). */
convkit_status convkit_conv2d_run_residual(const convkit_conv2d* plan, convkit_const_tensor x,
                                           convkit_const_tensor r, convkit_tensor y);
/* A run on x scaled per image and input channel by x_scale {N, 1, 1, C_in} (Conv2d::run_scaled:
 * a squeeze-and-excitation gate fused into the convolution), with a residual r of y's dims, or
 * none when r.data is NULL. */
convkit_status convkit_conv2d_run_scaled(const convkit_conv2d* plan, convkit_const_tensor x,
                                         convkit_const_tensor x_scale, convkit_const_tensor r,
                                         convkit_tensor y);
/* One piece of an input given as the concatenation of several along C (convkit::ChannelPiece):
 * element (n, h, w, c) at data[((n * H + h) * W + w) * pixel_stride + c]. */
typedef struct convkit_channel_piece {
  const float* data;
  int64_t channels;
  int64_t pixel_stride;
} convkit_channel_piece;
/* A run on x = the concatenation of pieces[0 .. count) along C (Conv2d::run_concatenated: the
 * Concat before a 1x1 layer, never written out), with a residual r, or none when r.data is NULL. */
convkit_status convkit_conv2d_run_concatenated(const convkit_conv2d* plan,
                                               const convkit_channel_piece* pieces, int64_t count,
                                               convkit_const_tensor r, convkit_tensor y);
/* The planned output dims; the chosen implementation, "backend:variant:isa" (valid while the plan
 * lives). Both accept a NULL plan: no dims written, "". */
void convkit_conv2d_y_dims(const convkit_conv2d* plan, int64_t y_dims[4]);
const char* convkit_conv2d_impl_name(const convkit_conv2d* plan);
void convkit_conv2d_destroy(convkit_conv2d* plan); /* NULL is a no-op */

/* The transposed convolution's plan, as convkit_conv2d's. */
convkit_status convkit_conv2d_transpose_create(const convkit_conv2d_transpose_params* params,
                                               const int64_t x_dims[4], convkit_const_tensor w,
                                               const float* b, int64_t b_size, const char* backend,
                                               convkit_conv2d_transpose** plan);
convkit_status convkit_conv2d_transpose_run(const convkit_conv2d_transpose* plan,
                                            convkit_const_tensor x, convkit_tensor y);
convkit_status convkit_conv2d_transpose_run_residual(const convkit_conv2d_transpose* plan,
                                                     convkit_const_tensor x, convkit_const_tensor r,
                                                     convkit_tensor y);
void convkit_conv2d_transpose_y_dims(const convkit_conv2d_transpose* plan, int64_t y_dims[4]);
const char* convkit_conv2d_transpose_impl_name(const convkit_conv2d_transpose* plan);
void convkit_conv2d_transpose_destroy(convkit_conv2d_transpose* plan); /* NULL is a no-op */

convkit_status convkit_pool2d_create(const convkit_pool2d_params* params, const int64_t x_dims[4],
                                     const char* backend, convkit_pool2d** plan);
convkit_status convkit_pool2d_run(const convkit_pool2d* plan, convkit_const_tensor x,
                                  convkit_tensor y);
void convkit_pool2d_y_dims(const convkit_pool2d* plan, int64_t y_dims[4]);
const char* convkit_pool2d_impl_name(const convkit_pool2d* plan);
void convkit_pool2d_destroy(convkit_pool2d* plan);

/* Backward plans. Which gradients a convkit_conv2d_bwd plan computes: an OR of these flags
 * (at least one). */
typedef enum convkit_grad_flags {
  CONVKIT_GRAD_DX = 1,
  CONVKIT_GRAD_DW = 2,
  CONVKIT_GRAD_DB = 4
} convkit_grad_flags;

typedef struct convkit_conv2d_bwd convkit_conv2d_bwd;
typedef struct convkit_pool2d_bwd convkit_pool2d_bwd;

/* params->activation must be CONVKIT_ACTIVATION_NONE. `grads` an OR of convkit_grad_flags. Keeps no
 * reference to w. */
convkit_status convkit_conv2d_bwd_create(const convkit_conv2d_params* params,
                                         const int64_t x_dims[4], convkit_const_tensor w, int grads,
                                         const char* backend, convkit_conv2d_bwd** plan);
/* Replaces the weights (dims as at creation), as a new plan would. Not thread-safe: no run of this
 * plan may overlap it. On failure the plan keeps its weights. */
convkit_status convkit_conv2d_bwd_set_weights(convkit_conv2d_bwd* plan, convkit_const_tensor w);
/* Exactly the planned gradients are non-NULL (dx like x, dw like w, db with db_size = C_out
 * floats); each is overwritten. x is read only for dw: without it x.data may be NULL. */
convkit_status convkit_conv2d_bwd_run(const convkit_conv2d_bwd* plan, convkit_const_tensor x,
                                      convkit_const_tensor dy, const convkit_tensor* dx,
                                      const convkit_tensor* dw, float* db, int64_t db_size);
/* The planned dy dims {N, OH, OW, C_out}. */
void convkit_conv2d_bwd_y_dims(const convkit_conv2d_bwd* plan, int64_t y_dims[4]);
const char* convkit_conv2d_bwd_impl_name(const convkit_conv2d_bwd* plan);
void convkit_conv2d_bwd_destroy(convkit_conv2d_bwd* plan);

convkit_status convkit_pool2d_bwd_create(const convkit_pool2d_params* params,
                                         const int64_t x_dims[4], const char* backend,
                                         convkit_pool2d_bwd** plan);
/* dx (dims of x) overwritten; x is read by max pooling only (its dims are checked in both modes).
 */
convkit_status convkit_pool2d_bwd_run(const convkit_pool2d_bwd* plan, convkit_const_tensor x,
                                      convkit_const_tensor dy, convkit_tensor dx);
void convkit_pool2d_bwd_y_dims(const convkit_pool2d_bwd* plan, int64_t y_dims[4]);
const char* convkit_pool2d_bwd_impl_name(const convkit_pool2d_bwd* plan);
void convkit_pool2d_bwd_destroy(convkit_pool2d_bwd* plan);

/* ---- Backends and threads (convkit/runtime.hpp) ---- */

/* The backends built into this copy in auto's order, comma-separated: "highway,onednn,reference"
 * (static storage). */
const char* convkit_available_backends(void);
/* Threads every backend uses from now on; 0 returns to the OpenMP default; n < 0 is an error. */
convkit_status convkit_set_num_threads(int n);
int convkit_num_threads(void);
/* Nonzero: highway computes with denormals flushed (DAZ and FTZ) from now on; 0 (the default):
 * IEEE results (convkit::set_flush_denormals). */
void convkit_set_flush_denormals(int on);
int convkit_flush_denormals(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CONVKIT_CONVKIT_H_ */
