// Pooling plans and one-shot calls of the Highway backend: kernel choice and threading policy.
// Target-independent; the vector code is in pool2d_fwd.cc and pool2d_bwd.cc.
#include "backends/highway/pool/pool2d.hpp"

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

// The arguments of one kernel call: forward reads x and writes y, backward reads dy (and x, for
// max) and writes dx.
Pool2dArgs ArgsFor(const Pool2dProblem& p, bool backward, const float* x, const float* dy,
                   float* out) {
  Pool2dArgs a;
  a.p = &p;
  a.x = x;
  a.dy = dy;
  a.out = out;
  a.threads = ThreadsFor(p);
  a.stream = StreamFor(p, backward);
  return a;
}

// One pass of one problem with its kernel chosen: what both plans hold.
class PlannedPass {
 public:
  PlannedPass(const Pool2dProblem& p, bool backward)
      : p_(p),
        backward_(backward),
        kernels_(backward ? Pool2dBwdKernels() : Pool2dFwdKernels()),
        run_(IsMax(p) ? kernels_.max : kernels_.avg) {}

  void Run(const float* x, const float* dy, float* out) const {
    run_(ArgsFor(p_, backward_, x, dy, out));
  }
  std::string Name() const { return ImplName(p_, kernels_); }

 private:
  const Pool2dProblem p_;
  const bool backward_;
  const Pool2dKernels kernels_;
  const Pool2dFn run_;
};

class Pool2dFwdPlan final : public Pool2dFwdImpl {
 public:
  explicit Pool2dFwdPlan(const Pool2dProblem& p) : pass_(p, /*backward=*/false) {}
  void run(const float* x, float* y) const override { pass_.Run(x, nullptr, y); }
  std::string name() const override { return pass_.Name(); }

 private:
  const PlannedPass pass_;
};

class Pool2dBwdPlan final : public Pool2dBwdImpl {
 public:
  explicit Pool2dBwdPlan(const Pool2dProblem& p) : pass_(p, /*backward=*/true) {}
  void run(const float* x, const float* dy, float* dx) const override { pass_.Run(x, dy, dx); }
  std::string name() const override { return pass_.Name(); }

 private:
  const PlannedPass pass_;
};

}  // namespace

std::unique_ptr<Pool2dFwdImpl> CreatePool2dFwd(const Pool2dProblem& p) {
  return std::make_unique<Pool2dFwdPlan>(p);
}

std::unique_ptr<Pool2dBwdImpl> CreatePool2dBwd(const Pool2dProblem& p) {
  return std::make_unique<Pool2dBwdPlan>(p);
}

void Pool2dFwdOneShot(const Pool2dProblem& p, const float* x, float* y, std::string* impl_name) {
  const Pool2dKernels kernels = Pool2dFwdKernels();
  (IsMax(p) ? kernels.max : kernels.avg)(ArgsFor(p, /*backward=*/false, x, nullptr, y));
  if (impl_name != nullptr) *impl_name = ImplName(p, kernels);
}

}  // namespace convkit::internal::highway
