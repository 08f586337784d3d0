#pragma once
// A tiny SIMD abstraction for the CPU kernels: `vf` is a GCC vector of LENET_W floats.
// Every ISA translation unit (kernels_avx512.cpp, kernels_avx2.cpp, kernels_baseline.cpp) defines
// LENET_W and LENET_ISA_NS, then includes the kernel headers, so one templated source is compiled
// once per instruction set with that unit's flags and dispatched at run time.
//
// Nothing here may use std:: templates: an inline std function instantiated in the AVX-512 unit
// could be picked by the linker for the baseline path and fault on an older CPU.
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__SSE2__)
#include <immintrin.h>
#endif

#ifndef LENET_W
#error "define LENET_W (lanes per vector) before including vec.h"
#endif

namespace lenet::cpu::LENET_ISA_NS {

constexpr int W = LENET_W;
typedef float vf __attribute__((vector_size(W * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(W * sizeof(int32_t))));

// set1, not vf{} + x: 0 + x is not x for x = -0, so the compiler must add, and every broadcast
// weight cost a scalar add and a shuffle instead of folding into its FMA ({1to16}).
#if LENET_W == 16 && defined(__AVX512F__)
static inline vf bcast(float x) { return (vf)_mm512_set1_ps(x); }
#elif LENET_W == 8 && defined(__AVX__)
static inline vf bcast(float x) { return (vf)_mm256_set1_ps(x); }
#elif LENET_W == 4 && defined(__SSE__)
static inline vf bcast(float x) { return (vf)_mm_set1_ps(x); }
#else
static inline vf bcast(float x) { return x - vf{}; }  // x - 0 is x for every x, -0 included
#endif
static inline vf loadu(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
static inline void storeu(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
// max/min as single instructions (the portable ternary becomes compare + blend).
#if LENET_W == 16 && defined(__AVX512F__)
static inline vf vmax(vf a, vf b) { return (vf)_mm512_max_ps((__m512)a, (__m512)b); }
static inline vf vmin(vf a, vf b) { return (vf)_mm512_min_ps((__m512)a, (__m512)b); }
#elif LENET_W == 8 && defined(__AVX__)
static inline vf vmax(vf a, vf b) { return (vf)_mm256_max_ps((__m256)a, (__m256)b); }
static inline vf vmin(vf a, vf b) { return (vf)_mm256_min_ps((__m256)a, (__m256)b); }
#elif LENET_W == 4 && defined(__SSE__)
static inline vf vmax(vf a, vf b) { return (vf)_mm_max_ps((__m128)a, (__m128)b); }
static inline vf vmin(vf a, vf b) { return (vf)_mm_min_ps((__m128)a, (__m128)b); }
#else
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }
static inline vf vmin(vf a, vf b) { return a < b ? a : b; }
#endif

// 1/x to ~1 ulp: the hardware estimate refined by one Newton step (a division costs several
// times more on these cores and the squashing functions need one per value).
static inline vf vrcp(vf x) {
#if LENET_W == 16 && defined(__AVX512F__)
  vf r = (vf)_mm512_rcp14_ps((__m512)x);
#elif LENET_W == 8 && defined(__AVX__)
  vf r = (vf)_mm256_rcp_ps((__m256)x);
#elif LENET_W == 4 && defined(__SSE__)
  vf r = (vf)_mm_rcp_ps((__m128)x);
#else
  return 1.0f / x;
#endif
  return r * (2.0f - x * r);
}

// amp * tanh(slope * a) as a [9/6] rational minimax approximation of tanh on [-7.9, 7.9]
// (fitted here by differential correction: max error 1.9e-7, 5.5e-7 in float32 arithmetic, i.e.
// within 1e-6 relative everywhere), with slope and amp folded into the coefficients so the squash
// costs one clamp, 8 FMAs and a refined reciprocal. Outside the clamp tanh is 1 to within 3e-7.
struct TanhCoefs {
  vf lo, hi;     // clamp of a: +-7.9 / slope
  vf p[5], q[4]; // odd numerator / even denominator coefficients in a, highest power first
  TanhCoefs(float slope, float amp) {
    // tanh(x) ~ x * sum_k P[k] x^(2k) / sum_k Q[k] x^(2k), lowest power first.
    const double P[5] = {0.9999991441249809, 0.12707135419357599, 0.002691995707549862,
                         7.140266243861987e-06, -6.123450891721091e-09};
    const double Q[4] = {1.0, 0.46040150648616646, 0.022829260405168347, 0.00019626603517562826};
    // x = slope * a: the x^(2k+1) coefficient becomes amp * slope^(2k+1) * P[k] in powers of a.
    const double s = slope, s2 = s * s;
    double f = amp * s;
    for (int k = 0; k < 5; ++k, f *= s2) p[4 - k] = bcast(float(P[k] * f));
    double g = 1.0;
    for (int k = 0; k < 4; ++k, g *= s2) q[3 - k] = bcast(float(Q[k] * g));
    hi = bcast(float(7.9 / s));
    lo = -hi;
  }
};

static inline vf vtanh_scaled(vf a, const TanhCoefs& c) {
  a = vmin(vmax(a, c.lo), c.hi);
  const vf a2 = a * a;
  vf p = c.p[0];
#pragma GCC unroll 4
  for (int k = 1; k < 5; ++k) p = p * a2 + c.p[k];
  vf q = c.q[0];
#pragma GCC unroll 3
  for (int k = 1; k < 4; ++k) q = q * a2 + c.q[k];
  return (p * a) * vrcp(q);
}

}  // namespace lenet::cpu::LENET_ISA_NS
