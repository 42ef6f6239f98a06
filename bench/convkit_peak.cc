// convkit_peak: this machine's ceilings, measured in the same run as the comparison, so that "% of
// peak" is a ratio of two measurements and not of a measurement and a datasheet figure.
//
//   peak/fma_fp32/T<threads>      fp32 multiply-add throughput (GFLOPS counter, 2 FLOPs per lane):
//                                 kChains independent MulAdd chains per thread, widest vectors of
//                                 the best Highway target, nothing loaded or stored in the loop.
//   peak/dot_bf16/T<threads>      bf16 dot-product throughput (GFLOPS counter, 4 FLOPs per fp32
//                                 lane: vdpbf16ps adds two products per lane), kBf16Chains chains
//                                 of the bf16 kernels' DotBf16Pairs; skipped without AVX512-BF16.
//   peak/stream_triad/T<threads>  STREAM's triad a = b + s * c over arrays far larger than the
//                                 last-level cache (GBps counter, 12 bytes per element as STREAM
//                                 counts: two loads and a store, no write-allocate traffic).
//
// Threads: --threads=N (default: OMP_NUM_THREADS or all cores), one OpenMP team as the kernels use.
// tools/convkit_compare.py runs this first and reports every figure against these medians.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "bench/convkit_peak.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/conv/conv2d_fwd_bf16-inl.h"
#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::bench {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// FMA latency 4 x 2 pipes needs >= 8 chains; 16 also covers wider machines and fits 32 registers
// (AVX-512) or, on AVX2, leaves the spill-free 16 with the two constants folded in.
constexpr size_t kChains = 16;

// Runs `iters` steps of kChains multiply-adds on the calling thread; returns the sum so that the
// compiler cannot drop the chains. |m| < 1 keeps the values finite and normal.
float FmaChains(int64_t iters, float seed) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const V m = hn::Set(d, 0.5f * seed), c = hn::Set(d, 0.25f);
  V a[kChains];
  for (size_t i = 0; i < kChains; ++i) a[i] = hn::Set(d, seed + static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it) {
    HWY_UNROLL(16)
    for (size_t i = 0; i < kChains; ++i) a[i] = hn::MulAdd(a[i], m, c);
  }
  V sum = a[0];
  for (size_t i = 1; i < kChains; ++i) sum = hn::Add(sum, a[i]);
  return hn::GetLane(hn::SumOfLanes(d, sum));
}

// vdpbf16ps latency ~6 x 2 pipes needs >= 12 chains; 24 + 2 operands fit the 32 zmm registers.
constexpr size_t kBf16Chains = 24;

#if HWY_TARGET == HWY_AVX3
// As FmaChains with DotBf16Pairs (the bf16 kernels' step). 0.001 (in bf16) keeps the sums normal
// and finite: 2e-6 per step.
CONVKIT_BF16_ATTR float DotBf16Chains(int64_t iters, float seed) {
  namespace kh = convkit::internal::highway::HWY_NAMESPACE;
  const hn::ScalableTag<float> d;
  const __m512i pair = _mm512_set1_epi32(0x3A833A83);  // two bf16 0.001
  kh::VF a[kBf16Chains];
  for (size_t i = 0; i < kBf16Chains; ++i) a[i] = hn::Set(d, seed + static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it) {
    HWY_UNROLL(32)
    for (size_t i = 0; i < kBf16Chains; ++i) a[i] = kh::DotBf16Pairs(a[i], pair, pair);
  }
  kh::VF sum = a[0];
  for (size_t i = 1; i < kBf16Chains; ++i) sum = hn::Add(sum, a[i]);
  return hn::GetLane(hn::SumOfLanes(d, sum));
}

// FLOPs one DotBf16Chains step does, or 0 when this CPU has no AVX512-BF16.
double Bf16FlopsPerStep() {
  if (!__builtin_cpu_supports("avx512bf16")) return 0.0;
  return 4.0 * kBf16Chains * static_cast<double>(hn::Lanes(hn::ScalableTag<float>()));
}
#else
float DotBf16Chains(int64_t, float) { return 0.0f; }
double Bf16FlopsPerStep() { return 0.0; }
#endif

// The dispatched target's name, for the label.
const char* Target() { return hwy::TargetName(HWY_TARGET); }

// FLOPs one FmaChains step does.
double FlopsPerStep() {
  return 2.0 * kChains * static_cast<double>(hn::Lanes(hn::ScalableTag<float>()));
}

