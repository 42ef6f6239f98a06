// The vector post-ops of a forward convolution (DESIGN §3-§4), shared by every store path of the
// plain convolution (StoreTile, Winograd's output transform, the depthwise kernels) and of the
// transposed one: the residual before or after the activation, the activation itself and the
// linear map after it.
//
// Accuracy (checked against the reference over a dense sweep in
// tests/equivalence/edge_values_test.cpp (ActivationsOverADenseSweep), and over every float on
// AVX3 and AVX2 while developing): relu, relu6, clip, leaky_relu and hardsigmoid round as the
// reference does; hardswish, sigmoid, silu, tanh and gelu are within 2 ulp (gelu 3 on 16-lane
// AVX3, GeluTableF), with float exponentials (SigmoidF, SiluF, TanhF, GeluF); sigmoid and silu
// vectors with a NaN lane, silu vectors with a lane below -80, and gelu on targets without double
// vectors, take the double path (Highway's Exp, 1 ulp of double), rounded once as the reference
// does, so they stay within 1 ulp of it. NaN gives NaN: every clamp is ClampKeepNaN (compares false
// for NaN, or x86's min/max with the value second), never a plain Min/Max (whose NaN operand order
// differs across targets).
//
// Included once per target through foreach_target.h: toggle guard, not #pragma once.
#if defined(CONVKIT_HIGHWAY_POST_OPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CONVKIT_HIGHWAY_POST_OPS_INL_H_
#undef CONVKIT_HIGHWAY_POST_OPS_INL_H_
#else
#define CONVKIT_HIGHWAY_POST_OPS_INL_H_
#endif

#include <cfloat>
#include <cmath>
#include <cstddef>

#include "api/src/problem.hpp"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;

// min(max(v, lo), hi) that passes NaN through, and -0 when lo is 0. x86's min and max return
// their second operand when either is NaN or both are zeros, so with v second they are exactly
// the compares below, in two instructions instead of four; elsewhere (and on SCALAR and EMU128,
// whose Min and Max are not x86's), the compares.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V ClampKeepNaN(D, V v, V lo, V hi) {
#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
  return hn::Min(hi, hn::Max(lo, v));
#else
  return hn::IfThenElse(hn::Lt(v, lo), lo, hn::IfThenElse(hn::Gt(v, hi), hi, v));
#endif
}

// relu, relu6 and clip as the clamp to [*lo, *hi] they are, and no activation as the clamp to
// (-inf, inf), which passes every value (NaN and -0 included). False for the other activations.
inline bool ClampBounds(const PostOps& ops, float* lo, float* hi) {
  switch (ops.activation) {
    case Activation::kNone:
      *lo = -HUGE_VALF;
      *hi = HUGE_VALF;
      return true;
    case Activation::kRelu:
      *lo = 0.0f;
      *hi = HUGE_VALF;
      return true;
    case Activation::kRelu6:
      *lo = 0.0f;
      *hi = 6.0f;
      return true;
    case Activation::kClip:
      *lo = ops.alpha;
      *hi = ops.beta;
      return true;
    default:
      return false;
  }
}

#if HWY_HAVE_FLOAT64 && HWY_TARGET != HWY_SCALAR

// sigmoid(z) = 1 / (1 + e^-z), as e / (1 + e) with e = e^z for negative z so that e^|z| never
// overflows. |z| is capped at 1000, where e^-|z| is 0 in double.
template <class DD, class VD = hn::Vec<DD>>
HWY_INLINE VD SigmoidD(DD dd, VD z) {
  const VD one = hn::Set(dd, 1.0);
  const VD neg_abs = hn::Max(hn::Neg(hn::Abs(z)), hn::Set(dd, -1000.0));
  const VD e = hn::Exp(dd, neg_abs);
  const VD s = hn::Div(one, hn::Add(one, e));
  return hn::IfThenElse(hn::Lt(z, hn::Zero(dd)), hn::Mul(e, s), s);
}

