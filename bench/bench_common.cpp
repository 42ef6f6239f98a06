#include "bench/bench_common.hpp"

#include <algorithm>

#include "convkit/ops.hpp"

namespace convkit::bench {
namespace {

bool Contains(const std::vector<std::string>& list, std::string_view item) {
  return list.empty() || std::find(list.begin(), list.end(), item) != list.end();
}

std::vector<Registrar>& MutableRegistrars() {
  static std::vector<Registrar> registrars;
  return registrars;
}

double PerSecond(double per_iteration, benchmark::IterationCount iterations, double seconds) {
  return seconds > 0 ? per_iteration * static_cast<double>(iterations) / seconds : 0.0;
}

}  // namespace

bool Config::WantsOp(std::string_view op) const { return Contains(ops, op); }
bool Config::WantsBackend(std::string_view backend) const { return Contains(backends, backend); }
bool Config::WantsSet(std::string_view set) const { return Contains(sets, set); }

std::string BenchmarkName(std::string_view op, std::string_view backend, std::string_view set,
                          std::string_view shape, int64_t batch) {
  std::string name;
  for (std::string_view part : {op, backend, set, shape}) {
    name.append(part);
    name += '/';
  }
  return name + "N" + std::to_string(batch);
}

Dims ConvOutputDims(const ConvShape& shape, int64_t batch) {
  return conv2d_output_dims(shape.x_dims(batch), shape.w_dims(), shape.params);
}

Dims PoolOutputDims(const PoolShape& shape, int64_t batch) {
  return pool2d_output_dims(shape.x_dims(batch), shape.params);
}

double ConvFlops(const ConvShape& shape, int64_t batch) {
  const Dims y = ConvOutputDims(shape, batch);
  const Dims w = shape.w_dims();
  return 2.0 * static_cast<double>(y[0]) * static_cast<double>(y[1] * y[2] * y[3]) *
         static_cast<double>(w[0] * w[1] * w[2]);
}

void SetGflopsCounter(benchmark::State& state, double flops_per_iteration, double seconds) {
  state.counters["GFLOPS"] = PerSecond(flops_per_iteration * 1e-9, state.iterations(), seconds);
}

void SetGbpsCounter(benchmark::State& state, double bytes_per_iteration, double seconds) {
  state.counters["GBps"] = PerSecond(bytes_per_iteration * 1e-9, state.iterations(), seconds);
}

void FillUniform(float* data, int64_t n, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 1u;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;  // Numerical Recipes' LCG: enough for benchmark data
    data[i] = static_cast<float>(s >> 8) * (2.0f / 16777216.0f) - 1.0f;
  }
}

bool AddRegistrar(Registrar registrar) {
  MutableRegistrars().push_back(registrar);
  return true;
}

const std::vector<Registrar>& Registrars() { return MutableRegistrars(); }

}  // namespace convkit::bench
