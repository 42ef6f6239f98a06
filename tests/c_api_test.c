/* The C ABI (convkit/convkit.h), compiled as C11: the header is C, every op and plan runs through
 * it with the values a hand computation gives, every backend built in agrees with reference bit for
 * bit on integer data, and every error comes back as a status with a message naming the argument.
 * Exit code 0 when every check passed; each failure prints its line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convkit/convkit.h"

static int failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

/* A failing call: the status, and a message that names `what`. */
#define CHECK_FAILS(call, status, what)                                                         \
  do {                                                                                          \
    const convkit_status got_ = (call);                                                         \
    if (got_ != (status) || strstr(convkit_last_error(), (what)) == NULL) {                     \
      fprintf(stderr, "%s:%d: %s: expected %s naming '%s', got %s: '%s'\n", __FILE__, __LINE__, \
              #call, convkit_status_name(status), (what), convkit_status_name(got_),            \
              convkit_last_error());                                                            \
      ++failures;                                                                               \
    }                                                                                           \
  } while (0)

static int64_t count(const int64_t d[4]) { return d[0] * d[1] * d[2] * d[3]; }

/* x 1x3x3x1 = 1..9, w 2x2x1x1 = {1, 0, 0, -1}, b = 10, valid, stride 1: y[i][j] = x[i][j] -
 * x[i+1][j+1] + 10 = 6 everywhere (x rises by 4 along the diagonal). ReLU of -4 + 1 is 0. */
static void conv_forward_by_hand(void) {
  float x[9], w[4] = {1, 0, 0, -1}, b[1] = {10}, y[4];
  for (int i = 0; i < 9; ++i) x[i] = (float)(i + 1);
  convkit_conv2d_params params;
  convkit_conv2d_params_init(&params);
  params.kernel_h = params.kernel_w = 2;
  const int64_t x_dims[4] = {1, 3, 3, 1}, w_dims[4] = {2, 2, 1, 1};
  int64_t y_dims[4] = {0, 0, 0, 0};
  CHECK(convkit_conv2d_output_dims(&params, x_dims, w_dims, y_dims) == CONVKIT_OK);
  CHECK(y_dims[0] == 1 && y_dims[1] == 2 && y_dims[2] == 2 && y_dims[3] == 1);
  const convkit_const_tensor xt = {x, {1, 3, 3, 1}}, wt = {w, {2, 2, 1, 1}};
  const convkit_tensor yt = {y, {1, 2, 2, 1}};
  CHECK(convkit_conv2d_forward(&params, xt, wt, b, 1, yt, "reference") == CONVKIT_OK);
  CHECK(strcmp(convkit_last_error(), "") == 0);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == 6.0f);
  b[0] = 1;
  params.activation = CONVKIT_ACTIVATION_RELU;
  CHECK(convkit_conv2d_forward(&params, xt, wt, b, 1, yt, NULL) == CONVKIT_OK);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == 0.0f);
  /* fpmath: strict by default; bf16 changes nothing on these small integers; others refused. */
  CHECK(params.fpmath == CONVKIT_FPMATH_STRICT);
  params.activation = CONVKIT_ACTIVATION_NONE;
  params.fpmath = CONVKIT_FPMATH_BF16;
  b[0] = 10;
  CHECK(convkit_conv2d_forward(&params, xt, wt, b, 1, yt, NULL) == CONVKIT_OK);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == 6.0f);
  params.fpmath = (convkit_fpmath)2;
  CHECK_FAILS(convkit_conv2d_forward(&params, xt, wt, b, 1, yt, NULL), CONVKIT_INVALID_ARGUMENT,
              "params.fpmath");
}

/* The post-ops on the same convolution (z = 6 everywhere): clip(0, 5) gives 5; a residual r =
 * {1, 2, 3, 4} before the clip still 5, after it 5 + r; in place (r is y) the same; through a
 * plan; and the errors that name the new fields. */