// erfc(t) for t >= 0 with a relative error below 1.2e-7 (Numerical Recipes' erfcc, a Chebyshev
// fit of erfc(t) e^(t^2)): enough for a float result, whose ulp is 6e-8 to 1.2e-7 of its value.
template <class DD, class VD = hn::Vec<DD>>
HWY_INLINE VD ErfcNonNegD(DD dd, VD t) {
  const VD v = hn::Div(hn::Set(dd, 1.0), hn::MulAdd(hn::Set(dd, 0.5), t, hn::Set(dd, 1.0)));
  VD poly = hn::Set(dd, 0.17087277);
  poly = hn::MulAdd(poly, v, hn::Set(dd, -0.82215223));
  poly = hn::MulAdd(poly, v, hn::Set(dd, 1.48851587));
  poly = hn::MulAdd(poly, v, hn::Set(dd, -1.13520398));
  poly = hn::MulAdd(poly, v, hn::Set(dd, 0.27886807));
  poly = hn::MulAdd(poly, v, hn::Set(dd, -0.18628806));
  poly = hn::MulAdd(poly, v, hn::Set(dd, 0.09678418));
  poly = hn::MulAdd(poly, v, hn::Set(dd, 0.37409196));
  poly = hn::MulAdd(poly, v, hn::Set(dd, 1.00002368));
  poly = hn::MulAdd(poly, v, hn::Set(dd, -1.26551223));
  const VD arg = hn::Max(hn::Sub(poly, hn::Mul(t, t)), hn::Set(dd, -1000.0));
  return hn::Mul(v, hn::Exp(dd, arg));
}

// gelu(z) = z / 2 * erfc(-z / sqrt(2)): through erfc, which keeps the relative accuracy for
// negative z where 1 + erf would cancel.
template <class DD, class VD = hn::Vec<DD>>
HWY_INLINE VD GeluD(DD dd, VD z) {
  const VD t = hn::Mul(hn::Abs(z), hn::Set(dd, 0.70710678118654752440));
  const VD tail = ErfcNonNegD(dd, t);  // erfc(|z| / sqrt(2))
  const VD erfc = hn::IfThenElse(hn::Lt(z, hn::Zero(dd)), tail, hn::Sub(hn::Set(dd, 2.0), tail));
  return hn::Mul(hn::Mul(hn::Set(dd, 0.5), z), erfc);
}

// For a in [0, 16], in double: q = a Phi(-a) = a / 2 * erfc(a / sqrt(2)) split as q = *scale *
// e^x with x = -a^2 / 2 rounded to float (returned in *x) for a float Exp: *scale = a / 2 *
// R(a) * e^(x_exact - x), where R(a) = erfc(a / sqrt(2)) e^(a^2 / 2) is a degree-11 polynomial in
// v = 1 / (1 + a / 4) (relative error 5e-10 on [0, 16], least squares on Chebyshev nodes) and
// e^(x_exact - x) = 1 + (x_exact - x) to 1e-15 (|x_exact - x| <= 2^-20; a^2 is exact in double).
template <class DD, class VD = hn::Vec<DD>>
HWY_INLINE void GeluScaleD(DD dd, VD a, VD* scale, VD* x) {
  const VD one = hn::Set(dd, 1.0);
  const VD v = hn::Div(one, hn::MulAdd(a, hn::Set(dd, 0.25), one));
  VD r = hn::Set(dd, -0.029861329476619684);
  r = hn::MulAdd(r, v, hn::Set(dd, 0.21499422673416332));
  r = hn::MulAdd(r, v, hn::Set(dd, -0.61395474982540499));
  r = hn::MulAdd(r, v, hn::Set(dd, 0.86487350156980214));
  r = hn::MulAdd(r, v, hn::Set(dd, -0.70689496866198021));
  r = hn::MulAdd(r, v, hn::Set(dd, 0.54080095825134966));
  r = hn::MulAdd(r, v, hn::Set(dd, -0.064427129206831801));
  r = hn::MulAdd(r, v, hn::Set(dd, 0.21856614931582558));
  r = hn::MulAdd(r, v, hn::Set(dd, 0.17556038814529337));
  r = hn::MulAdd(r, v, hn::Set(dd, 0.20098547894892044));
  r = hn::MulAdd(r, v, hn::Set(dd, 0.19935340226047016));
  r = hn::MulAdd(r, v, hn::Set(dd, 4.0723766272628625e-06));
  const VD x_exact = hn::Mul(hn::Mul(a, a), hn::Set(dd, -0.5));
  const hn::Rebind<float, DD> df;
  *x = hn::PromoteTo(dd, hn::DemoteTo(df, x_exact));
  *scale = hn::Mul(hn::Mul(hn::Mul(a, hn::Set(dd, 0.5)), r), hn::Add(one, hn::Sub(x_exact, *x)));
}

