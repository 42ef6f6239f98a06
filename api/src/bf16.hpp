// bf16 rounding as fpmath = bf16 defines it (DESIGN §4): round to nearest even, NaN stays NaN
// (quieted), infinities and the sign kept. Shared by the reference backend (which defines the
// mode) and the backends that pack weights as bf16.
#pragma once

#include <cstdint>
#include <cstring>

namespace convkit::internal {

// The upper 16 bits of v rounded to nearest even: v's bf16 encoding.
inline uint16_t Bf16Bits(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {  // NaN: keep sign and payload top, set the quiet bit
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  // Adding 0x7FFF plus the lowest kept bit rounds half to even; a carry into the exponent is the
  // correct rounding up (to the next binade, or to infinity past the largest bf16).
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// The float whose encoding is the bf16 bits h followed by 16 zero bits.
inline float Bf16ToFloat(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float v;
  std::memcpy(&v, &bits, sizeof(v));
  return v;
}

// v rounded to the nearest bf16, as a float (exact: bf16 is a prefix of fp32).
inline float RoundToBf16(float v) { return Bf16ToFloat(Bf16Bits(v)); }

}  // namespace convkit::internal
