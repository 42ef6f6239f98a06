// The reference backend's registration point (STYLE rule 1): it runs every problem, with one
// implementation, the plain loops of reference.hpp.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/src/backend.hpp"
#include "backends/reference/reference.hpp"

namespace convkit::internal {
namespace {

constexpr std::string_view kImplName = "reference:direct:scalar";
// fpmath = bf16: the same loops on x and w rounded to bf16.
constexpr std::string_view kBf16ImplName = "reference:direct_bf16:scalar";

std::string conv2d_fwd_name(const Conv2dProblem& p) {
  return std::string(p.bf16() ? kBf16ImplName : kImplName);
}

void store_impl_name(std::string* impl_name) {
  if (impl_name != nullptr) *impl_name = kImplName;
}

// A planned convolution. It owns copies of w and b, so the caller's buffers may go away.
class ReferenceConv2dFwd final : public Conv2dFwdImpl {
 public:
  ReferenceConv2dFwd(const Conv2dProblem& p, const float* w, const float* b)
      : p_(p), w_(w, w + p.w_size()) {
    if (p.has_bias) b_.assign(b, b + p.oc);
  }

  void run(const float* x, const float* r, float* y) const override {
    reference::conv2d_fwd(p_, x, w_.data(), p_.has_bias ? b_.data() : nullptr, r, y);
  }
  std::string name() const override { return conv2d_fwd_name(p_); }

 private:
  Conv2dProblem p_;
  std::vector<float> w_;  // HWIO, as given
  std::vector<float> b_;  // empty without a bias
};

// A planned transposed convolution, owning copies of w and b.
class ReferenceConv2dTransposeFwd final : public Conv2dFwdImpl {
 public:
  ReferenceConv2dTransposeFwd(const Conv2dTransposeProblem& p, const float* w, const float* b)
      : p_(p), w_(w, w + p.conv.kh * p.conv.kw * p.conv.ic_per_group() * p.c_in()) {
    if (p.has_bias) b_.assign(b, b + p.c_out());
  }

  void run(const float* x, const float* r, float* y) const override {
    reference::conv2d_transpose_fwd(p_, x, w_.data(), p_.has_bias ? b_.data() : nullptr, r, y);
  }
  std::string name() const override { return std::string(p_.bf16() ? kBf16ImplName : kImplName); }

 private:
  Conv2dTransposeProblem p_;
  std::vector<float> w_;  // {kh, kw, c_out / groups, c_in}, as given
  std::vector<float> b_;  // empty without a bias
};

class ReferencePool2dFwd final : public Pool2dFwdImpl {
 public:
  explicit ReferencePool2dFwd(const Pool2dProblem& p) : p_(p) {}

  void run(const float* x, float* y) const override { reference::pool2d_fwd(p_, x, y); }
  std::string name() const override { return std::string(kImplName); }

 private:
  Pool2dProblem p_;
};

// A planned backward convolution: a copy of w (HWIO), the gradients wanted.
class ReferenceConv2dBwd final : public Conv2dBwdImpl {
 public:
  ReferenceConv2dBwd(const Conv2dProblem& p, const float* w, const Conv2dGradsWanted& wanted)
      : p_(p), wanted_(wanted), w_(w, w + weight_count(p)) {}

  void run(const float* x, const float* dy, float* dx, float* dw, float* db) const override {
    if (wanted_.dx) reference::conv2d_bwd_data(p_, w_.data(), dy, dx);
    if (wanted_.dw) reference::conv2d_bwd_weights(p_, x, dy, dw);
    if (wanted_.db) reference::conv2d_bwd_bias(p_, dy, db);
  }
  void set_weights(const float* w) override { std::copy(w, w + w_.size(), w_.begin()); }
  std::string name() const override { return std::string(kImplName); }

 private:
  static int64_t weight_count(const Conv2dProblem& p) { return p.w_size(); }

  Conv2dProblem p_;
  Conv2dGradsWanted wanted_;
  std::vector<float> w_;  // HWIO, as given
};

class ReferencePool2dBwd final : public Pool2dBwdImpl {
 public:
  explicit ReferencePool2dBwd(const Pool2dProblem& p) : p_(p) {}

