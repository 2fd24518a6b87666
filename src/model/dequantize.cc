#include "model/dequantize.h"

#include <cstring>

#include "model/fp16.h"
#include "model/quant_blocks.h"

namespace dualblade {

void DequantizeRowF32(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void DequantizeRowF16(const void* src, float* dst, int64_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    dst[i] = Fp16ToFp32(h);
  }
}

void DequantizeRowBF16(const void* src, float* dst, int64_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    dst[i] = Bf16ToFp32(h);
  }
}

void DequantizeRowQ8_0(const void* src, float* dst, int64_t n) {
  DB_CHECK(n % kQK8_0 == 0);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / kQK8_0; ++i) {
    const float d = Fp16ToFp32(b[i].d);
    for (int j = 0; j < kQK8_0; ++j) *dst++ = b[i].qs[j] * d;
  }
}

void DequantizeRowQ4_0(const void* src, float* dst, int64_t n) {
  DB_CHECK(n % kQK4_0 == 0);
  const BlockQ4_0* b = static_cast<const BlockQ4_0*>(src);
  for (int64_t i = 0; i < n / kQK4_0; ++i) {
    const float d = Fp16ToFp32(b[i].d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      dst[j] = ((b[i].qs[j] & 0x0F) - 8) * d;
      dst[j + kQK4_0 / 2] = ((b[i].qs[j] >> 4) - 8) * d;
    }
    dst += kQK4_0;
  }
}

void DequantizeRowQ4_K(const void* src, float* dst, int64_t n) {
  DB_CHECK(n % kQK_K == 0);
  const BlockQ4_K* b = static_cast<const BlockQ4_K*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = Fp16ToFp32(b[i].d);
    const float dmin = Fp16ToFp32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int s = 0; s < 8; s += 2) {  // two sub-blocks share 32 bytes of nibbles
      uint8_t sc, m;
      UnpackScaleMinK4(s, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      UnpackScaleMinK4(s + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *dst++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *dst++ = d2 * (q[l] >> 4) - m2;
      q += 32;
    }
  }
}

void DequantizeRowQ5_K(const void* src, float* dst, int64_t n) {
  DB_CHECK(n % kQK_K == 0);
  const BlockQ5_K* b = static_cast<const BlockQ5_K*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = Fp16ToFp32(b[i].d);
    const float dmin = Fp16ToFp32(b[i].dmin);
    const uint8_t* ql = b[i].qs;
    const uint8_t* qh = b[i].qh;
    uint8_t u1 = 1, u2 = 2;
    for (int s = 0; s < 8; s += 2) {
      uint8_t sc, m;
      UnpackScaleMinK4(s, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      UnpackScaleMinK4(s + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *dst++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *dst++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
      ql += 32;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

void DequantizeRowQ6_K(const void* src, float* dst, int64_t n) {
  DB_CHECK(n % kQK_K == 0);
  const BlockQ6_K* b = static_cast<const BlockQ6_K*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = Fp16ToFp32(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int half = 0; half < 2; ++half) {  // 128 elements each
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        dst[l] = d * sc[is + 0] * q1;
        dst[l + 32] = d * sc[is + 2] * q2;
        dst[l + 64] = d * sc[is + 4] * q3;
        dst[l + 96] = d * sc[is + 6] * q4;
      }
      dst += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void DequantizeRowQ8_K(const void* src, float* dst, int64_t n) {
  DB_CHECK(n % kQK_K == 0);
  const BlockQ8_K* b = static_cast<const BlockQ8_K*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    for (int j = 0; j < kQK_K; ++j) *dst++ = b[i].d * b[i].qs[j];
  }
}

void DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case GgmlType::kF32: return DequantizeRowF32(src, dst, n);
    case GgmlType::kF16: return DequantizeRowF16(src, dst, n);
    case GgmlType::kBF16: return DequantizeRowBF16(src, dst, n);
    case GgmlType::kQ8_0: return DequantizeRowQ8_0(src, dst, n);
    case GgmlType::kQ4_0: return DequantizeRowQ4_0(src, dst, n);
    case GgmlType::kQ4_K: return DequantizeRowQ4_K(src, dst, n);
    case GgmlType::kQ5_K: return DequantizeRowQ5_K(src, dst, n);
    case GgmlType::kQ6_K: return DequantizeRowQ6_K(src, dst, n);
    case GgmlType::kQ8_K: return DequantizeRowQ8_K(src, dst, n);
    default: DB_CHECK_MSG(false, "DequantizeRow: unsupported tensor type");
  }
}

}  // namespace dualblade
