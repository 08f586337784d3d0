#include "engine/cpu/int8/packed.h"

#include <algorithm>

namespace lenet::cpu::int8 {

namespace {

int32_t word(const int8_t* taps, int n) {
  uint32_t w = 0;
  for (int k = 0; k < n; ++k) w |= uint32_t(uint8_t(taps[k])) << (8 * k);
  return int32_t(w);
}

void pack_stage(const QuantLayer& l, PackedStage& s) {
  for (int i = 0; i < kPre; ++i) {
    s.table.bytes[i] = l.table[i];
    s.table.words[i] = l.table[i];
    s.table.by_byte[i] = l.table[i ^ 0x80];
  }
  std::fill(std::begin(s.bias), std::end(s.bias), 0);
  std::fill(std::begin(s.mult), std::end(s.mult), 0.f);
  std::copy(l.bias.begin(), l.bias.end(), s.bias);
  std::copy(l.multiplier.begin(), l.multiplier.end(), s.mult);
}

// A 5x5 kernel as rows ky's taps 0..3, column 4's taps ky 0..3, and tap (4, 4).
void conv_words(const int8_t* k25, int32_t w4[5], int32_t& col, int32_t& last) {
  for (int ky = 0; ky < 5; ++ky) w4[ky] = word(k25 + ky * 5, 4);
  const int8_t column[4] = {k25[4], k25[9], k25[14], k25[19]};
  col = word(column, 4);
  last = word(k25 + 24, 1);
}

}  // namespace

void pack(const QuantModel& q, Packed& p) {
  validate(q);
  p.input_size = q.spec.input_size;
  p.invert = q.spec.pre.invert;
  p.input_scale = q.input_scale;
  p.input_zero = q.input_zero;
  for (int c = 0; c < kC1Maps; ++c) conv_words(&q.conv1.weight[size_t(c) * 25], p.c1_w4[c], p.c1_col[c], p.c1_last[c]);
  for (int o = 0; o < kC3Maps; ++o) {
    p.c3_fan_in[o] = 0;
    for (int i = 0; i < kC1Maps; ++i) {
      const int8_t* k = &q.conv3.weight[(size_t(o) * kC1Maps + i) * 25];
      conv_words(k, p.c3_w4[o][i], p.c3_col[o][i], p.c3_last[o][i]);
      p.c3_inputs[o][i] = 0;
      if (std::any_of(k, k + 25, [](int8_t v) { return v != 0; })) p.c3_inputs[o][p.c3_fan_in[o]++] = i;
    }
  }
  for (int c = 0; c < kC1Maps; ++c) p.s2_w[c] = word(&q.pool2.weight[size_t(c) * 4], 4);
  for (int c = 0; c < kC3Maps; ++c) p.s4_w[c] = word(&q.pool4.weight[size_t(c) * 4], 4);
  for (int u = 0; u < kC5Units; ++u)
    for (int g = 0; g < kC5Words; ++g) p.c5_w[u][g] = word(&q.conv5.weight[size_t(u) * kC5In + 4 * g], 4);
  for (int u = 0; u < kF6Units; ++u)
    for (int g = 0; g < kF6Words; ++g) p.f6_w[u][g] = word(&q.fc6.weight[size_t(u) * kC5Units + 4 * g], 4);
  pack_stage(q.conv1, p.c1);
  pack_stage(q.pool2, p.s2);
  pack_stage(q.conv3, p.c3);
  pack_stage(q.pool4, p.s4);
  pack_stage(q.conv5, p.c5);
  pack_stage(q.fc6, p.f6);
  p.head_scale = q.head_scale;
  for (int i = 0; i < kHeadClasses; ++i)
    for (int j = 0; j < kF6Units; ++j) p.prototypes[i][j] = q.prototypes[size_t(i) * kF6Units + j];
  std::fill(&p.c5_t[0][0], &p.c5_t[0][0] + kC5Words * kC5Pad, 0);
  std::fill(&p.f6_t[0][0], &p.f6_t[0][0] + kF6Words * kF6Pad, 0);
  for (int u = 0; u < kC5Units; ++u)
    for (int g = 0; g < kC5Words; ++g) p.c5_t[g][u] = p.c5_w[u][g];
  for (int u = 0; u < kF6Units; ++u)
    for (int g = 0; g < kF6Words; ++g) p.f6_t[g][u] = p.f6_w[u][g];
  for (int u = 0; u < kC5Pad; ++u) {
    p.c5_bias_t[u] = u < kC5Units ? p.c5.bias[u] : 0;
    p.c5_mult_t[u] = u < kC5Units ? p.c5.mult[u] : 0.f;
  }
  for (int u = 0; u < kF6Pad; ++u) {
    p.f6_bias_t[u] = u < kF6Units ? p.f6.bias[u] : 0;
    p.f6_mult_t[u] = u < kF6Units ? p.f6.mult[u] : 0.f;
  }
  for (int j = 0; j < kF6Units; ++j)
    for (int i = 0; i < 16; ++i) p.prototypes_t[j][i] = i < kHeadClasses ? p.prototypes[i][j] : 0.f;
}

}  // namespace lenet::cpu::int8
