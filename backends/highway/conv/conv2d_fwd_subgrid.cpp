// Dilated convolutions as dense ones over sub-grids: the problem mapping, the gather of x (and of
// the residual) into sub-grid images, the scatter of their output into y, and the plan around the
// dense plan. Plain copies of C floats per pixel: a pass over x and one over y, next to a
// convolution that reads each input pixel KH * KW times.
#include "backends/highway/conv/conv2d_fwd_subgrid.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/common/scratch.hpp"

namespace convkit::internal::highway {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Where sub-grid images live: image (n, rh, rw) of `rows` x `cols` pixels of `c` floats, at
// index (n * dh + rh) * dw + rw, holding pixels (rh + i * dh, rw + j * dw) of an h x w image.
struct SubgridLayout {
  int64_t n, h, w, c;  // the full tensor {n, h, w, c}
  int64_t dh, dw;
  int64_t rows, cols;  // per sub-grid image

  int64_t floats() const { return n * dh * dw * rows * cols * c; }
};

// dst = the sub-grid images of src, zero where a sub-grid pixel lies past src's rows or columns.
void Gather(const SubgridLayout& l, const float* src, float* dst, int threads) {
  ParallelFor(threads, l.n * l.dh * l.dw * l.rows, [&](int64_t row) {
    const int64_t i = row % l.rows, image = row / l.rows;
    const int64_t rw = image % l.dw, rh = image / l.dw % l.dh, n = image / (l.dw * l.dh);
    const int64_t h = rh + i * l.dh;
    float* out = dst + row * l.cols * l.c;
    if (h >= l.h) {
      std::fill(out, out + l.cols * l.c, 0.0f);
      return;
    }
    const float* in = src + ((n * l.h + h) * l.w + rw) * l.c;
    for (int64_t j = 0; j < l.cols; ++j, out += l.c) {
      if (rw + j * l.dw < l.w) {
        std::copy(in + j * l.dw * l.c, in + (j * l.dw + 1) * l.c, out);
      } else {
        std::fill(out, out + l.c, 0.0f);
      }
    }
  });
}

// dst {n, h, w, c} = the pixels of the sub-grid images in src that lie in it.
void Scatter(const SubgridLayout& l, const float* src, float* dst, int threads) {
  ParallelFor(threads, l.n * l.h, [&](int64_t row) {
    const int64_t h = row % l.h, n = row / l.h;
    const int64_t rh = h % l.dh, i = h / l.dh;
    float* out = dst + row * l.w * l.c;
    for (int64_t w = 0; w < l.w; ++w, out += l.c) {
      const int64_t image = (n * l.dh + rh) * l.dw + w % l.dw;
      const float* in = src + ((image * l.rows + i) * l.cols + w / l.dw) * l.c;
      std::copy(in, in + l.c, out);
    }
  });
}

class SubgridPlan final : public Conv2dFwdImpl {
 public:
  SubgridPlan(const Conv2dProblem& p, const Conv2dProblem& sub,
              std::unique_ptr<Conv2dFwdImpl> inner, std::string name)
      : x_{p.n, p.ih, p.iw, p.ic, p.dilation_h, p.dilation_w, sub.ih, sub.iw},
        y_{p.n, p.oh, p.ow, p.oc, p.dilation_h, p.dilation_w, sub.oh, sub.ow},
        flops_(p.flops()),
        inner_(std::move(inner)),
        name_(std::move(name)) {}

  void run(const float* x, const float* r, float* y) const override {
    const int64_t x_floats = RoundUp(x_.floats()), y_floats = RoundUp(y_.floats());
    float* const x_sub = ThreadScratch<kSubgridScratchSlot>(x_floats + 2 * y_floats);
    float* const y_sub = x_sub + x_floats;
    float* const r_sub = r != nullptr ? y_sub + y_floats : nullptr;
    const int threads = ThreadsFor(flops_);  // as the inner plan: the thread count of this run
    Gather(x_, x, x_sub, threads);
    if (r != nullptr) Gather(y_, r, r_sub, threads);
    inner_->run(x_sub, r_sub, y_sub);
    Scatter(y_, y_sub, y, threads);
  }

  std::string name() const override { return name_; }

 private:
  // Each area starts on a 64-byte line, as the kernels' whole-vector loads prefer.
  static int64_t RoundUp(int64_t floats) { return (floats + 15) / 16 * 16; }

  const SubgridLayout x_, y_;
  const double flops_;
  const std::unique_ptr<Conv2dFwdImpl> inner_;
  const std::string name_;
};

}  // namespace

std::optional<Conv2dProblem> SubgridProblem(const Conv2dProblem& p) {
  const int64_t dh = p.dilation_h, dw = p.dilation_w;
  if (p.stride_h != 1 || p.stride_w != 1 || (dh == 1 && dw == 1)) return std::nullopt;
  if (p.pad.top % dh != 0 || p.pad.left % dw != 0) return std::nullopt;
  // Every sub-grid holds outputs: a dilation past the output's extent would add whole images of
  // padding (rate 18 on a 1x1 output: 324 images for one pixel).
  if (dh > p.oh || dw > p.ow) return std::nullopt;
  Conv2dProblem sub = p;
  sub.n = p.n * dh * dw;
  sub.ih = CeilDiv(p.ih, dh);
  sub.iw = CeilDiv(p.iw, dw);
  sub.oh = CeilDiv(p.oh, dh);
  sub.ow = CeilDiv(p.ow, dw);
  sub.dilation_h = sub.dilation_w = 1;
  sub.pad.top = p.pad.top / dh;
  sub.pad.left = p.pad.left / dw;
  // Stride 1: OH = IH + top + bottom - (KH - 1), so the bottom pad that gives sub.oh rows.
  sub.pad.bottom = sub.oh + (p.kh - 1) - sub.ih - sub.pad.top;
  sub.pad.right = sub.ow + (p.kw - 1) - sub.iw - sub.pad.left;
  if (sub.pad.bottom < 0 || sub.pad.right < 0) return std::nullopt;
  return sub;
}

std::unique_ptr<Conv2dFwdImpl> MakeSubgridPlan(const Conv2dProblem& p, const Conv2dProblem& sub,
                                               std::unique_ptr<Conv2dFwdImpl> inner,
                                               std::string name) {
  return std::make_unique<SubgridPlan>(p, sub, std::move(inner), std::move(name));
}

}  // namespace convkit::internal::highway
