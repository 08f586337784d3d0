#pragma once
// INT8 CPU: the input's codes, C1 (5x5, 6 maps) -> tanh table -> S2 (2x2) -> tanh table, one
// image per lane, 16 images. C1's 28x28 maps never leave registers: two output rows of four
// positions at a time go straight into S2.
#include <cmath>
#include <cstring>

#include "engine/cpu/int8/simd.h"

namespace lenet::cpu::int8::LENET_I8_NS {

// Input codes: [y][x][lane], kLanes bytes a pixel.
template <class V>
constexpr int plane_bytes() { return kIn * kIn * V::kLanes; }

// Codes of n <= 32 float pixels (ONNX QuantizeLinear: rint(x / scale) + zero, saturated to
// 0..255; the division as the reference's, ties to even) into out (room for 32). A NaN/Inf pixel gets
// code 0 and makes it return false.
static inline bool float_codes(const float* src, int n, float scale, int zero, uint8_t* out) {
  bool finite = true;
  for (int x0 = 0; x0 < n; x0 += 16) {
    const __mmask16 m = n - x0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - x0)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, src + x0);
    const __mmask16 ok = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(INFINITY), _CMP_LT_OQ) & m;
    finite = finite && ok == m;
    __m512 q = _mm512_roundscale_ps(_mm512_div_ps(v, _mm512_set1_ps(scale)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm512_add_ps(q, _mm512_set1_ps(float(zero)));
    q = _mm512_min_ps(_mm512_max_ps(q, _mm512_setzero_ps()), _mm512_set1_ps(255.f));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + x0), _mm512_cvtepi32_epi8(_mm512_maskz_cvttps_epi32(ok, q)));
  }
  return finite;
}

// Input codes of `count` images (lanes past count stay 0) into `plane`. Returns false on a
// NaN/Inf float pixel.
template <class V>
static bool input_codes(const Packed& p, const InputBatch& b, int64_t first, int count, uint8_t* plane) {
  constexpr int L = V::kLanes;
  std::memset(plane, 0, plane_bytes<V>());
  const int size = b.size, off = (kIn - size) / 2;
  const int64_t npix = int64_t(size) * size;
  bool finite = true;
  for (int l = 0; l < count; ++l) {
    const int64_t img = first + l;
    for (int y = 0; y < size; ++y) {
      uint8_t* dst = plane + (size_t(y + off) * kIn + off) * L + l;
      if (b.u8) {
        const uint8_t* src = b.u8 + img * npix + y * size;
        for (int x = 0; x < size; ++x) dst[x * L] = p.invert ? uint8_t(255 - src[x]) : src[x];
      } else {
        alignas(64) uint8_t codes[kIn];
        finite = float_codes(b.f32 + img * npix + y * size, size, p.input_scale, p.input_zero, codes) && finite;
        for (int x = 0; x < size; ++x) dst[x * L] = codes[x];
      }
    }
  }
  return finite;
}

// Words of input row y (32 positions).
template <class V>
static inline void input_row_words(const uint8_t* plane, int y, typename V::vi* words) {
  typename V::vi codes[kIn];
  for (int x = 0; x < kIn; ++x) codes[x] = V::widen_codes(plane + (size_t(y) * kIn + x) * V::kLanes);
  row_words<V>(codes, kIn, words);
}

// C1 at output row y, positions x0..x0+3, all 6 maps -> output codes.
template <class V>
static inline void c1_chunk(const Packed& p, const typename V::vi* const rows[5], int x0,
                            typename V::vi out[kC1Maps][4]) {
  using vi = typename V::vi;
  vi acc[kC1Maps][4];
#pragma GCC unroll 6
  for (int c = 0; c < kC1Maps; ++c)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[c][j] = V::set1(p.c1.bias[c]);
#pragma GCC unroll 5
  for (int ky = 0; ky < 5; ++ky) {
    const vi* r = rows[ky] + x0;
#pragma GCC unroll 8
    for (int wx = 0; wx < 8; ++wx) {
      const vi a = V::load(r + wx);
#pragma GCC unroll 6
      for (int c = 0; c < kC1Maps; ++c) {
        if (wx < 4) acc[c][wx] = V::dot(acc[c][wx], a, V::set1(p.c1_w4[c][ky]));
        else acc[c][wx - 4] = V::dot(acc[c][wx - 4], a, V::set1(p.c1_w1[c][ky]));
      }
    }
  }
#pragma GCC unroll 6
  for (int c = 0; c < kC1Maps; ++c)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) out[c][j] = stage_out<V>(p.c1, acc[c][j], c);
}

// 2x2 subsampling of codes a (top row) and b (bottom row) at columns 2j, 2j+1.
template <class V>
static inline typename V::vi subsample(const PackedStage& s, const int32_t w[4], int channel, typename V::vi a0,
                                       typename V::vi a1, typename V::vi b0, typename V::vi b1) {
  typename V::vi acc = V::set1(s.bias[channel]);
  acc = V::add(acc, V::mullo(a0, V::set1(w[0])));
  acc = V::add(acc, V::mullo(a1, V::set1(w[1])));
  acc = V::add(acc, V::mullo(b0, V::set1(w[2])));
  acc = V::add(acc, V::mullo(b1, V::set1(w[3])));
  return stage_out<V>(s, acc, channel);
}

// Input -> S2 words: s2_words[(map * 14 + row) * 14 + x] for S2 rows [0, pairs) (C1 rows
// [0, 2 * pairs)). `ring` holds 6 input rows of words.
template <class V>
static void c1_s2(const Packed& p, const uint8_t* plane, typename V::vi* ring, typename V::vi* s2_words,
                  int pairs = kS2Size) {
  using vi = typename V::vi;
  for (int y = 0; y < 4; ++y) input_row_words<V>(plane, y, ring + (y % 6) * kIn);
  for (int py = 0; py < pairs; ++py) {
    const int y = 2 * py;
    for (int r = y + 4; r < y + 6; ++r) input_row_words<V>(plane, r, ring + (r % 6) * kIn);
    const vi* top[5];
    const vi* bottom[5];
    for (int k = 0; k < 5; ++k) {
      top[k] = ring + ((y + k) % 6) * kIn;
      bottom[k] = ring + ((y + 1 + k) % 6) * kIn;
    }
    vi s2[kC1Maps][kS2Size];
    for (int x0 = 0; x0 < kC1Size; x0 += 4) {
      vi a[kC1Maps][4], b[kC1Maps][4];
      c1_chunk<V>(p, top, x0, a);
      c1_chunk<V>(p, bottom, x0, b);
      for (int c = 0; c < kC1Maps; ++c)
        for (int j = 0; j < 2; ++j)
          s2[c][x0 / 2 + j] = subsample<V>(p.s2, p.s2_w[c], c, a[c][2 * j], a[c][2 * j + 1], b[c][2 * j], b[c][2 * j + 1]);
    }
    for (int c = 0; c < kC1Maps; ++c) row_words<V>(s2[c], kS2Size, s2_words + (size_t(c) * kS2Size + py) * kS2Size);
  }
}

}  // namespace lenet::cpu::int8::LENET_I8_NS
