// Pooling backward: the seed's pool_backward, stride-aware, with its steps create_mask_from_window
// (pool2d_forward.cpp, shared with the forward pass) and distribute_value.
#include <algorithm>
#include <cstdint>

#include "api/src/backend.hpp"
#include "backends/reference/reference.hpp"

namespace convkit::internal::reference {
namespace {

// The seed's distribute_value: dy spread evenly over its window, dy / divisor added to each
// in-input element. With count_include_pad the padding's shares fall outside dx and are dropped.
void distribute_value(const Pool2dProblem& p, float dy, int64_t n, int64_t c,
                      const PoolWindow& window, float* dx) {
  const Offset4d dx_at(p.n, p.ih, p.iw, p.c);

  const float share = dy / static_cast<float>(window.divisor);
  for (int64_t ih = window.h_begin; ih < window.h_end; ++ih) {
    for (int64_t iw = window.w_begin; iw < window.w_end; ++iw) {
      dx[dx_at(n, ih, iw, c)] += share;
    }
  }
}

}  // namespace

void pool2d_bwd(const Pool2dProblem& p, const float* x, const float* dy, float* dx) {
  const int64_t batch = p.n;
  const int64_t in_height = p.ih, in_width = p.iw;
  const int64_t out_height = p.oh, out_width = p.ow, channels = p.c;
  const Offset4d dx_at(batch, in_height, in_width, channels);
  const Offset4d dy_at(batch, out_height, out_width, channels);
  const bool max_mode = p.mode == PoolMode::kMax;

  // Windows overlap when the stride is below the window, so dx accumulates. Each image's dx is
  // written by one thread, in the fixed order oh, ow, c: the bits do not depend on the threads.
#pragma omp parallel for num_threads( \
    threads_for(static_cast <double>(p.n) * p.oh * p.ow * p.c * p.kh * p.kw))
  for (int64_t n = 0; n < batch; ++n) {
    std::fill_n(dx + dx_at(n, 0, 0, 0), in_height * in_width * channels, 0.0f);
    for (int64_t oh = 0; oh < out_height; ++oh) {
      for (int64_t ow = 0; ow < out_width; ++ow) {
        const PoolWindow window = pool_window(p, oh, ow);
        for (int64_t c = 0; c < channels; ++c) {
          const float dy_value = dy[dy_at(n, oh, ow, c)];
          if (max_mode) {
            dx[create_mask_from_window(p, x, n, c, window)] += dy_value;
          } else {
            distribute_value(p, dy_value, n, c, window, dx);
          }
        }
      }
    }
  }
}

}  // namespace convkit::internal::reference