// The activations computed in double, on one half of a float vector.
template <class DD, class VD = hn::Vec<DD>>
HWY_INLINE VD TranscendentalD(DD dd, Activation activation, VD z) {
  switch (activation) {
    case Activation::kSigmoid:
      return SigmoidD(dd, z);
    case Activation::kSilu:
      return hn::Mul(z, SigmoidD(dd, z));
    default:  // kGelu
      return GeluD(dd, z);
  }
}

// sigmoid, silu, gelu of a float vector: both halves promoted to double, computed, rounded
// once. Out of line: each call is some 60 instructions, and inlining it into every tile
// instantiation would only grow the code.
template <class D, class V = hn::Vec<D>>
HWY_NOINLINE V ActivateTranscendental(D d, Activation activation, V v) {
  const hn::Half<D> dh;
  const hn::Rebind<double, decltype(dh)> dd;
  const auto lo = TranscendentalD(dd, activation, hn::PromoteTo(dd, hn::LowerHalf(dh, v)));
  const auto hi = TranscendentalD(dd, activation, hn::PromoteTo(dd, hn::UpperHalf(dh, v)));
  const V y = hn::Combine(d, hn::DemoteTo(dh, hi), hn::DemoteTo(dh, lo));
  return hn::IfThenElse(hn::IsNaN(v), v, y);  // Exp and Tanh do not promise NaN out
}

#else  // no double vectors, or one lane: lane by lane, as the reference computes them

template <class D, class V = hn::Vec<D>>
HWY_NOINLINE V ActivateTranscendental(D d, Activation activation, V v) {
  HWY_ALIGN float lanes[hn::MaxLanes(d)];
  hn::Store(v, d, lanes);
  for (size_t i = 0; i < hn::Lanes(d); ++i) {
    const double z = lanes[i];
    const double sigmoid = 1.0 / (1.0 + std::exp(-z));
    double y = 0.0;
    switch (activation) {
      case Activation::kSigmoid:
        y = sigmoid;
        break;
      case Activation::kSilu:
        y = z * sigmoid;
        break;
      default:  // kGelu
        y = 0.5 * z * std::erfc(-z / std::sqrt(2.0));
        break;
    }
    lanes[i] = static_cast<float>(y);
  }
  return hn::Load(d, lanes);
}

#endif  // HWY_HAVE_FLOAT64 && HWY_TARGET != HWY_SCALAR

#if HWY_ARCH_X86 && (HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL)
// e^r - 1 for |r| <= ln 2 / 2 as r + r^2 (c0 + c1 r + c2 r^2 + c3 r^3 + c4 r^4): coefficients
// fitted to minimise the relative error of e^r over that range (tools/fit_exp_poly.py, a
// Lawson-weighted least-squares fit; 3.8e-9 with the float coefficients, 0.06 ulp; its test
// tests/python/test_fit_exp_poly.py checks the constants below), against Highway's ExpPoly: 6
// instructions instead of 8, which the float paths' exponential spends most of its time on.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V ExpMinus1Degree6(D d, V r) {
  const V r2 = hn::Mul(r, r);
  const V lo = hn::MulAdd(r, hn::Set(d, 0.1666652113199234f), hn::Set(d, 0.4999999403953552f));
  const V hi = hn::MulAdd(r, hn::Set(d, 0.008368710055947304f), hn::Set(d, 0.04166838899254799f));
  const V q = hn::MulAdd(r2, hn::MulAdd(r2, hn::Set(d, 0.001381461275741458f), hi), lo);
  return hn::MulAdd(q, r2, r);
}
#endif

