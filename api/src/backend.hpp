// The interface every backend implements, and what the registry needs of it (STYLE rule 1).
//
// A backend lives in backends/<name>/ and exports one function, `const Backend& <name>_backend()`,
// listed once in api/src/registry.cpp. Backends receive validated problems (problem.hpp) and dense
// buffers: inputs and outputs never overlap, every pointer is non-null when its tensor has
// elements.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "api/src/problem.hpp"
#include "convkit/ops.hpp"

namespace convkit::internal {

// Whether a backend runs a problem, and if not, why. For a forward convolution, the answer covers
// runs with and without a residual: r is a run-time argument.
struct Support {
  bool ok = true;
  std::string reason;  // empty when ok

  static Support Yes() { return {}; }
  static Support No(std::string why) { return {false, std::move(why)}; }
};

// The passes a convolution backend may be asked about.
enum class ConvPass { kForward, kBackwardData, kBackwardWeights };
enum class PoolPass { kForward, kBackward };

// A planned forward convolution: weights packed, primitive created. run() is const, thread-safe,
// and allocates nothing. x is {n, ih, iw, ic} and y {n, oh, ow, oc}, dense NHWC. r, the residual of
// p.post_ops, is null (none) or has y's dims; it may equal y (read before y is written there),
// never overlaps x, and otherwise never overlaps y.
class Conv2dFwdImpl {
 public:
  virtual ~Conv2dFwdImpl() = default;
  virtual void run(const float* x, const float* r, float* y) const = 0;
  // run() on x * x_scale, x_scale {N, IC} (Conv2d::run_scaled). The API calls it only where
  // fuses_x_scale() is true and scales a copy of x for the others; the default throws.
  virtual bool fuses_x_scale() const { return false; }
  virtual void run_scaled(const float* x, const float* x_scale, const float* r, float* y) const;
  // run() on x given as channel pieces (Conv2d::run_concatenated), likewise with fuses_concat():
  // the API concatenates a copy for the others; the default throws.
  virtual bool fuses_concat() const { return false; }
  virtual void run_concatenated(std::span<const ChannelPiece> pieces, const float* r,
                                float* y) const;
  // "backend:variant:isa", e.g. "reference:direct:scalar".
  virtual std::string name() const = 0;
};

// A planned forward pooling; the same contract as Conv2dFwdImpl.
class Pool2dFwdImpl {
 public:
  virtual ~Pool2dFwdImpl() = default;
  virtual void run(const float* x, float* y) const = 0;
  virtual std::string name() const = 0;
};

// A planned backward convolution: the gradients `wanted` at creation, with w held in the layout the
// backend's kernels read. run() is const and thread-safe; dx, dw and db are non-null exactly when
// wanted, x is non-null when dw is wanted (else it may be null); dw and db are overwritten.
// set_weights() replaces w (same dims); the caller guarantees no run() overlaps it.
class Conv2dBwdImpl {
 public:
  virtual ~Conv2dBwdImpl() = default;
  virtual void run(const float* x, const float* dy, float* dx, float* dw, float* db) const = 0;
  virtual void set_weights(const float* w) = 0;
  virtual std::string name() const = 0;
};

// A planned backward pooling: dx overwritten; x is read by max pooling only.
class Pool2dBwdImpl {
 public:
  virtual ~Pool2dBwdImpl() = default;
  virtual void run(const float* x, const float* dy, float* dx) const = 0;
  virtual std::string name() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;
  // Empty when the backend is built into this copy; otherwise "not built, because ...".
  virtual std::string_view not_built_reason() const { return {}; }

  virtual Support supports_conv2d(const Conv2dProblem& p, ConvPass pass) const = 0;
  virtual Support supports_pool2d(const Pool2dProblem& p, PoolPass pass) const = 0;

  // w is HWIO {kh, kw, ic / groups, oc}; b has oc elements, or is null when !p.has_bias.
  // The returned plan keeps no reference to w or b.
  virtual std::unique_ptr<Conv2dFwdImpl> create_conv2d_fwd(const Conv2dProblem& p, const float* w,
                                                           const float* b) const = 0;
  virtual std::unique_ptr<Pool2dFwdImpl> create_pool2d_fwd(const Pool2dProblem& p) const = 0;
  // w as for create_conv2d_fwd; at least one gradient wanted. Keeps no reference to w.
  virtual std::unique_ptr<Conv2dBwdImpl> create_conv2d_bwd(
      const Conv2dProblem& p, const float* w, const Conv2dGradsWanted& wanted) const = 0;
  virtual std::unique_ptr<Pool2dBwdImpl> create_pool2d_bwd(const Pool2dProblem& p) const = 0;

