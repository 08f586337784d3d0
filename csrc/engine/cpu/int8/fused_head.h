#pragma once
// INT8 CPU: C5 (400 -> 120) -> tanh table -> F6 (120 -> 84) -> tanh table -> RBF distances in
// float32, one image per lane.
#include "engine/cpu/int8/simd.h"

namespace lenet::cpu::int8::LENET_I8_NS {

// Codes -> words of four consecutive features.
static inline void feature_words(const vi* codes, int n, vi* words) {
  for (int g = 0; g < n / 4; ++g) {
    const vi* c = codes + 4 * g;
    words[g] = _mm512_or_si512(_mm512_or_si512(c[0], _mm512_slli_epi32(c[1], 8)),
                               _mm512_or_si512(_mm512_slli_epi32(c[2], 16), _mm512_slli_epi32(c[3], 24)));
  }
}

// A full layer of `Units` (a multiple of U) outputs over `Words` input words.
template <int U, int Units, int Words>
static inline void dense(const PackedStage& s, const int32_t (*w)[Words], const vi* in, vi* out) {
  for (int u0 = 0; u0 < Units; u0 += U) {
    vi acc[U];
#pragma GCC unroll 12
    for (int u = 0; u < U; ++u) acc[u] = bcast(s.bias[u0 + u]);
    for (int g = 0; g < Words; ++g) {
      const vi a = _mm512_load_si512(in + g);
#pragma GCC unroll 12
      for (int u = 0; u < U; ++u) acc[u] = Isa::dot(acc[u], a, bcast(w[u0 + u][g]));
    }
#pragma GCC unroll 12
    for (int u = 0; u < U; ++u) out[u0 + u] = stage_out(s, acc[u], u0 + u);
  }
}

// S4 codes (400) -> scores[first + lane][class] for lanes < count. `work` holds 120 + 100 + 84
// vectors.
static void head(const Packed& p, const vi* s4, vi* work, int count, float* scores) {
  vi* words = work;               // 100
  vi* c5 = work + kC5Words;       // 120
  vi* f6 = c5 + kC5Units;         // 84
  feature_words(s4, kC5In, words);
  dense<8, kC5Units, kC5Words>(p.c5, p.c5_w, words, c5);
  feature_words(c5, kC5Units, words);
  dense<12, kF6Units, kF6Words>(p.f6, p.f6_w, words, f6);
  __m512 u[kF6Units];
  const __m512 k = _mm512_set1_ps(p.head_scale);
  for (int j = 0; j < kF6Units; ++j)
    u[j] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(f6[j], bcast(128))), k);
  alignas(64) float dist[kHeadClasses][16];
  for (int i = 0; i < kHeadClasses; ++i) {
    __m512 total = _mm512_setzero_ps();
    for (int j = 0; j < kF6Units; ++j) {  // j order, multiply then add (no FMA: the reference's sum)
      const __m512 d = _mm512_sub_ps(u[j], _mm512_set1_ps(p.prototypes[i][j]));
      total = _mm512_add_ps(total, _mm512_mul_ps(d, d));
    }
    _mm512_store_ps(dist[i], total);
  }
  for (int l = 0; l < count; ++l)
    for (int i = 0; i < kHeadClasses; ++i) scores[l * kHeadClasses + i] = -dist[i][l];
}

}  // namespace lenet::cpu::int8::LENET_I8_NS
