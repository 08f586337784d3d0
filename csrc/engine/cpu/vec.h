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

static inline vf bcast(float x) { return vf{} + x; }
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

// amp * tanh(slope * a) as a [13/6] rational minimax approximation of tanh (the one Eigen uses,
// max error a few ulp), with slope and amp folded into the coefficients (TanhCoefs) so the
// squash costs one clamp, 10 FMAs and a refined reciprocal.
struct TanhCoefs {
  vf lo, hi;     // clamp of a: +-7.905 / slope, where tanh is 1 to float precision
  vf p[7], q[4]; // p: odd coefficients (highest first), q: even coefficients (highest first)
  TanhCoefs(float slope, float amp) {
    const double alpha[7] = {-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                             5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                             4.89352455891786e-03};
    const double beta[4] = {1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                            4.89352518554385e-03};
    // x = slope*a: x^(2k+1) = slope^(2k+1) a^(2k+1); the leading alpha multiplies x^13.
    const double s = slope, s2 = s * s;
    double f = amp * s;  // alpha_1 term
    for (int k = 6; k >= 0; --k, f *= s2) p[k] = bcast(float(alpha[k] * f));
    double g = 1.0;
    for (int k = 3; k >= 0; --k, g *= s2) q[k] = bcast(float(beta[k] * g));
    hi = bcast(float(7.90531110763549805 / s));
    lo = -hi;
  }
};

static inline vf vtanh_scaled(vf a, const TanhCoefs& c) {
  a = vmin(vmax(a, c.lo), c.hi);
  const vf a2 = a * a;
  vf p = c.p[0];
#pragma GCC unroll 6
  for (int k = 1; k < 7; ++k) p = p * a2 + c.p[k];
  vf q = c.q[0];
#pragma GCC unroll 3
  for (int k = 1; k < 4; ++k) q = q * a2 + c.q[k];
  return (p * a) * vrcp(q);
}

}  // namespace lenet::cpu::LENET_ISA_NS
