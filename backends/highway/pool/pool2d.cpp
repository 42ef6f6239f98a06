// Pooling plans and one-shot calls of the Highway backend: the variant lists and the threading
// policy. Target-independent; the vector code is in pool2d_fwd.cc, pool2d_bwd.cc and
// pool2d_bwd_gather.cc, and reports the target's vector width for the lists' conditions.
#include "backends/highway/pool/pool2d.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/common/variants.hpp"
#include "backends/highway/pool/pool2d_bwd_items.hpp"

namespace convkit::internal::highway {
namespace {

bool IsMax(const Pool2dProblem& p) { return p.mode == PoolMode::kMax; }

// The window element reads of a call, weighed for ThreadsFor. Up to kNarrowC channels (one step
// of the row kernels on AVX-512) a read costs about 4 FLOPs of a convolution kernel (11-30 G
// reads/s on one core, against ~100 GFLOP/s), so such a call is worth the team from ~65 K reads:
// at 1 FLOP per read, small images at N = 32 (16x16x7 3x3/2, 8x8x64 2x2/2: ~130 K reads) ran on
// one thread at 0.45-0.6x oneDNN's speed on two. Wider pixels are read in long runs, 1 FLOP per
// read: a global pool of 14x14x672 at N = 1 (132 K reads) ran 1.3x slower on two threads.
// Max pooling's backward reads cost more (one thread, N = 1 to 32): it recomputes each window's
// selection and adds dy in place, ~0.2 ns a read where a pixel fills whole vectors (16 to 64
// channels) and 1-3 ns over pixels below one vector (masked read-modify-writes of overlapping
// windows wait for the window before's stores). Weighed as 16 and 256 FLOPs, such calls take the
// team from ~2 us of work: the assignment's 5x5x3 3x3/1 at N = 32 21.7 -> 13.3 us (0.81x -> 1.32x
// oneDNN), 16x16x7 3x3/2 at N = 1 3.7 -> 2.6, 13x11x33 3x3/1 11.0 -> 8.7. The average gather's
// reads cost what the forward's do: at 4 FLOPs its 2 us calls stay on one thread (13x11x33 and
// 32x32x5 at N = 1 ran 0.85-0.9x on two).
constexpr int64_t kNarrowC = 64;
constexpr double kNarrowReadFlops = 4.0;
constexpr int64_t kMaskedC = 16;
constexpr double kMaxBackwardReadFlops = 16.0;
constexpr double kMaskedMaxBackwardReadFlops = 256.0;

double WindowReadFlops(const Pool2dProblem& p, bool backward) {
  const double reads = static_cast<double>(p.n) * p.oh * p.ow * p.c * p.kh * p.kw;
  if (p.c > kNarrowC) return reads;
  if (backward && IsMax(p)) {
    return (p.c < kMaskedC ? kMaskedMaxBackwardReadFlops : kMaxBackwardReadFlops) * reads;
  }
  return kNarrowReadFlops * reads;
}

// Above this many bytes touched per call, the output no longer stays in the last-level cache for
// its consumer (32 MB L3 here), so streaming stores cost nothing later and save the
// read-for-ownership: 61 vs 46 GB/s STREAM triad on this machine (issue 5).
constexpr double kStreamBytes = 32.0 * (1 << 20);

// Forward touches x and y; backward dy and dx, and x for max pooling.
bool StreamFor(const Pool2dProblem& p, bool backward) {
  const double x = static_cast<double>(p.n) * p.ih * p.iw * p.c;
  const double y = static_cast<double>(p.n) * p.oh * p.ow * p.c;
  const double floats = backward ? y + x + (IsMax(p) ? x : 0.0) : x + y;
  return floats * sizeof(float) > kStreamBytes;
}

// What a pooling list's entries look at: the problem, whether the call streams, and the chosen
// target's vector width.
struct PoolQuery {
  const Pool2dProblem& p;
  bool stream;
  int64_t lanes;
  int64_t wide_c;  // forward only: Pool2dFwdKernels::wide_c
};

const char* AcceptsAll(const PoolQuery&) { return nullptr; }

// One entry of a pooling list: ChooseVariant's name and refusal, and where the variant's entry
// points are in the target's kernels.
template <class Kernels>
struct PoolVariant {
  const char* name;
  const char* (*refuses)(const PoolQuery& q);
  Pool2dEntry Kernels::*entry;
};

// The forward list (Pool2dFwdKernels): streaming stores when DRAM-bound, else the pixel-major
// order for wide C, else the row kernel.
const char* StreamRefuses(const PoolQuery& q) {
  if (!q.stream) return "fits in the last-level cache";
  if (q.p.c % q.lanes != 0) return "C not a whole number of vectors";
  return nullptr;
}
const char* WideRefuses(const PoolQuery& q) {
  return q.p.c > q.wide_c ? nullptr : "C within three channel steps";
}
// Pooling at stride 1 whose windows hold at least kSeparableWindow elements, over pixels the
// wide variant would take (C > wide_c): KH + KW selections (or additions) per output instead of
// KH * KW. Average pooling too since 2026-12-06: 5x5 over 20x20x256 (YOLOv5's SPPF as an average)
// at batch 1 0.39x -> 1.21x oneDNN, 9x9 0.33x -> 2.2x, 13x13 at batch 8 0.29x -> 1.9x; narrower
// pixels (20x20x128, 56x56x64, 40x40x32) ran 0.4-1.1x the rows kernel, which they keep, and
// averages past the last-level cache 0.68x the stream variant (19x19x512 at batch 32).
// Measured (2 threads, against the variant the list chose before; AVX3, wide_c = 192): 5x5, 9x9,
// 13x13 over 20x20x256 (YOLO's SPP) 2.9x, 7.4x, 9.4x faster, 5x5 over 20x20x512 2.2x, 4x4 over
// 20x20x256 2.0x. Narrower pixels stay with the rows kernel, which takes (ow, c) as one flat
// sequence at stride 1: 5x5 over 20x20x128 at batch 8 and 32 ran 0.82-0.84x separable (at batch
// 1 1.1-1.25x), over 56x56x64 0.6x; 3x3 over 14x14x480 0.7x.
// One window (global pooling) shares no rows between outputs, so the passes save nothing: the
// wide variant ran the 7x7x2048 and 7x7x1024 global pools at batch 32 2.2-2.4x faster (max, whose
// NaN scan read the block twice) and 1.1-1.25x (average).
constexpr int64_t kSeparableWindow = 16;
const char* SeparableRefuses(const PoolQuery& q) {
  if (!IsMax(q.p) && q.stream) return "average pooling past the last-level cache (stream)";
  if (q.p.stride_h != 1 || q.p.stride_w != 1) return "stride > 1";
  if (q.p.oh == 1 && q.p.ow == 1) return "one window";
  if (q.p.kh * q.p.kw < kSeparableWindow) return "window too small";
  return WideRefuses(q);  // the wide variant's pixels only
}
constexpr PoolVariant<Pool2dFwdKernels> kFwdVariants[] = {
    {"separable", SeparableRefuses, &Pool2dFwdKernels::separable},
    {"stream", StreamRefuses, &Pool2dFwdKernels::stream},
    {"wide", WideRefuses, &Pool2dFwdKernels::wide},
    {"rows", AcceptsAll, &Pool2dFwdKernels::rows}};

// The backward list (Pool2dBwdKernels): the average gather when its share ring holds a vector of
// channels, else the band ring when DRAM-bound and its rows hold a vector of channels, else in
// place.
const char* AvgGatherRefuses(const PoolQuery& q) {
  if (IsMax(q.p)) return "max pooling";
  if (ShareRingRows(q.p) > kMaxShareRows) return "window too tall for the share ring";
  if (GatherBlock(q.p, q.lanes) == 0) return "rows too wide for the gather ring";
  return nullptr;
}
const char* BandRefuses(const PoolQuery& q) {
  // In cache (no streaming stores), the ring's extra copy costs what the zero-fill did.
  if (!q.stream) return "fits in the last-level cache";
  if (RingChannels(q.p) < q.lanes) return "dx rows too wide for the ring";
  return nullptr;
}
constexpr PoolVariant<Pool2dBwdKernels> kBwdVariants[] = {
    {"avg_gather", AvgGatherRefuses, &Pool2dBwdKernels::avg_gather},
    {"band", BandRefuses, &Pool2dBwdKernels::band},
    {"in_place", AcceptsAll, &Pool2dBwdKernels::in_place}};

// A chosen variant: its entry point for the problem's mode, its name and the target's.
struct Chosen {
  Pool2dFn run;
  const char* variant;
  const char* isa;
};

// highway:pool_max:<variant>:<isa> (or pool_avg).
std::string ImplName(const Pool2dProblem& p, const Chosen& c) {
  return std::string(IsMax(p) ? "highway:pool_max:" : "highway:pool_avg:") + c.variant + ":" +
         c.isa;
}

template <class Kernels>
Chosen Choose(std::string_view op, std::span<const PoolVariant<Kernels>> list,
              const Kernels& kernels, const PoolQuery& q) {
  const size_t i = ChooseVariant(op, list, q, [](const PoolQuery& q) { return q.p.to_string(); });
  const Pool2dEntry& entry = kernels.*list[i].entry;
  return {IsMax(q.p) ? entry.max : entry.avg, list[i].name, kernels.isa};
}

Chosen ChooseFwd(const Pool2dProblem& p) {
  const Pool2dFwdKernels kernels = ChosenPool2dFwdKernels();
  const PoolQuery q{p, StreamFor(p, /*backward=*/false), kernels.lanes, kernels.wide_c};
  return Choose<Pool2dFwdKernels>("pool2d_fwd", kFwdVariants, kernels, q);
}

Chosen ChooseBwd(const Pool2dProblem& p) {
  const Pool2dBwdKernels kernels = ChosenPool2dBwdKernels();
  const PoolQuery q{p, StreamFor(p, /*backward=*/true), kernels.lanes, 0};
  return Choose<Pool2dBwdKernels>("pool2d_bwd", kBwdVariants, kernels, q);
}

// Runs the chosen variant: forward reads x and writes y, backward reads dy (and x, for max) and
// writes dx. An empty batch writes nothing and reaches no kernel.
void Run(const Pool2dProblem& p, Pool2dFn run, bool backward, const float* x, const float* dy,
         float* out) {
  if (p.n == 0) return;
  Pool2dArgs a;
  a.p = &p;
  a.x = x;
  a.dy = dy;
  a.out = out;
  a.threads = ThreadsFor(WindowReadFlops(p, backward));
  a.stream = StreamFor(p, backward);
  run(a);
}

class Pool2dFwdPlan final : public Pool2dFwdImpl {
 public:
  explicit Pool2dFwdPlan(const Pool2dProblem& p) : p_(p), chosen_(ChooseFwd(p_)) {}
  void run(const float* x, float* y) const override {
    Run(p_, chosen_.run, /*backward=*/false, x, nullptr, y);
  }
  std::string name() const override { return ImplName(p_, chosen_); }

