// Forward convolution through XNNPACK's operator API (Debian's libxnnpack-dev), a peer column of
// the comparison (DESIGN §9, issue 16).
//
// One benchmark per convolution shape of shape_sets.hpp, named
// "conv2d_fwd/xnnpack/<set>/<shape>/N<batch>", beside convkit's "conv2d_fwd/<backend>/...". Set up
// as an application using XNNPACK well would: xnn_initialize once, the operator created (weights
// packed) and set up once with its own pthreadpool of convkit's thread count (--threads), bias
// fused as in convkit_bench's plans, the first run untimed. The timed loop is xnn_run_operator
// alone. XNNPACK takes NHWC activations as convkit does and OHWI weights
// {groups, OC / groups, KH, KW, IC / groups}, transposed here from HWIO once.
#include <benchmark/benchmark.h>
#include <pthreadpool.h>
#include <xnnpack.h>

#include <chrono>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_common.hpp"
#include "bench/shape_sets.hpp"
#include "convkit/runtime.hpp"

namespace convkit::bench {
namespace {

struct OperatorDeleter {
  void operator()(xnn_operator_t op) const { xnn_delete_operator(op); }
};
struct PoolDeleter {
  void operator()(pthreadpool_t pool) const { pthreadpool_destroy(pool); }
};
using Operator = std::unique_ptr<xnn_operator, OperatorDeleter>;
using ThreadPool = std::unique_ptr<pthreadpool, PoolDeleter>;

// HWIO {KH, KW, ICg, OC} -> OHWI per group {G, OCg, KH, KW, ICg}.
std::vector<float> ToOhwi(const ConvShape& shape, const std::vector<float>& hwio) {
  const Dims w = shape.w_dims();
  const int64_t kh = w[0], kw = w[1], icg = w[2], oc = w[3];
  std::vector<float> ohwi(hwio.size());
  for (int64_t o = 0; o < oc; ++o) {
    for (int64_t r = 0; r < kh * kw; ++r) {
      for (int64_t i = 0; i < icg; ++i) {
        ohwi[static_cast<size_t>((o * kh * kw + r) * icg + i)] =
            hwio[static_cast<size_t>((r * icg + i) * oc + o)];
      }
    }
  }
  return ohwi;
}

bool Initialized() {
  static const bool ok = xnn_initialize(nullptr) == xnn_status_success;
  return ok;
}

void BenchXnnpack(benchmark::State& state, const ConvShape& shape, int64_t batch) {
  if (!Initialized()) {
    state.SkipWithError("error: xnn_initialize failed (CPU not supported by this XNNPACK)");
    return;
  }
  const Conv2dParams& p = shape.params;
  const Dims x_dims = shape.x_dims(batch), y_dims = ConvOutputDims(shape, batch);
  std::vector<float> x(static_cast<size_t>(num_elements(x_dims)));
  std::vector<float> w(static_cast<size_t>(num_elements(shape.w_dims())));
  std::vector<float> b(static_cast<size_t>(shape.c_out));
  std::vector<float> y(static_cast<size_t>(num_elements(y_dims)));
  FillUniform(x.data(), static_cast<int64_t>(x.size()), 1);
  FillUniform(w.data(), static_cast<int64_t>(w.size()), 2);
  FillUniform(b.data(), shape.c_out, 3);
  const std::vector<float> w_ohwi = ToOhwi(shape, w);

  const auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  const int64_t g = p.groups;
  xnn_operator_t raw = nullptr;
  const xnn_status created = xnn_create_convolution2d_nhwc_f32(
      u32(p.pad.top), u32(p.pad.right), u32(p.pad.bottom), u32(p.pad.left), u32(p.kernel_h),
      u32(p.kernel_w), u32(p.stride_h), u32(p.stride_w), u32(p.dilation_h), u32(p.dilation_w),
      u32(g), static_cast<size_t>(x_dims[3] / g), static_cast<size_t>(shape.c_out / g),
      static_cast<size_t>(x_dims[3]), static_cast<size_t>(shape.c_out), w_ohwi.data(), b.data(),
      -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity(),
      /*flags=*/0, &raw);
  const Operator op(raw);
  if (created != xnn_status_success) {
    state.SkipWithError(
        ("unsupported: xnn_create_convolution2d_nhwc_f32 status " + std::to_string(created))
            .c_str());
    return;
  }
  const ThreadPool pool(pthreadpool_create(static_cast<size_t>(convkit::num_threads())));
  if (xnn_setup_convolution2d_nhwc_f32(
          op.get(), static_cast<size_t>(batch), static_cast<size_t>(x_dims[1]),
          static_cast<size_t>(x_dims[2]), x.data(), y.data(), pool.get()) != xnn_status_success ||
      xnn_run_operator(op.get(), pool.get()) != xnn_status_success) {  // warm-up
    state.SkipWithError("error: xnn_setup / xnn_run_operator failed");
    return;
  }
  state.SetLabel("xnnpack (operator API, " +
                 std::to_string(pthreadpool_get_threads_count(pool.get())) + " threads)");

  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    xnn_run_operator(op.get(), pool.get());
    benchmark::ClobberMemory();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  SetGflopsCounter(state, ConvFlops(shape, batch), seconds);
}

void RegisterXnnpack(const Config& config) {
  if (!config.WantsOp("conv2d_fwd")) return;
  for (const ConvShape& shape : ConvShapes()) {
    if (!config.WantsSet(shape.set)) continue;
    const int64_t batch = config.BatchFor(shape.default_batch());
    benchmark::RegisterBenchmark(
        BenchmarkName("conv2d_fwd", "xnnpack", shape.set, shape.name, batch).c_str(),
        [&shape, batch](benchmark::State& state) { BenchXnnpack(state, shape, batch); })
        ->Unit(benchmark::kMicrosecond);
  }
}

const bool kRegistered = AddRegistrar(&RegisterXnnpack);

}  // namespace
}  // namespace convkit::bench