// e^(x + c) for x <= 80 (SigmoidF, SiluF, TanhF and GeluF pass no more) and |c| below 2^-16 (a
// low part of x kept apart: GeluTableF's -a^2 / 2), as Highway's Exp computes e^x (n = round(x /
// ln 2), x - n ln 2 in two steps, exact for |n| < 2^8, a polynomial) with c added to the reduced
// argument, and 2^n applied by AVX-512's vscalefps: one instruction for the conversions, shifts
// and two multiplies of Highway's reconstruction, and exact for every n (0 or a denormal below
// 2^-126, as Exp), the polynomial ExpMinus1Degree6. Other targets: hn::Exp of x + c.
template <bool kPlus, class D, class V = hn::Vec<D>>
HWY_INLINE V ExpUpTo80Plus(D d, V x, V c) {
#if HWY_ARCH_X86 && (HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL)
  if constexpr (hn::MaxLanes(D()) == 16) {
    x = hn::Max(x, hn::Set(d, -150.0f));  // e^-150 is 0 in float; keeps n and x - n ln 2 finite
    const V n = hn::Round(hn::Mul(x, hn::Set(d, 1.44269504088896341f)));
    V r = hn::MulAdd(n, hn::Set(d, -0.693145751953125f), x);  // ln 2's high 16 bits: exact
    r = hn::MulAdd(n, hn::Set(d, -1.428606765330187045e-6f), r);
    if constexpr (kPlus) r = hn::Add(r, c);
    const V p = hn::Add(ExpMinus1Degree6(d, r), hn::Set(d, 1.0f));
    return V{_mm512_scalef_ps(p.raw, n.raw)};
  }
#endif
  return hn::Exp(d, kPlus ? hn::Add(x, c) : x);
}

template <class D, class V = hn::Vec<D>>
HWY_INLINE V ExpUpTo80(D d, V x) {
  return ExpUpTo80Plus<false>(d, x, x);
}

// sigmoid(z) in float (ActivateTranscendentalF says where): e = e^-|z| (Exp, 1 ulp), then one
// division n / (1 + e), the numerator chosen by z's sign (1 or e). Within 2 ulp of the correctly
// rounded value (every float checked with convkit-activation-ulps): the errors of e, of 1 + e and
// of the division add, and e's partly cancels in e / (1 + e).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V SigmoidF(D d, V z) {
  const V one = hn::Set(d, 1.0f);
  const V e = ExpUpTo80(d, hn::Neg(hn::Abs(z)));
  return hn::Div(hn::IfThenElse(hn::Lt(z, hn::Zero(d)), e, one), hn::Add(one, e));
}

// silu(z) = z / (1 + e^-z) in float for z >= -80 (ActivateTranscendentalF says where), where e^-z
// cannot overflow: one exponential, one addition, one division, and no select on z's sign as
// sigmoid's form needs (a sixth fewer instructions per vector than z times that form: 2.6 -> 2.2
// ns per vector on AVX3). Within 2 ulp of the correctly rounded value (every float checked with
// convkit-activation-ulps); from z = 17 on, 1 + e^-z rounds to 1 and silu is z.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V SiluF(D d, V z) {
  return hn::Div(z, hn::Add(hn::Set(d, 1.0f), ExpUpTo80(d, hn::Neg(z))));
}

