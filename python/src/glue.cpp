// The glue between convkit's layers that numpy runs slowly (convkit.onnx): the layout transposes at
// a model's inputs and outputs, channel concatenation of NHWC tensors, per-channel Mul and PRelu,
// nearest resizing, and elementwise arithmetic on large tensors. numpy runs them on one thread, a
// few elements at a time when the inner extent is short (NCHW -> NHWC of a 3-channel image runs
// at ~5 GB/s); here they run in cache-sized pieces on convkit's threads.
#include "python/src/glue.hpp"

#include <nanobind/stl/string.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "convkit/error.hpp"
#include "convkit/runtime.hpp"
#include "python/src/arrays.hpp"
#include "python/src/parallel.hpp"
#include "python/src/softmax.hpp"
#include "python/src/transpose.hpp"

namespace nb = nanobind;

namespace convkit::python {
namespace {

template <typename Array>
int64_t Extent(const Array& a, size_t axis) {
  return static_cast<int64_t>(a.shape(axis));
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
                std::string(name) + ": s must have shape " + shape_string(want, 2) +
                    " (x's images and channels), given " + shape_string(s.shape_ptr(), 2));
  }
  if (Extent(y, 0) != n || Extent(y, 1) != pixels || Extent(y, 2) != c) {
    throw Error(ErrorCode::kShapeMismatch, std::string(name) + ": y must have x's shape " +
                                               shape_string(x.shape_ptr(), 3) + ", given " +
                                               shape_string(y.shape_ptr(), 3));
  }
  const float* xd = x.data();
  const float* sd = s.data();
  float* yd = y.data();
  ParallelItems(n * pixels, static_cast<int64_t>(y.size()) * 8, [&](int64_t row) {
    const float* s_row = sd + row / pixels * c;
    const float* x_row = xd + row * c;
    float* y_row = yd + row * c;
#pragma omp simd
    for (int64_t i = 0; i < c; ++i) y_row[i] = op(x_row[i], s_row[i]);
  });
}

// Rows of y = op(a, b) with b's row and column strides 0 where b broadcasts.
template <typename Op>
void BinaryRows(const float* a, const float* b, float* y, int64_t rows, int64_t k, bool b_rows,
                bool b_cols, Op op) {
  // Rows of fewer than 4096 floats: several per item.
  const int64_t per_item = std::max<int64_t>(1, 4096 / std::max<int64_t>(k, 1));
  const int64_t items = (rows + per_item - 1) / per_item;
  ParallelItems(items, rows * k * 12, [&](int64_t item) {
    for (int64_t r = item * per_item; r < std::min(rows, (item + 1) * per_item); ++r) {
      const float* a_row = a + r * k;
      const float* b_row = b + (b_rows ? r * (b_cols ? k : 1) : 0);
      float* y_row = y + r * k;
      if (b_cols) {
#pragma omp simd
        for (int64_t i = 0; i < k; ++i) y_row[i] = op(a_row[i], b_row[i]);
      } else {
        const float v = b_row[0];
#pragma omp simd
        for (int64_t i = 0; i < k; ++i) y_row[i] = op(a_row[i], v);
      }
    }
  });
}

}  // namespace

