// Transposed convolution forward: the seed's conv_backward dA loop, run forward.
//
// The seed computes dA_prev by scattering: for every element dZ[i, h, w, c] it adds
//   W[:, :, :, c] * dZ[i, h, w, c]  to  da_prev_pad[i, vert_start:vert_end, horiz_start:horiz_end,
//   :]
// and then crops the padding. The transposed convolution is that loop with x in dZ's place and y
// in dA_prev's: each x element scatters its window, times w, into the full output, and the pads
// crop it (taps landing in the pads are skipped). Then the bias and the post-ops (residual,
// activation), once per y element. With fpmath = bf16, x and w are rounded to bf16 first, as the
// convolution does.
#include <cstdint>
#include <vector>

#include "api/src/backend.hpp"
#include "api/src/bf16.hpp"
#include "backends/reference/post_ops.hpp"
#include "backends/reference/reference.hpp"

namespace convkit::internal::reference {

void conv2d_transpose_fwd(const Conv2dTransposeProblem& p, const float* x, const float* w,
                          const float* b, const float* r, float* y) {
  const int64_t batch = p.n();
  const int64_t in_height = p.h(), in_width = p.w(), in_channels = p.c_in();
  const int64_t out_height = p.oh(), out_width = p.ow(), out_channels = p.c_out();
  const int64_t kernel_h = p.conv.kh, kernel_w = p.conv.kw;
  const int64_t stride_h = p.conv.stride_h, stride_w = p.conv.stride_w;
  const int64_t dilation_h = p.conv.dilation_h, dilation_w = p.conv.dilation_w;
  const int64_t pad_top = p.pad.top, pad_left = p.pad.left;  // the crops at the top and left
  const int64_t groups = p.conv.groups;
  const int64_t ic_per_group = in_channels / groups, oc_per_group = out_channels / groups;
  const Offset4d x_at(batch, in_height, in_width, in_channels);
  const Offset4d w_at(kernel_h, kernel_w, oc_per_group, in_channels);
  const Offset4d y_at(batch, out_height, out_width, out_channels);

  // Images are independent: each is scattered by one thread, in a fixed order, into a zeroed
  // image of its own (y itself may hold the residual r until the epilogue reads it).
  const int64_t image_size = out_height * out_width * out_channels;
  const bool bf16 = p.bf16();
  const auto operand = [bf16](float v) { return bf16 ? RoundToBf16(v) : v; };
#pragma omp parallel for num_threads(threads_for(p.flops() / 2))
  for (int64_t n = 0; n < batch; ++n) {
    std::vector<float> full(static_cast<size_t>(image_size), 0.0f);  // y(n) before the epilogue
    const Offset4d full_at(1, out_height, out_width, out_channels);
    for (int64_t ih = 0; ih < in_height; ++ih) {
      for (int64_t iw = 0; iw < in_width; ++iw) {
        const int64_t vert_start = ih * stride_h - pad_top;  // the seed's names, in the full output
        const int64_t horiz_start = iw * stride_w - pad_left;
        for (int64_t ic = 0; ic < in_channels; ++ic) {
          const int64_t group = ic / ic_per_group;
          const float dz = operand(x[x_at(n, ih, iw, ic)]);
          for (int64_t kh = 0; kh < kernel_h; ++kh) {
            const int64_t oh = vert_start + kh * dilation_h;
            if (oh < 0 || oh >= out_height) continue;  // cropped
            for (int64_t kw = 0; kw < kernel_w; ++kw) {
              const int64_t ow = horiz_start + kw * dilation_w;
              if (ow < 0 || ow >= out_width) continue;
              for (int64_t oc = 0; oc < oc_per_group; ++oc) {  // oc within the group, w's axis 2
                full[full_at(0, oh, ow, group * oc_per_group + oc)] +=
                    operand(w[w_at(kh, kw, oc, ic)]) * dz;
              }
            }
          }
        }
      }
    }
    // The epilogue: bias, then the residual and activation; r may be y itself.
    for (int64_t oh = 0; oh < out_height; ++oh) {
      for (int64_t ow = 0; ow < out_width; ++ow) {
        for (int64_t oc = 0; oc < out_channels; ++oc) {
          const float bias = b != nullptr ? b[oc] : 0.0f;
          const int64_t at = y_at(n, oh, ow, oc);
          y[at] = apply_post_ops(p.post_ops, full[full_at(0, oh, ow, oc)] + bias,
                                 r != nullptr ? r + at : nullptr);
        }
      }
    }
  }
}

}  // namespace convkit::internal::reference