// tanh(z) in float, within 2 ulp, computed on a = |z| and given z's sign (so -0 stays -0):
// a + a s P(s) (s = a^2) below 0.55, where the odd series converges fast (P: a degree-4 fit of
// (tanh(a) / a - 1) / s, 0.05 ulp); above, (1 - e) / (1 + e) with e = e^-2a <= 0.33, which
// neither cancels nor overflows (e is 0 from a = 52 on, giving 1). NaN stays NaN.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V TanhF(D d, V z) {
  const V a = hn::Abs(z);
  const V s = hn::Mul(a, a);
  V p = hn::Set(d, -6.272607483e-03f);
  p = hn::MulAdd(p, s, hn::Set(d, 2.107025310e-02f));
  p = hn::MulAdd(p, s, hn::Set(d, -5.385186523e-02f));
  p = hn::MulAdd(p, s, hn::Set(d, 1.333258003e-01f));
  p = hn::MulAdd(p, s, hn::Set(d, -3.333331645e-01f));
  const V series = hn::MulAdd(hn::Mul(a, s), p, a);
  const V one = hn::Set(d, 1.0f);
  const V e = ExpUpTo80(d, hn::Mul(a, hn::Set(d, -2.0f)));
  const V quotient = hn::Div(hn::Sub(one, e), hn::Add(one, e));
  const V y = hn::CopySign(hn::IfThenElse(hn::Lt(a, hn::Set(d, 0.55f)), series, quotient), z);
  return hn::IfThenElse(hn::IsNaN(z), z, y);
}

#if HWY_HAVE_FLOAT64 && HWY_TARGET != HWY_SCALAR

// gelu(z) within 2 ulp (exhaustive check on AVX3): q = a Phi(-a) with a = min(|z|, 16) as
// GeluScaleD's double scale, rounded once, times a float e^x (a denormal from a = 13.2 on, 0 from
// 14.5, as gelu rounds); then gelu(z) = -q below zero and z - q = z Phi(z) above, where q <= z / 2
// cannot cancel (past z = 8, q is below half an ulp of z). Half the double path's cost: the
// exponential, most of the work, is in float. (A float-only R, polynomial or rational, measured
// 3.5 ulp alone and 7 ulp for gelu, exhaustively.) NaN stays NaN.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V GeluF(D d, V z) {
  const hn::Half<D> dh;
  const hn::Rebind<double, decltype(dh)> dd;
  const V a = hn::Min(hn::Abs(z), hn::Set(d, 16.0f));
  hn::Vec<decltype(dd)> scale_lo, x_lo, scale_hi, x_hi;
  GeluScaleD(dd, hn::PromoteTo(dd, hn::LowerHalf(dh, a)), &scale_lo, &x_lo);
  GeluScaleD(dd, hn::PromoteTo(dd, hn::UpperHalf(dh, a)), &scale_hi, &x_hi);
  const V scale = hn::Combine(d, hn::DemoteTo(dh, scale_hi), hn::DemoteTo(dh, scale_lo));
  const V x = hn::Combine(d, hn::DemoteTo(dh, x_hi), hn::DemoteTo(dh, x_lo));
  const V q = hn::Mul(scale, ExpUpTo80(d, x));
  const V y = hn::IfThenElse(hn::Lt(z, hn::Zero(d)), hn::Neg(q), hn::Sub(z, q));
  // NaN, and -inf, where the reference's z / 2 * erfc(-z / sqrt(2)) is -inf * 0: z * 0 is NaN.
  return hn::IfThenElse(hn::Ge(z, hn::Set(d, -FLT_MAX)), y, hn::Mul(z, hn::Zero(d)));
}

#endif  // HWY_HAVE_FLOAT64 && HWY_TARGET != HWY_SCALAR

#if HWY_ARCH_X86 && (HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL)

