#pragma once
// The INT8 network the INT8 engine runs: the integer constants lenet.quant computes (the one home
// of the quantization rules), checked once at load time, and packed into the kernels' layout.
#include <array>
#include <cstdint>
#include <vector>

#include "engine/model.h"

namespace lenet::cpu::int8 {

constexpr int kIn = 32;                     // C1's input side
constexpr int kPre = 256;                   // entries of a tanh table (int8 pre-activation + 128)
constexpr int kC5In = kC3Maps * 25;         // 400
constexpr int kC5Words = kC5In / 4;         // 100 four-byte words
constexpr int kF6Words = kC5Units / 4;      // 30
constexpr int kHeadClasses = 10;

// One weighted sum (conv, subsampling or full layer) followed by the tanh table.
struct QuantLayer {
  std::vector<int8_t> weight;               // the plain graph's shape, row-major, output first
  std::vector<int32_t> bias;                // b_q - z_x * sum(w_q), [out]
  std::vector<float> multiplier;            // s_x * s_w / s_a, [out]
  std::array<uint8_t, kPre> table{};        // pre-activation code + 128 -> output code
};

struct QuantModel {
  Model spec;                               // geometry, preprocessing (input rules)
  float input_scale = 1.f;                  // s_in: float input -> code = rint(x / s_in) + z_in
  int input_zero = 0;
  QuantLayer conv1, pool2, conv3, pool4, conv5, fc6;
  float head_scale = 1.f;                   // A / 127: F6 code - 128 -> the paper's F6 output
  std::vector<float> prototypes;            // [10][84]
};

// Throws std::invalid_argument naming the first problem: sizes, non-positive or non-finite
// scales/multipliers, an architecture the INT8 path does not cover.
void validate(const QuantModel& q);

}  // namespace lenet::cpu::int8
