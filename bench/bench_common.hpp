// What every convkit_bench source shares: the run-time configuration (our flags), benchmark names,
// the FLOP and byte counts behind the counters, input fills, and the hook through which other files
// (bench/onednn_direct_bench.cpp) register their benchmarks once the flags are known.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bench/shape_sets.hpp"
#include "convkit/params.hpp"
#include "convkit/tensor.hpp"

namespace convkit::bench {

// Which benchmarks to register, from convkit_bench's own flags (see kUsage in convkit_bench.cpp).
// An empty list means "all".
struct Config {
  std::vector<std::string> ops;
  std::vector<std::string> backends;  // empty: convkit::available_backends() and other files' own
  std::vector<std::string> sets;
  int64_t batch = 0;  // 0: each shape's default batch
  // The reference backend is slow: by default it runs only on problems below these sizes.
  enum class Reference { kSmall, kAll, kNone } reference = Reference::kSmall;
  // Decide iteration counts by wall time (Google Benchmark's UseRealTime()).
  bool real_time = false;
  // conv2d_fwd's post-ops, each a benchmark dimension (see kUsage); empty: "none" only.
  std::vector<std::string> post_ops;

  bool WantsOp(std::string_view op) const;
  bool WantsBackend(std::string_view backend) const;
  bool WantsSet(std::string_view set) const;
  int64_t BatchFor(int64_t default_batch) const { return batch > 0 ? batch : default_batch; }
};

// Problems the reference backend runs by default (Reference::kSmall): at its ~1 GFLOP/s, at most a
// few tens of milliseconds per call.
inline constexpr double kReferenceMaxFlops = 5e7;
inline constexpr double kReferenceMaxBytes = 32e6;

// "<op>/<backend>/<set>/<shape>/N<batch>", the name every convkit benchmark has.
std::string BenchmarkName(std::string_view op, std::string_view backend, std::string_view set,
                          std::string_view shape, int64_t batch);

// Nominal FLOPs of one forward (or backward-data, or backward-weights) convolution:
// 2 * N * OH * OW * C_out * KH * KW * C_in / groups.
double ConvFlops(const ConvShape& shape, int64_t batch);
// y's dims for the shape at this batch.
Dims ConvOutputDims(const ConvShape& shape, int64_t batch);
Dims PoolOutputDims(const PoolShape& shape, int64_t batch);

// Sets the counter GFLOPS (conv) or GBps (pooling): the work of one iteration times
// state.iterations(), per second of the wall-clock time `seconds` the timed loop took.
void SetGflopsCounter(benchmark::State& state, double flops_per_iteration, double seconds);
void SetGbpsCounter(benchmark::State& state, double bytes_per_iteration, double seconds);

// Fills with values uniform in [-1, 1) from a fixed seed: every run sees the same data.
void FillUniform(float* data, int64_t n, uint32_t seed);

// Other files add benchmarks by calling this from a static initializer:
//   static const bool kRegistered = AddRegistrar(&RegisterMyBenchmarks);
// main() calls every registrar once our flags are parsed, so they can honour Config.
using Registrar = void (*)(const Config& config);
bool AddRegistrar(Registrar registrar);
const std::vector<Registrar>& Registrars();

}  // namespace convkit::bench