// S(a) = Phi(-a) e^(a^2 / 2) on [k, k + 1), k = 0 ... 15: a degree-7 polynomial in u = a - k - 1/2
// per interval (rows: the constant term as a float pair, then the terms in u to u^7), fitted to
// 40-digit values on Chebyshev nodes with the constant and linear terms fixed at their float
// values, the rest refitted (relative error 3.2e-8 over [0, 16]). S is entire and slowly varying:
// unit intervals need no more than degree 7. `python3 tools/fit_gelu_table.py` prints it.
alignas(64) static constexpr float kGeluTable[9][16] = {
    {0.3496188223361969f, 0.20578067004680634f, 0.14133132994174957f, 0.10634515434503555f,
     0.08480339497327805f, 0.07034269720315933f, 0.06001567468047142f, 0.052293095737695694f,
     0.04631004482507706f, 0.04154329001903534f, 0.03765885904431343f, 0.034434057772159576f,
     0.03171492740511894f, 0.029391732066869736f, 0.02738422527909279f, 0.02563239075243473f},
    {2.792331477152743e-09f, -3.8927447931769166e-09f, 1.3387027042455202e-09f,
     -7.276185209903474e-10f, -2.868838278047292e-09f, -3.1788722765213606e-09f,
     6.624541470934275e-10f, 1.3804168919051563e-09f, -1.7442001176704025e-09f,
     -1.5173141632018883e-09f, -3.2538075012134016e-10f, 8.184581901105048e-10f,
     -1.8353046860042355e-09f, -4.3734060817257614e-10f, -8.765656950293632e-11f,
     6.175076561198978e-10f},
    {-0.22413289546966553f, -0.09027127921581268f, -0.04561395198106766f, -0.0267342422157526f,
     -0.017327016219496727f, -0.012057463638484478f, -0.008840390481054783f, -0.006744051817804575f,
     -0.005306913983076811f, -0.0042810398153960705f, -0.0035242638550698757f,
     -0.0029506066348403692f, -0.0025057108141481876f, -0.002153903478756547f,
     -0.00187101517803967f, -0.0016402141191065311f},
    {0.11877746134996414f, 0.03518697991967201f, 0.013648238964378834f, 0.006387654226273298f,
     0.0034159107599407434f, 0.0020133231300860643f, 0.0012765680439770222f, 0.00085635349387303f,
     0.0006006361218169332f, 0.00043670597369782627f, 0.0003270441375207156f,
     0.00025104128872044384f, 0.00019677041564136744f, 0.00015701784286648035f,
     0.00012725293345283717f, 0.00010453588765813038f},
    {-0.054914165288209915f, -0.012497014366090298f, -0.0038311295211315155f,
     -0.0014591647777706385f, -0.0006517993751913309f, -0.000328053196426481f,
     -0.0001809041277738288f, -0.00010713831579778343f, -6.717456562910229e-05f,
     -4.4106596760684624e-05f, -3.010009095305577e-05f, -2.1209971237112768e-05f,
     -1.53593355207704e-05f, -1.1385670404706616e-05f, -8.61459739098791e-06f,
     -6.637123533437261e-06f},
    {0.02280411683022976f, 0.004108201712369919f, 0.0010173420887440443f, 0.0003201118961442262f,
     0.00012068649812135845f, 5.224310007179156e-05f, 2.51795572694391e-05f,
     1.3212701560405549e-05f, 7.424766408803407e-06f, 4.4130138121545315e-06f,
     2.7481241886562202e-06f, 1.7798863609641558e-06f, 1.1920217275473988e-06f,
     8.216677542804973e-07f, 5.807564775750507e-07f, 4.196008660528605e-07f},
    {-0.008701479062438011f, -0.0012658399064093828f, -0.00025739218108356f, -6.76405179547146e-05f,
     -2.1784486307296902e-05f, -8.204122423194349e-06f, -3.4143974971811986e-06f,
     -1.574896373313095e-06f, -7.736210250186559e-07f, -4.670814917062671e-07f,
     -2.493484601018281e-07f, -1.525653914313807e-07f, -9.780105614254353e-08f,
     -7.149294134478623e-08f, -4.760317295904315e-08f, -1.8494970888127682e-08f},
    {0.0032439420465379953f, 0.00038219697307795286f, 6.399096309905872e-05f,
     1.4121466847427655e-05f, 3.869202828354901e-06f, 1.2572322702908423e-06f,
     4.679214100633544e-07f, 1.9430929398822627e-07f, 8.824589770028979e-08f,
     4.316320456609901e-08f, 2.2466235094498188e-08f, 1.2327315168647601e-08f,
     7.07699898683245e-09f, 4.2250651866027056e-09f, 2.6100444028287484e-09f,
     1.6614934983394392e-09f},
    {-0.0010509109124541283f, -0.00010512262815609574f, -1.4813629604759626e-05f,
     -2.9517439088522224e-06f, -5.580020001616504e-07f, -6.009746300605912e-08f,
     -1.2668198223764193e-07f, -9.027576908238188e-08f, -8.812609308961328e-08f,
     5.7365060257552614e-08f, -1.1549765588370065e-09f, 7.701943083304741e-09f,
     1.154397466507362e-08f, 2.562807033257286e-08f, 1.7722124212582457e-08f,
     -1.655932635458157e-08f},
};

