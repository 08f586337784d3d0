#pragma once
// INT8 CPU: S4's table -> C5 (400 -> 120) -> tanh table -> F6 (120 -> 84) -> tanh table -> RBF
// distances in float32, one image per lane.
#include <cstring>

#include "engine/cpu/int8/simd.h"

namespace lenet::cpu::int8::LENET_I8_NS {

// Codes -> words of four consecutive features.
template <class V>
static inline void feature_words(const typename V::vi* codes, int n, typename V::vi* words) {
  for (int g = 0; g < n / 4; ++g) {
    const typename V::vi* c = codes + 4 * g;
    words[g] = V::or_(V::or_(c[0], V::template shl<8>(c[1])),
                      V::or_(V::template shl<16>(c[2]), V::template shl<24>(c[3])));
  }
}

// S4 accumulators (400, map = feature / 25) -> C5's 100 input words, four features a lookup.
template <class V>
static inline void s4_words(const Packed& p, const typename V::vi* s4, typename V::vi* words) {
  for (int g = 0; g < kC5Words; ++g) {
    const int f = 4 * g;
    words[g] = quad_out<V>(p.s4, s4[f], s4[f + 1], s4[f + 2], s4[f + 3], p.s4.mult[f / 25], p.s4.mult[(f + 1) / 25],
                           p.s4.mult[(f + 2) / 25], p.s4.mult[(f + 3) / 25]);
  }
}

// A full layer of `Units` (a multiple of U, U of 4) outputs over `Words` input words. Words:
// out[u / 4] holds units u..u+3 (the next layer's input); else out[u] one code.
template <class V, int U, int Units, int Words, bool kWordsOut>
static inline void dense(const PackedStage& s, const int32_t (*w)[Words], const typename V::vi* in,
                         typename V::vi* out) {
  using vi = typename V::vi;
  static_assert(U % 4 == 0 && Units % U == 0, "units in fours");
  for (int u0 = 0; u0 < Units; u0 += U) {
    vi acc[U];
#pragma GCC unroll 12
    for (int u = 0; u < U; ++u) acc[u] = V::set1(s.bias[u0 + u]);
    for (int g = 0; g < Words; ++g) {
      const vi a = V::load(in + g);
#pragma GCC unroll 12
      for (int u = 0; u < U; ++u) acc[u] = V::dot(acc[u], a, V::set1(w[u0 + u][g]));
    }
    if constexpr (kWordsOut) {
#pragma GCC unroll 3
      for (int u = 0; u < U; u += 4) {
        const float* m = s.mult + u0 + u;
        out[(u0 + u) / 4] = quad_out<V>(s, acc[u], acc[u + 1], acc[u + 2], acc[u + 3], m[0], m[1], m[2], m[3]);
      }
    } else {
#pragma GCC unroll 12
      for (int u = 0; u < U; ++u) out[u0 + u] = stage_out<V>(s, acc[u], u0 + u);
    }
  }
}

// C5's 100 input words -> scores[first + lane][class] for lanes < count. `work` holds 30 + 84
// vectors.
template <class V>
static void head(const Packed& p, const typename V::vi* words, typename V::vi* work, int count, float* scores) {
  using vi = typename V::vi;
  using vf = typename V::vf;
  vi* c5 = work;                  // 30 words
  vi* f6 = c5 + kF6Words;         // 84 codes
  dense<V, 8, kC5Units, kC5Words, true>(p.c5, p.c5_w, words, c5);
  dense<V, 12, kF6Units, kF6Words, false>(p.f6, p.f6_w, c5, f6);
  vf u[kF6Units];
  const vf k = V::fset1(p.head_scale);
  for (int j = 0; j < kF6Units; ++j) u[j] = V::fmul(V::to_float(V::sub(f6[j], V::set1(128))), k);
  alignas(64) float dist[kHeadClasses][V::kLanes];
  for (int i = 0; i < kHeadClasses; ++i) {
    vf total = V::fzero();
    for (int j = 0; j < kF6Units; ++j) {  // j order, multiply then add (no FMA: the reference's sum)
      const vf d = V::fsub(u[j], V::fset1(p.prototypes[i][j]));
      total = V::fadd(total, V::fmul(d, d));
    }
    V::fstore(dist[i], total);
  }
  for (int l = 0; l < count; ++l)
    for (int i = 0; i < kHeadClasses; ++i) scores[l * kHeadClasses + i] = -dist[i][l];
}

// One image's head: its units in the lanes (16 units a vector, every input word broadcast), the
// same arithmetic per unit as head(). `codes`: the 400 S4 codes, feature order.
template <int Vectors, int Words, int Pad>
static inline void dense_one(const PackedStage& s, const int32_t (*w)[Pad], const int32_t* bias, const float* mult,
                             const int32_t* in, V16::vi out[Vectors]) {
  using vi = V16::vi;
  vi acc[Vectors];
#pragma GCC unroll 8
  for (int v = 0; v < Vectors; ++v) acc[v] = V16::load(reinterpret_cast<const vi*>(bias) + v);
  for (int g = 0; g < Words; ++g) {
    const vi a = V16::set1(in[g]);
#pragma GCC unroll 8
    for (int v = 0; v < Vectors; ++v) acc[v] = V16::dot(acc[v], a, V16::load(reinterpret_cast<const vi*>(w[g]) + v));
  }
#pragma GCC unroll 8
  for (int v = 0; v < Vectors; ++v) {
    const V16::vf m = _mm512_load_ps(mult + 16 * v);
    out[v] = V16::lookup(s.table, V16::clamp_shift(V16::round(V16::fmul(V16::to_float(acc[v]), m))));
  }
}

static inline void head_one(const Packed& p, const uint8_t codes[kC5In], float* scores) {
  using vi = V16::vi;
  using vf = V16::vf;
  alignas(64) int32_t in[kC5Words];
  std::memcpy(in, codes, sizeof(in));  // four features' codes a word, byte k = feature 4g + k
  vi c5[kC5Pad / 16];
  dense_one<kC5Pad / 16, kC5Words, kC5Pad>(p.c5, p.c5_t, p.c5_bias_t, p.c5_mult_t, in, c5);
  alignas(64) uint8_t c5_codes[kC5Pad];
  for (int v = 0; v < kC5Pad / 16; ++v)
    _mm_store_si128(reinterpret_cast<__m128i*>(c5_codes + 16 * v), _mm512_cvtepi32_epi8(c5[v]));
  alignas(64) int32_t c5_words[kC5Pad / 4];
  std::memcpy(c5_words, c5_codes, sizeof(c5_words));
  vi f6[kF6Pad / 16];
  dense_one<kF6Pad / 16, kF6Words, kF6Pad>(p.f6, p.f6_t, p.f6_bias_t, p.f6_mult_t, c5_words, f6);
  alignas(64) float u[kF6Pad];
  const vf k = V16::fset1(p.head_scale);
  for (int v = 0; v < kF6Pad / 16; ++v) V16::fstore(u + 16 * v, V16::fmul(V16::to_float(V16::sub(f6[v], V16::set1(128))), k));
  vf total = V16::fzero();  // classes in lanes, j order, multiply then add (the reference's sum)
  for (int j = 0; j < kF6Units; ++j) {
    const vf d = V16::fsub(V16::fset1(u[j]), _mm512_load_ps(p.prototypes_t[j]));
    total = V16::fadd(total, V16::fmul(d, d));
  }
  alignas(64) float dist[16];
  V16::fstore(dist, total);
  for (int i = 0; i < kHeadClasses; ++i) scores[i] = -dist[i];
}

}  // namespace lenet::cpu::int8::LENET_I8_NS
