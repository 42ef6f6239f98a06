// The Highway backend's pooling: what the target-independent code (plans, the variant lists,
// threading policy) shares with the per-target kernels in pool2d_fwd.cc, pool2d_bwd.cc and
// pool2d_bwd_gather.cc.
//
// Every kernel vectorises along C (NHWC: a pixel's channels are contiguous), tails with FirstN +
// MaskedLoad / BlendedStore; forward at stride_w 1 along (ow, c) flattened. The kernels are reached
// through HWY_DYNAMIC_DISPATCH once per plan creation or one-shot call (one per .cc file), which
// returns the chosen target's entry points; pool2d.cpp's variant lists then pick one of them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "api/src/backend.hpp"
#include "api/src/problem.hpp"

namespace convkit::internal::highway {

// A window's extent along one axis: input indices [begin, end) (never empty: validation keeps each
// pad below the window), and `padded`, the window clipped to the padded input instead, which
// count_include_pad divides by (PyTorch's rule, as the reference's pool_window).
struct PoolSpan {
  int64_t begin = 0, end = 0;
  int64_t padded = 0;
};

inline PoolSpan PoolSpanAt(int64_t o, int64_t stride, int64_t pad_before, int64_t pad_after,
                           int64_t window, int64_t in) {
  const int64_t start = o * stride - pad_before;
  const int64_t stop = start + window;
  return {std::max<int64_t>(start, 0), std::min(stop, in),
          std::min(stop, in + pad_after) - std::max(start, -pad_before)};
}
inline PoolSpan PoolRows(const Pool2dProblem& p, int64_t oh) {
  return PoolSpanAt(oh, p.stride_h, p.pad.top, p.pad.bottom, p.kh, p.ih);
}
inline PoolSpan PoolCols(const Pool2dProblem& p, int64_t ow) {
  return PoolSpanAt(ow, p.stride_w, p.pad.left, p.pad.right, p.kw, p.iw);
}
// What average pooling divides a window's sum (and backward its dy) by.
inline float PoolDivisor(const Pool2dProblem& p, const PoolSpan& rows, const PoolSpan& cols) {
  const int64_t count = p.count_include_pad ? rows.padded * cols.padded
                                            : (rows.end - rows.begin) * (cols.end - cols.begin);
  return static_cast<float>(count);
}

// Channels per pass of the pixel-major order (forward PoolFwdWindowWide, backward AddWindowWide,
// the backward channel blocks): the accumulators (16 KB) stay in the 32 KB L1.
constexpr int64_t kWideBlock = 4096;

// Everything a kernel call needs; not owned. Forward reads x and writes out = y; backward reads dy
// (and x, for max) and writes out = dx. Inputs and outputs do not overlap; n >= 1 (an empty batch
// never reaches a kernel).
struct Pool2dArgs {
  const Pool2dProblem* p = nullptr;
  const float* x = nullptr;
  const float* dy = nullptr;
  float* out = nullptr;
  int threads = 1;  // OpenMP threads; 1 runs on the calling thread with no parallel region
  // The call touches more memory than the last-level cache holds: the variants that can write out
  // with streaming (non-temporal) stores do, where aligned, which skips the read-for-ownership of
  // each line.
  bool stream = false;
};

using Pool2dFn = void (*)(const Pool2dArgs& args);

// One variant's entry points, for max and for average pooling (null for a mode the variant's list
// entry refuses).
struct Pool2dEntry {
  Pool2dFn max = nullptr;
  Pool2dFn avg = nullptr;
};

// One target's forward variants (pool2d_fwd.cc, pool2d_fwd_separable.cc): the entries of the
// forward list (pool2d.cpp), in its order:
// - separable: pooling at stride 1 with large windows, along W then along H;
// - stream: output rows with streaming stores (DRAM-bound calls, C a whole number of vectors; a y
//   that is not vector-aligned is written as the next variants would write it, without streaming);
// - wide: each window reduced in pixel-major order (C > wide_c);
// - rows: output rows, the windows of a row in tiles (every problem).
struct Pool2dFwdKernels {
  Pool2dEntry separable, stream, wide, rows;
  int64_t lanes = 1;   // floats per vector
  int64_t wide_c = 0;  // above this many channels, the pixel-major order (pool2d-inl.h kWideC)
  const char* isa = "";
};

// One target's backward variants (pool2d_bwd.cc, pool2d_bwd_gather.cc): the entries of the
// backward list (pool2d.cpp), in its order:
// - avg_gather: average pooling, each dx element summed from the shares of the windows that cover
//   it (GatherBlock(p, lanes) > 0);
// - band: the windows' terms accumulate in a per-thread ring of dx rows, each stored once with
//   streaming stores (DRAM-bound calls, RingChannels(p) >= lanes);
// - in_place: the terms accumulate in dx itself (every problem).
struct Pool2dBwdKernels {
  Pool2dEntry avg_gather, band, in_place;
  int64_t lanes = 1;  // floats per vector
  const char* isa = "";
};

// The chosen target's kernels.
Pool2dFwdKernels ChosenPool2dFwdKernels();
Pool2dBwdKernels ChosenPool2dBwdKernels();
// The chosen target's avg_gather entry (pool2d_bwd_gather.cc), for ChosenPool2dBwdKernels, and
// its separable forward entry (pool2d_fwd_separable.cc), for ChosenPool2dFwdKernels.
Pool2dEntry ChosenPool2dBwdGather();
Pool2dEntry ChosenPool2dFwdSeparable();

// Target-independent entry points (pool2d.cpp), called by the backend (highway_backend.cpp).

// Plans: choose the target and the variant once; run() is const, thread-safe, allocation-free.
// Backward overwrites dx and reads x for max pooling only.
std::unique_ptr<Pool2dFwdImpl> CreatePool2dFwd(const Pool2dProblem& p);
std::unique_ptr<Pool2dBwdImpl> CreatePool2dBwd(const Pool2dProblem& p);
// One-shot forward: allocates nothing. Stores the implementation's name
// ("highway:pool_max:rows:AVX3", highway:<mode>:<variant>:<isa>) in impl_name if non-null.
// (One-shot backward is Backend's default: a plan costs nothing more.)
void Pool2dFwdOneShot(const Pool2dProblem& p, const float* x, float* y, std::string* impl_name);

}  // namespace convkit::internal::highway