// gelu(z) = z Phi(z) in float alone, within 3.3 ulp over every float (convkit-activation-ulps),
// for 16-lane vectors: with a = |z| (capped at 15.5, past which q is 0 in float), q = a Phi(-a) =
// a S(a) e^(-a^2 / 2), S from kGeluTable (one lane permute per coefficient) and the exponential
// of a^2 / 2 kept as a float pair (a^2 rounded, and its rounding error by a fused multiply-add,
// added to the reduced argument: from a = 8 on that error is worth tens of ulp); then gelu(z) =
// -q below zero and z - q above (q <= z / 2: no cancellation). Twice as fast as GeluF, whose
// scale is computed in double (6 ns per vector against 11.5 on Zen 5); NaN and -inf as GeluF.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V GeluTableF(D d, V z) {
  const hn::RebindToSigned<D> di;
  const V a = hn::Min(hn::Abs(z), hn::Set(d, 15.5f));  // NaN gives 15.5: an index in range
  const V k = hn::Floor(a);
  const V u = hn::Sub(hn::Sub(a, k), hn::Set(d, 0.5f));
  const auto index = hn::IndicesFromVec(d, hn::ConvertTo(di, k));
  const auto term = [&](int row) {
    return hn::TableLookupLanes(hn::Load(d, kGeluTable[row]), index);
  };
  V s = term(8);
  for (int row = 7; row >= 1; --row) s = hn::MulAdd(s, u, term(row));
  s = hn::Add(s, term(0));
  const V aa = hn::Mul(a, a);
  const V aa_error = hn::MulSub(a, a, aa);  // a^2 - aa, exact
  const V half = hn::Set(d, -0.5f);
  const V q =
      hn::Mul(hn::Mul(a, s), ExpUpTo80Plus<true>(d, hn::Mul(aa, half), hn::Mul(aa_error, half)));
  const V y = hn::IfThenElse(hn::Lt(z, hn::Zero(d)), hn::Neg(q), hn::Sub(z, q));
  return hn::IfThenElse(hn::Ge(z, hn::Set(d, -FLT_MAX)), y, hn::Mul(z, hn::Zero(d)));
}

#endif  // AVX3

// sigmoid, silu, tanh or gelu of a vector, with float exponentials; a vector with a NaN lane (the
// float path's clamp of the exponent's argument would turn sigmoid(NaN) into 1), or for silu a lane
// below -80, takes the double path (rare), as gelu does on targets without double vectors.
// Sigmoid's float path holds everywhere else (2 ulp over every float): above 80, 1 + e^-z rounds to
// 1; below -80 the result is e^z, whose denormals (below -87.3) Exp rounds once; a text detector's
// sigmoid head, most of its logits below -80 on background, ran 6x dearer through the double path.
// silu's e^-z overflows below -88.7 (and z e^z, the other form, multiplies a rounded denormal by z:
// 52 ulp at -103).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V ActivateTranscendentalF(D d, Activation activation, V z) {
  if (activation == Activation::kTanh) return TanhF(d, z);
  if (activation == Activation::kGelu) {
#if HWY_ARCH_X86 && (HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL)
    if constexpr (hn::MaxLanes(D()) == 16) return GeluTableF(d, z);
#endif
#if HWY_HAVE_FLOAT64 && HWY_TARGET != HWY_SCALAR
    return GeluF(d, z);
#else
    return ActivateTranscendental(d, activation, z);
#endif
  }
  const float lowest = activation == Activation::kSilu ? -80.0f : -FLT_MAX;
  if (!hn::AllFalse(d, hn::Not(hn::Ge(z, hn::Set(d, lowest))))) {  // below lowest, or NaN
    return ActivateTranscendental(d, activation, z);
  }
  return activation == Activation::kSilu ? SiluF(d, z) : SigmoidF(d, z);
}