static void post_ops_by_hand(void) {
  float x[9], w[4] = {1, 0, 0, -1}, b[1] = {10}, y[4];
  const float r[4] = {1, 2, 3, 4};
  for (int i = 0; i < 9; ++i) x[i] = (float)(i + 1);
  convkit_conv2d_params params;
  convkit_conv2d_params_init(&params);
  CHECK(params.activation_alpha == 0.0f && params.activation_beta == 0.0f &&
        params.residual_after_activation == 0 && params.post_scale == 1.0f &&
        params.post_shift == 0.0f);
  params.kernel_h = params.kernel_w = 2;
  params.activation = CONVKIT_ACTIVATION_CLIP;
  params.activation_alpha = 0.0f;
  params.activation_beta = 5.0f;
  const convkit_const_tensor xt = {x, {1, 3, 3, 1}}, wt = {w, {2, 2, 1, 1}};
  const convkit_const_tensor rt = {r, {1, 2, 2, 1}}, yt_in = {y, {1, 2, 2, 1}};
  const convkit_tensor yt = {y, {1, 2, 2, 1}};
  CHECK(convkit_conv2d_forward(&params, xt, wt, b, 1, yt, "reference") == CONVKIT_OK);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == 5.0f);
  CHECK(convkit_conv2d_forward_residual(&params, xt, wt, b, 1, rt, yt, "reference") == CONVKIT_OK);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == 5.0f);
  params.residual_after_activation = 1;
  CHECK(convkit_conv2d_forward_residual(&params, xt, wt, b, 1, rt, yt, NULL) == CONVKIT_OK);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == 5.0f + r[i]);
  memcpy(y, r, sizeof(r));
  CHECK(convkit_conv2d_forward_residual(&params, xt, wt, b, 1, yt_in, yt, NULL) == CONVKIT_OK);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == 5.0f + r[i]);

  convkit_conv2d* plan = NULL;
  const int64_t x_dims[4] = {1, 3, 3, 1};
  CHECK(convkit_conv2d_create(&params, x_dims, wt, b, 1, NULL, &plan) == CONVKIT_OK);
  memset(y, 0, sizeof(y));
  CHECK(convkit_conv2d_run_residual(plan, xt, rt, yt) == CONVKIT_OK);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == 5.0f + r[i]);
  const convkit_const_tensor wrong_r = {r, {1, 2, 1, 2}};
  CHECK_FAILS(convkit_conv2d_run_residual(plan, xt, wrong_r, yt), CONVKIT_SHAPE_MISMATCH, "r");
  CHECK_FAILS(convkit_conv2d_run_residual(NULL, xt, rt, yt), CONVKIT_INVALID_ARGUMENT, "plan");
  /* x scaled by 2 (the gate of a squeeze-and-excitation block): z = 2 * -4 + 10 = 2. */
  const float gate[1] = {2.0f};
  const convkit_const_tensor gate_t = {gate, {1, 1, 1, 1}}, no_r = {NULL, {0, 0, 0, 0}};
  CHECK(convkit_conv2d_run_scaled(plan, xt, gate_t, rt, yt) == CONVKIT_OK);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == 2.0f + r[i]);
  CHECK(convkit_conv2d_run_scaled(plan, xt, gate_t, no_r, yt) == CONVKIT_OK);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == 2.0f);
  const convkit_const_tensor wrong_gate = {gate, {1, 1, 1, 2}};
  CHECK_FAILS(convkit_conv2d_run_scaled(plan, xt, wrong_gate, rt, yt), CONVKIT_SHAPE_MISMATCH,
              "x_scale");
  /* x as one piece (its only channel), then errors naming the pieces. */
  const convkit_channel_piece piece = {x, 1, 1};
  CHECK(convkit_conv2d_run_concatenated(plan, &piece, 1, rt, yt) == CONVKIT_OK);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == 5.0f + r[i]);
  const convkit_channel_piece narrow = {x, 1, 0};
  CHECK_FAILS(convkit_conv2d_run_concatenated(plan, &narrow, 1, rt, yt), CONVKIT_INVALID_ARGUMENT,
              "pieces[0].pixel_stride");
  CHECK_FAILS(convkit_conv2d_run_concatenated(plan, &piece, 0, rt, yt), CONVKIT_INVALID_ARGUMENT,
              "pieces");
  convkit_conv2d_destroy(plan);

  params.activation_alpha = 6.0f; /* lo > hi */
  CHECK_FAILS(convkit_conv2d_forward(&params, xt, wt, b, 1, yt, NULL), CONVKIT_INVALID_ARGUMENT,
              "params.activation_alpha");
  params.activation_alpha = 0.0f;
  params.residual_after_activation = 2;
  CHECK_FAILS(convkit_conv2d_forward(&params, xt, wt, b, 1, yt, NULL), CONVKIT_INVALID_ARGUMENT,
              "params.residual_after_activation");
  params.residual_after_activation = 0;
  /* The linear map after the clip: 5 * -0.5 + 1, then + r after it. */
  params.post_scale = -0.5f;
  params.post_shift = 1.0f;
  CHECK(convkit_conv2d_forward(&params, xt, wt, b, 1, yt, "reference") == CONVKIT_OK);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == -1.5f);
  params.residual_after_activation = 1;
  CHECK(convkit_conv2d_forward_residual(&params, xt, wt, b, 1, rt, yt, NULL) == CONVKIT_OK);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == -1.5f + r[i]);
  params.residual_after_activation = 0;
  params.post_shift = INFINITY;
  CHECK_FAILS(convkit_conv2d_forward(&params, xt, wt, b, 1, yt, NULL), CONVKIT_INVALID_ARGUMENT,
              "params.post_shift: expected a finite value");
  params.post_scale = 1.0f;
  params.post_shift = 0.0f;
  const convkit_const_tensor r_in_x = {x, {1, 2, 2, 1}};
  CHECK_FAILS(convkit_conv2d_forward_residual(&params, xt, wt, b, 1, r_in_x, yt, NULL),
              CONVKIT_INVALID_ARGUMENT, "r: expected memory that does not overlap x");
}

/* A 1x1 convolution over 20 channels given as 20 one-channel pieces (more than the ABI converts
 * on the stack), channel c of pixel p holding p + c: y = the sum of the pixel's channels. */