  void run(const float* x, const float* dy, float* dx) const override {
    reference::pool2d_bwd(p_, x, dy, dx);
  }
  std::string name() const override { return std::string(kImplName); }

 private:
  Pool2dProblem p_;
};

class ReferenceBackend final : public Backend {
 public:
  std::string_view name() const override { return "reference"; }

  Support supports_conv2d(const Conv2dProblem&, ConvPass) const override { return Support::Yes(); }
  Support supports_pool2d(const Pool2dProblem&, PoolPass) const override { return Support::Yes(); }

  std::unique_ptr<Conv2dFwdImpl> create_conv2d_fwd(const Conv2dProblem& p, const float* w,
                                                   const float* b) const override {
    return std::make_unique<ReferenceConv2dFwd>(p, w, b);
  }
  std::unique_ptr<Pool2dFwdImpl> create_pool2d_fwd(const Pool2dProblem& p) const override {
    return std::make_unique<ReferencePool2dFwd>(p);
  }
  std::unique_ptr<Conv2dBwdImpl> create_conv2d_bwd(const Conv2dProblem& p, const float* w,
                                                   const Conv2dGradsWanted& wanted) const override {
    return std::make_unique<ReferenceConv2dBwd>(p, w, wanted);
  }
  std::unique_ptr<Pool2dBwdImpl> create_pool2d_bwd(const Pool2dProblem& p) const override {
    return std::make_unique<ReferencePool2dBwd>(p);
  }
  Support supports_conv2d_transpose(const Conv2dTransposeProblem&) const override {
    return Support::Yes();
  }
  std::unique_ptr<Conv2dFwdImpl> create_conv2d_transpose_fwd(const Conv2dTransposeProblem& p,
                                                             const float* w,
                                                             const float* b) const override {
    return std::make_unique<ReferenceConv2dTransposeFwd>(p, w, b);
  }

  // The one-shot calls run the kernels on the caller's buffers: a plan would only copy w and b.
  void conv2d_fwd(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                  const float* r, float* y, std::string* impl_name) const override {
    reference::conv2d_fwd(p, x, w, p.has_bias ? b : nullptr, r, y);
    if (impl_name != nullptr) *impl_name = conv2d_fwd_name(p);
  }
  void conv2d_transpose_fwd(const Conv2dTransposeProblem& p, const float* x, const float* w,
                            const float* b, const float* r, float* y,
                            std::string* impl_name) const override {
    reference::conv2d_transpose_fwd(p, x, w, p.has_bias ? b : nullptr, r, y);
    if (impl_name != nullptr) *impl_name = p.bf16() ? kBf16ImplName : kImplName;
  }
  void pool2d_fwd(const Pool2dProblem& p, const float* x, float* y,
                  std::string* impl_name) const override {
    reference::pool2d_fwd(p, x, y);
    store_impl_name(impl_name);
  }

  void conv2d_bwd(const Conv2dProblem& p, const float* x, const float* w, const float* dy,
                  float* dx, float* dw, float* db, std::string* impl_name) const override {
    if (dx != nullptr) reference::conv2d_bwd_data(p, w, dy, dx);
    if (dw != nullptr) reference::conv2d_bwd_weights(p, x, dy, dw);
    if (db != nullptr) reference::conv2d_bwd_bias(p, dy, db);
    store_impl_name(impl_name);
  }
  void pool2d_bwd(const Pool2dProblem& p, const float* x, const float* dy, float* dx,
                  std::string* impl_name) const override {
    reference::pool2d_bwd(p, x, dy, dx);
    store_impl_name(impl_name);
  }
};

}  // namespace

const Backend& reference_backend() {
  static const ReferenceBackend backend;
  return backend;
}

}  // namespace convkit::internal

namespace convkit::internal::reference {

int threads_for(double work) {
  constexpr double kMinParallelWork = 1 << 16;
  return work < kMinParallelWork ? 1 : num_threads();
}

}  // namespace convkit::internal::reference
