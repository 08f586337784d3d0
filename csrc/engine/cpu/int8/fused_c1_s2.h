#pragma once
// INT8 CPU: the input's codes, C1 (5x5, 6 maps) -> tanh table -> S2 (2x2) -> tanh table, one
// image per lane, 16 images. C1's 28x28 maps never leave registers: two output rows of four
// positions at a time go straight into S2.
#include <cmath>
#include <cstring>

#include "engine/cpu/int8/simd.h"

namespace lenet::cpu::int8::LENET_I8_NS {

constexpr int kPlaneBytes = kIn * kIn * 16;  // [y][x][image] input codes

// Input codes of `count` images (lanes past count stay 0) into `plane`. Returns false on a
// NaN/Inf float pixel.
static bool input_codes(const Packed& p, const InputBatch& b, int64_t first, int count, uint8_t* plane) {
  std::memset(plane, 0, kPlaneBytes);
  const int size = b.size, off = (kIn - size) / 2;
  const int64_t npix = int64_t(size) * size;
  bool finite = true;
  for (int l = 0; l < count; ++l) {
    const int64_t img = first + l;
    for (int y = 0; y < size; ++y) {
      uint8_t* dst = plane + (size_t(y + off) * kIn + off) * 16 + l;
      if (b.u8) {
        const uint8_t* src = b.u8 + img * npix + y * size;
        for (int x = 0; x < size; ++x) dst[x * 16] = p.invert ? uint8_t(255 - src[x]) : src[x];
      } else {
        const float* src = b.f32 + img * npix + y * size;
        for (int x = 0; x < size; ++x) {
          const float v = src[x];
          if (!std::isfinite(v)) { finite = false; continue; }
          // ONNX QuantizeLinear: rint(x / scale) + zero, saturated.
          const float q = std::nearbyint(v / p.input_scale) + float(p.input_zero);
          dst[x * 16] = uint8_t(q < 0.f ? 0.f : q > 255.f ? 255.f : q);
        }
      }
    }
  }
  return finite;
}

// Words of input row y (32 positions).
static inline void input_row_words(const uint8_t* plane, int y, vi* words) {
  vi codes[kIn];
  for (int x = 0; x < kIn; ++x)
    codes[x] = _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(plane + (size_t(y) * kIn + x) * 16)));
  row_words(codes, kIn, words);
}

// C1 at output row y, positions x0..x0+3, all 6 maps -> output codes.
static inline void c1_chunk(const Packed& p, const vi* const rows[5], int x0, vi out[kC1Maps][4]) {
  vi acc[kC1Maps][4];
#pragma GCC unroll 6
  for (int c = 0; c < kC1Maps; ++c)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[c][j] = bcast(p.c1.bias[c]);
#pragma GCC unroll 5
  for (int ky = 0; ky < 5; ++ky) {
    const vi* r = rows[ky] + x0;
#pragma GCC unroll 8
    for (int wx = 0; wx < 8; ++wx) {
      const vi a = _mm512_load_si512(r + wx);
#pragma GCC unroll 6
      for (int c = 0; c < kC1Maps; ++c) {
        if (wx < 4) acc[c][wx] = Isa::dot(acc[c][wx], a, bcast(p.c1_w4[c][ky]));
        else acc[c][wx - 4] = Isa::dot(acc[c][wx - 4], a, bcast(p.c1_w1[c][ky]));
      }
    }
  }
#pragma GCC unroll 6
  for (int c = 0; c < kC1Maps; ++c)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) out[c][j] = stage_out(p.c1, acc[c][j], c);
}

// 2x2 subsampling of codes a (top row) and b (bottom row) at columns 2j, 2j+1.
static inline vi subsample(const PackedStage& s, const int32_t w[4], int channel, vi a0, vi a1, vi b0, vi b1) {
  vi acc = bcast(s.bias[channel]);
  acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(a0, bcast(w[0])));
  acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(a1, bcast(w[1])));
  acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(b0, bcast(w[2])));
  acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(b1, bcast(w[3])));
  return stage_out(s, acc, channel);
}

// Input -> S2 words: s2_words[(map * 14 + row) * 14 + x]. `ring` holds 6 input rows of words.
static void c1_s2(const Packed& p, const uint8_t* plane, vi* ring, vi* s2_words) {
  for (int y = 0; y < 4; ++y) input_row_words(plane, y, ring + (y % 6) * kIn);
  for (int py = 0; py < kS2Size; ++py) {
    const int y = 2 * py;
    for (int r = y + 4; r < y + 6; ++r) input_row_words(plane, r, ring + (r % 6) * kIn);
    const vi* top[5];
    const vi* bottom[5];
    for (int k = 0; k < 5; ++k) {
      top[k] = ring + ((y + k) % 6) * kIn;
      bottom[k] = ring + ((y + 1 + k) % 6) * kIn;
    }
    vi s2[kC1Maps][kS2Size];
    for (int x0 = 0; x0 < kC1Size; x0 += 4) {
      vi a[kC1Maps][4], b[kC1Maps][4];
      c1_chunk(p, top, x0, a);
      c1_chunk(p, bottom, x0, b);
      for (int c = 0; c < kC1Maps; ++c)
        for (int j = 0; j < 2; ++j)
          s2[c][x0 / 2 + j] = subsample(p.s2, p.s2_w[c], c, a[c][2 * j], a[c][2 * j + 1], b[c][2 * j], b[c][2 * j + 1]);
    }
    for (int c = 0; c < kC1Maps; ++c) row_words(s2[c], kS2Size, s2_words + (size_t(c) * kS2Size + py) * kS2Size);
  }
}

}  // namespace lenet::cpu::int8::LENET_I8_NS
