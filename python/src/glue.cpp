// The copies between convkit's layers that numpy makes slowly (convkit.onnx's glue): the layout
// transposes at a model's inputs and outputs, channel concatenation of NHWC tensors, and the
// per-channel Mul and PRelu of NHWC tensors. numpy
// copies them on one thread, a few elements at a time when the inner extent is short (NCHW -> NHWC
// of a 3-channel image runs at ~5 GB/s); here they run in cache-sized tiles on convkit's threads.
#include "python/src/glue.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "convkit/error.hpp"
#include "convkit/runtime.hpp"

namespace nb = nanobind;

namespace convkit::python {
namespace {

// Copies under 256 KiB stay on one thread: a parallel region costs more than they take.
int ThreadsFor(int64_t bytes) { return bytes < (int64_t{1} << 18) ? 1 : num_threads(); }

std::string Shape(const int64_t* dims, size_t rank) {
  std::string s = "(";
  for (size_t i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + (rank == 1 ? ",)" : ")");
}

template <typename Array>
int64_t Extent(const Array& a, size_t axis) {
  return static_cast<int64_t>(a.shape(axis));
}

// One tile of the batched transpose: rows [r0, r1) x columns [c0, c1) of one image, read along
// x's rows (y's stores then fall in the few lines a short column of y spans).
void TransposeTile(const float* x, float* y, int64_t r_count, int64_t c_count, int64_t r0,
                   int64_t r1, int64_t c0, int64_t c1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* x_row = x + r * c_count;
    for (int64_t c = c0; c < c1; ++c) y[c * r_count + r] = x_row[c];
  }
}

void CopyRow(const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i];
}

// y[n][p][c] = op(x[n][p][c], s[n][c]) on convkit's threads, after checking s's and y's shapes
// (`name` for the errors).
template <typename Op>
void ChannelRows(const char* name, const ConstArray3& x, const ConstDenseArray2& s, const Array3& y,
                 Op op) {
  const int64_t n = Extent(x, 0), pixels = Extent(x, 1), c = Extent(x, 2);
  if (Extent(s, 0) != n || Extent(s, 1) != c) {
    const int64_t want[2] = {n, c};
    throw Error(ErrorCode::kShapeMismatch,
                std::string(name) + ": s must have shape " + Shape(want, 2) +
                    " (x's images and channels), given " + Shape(s.shape_ptr(), 2));
  }
  if (Extent(y, 0) != n || Extent(y, 1) != pixels || Extent(y, 2) != c) {
    throw Error(ErrorCode::kShapeMismatch, std::string(name) + ": y must have x's shape " +
                                               Shape(x.shape_ptr(), 3) + ", given " +
                                               Shape(y.shape_ptr(), 3));
  }
  const float* xd = x.data();
  const float* sd = s.data();
  float* yd = y.data();
  nb::gil_scoped_release release;
#pragma omp parallel for schedule(static) \
    num_threads(ThreadsFor(static_cast <int64_t>(y.size()) * 8))
  for (int64_t row = 0; row < n * pixels; ++row) {
    const float* s_row = sd + row / pixels * c;
    const float* x_row = xd + row * c;
    float* y_row = yd + row * c;
#pragma omp simd
    for (int64_t i = 0; i < c; ++i) y_row[i] = op(x_row[i], s_row[i]);
  }
}

}  // namespace

void transpose_last_two(const ConstArray3& x, const Array3& y) {
  const int64_t b = Extent(x, 0), r = Extent(x, 1), c = Extent(x, 2);
  if (Extent(y, 0) != b || Extent(y, 1) != c || Extent(y, 2) != r) {
    const int64_t want[3] = {b, c, r}, given[3] = {Extent(y, 0), Extent(y, 1), Extent(y, 2)};
    throw Error(ErrorCode::kShapeMismatch, "transpose_last_two: y must have shape " +
                                               Shape(want, 3) + " (x's " + Shape(x.shape_ptr(), 3) +
                                               " with its last two axes swapped), given " +
                                               Shape(given, 3));
  }
  if (y.data() == x.data() && x.size() != 0) {
    throw Error(ErrorCode::kInvalidArgument, "transpose_last_two: y must not alias x");
  }
  // 32 x 32 tiles: 4 KiB read along rows and written along columns, both in L1.
  constexpr int64_t kTile = 32;
  const int64_t row_tiles = (r + kTile - 1) / kTile, col_tiles = (c + kTile - 1) / kTile;
  const int64_t tiles = b * row_tiles * col_tiles;
  const float* xd = x.data();
  float* yd = y.data();
  nb::gil_scoped_release release;
#pragma omp parallel for schedule(static) \
    num_threads(ThreadsFor(static_cast <int64_t>(x.size()) * 4))
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t image = t / (row_tiles * col_tiles), rest = t % (row_tiles * col_tiles);
    const int64_t r0 = rest / col_tiles * kTile, c0 = rest % col_tiles * kTile;
    TransposeTile(xd + image * r * c, yd + image * r * c, r, c, r0, std::min(r, r0 + kTile), c0,
                  std::min(c, c0 + kTile));
  }
}

