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

// Small-batch path, LeCun's table (lenet5): one image, C3 output positions p = y*10 + x in the
// lanes (kC3Vec vectors, the last one partly junk), and only the connections of the table, known
// at compile time (60 of the 96 pairs): no work on its zeros, and the 16 maps' accumulators stay
// in registers while each input vector is loaded once. For each S2 map i and kernel column kx,
// S2 shifted left by kx with rows of 10 (spread_s2): the inputs of tap (ky, kx) for positions
// p, p+1, ... are then contiguous at t[i][kx] + ky*10 + p.
constexpr int kC3Vec = (kC3Size * kC3Size + W - 1) / W;
constexpr int kSmallTLen = 160;  // 14 rows of 10 + the last vector's junk lanes
static_assert(4 * kC3Size + kC3Vec * W <= kSmallTLen, "room for the junk lanes' taps");
constexpr int kSmallT = kC1Maps * 5 * kSmallTLen;  // floats of the shifted copies
constexpr int kSmallC3Map = 128;                   // C3 map stride: outputs + S4's slack
static_assert(kC3Vec * W + 16 <= kSmallC3Map, "S4's slack");

static void spread_s2(const float* s2, float* t) {
  for (int i = 0; i < kC1Maps; ++i)
    for (int kx = 0; kx < 5; ++kx) {
      float* dst = t + (i * 5 + kx) * kSmallTLen;
      const float* src = s2 + i * kSmallS2Map + kx;
      // Whole 16-lane rows, in order: a row's junk lanes (x >= 10) land where the next row
      // then writes its own values.
      for (int y = 0; y < kS2Size; ++y)
        for (int j = 0; j < 16; j += W) storeu(dst + y * kC3Size + j, loadu(src + y * kSmallS2Stride + j));
      std::memset(dst + kS2Size * kC3Size, 0, (kSmallTLen - kS2Size * kC3Size) * sizeof(float));
    }
}

// acc[o - O0] += w[o] * x for the maps o in [O, O1) that read S2 map I (unrolled at compile time).
template <int I, int O0, int O, int O1>
static inline void lecun_taps(vf* acc, vf x, const float* w) {
  if constexpr (O < O1) {
    if constexpr (kLeCunTable[O][I] != 0) acc[O - O0] += bcast(w[O]) * x;
    lecun_taps<I, O0, O + 1, O1>(acc, x, w);
  }
}

// The 25 taps of S2 map I for the position vector j; wo = c3_wo ([6][25][16]).
template <int I, int O0, int O1>
static inline void lecun_input(vf* acc, const float* t, const float* wo, int j) {
  for (int ky = 0; ky < 5; ++ky) {
#pragma GCC unroll 5
    for (int kx = 0; kx < 5; ++kx) {
      const vf x = loadu(t + (I * 5 + kx) * kSmallTLen + ky * kC3Size + j * W);
      lecun_taps<I, O0, O0, O1>(acc, x, wo + (I * 25 + ky * 5 + kx) * kC3Maps);
    }
  }
}

template <int O0, int O1>
static void c3_lecun_maps(const KernelParams& kp, const Act& act, const float* t, float* c3) {
  for (int j = 0; j < kC3Vec; ++j) {
    vf acc[O1 - O0];
#pragma GCC unroll 16
    for (int o = O0; o < O1; ++o) acc[o - O0] = bcast(kp.c3_b[o]);
    lecun_input<0, O0, O1>(acc, t, kp.c3_wo, j);
    lecun_input<1, O0, O1>(acc, t, kp.c3_wo, j);
    lecun_input<2, O0, O1>(acc, t, kp.c3_wo, j);
    lecun_input<3, O0, O1>(acc, t, kp.c3_wo, j);
    lecun_input<4, O0, O1>(acc, t, kp.c3_wo, j);
    lecun_input<5, O0, O1>(acc, t, kp.c3_wo, j);
#pragma GCC unroll 16
    for (int o = O0; o < O1; ++o) storeu(c3 + o * kSmallC3Map + j * W, act(acc[o - O0]));
  }
}

static void c3_small_lecun(const KernelParams& kp, const Act& act, const float* t, float* c3) {
  if constexpr (W >= 16) {
    c3_lecun_maps<0, 16>(kp, act, t, c3);  // 16 accumulators of 32 registers
  } else {
    c3_lecun_maps<0, 8>(kp, act, t, c3);  // 16 registers: 8 maps at a time
    c3_lecun_maps<8, 16>(kp, act, t, c3);
  }
  // S4's shifted reads of the last windows pass the outputs (W < 16): keep that slack finite.
  for (int o = 0; o < kC3Maps; ++o) std::memset(c3 + o * kSmallC3Map + kC3Vec * W, 0, 16 * sizeof(float));
}

// S4 over the [16][kSmallC3Map] layout into [25][16] (the order C5 reads, as s4_small's): the
// 2x2 windows at every position as vectors (shifted loads), then the 25 whose top-left corner
// is (2r, 2c), i.e. p = 20r + 2c <= 88.
static void s4_small_lecun(const KernelParams& kp, const Act& act, const float* c3, float* s4) {
  constexpr int kV = 88 / W + 1;
  float sums[kV * W];
  for (int o = 0; o < kC3Maps; ++o) {
    const float* c = c3 + o * kSmallC3Map;
    for (int v = 0; v < kV; ++v) {
      const float* p = c + v * W;
      const vf a = loadu(p), b = loadu(p + 1), d = loadu(p + kC3Size), e = loadu(p + kC3Size + 1);
      storeu(sums + v * W, kp.pooling == kPoolMax ? vmax(vmax(a, b), vmax(d, e)) : (a + b) + (d + e));
    }
    const float coef = kp.pooling == kPoolTrainable ? kp.s4_coef[o] : kp.pooling == kPoolAvg ? 0.25f : 1.f;
    const float bias = kp.pooling == kPoolTrainable ? kp.s4_bias[o] : 0.f;
    for (int r = 0; r < kS4Size; ++r)
      for (int x = 0; x < kS4Size; ++x)
        s4[(r * kS4Size + x) * kC3Maps + o] = sums[2 * kC3Size * r + 2 * x] * coef + bias;
  }
  if (kp.pooling == kPoolTrainable)
    for (int k = 0; k < kC3Maps * 25; k += W) storeu(s4 + k, act(loadu(s4 + k)));
}

}  // namespace lenet::cpu::LENET_ISA_NS
