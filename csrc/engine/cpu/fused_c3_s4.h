#pragma once
// C3 convolution (only the S2 maps the table connects) -> squash -> S4 subsampling -> squash.
#include "engine/cpu/fused_c1_s2.h"

namespace lenet::cpu::LENET_ISA_NS {

// Wide path: s2 = [6][14][14] vectors, s4 = [16][5][5] vectors.
static void c3_s4_wide(const KernelParams& kp, const Act& act, const vf* s2, vf* rows, vf* s4) {
  constexpr int P = W == 16 ? 10 : 5;  // a whole C3 row: 10 accumulators + 14 inputs
  for (int r = 0; r < kS4Size; ++r) {
    for (int o = 0; o < kC3Maps; ++o) {
      for (int dy = 0; dy < 2; ++dy) {
        const int y = 2 * r + dy;
        for (int x0 = 0; x0 < kC3Size; x0 += P) {
          vf acc[P];
#pragma GCC unroll 16
          for (int j = 0; j < P; ++j) acc[j] = bcast(kp.c3_b[o]);
          for (int t = 0; t < kp.c3_fan_in[o]; ++t) {
            const int i = kp.c3_inputs[o][t];
            conv_row_wide<P>(s2 + (i * kS2Size + y) * kS2Size + x0, kS2Size,
                             kp.c3_w + (o * kC1Maps + i) * 25, acc);
          }
#pragma GCC unroll 16
          for (int j = 0; j < P; ++j) rows[dy * kC3Size + x0 + j] = act(acc[j]);
        }
      }
      const float coef = kp.s4_coef ? kp.s4_coef[o] : 0.f, bias = kp.s4_bias ? kp.s4_bias[o] : 0.f;
      vf* out = s4 + (o * kS4Size + r) * kS4Size;
      for (int c = 0; c < kS4Size; ++c)
        out[c] = pool4(kp.pooling, rows[2 * c], rows[2 * c + 1], rows[kC3Size + 2 * c],
                       rows[kC3Size + 2 * c + 1], coef, bias, act);
    }
  }
}

// Small-batch path: C3 output p = y*16 + x over the flat S2 maps (x >= 10 are junk lanes).
constexpr int kSmallC3Len = kC3Size * kSmallS2Stride;  // 160

static void c3_small(const KernelParams& kp, const Act& act, const float* s2, float* c3) {
  constexpr int NV = kSmallC3Len / W;  // 10 vectors of 16 on AVX-512
  constexpr int B = NV < 10 ? NV : 10;
  for (int o = 0; o < kC3Maps; ++o) {
    for (int v0 = 0; v0 < NV; v0 += B) {
      vf acc[B];
      for (int j = 0; j < B; ++j) acc[j] = bcast(kp.c3_b[o]);
      for (int t = 0; t < kp.c3_fan_in[o]; ++t) {
        const int i = kp.c3_inputs[o][t];
        const float* w = kp.c3_w + (o * kC1Maps + i) * 25;
        const float* src = s2 + i * kSmallS2Map + v0 * W;
        for (int ky = 0; ky < 5; ++ky)
          for (int kx = 0; kx < 5; ++kx) {
            const vf wv = bcast(w[ky * 5 + kx]);
            const float* s = src + ky * kSmallS2Stride + kx;
#pragma GCC unroll 10
            for (int j = 0; j < B; ++j) acc[j] += wv * loadu(s + j * W);
          }
      }
      for (int j = 0; j < B; ++j) storeu(c3 + o * kSmallC3Len + (v0 + j) * W, act(acc[j]));
    }
  }
}

// S4 from the flat C3 maps, into the C5 input order k = map*25 + row*5 + col (scalar: 400 units).
static void s4_small(const KernelParams& kp, const float* c3, float* s4) {
  for (int o = 0; o < kC3Maps; ++o) {
    const float coef = kp.s4_coef ? kp.s4_coef[o] : 0.f, bias = kp.s4_bias ? kp.s4_bias[o] : 0.f;
    for (int r = 0; r < kS4Size; ++r) {
      const float* r0 = c3 + o * kSmallC3Len + 2 * r * kSmallS2Stride;
      const float* r1 = r0 + kSmallS2Stride;
      for (int c = 0; c < kS4Size; ++c) {
        const float a = r0[2 * c], b = r0[2 * c + 1], d = r1[2 * c], e = r1[2 * c + 1];
        float v;
        if (kp.pooling == kPoolMax) {
          const float m1 = a > b ? a : b, m2 = d > e ? d : e;
          v = m1 > m2 ? m1 : m2;
        } else {
          const float s = (a + b) + (d + e);
          v = kp.pooling == kPoolAvg ? s * 0.25f : s * coef + bias;  // squashed by the caller
        }
        s4[(o * kS4Size + r) * kS4Size + c] = v;
      }
    }
  }
}

}  // namespace lenet::cpu::LENET_ISA_NS
