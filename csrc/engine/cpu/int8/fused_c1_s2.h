#pragma once
// INT8 CPU: the input's codes, C1 (5x5, 6 maps) -> tanh table -> S2 (2x2) -> tanh table, one
// image per lane, 16 images. C1's 28x28 maps never leave registers: two output rows of four
// positions at a time go straight into S2.
#include <cmath>
#include <cstring>

#include "engine/cpu/int8/kernels.h"
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

// Row y of kLanes images' codes, tile[lane][y][x] (a 32x32 plane an image), into the plane's
// layout [x][lane]: dword k of the row of every image (x = 4k..4k+3) gathered into one vector,
// then a byte transpose within it (vpshufb per 128-bit lane: [x][4 images]; vpermd: [x][lanes]).
template <class V>
static inline void transpose_row(const uint8_t* tile, int y, uint8_t* dst);

template <>
inline void transpose_row<V16>(const uint8_t* tile, int y, uint8_t* dst) {
  const __m512i rows = _mm512_add_epi32(
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(kIn * kIn / 4)),
      _mm512_set1_epi32(y * kIn / 4));
  const __m512i bytes = _mm512_set4_epi32(0x0F0B0703, 0x0E0A0602, 0x0D090501, 0x0C080400);
  const __m512i dwords = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
#pragma GCC unroll 8
  for (int k = 0; k < kIn / 4; ++k) {
    const __m512i g = _mm512_i32gather_epi32(_mm512_add_epi32(rows, _mm512_set1_epi32(k)), tile, 4);
    _mm512_store_si512(dst + 64 * k, _mm512_permutexvar_epi32(dwords, _mm512_shuffle_epi8(g, bytes)));
  }
}

template <>
inline void transpose_row<V8>(const uint8_t* tile, int y, uint8_t* dst) {
  const __m256i rows = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(kIn * kIn / 4)),
                                        _mm256_set1_epi32(y * kIn / 4));
  const __m256i bytes = _mm256_setr_epi32(0x0C080400, 0x0D090501, 0x0E0A0602, 0x0F0B0703,
                                          0x0C080400, 0x0D090501, 0x0E0A0602, 0x0F0B0703);
  const __m256i dwords = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
#pragma GCC unroll 8
  for (int k = 0; k < kIn / 4; ++k) {
    const __m256i g = _mm256_i32gather_epi32(reinterpret_cast<const int*>(tile), _mm256_add_epi32(rows, _mm256_set1_epi32(k)), 4);
    _mm256_store_si256(reinterpret_cast<__m256i*>(dst + 32 * k), _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(g, bytes), dwords));
  }
}

// Bytes of input_codes' tile: each image's 32x32 codes.
template <class V>
constexpr size_t tile_bytes() { return size_t(V::kLanes) * kIn * kIn; }

// One image's codes, codes[y * 32 + x] (padding: code 0). Returns false on a NaN/Inf float pixel.
static inline bool image_codes(const Packed& p, const InputBatch& b, int64_t index, uint8_t* codes) {
  const int size = b.size, off = (kIn - size) / 2;
  const int64_t npix = int64_t(size) * size;
  if (off > 0) std::memset(codes, 0, size_t(kIn) * kIn);
  codes += off * kIn + off;
  if (b.u8) {  // a row of pixels (masked: no byte past it read), inverted by xor 255 for black-on-white ink
    const uint8_t* src = b.u8 + index * npix;
    const __mmask64 row = (__mmask64(1) << size) - 1;
    const __m512i flip = _mm512_set1_epi8(p.invert ? char(0xFF) : 0);
    for (int y = 0; y < size; ++y)
      _mm512_mask_storeu_epi8(codes + y * kIn, row, _mm512_xor_si512(_mm512_maskz_loadu_epi8(row, src + y * size), flip));
    return true;
  }
  const float* src = b.f32 + index * npix;
  bool finite = true;
  for (int y = 0; y < size; ++y) finite = float_codes(src + y * size, size, p.input_scale, p.input_zero, codes + y * kIn) && finite;
  return finite;
}