void transpose_last_two(const ConstArray3& x, const Array3& y) {
  const int64_t b = Extent(x, 0), r = Extent(x, 1), c = Extent(x, 2);
  if (Extent(y, 0) != b || Extent(y, 1) != c || Extent(y, 2) != r) {
    const int64_t want[3] = {b, c, r}, given[3] = {Extent(y, 0), Extent(y, 1), Extent(y, 2)};
    throw Error(ErrorCode::kShapeMismatch,
                "transpose_last_two: y must have shape " + shape_string(want, 3) + " (x's " +
                    shape_string(x.shape_ptr(), 3) + " with its last two axes swapped), given " +
                    shape_string(given, 3));
  }
  if (y.data() == x.data() && x.size() != 0) {
    throw Error(ErrorCode::kInvalidArgument, "transpose_last_two: y must not alias x");
  }
  // 32 x 32 tiles (4 KiB read along rows and written along columns, both in L1), or 4 x 2048
  // where a side is short (a few channel planes).
  const int64_t tile_r = c < 8 ? 2048 : 32, tile_c = r < 8 ? 2048 : 32;
  const int64_t row_tiles = (r + tile_r - 1) / tile_r, col_tiles = (c + tile_c - 1) / tile_c;
  const int64_t tiles = b * row_tiles * col_tiles;
  const float* xd = x.data();
  float* yd = y.data();
  ParallelItems(tiles, static_cast<int64_t>(x.size()) * 4, [&](int64_t t) {
    const int64_t image = t / (row_tiles * col_tiles), rest = t % (row_tiles * col_tiles);
    const int64_t r0 = rest / col_tiles * tile_r, c0 = rest % col_tiles * tile_c;
    const float* x_image = xd + image * r * c;
    float* y_image = yd + image * r * c;
    TransposeBlock(x_image + r0 * c + c0, c, y_image + c0 * r + r0, r, std::min(tile_r, r - r0),
                   std::min(tile_c, c - c0));
  });
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
                      shape_string(x.shape_ptr(), 2) + " strides " + shape_string(strides, 2));
    }
    channels += Extent(x, 1);
  }
  if (Extent(y, 1) != channels) {
    throw Error(ErrorCode::kShapeMismatch,
                "concat_channels: y must have " + std::to_string(channels) +
                    " channels (the sum of xs'), given shape " + shape_string(y.shape_ptr(), 2));
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
  if (pixels >= 64) {  // many rows: a row per item
    ParallelItems(pixels, static_cast<int64_t>(y.size()) * 8, [&](int64_t p) {
      float* y_row = yd + p * channels;
      for (const ConstArray2& x : xs) {
        const int64_t width = Extent(x, 1);
        CopyRow(x.data() + p * x.stride(0), y_row, width);
        y_row += width;
      }
    });
    return;
  }
  // A few long rows (a detector's levels side by side, one row of 176,400 floats): pieces of at
  // most 16 Ki floats of each x's row per item, so that they spread over the threads.
  struct Piece {
    size_t x;
    int64_t begin, count, y_offset;
  };
  constexpr int64_t kPiece = 16384;
  std::vector<Piece> pieces;
  int64_t y_offset = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const int64_t width = Extent(xs[i], 1);
    for (int64_t begin = 0; begin < width; begin += kPiece) {
      pieces.push_back({i, begin, std::min(kPiece, width - begin), y_offset + begin});
    }
    y_offset += width;
  }
  const int64_t per_row = static_cast<int64_t>(pieces.size());
  ParallelItems(pixels * per_row, static_cast<int64_t>(y.size()) * 8, [&](int64_t item) {
    const int64_t p = item / per_row;
    const Piece& piece = pieces[static_cast<size_t>(item % per_row)];
    const ConstArray2& x = xs[piece.x];
    // memcpy: vector moves wider than the baseline x86-64 build's own
    std::memcpy(yd + p * channels + piece.y_offset, x.data() + p * x.stride(0) + piece.begin,
                static_cast<size_t>(piece.count) * sizeof(float));
  });
}

void scale_channels(const ConstArray3& x, const ConstDenseArray2& s, const Array3& y) {
  ChannelRows("scale_channels", x, s, y, [](float v, float f) { return v * f; });
}

void prelu_channels(const ConstArray3& x, const ConstDenseArray2& s, const Array3& y) {
  // A multiplier, not a branch (signs are mixed: a branch mispredicts every other element);
  // NaN < 0 is false: NaN * 1 stays NaN, as in ONNX.
  ChannelRows("prelu_channels", x, s, y, [](float v, float f) { return v * (v < 0 ? f : 1.0f); });
}