static void many_pieces_by_hand(void) {
  float x[40], w[20], y[2];
  for (int i = 0; i < 40; ++i) x[i] = (float)(i / 20 + i % 20);
  for (int i = 0; i < 20; ++i) w[i] = 1.0f;
  convkit_conv2d_params params;
  convkit_conv2d_params_init(&params);
  const int64_t x_dims[4] = {1, 1, 2, 20};
  const convkit_const_tensor wt = {w, {1, 1, 20, 1}}, no_r = {NULL, {0, 0, 0, 0}};
  const convkit_tensor yt = {y, {1, 1, 2, 1}};
  convkit_conv2d* plan = NULL;
  CHECK(convkit_conv2d_create(&params, x_dims, wt, NULL, 0, NULL, &plan) == CONVKIT_OK);
  convkit_channel_piece pieces[20];
  for (int c = 0; c < 20; ++c) pieces[c] = (convkit_channel_piece){x + c, 1, 20};
  CHECK(convkit_conv2d_run_concatenated(plan, pieces, 20, no_r, yt) == CONVKIT_OK);
  CHECK(y[0] == 190.0f && y[1] == 210.0f); /* 0 + 1 + ... + 19, then each + 1 */
  convkit_conv2d_destroy(plan);
}

/* Max and average pooling of 1x2x4x1 {1 5 2 0 / 3 4 8 -1}, 2x2 windows, stride 2:
 * max {5, 8}, average {13/4, 9/4}; backward of dy = {1, 2}: max sends 1 to the 5 and 2 to the 8. */
static void pool_by_hand(void) {
  const float x[8] = {1, 5, 2, 0, 3, 4, 8, -1};
  float y[2], dx[8];
  const float dy[2] = {1, 2};
  convkit_pool2d_params params;
  convkit_pool2d_params_init(&params);
  params.window_h = params.window_w = params.stride_h = params.stride_w = 2;
  const convkit_const_tensor xt = {x, {1, 2, 4, 1}}, dyt = {dy, {1, 1, 2, 1}};
  const convkit_tensor yt = {y, {1, 1, 2, 1}}, dxt = {dx, {1, 2, 4, 1}};
  CHECK(convkit_pool2d_forward(&params, xt, yt, "reference") == CONVKIT_OK);
  CHECK(y[0] == 5.0f && y[1] == 8.0f);
  CHECK(convkit_pool2d_backward(&params, xt, dyt, dxt, "reference") == CONVKIT_OK);
  const float want_max[8] = {0, 1, 0, 0, 0, 0, 2, 0};
  for (int i = 0; i < 8; ++i) CHECK(dx[i] == want_max[i]);
  params.mode = CONVKIT_POOL_AVERAGE;
  CHECK(convkit_pool2d_forward(&params, xt, yt, "reference") == CONVKIT_OK);
  CHECK(y[0] == 3.25f && y[1] == 2.25f);

  convkit_pool2d* plan = NULL;
  const int64_t x_dims[4] = {1, 2, 4, 1};
  CHECK(convkit_pool2d_create(&params, x_dims, NULL, &plan) == CONVKIT_OK);
  CHECK(plan != NULL);
  y[0] = y[1] = 0;
  CHECK(convkit_pool2d_run(plan, xt, yt) == CONVKIT_OK);
  CHECK(y[0] == 3.25f && y[1] == 2.25f);
  int64_t y_dims[4] = {0, 0, 0, 0};
  convkit_pool2d_y_dims(plan, y_dims);
  CHECK(y_dims[0] == 1 && y_dims[1] == 1 && y_dims[2] == 2 && y_dims[3] == 1);
  CHECK(strlen(convkit_pool2d_impl_name(plan)) > 0);
  convkit_pool2d_destroy(plan);

  /* The backward plan of max pooling gives what the one-shot call gave above. */
  params.mode = CONVKIT_POOL_MAX;
  convkit_pool2d_bwd* bwd = NULL;
  CHECK(convkit_pool2d_bwd_create(&params, x_dims, "reference", &bwd) == CONVKIT_OK);
  memset(dx, 0xff, sizeof(dx));
  CHECK(convkit_pool2d_bwd_run(bwd, xt, dyt, dxt) == CONVKIT_OK);
  for (int i = 0; i < 8; ++i) CHECK(dx[i] == want_max[i]);
  convkit_pool2d_bwd_y_dims(bwd, y_dims);
  CHECK(y_dims[0] == 1 && y_dims[1] == 1 && y_dims[2] == 2 && y_dims[3] == 1);
  CHECK(strcmp(convkit_pool2d_bwd_impl_name(bwd), "reference:direct:scalar") == 0);
  CHECK_FAILS(convkit_pool2d_bwd_run(bwd, xt, xt, dxt), CONVKIT_SHAPE_MISMATCH, "dy");
  convkit_pool2d_bwd_destroy(bwd);
}

/* zero_pad of a 1x1x1x2 tensor by one on each side: a 1x3x3x2 of zeros around it. */
static void zero_pad_by_hand(void) {
  const float x[2] = {7, -3};
  float y[18];
  memset(y, 0xff, sizeof(y)); /* NaNs: every element must be written */
  const convkit_pads pad = {1, 1, 1, 1};
  CHECK(convkit_zero_pad((convkit_const_tensor){x, {1, 1, 1, 2}}, pad,
                         (convkit_tensor){y, {1, 3, 3, 2}}) == CONVKIT_OK);
  for (int i = 0; i < 18; ++i) CHECK(y[i] == (i == 8 ? 7.0f : i == 9 ? -3.0f : 0.0f));
}