// a[i] = b[i] + s * c[i] for i in [begin, end).
void Triad(float* HWY_RESTRICT a, const float* HWY_RESTRICT b, const float* HWY_RESTRICT c, float s,
           int64_t begin, int64_t end) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto sv = hn::Set(d, s);
  int64_t i = begin;
  for (; i + lanes <= end; i += lanes) {
    hn::StoreU(hn::MulAdd(sv, hn::LoadU(d, c + i), hn::LoadU(d, b + i)), d, a + i);
  }
  for (; i < end; ++i) a[i] = b[i] + s * c[i];
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::bench
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::bench {
namespace {

HWY_EXPORT(FmaChains);
HWY_EXPORT(FlopsPerStep);
HWY_EXPORT(DotBf16Chains);
HWY_EXPORT(Bf16FlopsPerStep);
HWY_EXPORT(Triad);
HWY_EXPORT(Target);

// Wall seconds of one call of `fn` on every thread of one team (the team is started before the
// clock, so its start-up cost is not timed).
template <typename Fn>
double TeamSeconds(int threads, const Fn& fn) {
  double seconds = 0.0;
#pragma omp parallel num_threads(threads)
  {
#pragma omp barrier
#pragma omp single
    seconds =
        -std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    fn(omp_get_thread_num(), omp_get_num_threads());
#pragma omp barrier
#pragma omp single
    seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  return seconds;
}

void BenchFma(benchmark::State& state, int threads) {
  constexpr int64_t kSteps = 4000000;  // ~20-60 ms per iteration on one core
  const double flops = HWY_DYNAMIC_DISPATCH(FlopsPerStep)() * kSteps * threads;
  double seconds = 0.0, sink = 0.0;
  for (auto _ : state) {
    seconds += TeamSeconds(threads, [&](int, int) {
      const float r = HWY_DYNAMIC_DISPATCH(FmaChains)(kSteps, 0.999f);
      if (r == 12345.0f) sink += 1.0;  // never true; keeps r alive
    });
  }
  benchmark::DoNotOptimize(sink);
  state.counters["GFLOPS"] = flops * static_cast<double>(state.iterations()) / seconds * 1e-9;
  state.SetLabel(HWY_DYNAMIC_DISPATCH(Target)());
}

void BenchDotBf16(benchmark::State& state, int threads) {
  constexpr int64_t kSteps = 2000000;
  const double flops = HWY_DYNAMIC_DISPATCH(Bf16FlopsPerStep)() * kSteps * threads;
  if (flops == 0.0) {
    state.SkipWithError("unsupported: no AVX512-BF16 on this CPU or target");
    return;
  }
  double seconds = 0.0, sink = 0.0;
  for (auto _ : state) {
    seconds += TeamSeconds(threads, [&](int, int) {
      const float r = HWY_DYNAMIC_DISPATCH(DotBf16Chains)(kSteps, 0.999f);
      if (r == 12345.0f) sink += 1.0;  // never true; keeps r alive
    });
  }
  benchmark::DoNotOptimize(sink);
  state.counters["GFLOPS"] = flops * static_cast<double>(state.iterations()) / seconds * 1e-9;
  state.SetLabel(HWY_DYNAMIC_DISPATCH(Target)());
}

void BenchTriad(benchmark::State& state, int threads) {
  constexpr int64_t kFloats = int64_t{1} << 25;  // 128 MiB per array: 4x a 32 MiB L3
  auto a = hwy::AllocateAligned<float>(kFloats);
  auto b = hwy::AllocateAligned<float>(kFloats);
  auto c = hwy::AllocateAligned<float>(kFloats);
  const auto part = [&](int t, int n, auto&& f) { f(kFloats * t / n, kFloats * (t + 1) / n); };
  // First touch by the thread that streams each part, as STREAM does.
  TeamSeconds(threads, [&](int t, int n) {
    part(t, n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) a[i] = 0.0f, b[i] = 1.0f, c[i] = 2.0f;
    });
  });
  double seconds = 0.0;
  for (auto _ : state) {
    seconds += TeamSeconds(threads, [&](int t, int n) {
      part(t, n, [&](int64_t begin, int64_t end) {
        HWY_DYNAMIC_DISPATCH(Triad)(a.get(), b.get(), c.get(), 3.0f, begin, end);
      });
    });
    benchmark::ClobberMemory();
  }
  state.counters["GBps"] =
      12.0 * kFloats * static_cast<double>(state.iterations()) / seconds * 1e-9;
  state.SetLabel(HWY_DYNAMIC_DISPATCH(Target)());
}

int Main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  int threads = omp_get_max_threads();
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.substr(0, 10) == "--threads=" && std::atoi(argv[i] + 10) > 0) {
      threads = std::atoi(argv[i] + 10);
    } else {
      std::fprintf(stderr,
                   "convkit_peak: unknown flag %s\nusage: convkit_peak [--threads=N] "
                   "[google-benchmark flags]\n",
                   argv[i]);
      return 2;
    }
  }
  const std::string t = "/T" + std::to_string(threads);
  benchmark::RegisterBenchmark(("peak/fma_fp32" + t).c_str(),
                               [threads](benchmark::State& s) { BenchFma(s, threads); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark(("peak/dot_bf16" + t).c_str(),
                               [threads](benchmark::State& s) { BenchDotBf16(s, threads); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark(("peak/stream_triad" + t).c_str(),
                               [threads](benchmark::State& s) { BenchTriad(s, threads); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace
}  // namespace convkit::bench

int main(int argc, char** argv) { return convkit::bench::Main(argc, argv); }
#endif  // HWY_ONCE
