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

int ThreadsFor(const Pool2dProblem& p) {
  const double reads = static_cast<double>(p.n) * p.oh * p.ow * p.c * p.kh * p.kw;
  return reads < kSerialReads ? 1 : num_threads();
}

bool IsMax(const Pool2dProblem& p) { return p.mode == PoolMode::kMax; }

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
  (IsMax(p) ? kernels.max : kernels.avg)(a);
  if (impl_name != nullptr) *impl_name = ImplName(p, kernels);
}

}  // namespace convkit::internal::highway
