// Block layouts of the quantized tensor types, byte-for-byte those of ggml-common.h: these bytes
// are read straight out of GGUF files. A `d`/`dmin` of type uint16_t is an IEEE half (fp16.h).
// Thread-safety: plain data.
#pragma once

#include <cstdint>

#include "model/ggml_types.h"

namespace dualblade {

// Q4_0: 32 weights = d * (q - 8), q in 0..15. qs[j] holds element j (low nibble) and element
// j + 16 (high nibble).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// Q8_0: 32 weights = d * q, q in -127..127.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q4_K: 256 weights in 8 sub-blocks of 32; weight = d * sc[s] * q - dmin * m[s], q in 0..15.
// The 8 six-bit scales and 8 six-bit mins are packed into 12 bytes (see UnpackScaleMinK4).
// qs: for each 64-element half pair, 32 bytes whose low nibbles are sub-block 2i and high
// nibbles sub-block 2i+1.
inline constexpr int kKScaleSize = 12;
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q5_K: as Q4_K with a fifth bit per weight in qh (bit 2i of qh[l] for sub-block 2i, element l;
// bit 2i+1 for sub-block 2i+1), q in 0..31.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 256 weights in 16 groups of 16; weight = d * scales[g] * (q - 32), q in 0..63 from 4
// low bits in ql and 2 high bits in qh.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// Q8_K: the activation partner of the K-quants: 256 values = d * q (d is a full f32), plus the
// sum of each group of 16 q's (the K-quant dots use them to apply the mins).
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

// Scale and min of sub-block j (0..7) of a Q4_K/Q5_K block (ggml's get_scale_min_k4): bytes
// 0..3 hold the low 6 bits of scales 0..3, bytes 4..7 those of mins 0..3, bytes 8..11 the low
// 4 bits of scales/mins 4..7 whose top 2 bits sit in the top bits of bytes 0..7.
inline void UnpackScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

}  // namespace dualblade
