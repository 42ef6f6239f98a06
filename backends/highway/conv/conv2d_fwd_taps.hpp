// Tap tables (Conv2dFwdTaps, conv2d_fwd_kernel.hpp): where each output pixel of a tile reads its
// input, computed once at plan creation for the implicit GEMM on small-channel problems.
#pragma once

#include <cstdint>
#include <vector>

#include "api/src/problem.hpp"

namespace convkit::internal::highway {

// A tap table (Conv2dFwdTaps) and the zero floats its longest entry reads.
struct TapTable {
  std::vector<int32_t> entries;
  std::vector<int32_t> tile_begin;
  int64_t rows = 0;
  int64_t zeros = 0;  // floats of zeros the longest entry reads
};

// True when a plan for p with tiles of `rows` pixels should build a tap table (see the .cpp).
bool WantsTapTable(const Conv2dProblem& p, int64_t rows);

// The table for tiles of `rows` pixels.
TapTable BuildTapTable(const Conv2dProblem& p, int64_t rows);

}  // namespace convkit::internal::highway
