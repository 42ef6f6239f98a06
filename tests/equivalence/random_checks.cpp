// The random cases against reference (random.hpp), each run through the grid driver (RunGrid).
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "tests/equivalence/random.hpp"

namespace convkit::test {
namespace {

// Counts the zeros of the reference results over a whole run: zero trust in aggregate, since a
// small random case may legitimately be mostly zero (windows in padding, ReLU).
struct ZeroCount {
  int64_t zeros = 0, total = 0;
  void Add(ConstTensorView t) {
    const int64_t n = num_elements(t.dims);
    zeros += std::count(t.data, t.data + n, 0.0f);
    total += n;
  }
  ::testing::AssertionResult NotMostlyZero(std::string_view what, double max_fraction) const {
    if (total > 0 && zeros <= max_fraction * static_cast<double>(total)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << what << ": " << zeros << " of " << total
                                         << " reference elements are zero over the run";
  }
};

// Every fourth case also through a plan, whose refusal is not counted: true to stop.
bool PlanDiffers(int64_t index, const std::string& cs, const Tensor& expected, Tally& tally,
                 const std::function<void(Tensor&)>& run_plan) {
  if (index % 4 != 0) return false;
  Tensor y_plan(expected.dims(), kBackendFill);
  return !RefusalOf([&] { run_plan(y_plan); }) &&
         tally.Check(CompareTensors(cs, "y (plan)", expected, y_plan));
}

Tensor Abs(const Tensor& t) {
  Tensor a = t;
  for (float& v : Span(a)) v = std::fabs(v);
  return a;
}

std::vector<float> Abs(std::vector<float> v) {
  for (float& e : v) e = std::fabs(e);
  return v;
}

// Exact, forward: one-shot, and every fourth case a plan (whose refusal is not counted).
GridStep ConvForwardExact(const ConvCase& c, int64_t index, const std::string& cs,
                          const ConvData& d, const std::string& backend, ZeroCount& y_zeros,
                          Tally& tally) {
  const Tensor expected = ReferenceConvY(c, d);
  Tensor y(expected.dims(), kBackendFill);
  y_zeros.Add(expected);
  if (auto why = RefusalOf([&] { conv2d_forward(c.params, d.x, d.w, d.b, y, backend); })) {
    tally.Refused(cs, *why);
    return GridStep::kNext;
  }
  tally.Ran();
  if (tally.Check(CompareTensors(cs, "y", expected, y))) return GridStep::kStop;
  const bool stop = PlanDiffers(index, cs, expected, tally, [&](Tensor& y_plan) {
    Conv2d(c.params, c.x, d.w, d.b, backend).run(d.x, y_plan);
  });
  return stop ? GridStep::kStop : GridStep::kGoOn;
}

// Exact, backward: dx, dw and db one-shot, with the case's activation off.
GridStep ConvBackwardExact(ConvCase c, const std::string& cs, const ConvData& d, Rng& rng,
                           const std::string& backend, ZeroCount& dx_zeros, Tally& tally) {
  c.params.activation = Activation::kNone;
  Tensor dy(conv2d_output_dims(c.x, c.w(), c.params));
  FillConvData(Span(dy), rng);
  Tensor dx_ref(c.x, kReferenceFill), dw_ref(c.w(), kReferenceFill);
  Tensor dx(c.x, kBackendFill), dw(c.w(), kBackendFill);
  std::vector<float> db_ref(static_cast<size_t>(c.oc), kReferenceFill);
  std::vector<float> db(static_cast<size_t>(c.oc), kBackendFill);
  conv2d_backward(c.params, d.x, d.w, dy, {dx_ref.view(), dw_ref.view(), Span(db_ref)},
                  "reference");
  dx_zeros.Add(dx_ref);
  if (auto why = RefusalOf([&] {
        conv2d_backward(c.params, d.x, d.w, dy, {dx.view(), dw.view(), Span(db)}, backend);
      })) {
    tally.Refused(cs + " backward", *why);
    return GridStep::kNext;
  }
  const std::string bs = cs + " backward";
  const bool stop = tally.Check(CompareTensors(bs, "dx", dx_ref, dx)) ||
                    tally.Check(CompareTensors(bs, "dw", dw_ref, dw)) ||
                    tally.Check(CompareVectors(bs, "db", db_ref, db));
  return stop ? GridStep::kStop : GridStep::kNext;
}

// Exact: pool2d forward (one-shot; every fourth case also a plan) and backward.
GridStep PoolExact(const PoolCase& c, int64_t index, const std::string& cs, Rng& rng,
                   const std::string& backend, ZeroCount& y_zeros, Tally& tally) {
  const PoolData d = MakePoolData(c, rng);
  const Dims y_dims = d.dy.dims();
  Tensor expected(y_dims, kReferenceFill), y(y_dims, kBackendFill);
  pool2d_forward(c.params, d.x, expected, "reference");
  y_zeros.Add(expected);
  if (auto why = RefusalOf([&] { pool2d_forward(c.params, d.x, y, backend); })) {
    tally.Refused(cs, *why);
    return GridStep::kNext;
  }
  tally.Ran();
  if (tally.Check(CompareTensors(cs, "y", expected, y))) return GridStep::kStop;
  if (PlanDiffers(index, cs, expected, tally,
                  [&](Tensor& y_plan) { Pool2d(c.params, c.x, backend).run(d.x, y_plan); })) {
    return GridStep::kStop;
  }
  Tensor dx_ref(c.x, kReferenceFill), dx(c.x, kBackendFill);
  pool2d_backward(c.params, d.x, d.dy, dx_ref, "reference");
  if (auto why = RefusalOf([&] { pool2d_backward(c.params, d.x, d.dy, dx, backend); })) {
    tally.Refused(cs + " backward", *why);
    return GridStep::kNext;
  }
  return tally.Check(CompareTensors(cs + " backward", "dx", dx_ref, dx)) ? GridStep::kStop
                                                                         : GridStep::kNext;
}

// Within the bound, forward: y against reference, with the bound from |x|, |w|, |b|.
GridStep ConvForwardNormal(const ConvCase& c, const std::string& cs, const ConvData& d,
                           const std::string& backend, Tally& tally) {
  Conv2dParams linear = c.params;
  linear.activation = Activation::kNone;
  const Dims y_dims = conv2d_output_dims(c.x, c.w(), c.params);
  Tensor expected(y_dims), y(y_dims, kBackendFill), y_bound(y_dims);
  conv2d_forward(c.params, d.x, d.w, d.b, expected, "reference");
  conv2d_forward(linear, Abs(d.x), Abs(d.w), Abs(d.b), y_bound, "reference");
  if (auto why = RefusalOf([&] { conv2d_forward(c.params, d.x, d.w, d.b, y, backend); })) {
    tally.Refused(cs, *why);
    return GridStep::kNext;
  }
  tally.Ran();
  const int64_t taps = c.params.kernel_h * c.params.kernel_w;
  return tally.Check(CompareWithinBound(cs, "y", expected, y, y_bound,
                                        ReductionFactor(taps * (c.x[3] / c.params.groups) + 1)))
             ? GridStep::kStop
             : GridStep::kGoOn;
}

// Within the bound, backward: dx, dw and db, with the bounds from |x|, |w|, |dy|.
GridStep ConvBackwardNormal(const ConvCase& c, const std::string& cs, const ConvData& d, Rng& rng,
                            const std::string& backend, Tally& tally) {
  Conv2dParams linear = c.params;
  linear.activation = Activation::kNone;
  const Dims y_dims = conv2d_output_dims(c.x, c.w(), c.params);
  Tensor dy(y_dims);
  FillNormal(Span(dy), rng);
  Tensor dx_ref(c.x), dw_ref(c.w()), dx(c.x, kBackendFill), dw(c.w(), kBackendFill);
  Tensor dx_bound(c.x), dw_bound(c.w());
  std::vector<float> db_ref(static_cast<size_t>(c.oc)), db(db_ref.size(), kBackendFill),
      db_bound(db_ref.size());
  conv2d_backward(linear, d.x, d.w, dy, {dx_ref.view(), dw_ref.view(), Span(db_ref)}, "reference");
  conv2d_backward(linear, Abs(d.x), Abs(d.w), Abs(dy),
                  {dx_bound.view(), dw_bound.view(), Span(db_bound)}, "reference");
  if (auto why = RefusalOf([&] {
        conv2d_backward(linear, d.x, d.w, dy, {dx.view(), dw.view(), Span(db)}, backend);
      })) {
    tally.Refused(cs + " backward", *why);
    return GridStep::kNext;
  }
  const int64_t taps = c.params.kernel_h * c.params.kernel_w;
  const int64_t pixels = y_dims[0] * y_dims[1] * y_dims[2];
  const Dims db_dims{1, 1, 1, c.oc};
  const std::string bs = cs + " backward";
  const bool stop =
      tally.Check(CompareWithinBound(bs, "dx", dx_ref, dx, dx_bound,
                                     ReductionFactor(taps * (c.oc / c.params.groups)))) ||
      tally.Check(CompareWithinBound(bs, "dw", dw_ref, dw, dw_bound, ReductionFactor(pixels))) ||
      tally.Check(CompareWithinBound(
          bs, "db", ConstTensorView(db_ref.data(), db_dims), ConstTensorView(db.data(), db_dims),
          ConstTensorView(db_bound.data(), db_dims), ReductionFactor(pixels)));
  return stop ? GridStep::kStop : GridStep::kNext;
}

// Average pooling on normals within the bound; max pooling forward is exact (it selects).
GridStep PoolNormal(const PoolCase& c, const std::string& cs, Rng& rng, const std::string& backend,
                    Tally& tally) {
  const Dims y_dims = pool2d_output_dims(c.x, c.params);
  Tensor x(c.x), dy(y_dims);
  FillNormal(Span(x), rng);
  FillNormal(Span(dy), rng);
  const bool max = c.params.mode == PoolMode::kMax;
  const int64_t area = c.params.global ? c.x[1] * c.x[2] : c.params.window_h * c.params.window_w;
  Tensor expected(y_dims), y(y_dims, kBackendFill), y_bound(y_dims);
  pool2d_forward(c.params, x, expected, "reference");
  if (auto why = RefusalOf([&] { pool2d_forward(c.params, x, y, backend); })) {
    tally.Refused(cs, *why);
    return GridStep::kNext;
  }
  tally.Ran();
  Tensor dx_ref(c.x), dx(c.x, kBackendFill), dx_bound(c.x);
  pool2d_backward(c.params, x, dy, dx_ref, "reference");
  if (auto why = RefusalOf([&] { pool2d_backward(c.params, x, dy, dx, backend); })) {
    tally.Refused(cs + " backward", *why);
    return GridStep::kNext;
  }
  // Max backward routes each dy to one element, but an element that wins several overlapping
  // windows sums their dy: a reduction of up to `area` terms, bounded like the others.
  pool2d_backward(c.params, x, Abs(dy), dx_bound, "reference");
  bool stop = false;
  if (max) {
    stop = tally.Check(CompareTensors(cs, "y", expected, y)) ||
           tally.Check(CompareWithinBound(cs + " backward", "dx", dx_ref, dx, dx_bound,
                                          ReductionFactor(area)));
  } else {
    pool2d_forward(c.params, Abs(x), y_bound, "reference");
    stop =
        tally.Check(CompareWithinBound(cs, "y", expected, y, y_bound, ReductionFactor(area + 1))) ||
        tally.Check(CompareWithinBound(cs + " backward", "dx", dx_ref, dx, dx_bound,
                                       ReductionFactor(area + 1)));
  }
  return stop ? GridStep::kStop : GridStep::kNext;
}

}  // namespace

void RandomConvExact(const std::string& backend, int64_t count_divisor) {
  const RandomRun run = GetRandomRun();
  ZeroCount y_zeros, dx_zeros;
  RunGrid(backend, run.Indices(run.cases / count_divisor), [&](int, int64_t index, Tally& tally) {
    const ConvCase c = RandomConvCase(run.seed, index);
    Rng rng(CaseSeedOf(run.seed, static_cast<uint64_t>(index)) ^ 0xda7a);
    const ConvData d = MakeConvData(c, rng);
    const std::string cs = run.Prefix(index) + " conv2d " + c.ToString();
    const GridStep forward = ConvForwardExact(c, index, cs, d, backend, y_zeros, tally);
    if (forward != GridStep::kGoOn) return forward;
    return ConvBackwardExact(c, cs, d, rng, backend, dx_zeros, tally);
  });
  if (run.only < 0) {
    EXPECT_TRUE(y_zeros.NotMostlyZero("conv2d y", 0.5));
    EXPECT_TRUE(dx_zeros.NotMostlyZero("conv2d dx", 0.5));
  }
}

void RandomPoolExact(const std::string& backend, int64_t count_divisor) {
  const RandomRun run = GetRandomRun();
  ZeroCount y_zeros;
  RunGrid(backend, run.Indices(run.cases / count_divisor), [&](int, int64_t index, Tally& tally) {
    const PoolCase c = RandomPoolCase(run.seed, index);
    Rng rng(CaseSeedOf(run.seed, static_cast<uint64_t>(index)) ^ 0x9002);
    const std::string cs = run.Prefix(index) + " pool2d " + c.ToString();
    return PoolExact(c, index, cs, rng, backend, y_zeros, tally);
  });
  if (run.only < 0) EXPECT_TRUE(y_zeros.NotMostlyZero("pool2d y", 0.3));
}

void RandomConvNormal(const std::string& backend, int64_t count_divisor) {
  const RandomRun run = GetRandomRun();
  RunGrid(backend, run.Indices(run.cases / count_divisor), [&](int, int64_t index, Tally& tally) {
    const ConvCase c = RandomConvCase(run.seed, index);
    Rng rng(CaseSeedOf(run.seed, static_cast<uint64_t>(index)) ^ 0x0e11);
    const ConvData d = MakeConvData(c, rng, FillNormals);
    const std::string cs = run.Prefix(index) + " conv2d normals " + c.ToString();
    const GridStep forward = ConvForwardNormal(c, cs, d, backend, tally);
    if (forward != GridStep::kGoOn) return forward;
    return ConvBackwardNormal(c, cs, d, rng, backend, tally);
  });
}

void RandomPoolNormal(const std::string& backend, int64_t count_divisor) {
  const RandomRun run = GetRandomRun();
  RunGrid(backend, run.Indices(run.cases / count_divisor), [&](int, int64_t index, Tally& tally) {
    const PoolCase c = RandomPoolCase(run.seed, index);
    Rng rng(CaseSeedOf(run.seed, static_cast<uint64_t>(index)) ^ 0x0e12);
    return PoolNormal(c, run.Prefix(index) + " pool2d normals " + c.ToString(), rng, backend,
                      tally);
  });
}

}  // namespace convkit::test
