// The glue's loops on convkit's threads (glue.cpp, softmax.cpp): split statically, GIL released,
// one thread for loops too small to repay a parallel region; each thread under a DenormalsScope
// (convkit.set_flush_denormals).
#pragma once

#include <nanobind/nanobind.h>
#include <omp.h>

#include <cstdint>

#include "api/src/denormals.hpp"
#include "convkit/runtime.hpp"

namespace convkit::python {

// Copies under 256 KiB stay on one thread: a parallel region costs more than they take.
inline int ThreadsFor(int64_t bytes) { return bytes < (int64_t{1} << 18) ? 1 : num_threads(); }

// body(i) for every i in [0, items), split statically over ThreadsFor(bytes) threads (bytes: the
// memory the whole loop moves), with the GIL released.
template <typename Body>
void ParallelItems(int64_t items, int64_t bytes, const Body& body) {
  nanobind::gil_scoped_release release;
#pragma omp parallel num_threads(ThreadsFor(bytes))
  {
    const internal::DenormalsScope denormals;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < items; ++i) body(i);
  }
}

}  // namespace convkit::python
