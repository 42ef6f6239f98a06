// The glue copies of convkit.onnx that numpy makes slowly, run on convkit's threads: the batched
// transpose behind NCHW <-> NHWC, the channel concatenation of NHWC tensors and per-channel
// elementwise ops on them.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/vector.h>

#include <vector>

namespace convkit::python {

using ConstArray3 =
    nanobind::ndarray<const float, nanobind::ndim<3>, nanobind::c_contig, nanobind::device::cpu>;
using Array3 =
    nanobind::ndarray<float, nanobind::ndim<3>, nanobind::c_contig, nanobind::device::cpu>;
using ConstArray2 = nanobind::ndarray<const float, nanobind::ndim<2>, nanobind::device::cpu>;
using Array2 =
    nanobind::ndarray<float, nanobind::ndim<2>, nanobind::c_contig, nanobind::device::cpu>;
using ConstDenseArray2 =
    nanobind::ndarray<const float, nanobind::ndim<2>, nanobind::c_contig, nanobind::device::cpu>;

// y[b][c][r] = x[b][r][c]. Throws convkit::Error (shape mismatch) naming y's expected and given
// shape, (invalid argument) when y is x.
void transpose_last_two(const ConstArray3& x, const Array3& y);

// y[p] = the rows xs[0][p], xs[1][p], ... side by side. Each x may have any row stride (a channel
// slice of an NHWC tensor) but unit channel stride. Throws convkit::Error (shape mismatch) naming
// the x whose rows or strides do not fit, or y's channel count; (invalid argument) when y overlaps
// an x.
void concat_channels(const std::vector<ConstArray2>& xs, const Array2& y);

// y[n][p][c] = x[n][p][c] * s[n][c]: a per-image, per-channel scale of NHWC data (the
// squeeze-and-excitation block's Mul), x and y (N, P, C), s (N, C); y may be x. Throws
// convkit::Error (shape mismatch) naming s's or y's expected and given shape.
void scale_channels(const ConstArray3& x, const ConstDenseArray2& s, const Array3& y);

// y[n][p][c] = x[n][p][c] < 0 ? x[n][p][c] * s[n][c] : x[n][p][c]: PReLU with a slope per image
// and channel of NHWC data, x and y (N, P, C), s (N, C); y may be x. Throws as scale_channels.
void prelu_channels(const ConstArray3& x, const ConstDenseArray2& s, const Array3& y);

// Registers _transpose_last_two, _concat_channels, _scale_channels and _prelu_channels.
void add_glue(nanobind::module_& m);

}  // namespace convkit::python
