// Max pooling on the values oneDNN's kernels get wrong, done exactly as DESIGN §4 says.
//
// oneDNN 2.6.3 (jit:avx512_core, and its reference kernel) starts each window's maximum at
// -FLT_MAX and replaces it only with a strictly greater element. So a NaN never wins (DESIGN: a
// window holding a NaN yields NaN), a window of -inf yields -FLT_MAX (DESIGN: -inf), and in
// backward a window whose maximum is -inf or -FLT_MAX keeps its initial argmax, the window's first
// tap, which may lie in the padding (the gradient is lost). Measured in the oneDNN tests
// (tests/onednn_test.cpp). Finite values above -FLT_MAX, ties included, come out exact.
//
// The backend therefore scans x before each max-pooling call and takes these loops when x holds
// any element that is not > -FLT_MAX: the cost of a normal call is one extra read of x.
#pragma once

#include <cstdint>

#include "api/src/problem.hpp"

namespace convkit::internal::onednn {

// Whether some element of x (count floats) is NaN, -inf or -FLT_MAX. Reads x once with
// `num_threads` OpenMP threads; allocates nothing.
bool HasMaxPoolSpecials(const float* x, int64_t count, int num_threads);

// Max pooling forward and backward in DESIGN §4's rules: padding never wins, the first NaN of a
// window wins, else the first maximal element in row-major window order. dx is overwritten.
void MaxPoolFwdExact(const Pool2dProblem& p, const float* x, float* y, int num_threads);
void MaxPoolBwdExact(const Pool2dProblem& p, const float* x, const float* dy, float* dx,
                     int num_threads);

}  // namespace convkit::internal::onednn
