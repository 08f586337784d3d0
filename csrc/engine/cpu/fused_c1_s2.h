#pragma once
// C1 convolution -> squash -> S2 subsampling -> squash, fused so the 28x28 maps never exist whole:
// two C1 rows at a time are computed, squashed in registers and pooled into one S2 row.
#include "engine/cpu/squash.h"

namespace lenet::cpu::LENET_ISA_NS {

// P adjacent outputs of one row of a 5x5 convolution, images in lanes: every weight is a
// broadcast and the P+4 input vectors of a kernel row stay in registers across its 5 taps.
template <int P>
static inline void conv_row_wide(const vf* in, int stride, const float* w, vf* acc) {
  vf a[P];
#pragma GCC unroll 16
  for (int j = 0; j < P; ++j) a[j] = acc[j];
#pragma GCC unroll 5
  for (int ky = 0; ky < 5; ++ky) {
    const vf* row = in + ky * stride;
    vf x[P + 4];
#pragma GCC unroll 16
    for (int j = 0; j < P + 4; ++j) x[j] = row[j];
#pragma GCC unroll 5
    for (int kx = 0; kx < 5; ++kx) {
      const vf wv = bcast(w[ky * 5 + kx]);
#pragma GCC unroll 16
      for (int j = 0; j < P; ++j) a[j] += wv * x[j + kx];
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < P; ++j) acc[j] = a[j];
}

// Wide path: in = 32x32 vectors (one image per lane), s2 = [6][14][14] vectors; maps [m0, m1)
// (a part of the block when threads share it). Rows outer, maps inner: the 6 input rows under an
// S2 row stay in L1 across the maps.
static void c1_s2_wide(const KernelParams& kp, const Act& act, const vf* in, vf* rows, vf* s2,
                       int m0 = 0, int m1 = kC1Maps) {
  constexpr int P = W == 16 ? 7 : 4;  // 28 = 4x7: 7 accumulators + 11 inputs fit 32 zmm registers
  for (int r = 0; r < kS2Size; ++r) {
    for (int m = m0; m < m1; ++m) {
      const float* w = kp.c1_w + m * 25;
      for (int dy = 0; dy < 2; ++dy) {
        const int y = 2 * r + dy;
        for (int x0 = 0; x0 < kC1Size; x0 += P) {
          vf acc[P];
#pragma GCC unroll 16
          for (int j = 0; j < P; ++j) acc[j] = bcast(kp.c1_b[m]);
          conv_row_wide<P>(in + y * kIn + x0, kIn, w, acc);
#pragma GCC unroll 16
          for (int j = 0; j < P; ++j) rows[dy * kC1Size + x0 + j] = act(acc[j]);
        }
      }
      const float coef = kp.s2_coef ? kp.s2_coef[m] : 0.f, bias = kp.s2_bias ? kp.s2_bias[m] : 0.f;
      vf* out = s2 + (m * kS2Size + r) * kS2Size;
      for (int c = 0; c < kS2Size; ++c)
        out[c] = pool4(kp.pooling, rows[2 * c], rows[2 * c + 1], rows[kC1Size + 2 * c],
                       rows[kC1Size + 2 * c + 1], coef, bias, act);
    }
  }
}

// Small-batch path, one image, positions in lanes. Layouts are flat with padded rows so every
// tap of the convolution is one unaligned load: C1 output p = y*32 + x (x >= 28 are junk lanes,
// computed from the zero slack and never read for a real output).
constexpr int kSmallC1Len = kC1Size * kIn;   // 896, a multiple of 16
constexpr int kSmallS2Stride = 16;           // S2 row stride
constexpr int kSmallS2Map = 240;             // 14*16 + slack for C3's junk lanes

static void c1_small(const KernelParams& kp, const Act& act, const float* in, float* c1) {
  constexpr int B = 2;  // vectors of positions per block; x 6 maps = 12 accumulators
  static_assert(kSmallC1Len % (B * W) == 0, "whole blocks of positions");
  for (int p0 = 0; p0 < kSmallC1Len; p0 += B * W) {
    vf acc[kC1Maps][B];
    for (int m = 0; m < kC1Maps; ++m)
      for (int j = 0; j < B; ++j) acc[m][j] = bcast(kp.c1_b[m]);
    for (int ky = 0; ky < 5; ++ky) {
      for (int kx = 0; kx < 5; ++kx) {
        const float* src = in + p0 + ky * kIn + kx;
        vf x[B];
        for (int j = 0; j < B; ++j) x[j] = loadu(src + j * W);
#pragma GCC unroll 6
        for (int m = 0; m < kC1Maps; ++m) {
          const vf wv = bcast(kp.c1_w[m * 25 + ky * 5 + kx]);
#pragma GCC unroll 4
          for (int j = 0; j < B; ++j) acc[m][j] += wv * x[j];
        }
      }
    }
    for (int m = 0; m < kC1Maps; ++m)
      for (int j = 0; j < B; ++j) storeu(c1 + m * kSmallC1Len + p0 + j * W, act(acc[m][j]));
  }
}

// Even and odd lanes of the concatenation (a, b): the horizontal halves of 2x2 windows.
static inline void deinterleave(vf a, vf b, vf& even, vf& odd) {
  vi ie, io;
  for (int i = 0; i < W; ++i) { ie[i] = 2 * i; io[i] = 2 * i + 1; }
  even = __builtin_shuffle(a, b, ie);
  odd = __builtin_shuffle(a, b, io);
}

static void s2_small(const KernelParams& kp, const Act& act, const float* c1, float* s2) {
  for (int m = 0; m < kC1Maps; ++m) {
    const float coef = kp.s2_coef ? kp.s2_coef[m] : 0.f, bias = kp.s2_bias ? kp.s2_bias[m] : 0.f;
    for (int r = 0; r < kS2Size; ++r) {
      const float* top = c1 + m * kSmallC1Len + 2 * r * kIn;
      const float* bottom = top + kIn;
      for (int c0 = 0; c0 < kSmallS2Stride; c0 += W) {
        vf a0, a1, b0, b1;
        deinterleave(loadu(top + 2 * c0), loadu(top + 2 * c0 + W), a0, a1);
        deinterleave(loadu(bottom + 2 * c0), loadu(bottom + 2 * c0 + W), b0, b1);
        storeu(s2 + m * kSmallS2Map + r * kSmallS2Stride + c0,
               pool4(kp.pooling, a0, a1, b0, b1, coef, bias, act));
      }
    }
  }
}

}  // namespace lenet::cpu::LENET_ISA_NS
