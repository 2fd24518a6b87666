// Scalar conversions between f32 and the 16-bit float formats, bit-exact with ggml's
// (ggml-impl.h: IEEE half with round-to-nearest-even, as F16C's _cvtss_sh(x, 0) does; bf16 =
// the top half of an f32, rounded to nearest even, NaNs kept quiet).
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <cstring>

namespace dualblade {

inline uint32_t F32Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float F32FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float Fp16ToFp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  if (exp == 0x1F) return F32FromBits(sign | 0x7F800000 | (mant << 13));  // inf / NaN
  if (exp != 0) return F32FromBits(sign | ((exp + 112) << 23) | (mant << 13));
  // Subnormal (or zero): mant * 2^-24, exact in f32.
  const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
  return sign ? -v : v;
}

inline uint16_t Fp32ToFp16(float f) {
  const uint32_t x = F32Bits(f);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t abs = x & 0x7FFFFFFF;
  if (abs > 0x7F800000) return static_cast<uint16_t>(sign | 0x7E00);  // NaN -> quiet NaN
  if (abs >= 0x477FF000) return static_cast<uint16_t>(sign | 0x7C00);  // rounds to >= 65520: inf
  if (abs < 0x38800000) {
    // Result is subnormal or zero: round abs * 2^24 to an integer, nearest even.
    if (abs < 0x33000000) return static_cast<uint16_t>(sign);  // < 2^-25: rounds to 0
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7FFFFF) | 0x800000;
    const uint32_t shift = 126 - e;  // value = m * 2^(e-150); want m * 2^(e-150+24)
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;
    return static_cast<uint16_t>(sign | q);
  }
  // Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even.
  uint32_t r = abs - 0x38000000;  // exponent 127 -> 15
  r += 0x0FFF + ((r >> 13) & 1);
  return static_cast<uint16_t>(sign | (r >> 13));
}

inline float Bf16ToFp32(uint16_t h) { return F32FromBits(static_cast<uint32_t>(h) << 16); }

inline uint16_t Fp32ToBf16(float f) {
  const uint32_t u = F32Bits(f);
  if ((u & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((u >> 16) | 64);  // quiet NaN
  return static_cast<uint16_t>((u + (0x7FFF + ((u >> 16) & 1))) >> 16);
}

}  // namespace dualblade