/* Small integers: every partial sum is exact in fp32, so every backend matches reference bit for
 * bit (DESIGN §4), forward through a plan and backward through the one-shot call. */
static void fill(float* p, int64_t n, int seed) {
  for (int64_t i = 0; i < n; ++i) p[i] = (float)((i * 5 + seed * 3) % 7 - 3);
}

static void backends_agree(void) {
  convkit_conv2d_params params;
  convkit_conv2d_params_init(&params);
  params.kernel_h = params.kernel_w = 3;
  params.stride_h = 2;
  params.pad = (convkit_pads){1, 0, 1, 2};
  params.groups = 2;
  const int64_t x_dims[4] = {2, 9, 8, 6}, w_dims[4] = {3, 3, 3, 10};
  int64_t y_dims[4];
  CHECK(convkit_conv2d_output_dims(&params, x_dims, w_dims, y_dims) == CONVKIT_OK);
  float *x = malloc(sizeof(float) * count(x_dims)), *w = malloc(sizeof(float) * count(w_dims));
  float b[10], *dy = malloc(sizeof(float) * count(y_dims));
  fill(x, count(x_dims), 1);
  fill(w, count(w_dims), 2);
  fill(b, 10, 3);
  fill(dy, count(y_dims), 4);
  const convkit_const_tensor xt = {x, {2, 9, 8, 6}}, wt = {w, {3, 3, 3, 10}};
  const convkit_const_tensor dyt = {dy, {y_dims[0], y_dims[1], y_dims[2], y_dims[3]}};
  float *want_y = malloc(sizeof(float) * count(y_dims)), *y = malloc(sizeof(float) * count(y_dims));
  float *want_dx = malloc(sizeof(float) * count(x_dims)),
        *dx = malloc(sizeof(float) * count(x_dims));
  float *want_dw = malloc(sizeof(float) * count(w_dims)),
        *dw = malloc(sizeof(float) * count(w_dims));
  float want_db[10], db[10];
  float* w2 = malloc(sizeof(float) * count(w_dims));
  const convkit_const_tensor w2t = {w2, {3, 3, 3, 10}};
  const convkit_tensor want_yt = {want_y, {y_dims[0], y_dims[1], y_dims[2], y_dims[3]}};
  const convkit_tensor yt = {y, {y_dims[0], y_dims[1], y_dims[2], y_dims[3]}};
  const convkit_tensor want_dxt = {want_dx, {2, 9, 8, 6}}, dxt = {dx, {2, 9, 8, 6}};
  const convkit_tensor want_dwt = {want_dw, {3, 3, 3, 10}}, dwt = {dw, {3, 3, 3, 10}};
  CHECK(convkit_conv2d_forward(&params, xt, wt, b, 10, want_yt, "reference") == CONVKIT_OK);
  CHECK(convkit_conv2d_backward(&params, xt, wt, dyt, &want_dxt, &want_dwt, want_db, 10,
                                "reference") == CONVKIT_OK);

  char names[256];
  snprintf(names, sizeof(names), "%s", convkit_available_backends());
  CHECK(strstr(names, "reference") != NULL);
  int checked = 0;
  for (char* name = strtok(names, ","); name != NULL; name = strtok(NULL, ","), ++checked) {
    convkit_conv2d* plan = NULL;
    CHECK(convkit_conv2d_create(&params, x_dims, wt, b, 10, name, &plan) == CONVKIT_OK);
    CHECK(strncmp(convkit_conv2d_impl_name(plan), name, strlen(name)) == 0);
    memset(y, 0, sizeof(float) * count(y_dims));
    CHECK(convkit_conv2d_run(plan, xt, yt) == CONVKIT_OK);
    convkit_conv2d_destroy(plan);
    CHECK(memcmp(y, want_y, sizeof(float) * count(y_dims)) == 0);
    CHECK(convkit_conv2d_backward(&params, xt, wt, dyt, &dxt, &dwt, db, 10, name) == CONVKIT_OK);
    CHECK(memcmp(dx, want_dx, sizeof(float) * count(x_dims)) == 0);
    CHECK(memcmp(dw, want_dw, sizeof(float) * count(w_dims)) == 0);
    CHECK(memcmp(db, want_db, sizeof(db)) == 0);
    /* Only db: dx and dw skipped. */
    memset(db, 0, sizeof(db));
    CHECK(convkit_conv2d_backward(&params, xt, wt, dyt, NULL, NULL, db, 10, name) == CONVKIT_OK);
    CHECK(memcmp(db, want_db, sizeof(db)) == 0);

    /* The backward plan: every gradient, then dx alone (x not needed) after set_weights. */
    convkit_conv2d_bwd* bwd = NULL;
    CHECK(convkit_conv2d_bwd_create(&params, x_dims, wt,
                                    CONVKIT_GRAD_DX | CONVKIT_GRAD_DW | CONVKIT_GRAD_DB, name,
                                    &bwd) == CONVKIT_OK);
    CHECK(strncmp(convkit_conv2d_bwd_impl_name(bwd), name, strlen(name)) == 0);
    memset(dx, 0, sizeof(float) * count(x_dims));
    memset(dw, 0, sizeof(float) * count(w_dims));
    memset(db, 0, sizeof(db));
    CHECK(convkit_conv2d_bwd_run(bwd, xt, dyt, &dxt, &dwt, db, 10) == CONVKIT_OK);
    CHECK(memcmp(dx, want_dx, sizeof(float) * count(x_dims)) == 0);
    CHECK(memcmp(dw, want_dw, sizeof(float) * count(w_dims)) == 0);
    CHECK(memcmp(db, want_db, sizeof(db)) == 0);
    int64_t dy_dims[4];
    convkit_conv2d_bwd_y_dims(bwd, dy_dims);
    CHECK(memcmp(dy_dims, y_dims, sizeof(dy_dims)) == 0);
    convkit_conv2d_bwd_destroy(bwd);

    /* dx is linear in w: with w doubled by set_weights it doubles (exact on these integers). */
    CHECK(convkit_conv2d_bwd_create(&params, x_dims, wt, CONVKIT_GRAD_DX, name, &bwd) ==
          CONVKIT_OK);
    for (int64_t i = 0; i < count(w_dims); ++i) w2[i] = 2 * w[i];
    CHECK(convkit_conv2d_bwd_set_weights(bwd, w2t) == CONVKIT_OK);
    const convkit_const_tensor no_x = {NULL, {0, 0, 0, 0}};
    CHECK(convkit_conv2d_bwd_run(bwd, no_x, dyt, &dxt, NULL, NULL, 0) == CONVKIT_OK);
    for (int64_t i = 0; i < count(x_dims); ++i) CHECK(dx[i] == 2 * want_dx[i]);
    CHECK_FAILS(convkit_conv2d_bwd_run(bwd, no_x, dyt, &dxt, &dwt, NULL, 0),
                CONVKIT_INVALID_ARGUMENT, "grads.dw");
    convkit_conv2d_bwd_destroy(bwd);
  }
  CHECK(checked >= 1);
  int nonzero = 0; /* the data must not be trivial */
  for (int64_t i = 0; i < count(y_dims); ++i) nonzero += want_y[i] != 0.0f;
  CHECK(nonzero > count(y_dims) / 2);
  free(x), free(w), free(w2), free(dy), free(want_y), free(y), free(want_dx), free(dx),
      free(want_dw), free(dw);
}

