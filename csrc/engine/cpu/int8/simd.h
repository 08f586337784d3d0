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
  static inline vi and_(vi a, vi b) { return _mm512_and_si512(a, b); }
  template <int S>
  static inline vi shl(vi a) { return _mm512_slli_epi32(a, S); }
  template <int S>
  static inline vi shr(vi a) { return _mm512_srli_epi32(a, S); }
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
  // Rounded pre-activations r0..r3 -> words: byte k of a lane = table[clamp(rk, -128, 127) + 128].
  // Saturating packs clamp (and interleave 128-bit lanes: byte 4k+i of a lane is rk of image
  // 4j+i), a shuffle puts image 4j+i's four codes in dword i, one table lookup does all 64.
  static inline vi quad(const PackedTable& t, vi r0, vi r1, vi r2, vi r3) {
    const vi b = _mm512_shuffle_epi8(_mm512_packs_epi16(_mm512_packs_epi32(r0, r1), _mm512_packs_epi32(r2, r3)),
                                     _mm512_set4_epi32(0x0F0B0703, 0x0E0A0602, 0x0D090501, 0x0C080400));
    return lookup_bytes(t, b);
  }
  // 64 codes (int8) -> 64 table bytes.
  static inline vi lookup_bytes(const PackedTable& t, vi b) {
    const vi t0 = _mm512_load_si512(t.by_byte), t1 = _mm512_load_si512(t.by_byte + 64),
             t2 = _mm512_load_si512(t.by_byte + 128), t3 = _mm512_load_si512(t.by_byte + 192);
    const vi lo = _mm512_permutex2var_epi8(t0, b, t1), hi = _mm512_permutex2var_epi8(t2, b, t3);
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(b), lo, hi);
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
  static inline vi and_(vi a, vi b) { return _mm256_and_si256(a, b); }
  template <int S>
  static inline vi shl(vi a) { return _mm256_slli_epi32(a, S); }
  template <int S>
  static inline vi shr(vi a) { return _mm256_srli_epi32(a, S); }
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
  static inline vi quad(const PackedTable& t, vi r0, vi r1, vi r2, vi r3) {
    const vi b = _mm256_shuffle_epi8(_mm256_packs_epi16(_mm256_packs_epi32(r0, r1), _mm256_packs_epi32(r2, r3)),
                                     _mm256_setr_epi32(0x0C080400, 0x0D090501, 0x0E0A0602, 0x0F0B0703,
                                                       0x0C080400, 0x0D090501, 0x0E0A0602, 0x0F0B0703));
    return _mm512_castsi512_si256(V16::lookup_bytes(t, _mm512_castsi256_si512(b)));
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

// Four accumulators of a stage, each with its own multiplier -> one vector of words: byte k of a
// lane = that lane's stage_out of acc k. The same arithmetic as stage_out, four at a time.
template <class V>
static inline typename V::vi quad_out(const PackedStage& s, typename V::vi a0, typename V::vi a1, typename V::vi a2,
                                      typename V::vi a3, float m0, float m1, float m2, float m3) {
#if LENET_I8_VNNI
  // Rounded only: quad's saturating packs do the clamp.
  const auto r = [](typename V::vi a, float m) { return V::round(V::fmul(V::to_float(a), V::fset1(m))); };
  return V::quad(s.table, r(a0, m0), r(a1, m1), r(a2, m2), r(a3, m3));
#else
  const auto code = [&](typename V::vi a, float m) { return V::lookup(s.table, requant_index<V>(a, m)); };
  return V::or_(V::or_(code(a0, m0), V::template shl<8>(code(a1, m1))),
                V::or_(V::template shl<16>(code(a2, m2)), V::template shl<24>(code(a3, m3))));
#endif
}

// Column words: col(y, x) = c(y, x) | c(y+1, x) << 8 | c(y+2, x) << 16 | c(y+3, x) << 24, the four
// codes a 5x5 kernel's column 4 reads. col(y + 1) from col(y) and the row word of row y + 4 (its
// byte 0 is c(y + 4, x)).
template <class V>
static inline typename V::vi column_next(typename V::vi col, typename V::vi row_word) {
  return V::or_(V::template shr<8>(col), V::template shl<24>(row_word));
}

// The word at x + k from the words at x and x + 4 (k = 0..3).
template <class V, int K>
static inline typename V::vi word_at(typename V::vi w0, typename V::vi w4) {
  if constexpr (K == 0) return w0;
  else return V::or_(V::template shr<8 * K>(w0), V::template shl<32 - 8 * K>(w4));
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
