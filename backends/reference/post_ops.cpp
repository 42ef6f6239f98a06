#include "backends/reference/post_ops.hpp"

#include <cmath>

namespace convkit::internal::reference {
namespace {

// min(max(z, lo), hi) by comparisons, so that NaN (for which both are false) passes through.
float clip(float z, float lo, float hi) { return z < lo ? lo : (z > hi ? hi : z); }
double clip(double z, double lo, double hi) { return z < lo ? lo : (z > hi ? hi : z); }

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// z * Phi(z) with Phi through erfc, which keeps its relative accuracy for negative z where
// 1 + erf(z / sqrt(2)) would cancel to 0.
double gelu(double z) { return 0.5 * z * std::erfc(-z / std::sqrt(2.0)); }

}  // namespace

float activate(const PostOps& ops, float z) {
  const double zd = z;
  switch (ops.activation) {
    case Activation::kNone:
      return z;
    case Activation::kRelu:
      return z < 0.0f ? 0.0f : z;
    case Activation::kRelu6:
      return clip(z, 0.0f, 6.0f);
    case Activation::kClip:
      return clip(z, ops.alpha, ops.beta);
    case Activation::kLeakyRelu:  // oneDNN's form: NaN > 0 is false and alpha * NaN is NaN
      return z > 0.0f ? z : ops.alpha * z;
    case Activation::kSigmoid:
      return static_cast<float>(sigmoid(zd));
    case Activation::kTanh:
      return static_cast<float>(std::tanh(zd));
    case Activation::kSilu:
      return static_cast<float>(zd * sigmoid(zd));
    case Activation::kHardSwish:
      return static_cast<float>(zd * clip(zd + 3.0, 0.0, 6.0) / 6.0);
    case Activation::kHardSigmoid:
      return static_cast<float>(clip(double{ops.alpha} * zd + double{ops.beta}, 0.0, 1.0));
    case Activation::kGelu:
      return static_cast<float>(gelu(zd));
  }
  return z;  // unreachable: validation admits only the values above
}

float apply_post_ops(const PostOps& ops, float z, const float* r) {
  const bool after = r != nullptr && ops.residual_after_activation;
  if (r != nullptr && !after) z += *r;
  float y = activate(ops, z);
  if (ops.has_linear()) y = std::fma(ops.scale, y, ops.shift);
  return after ? y + *r : y;
}

}  // namespace convkit::internal::reference
