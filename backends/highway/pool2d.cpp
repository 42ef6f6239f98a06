// Pooling plans and one-shot calls of the Highway backend: kernel choice and threading policy.
// Target-independent; the vector code is in pool2d_fwd.cc and pool2d_bwd.cc.
#include "backends/highway/pool2d.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace convkit::internal::highway {
namespace {

// Below this many window reads a call runs on the calling thread: opening an OpenMP parallel
// region costs ~1-3 us, and 2^18 reads take ~5-10 us on one core (in cache, ~8-16 floats/cycle).
constexpr double kSerialReads = 1 << 18;

bool IsMax(const Pool2dProblem& p) { return p.mode == PoolMode::kMax; }

int ThreadsFor(const Pool2dProblem& p) {
  const double reads = static_cast<double>(p.n) * p.oh * p.ow * p.c * p.kh * p.kw;
  return reads < kSerialReads ? 1 : num_threads();
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

std::string ImplName(const Pool2dProblem& p, const Pool2dKernels& kernels) {
  return std::string(IsMax(p) ? "highway:pool_max:" : "highway:pool_avg:") + kernels.isa;
}

class Pool2dFwdPlan final : public Pool2dFwdImpl {
 public:
  explicit Pool2dFwdPlan(const Pool2dProblem& p)
      : p_(p), kernels_(Pool2dFwdKernels()), run_(IsMax(p) ? kernels_.max : kernels_.avg) {}

  void run(const float* x, float* y) const override {
    Pool2dArgs a;
    a.p = &p_;
    a.x = x;
    a.out = y;
    a.threads = ThreadsFor(p_);
    a.stream = StreamFor(p_, /*backward=*/false);
    run_(a);
  }
  std::string name() const override { return ImplName(p_, kernels_); }

 private:
  const Pool2dProblem p_;
  const Pool2dKernels kernels_;
  const Pool2dFn run_;
};

}  // namespace

std::unique_ptr<Pool2dFwdImpl> CreatePool2dFwd(const Pool2dProblem& p) {
  return std::make_unique<Pool2dFwdPlan>(p);
}

void Pool2dFwdOneShot(const Pool2dProblem& p, const float* x, float* y, std::string* impl_name) {
  const Pool2dKernels kernels = Pool2dFwdKernels();
  Pool2dArgs a;
  a.p = &p;
  a.x = x;
  a.out = y;
  a.threads = ThreadsFor(p);
  a.stream = StreamFor(p, /*backward=*/false);
  (IsMax(p) ? kernels.max : kernels.avg)(a);
  if (impl_name != nullptr) *impl_name = ImplName(p, kernels);
}

void Pool2dBwd(const Pool2dProblem& p, const float* x, const float* dy, float* dx,
               std::string* impl_name) {
  const Pool2dKernels kernels = Pool2dBwdKernels();
  Pool2dArgs a;
  a.p = &p;
  a.x = x;
  a.dy = dy;
  a.out = dx;
  a.threads = ThreadsFor(p);
  a.stream = StreamFor(p, /*backward=*/true);
  (IsMax(p) ? kernels.max : kernels.avg)(a);
  if (impl_name != nullptr) *impl_name = ImplName(p, kernels);
}

}  // namespace convkit::internal::highway