  // The transposed convolution's forward pass (y = act(conv2d_transpose(x, w) + b)), planned: x is
  // {n, h, w, c_in}, y {n, oh, ow, c_out} (Conv2dTransposeProblem's accessors); w is
  // {kh, kw, c_out / groups, c_in}; b has c_out elements, or is null when !p.has_bias. The plan
  // keeps no reference to w or b. Its backward passes are the convolution's (conv2d_transpose_bwd).
  virtual Support supports_conv2d_transpose(const Conv2dTransposeProblem& p) const = 0;
  virtual std::unique_ptr<Conv2dFwdImpl> create_conv2d_transpose_fwd(
      const Conv2dTransposeProblem& p, const float* w, const float* b) const = 0;

  // One-shot forward calls. The defaults create a plan and run it; a backend overrides them where a
  // direct path is cheaper. When impl_name is non-null, the implementation's name is stored there.
  // r as in Conv2dFwdImpl::run.
  virtual void conv2d_fwd(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                          const float* r, float* y, std::string* impl_name) const;
  virtual void pool2d_fwd(const Pool2dProblem& p, const float* x, float* y,
                          std::string* impl_name) const;

  virtual void conv2d_transpose_fwd(const Conv2dTransposeProblem& p, const float* x, const float* w,
                                    const float* b, const float* r, float* y,
                                    std::string* impl_name) const;

  // Convolution gradients; a null dx, dw or db is skipped (at least one is non-null). dw and db
  // are overwritten (not accumulated into); with n == 0 they are zeros. The default creates a plan
  // and runs it.
  virtual void conv2d_bwd(const Conv2dProblem& p, const float* x, const float* w, const float* dy,
                          float* dx, float* dw, float* db, std::string* impl_name) const;
  // Transposed-convolution gradients (activation kNone), each optional and overwritten, by the
  // convolution's passes on p.conv: dx = conv2d_fwd(p.conv) of dy (with w, no bias); dw = conv's
  // backward weights with the roles swapped (conv's x is this op's dy, conv's dy this op's x); db
  // = the bias gradient of the depthwise 1x1 convolution whose dy is this dy
  // (TransposeBiasProblem). The support the caller must check: TransposeBwdSupport.
  void conv2d_transpose_bwd(const Conv2dTransposeProblem& p, const float* x, const float* w,
                            const float* dy, float* dx, float* dw, float* db,
                            std::string* impl_name) const;

  // Pooling gradient; dx is overwritten. x is read by max pooling only. The default creates a plan
  // and runs it.
  virtual void pool2d_bwd(const Pool2dProblem& p, const float* x, const float* dy, float* dx,
                          std::string* impl_name) const;
};

// What a backend folder exports when its option is OFF (ruy's have_built_path_for pattern): a
// backend that refuses everything with "not built, because <why>".
class NotBuiltBackend final : public Backend {
 public:
  NotBuiltBackend(std::string_view name, std::string_view why);

  std::string_view name() const override { return name_; }
  std::string_view not_built_reason() const override { return reason_; }
  Support supports_conv2d(const Conv2dProblem&, ConvPass) const override;
  Support supports_pool2d(const Pool2dProblem&, PoolPass) const override;
  std::unique_ptr<Conv2dFwdImpl> create_conv2d_fwd(const Conv2dProblem&, const float*,
                                                   const float*) const override;
  std::unique_ptr<Pool2dFwdImpl> create_pool2d_fwd(const Pool2dProblem&) const override;
  std::unique_ptr<Conv2dBwdImpl> create_conv2d_bwd(const Conv2dProblem&, const float*,
                                                   const Conv2dGradsWanted&) const override;
  std::unique_ptr<Pool2dBwdImpl> create_pool2d_bwd(const Pool2dProblem&) const override;
  Support supports_conv2d_transpose(const Conv2dTransposeProblem&) const override;
  std::unique_ptr<Conv2dFwdImpl> create_conv2d_transpose_fwd(const Conv2dTransposeProblem&,
                                                             const float*,
                                                             const float*) const override;
  void conv2d_bwd(const Conv2dProblem&, const float*, const float*, const float*, float*, float*,
                  float*, std::string*) const override;
  void pool2d_bwd(const Pool2dProblem&, const float*, const float*, float*,
                  std::string*) const override;

 private:
  std::string name_;
  std::string reason_;
};

// Whether `backend` runs the passes of `p` that `wanted` needs: backward data for dx, backward
// weights for dw or db (the first refusal, with its reason).
Support supports_conv2d_bwd(const Backend& backend, const Conv2dProblem& p,
                            const Conv2dGradsWanted& wanted);
// The depthwise 1x1 convolution over the transposed convolution's output, {n, oh, ow, c_out}:
// its bias gradient is the transposed convolution's db.
Conv2dProblem TransposeBiasProblem(const Conv2dTransposeProblem& p);

// Whether `backend` runs the transposed convolution's gradients that are asked for.
Support TransposeBwdSupport(const Backend& backend, const Conv2dTransposeProblem& p, bool dx,
                            bool dw, bool db);

// The thread count every backend passes to OpenMP: convkit::set_num_threads's value, or
// omp_get_max_threads() when unset.
int num_threads();

}  // namespace convkit::internal
