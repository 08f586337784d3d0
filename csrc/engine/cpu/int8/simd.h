#pragma once
// The vector operations of the INT8 kernels, per instruction set and width; included by each
// kernels_<isa>.cpp inside its own namespace (LENET_I8_NS), compiled with that ISA's flags.
//   VNNI: vpdpbusd (uint8 x int8 products, four summed into each int32 lane) and the tanh table
//         by two vpermi2b (AVX-512 VNNI + VBMI + VL);
//   BW:   the same sums from vpmaddwd on 16-bit halves (exact: no 16-bit saturation), and the
//         table by a gather (AVX-512 F + BW).
// Width: V16 puts 16 images in a zmm (batches), V8 8 images in a ymm: a call with few images
// pays for half the work where the CPU splits 512-bit operations in two (AMD Zen 4).
#include <immintrin.h>

#include "engine/cpu/int8/packed.h"

namespace lenet::cpu::int8::LENET_I8_NS {

struct V16 {
  static constexpr int kLanes = 16;
  using vi = __m512i;
  using vf = __m512;
  static inline vi load(const vi* p) { return _mm512_load_si512(p); }
  static inline vi set1(int32_t v) { return _mm512_set1_epi32(v); }
  static inline vi zero() { return _mm512_setzero_si512(); }
  static inline vi add(vi a, vi b) { return _mm512_add_epi32(a, b); }
  static inline vi sub(vi a, vi b) { return _mm512_sub_epi32(a, b); }
  static inline vi mullo(vi a, vi b) { return _mm512_mullo_epi32(a, b); }
  static inline vi or_(vi a, vi b) { return _mm512_or_si512(a, b); }
  template <int S>
  static inline vi shl(vi a) { return _mm512_slli_epi32(a, S); }
  static inline vi clamp_shift(vi a) {  // clamp(a, -128, 127) + 128
    return _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(a, set1(-128)), set1(127)), set1(128));
  }
  // Codes of one pixel of every lane (kLanes bytes), zero-extended.
  static inline vi widen_codes(const uint8_t* p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static inline vf to_float(vi a) { return _mm512_cvtepi32_ps(a); }
  static inline vf fset1(float v) { return _mm512_set1_ps(v); }
  static inline vf fzero() { return _mm512_setzero_ps(); }
  static inline vf fmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
  static inline vf fadd(vf a, vf b) { return _mm512_add_ps(a, b); }
  static inline vf fsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
  static inline void fstore(float* p, vf a) { _mm512_store_ps(p, a); }
  static inline vi round(vf f) { return _mm512_cvt_roundps_epi32(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
#if LENET_I8_VNNI
  static inline vi dot(vi acc, vi a, vi w) { return _mm512_dpbusd_epi32(acc, a, w); }
  static inline vi lookup(const PackedTable& t, vi idx) {
    const vi t0 = _mm512_load_si512(t.bytes), t1 = _mm512_load_si512(t.bytes + 64),
             t2 = _mm512_load_si512(t.bytes + 128), t3 = _mm512_load_si512(t.bytes + 192);
    const vi lo = _mm512_permutex2var_epi8(t0, idx, t1), hi = _mm512_permutex2var_epi8(t2, idx, t3);
    const __mmask64 upper = _mm512_test_epi8_mask(idx, _mm512_set1_epi8(char(0x80)));
    return _mm512_and_si512(_mm512_mask_blend_epi8(upper, lo, hi), _mm512_set1_epi32(0xFF));
  }
#else
  static inline vi dot(vi acc, vi a, vi w) {
    const vi a_even = _mm512_and_si512(a, _mm512_set1_epi16(0x00FF)), a_odd = _mm512_srli_epi16(a, 8);
    const vi w_even = _mm512_srai_epi16(_mm512_slli_epi16(w, 8), 8), w_odd = _mm512_srai_epi16(w, 8);
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(a_even, w_even));
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a_odd, w_odd));
  }
  static inline vi lookup(const PackedTable& t, vi idx) { return _mm512_i32gather_epi32(idx, t.words, 4); }
#endif
};

struct V8 {
  static constexpr int kLanes = 8;
  using vi = __m256i;
  using vf = __m256;
  static inline vi load(const vi* p) { return _mm256_load_si256(p); }
  static inline vi set1(int32_t v) { return _mm256_set1_epi32(v); }
  static inline vi zero() { return _mm256_setzero_si256(); }
  static inline vi add(vi a, vi b) { return _mm256_add_epi32(a, b); }
  static inline vi sub(vi a, vi b) { return _mm256_sub_epi32(a, b); }
  static inline vi mullo(vi a, vi b) { return _mm256_mullo_epi32(a, b); }
  static inline vi or_(vi a, vi b) { return _mm256_or_si256(a, b); }
  template <int S>
  static inline vi shl(vi a) { return _mm256_slli_epi32(a, S); }
  static inline vi clamp_shift(vi a) {
    return _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(a, set1(-128)), set1(127)), set1(128));
  }
  static inline vi widen_codes(const uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadu_si64(p));
  }
  static inline vf to_float(vi a) { return _mm256_cvtepi32_ps(a); }
  static inline vf fset1(float v) { return _mm256_set1_ps(v); }
  static inline vf fzero() { return _mm256_setzero_ps(); }
  static inline vf fmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
  static inline vf fadd(vf a, vf b) { return _mm256_add_ps(a, b); }
  static inline vf fsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
  static inline void fstore(float* p, vf a) { _mm256_store_ps(p, a); }
  // Round to nearest even explicitly (no embedded rounding at this width), then an exact convert.
  static inline vi round(vf f) {
    return _mm256_cvttps_epi32(_mm256_round_ps(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
#if LENET_I8_VNNI
  static inline vi dot(vi acc, vi a, vi w) { return _mm256_dpbusd_epi32(acc, a, w); }
  static inline vi lookup(const PackedTable& t, vi idx) {
    return _mm512_castsi512_si256(V16::lookup(t, _mm512_castsi256_si512(idx)));
  }
#else
  static inline vi dot(vi acc, vi a, vi w) {
    const vi a_even = _mm256_and_si256(a, _mm256_set1_epi16(0x00FF)), a_odd = _mm256_srli_epi16(a, 8);
    const vi w_even = _mm256_srai_epi16(_mm256_slli_epi16(w, 8), 8), w_odd = _mm256_srai_epi16(w, 8);
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(a_even, w_even));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a_odd, w_odd));
  }
  static inline vi lookup(const PackedTable& t, vi idx) { return _mm256_i32gather_epi32(t.words, idx, 4); }
#endif
};

// int32 accumulators -> table index: clamp(rint(float32(acc) * m), -128, 127) + 128, ties to even.
template <class V>
static inline typename V::vi requant_index(typename V::vi acc, float m) {
  return V::clamp_shift(V::round(V::fmul(V::to_float(acc), V::fset1(m))));
}

template <class V>
static inline typename V::vi stage_out(const PackedStage& s, typename V::vi acc, int channel) {
  return V::lookup(s.table, requant_index<V>(acc, s.mult[channel]));
}

// word(x) = c(x) | c(x+1) << 8 | c(x+2) << 16 | c(x+3) << 24 for a row of n codes (one per
// lane, 0..255), past the row's end zeros: the four activations one lane's vpdpbusd reads.
template <class V>
static inline void row_words(const typename V::vi* codes, int n, typename V::vi* words) {
  typename V::vi w = V::zero();
  for (int x = n - 1; x >= 0; --x) {
    w = V::or_(V::template shl<8>(w), codes[x]);
    words[x] = w;
  }
}

}  // namespace lenet::cpu::int8::LENET_I8_NS
