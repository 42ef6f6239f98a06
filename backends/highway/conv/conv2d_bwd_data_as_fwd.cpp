// Backward data of a stride-1 convolution as a forward convolution (conv2d_bwd.hpp): with stride 1
// every dx pixel gathers the dy pixels of the same window shape, so
//   dx = conv(dy, w') with w'(kh, kw, j, g * ICg + i) = w(KH - 1 - kh, KW - 1 - kw, i, g * OCg + j)
// (w flipped in space, each group's channels swapped), the same dilation, and pads
// (K - 1) * dilation - pad on each side, which turn OH back into IH. The forward plan then picks
// its fastest variant for it (Winograd for 3x3, the direct kernels for the rest), so dx runs at the
// forward pass's speed instead of through the gather kernels (ResNet-50's 3x3 layers: 1.6-1.9x).
#include <algorithm>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/conv/conv2d_bwd.hpp"

namespace convkit::internal::highway {
namespace {

// The pad on one side of the forward convolution, or -1 when it would be negative or would put
// whole windows in the padding (pad > (K - 1) * dilation: rows of dy that no dx pixel reads).
int64_t ForwardPad(int64_t pad, int64_t k, int64_t dilation) {
  const int64_t reach = (k - 1) * dilation;
  return pad < 0 || pad > reach ? -1 : reach - pad;
}

// The forward convolution's four pads (each -1 where ForwardPad says so).
Pads ForwardPads(const Conv2dProblem& p) {
  return {ForwardPad(p.pad.top, p.kh, p.dilation_h), ForwardPad(p.pad.bottom, p.kh, p.dilation_h),
          ForwardPad(p.pad.left, p.kw, p.dilation_w), ForwardPad(p.pad.right, p.kw, p.dilation_w)};
}

// Rows r0 .. r0 + 15 of src (ICg rows of OCg floats, src_stride apart) into columns of dst:
// dst[c * dst_stride + r] = src[r * src_stride + c] for c < cols. Each dst line is written whole
// while the 16 src lines stay in L1; the other order (whole src rows, dst lines IC floats apart)
// went to L2 on every store and took 2.3 ms for 2048 x 512 against ~0.2.
constexpr int64_t kTransposeRows = 16;
void TransposeRows(const float* src, int64_t src_stride, int64_t r0, int64_t rows, int64_t cols,
                   float* dst, int64_t dst_stride) {
  const int64_t rs = std::min(kTransposeRows, rows - r0);
  for (int64_t c = 0; c < cols; ++c) {
    float* out = dst + c * dst_stride + r0;
    const float* in = src + r0 * src_stride + c;
    for (int64_t r = 0; r < rs; ++r) out[r] = in[r * src_stride];
  }
}

}  // namespace

const char* RefusesDataAsForward(const Conv2dProblem& p) {
  if (p.stride_h != 1 || p.stride_w != 1) return "strided";
  const Pads f = ForwardPads(p);
  if (std::min({f.top, f.bottom, f.left, f.right}) < 0) {
    return "a pad below 0 or above (K - 1) * dilation";
  }
  return nullptr;
}

Conv2dProblem DataAsForwardProblem(const Conv2dProblem& p, bool has_bias, const PostOps& post_ops) {
  Conv2dProblem f;
  f.n = p.n;
  f.ih = p.oh;
  f.iw = p.ow;
  f.ic = p.oc;
  f.oh = p.ih;
  f.ow = p.iw;
  f.oc = p.ic;
  f.kh = p.kh;
  f.kw = p.kw;
  f.dilation_h = p.dilation_h;
  f.dilation_w = p.dilation_w;
  f.pad = ForwardPads(p);
  f.groups = p.groups;
  f.post_ops = post_ops;
  f.has_bias = has_bias;
  return f;  // fpmath strict: dx is computed in fp32, as by the other backward-data variants
}

void DataAsForwardWeights(const Conv2dProblem& p, const float* w, float* w_fwd) {
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group(), taps = p.kh * p.kw;
  const int threads = ThreadsFor(2.0 * taps * icg * p.oc);
  const auto flipped = [&](int64_t tap) {
    return (p.kh - 1 - tap / p.kw) * p.kw + (p.kw - 1 - tap % p.kw);
  };
  if (icg == 1 && ocg == 1) {  // depthwise: no channels to swap, each tap's row moves whole
    return ParallelFor(threads, taps, [&](int64_t tap) {
      std::copy_n(w + flipped(tap) * p.oc, p.oc, w_fwd + tap * p.ic);
    });
  }
  // One item: 16 rows (ICg) of one group's ICg x OCg block of a flipped tap, transposed.
  const int64_t row_blocks = (icg + kTransposeRows - 1) / kTransposeRows;
  ParallelFor(threads, taps * p.groups * row_blocks, [&](int64_t item) {
    const int64_t block = item % row_blocks, g = item / row_blocks % p.groups;
    const int64_t tap = item / (row_blocks * p.groups);
    TransposeRows(w + flipped(tap) * icg * p.oc + g * ocg, p.oc, block * kTransposeRows, icg, ocg,
                  w_fwd + tap * ocg * p.ic + g * icg, p.ic);
  });
}

}  // namespace convkit::internal::highway