void concat_channels(const std::vector<ConstArray2>& xs, const Array2& y) {
  const int64_t pixels = Extent(y, 0);
  int64_t channels = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const ConstArray2& x = xs[i];
    if (Extent(x, 0) != pixels || (Extent(x, 1) > 1 && x.stride(1) != 1)) {
      const int64_t strides[2] = {x.stride(0), x.stride(1)};
      throw Error(ErrorCode::kShapeMismatch,
                  "concat_channels: xs[" + std::to_string(i) + "] must have " +
                      std::to_string(pixels) + " rows (y's) and unit channel stride, given shape " +
                      Shape(x.shape_ptr(), 2) + " strides " + Shape(strides, 2));
    }
    channels += Extent(x, 1);
  }
  if (Extent(y, 1) != channels) {
    throw Error(ErrorCode::kShapeMismatch,
                "concat_channels: y must have " + std::to_string(channels) +
                    " channels (the sum of xs'), given shape " + Shape(y.shape_ptr(), 2));
  }
  for (size_t i = 0; i < xs.size(); ++i) {
    const float* begin = xs[i].data();
    const int64_t width = Extent(xs[i], 1);
    const float* end = begin + (pixels - 1) * xs[i].stride(0) + width;
    if (pixels > 0 && width > 0 && begin < y.data() + y.size() && y.data() < end) {
      throw Error(ErrorCode::kInvalidArgument,
                  "concat_channels: y must not overlap xs[" + std::to_string(i) + "]");
    }
  }
  float* yd = y.data();
  nb::gil_scoped_release release;
#pragma omp parallel for schedule(static) \
    num_threads(ThreadsFor(static_cast <int64_t>(y.size()) * 8))
  for (int64_t p = 0; p < pixels; ++p) {
    float* y_row = yd + p * channels;
    for (const ConstArray2& x : xs) {
      const int64_t width = Extent(x, 1);
      CopyRow(x.data() + p * x.stride(0), y_row, width);
      y_row += width;
    }
  }
}

void scale_channels(const ConstArray3& x, const ConstDenseArray2& s, const Array3& y) {
  ChannelRows("scale_channels", x, s, y, [](float v, float f) { return v * f; });
}

void prelu_channels(const ConstArray3& x, const ConstDenseArray2& s, const Array3& y) {
  // A multiplier, not a branch (signs are mixed: a branch mispredicts every other element);
  // NaN < 0 is false: NaN * 1 stays NaN, as in ONNX.
  ChannelRows("prelu_channels", x, s, y, [](float v, float f) { return v * (v < 0 ? f : 1.0f); });
}

void add_glue(nb::module_& m) {
  using namespace nb::literals;
  m.def("_transpose_last_two", &transpose_last_two, "x"_a, "y"_a.noconvert(),
        "y[b, c, r] = x[b, r, c] for float32 C-ordered x (B, R, C) and y (B, C, R), on "
        "convkit's threads (convkit.onnx's layout changes).");
  m.def("_concat_channels", &concat_channels, "xs"_a, "y"_a.noconvert(),
        "y = concatenate(xs, axis=1) for float32 xs (P, C_i) with unit channel stride and y (P, "
        "sum C_i) C-ordered, on convkit's threads (convkit.onnx's Concat of NHWC tensors).");
  m.def("_scale_channels", &scale_channels, "x"_a, "s"_a, "y"_a.noconvert(),
        "y[n, p, c] = x[n, p, c] * s[n, c] for float32 C-ordered x and y (N, P, C) and s (N, C); "
        "y may be x. On convkit's threads (convkit.onnx's channel-scale Mul).");
  m.def("_prelu_channels", &prelu_channels, "x"_a, "s"_a, "y"_a.noconvert(),
        "y[n, p, c] = x[n, p, c] * s[n, c] where x < 0, else x, for float32 C-ordered x and y "
        "(N, P, C) and s (N, C); y may be x. On convkit's threads (convkit.onnx's PRelu).");
}

}  // namespace convkit::python
