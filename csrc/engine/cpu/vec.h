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
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }
static inline vf vmin(vf a, vf b) { return a < b ? a : b; }

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

// tanh as a [13/6] rational minimax approximation (the one Eigen uses), max error a few ulp.
static inline vf vtanh(vf x) {
  const vf c = bcast(7.90531110763549805f);
  x = vmin(vmax(x, -c), c);
  const vf x2 = x * x;
  vf p = bcast(-2.76076847742355e-16f);
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * x;
  vf q = bcast(1.19825839466702e-06f);
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return p * vrcp(q);
}

}  // namespace lenet::cpu::LENET_ISA_NS
