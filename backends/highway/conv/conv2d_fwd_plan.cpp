// The plan shared by the fp32 forward variants (conv2d_fwd_plan.hpp).
#include "backends/highway/conv/conv2d_fwd_plan.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "backends/highway/common/parallel.hpp"

namespace convkit::internal::highway {
namespace {

class Conv2dFwdPlan final : public Conv2dFwdImpl {
 public:
  Conv2dFwdPlan(const Conv2dProblem& p, const Conv2dFwdKernel& kernel, Conv2dFwdPacked packed,
                const float* b, bool serial, const char* variant, bool pointwise_inputs)
      : p_(p),
        kernel_(kernel),
        packed_(std::move(packed)),
        serial_(serial),
        pointwise_inputs_(pointwise_inputs),
        variant_(variant) {
    if (b != nullptr) b_.assign(b, b + p.oc);
  }

  void run(const float* x, const float* r, float* y) const override {
    kernel_.run(Args(p_, x, r, y));
  }

  bool fuses_x_scale() const override { return pointwise_inputs_; }
  bool fuses_concat() const override { return pointwise_inputs_ && p_.groups == 1; }

  void run_concatenated(std::span<const ChannelPiece> pieces, const float* r,
                        float* y) const override {
    kernel_.run(WithPieces(Args(p_, nullptr, r, y), pieces));
  }

  // One kernel call per image, which scales each weight panel once per sweep (ScaledPanel).
  // (Scaling x into scratch instead where an image has fewer pixels than outputs ran 14x14 256 ->
  // 512 at 127 against 102 µs: the serial pass paid for the other thread's spinning.)
  void run_scaled(const float* x, const float* x_scale, const float* r, float* y) const override {
    RunScaledPerImage(
        p_, x, x_scale, r, y, [this](const auto&... a) { return Args(a...); }, kernel_.run);
  }

  std::string name() const override { return Conv2dFwdImplName(variant_, kernel_); }

 private:
  Conv2dFwdArgs Args(const Conv2dProblem& p, const float* x, const float* r, float* y) const {
    const TapTable& taps = packed_.taps;
    return {.p = &p,
            .x = x,
            .w = packed_.layout,
            .b = b_.empty() ? nullptr : b_.data(),
            .zeros = packed_.zeros.empty() ? nullptr : packed_.zeros.data(),
            .r = r,
            .y = y,
            .threads = serial_ ? 1 : num_threads(),
            .taps = taps.entries.empty()
                        ? Conv2dFwdTaps{}
                        : Conv2dFwdTaps{taps.entries.data(), taps.tile_begin.data(), taps.rows}};
  }

  const Conv2dProblem p_;
  const Conv2dFwdKernel kernel_;
  const Conv2dFwdPacked packed_;
  AlignedFloats b_;
  const bool serial_;
  const bool pointwise_inputs_;
  const char* const variant_;
};

}  // namespace

std::unique_ptr<Conv2dFwdImpl> MakeConv2dFwdPlan(const Conv2dProblem& p,
                                                 const Conv2dFwdKernel& kernel,
                                                 Conv2dFwdPacked packed, const float* b,
                                                 bool serial, const char* variant,
                                                 bool pointwise_inputs) {
  return std::make_unique<Conv2dFwdPlan>(p, kernel, std::move(packed), b, serial, variant,
                                         pointwise_inputs);
}

Conv2dFwdWeights HwioLayout(const Conv2dProblem& p, const float* w, int64_t block_cols,
                            int64_t groups_per_block) {
  return {w, p.oc, groups_per_block * p.oc_per_group(), block_cols, block_cols, groups_per_block};
}

void PackPanels(const Conv2dProblem& p, const float* w, int64_t block_cols, Conv2dFwdPacked* packed,
                int64_t groups_per_block) {
  const int64_t k = p.kh * p.kw * p.ic_per_group();
  const int64_t ocg = p.oc_per_group();
  const int64_t spans = (p.groups + groups_per_block - 1) / groups_per_block;
  const int64_t blocks = (groups_per_block * ocg + block_cols - 1) / block_cols;
  packed->w.assign(static_cast<size_t>(spans * blocks * k * block_cols), 0.0f);
  for (int64_t g = 0; g < spans; ++g) {
    const int64_t span_cols = std::min(groups_per_block, p.groups - g * groups_per_block) * ocg;
    for (int64_t j = 0; j < blocks; ++j) {
      const int64_t cols = std::min(block_cols, span_cols - j * block_cols);
      float* panel = packed->w.data() + (g * blocks + j) * k * block_cols;
      for (int64_t r = 0; r < k; ++r) {
        const float* src = w + r * p.oc + g * groups_per_block * ocg + j * block_cols;
        std::copy(src, src + cols, panel + r * block_cols);
      }
    }
  }
  packed->layout = {packed->w.data(), block_cols, blocks * k * block_cols,
                    k * block_cols,   block_cols, groups_per_block};
}

std::string Conv2dFwdImplName(const char* variant, const Conv2dFwdKernel& kernel) {
  return std::string("highway:") + variant + ":" + kernel.isa;
}

double VectorFlops(const Conv2dProblem& p, int64_t lanes) {
  const int64_t cols = p.depthwise() ? p.oc : p.oc_per_group();
  const int64_t col_sets = p.depthwise() ? 1 : p.groups;
  return 2.0 * static_cast<double>(lanes) * static_cast<double>(p.n * p.oh * p.ow) *
         static_cast<double>(col_sets * ((cols + lanes - 1) / lanes)) *
         static_cast<double>(p.kh * p.kw * p.ic_per_group());
}

}  // namespace convkit::internal::highway