// Input codes of `count` images (lanes past count and the padding: code 0) into `plane`: each
// image's codes into `tile` (tile_bytes, read image by image), then the plane a row at a time.
// Returns false on a NaN/Inf float pixel.
template <class V>
static bool input_codes(const Packed& p, const InputBatch& b, int64_t first, int count, uint8_t* tile, uint8_t* plane) {
  constexpr int L = V::kLanes;
  std::memset(tile + size_t(count) * kIn * kIn, 0, size_t(L - count) * kIn * kIn);
  bool finite = true;
  for (int l = 0; l < count; ++l) finite = image_codes(p, b, first + l, tile + size_t(l) * kIn * kIn) && finite;
  for (int y = 0; y < kIn; ++y) transpose_row<V>(tile, y, plane + size_t(y) * kIn * L);
  return finite;
}

// Words of input row y (32 positions).
template <class V>
static inline void input_row_words(const uint8_t* plane, int y, typename V::vi* words) {
  typename V::vi codes[kIn];
  for (int x = 0; x < kIn; ++x) codes[x] = V::widen_codes(plane + (size_t(y) * kIn + x) * V::kLanes);
  row_words<V>(codes, kIn, words);
}

// C1 accumulators at output rows y (d = 0) and y + 1 (d = 1), positions x0..x0+3, maps
// c0..c0+2: 7 vpdpbusd per output (rows' taps 0..3, column 4's taps 0..3, tap (4, 4)).
// rows[r]: words of input row y + r (r = 0..5), each loaded word feeding both output rows;
// cols[d]: column words of input row y + d.
template <class V>
static inline void c1_pair(const Packed& p, const typename V::vi* const rows[6], const typename V::vi* const cols[2],
                           int x0, int c0, typename V::vi acc[2][3][4]) {
  using vi = typename V::vi;
#pragma GCC unroll 2
  for (int d = 0; d < 2; ++d)
#pragma GCC unroll 3
    for (int c = 0; c < 3; ++c)
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[d][c][j] = V::set1(p.c1.bias[c0 + c]);
#pragma GCC unroll 6
  for (int r = 0; r < 6; ++r) {
    const vi* row = rows[r] + x0;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const vi a = V::load(row + j);
#pragma GCC unroll 2
      for (int d = 0; d < 2; ++d) {
        const int ky = r - d;
        if (ky < 0 || ky > 4) continue;
#pragma GCC unroll 3
        for (int c = 0; c < 3; ++c) acc[d][c][j] = V::dot(acc[d][c][j], a, V::set1(p.c1_w4[c0 + c][ky]));
      }
    }
    if (r >= 4) {  // tap (4, 4) of output row y + r - 4
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const vi a = V::load(row + 4 + j);
#pragma GCC unroll 3
        for (int c = 0; c < 3; ++c) acc[r - 4][c][j] = V::dot(acc[r - 4][c][j], a, V::set1(p.c1_last[c0 + c]));
      }
    }
  }
#pragma GCC unroll 2
  for (int d = 0; d < 2; ++d)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const vi a = V::load(cols[d] + x0 + 4 + j);
#pragma GCC unroll 3
      for (int c = 0; c < 3; ++c) acc[d][c][j] = V::dot(acc[d][c][j], a, V::set1(p.c1_col[c0 + c]));
    }
}

