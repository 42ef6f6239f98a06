// The pooling grids (grid.hpp): one case's checks, forward and backward, run by RunGrid.
#include <string>

#include "tests/equivalence/grid.hpp"

namespace convkit::test {
namespace {

GridStep CheckPoolForward(const std::string& backend, std::string_view isa, int index,
                          const PoolCase& c, Tally& tally) {
  Rng rng(CaseSeed(index) ^ 0x9001);
  const std::string cs = c.ToString();
  const PoolData d = MakePoolData(c, rng);
  Tensor expected(d.dy.dims(), kReferenceFill);
  pool2d_forward(c.params, d.x, expected, "reference");
  if (expected.size() >= kZeroTrustMinElements &&
      tally.Check(NotMostlyZero(cs, "reference y", expected, 0.5))) {
    return GridStep::kStop;
  }
  const BackendRuns runs{[&](Tensor& y) { pool2d_forward(c.params, d.x, y, backend); },
                         [&](Tensor& y, Tensor& y_again) {
                           const Pool2d plan(c.params, c.x, backend);
                           plan.run(d.x, y);
                           plan.run(d.x, y_again);
                           return plan.impl_name();
                         }};
  return CheckOneShotAndPlan(tally, cs, "y", expected, isa, runs);
}

GridStep CheckPoolBackward(const std::string& backend, std::string_view isa, int index,
                           const PoolCase& c, Tally& tally) {
  Rng rng(CaseSeed(index) ^ 0x9002);
  const std::string cs = c.ToString();
  const PoolData d = MakePoolData(c, rng);
  Tensor expected(c.x, kReferenceFill);
  pool2d_backward(c.params, d.x, d.dy, expected, "reference");
  if (expected.size() >= kZeroTrustMinElements &&
      tally.Check(NotMostlyZero(cs, "reference dx", expected, PoolDxAllowedZeros(c, d)))) {
    return GridStep::kStop;
  }
  const BackendRuns runs{[&](Tensor& dx) { pool2d_backward(c.params, d.x, d.dy, dx, backend); },
                         [&](Tensor& dx, Tensor& dx_again) {
                           const Pool2dBackward plan(c.params, c.x, backend);
                           plan.run(d.x, d.dy, dx);
                           plan.run(d.x, d.dy, dx_again);
                           return plan.impl_name();
                         }};
  return CheckOneShotAndPlan(tally, cs, "dx", expected, isa, runs);
}

}  // namespace

void PoolForwardGrid(const std::string& backend, std::string_view isa) {
  RunGrid(backend, PoolCases(), [&](int index, const PoolCase& c, Tally& tally) {
    return CheckPoolForward(backend, isa, index, c, tally);
  });
}

void PoolBackwardGrid(const std::string& backend, std::string_view isa) {
  RunGrid(backend, PoolCases(), [&](int index, const PoolCase& c, Tally& tally) {
    return CheckPoolBackward(backend, isa, index, c, tally);
  });
}

}  // namespace convkit::test
