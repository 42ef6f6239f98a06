// The seed's zero_pad, with per-side pads. Not a backend op: a copy any backend would do alike.
#include <algorithm>

#include "api/src/validate.hpp"
#include "convkit/ops.hpp"

namespace convkit {

Dims zero_pad_output_dims(const Dims& x_dims, const Pads& pad) {
  constexpr std::string_view op = "zero_pad";
  internal::check_activation_dims(op, "x", x_dims);
  const auto check_pad = [&](std::string_view arg, int64_t value) {
    if (value < 0)
      internal::fail(ErrorCode::kInvalidArgument, op, arg, ">= 0", std::to_string(value));
  };
  check_pad("pad.top", pad.top);
  check_pad("pad.bottom", pad.bottom);
  check_pad("pad.left", pad.left);
  check_pad("pad.right", pad.right);
  Dims y_dims = x_dims;
  if (__builtin_add_overflow(x_dims[1], pad.top, &y_dims[1]) ||
      __builtin_add_overflow(y_dims[1], pad.bottom, &y_dims[1]) ||
      __builtin_add_overflow(x_dims[2], pad.left, &y_dims[2]) ||
      __builtin_add_overflow(y_dims[2], pad.right, &y_dims[2])) {
    internal::fail(ErrorCode::kInvalidArgument, op, "pad", "padded extents that fit in int64",
                   "pads that overflow");
  }
  internal::check_activation_dims(op, "y", y_dims);
  return y_dims;
}

void zero_pad(ConstTensorView x, const Pads& pad, TensorView y) {
  constexpr std::string_view op = "zero_pad";
  const Dims y_dims = zero_pad_output_dims(x.dims, pad);
  internal::check_tensor(op, "x", x, x.dims);
  internal::check_tensor(op, "y", y, y_dims);
  internal::check_no_overlap(op, {{"y", y.data, num_elements(y_dims)}},
                             {{"x", x.data, num_elements(x.dims)}});
  const int64_t n = x.dims[0], h = x.dims[1], w = x.dims[2], c = x.dims[3];
  const int64_t yh = y_dims[1], yw = y_dims[2];
  std::fill(y.data, y.data + num_elements(y_dims), 0.0f);
  for (int64_t in = 0; in < n; ++in) {
    for (int64_t ih = 0; ih < h; ++ih) {
      const float* x_row = x.data + ((in * h + ih) * w) * c;
      float* y_row = y.data + ((in * yh + ih + pad.top) * yw + pad.left) * c;
      std::copy(x_row, x_row + w * c, y_row);
    }
  }
}

}  // namespace convkit
