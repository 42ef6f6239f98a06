// One block of the glue's batched transpose (transpose_last_two in glue.hpp): vector code where the
// CPU has AVX2, chosen at run time.
#pragma once

#include <cstdint>

namespace convkit::python {

// y[c * y_stride + r] = x[r * x_stride + c] for r in [0, rows), c in [0, cols). x and y must not
// overlap.
void TransposeBlock(const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t rows,
                    int64_t cols);

}  // namespace convkit::python
