// The convolution grids (grid.hpp): one case's checks, forward and backward, run by RunGrid.
#include <string>
#include <vector>

#include "tests/equivalence/grid.hpp"

namespace convkit::test {
namespace {

GridStep CheckConvForward(const std::string& backend, std::string_view isa, int index,
                          const ConvCase& c, Tally& tally) {
  const PostOpVariant post = PostOpVariantFor(index);
  Rng rng(CaseSeed(index));
  const std::string cs = c.ToString() + " " + post.ToString();
  const ConvData d = MakeConvData(c, rng);
  Tensor expected = ReferenceConvY(c, d);
  const Dims y_dims = expected.dims();
  if (expected.size() >= kZeroTrustMinElements &&
      tally.Check(NotMostlyZero(cs, "reference y", expected, ConvYAllowedZeros(c, y_dims)))) {
    return GridStep::kStop;
  }
  Conv2dParams params = c.params;
  post.ApplyTo(params);
  Tensor r(y_dims);
  FillConvData(Span(r), rng);
  ConvForwardWithResidual(params, d.x, d.w, d.b, post.residual, r, expected, "reference");
  const Tolerance tol = PostOpTolerance(post, 3.0);  // r: FillConvData's integers in [-3, 3]
  const BackendRuns runs{[&](Tensor& y) {
                           ConvForwardWithResidual(params, d.x, d.w, d.b, post.residual, r, y,
                                                   backend);
                         },
                         [&](Tensor& y, Tensor& y_again) {
                           const Conv2d plan(params, c.x, d.w, d.b, backend);
                           RunWithResidual(plan, d.x, post.residual, r, y);
                           RunWithResidual(plan, d.x, post.residual, r, y_again);
                           return plan.impl_name();
                         }};
  return CheckOneShotAndPlan(tally, cs, "y", expected, isa, runs, tol);
}

// The gradients a backward case asks for: case i takes `which` = i % 3.
Conv2dGradsWanted WantedOf(int which) { return {which != 2, which != 1, which != 1}; }

// One backward case: its data and the reference's gradients.
struct ConvBackwardCase {
  ConvBackwardCase(const ConvCase& c, Rng& rng)
      : x(c.x),
        w(c.w()),
        dy(conv2d_output_dims(c.x, c.w(), c.params)),
        dx(c.x, kReferenceFill),
        dw(c.w(), kReferenceFill),
        db(static_cast<size_t>(c.oc), kReferenceFill) {
    FillConvData(Span(x), rng);
    FillConvData(Span(w), rng);
    FillConvData(Span(dy), rng);
    conv2d_backward(c.params, x, w, dy, {dx.view(), dw.view(), Span(db)}, "reference");
  }
  Tensor x, w, dy;
  Tensor dx, dw;
  std::vector<float> db;
};

// A backend's gradient buffers, pre-filled with kBackendFill.
struct BackendGrads {
  explicit BackendGrads(const ConvCase& c)
      : dx(c.x, kBackendFill),
        dw(c.w(), kBackendFill),
        db(static_cast<size_t>(c.oc), kBackendFill) {}
  // The buffers of the gradients asked for.
  Conv2dGrads Wanted(const Conv2dGradsWanted& wanted) {
    Conv2dGrads g;
    if (wanted.dx) g.dx = dx.view();
    if (wanted.dw) g.dw = dw.view();
    if (wanted.db) g.db = Span(db);
    return g;
  }
  Tensor dx, dw;
  std::vector<float> db;
};

// Zero trust on the reference's dx and dw, structural zeros taken out; true to stop.
bool ReferenceGradsMostlyZero(const ConvCase& c, const std::string& cs, const ConvBackwardCase& b,
                              Tally& tally) {
  const Dims& y_dims = b.dy.dims();
  if (b.dx.size() >= kZeroTrustMinElements &&
      tally.Check(NotMostlyZero(cs, "reference dx", b.dx, ConvDxAllowedZeros(c, y_dims)))) {
    return true;
  }
  return c.x[0] > 0 && b.dw.size() >= kZeroTrustMinElements &&
         tally.Check(NotMostlyZero(cs, "reference dw", b.dw, ConvDwAllowedZeros(c, y_dims)));
}

// The one-shot gradients asked for are the reference's, and those not asked for are not written;
// true to stop.
bool OneShotGradsDiffer(const ConvCase& c, const std::string& cs, const Conv2dGradsWanted& wanted,
                        const ConvBackwardCase& b, const BackendGrads& g, Tally& tally) {
  return (wanted.dx && tally.Check(CompareTensors(cs, "dx", b.dx, g.dx))) ||
         (wanted.dw && tally.Check(CompareTensors(cs, "dw", b.dw, g.dw))) ||
         (wanted.db && tally.Check(CompareVectors(cs, "db", b.db, g.db))) ||
         (!wanted.dx &&
          tally.Check(CompareTensors(cs, "dx (not asked for)", Tensor(c.x, kBackendFill), g.dx))) ||
         (!wanted.dw &&
          tally.Check(CompareTensors(cs, "dw (not asked for)", Tensor(c.w(), kBackendFill), g.dw)));
}

// The backward plan of a case gives the reference's bits: created with other weights, then
// set_weights(w) (as a training step would), run twice. Without dw the plan gets no x. The
// one-shot call ran: a plan refusal is a failure.
::testing::AssertionResult ConvBackwardPlanMatches(const ConvCase& c, const std::string& cs,
                                                   const Conv2dGradsWanted& wanted,
                                                   const ConvBackwardCase& b,
                                                   const std::string& backend, std::string_view isa,
                                                   Rng& rng) {
  Tensor w_other(c.w());
  FillConvData(Span(w_other), rng);
  BackendGrads out[2] = {BackendGrads(c), BackendGrads(c)};
  const ConstTensorView x_given = wanted.dw ? b.x.view() : ConstTensorView();
  std::string impl;
  if (auto why = RefusalOf([&] {
        Conv2dBackward plan(c.params, c.x, w_other, wanted, backend);
        impl = plan.impl_name();
        plan.run(x_given, b.dy, out[0].Wanted(wanted));
        plan.set_weights(b.w);
        plan.run(x_given, b.dy, out[0].Wanted(wanted));
        plan.run(x_given, b.dy, out[1].Wanted(wanted));
      })) {
    return PlanRefusal(cs, *why);
  }
  for (int i = 0; i < 2; ++i) {
    const std::string run = i == 0 ? " (plan after set_weights)" : " (plan, second run)";
    ::testing::AssertionResult r = ImplIsOnIsa(cs, impl, isa);
    if (r && wanted.dx) r = CompareTensors(cs, "dx" + run, b.dx, out[i].dx);
    if (r && wanted.dw) r = CompareTensors(cs, "dw" + run, b.dw, out[i].dw);
    if (r && wanted.db) r = CompareVectors(cs, "db" + run, b.db, out[i].db);
    if (!r) return r;
  }
  return ::testing::AssertionSuccess();
}

// Backward against reference, one-shot and through a plan; case i asks for WantedOf(i % 3).
GridStep CheckConvBackward(const std::string& backend, std::string_view isa, int index,
                           const ConvCase& c, Tally& tally) {
  const int which = index % 3;
  const Conv2dGradsWanted wanted = WantedOf(which);
  Rng rng(CaseSeed(index) ^ 0xb0b0);
  const std::string cs = c.ToString() + (which == 1   ? " dx only"
                                         : which == 2 ? " dw, db only"
                                                      : "");
  const ConvBackwardCase b(c, rng);
  if (ReferenceGradsMostlyZero(c, cs, b, tally)) return GridStep::kStop;
  BackendGrads g(c);
  if (auto why = RefusalOf(
          [&] { conv2d_backward(c.params, b.x, b.w, b.dy, g.Wanted(wanted), backend); })) {
    tally.Refused(cs, *why);
    return GridStep::kNext;
  }
  tally.Ran();
  const bool stop = OneShotGradsDiffer(c, cs, wanted, b, g, tally) ||
                    tally.Check(ConvBackwardPlanMatches(c, cs, wanted, b, backend, isa, rng));
  return stop ? GridStep::kStop : GridStep::kNext;
}

}  // namespace

void ConvForwardGrid(const std::string& backend, std::string_view isa, Fpmath fpmath) {
  RunGrid(backend, ConvCases(), [&](int index, ConvCase c, Tally& tally) {
    c.params.fpmath = fpmath;
    return CheckConvForward(backend, isa, index, c, tally);
  });
}

void ConvForwardCases(const std::string& backend, std::string_view isa,
                      const std::vector<ConvCase>& cases, int first_index) {
  RunGrid(backend, cases, [&](int index, const ConvCase& c, Tally& tally) {
    return CheckConvForward(backend, isa, first_index + index, c, tally);
  });
}

void ConvBackwardGrid(const std::string& backend, std::string_view isa) {
  RunGrid(backend, ConvCases(), [&](int index, ConvCase c, Tally& tally) {
    c.params.activation = Activation::kNone;  // backward takes dy after the activation's gradient
    return CheckConvBackward(backend, isa, index, c, tally);
  });
}

void ConvBackwardCases(const std::string& backend, std::string_view isa,
                       const std::vector<ConvCase>& cases, int first_index) {
  RunGrid(backend, cases, [&](int index, ConvCase c, Tally& tally) {
    c.params.activation = Activation::kNone;
    return CheckConvBackward(backend, isa, first_index + index, c, tally);
  });
}

}  // namespace convkit::test
