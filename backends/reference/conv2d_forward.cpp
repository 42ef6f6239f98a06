// Convolution forward: the seed's conv_forward, one conv_single_step per output element.
#include <cstdint>

#include "api/src/backend.hpp"
#include "api/src/bf16.hpp"
#include "backends/reference/post_ops.hpp"
#include "backends/reference/reference.hpp"

namespace convkit::internal::reference {
namespace {

// The seed's conv_single_step for output element (n, oh, ow, oc): the sum over its window of x * w,
// plus b. Taps in the padding are skipped, as zero padding adds nothing (and a window wholly in the
// padding yields b). The order is fixed -- kh, kw, then the input channels of oc's group -- and b
// is added last, so integer-valued data give the same bits on every backend (DESIGN §4). With
// fpmath = bf16, x and w are rounded to bf16 first: this defines the mode.
float conv_single_step(const Conv2dProblem& p, const float* x, const float* w, float b, int64_t n,
                       int64_t oh, int64_t ow, int64_t oc) {
  const int64_t batch = p.n;
  const int64_t in_height = p.ih, in_width = p.iw, in_channels = p.ic;
  const int64_t out_channels = p.oc;
  const int64_t kernel_h = p.kh, kernel_w = p.kw;
  const int64_t stride_h = p.stride_h, stride_w = p.stride_w;
  const int64_t dilation_h = p.dilation_h, dilation_w = p.dilation_w;
  const int64_t pad_top = p.pad.top, pad_left = p.pad.left;
  const int64_t ic_per_group = p.ic_per_group(), oc_per_group = p.oc_per_group();
  const Offset4d x_at(batch, in_height, in_width, in_channels);
  const Offset4d w_at(kernel_h, kernel_w, ic_per_group, out_channels);

  const int64_t group = oc / oc_per_group;
  const int64_t vert_start = oh * stride_h - pad_top;  // the seed's names; negative in the padding
  const int64_t horiz_start = ow * stride_w - pad_left;
  const bool bf16 = p.bf16();
  const auto operand = [bf16](float v) { return bf16 ? RoundToBf16(v) : v; };
  float z = 0.0f;
  for (int64_t kh = 0; kh < kernel_h; ++kh) {
    const int64_t ih = vert_start + kh * dilation_h;
    if (ih < 0 || ih >= in_height) continue;
    for (int64_t kw = 0; kw < kernel_w; ++kw) {
      const int64_t iw = horiz_start + kw * dilation_w;
      if (iw < 0 || iw >= in_width) continue;
      for (int64_t ic = 0; ic < ic_per_group; ++ic) {  // ic counts within the group, as w's axis 2
        z += operand(x[x_at(n, ih, iw, group * ic_per_group + ic)]) *
             operand(w[w_at(kh, kw, ic, oc)]);
      }
    }
  }
  return z + b;
}

}  // namespace

void conv2d_fwd(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                const float* r, float* y) {
  const int64_t batch = p.n;
  const int64_t out_height = p.oh, out_width = p.ow, out_channels = p.oc;
  const Offset4d y_at(batch, out_height, out_width, out_channels);

  // Output elements are independent, each summed in a fixed order: any split of the loop gives the
  // same bits.
#pragma omp parallel for collapse(2) num_threads(threads_for(p.flops() / 2))
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t oh = 0; oh < out_height; ++oh) {
      for (int64_t ow = 0; ow < out_width; ++ow) {
        for (int64_t oc = 0; oc < out_channels; ++oc) {
          // Without a bias, adding +0 changes no bit: z starts at +0, so it is never -0.
          const float bias = b != nullptr ? b[oc] : 0.0f;
          const float z = conv_single_step(p, x, w, bias, n, oh, ow, oc);
          const int64_t at = y_at(n, oh, ow, oc);
          y[at] = apply_post_ops(p.post_ops, z, r != nullptr ? r + at : nullptr);
        }
      }
    }
  }
}

}  // namespace convkit::internal::reference
