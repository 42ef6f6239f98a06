// Pooling forward: the seed's pool_forward, with padding, count_include_pad and ceil_mode.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>

#include "api/src/backend.hpp"
#include "backends/reference/reference.hpp"

namespace convkit::internal::reference {

PoolWindow pool_window(const Pool2dProblem& p, int64_t oh, int64_t ow) {
  const int64_t in_height = p.ih, in_width = p.iw;
  const int64_t window_h = p.kh, window_w = p.kw;
  const int64_t stride_h = p.stride_h, stride_w = p.stride_w;
  const int64_t pad_top = p.pad.top, pad_bottom = p.pad.bottom;
  const int64_t pad_left = p.pad.left, pad_right = p.pad.right;

  // The seed's corners, in input coordinates: negative in the top/left padding, and past the input
  // in the bottom/right padding (or beyond it, for ceil_mode's last window).
  const int64_t vert_start = oh * stride_h - pad_top;
  const int64_t vert_end = vert_start + window_h;
  const int64_t horiz_start = ow * stride_w - pad_left;
  const int64_t horiz_end = horiz_start + window_w;

  PoolWindow window;
  window.h_begin = std::max<int64_t>(vert_start, 0);
  window.h_end = std::min(vert_end, in_height);
  window.w_begin = std::max<int64_t>(horiz_start, 0);
  window.w_end = std::min(horiz_end, in_width);
  if (p.count_include_pad) {
    const int64_t padded_rows =
        std::min(vert_end, in_height + pad_bottom) - std::max(vert_start, -pad_top);
    const int64_t padded_cols =
        std::min(horiz_end, in_width + pad_right) - std::max(horiz_start, -pad_left);
    window.divisor = padded_rows * padded_cols;
  } else {
    window.divisor = (window.h_end - window.h_begin) * (window.w_end - window.w_begin);
  }
  assert(window.h_begin < window.h_end && window.w_begin < window.w_end);  // pad < window
  return window;
}

int64_t create_mask_from_window(const Pool2dProblem& p, const float* x, int64_t n, int64_t c,
                                const PoolWindow& window) {
  const Offset4d x_at(p.n, p.ih, p.iw, p.c);

  int64_t mask = x_at(n, window.h_begin, window.w_begin, c);
  for (int64_t ih = window.h_begin; ih < window.h_end; ++ih) {
    for (int64_t iw = window.w_begin; iw < window.w_end; ++iw) {
      const int64_t at = x_at(n, ih, iw, c);
      // Strictly greater keeps the first of tied elements. A NaN replaces any number and, since
      // nothing compares greater than NaN, stays: the first NaN wins.
      if (x[at] > x[mask] || (std::isnan(x[at]) && !std::isnan(x[mask]))) mask = at;
    }
  }
  return mask;
}

namespace {

// The seed's np.mean over one window: the sum of its in-input elements in row-major order, divided
// by the window's divisor (padding adds zeros to the sum, and counts only with count_include_pad).
float window_average(const Pool2dProblem& p, const float* x, int64_t n, int64_t c,
                     const PoolWindow& window) {
  const Offset4d x_at(p.n, p.ih, p.iw, p.c);

  float sum = 0.0f;
  for (int64_t ih = window.h_begin; ih < window.h_end; ++ih) {
    for (int64_t iw = window.w_begin; iw < window.w_end; ++iw) {
      sum += x[x_at(n, ih, iw, c)];
    }
  }
  return sum / static_cast<float>(window.divisor);
}

}  // namespace

void pool2d_fwd(const Pool2dProblem& p, const float* x, float* y) {
  const int64_t batch = p.n;
  const int64_t out_height = p.oh, out_width = p.ow, channels = p.c;
  const Offset4d y_at(batch, out_height, out_width, channels);
  const bool max_mode = p.mode == PoolMode::kMax;

  // Output elements are independent: any split of the loop gives the same bits.
#pragma omp parallel for collapse(2) \
    num_threads(threads_for(static_cast <double>(p.n) * p.oh * p.ow * p.c * p.kh * p.kw))
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t oh = 0; oh < out_height; ++oh) {
      for (int64_t ow = 0; ow < out_width; ++ow) {
        const PoolWindow window = pool_window(p, oh, ow);
        for (int64_t c = 0; c < channels; ++c) {
          y[y_at(n, oh, ow, c)] = max_mode ? x[create_mask_from_window(p, x, n, c, window)]
                                           : window_average(p, x, n, c, window);
        }
      }
    }
  }
}

}  // namespace convkit::internal::reference