// hardswish(z) = z * clip(z + 3, 0, 6) / 6, within 2 ulp; z itself from 3 on, where the product
// could overflow while the reference's double gives z exactly.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V HardSwishF(D d, V z) {
  const V t = ClampKeepNaN(d, hn::Add(z, hn::Set(d, 3.0f)), hn::Zero(d), hn::Set(d, 6.0f));
  const V y = hn::Div(hn::Mul(z, t), hn::Set(d, 6.0f));
  return hn::IfThenElse(hn::Ge(z, hn::Set(d, 3.0f)), z, y);
}

// One target's view of PostOps: the parameters broadcast once per kernel call (or tile), then
// Apply() per vector. The activation is a switch on a loop-invariant value, not a per-lane branch.
template <class D>
class VecPostOps {
 public:
  using V = hn::Vec<D>;

  VecPostOps(D d, const PostOps& ops)
      : activation_(ops.activation),
        after_(ops.residual_after_activation),
        linear_(ops.has_linear()),
        alpha_(hn::Set(d, ops.alpha)),
        beta_(hn::Set(d, ops.beta)),
        scale_(hn::Set(d, ops.scale)),
        shift_(hn::Set(d, ops.shift)) {
    float lo = 0.0f, hi = 0.0f;
    if (ClampBounds(ops, &lo, &hi)) {
      alpha_ = hn::Set(d, lo);
      beta_ = hn::Set(d, hi);
    }
  }

  // Whether the activation or the linear map after it acts on each value.
  bool has_elementwise() const { return activation_ != Activation::kNone || linear_; }

  // The activation of z.
  HWY_INLINE V Activate(D d, V z) const {
    switch (activation_) {
      case Activation::kNone:
        return z;
      case Activation::kRelu:
      case Activation::kRelu6:
      case Activation::kClip:
        return ClampKeepNaN(d, z, alpha_, beta_);
      case Activation::kLeakyRelu:
        return hn::IfThenElse(hn::Gt(z, hn::Zero(d)), z, hn::Mul(alpha_, z));
      case Activation::kHardSigmoid:  // one rounding of alpha * z + beta, as in double
        return ClampKeepNaN(d, hn::MulAdd(alpha_, z, beta_), hn::Zero(d), hn::Set(d, 1.0f));
      case Activation::kHardSwish:
        return HardSwishF(d, z);
      default:  // sigmoid, tanh, silu, gelu
        return ActivateTranscendentalF(d, activation_, z);
    }
  }

  // The activation of z, then the linear map after it: one rounding, as the reference's fma, on
  // the targets with FMA (AVX2, AVX-512); the baseline targets of x86-64 without FMA, which no
  // CPU that runs convkit's AVX2 code dispatches to, round the product and the sum.
  HWY_INLINE V ActivateLinear(D d, V z) const {
    const V v = Activate(d, z);
    return linear_ ? hn::MulAdd(scale_, v, shift_) : v;
  }

  // z is the sum plus bias; r the residual's vector (ignored when !has_r).
  HWY_INLINE V Apply(D d, V z, V r, bool has_r) const {
    if (has_r && !after_) z = hn::Add(z, r);
    z = ActivateLinear(d, z);
    if (has_r && after_) z = hn::Add(z, r);
    return z;
  }

 private:
  Activation activation_;
  bool after_;
  bool linear_;
  V alpha_;  // clip's lo (0 for relu and relu6), leaky_relu's slope, hardsigmoid's alpha
  V beta_;   // clip's hi (+inf for relu, 6 for relu6), hardsigmoid's beta
  V scale_;  // the linear map after the activation
  V shift_;
};

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#endif  // CONVKIT_HIGHWAY_POST_OPS_INL_H_ toggle
