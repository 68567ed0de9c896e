// GGUF dequantisation to fp32: plain types (F32, F16, BF16, F64), the 32-element block formats
// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) and the 256-element K-quants (Q2_K..Q6_K, Q8_K). Block layouts follow
// the GGUF/ggml spec. Each value is computed with the same fp32 operations in the same order as the
// `gguf` Python package, so results are bit-identical to it (on targets without implicit FMA).
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "io/gguf.h"

namespace jet::gguf {

namespace {

constexpr int QK = 32;    // block size of the Q*_0/Q*_1 formats
constexpr int QK_K = 256;  // super-block size of the K-quants

float half_bits_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    float v = std::ldexp(float(man), -24);  // zero or subnormal: exact in fp32
    std::memcpy(&bits, &v, 4);
    bits |= sign;
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);  // inf / NaN (payload kept)
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

struct HalfTable {
  float v[65536];
  HalfTable() {
    for (uint32_t i = 0; i < 65536; ++i) v[i] = half_bits_to_float(uint16_t(i));
  }
};

const float* half_table() {
  static const HalfTable t;
  return t.v;
}

inline uint16_t u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// One block of each format: src points at the block, y receives block_elems values.
struct Blocks {
  const float* h = half_table();
  float f16(const uint8_t* p) const { return h[u16(p)]; }

  void q4_0(const uint8_t* b, float* y) const {
    const float d = f16(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < QK / 2; ++j) {
      y[j] = d * float(int(qs[j] & 0xf) - 8);
      y[j + QK / 2] = d * float(int(qs[j] >> 4) - 8);
    }
  }
  void q4_1(const uint8_t* b, float* y) const {
    const float d = f16(b), m = f16(b + 2);
    const uint8_t* qs = b + 4;
    for (int j = 0; j < QK / 2; ++j) {
      y[j] = d * float(qs[j] & 0xf) + m;
      y[j + QK / 2] = d * float(qs[j] >> 4) + m;
    }
  }
  void q5_0(const uint8_t* b, float* y) const {
    const float d = f16(b);
    uint32_t qh;
    std::memcpy(&qh, b + 2, 4);
    const uint8_t* qs = b + 6;
    for (int j = 0; j < QK / 2; ++j) {
      int lo = (qs[j] & 0xf) | (((qh >> j) & 1) << 4);
      int hi = (qs[j] >> 4) | (((qh >> (j + QK / 2)) & 1) << 4);
      y[j] = d * float(lo - 16);
      y[j + QK / 2] = d * float(hi - 16);
    }
  }
  void q5_1(const uint8_t* b, float* y) const {
    const float d = f16(b), m = f16(b + 2);
    uint32_t qh;
    std::memcpy(&qh, b + 4, 4);
    const uint8_t* qs = b + 8;
    for (int j = 0; j < QK / 2; ++j) {
      int lo = (qs[j] & 0xf) | (((qh >> j) & 1) << 4);
      int hi = (qs[j] >> 4) | (((qh >> (j + QK / 2)) & 1) << 4);
      y[j] = d * float(lo) + m;
      y[j + QK / 2] = d * float(hi) + m;
    }
  }
  void q8_0(const uint8_t* b, float* y) const {
    const float d = f16(b);
    const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
    for (int j = 0; j < QK; ++j) y[j] = float(qs[j]) * d;
  }

  // Q2_K: scales[16] (low nibble scale, high nibble min), qs[64] (2 bits), d, dmin.
  void q2_k(const uint8_t* b, float* y) const {
    const uint8_t* scales = b;
    const uint8_t* qs = b + 16;
    const float d = f16(b + 80), dmin = f16(b + 82);
    for (int half = 0; half < 2; ++half) {
      for (int s = 0; s < 4; ++s) {
        for (int g = 0; g < 2; ++g) {  // two sub-blocks of 16 per 32 values
          const int sub = half * 8 + s * 2 + g;
          const float dl = d * float(scales[sub] & 0xf), ml = dmin * float(scales[sub] >> 4);
          const uint8_t* q = qs + half * 32 + g * 16;
          float* out = y + sub * 16;
          for (int l = 0; l < 16; ++l) out[l] = dl * float((q[l] >> (2 * s)) & 3) - ml;
        }
      }
    }
  }

