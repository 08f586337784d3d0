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

// A 5x5 kernel's row ky as (taps 0..3, tap 4).
void conv_row(const int8_t* k25, int ky, int32_t& w4, int32_t& w1) {
  w4 = word(k25 + ky * 5, 4);
  w1 = word(k25 + ky * 5 + 4, 1);
}

}  // namespace

void pack(const QuantModel& q, Packed& p) {
  validate(q);
  p.input_size = q.spec.input_size;
  p.invert = q.spec.pre.invert;
  p.input_scale = q.input_scale;
  p.input_zero = q.input_zero;
  for (int c = 0; c < kC1Maps; ++c)
    for (int ky = 0; ky < 5; ++ky) conv_row(&q.conv1.weight[size_t(c) * 25], ky, p.c1_w4[c][ky], p.c1_w1[c][ky]);
  for (int o = 0; o < kC3Maps; ++o) {
    p.c3_fan_in[o] = 0;
    for (int i = 0; i < kC1Maps; ++i) {
      const int8_t* k = &q.conv3.weight[(size_t(o) * kC1Maps + i) * 25];
      for (int ky = 0; ky < 5; ++ky) conv_row(k, ky, p.c3_w4[o][i][ky], p.c3_w1[o][i][ky]);
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
}

}  // namespace lenet::cpu::int8