 private:
  const Pool2dProblem p_;
  const Chosen chosen_;
};

class Pool2dBwdPlan final : public Pool2dBwdImpl {
 public:
  explicit Pool2dBwdPlan(const Pool2dProblem& p) : p_(p), chosen_(ChooseBwd(p_)) {}
  void run(const float* x, const float* dy, float* dx) const override {
    Run(p_, chosen_.run, /*backward=*/true, x, dy, dx);
  }
  std::string name() const override { return ImplName(p_, chosen_); }

 private:
  const Pool2dProblem p_;
  const Chosen chosen_;
};

}  // namespace

std::unique_ptr<Pool2dFwdImpl> CreatePool2dFwd(const Pool2dProblem& p) {
  return std::make_unique<Pool2dFwdPlan>(p);
}

std::unique_ptr<Pool2dBwdImpl> CreatePool2dBwd(const Pool2dProblem& p) {
  return std::make_unique<Pool2dBwdPlan>(p);
}

void Pool2dFwdOneShot(const Pool2dProblem& p, const float* x, float* y, std::string* impl_name) {
  const Chosen chosen = ChooseFwd(p);
  Run(p, chosen.run, /*backward=*/false, x, nullptr, y);
  if (impl_name != nullptr) *impl_name = ImplName(p, chosen);
}

}  // namespace convkit::internal::highway
