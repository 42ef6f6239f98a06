// Convolution backward: the seed's conv_backward, one gradient at a time.
//
// The seed scatters: for every dy element, da_prev_pad[window] += W * dZ, dW += a_slice * dZ,
// db += dZ. Here each gradient element gathers the same terms instead, so it is one sum in a fixed
// order: the result is deterministic, and loops over distinct gradient elements may run in parallel
// without changing a bit.
#include <algorithm>
#include <cstdint>

#include "api/src/backend.hpp"
#include "backends/reference/reference.hpp"

namespace convkit::internal::reference {
namespace {

// Along one axis: the output index o in [0, out) whose window puts tap k on input index i, i.e.
// o * stride - pad + k * dilation == i; -1 when there is none.
int64_t output_for_tap(int64_t i, int64_t k, int64_t stride, int64_t pad, int64_t dilation,
                       int64_t out) {
  const int64_t o_times_stride = i + pad - k * dilation;
  if (o_times_stride < 0 || o_times_stride % stride != 0) return -1;
  const int64_t o = o_times_stride / stride;
  return o < out ? o : -1;
}

}  // namespace

// dx(n, ih, iw, ic) = the sum of dy(n, oh, ow, oc) * w(kh, kw, ic, oc) over every tap (kh, kw)
// whose output position (oh, ow) reads (ih, iw), and over the output channels oc of ic's group; in
// the order kh, kw, oc.
void conv2d_bwd_data(const Conv2dProblem& p, const float* w, const float* dy, float* dx) {
  const int64_t batch = p.n;
  const int64_t in_height = p.ih, in_width = p.iw, in_channels = p.ic;
  const int64_t out_height = p.oh, out_width = p.ow, out_channels = p.oc;
  const int64_t kernel_h = p.kh, kernel_w = p.kw;
  const int64_t stride_h = p.stride_h, stride_w = p.stride_w;
  const int64_t dilation_h = p.dilation_h, dilation_w = p.dilation_w;
  const int64_t pad_top = p.pad.top, pad_left = p.pad.left;
  const int64_t ic_per_group = p.ic_per_group(), oc_per_group = p.oc_per_group();
  const Offset4d dx_at(batch, in_height, in_width, in_channels);
  const Offset4d w_at(kernel_h, kernel_w, ic_per_group, out_channels);
  const Offset4d dy_at(batch, out_height, out_width, out_channels);

#pragma omp parallel for collapse(2) num_threads(threads_for(p.flops() / 2))
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t ih = 0; ih < in_height; ++ih) {
      for (int64_t iw = 0; iw < in_width; ++iw) {
        for (int64_t ic = 0; ic < in_channels; ++ic) {
          const int64_t group = ic / ic_per_group;
          const int64_t ic_in_group = ic % ic_per_group;  // ic as w's axis 2 counts it
          float sum = 0.0f;
          for (int64_t kh = 0; kh < kernel_h; ++kh) {
            const int64_t oh = output_for_tap(ih, kh, stride_h, pad_top, dilation_h, out_height);
            if (oh < 0) continue;
            for (int64_t kw = 0; kw < kernel_w; ++kw) {
              const int64_t ow = output_for_tap(iw, kw, stride_w, pad_left, dilation_w, out_width);
              if (ow < 0) continue;
              for (int64_t oc = group * oc_per_group; oc < (group + 1) * oc_per_group; ++oc) {
                sum += dy[dy_at(n, oh, ow, oc)] * w[w_at(kh, kw, ic_in_group, oc)];
              }
            }
          }
          dx[dx_at(n, ih, iw, ic)] = sum;
        }
      }
    }
  }
}

// dw(kh, kw, ic, oc) = the sum of x(n, ih, iw, group * ic_per_group + ic) * dy(n, oh, ow, oc) over
// every output position (n, oh, ow) whose tap (kh, kw) reads an input element (ih, iw), not the
// padding; in the order n, oh, ow. With no images the sums are empty: zeros.
void conv2d_bwd_weights(const Conv2dProblem& p, const float* x, const float* dy, float* dw) {
  const int64_t batch = p.n;
  const int64_t in_height = p.ih, in_width = p.iw, in_channels = p.ic;
  const int64_t out_height = p.oh, out_width = p.ow, out_channels = p.oc;
  const int64_t kernel_h = p.kh, kernel_w = p.kw;
  const int64_t stride_h = p.stride_h, stride_w = p.stride_w;
  const int64_t dilation_h = p.dilation_h, dilation_w = p.dilation_w;
  const int64_t pad_top = p.pad.top, pad_left = p.pad.left;
  const int64_t ic_per_group = p.ic_per_group(), oc_per_group = p.oc_per_group();
  const Offset4d x_at(batch, in_height, in_width, in_channels);
  const Offset4d dw_at(kernel_h, kernel_w, ic_per_group, out_channels);
  const Offset4d dy_at(batch, out_height, out_width, out_channels);

#pragma omp parallel for collapse(2) num_threads(threads_for(p.flops() / 2))
  for (int64_t kh = 0; kh < kernel_h; ++kh) {
    for (int64_t kw = 0; kw < kernel_w; ++kw) {
      for (int64_t ic = 0; ic < ic_per_group; ++ic) {  // ic counts within the group, as dw's axis 2
        for (int64_t oc = 0; oc < out_channels; ++oc) {
          const int64_t group = oc / oc_per_group;
          float sum = 0.0f;
          for (int64_t n = 0; n < batch; ++n) {
            for (int64_t oh = 0; oh < out_height; ++oh) {
              const int64_t ih = oh * stride_h - pad_top + kh * dilation_h;
              if (ih < 0 || ih >= in_height) continue;
              for (int64_t ow = 0; ow < out_width; ++ow) {
                const int64_t iw = ow * stride_w - pad_left + kw * dilation_w;
                if (iw < 0 || iw >= in_width) continue;
                sum += x[x_at(n, ih, iw, group * ic_per_group + ic)] * dy[dy_at(n, oh, ow, oc)];
              }
            }
          }
          dw[dw_at(kh, kw, ic, oc)] = sum;
        }
      }
    }
  }
}

// db(oc) = the sum of dy(n, oh, ow, oc) over n, oh, ow, in that order. The loop runs over dy in
// memory order; each db element still sees its terms in the order n, oh, ow.
void conv2d_bwd_bias(const Conv2dProblem& p, const float* dy, float* db) {
  const int64_t batch = p.n;
  const int64_t out_height = p.oh, out_width = p.ow, out_channels = p.oc;
  const Offset4d dy_at(batch, out_height, out_width, out_channels);

  std::fill_n(db, out_channels, 0.0f);
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t oh = 0; oh < out_height; ++oh) {
      for (int64_t ow = 0; ow < out_width; ++ow) {
        for (int64_t oc = 0; oc < out_channels; ++oc) {
          db[oc] += dy[dy_at(n, oh, ow, oc)];
        }
      }
    }
  }
}

}  // namespace convkit::internal::reference
