#include "engine/cuda/packing.h"

#include <algorithm>

namespace lenet::cuda {

namespace {

void set_activation(const Model& m, int& act, float& amp, float& slope, float& add) {
  const SquashForm f = squash_form(m.activation);
  act = f.act, amp = f.amp, slope = f.slope, add = f.add;
}

}  // namespace

PackedModel pack_model(const Model& m) {
  validate(m);
  PackedModel pk;
  SubsampleParams& s = pk.sub;
  set_activation(m, s.act, s.act_amp, s.act_slope, s.act_add);
  s.pooling = pool_kind(m.pooling);
  s.input_size = m.input_size;
  s.c1_pad = m.c1_padding;
  s.pre_pad = m.pre.pad;
  s.pre_invert = m.pre.invert ? 1 : 0;
  s.pre_scale = m.pre.scale;
  s.pre_offset = m.pre.offset;
  std::copy(m.c1_w.begin(), m.c1_w.end(), s.c1_w);
  std::copy(m.c1_b.begin(), m.c1_b.end(), s.c1_b);
  std::copy(m.c3_w.begin(), m.c3_w.end(), s.c3_w);
  std::copy(m.c3_b.begin(), m.c3_b.end(), s.c3_b);
  const bool trainable = m.pooling == Pooling::Trainable;
  for (int i = 0; i < kMaps1; ++i) {
    s.s2_coef[i] = trainable ? m.s2_coef[i] : 0.f;
    s.s2_bias[i] = trainable ? m.s2_bias[i] : 0.f;
  }
  for (int o = 0; o < kMaps3; ++o) {
    s.s4_coef[o] = trainable ? m.s4_coef[o] : 0.f;
    s.s4_bias[o] = trainable ? m.s4_bias[o] : 0.f;
  }
  c3_input_lists(m, s.c3_fan_in, s.c3_inputs);

  HeadParams& h = pk.head;
  set_activation(m, h.act, h.act_amp, h.act_slope, h.act_add);
  h.rbf = m.head == Head::Rbf ? 1 : 0;
  h.classes = m.num_classes;
  h.out_u = m.num_classes <= kHeadUnitGroups ? 1 : kHeadU;
  const int cols = kHeadUnitGroups * h.out_u;
  h.out_pad = (m.num_classes + cols - 1) / cols * cols;
  pk.c5_wt = transpose_pad(m.c5_w, kC5, kS4Len, kC5Pad);
  pk.c5_b = zero_pad(m.c5_b, kC5Pad);
  pk.f6_wt = transpose_pad(m.f6_w, kF6, kC5, kF6Pad);
  pk.f6_b = zero_pad(m.f6_b, kF6Pad);
  pk.out_wt = transpose_pad(m.out_w, m.num_classes, kF6, h.out_pad);
  pk.out_b = zero_pad(m.head == Head::Linear ? m.out_b : std::vector<float>{}, size_t(h.out_pad));
  return pk;
}

HeadParams host_head_params(const PackedModel& pk) {
  HeadParams h = pk.head;
  h.c5_wt = pk.c5_wt.data();
  h.c5_b = pk.c5_b.data();
  h.f6_wt = pk.f6_wt.data();
  h.f6_b = pk.f6_b.data();
  h.out_wt = pk.out_wt.data();
  h.out_b = pk.out_b.data();
  return h;
}

}  // namespace lenet::cuda
