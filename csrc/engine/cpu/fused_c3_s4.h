#pragma once
// C3 convolution (only the S2 maps the table connects) -> squash -> S4 subsampling -> squash.
#include "engine/cpu/fused_c1_s2.h"

namespace lenet::cpu::LENET_ISA_NS {

// Wide path: s2 = [6][14][14] vectors, s4 = [16][5][5] vectors; output maps [o0, o1).
static void c3_s4_wide(const KernelParams& kp, const Act& act, const vf* s2, vf* rows, vf* s4,
                       int o0 = 0, int o1 = kC3Maps) {
  constexpr int P = W == 16 ? 10 : 5;  // a whole C3 row: 10 accumulators + 14 inputs
  for (int r = 0; r < kS4Size; ++r) {
    for (int o = o0; o < o1; ++o) {
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

// Small-batch path: the 16 C3 maps in the lanes (16/W vectors). Weight vectors are dense over the
// maps (zeros where the table has no connection) and aligned; the S2 values are broadcasts, so
// there are no junk lanes and no loads split across cache lines.
constexpr int kNO = kC3Maps / W;                          // vectors per 16 maps
constexpr int kSmallC3X = W == 16 ? 10 : W == 8 ? 5 : 2;  // positions per register block

static void c3_small(const KernelParams& kp, const Act& act, const float* s2, float* c3) {
  for (int y = 0; y < kC3Size; ++y)
    for (int x0 = 0; x0 < kC3Size; x0 += kSmallC3X) {
      vf acc[kSmallC3X][kNO];
      for (int x = 0; x < kSmallC3X; ++x)
        for (int j = 0; j < kNO; ++j) acc[x][j] = loadu(kp.c3_b + j * W);
      for (int i = 0; i < kC1Maps; ++i)
        for (int ky = 0; ky < 5; ++ky) {
          const float* row = s2 + i * kSmallS2Map + (y + ky) * kSmallS2Stride + x0;
#pragma GCC unroll 5
          for (int kx = 0; kx < 5; ++kx) {
            const float* w = kp.c3_wo + ((i * 5 + ky) * 5 + kx) * kC3Maps;
            vf wv[kNO];
#pragma GCC unroll 4
            for (int j = 0; j < kNO; ++j) wv[j] = loadu(w + j * W);
#pragma GCC unroll 10
            for (int x = 0; x < kSmallC3X; ++x) {
              const vf xb = bcast(row[x + kx]);
#pragma GCC unroll 4
              for (int j = 0; j < kNO; ++j) acc[x][j] += wv[j] * xb;
            }
          }
        }
      for (int x = 0; x < kSmallC3X; ++x)
        for (int j = 0; j < kNO; ++j)
          storeu(c3 + (y * kC3Size + x0 + x) * kC3Maps + j * W, act(acc[x][j]));
    }
}

// S4 over the [100][16] C3 layout, into [25][16] (C5 reads it with c5_wt_pos).
static void s4_small(const KernelParams& kp, const Act& act, const float* c3, float* s4) {
  for (int r = 0; r < kS4Size; ++r)
    for (int c = 0; c < kS4Size; ++c)
      for (int j = 0; j < kNO; ++j) {
        const float* p = c3 + (2 * r * kC3Size + 2 * c) * kC3Maps + j * W;
        const vf a = loadu(p), b = loadu(p + kC3Maps), d = loadu(p + kC3Size * kC3Maps),
                 e = loadu(p + (kC3Size + 1) * kC3Maps);
        vf v;
        if (kp.pooling == kPoolMax) {
          v = vmax(vmax(a, b), vmax(d, e));
        } else {
          const vf sum = (a + b) + (d + e);
          v = kp.pooling == kPoolAvg ? sum * 0.25f
                                     : act(sum * loadu(kp.s4_coef + j * W) + loadu(kp.s4_bias + j * W));
        }
        storeu(s4 + (r * kS4Size + c) * kC3Maps + j * W, v);
      }
}

}  // namespace lenet::cpu::LENET_ISA_NS