  // Q3_K: hmask[32] (high bit, set = no offset), qs[64] (low 2 bits), scales[12] (16 x 6 bits), d.
  void q3_k(const uint8_t* b, float* y) const {
    const uint8_t* hmask = b;
    const uint8_t* qs = b + 32;
    const uint8_t* sc = b + 96;
    const float d = f16(b + 108);
    float dl[16];
    for (int i = 0; i < 16; ++i) {
      int lo = (i < 8 ? sc[i] : sc[i - 8] >> 4) & 0xf;
      int hi = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
      dl[i] = d * float(int8_t(uint8_t(lo | (hi << 4))) - 32);
    }
    for (int half = 0; half < 2; ++half) {
      for (int s = 0; s < 4; ++s) {
        const int base = half * 128 + s * 32;  // value index of this 32-run
        const int hbit = base / 32;
        for (int l = 0; l < 32; ++l) {
          int q = (qs[half * 32 + l] >> (2 * s)) & 3;
          if (!((hmask[l] >> hbit) & 1)) q -= 4;
          y[base + l] = dl[(base + l) / 16] * float(q);
        }
      }
    }
  }

  // Scale/min pairs of Q4_K and Q5_K: 8 x (6-bit scale, 6-bit min) packed into 12 bytes.
  static void scale_min_k4(const uint8_t* s, uint8_t* sc, uint8_t* mn) {
    for (int i = 0; i < 4; ++i) {
      sc[i] = s[i] & 0x3f;
      mn[i] = s[i + 4] & 0x3f;
      sc[i + 4] = (s[i + 8] & 0x0f) | ((s[i] >> 2) & 0x30);
      mn[i + 4] = (s[i + 8] >> 4) | ((s[i + 4] >> 2) & 0x30);
    }
  }

  // Q4_K: d, dmin, scales[12], qs[128]: sub-block k (32 values) = nibble k%2 of bytes 32*(k/2)...
  void q4_k(const uint8_t* b, float* y) const {
    const float d = f16(b), dmin = f16(b + 2);
    uint8_t sc[8], mn[8];
    scale_min_k4(b + 4, sc, mn);
    const uint8_t* qs = b + 16;
    for (int k = 0; k < 8; ++k) {
      const float dl = d * float(sc[k]), ml = dmin * float(mn[k]);
      const uint8_t* q = qs + (k / 2) * 32;
      const int shift = 4 * (k % 2);
      for (int l = 0; l < 32; ++l) y[k * 32 + l] = dl * float((q[l] >> shift) & 0xf) - ml;
    }
  }

  // Q5_K: as Q4_K plus qh[32], whose bit k is the fifth bit of sub-block k.
  void q5_k(const uint8_t* b, float* y) const {
    const float d = f16(b), dmin = f16(b + 2);
    uint8_t sc[8], mn[8];
    scale_min_k4(b + 4, sc, mn);
    const uint8_t* qh = b + 16;
    const uint8_t* qs = b + 48;
    for (int k = 0; k < 8; ++k) {
      const float dl = d * float(sc[k]), ml = dmin * float(mn[k]);
      const uint8_t* q = qs + (k / 2) * 32;
      const int shift = 4 * (k % 2);
      for (int l = 0; l < 32; ++l) {
        int v = ((q[l] >> shift) & 0xf) | (((qh[l] >> k) & 1) << 4);
        y[k * 32 + l] = dl * float(v) - ml;
      }
    }
  }

  // Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d.
  void q6_k(const uint8_t* b, float* y) const {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    const float d = f16(b + 208);
    float dl[16];
    for (int i = 0; i < 16; ++i) dl[i] = d * float(sc[i]);
    for (int half = 0; half < 2; ++half) {
      for (int r = 0; r < 4; ++r) {  // 32-runs within the half: low/high nibble of ql[0:32]/ql[32:64]
        const uint8_t* lo = ql + half * 64 + (r % 2) * 32;
        const int nib = 4 * (r / 2);
        const int base = half * 128 + r * 32;
        for (int l = 0; l < 32; ++l) {
          int q = ((lo[l] >> nib) & 0xf) | (((qh[half * 32 + l] >> (2 * r)) & 3) << 4);
          y[base + l] = dl[(base + l) / 16] * float(q - 32);
        }
      }
    }
  }

  // Q8_K: d (fp32), qs[256] (int8), bsums[16] (unused here).
  void q8_k(const uint8_t* b, float* y) const {
    float d;
    std::memcpy(&d, b, 4);
    const int8_t* qs = reinterpret_cast<const int8_t*>(b + 4);
    for (int j = 0; j < QK_K; ++j) y[j] = d * float(qs[j]);
  }
};

template <void (Blocks::*F)(const uint8_t*, float*) const>
void run_blocks(const uint8_t* src, float* dst, int64_t n_blocks, int64_t bytes, int64_t elems) {
  Blocks k;
  for (int64_t i = 0; i < n_blocks; ++i) (k.*F)(src + i * bytes, dst + i * elems);
}

}  // namespace

void dequantize_row(Type t, const uint8_t* src, float* dst, int64_t n) {
  JET_CHECK(type_supported(t), "cannot dequantise type {} ({})", type_name(t), uint32_t(t));
  const int64_t be = type_block_elems(t), bb = type_block_bytes(t);
  JET_CHECK(n >= 0 && n % be == 0, "dequantise {}: {} elements is not a multiple of the block size {}",
            type_name(t), n, be);
  const int64_t nb = n / be;
  if (n == 0) return;  // dst/src may be null for an empty tensor
  switch (t) {
    case Type::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case Type::F16: {
      const float* h = half_table();
      for (int64_t i = 0; i < n; ++i) dst[i] = h[u16(src + 2 * i)];
      return;
    }
    case Type::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint32_t bits = uint32_t(u16(src + 2 * i)) << 16;
        std::memcpy(dst + i, &bits, 4);
      }
      return;
    case Type::F64:
      for (int64_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, src + 8 * i, 8);
        dst[i] = float(v);
      }
      return;
    case Type::Q4_0: return run_blocks<&Blocks::q4_0>(src, dst, nb, bb, be);
    case Type::Q4_1: return run_blocks<&Blocks::q4_1>(src, dst, nb, bb, be);
    case Type::Q5_0: return run_blocks<&Blocks::q5_0>(src, dst, nb, bb, be);
    case Type::Q5_1: return run_blocks<&Blocks::q5_1>(src, dst, nb, bb, be);
    case Type::Q8_0: return run_blocks<&Blocks::q8_0>(src, dst, nb, bb, be);
    case Type::Q2_K: return run_blocks<&Blocks::q2_k>(src, dst, nb, bb, be);
    case Type::Q3_K: return run_blocks<&Blocks::q3_k>(src, dst, nb, bb, be);
    case Type::Q4_K: return run_blocks<&Blocks::q4_k>(src, dst, nb, bb, be);
    case Type::Q5_K: return run_blocks<&Blocks::q5_k>(src, dst, nb, bb, be);
    case Type::Q6_K: return run_blocks<&Blocks::q6_k>(src, dst, nb, bb, be);
    case Type::Q8_K: return run_blocks<&Blocks::q8_k>(src, dst, nb, bb, be);
    default: JET_FAIL("cannot dequantise type {}", type_name(t));
  }
}

}  // namespace jet::gguf