void gather_pixels(const ConstArray4& x, const Indices& rows, const Indices& cols,
                   const Array4& y) {
  const int64_t n = Extent(x, 0), h = Extent(x, 1), w = Extent(x, 2), c = Extent(x, 3);
  const int64_t oh = Extent(rows, 0), ow = Extent(cols, 0);
  if (Extent(y, 0) != n || Extent(y, 1) != oh || Extent(y, 2) != ow || Extent(y, 3) != c) {
    const int64_t want[4] = {n, oh, ow, c};
    throw Error(ErrorCode::kShapeMismatch, "gather_pixels: y must have shape " +
                                               shape_string(want, 4) +
                                               " (x's images and channels, the indices' counts), "
                                               "given " +
                                               shape_string(y.shape_ptr(), 4));
  }
  const int64_t* rd = rows.data();
  const int64_t* cd = cols.data();
  for (const auto& [name, index, count, extent] :
       {std::tuple{"rows", rd, oh, h}, std::tuple{"cols", cd, ow, w}}) {
    for (int64_t i = 0; i < count; ++i) {
      if (index[i] < 0 || index[i] >= extent) {
        throw Error(ErrorCode::kInvalidArgument, std::string("gather_pixels: ") + name + "[" +
                                                     std::to_string(i) + "] must be in [0, " +
                                                     std::to_string(extent) + "), given " +
                                                     std::to_string(index[i]));
      }
    }
  }
  const float* xd = x.data();
  float* yd = y.data();
  ParallelItems(n * oh, static_cast<int64_t>(y.size()) * 8, [&](int64_t row) {
    const float* x_row = xd + (row / oh * h + rd[row % oh]) * w * c;
    float* y_row = yd + row * ow * c;
    for (int64_t j = 0; j < ow; ++j) CopyRow(x_row + cd[j] * c, y_row + j * c, c);
  });
}

void binary(const std::string& op, const ConstDenseArray2& a, const ConstDenseArray2& b,
            const Array2& y, bool swapped) {
  const int64_t rows = Extent(a, 0), k = Extent(a, 1);
  const bool b_rows = Extent(b, 0) != 1 || rows == 1, b_cols = Extent(b, 1) != 1 || k == 1;
  if ((b_rows && Extent(b, 0) != rows) || (b_cols && Extent(b, 1) != k)) {
    throw Error(ErrorCode::kShapeMismatch, "binary: b must have shape (" + std::to_string(rows) +
                                               " or 1, " + std::to_string(k) +
                                               " or 1) (a's, or 1 to broadcast), given " +
                                               shape_string(b.shape_ptr(), 2));
  }
  if (Extent(y, 0) != rows || Extent(y, 1) != k) {
    throw Error(ErrorCode::kShapeMismatch, "binary: y must have a's shape " +
                                               shape_string(a.shape_ptr(), 2) + ", given " +
                                               shape_string(y.shape_ptr(), 2));
  }
  const float* ad = a.data();
  const float* bd = b.data();
  float* yd = y.data();
  const auto run = [&](auto f) { BinaryRows(ad, bd, yd, rows, k, b_rows, b_cols, f); };
  if (op == "add") return run([](float u, float v) { return u + v; });
  if (op == "mul") return run([](float u, float v) { return u * v; });
  if (op == "sub" && !swapped) return run([](float u, float v) { return u - v; });
  if (op == "sub") return run([](float u, float v) { return v - u; });
  if (op == "div" && !swapped) return run([](float u, float v) { return u / v; });
  if (op == "div") return run([](float u, float v) { return v / u; });
  throw Error(ErrorCode::kInvalidArgument,
              "binary: op must be add, sub, mul or div, given '" + op + "'");
}

