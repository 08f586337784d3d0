#pragma once
// A QuantModel in the layout the INT8 kernels read. Weights of a dot product are 4-byte words
// (four int8 taps that one vpdpbusd lane multiplies with four uint8 activations of one image).
#include <cstdint>

#include "engine/cpu/int8/quant_model.h"

namespace lenet::cpu::int8 {

constexpr int kC5Pad = 128, kF6Pad = 96;  // C5's 120 and F6's 84 units in whole vectors of 16

struct alignas(64) PackedTable {
  uint8_t bytes[kPre];    // vpermi2b form, indexed by pre-activation code + 128
  int32_t words[kPre];    // gather form
  uint8_t by_byte[kPre];  // vpermi2b form indexed by the code's own byte (two's complement)
};

struct PackedStage {
  PackedTable table;
  int32_t bias[kC5Units];
  float mult[kC5Units];
};

struct Packed {
  // Input: uint8 pixel p -> code (invert ? 255 - p : p), padding code 0; float x -> rint(x/scale)+zero.
  int input_size = 32;
  bool invert = false;
  float input_scale = 1.f;
  int input_zero = 0;
  // 5x5 convolutions in 7 words: w4[ky] = row ky's taps kx 0..3 (against a row word), col = column
  // 4's taps ky 0..3 (against a column word: four rows' codes at one x), last = tap (4, 4) in byte 0.
  int32_t c1_w4[kC1Maps][5], c1_col[kC1Maps], c1_last[kC1Maps];
  int32_t c3_w4[kC3Maps][kC1Maps][5], c3_col[kC3Maps][kC1Maps], c3_last[kC3Maps][kC1Maps];
  int c3_fan_in[kC3Maps], c3_inputs[kC3Maps][kC1Maps];  // the S2 maps whose weights are not all zero
  // 2x2 subsampling taps (0,0) (0,1) (1,0) (1,1) as one word (byte k: tap k).
  int32_t s2_w[kC1Maps], s4_w[kC3Maps];
  int32_t c5_w[kC5Units][kC5Words];     // features o*25 + ky*5 + kx, four per word
  int32_t f6_w[kF6Units][kF6Words];
  PackedStage c1, s2, c3, s4, c5, f6;
  float head_scale = 1.f;
  float prototypes[kHeadClasses][kF6Units];
  // One image's head (units in lanes, 16 a vector): C5 and F6 weights transposed ([word][unit]),
  // units padded with zeros; bias and multipliers padded likewise; prototypes as [unit][class].
  alignas(64) int32_t c5_t[kC5Words][kC5Pad];
  alignas(64) int32_t f6_t[kF6Words][kF6Pad];
  alignas(64) int32_t c5_bias_t[kC5Pad], f6_bias_t[kF6Pad];
  alignas(64) float c5_mult_t[kC5Pad], f6_mult_t[kF6Pad];
  alignas(64) float prototypes_t[kF6Units][16];
};

// Validates, then packs.
void pack(const QuantModel& q, Packed& p);

}  // namespace lenet::cpu::int8
