#pragma once
// C5 -> squash -> F6 -> squash -> output (RBF distances or linear), all dense layers.
#include "engine/cpu/fused_c3_s4.h"

namespace lenet::cpu::LENET_ISA_NS {

// Wide path: U output units at a time for W images: one weight broadcast per FMA, the input
// vector shared by the U accumulators.
template <int U>
static inline void dense_block_wide(const vf* x, int K, const float* wt, int ld, const float* b,
                                    vf* out) {
  vf acc[U];
#pragma GCC unroll 12
  for (int u = 0; u < U; ++u) acc[u] = bcast(b[u]);
  for (int k = 0; k < K; ++k) {
    const vf xv = x[k];
    const float* wk = wt + k * ld;
#pragma GCC unroll 12
    for (int u = 0; u < U; ++u) acc[u] += bcast(wk[u]) * xv;
  }
#pragma GCC unroll 12
  for (int u = 0; u < U; ++u) out[u] = acc[u];
}

static void dense_wide(const vf* x, int K, const float* wt, int ld, const float* b, int n, vf* out) {
  int u = 0;
  for (; u + 12 <= n; u += 12) dense_block_wide<12>(x, K, wt + u, ld, b + u, out + u);
  for (; u + 4 <= n; u += 4) dense_block_wide<4>(x, K, wt + u, ld, b + u, out + u);
  for (; u < n; ++u) dense_block_wide<1>(x, K, wt + u, ld, b + u, out + u);
}

template <int U>
static inline void rbf_block_wide(const vf* x, const float* wt, int ld, vf* out) {
  vf acc[U];
#pragma GCC unroll 12
  for (int u = 0; u < U; ++u) acc[u] = vf{};
  for (int k = 0; k < kF6Units; ++k) {
    const vf xv = x[k];
    const float* wk = wt + k * ld;
#pragma GCC unroll 12
    for (int u = 0; u < U; ++u) {
      const vf d = xv - wk[u];
      acc[u] += d * d;
    }
  }
#pragma GCC unroll 12
  for (int u = 0; u < U; ++u) out[u] = -acc[u];
}

// C5 units [u0, u1), squashed (threads sharing a block take a range each).
static void c5_wide(const KernelParams& kp, const Act& act, const vf* s4, vf* c5, int u0 = 0,
                    int u1 = kC5Units) {
  dense_wide(s4, kC3Maps * 25, kp.c5_wt + u0, kC5Ld, kp.c5_b + u0, u1 - u0, c5 + u0);
  for (int u = u0; u < u1; ++u) c5[u] = act(c5[u]);
}

// F6 units [u0, u1), squashed.
static void f6_wide(const KernelParams& kp, const Act& act, const vf* c5, vf* f6, int u0 = 0,
                    int u1 = kF6Units) {
  dense_wide(c5, kC5Units, kp.f6_wt + u0, kF6Ld, kp.f6_b + u0, u1 - u0, f6 + u0);
  for (int u = u0; u < u1; ++u) f6[u] = act(f6[u]);
}

static void out_wide(const KernelParams& kp, const vf* f6, vf* out) {
  if (kp.head == kHeadRbf) {
    rbf_block_wide<10>(f6, kp.out_wt, kp.out_ld, out);  // the RBF head always has 10 classes
  } else {
    dense_wide(f6, kF6Units, kp.out_wt, kp.out_ld, kp.out_b, kp.classes, out);
  }
}

static void head_wide(const KernelParams& kp, const Act& act, const vf* s4, vf* c5, vf* f6,
                      vf* out) {
  c5_wide(kp, act, s4, c5);
  f6_wide(kp, act, c5, f6);
  out_wide(kp, f6, out);
}

// Small-batch path: output units in lanes; the weights are whole vectors, the input a broadcast.
template <int B>
static inline void dense_block_small(const float* x, int K, const float* wt, int ld, const float* b,
                                     bool rbf, float* out) {
  vf acc[B];
#pragma GCC unroll 8
  for (int j = 0; j < B; ++j) acc[j] = rbf ? vf{} : loadu(b + j * W);
  if (rbf) {
    for (int k = 0; k < K; ++k) {
      const vf xv = bcast(x[k]);
#pragma GCC unroll 8
      for (int j = 0; j < B; ++j) {
        const vf d = xv - loadu(wt + k * ld + j * W);
        acc[j] += d * d;
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < B; ++j) acc[j] = -acc[j];
  } else {
    for (int k = 0; k < K; ++k) {
      const vf xv = bcast(x[k]);
#pragma GCC unroll 8
      for (int j = 0; j < B; ++j) acc[j] += xv * loadu(wt + k * ld + j * W);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < B; ++j) storeu(out + j * W, acc[j]);
}

// n_pad (a multiple of 16) outputs.
static void dense_small(const float* x, int K, const float* wt, int ld, const float* b, int n_pad,
                        bool rbf, float* out) {
  int v = 0;
  const int nv = n_pad / W;
  for (; v + 8 <= nv; v += 8) dense_block_small<8>(x, K, wt + v * W, ld, b + v * W, rbf, out + v * W);
  for (; v + 4 <= nv; v += 4) dense_block_small<4>(x, K, wt + v * W, ld, b + v * W, rbf, out + v * W);
  for (; v + 2 <= nv; v += 2) dense_block_small<2>(x, K, wt + v * W, ld, b + v * W, rbf, out + v * W);
  for (; v < nv; ++v) dense_block_small<1>(x, K, wt + v * W, ld, b + v * W, rbf, out + v * W);
}

static void squash_small(const Act& act, float* p, int n /* multiple of W */) {
  for (int i = 0; i < n; i += W) storeu(p + i, act(loadu(p + i)));
}

}  // namespace lenet::cpu::LENET_ISA_NS
