#include "convkit/runtime.hpp"

#include <omp.h>

#include <atomic>

#include "api/src/backend.hpp"
#include "api/src/registry.hpp"
#include "convkit/error.hpp"

namespace convkit {

namespace {
// 0: OpenMP's default (OMP_NUM_THREADS, else the core count).
std::atomic<int> g_num_threads{0};
std::atomic<bool> g_flush_denormals{false};
}  // namespace

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
  for (const internal::Backend* backend : internal::registry()) {
    if (backend->not_built_reason().empty()) names.emplace_back(backend->name());
  }
  return names;
}

std::vector<BackendInfo> all_backends() {
  std::vector<BackendInfo> infos;
  for (const internal::Backend* backend : internal::registry()) {
    infos.push_back({std::string(backend->name()), std::string(backend->not_built_reason())});
  }
  return infos;
}

void set_num_threads(int n) {
  if (n < 0) {
    throw Error(
        ErrorCode::kInvalidArgument,
        "set_num_threads: n: expected >= 0 (0 = OpenMP's default), given " + std::to_string(n));
  }
  g_num_threads.store(n, std::memory_order_relaxed);
}

int num_threads() { return internal::num_threads(); }

void set_flush_denormals(bool on) { g_flush_denormals.store(on, std::memory_order_relaxed); }

bool flush_denormals() { return g_flush_denormals.load(std::memory_order_relaxed); }

namespace internal {

int num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
}

}  // namespace internal
}  // namespace convkit