/* The transposed convolution by hand: x 1x2x2x1 = {1 2 / 3 4}, w 2x2 = {1 10 / 100 1000}, stride
 * 2, b = 5: each x element stamps x * w on its own 2x2 block of y 1x4x4x1. Then every backend
 * against reference (grouped, strided, cropped, output_padding 1), plan and backward. */
static void transpose_by_hand(void) {
  const float x[4] = {1, 2, 3, 4}, w[4] = {1, 10, 100, 1000}, b[1] = {5};
  const float want[16] = {1, 10, 2, 20, 100, 1000, 200, 2000, 3, 30, 4, 40, 300, 3000, 400, 4000};
  float y[16];
  convkit_conv2d_transpose_params params;
  convkit_conv2d_transpose_params_init(&params);
  params.kernel_h = params.kernel_w = 2;
  params.stride_h = params.stride_w = 2;
  const int64_t x_dims[4] = {1, 2, 2, 1}, w_dims[4] = {2, 2, 1, 1};
  int64_t y_dims[4] = {0, 0, 0, 0};
  CHECK(convkit_conv2d_transpose_output_dims(&params, x_dims, w_dims, y_dims) == CONVKIT_OK);
  CHECK(y_dims[0] == 1 && y_dims[1] == 4 && y_dims[2] == 4 && y_dims[3] == 1);
  const convkit_const_tensor xt = {x, {1, 2, 2, 1}}, wt = {w, {2, 2, 1, 1}};
  const convkit_tensor yt = {y, {1, 4, 4, 1}};
  CHECK(convkit_conv2d_transpose_forward(&params, xt, wt, b, 1, yt, "reference") == CONVKIT_OK);
  for (int i = 0; i < 16; ++i) CHECK(y[i] == want[i] + 5.0f);
  /* fpmath: strict by default; bf16 keeps these bf16-exact integers' bits; others refused. */
  CHECK(params.fpmath == CONVKIT_FPMATH_STRICT);
  params.fpmath = CONVKIT_FPMATH_BF16;
  CHECK(convkit_conv2d_transpose_forward(&params, xt, wt, b, 1, yt, NULL) == CONVKIT_OK);
  for (int i = 0; i < 16; ++i) CHECK(y[i] == want[i] + 5.0f);
  params.fpmath = (convkit_fpmath)2;
  CHECK_FAILS(convkit_conv2d_transpose_forward(&params, xt, wt, b, 1, yt, NULL),
              CONVKIT_INVALID_ARGUMENT, "params.fpmath");
  params.fpmath = CONVKIT_FPMATH_STRICT;
  /* Post-ops: r = -20 everywhere before leaky_relu(0.5), then in place after it; every backend. */
  float r[16];
  for (int i = 0; i < 16; ++i) r[i] = -20.0f;
  const convkit_const_tensor rt = {r, {1, 4, 4, 1}};
  params.activation = CONVKIT_ACTIVATION_LEAKY_RELU;
  params.activation_alpha = 0.5f;
  CHECK(convkit_conv2d_transpose_forward_residual(&params, xt, wt, b, 1, rt, yt, "reference") ==
        CONVKIT_OK);
  for (int i = 0; i < 16; ++i) {
    const float z = want[i] + 5.0f - 20.0f;
    CHECK(y[i] == (z > 0.0f ? z : 0.5f * z));
  }
  char all[256];
  snprintf(all, sizeof(all), "%s", convkit_available_backends());
  params.residual_after_activation = 1;
  for (char* name = strtok(all, ","); name != NULL; name = strtok(NULL, ",")) {
    convkit_conv2d_transpose* plan = NULL;
    CHECK(convkit_conv2d_transpose_create(&params, x_dims, wt, b, 1, name, &plan) == CONVKIT_OK);
    for (int i = 0; i < 16; ++i) y[i] = 1.0f; /* the residual, in place */
    const convkit_const_tensor in_place = {y, {1, 4, 4, 1}};
    CHECK(convkit_conv2d_transpose_run_residual(plan, xt, in_place, yt) == CONVKIT_OK);
    for (int i = 0; i < 16; ++i) CHECK(y[i] == want[i] + 6.0f);
    convkit_conv2d_transpose_destroy(plan);
  }
  params.activation = CONVKIT_ACTIVATION_NONE;
  params.residual_after_activation = 0;

  /* Every backend against reference: 2 groups, 3x3 stride 2, crops, output_padding 1 (no
   * activation: onednn refuses ReLU, whose NaN it cannot keep). */
  params.kernel_h = params.kernel_w = 3;
  params.pad = (convkit_pads){1, 0, 1, 2};
  params.groups = 2;
  params.output_padding_h = params.output_padding_w = 1;
  const int64_t gx_dims[4] = {2, 5, 4, 6}, gw_dims[4] = {3, 3, 5, 6};
  int64_t gy_dims[4];
  CHECK(convkit_conv2d_transpose_output_dims(&params, gx_dims, gw_dims, gy_dims) == CONVKIT_OK);
  CHECK(gy_dims[1] == 11 && gy_dims[2] == 7 && gy_dims[3] == 10); /* (5 - 1) * 2 - 1 + 2 + 1 + 1 */
  float gx[240], gw[270], gb[10], want_y[1540], gy[1540], dy[1540];
  float want_dx[240], dx[240], want_dw[270], dw[270], want_db[10], db[10];
  fill(gx, 240, 1);
  fill(gw, 270, 2);
  fill(gb, 10, 3);
  fill(dy, 1540, 4);
  const convkit_const_tensor gxt = {gx, {2, 5, 4, 6}}, gwt = {gw, {3, 3, 5, 6}};
  const convkit_const_tensor dyt = {dy, {2, 11, 7, 10}};
  const convkit_tensor want_yt = {want_y, {2, 11, 7, 10}}, gyt = {gy, {2, 11, 7, 10}};
  const convkit_tensor want_dxt = {want_dx, {2, 5, 4, 6}}, dxt = {dx, {2, 5, 4, 6}};
  const convkit_tensor want_dwt = {want_dw, {3, 3, 5, 6}}, dwt = {dw, {3, 3, 5, 6}};
  CHECK(convkit_conv2d_transpose_forward(&params, gxt, gwt, gb, 10, want_yt, "reference") ==
        CONVKIT_OK);
  CHECK(convkit_conv2d_transpose_backward(&params, gxt, gwt, dyt, &want_dxt, &want_dwt, want_db, 10,
                                          "reference") == CONVKIT_OK);
  char names[256];
  snprintf(names, sizeof(names), "%s", convkit_available_backends());
  for (char* name = strtok(names, ","); name != NULL; name = strtok(NULL, ",")) {
    convkit_conv2d_transpose* plan = NULL;
    CHECK(convkit_conv2d_transpose_create(&params, gx_dims, gwt, gb, 10, name, &plan) ==
          CONVKIT_OK);
    CHECK(strncmp(convkit_conv2d_transpose_impl_name(plan), name, strlen(name)) == 0);
    int64_t planned[4] = {0, 0, 0, 0};
    convkit_conv2d_transpose_y_dims(plan, planned);
    CHECK(memcmp(planned, gy_dims, sizeof(planned)) == 0);
    memset(gy, 0, sizeof(gy));
    CHECK(convkit_conv2d_transpose_run(plan, gxt, gyt) == CONVKIT_OK);
    convkit_conv2d_transpose_destroy(plan);
    CHECK(memcmp(gy, want_y, sizeof(gy)) == 0);
    CHECK(convkit_conv2d_transpose_backward(&params, gxt, gwt, dyt, &dxt, &dwt, db, 10, name) ==
          CONVKIT_OK);
    CHECK(memcmp(dx, want_dx, sizeof(dx)) == 0);
    CHECK(memcmp(dw, want_dw, sizeof(dw)) == 0);
    CHECK(memcmp(db, want_db, sizeof(db)) == 0);
  }
  int nonzero = 0;
  for (int i = 0; i < 1540; ++i) nonzero += want_y[i] != 0.0f;
  CHECK(nonzero > 770);

  /* Errors: output_padding at both stride and dilation; a NULL plan. */
  params.output_padding_h = 2;
  CHECK_FAILS(convkit_conv2d_transpose_forward(&params, gxt, gwt, gb, 10, want_yt, NULL),
              CONVKIT_INVALID_ARGUMENT, "params.output_padding_h");
  params.output_padding_h = 1;
  params.residual_after_activation = 3;
  CHECK_FAILS(convkit_conv2d_transpose_forward(&params, gxt, gwt, gb, 10, want_yt, NULL),
              CONVKIT_INVALID_ARGUMENT, "params.residual_after_activation");
  CHECK_FAILS(convkit_conv2d_transpose_run(NULL, gxt, gyt), CONVKIT_INVALID_ARGUMENT, "plan");
  CHECK(strcmp(convkit_conv2d_transpose_impl_name(NULL), "") == 0);
  convkit_conv2d_transpose_destroy(NULL);
}

