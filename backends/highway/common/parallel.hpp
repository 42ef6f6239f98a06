// How the Highway kernels use threads: one rule for when a call is worth an OpenMP team, and the
// loops that share work out among its threads. Every kernel splits its work through these, so that
// "1 thread" always means the calling thread with no parallel region. Each thread of a loop
// computes under a DenormalsScope (convkit::set_flush_denormals).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "api/src/backend.hpp"
#include "api/src/denormals.hpp"

namespace convkit::internal::highway {

// Below this many FLOPs a call runs on the calling thread. Waking the OpenMP team costs ~1 us;
// 2^18 FLOPs take ~2.5 us on one core at a kernel's typical 100 GFLOP/s, so smaller calls lose
// more to the wake-up than a second thread saves (15 -> 16 1x1 at 2x31x29, 0.9 MFLOP, already ran
// 1.8x faster on two threads than on one). Kernels whose lanes are not all busy count the FLOPs of
// whole vectors (what their time follows); pooling counts 1-4 per window element read (pool2d.cpp).
constexpr double kSerialFlops = 1 << 18;

// The threads a call of `flops` runs on: 1 below kSerialFlops, else every thread convkit uses.
inline int ThreadsFor(double flops) { return flops < kSerialFlops ? 1 : num_threads(); }

// Runs body(begin, end) for contiguous, nearly equal ranges of [0, items), one per thread of a
// team of `threads` (the first ranges no longer than the later ones). threads <= 1 or items <= 1:
// body(0, items) on the calling thread, with no parallel region.
// Channels [begin, end).
struct ChannelRange {
  int64_t begin, end;
};

// Channels cut into `count` chunks of `width` channels each (the last may hold fewer), for kernels
// that share one pixel item's channels among threads.
struct ChannelChunks {
  int64_t count = 1, width = 0;
  ChannelRange Chunk(int64_t i, int64_t c) const {
    return {i * width, std::min(c, (i + 1) * width)};
  }
};

// c channels in blocks of `block`, cut into `wanted` chunks of whole blocks (at least one, at most
// one per block), so that no two chunks share a block (a vector or a kernel's column block).
inline ChannelChunks SplitChannels(int64_t c, int64_t block, int64_t wanted) {
  const int64_t blocks = (c + block - 1) / block;
  if (blocks <= 1 || wanted <= 1) return {1, c};
  const int64_t count = std::min(wanted, blocks);
  const int64_t width = (blocks + count - 1) / count * block;
  return {(c + width - 1) / width, width};
}

template <class Body>
void ParallelRanges(int threads, int64_t items, const Body& body) {
  if (threads <= 1 || items <= 1) {
    const DenormalsScope denormals;
    return body(int64_t{0}, items);
  }
#pragma omp parallel num_threads(threads)
  {
    const DenormalsScope denormals;
    const int64_t team = omp_get_num_threads(), thread = omp_get_thread_num();
    body(items * thread / team, items * (thread + 1) / team);
  }
}

// body(i) for every i in [0, items), split as ParallelRanges.
template <class Body>
void ParallelFor(int threads, int64_t items, const Body& body) {
  ParallelRanges(threads, items, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) body(i);
  });
}

// first(i) for every i in [0, first_items), then, once all of them are done, second(j) for every
// j in [0, second_items): one parallel region with a barrier between the loops, for kernels that
// write partial results and then reduce them.
template <class First, class Second>
void ParallelForThen(int threads, int64_t first_items, const First& first, int64_t second_items,
                     const Second& second) {
  if (threads <= 1) {
    const DenormalsScope denormals;
    for (int64_t i = 0; i < first_items; ++i) first(i);
    for (int64_t j = 0; j < second_items; ++j) second(j);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const DenormalsScope denormals;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < first_items; ++i) first(i);
#pragma omp for schedule(static)
    for (int64_t j = 0; j < second_items; ++j) second(j);
  }
}

// body(thread, team) on each thread of a team of `threads`, for kernels that split their work by
// their own rule (e.g. by estimated cost). threads <= 1: body(0, 1) on the calling thread.
template <class Body>
void ParallelTeam(int threads, const Body& body) {
  if (threads <= 1) {
    const DenormalsScope denormals;
    return body(int64_t{0}, int64_t{1});
  }
#pragma omp parallel num_threads(threads)
  {
    const DenormalsScope denormals;
    body(static_cast<int64_t>(omp_get_thread_num()), static_cast<int64_t>(omp_get_num_threads()));
  }
}

}  // namespace convkit::internal::highway