// One row of 14 accumulators of a stage (one multiplier) -> its 14 words (past the row's end
// zeros): four codes per table lookup, then each word from its neighbours four apart.
template <class V>
static inline void row_words_of(const PackedStage& s, const typename V::vi acc[kS2Size], float m,
                                typename V::vi* words) {
  using vi = typename V::vi;
  vi g[5];
  for (int k = 0; k < 3; ++k) g[k] = quad_out<V>(s, acc[4 * k], acc[4 * k + 1], acc[4 * k + 2], acc[4 * k + 3], m, m, m, m);
  g[3] = V::and_(quad_out<V>(s, acc[12], acc[13], acc[13], acc[13], m, m, m, m), V::set1(0xFFFF));
  g[4] = V::zero();
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    words[4 * k] = g[k];
    if (4 * k + 1 < kS2Size) words[4 * k + 1] = word_at<V, 1>(g[k], g[k + 1]);
    if (4 * k + 2 < kS2Size) words[4 * k + 2] = word_at<V, 2>(g[k], g[k + 1]);
    if (4 * k + 3 < kS2Size) words[4 * k + 3] = word_at<V, 3>(g[k], g[k + 1]);
  }
}

// Vectors of c1_s2's ring: 6 input rows of words, then the column words of 2 rows.
constexpr size_t kRingVectors = 8 * kIn;

// Input -> S2 words: s2_words[(map * 14 + row) * 14 + x] for S2 rows [0, pairs) (C1 rows
// [0, 2 * pairs)). `ring`: kRingVectors. Each 2x2 window of C1 codes is one word (top left, top
// right, bottom left, bottom right), S2 one vpdpbusd on it.
template <class V>
static void c1_s2(const Packed& p, const uint8_t* plane, typename V::vi* ring, typename V::vi* s2_words,
                  int pairs = kS2Size, const Ahead& ahead = {}) {
  using vi = typename V::vi;
  vi* col_y = ring + 6 * kIn;    // column words of input row y (the pair's top C1 row)
  vi* col_y1 = col_y + kIn;      // and of row y + 1
  for (int x = 0; x < kIn; ++x) col_y[x] = V::zero();
  for (int y = 0; y < 4; ++y) {
    input_row_words<V>(plane, y, ring + (y % 6) * kIn);
    for (int x = 0; x < kIn; ++x) col_y[x] = column_next<V>(col_y[x], ring[(y % 6) * kIn + x]);
  }
  for (int py = 0; py < pairs; ++py) {
    // A pair's share of the lines to prefetch into L2 (spread: a burst would fill the miss queue).
    const auto* next = static_cast<const char*>(ahead.data);
    for (size_t at = ahead.bytes * py / pairs; at < ahead.bytes * (py + 1) / pairs; at += 64)
      _mm_prefetch(next + at, _MM_HINT_T1);
    const int y = 2 * py;
    for (int r = y + 4; r < y + 6; ++r) input_row_words<V>(plane, r, ring + (r % 6) * kIn);
    const vi* rows[6];
    for (int r = 0; r < 6; ++r) rows[r] = ring + ((y + r) % 6) * kIn;
    for (int x = 0; x < kIn; ++x) col_y1[x] = column_next<V>(col_y[x], rows[4][x]);
    const vi* const cols[2] = {col_y, col_y1};
    vi s2[kC1Maps][kS2Size];
    for (int x0 = 0; x0 < kC1Size; x0 += 4)
      for (int c0 = 0; c0 < kC1Maps; c0 += 3) {
        vi acc[2][3][4];
        c1_pair<V>(p, rows, cols, x0, c0, acc);
        for (int c = 0; c < 3; ++c) {
          const float m = p.c1.mult[c0 + c];
          for (int j = 0; j < 2; ++j) {
            const vi w = quad_out<V>(p.c1, acc[0][c][2 * j], acc[0][c][2 * j + 1], acc[1][c][2 * j], acc[1][c][2 * j + 1], m, m, m, m);
            s2[c0 + c][x0 / 2 + j] = V::dot(V::set1(p.s2.bias[c0 + c]), w, V::set1(p.s2_w[c0 + c]));
          }
        }
      }
    for (int c = 0; c < kC1Maps; ++c)
      row_words_of<V>(p.s2, s2[c], p.s2.mult[c], s2_words + (size_t(c) * kS2Size + py) * kS2Size);
    for (int x = 0; x < kIn; ++x) col_y[x] = column_next<V>(col_y1[x], rows[5][x]);
  }
}

}  // namespace lenet::cpu::int8::LENET_I8_NS
