// The glue of convkit.onnx that numpy runs slowly, on convkit's threads: the batched transpose
// behind NCHW <-> NHWC, the channel concatenation of NHWC tensors, per-channel and elementwise
// arithmetic on them, nearest resizing.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/vector.h>

#include <string>
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
using ConstArray4 =
    nanobind::ndarray<const float, nanobind::ndim<4>, nanobind::c_contig, nanobind::device::cpu>;
using Array4 =
    nanobind::ndarray<float, nanobind::ndim<4>, nanobind::c_contig, nanobind::device::cpu>;
using Indices =
    nanobind::ndarray<const int64_t, nanobind::ndim<1>, nanobind::c_contig, nanobind::device::cpu>;

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

// y[n][i][j] = x[n][rows[i]][cols[j]] (C floats each): nearest-neighbour resizing of NHWC data,
// x (N, H, W, C), y (N, OH, OW, C), rows OH and cols OW indices. Throws convkit::Error (shape
// mismatch) naming y's expected and given shape, (invalid argument) naming an index outside x.
void gather_pixels(const ConstArray4& x, const Indices& rows, const Indices& cols, const Array4& y);

// y = a op b for op "add", "sub", "mul" or "div" (swapped: b op a), a and y (R, K), b (R or 1, K or
// 1) broadcast over the axes where it has 1: numpy's float32 binary ops over the shapes of a
// network's elementwise glue (same shape, a scalar, a row per channel), on convkit's threads; y
// may be a or b. Throws convkit::Error (invalid argument) for another op, (shape mismatch) naming
// b's or y's expected and given shape.
void binary(const std::string& op, const ConstDenseArray2& a, const ConstDenseArray2& b,
            const Array2& y, bool swapped);

// y = x * s + t (two roundings, as a Mul then an Add), x and y (R, K), s and t (1, K) or (1, 1):
// a per-channel or scalar scale and shift in one pass on convkit's threads; y may be x. Throws
// convkit::Error (shape mismatch) naming s's, t's or y's expected and given shape.
void affine(const ConstDenseArray2& x, const ConstDenseArray2& s, const ConstDenseArray2& t,
            const Array2& y);

// Registers _transpose_last_two, _concat_channels, _scale_channels, _prelu_channels,
// _gather_pixels, _binary and _affine.
void add_glue(nanobind::module_& m);

}  // namespace convkit::python
