// The equivalence grid's zero-trust allowances (grid.hpp).
#include "tests/equivalence/grid.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace convkit::test {
namespace {

// Along one axis of a window sweep: how many outputs have a tap inside the input, how many inputs
// some tap reads, how many taps read the input for some output.
struct AxisCoverage {
  int64_t outputs_touching = 0;
  int64_t inputs_read = 0;
  int64_t taps_reading = 0;
};

AxisCoverage Coverage(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad_before,
                      int64_t dilation) {
  std::vector<char> input_read(static_cast<size_t>(in)), tap_reads(static_cast<size_t>(k));
  AxisCoverage a;
  for (int64_t o = 0; o < out; ++o) {
    bool touching = false;
    for (int64_t t = 0; t < k; ++t) {
      const int64_t i = o * stride - pad_before + t * dilation;
      if (i < 0 || i >= in) continue;
      input_read[static_cast<size_t>(i)] = 1;
      tap_reads[static_cast<size_t>(t)] = 1;
      touching = true;
    }
    a.outputs_touching += touching ? 1 : 0;
  }
  a.inputs_read = std::count(input_read.begin(), input_read.end(), 1);
  a.taps_reading = std::count(tap_reads.begin(), tap_reads.end(), 1);
  return a;
}

AxisCoverage ConvCoverageH(const ConvCase& c, const Dims& y_dims) {
  return Coverage(c.x[1], y_dims[1], c.params.kernel_h, c.params.stride_h, c.params.pad.top,
                  c.params.dilation_h);
}
AxisCoverage ConvCoverageW(const ConvCase& c, const Dims& y_dims) {
  return Coverage(c.x[2], y_dims[2], c.params.kernel_w, c.params.stride_w, c.params.pad.left,
                  c.params.dilation_w);
}

// The zero fraction zero trust allows: the structural zeros (`reachable` is the fraction of
// elements that can be nonzero at all) plus `slack` of the rest, for the data's chance zeros.
double AllowedZeros(double reachable, double slack) {
  return (1.0 - reachable) + reachable * slack;
}

}  // namespace

// ---- Zero trust ----

double ConvYAllowedZeros(const ConvCase& c, const Dims& y_dims) {
  const AxisCoverage h = ConvCoverageH(c, y_dims), v = ConvCoverageW(c, y_dims);
  // A window wholly in the padding yields the bias: zero without one, and maybe after ReLU.
  const bool relu = c.params.activation == Activation::kRelu;
  const double reachable = c.bias && !relu
                               ? 1.0
                               : static_cast<double>(h.outputs_touching * v.outputs_touching) /
                                     static_cast<double>(y_dims[1] * y_dims[2]);
  return AllowedZeros(reachable, relu ? 0.8 : 0.3);
}

double ConvDxAllowedZeros(const ConvCase& c, const Dims& y_dims) {
  const AxisCoverage h = ConvCoverageH(c, y_dims), v = ConvCoverageW(c, y_dims);
  const double reachable =
      static_cast<double>(h.inputs_read * v.inputs_read) / static_cast<double>(c.x[1] * c.x[2]);
  return AllowedZeros(reachable, 0.3);
}

double ConvDwAllowedZeros(const ConvCase& c, const Dims& y_dims) {
  const AxisCoverage h = ConvCoverageH(c, y_dims), v = ConvCoverageW(c, y_dims);
  const double reachable = static_cast<double>(h.taps_reading * v.taps_reading) /
                           static_cast<double>(c.params.kernel_h * c.params.kernel_w);
  return AllowedZeros(reachable, 0.3);
}

double PoolDxAllowedZeros(const PoolCase& c, const PoolData& d) {
  const Dims& y_dims = d.dy.dims();
  const int64_t stride_h = c.params.global ? 1 : c.params.stride_h;
  const int64_t stride_w = c.params.global ? 1 : c.params.stride_w;
  const AxisCoverage h = Coverage(c.x[1], y_dims[1], d.window_h, stride_h, c.params.pad.top, 1);
  const AxisCoverage v = Coverage(c.x[2], y_dims[2], d.window_w, stride_w, c.params.pad.left, 1);
  double reachable =
      static_cast<double>(h.inputs_read * v.inputs_read) / static_cast<double>(c.x[1] * c.x[2]);
  if (c.params.mode == PoolMode::kMax) {
    // Each window's dy goes to one element, and one element is in at most
    // ceil(window / stride) windows per axis: that many distinct maxima at least.
    const double per_input = static_cast<double>(((d.window_h + stride_h - 1) / stride_h) *
                                                 ((d.window_w + stride_w - 1) / stride_w));
    reachable = std::min(1.0, static_cast<double>(y_dims[1] * y_dims[2]) / per_input /
                                  static_cast<double>(c.x[1] * c.x[2]));
  }
  return AllowedZeros(reachable, 0.5);
}

}  // namespace convkit::test
