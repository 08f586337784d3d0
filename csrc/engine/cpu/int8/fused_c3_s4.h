#pragma once
// INT8 CPU: C3 (5x5 on the S2 maps its weights read) -> tanh table -> S4 (2x2), one image per
// lane. Two C3 rows of one map at a time (20 accumulators) go straight into S4: each 2x2 window
// of C3 codes is one word, S4 one vpdpbusd on it. S4's table is the caller's (s4_codes, or four
// features at a time into C5's words).
#include "engine/cpu/int8/simd.h"

namespace lenet::cpu::int8::LENET_I8_NS {

// Column words of the S2 maps: cols[(map * rows + r) * 14 + x] = col(r, x) for rows [0, rows)
// (reads S2 rows [0, rows + 3)).
template <class V>
static void s2_columns(const typename V::vi* s2_words, int rows, typename V::vi* cols) {
  using vi = typename V::vi;
  for (int i = 0; i < kC1Maps; ++i)
    for (int x = 0; x < kS2Size; ++x) {
      vi col = V::zero();
      for (int r = 0; r < rows + 3; ++r) {
        col = column_next<V>(col, s2_words[(size_t(i) * kS2Size + r) * kS2Size + x]);
        if (r >= 3) cols[(size_t(i) * rows + r - 3) * kS2Size + x] = col;
      }
    }
}

// S2 words -> S4 accumulators s4[map * 25 + row * 5 + x] (C5's 400 features), S4 rows [0, pairs).
// `cols`: room for kC1Maps * 2 * pairs * 14 vectors (the S2 maps' column words). 7 vpdpbusd per
// C3 output and S2 map (rows' taps 0..3, column 4's taps 0..3, tap (4, 4)).
template <class V>
static void c3_s4(const Packed& p, const typename V::vi* s2_words, typename V::vi* cols, typename V::vi* s4,
                  int pairs = kS4Size) {
  using vi = typename V::vi;
  const int col_rows = 2 * pairs;
  s2_columns<V>(s2_words, col_rows, cols);
  for (int o = 0; o < kC3Maps; ++o)
    for (int py = 0; py < pairs; ++py) {
      vi acc[2][kC3Size];
#pragma GCC unroll 2
      for (int d = 0; d < 2; ++d)
#pragma GCC unroll 10
        for (int x = 0; x < kC3Size; ++x) acc[d][x] = V::set1(p.c3.bias[o]);
      for (int k = 0; k < p.c3_fan_in[o]; ++k) {
        const int i = p.c3_inputs[o][k];
        const int32_t* w4 = p.c3_w4[o][i];
#pragma GCC unroll 6
        for (int r = 0; r < 6; ++r) {
          const vi* row = s2_words + (size_t(i) * kS2Size + 2 * py + r) * kS2Size;
#pragma GCC unroll 10
          for (int x = 0; x < kC3Size; ++x) {
            const vi a = V::load(row + x);
#pragma GCC unroll 2
            for (int d = 0; d < 2; ++d) {
              const int ky = r - d;
              if (ky >= 0 && ky <= 4) acc[d][x] = V::dot(acc[d][x], a, V::set1(w4[ky]));
            }
          }
          if (r >= 4) {  // tap (4, 4) of C3 row 2py + r - 4
#pragma GCC unroll 10
            for (int x = 0; x < kC3Size; ++x) acc[r - 4][x] = V::dot(acc[r - 4][x], V::load(row + x + 4), V::set1(p.c3_last[o][i]));
          }
        }
#pragma GCC unroll 2
        for (int d = 0; d < 2; ++d) {
          const vi* col = cols + (size_t(i) * col_rows + 2 * py + d) * kS2Size + 4;
#pragma GCC unroll 10
          for (int x = 0; x < kC3Size; ++x) acc[d][x] = V::dot(acc[d][x], V::load(col + x), V::set1(p.c3_col[o][i]));
        }
      }
      const float m = p.c3.mult[o];
#pragma GCC unroll 5
      for (int x = 0; x < kS4Size; ++x) {
        const vi w = quad_out<V>(p.c3, acc[0][2 * x], acc[0][2 * x + 1], acc[1][2 * x], acc[1][2 * x + 1], m, m, m, m);
        s4[o * 25 + py * kS4Size + x] = V::dot(V::set1(p.s4.bias[o]), w, V::set1(p.s4_w[o]));
      }
    }
}

}  // namespace lenet::cpu::int8::LENET_I8_NS