void affine(const ConstDenseArray2& x, const ConstDenseArray2& s, const ConstDenseArray2& t,
            const Array2& y) {
  const int64_t rows = Extent(x, 0), k = Extent(x, 1);
  for (const auto& [name, a] : {std::pair{"s", &s}, std::pair{"t", &t}}) {
    if (Extent(*a, 0) != 1 || (Extent(*a, 1) != k && Extent(*a, 1) != 1)) {
      throw Error(ErrorCode::kShapeMismatch,
                  std::string("affine: ") + name + " must have shape (1, " + std::to_string(k) +
                      ") or (1, 1), given " + shape_string(a->shape_ptr(), 2));
    }
  }
  if (Extent(y, 0) != rows || Extent(y, 1) != k) {
    throw Error(ErrorCode::kShapeMismatch, "affine: y must have x's shape " +
                                               shape_string(x.shape_ptr(), 2) + ", given " +
                                               shape_string(y.shape_ptr(), 2));
  }
  const float* xd = x.data();
  float* yd = y.data();
  // Rows of `width` floats with s and t as rows of that width (a scalar repeated), so the loop
  // has one form: K for a per-channel s or t, 4096 for two scalars (x then seen flat).
  const bool scalars = Extent(s, 1) == 1 && Extent(t, 1) == 1;
  const int64_t total = rows * k, width = scalars ? std::min<int64_t>(total, 4096) : k;
  std::vector<float> st(static_cast<size_t>(2 * width));
  for (int64_t i = 0; i < width; ++i) {
    st[i] = s.data()[Extent(s, 1) == 1 ? 0 : i];
    st[width + i] = t.data()[Extent(t, 1) == 1 ? 0 : i];
  }
  const float* sd = st.data();
  const float* td = st.data() + width;
  const int64_t pieces = width == 0 ? 0 : (total + width - 1) / width;
  ParallelItems(pieces, total * 8, [&](int64_t piece) {
    const int64_t begin = piece * width, n = std::min(width, total - begin);
    const float* x_row = xd + begin;
    float* y_row = yd + begin;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float scaled = x_row[i] * sd[i];  // rounded, then the shift: no fused multiply-add
      y_row[i] = scaled + td[i];
    }
  });
}

void add_glue(nb::module_& m) {
  using namespace nb::literals;
  m.def("_transpose_last_two", &transpose_last_two, "x"_a, "y"_a.noconvert(),
        "y[b, c, r] = x[b, r, c] for float32 C-ordered x (B, R, C) and y (B, C, R), on "
        "convkit's threads (convkit.onnx's layout changes).");
  m.def("_softmax_middle", &softmax_middle, "x"_a, "y"_a.noconvert(),
        "y[o, :, j] = softmax(x[o, :, j]) for float32 C-ordered x and y (O, K, J), on convkit's "
        "threads; y may be x (convkit.onnx's Softmax).");
  m.def("_concat_channels", &concat_channels, "xs"_a, "y"_a.noconvert(),
        "y = concatenate(xs, axis=1) for float32 xs (P, C_i) with unit channel stride and y (P, "
        "sum C_i) C-ordered, on convkit's threads (convkit.onnx's Concat of NHWC tensors).");
  m.def("_scale_channels", &scale_channels, "x"_a, "s"_a, "y"_a.noconvert(),
        "y[n, p, c] = x[n, p, c] * s[n, c] for float32 C-ordered x and y (N, P, C) and s (N, C); "
        "y may be x. On convkit's threads (convkit.onnx's channel-scale Mul).");
  m.def("_prelu_channels", &prelu_channels, "x"_a, "s"_a, "y"_a.noconvert(),
        "y[n, p, c] = x[n, p, c] * s[n, c] where x < 0, else x, for float32 C-ordered x and y "
        "(N, P, C) and s (N, C); y may be x. On convkit's threads (convkit.onnx's PRelu).");
  m.def("_gather_pixels", &gather_pixels, "x"_a, "rows"_a, "cols"_a, "y"_a.noconvert(),
        "y[n, i, j] = x[n, rows[i], cols[j]] for float32 C-ordered NHWC x (N, H, W, C) and y (N, "
        "OH, OW, C), int64 rows (OH,) and cols (OW,), on convkit's threads (convkit.onnx's "
        "nearest Resize).");
  m.def("_binary", &binary, "op"_a, "a"_a, "b"_a, "y"_a.noconvert(), "swapped"_a = false,
        "y = a op b (swapped: b op a) for op add, sub, mul or div, float32 C-ordered a and y (R, "
        "K), b (R or 1, K or 1) broadcast where it has 1, on convkit's threads; y may be a or b "
        "(convkit.onnx's elementwise glue).");
  m.def("_affine", &affine, "x"_a, "s"_a, "t"_a, "y"_a.noconvert(),
        "y = x * s + t (rounded after each) for float32 C-ordered x and y (R, K), s and t (1, K) "
        "or (1, 1), on convkit's threads; y may be x (convkit.onnx's Mul then Add by "
        "constants).");
}

}  // namespace convkit::python