static void errors(void) {
  float x[9] = {0}, w[4] = {0}, y[4];
  const convkit_const_tensor xt = {x, {1, 3, 3, 1}}, wt = {w, {2, 2, 1, 1}};
  const convkit_tensor yt = {y, {1, 2, 2, 1}};
  convkit_conv2d_params params;
  convkit_conv2d_params_init(&params);
  params.kernel_h = params.kernel_w = 2;

  CHECK_FAILS(convkit_conv2d_forward(NULL, xt, wt, NULL, 0, yt, NULL), CONVKIT_INVALID_ARGUMENT,
              "params");
  params.stride_h = 0;
  CHECK_FAILS(convkit_conv2d_forward(&params, xt, wt, NULL, 0, yt, NULL), CONVKIT_INVALID_ARGUMENT,
              "stride_h");
  params.stride_h = 1;
  params.activation = (convkit_activation)11;
  CHECK_FAILS(convkit_conv2d_forward(&params, xt, wt, NULL, 0, yt, NULL), CONVKIT_INVALID_ARGUMENT,
              "params.activation");
  params.activation = CONVKIT_ACTIVATION_NONE;
  CHECK_FAILS(convkit_conv2d_forward(&params, xt, wt, NULL, 1, yt, NULL), CONVKIT_INVALID_ARGUMENT,
              "b");
  CHECK_FAILS(convkit_conv2d_forward(&params, xt, wt, NULL, -1, yt, NULL), CONVKIT_INVALID_ARGUMENT,
              "b_size");
  const convkit_tensor wrong_y = {y, {1, 2, 3, 1}};
  CHECK_FAILS(convkit_conv2d_forward(&params, xt, wt, NULL, 0, wrong_y, NULL),
              CONVKIT_SHAPE_MISMATCH, "y");
  CHECK_FAILS(convkit_conv2d_forward(&params, xt, wt, NULL, 0, yt, "cudnn"),
              CONVKIT_BACKEND_UNAVAILABLE, "cudnn");
  /* A failed call wrote nothing; the next good call clears the message. */
  y[0] = 42.0f;
  CHECK_FAILS(convkit_conv2d_forward(&params, xt, wt, NULL, 0, yt, "cudnn"),
              CONVKIT_BACKEND_UNAVAILABLE, "backend");
  CHECK(y[0] == 42.0f);
  CHECK(convkit_conv2d_forward(&params, xt, wt, NULL, 0, yt, NULL) == CONVKIT_OK);
  CHECK(strcmp(convkit_last_error(), "") == 0);

  const int64_t x_dims[4] = {1, 3, 3, 1};
  CHECK_FAILS(convkit_conv2d_create(&params, x_dims, wt, NULL, 0, NULL, NULL),
              CONVKIT_INVALID_ARGUMENT, "plan");
  convkit_conv2d* plan = (convkit_conv2d*)&params; /* left as it was on failure */
  CHECK_FAILS(convkit_conv2d_create(&params, NULL, wt, NULL, 0, NULL, &plan),
              CONVKIT_INVALID_ARGUMENT, "x_dims");
  CHECK(plan == (convkit_conv2d*)&params);
  CHECK_FAILS(convkit_conv2d_run(NULL, xt, yt), CONVKIT_INVALID_ARGUMENT, "plan");
  CHECK(strcmp(convkit_conv2d_impl_name(NULL), "") == 0);
  convkit_conv2d_destroy(NULL);

  convkit_conv2d_bwd* bwd = NULL;
  CHECK_FAILS(convkit_conv2d_bwd_create(&params, x_dims, wt, 0, NULL, &bwd),
              CONVKIT_INVALID_ARGUMENT, "wanted");
  CHECK_FAILS(convkit_conv2d_bwd_create(&params, x_dims, wt, 8, NULL, &bwd),
              CONVKIT_INVALID_ARGUMENT, "grads");
  params.activation = CONVKIT_ACTIVATION_RELU;
  CHECK_FAILS(convkit_conv2d_bwd_create(&params, x_dims, wt, CONVKIT_GRAD_DW, NULL, &bwd),
              CONVKIT_INVALID_ARGUMENT, "params.activation");
  params.activation = CONVKIT_ACTIVATION_NONE;
  CHECK(bwd == NULL);
  CHECK(convkit_conv2d_bwd_create(&params, x_dims, wt, CONVKIT_GRAD_DW, NULL, &bwd) == CONVKIT_OK);
  const convkit_const_tensor wrong_w = {w, {2, 2, 1, 2}};
  CHECK_FAILS(convkit_conv2d_bwd_set_weights(bwd, wrong_w), CONVKIT_SHAPE_MISMATCH, "w");
  CHECK_FAILS(convkit_conv2d_bwd_set_weights(NULL, wt), CONVKIT_INVALID_ARGUMENT, "plan");
  float dw[4];
  const convkit_tensor dwt = {dw, {2, 2, 1, 1}};
  const convkit_const_tensor dyt = {y, {1, 2, 2, 1}};
  CHECK_FAILS(convkit_conv2d_bwd_run(bwd, xt, xt, NULL, &dwt, NULL, 0), CONVKIT_SHAPE_MISMATCH,
              "dy");
  CHECK_FAILS(convkit_conv2d_bwd_run(bwd, (convkit_const_tensor){NULL, {1, 3, 3, 1}}, dyt, NULL,
                                     &dwt, NULL, 0),
              CONVKIT_INVALID_ARGUMENT, "x");
  CHECK(convkit_conv2d_bwd_run(bwd, xt, dyt, NULL, &dwt, NULL, 0) == CONVKIT_OK);
  convkit_conv2d_bwd_destroy(bwd);
  convkit_conv2d_bwd_destroy(NULL);
  CHECK_FAILS(convkit_pool2d_bwd_run(NULL, xt, dyt, yt), CONVKIT_INVALID_ARGUMENT, "plan");

  convkit_pool2d_params pool;
  convkit_pool2d_params_init(&pool);
  pool.window_h = pool.window_w = 2;
  pool.ceil_mode = 2;
  CHECK_FAILS(convkit_pool2d_forward(&pool, xt, yt, NULL), CONVKIT_INVALID_ARGUMENT,
              "params.ceil_mode");
  pool.ceil_mode = 0;
  pool.mode = (convkit_pool_mode)-1;
  CHECK_FAILS(convkit_pool2d_forward(&pool, xt, yt, NULL), CONVKIT_INVALID_ARGUMENT, "params.mode");
  pool.mode = CONVKIT_POOL_MAX;
  pool.pad.top = 2;
  CHECK_FAILS(convkit_pool2d_forward(&pool, xt, yt, NULL), CONVKIT_INVALID_ARGUMENT, "pad");
  CHECK_FAILS(convkit_set_num_threads(-1), CONVKIT_INVALID_ARGUMENT, "-1");
  CHECK(strcmp(convkit_status_name(CONVKIT_SHAPE_MISMATCH), "shape mismatch") == 0);
}

