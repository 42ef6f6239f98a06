// Memory the Highway kernels allocate: vectors of floats aligned for whole-vector loads, and a
// per-thread scratch area.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "convkit/tensor.hpp"

namespace convkit::internal::highway {

using AlignedFloats = std::vector<float, AlignedAllocator<float>>;

// The slots taken beside 0, one per plan kind that holds its own area while the plan it wraps
// runs (whose kernel takes slot 0 on every thread of the team, the calling one included).
constexpr int kShuffleScratchSlot = 1;  // backward data as a 1x1 convolution (data shuffle)
constexpr int kSubgridScratchSlot = 2;  // dilated as dense convolutions (conv2d_fwd_subgrid)

// At least `floats` floats of the calling thread's scratch, grown on first use and kept for the
// thread's life. A plan's run() is const and may run on several threads at once, so per-call
// scratch cannot live in the plan. The contents are unspecified; the area is valid until the next
// call on this thread with the same kSlot.
template <int kSlot = 0>
float* ThreadScratch(int64_t floats) {
  thread_local AlignedFloats scratch;
  if (static_cast<int64_t>(scratch.size()) < floats) scratch.resize(static_cast<size_t>(floats));
  return scratch.data();
}

}  // namespace convkit::internal::highway
