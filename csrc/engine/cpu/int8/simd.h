#pragma once
// The two ways the INT8 kernels multiply and look up, one struct per instruction set; included by
// each kernels_<isa>.cpp inside its own namespace (LENET_I8_NS), compiled with that ISA's flags.
//   Vnni: vpdpbusd (64 uint8 x int8 products summed into 16 int32 lanes per instruction) and the
//         tanh table by two vpermi2b (AVX-512 VNNI + VBMI);
//   Bw:   the same sums from vpmaddwd on 16-bit halves (exact: no 16-bit saturation), and the
//         table by a gather (AVX-512 F + BW).
#include <immintrin.h>

#include "engine/cpu/int8/packed.h"

namespace lenet::cpu::int8::LENET_I8_NS {

using vi = __m512i;

#if LENET_I8_VNNI
struct Isa {
  static inline vi dot(vi acc, vi a, vi w) { return _mm512_dpbusd_epi32(acc, a, w); }
  static inline vi lookup(const PackedTable& t, vi idx) {
    const vi t0 = _mm512_load_si512(t.bytes), t1 = _mm512_load_si512(t.bytes + 64),
             t2 = _mm512_load_si512(t.bytes + 128), t3 = _mm512_load_si512(t.bytes + 192);
    const vi lo = _mm512_permutex2var_epi8(t0, idx, t1), hi = _mm512_permutex2var_epi8(t2, idx, t3);
    const __mmask64 upper = _mm512_test_epi8_mask(idx, _mm512_set1_epi8(char(0x80)));
    return _mm512_and_si512(_mm512_mask_blend_epi8(upper, lo, hi), _mm512_set1_epi32(0xFF));
  }
};
#else
struct Isa {
  static inline vi dot(vi acc, vi a, vi w) {
    const vi a_even = _mm512_and_si512(a, _mm512_set1_epi16(0x00FF)), a_odd = _mm512_srli_epi16(a, 8);
    const vi w_even = _mm512_srai_epi16(_mm512_slli_epi16(w, 8), 8), w_odd = _mm512_srai_epi16(w, 8);
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(a_even, w_even));
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a_odd, w_odd));
  }
  static inline vi lookup(const PackedTable& t, vi idx) { return _mm512_i32gather_epi32(idx, t.words, 4); }
};
#endif

static inline vi bcast(int32_t v) { return _mm512_set1_epi32(v); }

// int32 accumulators -> table index: clamp(rint(float32(acc) * m), -128, 127) + 128, ties to even.
static inline vi requant_index(vi acc, float m) {
  const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(m));
  const vi a = _mm512_cvt_roundps_epi32(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(a, bcast(-128)), bcast(127)), bcast(128));
}

static inline vi stage_out(const PackedStage& s, vi acc, int channel) {
  return Isa::lookup(s.table, requant_index(acc, s.mult[channel]));
}

// word(x) = c(x) | c(x+1) << 8 | c(x+2) << 16 | c(x+3) << 24 for a row of n codes (one per
// lane, 0..255), past the row's end zeros: the four activations one lane's vpdpbusd reads.
static inline void row_words(const vi* codes, int n, vi* words) {
  vi w = _mm512_setzero_si512();
  for (int x = n - 1; x >= 0; --x) {
    w = _mm512_or_si512(_mm512_slli_epi32(w, 8), codes[x]);
    words[x] = w;
  }
}

}  // namespace lenet::cpu::int8::LENET_I8_NS