static void threads(void) {
  CHECK(convkit_set_num_threads(1) == CONVKIT_OK);
  CHECK(convkit_num_threads() == 1);
  CHECK(convkit_set_num_threads(0) == CONVKIT_OK);
  CHECK(convkit_num_threads() >= 1);
}

/* A 1x1 convolution of the smallest denormal: kept by default, read as zero by highway once
 * flushing is on (the reference keeps it), kept again once it is off. */
static void flush_denormals_by_hand(void) {
  const char* highway = strstr(convkit_available_backends(), "highway") ? "highway" : NULL;
  float x[1] = {0x1.0p-149f}, w[1] = {1}, y[1] = {-1};
  convkit_conv2d_params params;
  convkit_conv2d_params_init(&params);
  const convkit_const_tensor xt = {x, {1, 1, 1, 1}}, wt = {w, {1, 1, 1, 1}};
  const convkit_tensor yt = {y, {1, 1, 1, 1}};
  CHECK(convkit_flush_denormals() == 0);
  CHECK(convkit_conv2d_forward(&params, xt, wt, NULL, 0, yt, highway) == CONVKIT_OK);
  CHECK(y[0] == 0x1.0p-149f);
  convkit_set_flush_denormals(1);
  CHECK(convkit_flush_denormals() == 1);
  CHECK(convkit_conv2d_forward(&params, xt, wt, NULL, 0, yt, "reference") == CONVKIT_OK);
  CHECK(y[0] == 0x1.0p-149f);
  if (highway != NULL) {
    CHECK(convkit_conv2d_forward(&params, xt, wt, NULL, 0, yt, highway) == CONVKIT_OK);
    CHECK(y[0] == 0.0f);
  }
  convkit_set_flush_denormals(0);
  CHECK(convkit_flush_denormals() == 0);
  CHECK(convkit_conv2d_forward(&params, xt, wt, NULL, 0, yt, highway) == CONVKIT_OK);
  CHECK(y[0] == 0x1.0p-149f);
}

int main(void) {
  conv_forward_by_hand();
  post_ops_by_hand();
  many_pieces_by_hand();
  pool_by_hand();
  zero_pad_by_hand();
  backends_agree();
  transpose_by_hand();
  errors();
  threads();
  flush_denormals_by_hand();
  if (failures != 0) {
    fprintf(stderr, "c_api_test: %d check(s) failed\n", failures);
    return 1;
  }
  printf("c_api_test: all checks passed (backends: %s)\n", convkit_available_backends());
  return 0;
}
