#include "engine/cpu/int8/quant_model.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace lenet::cpu::int8 {

namespace {

void check_layer(const QuantLayer& l, const char* name, size_t weights, size_t out) {
  const std::string n = name;
  if (l.weight.size() != weights)
    throw std::invalid_argument("int8 " + n + ".weight has " + std::to_string(l.weight.size()) +
                                " values; expected " + std::to_string(weights));
  if (l.bias.size() != out || l.multiplier.size() != out)
    throw std::invalid_argument("int8 " + n + ".bias/.multiplier need " + std::to_string(out) +
                                " values (one per output channel)");
  for (size_t c = 0; c < out; ++c)
    if (!std::isfinite(l.multiplier[c]) || !(l.multiplier[c] > 0.f))
      throw std::invalid_argument("int8 " + n + ".multiplier[" + std::to_string(c) +
                                  "] must be positive and finite, got " + std::to_string(l.multiplier[c]));
  // |acc| stays below 2^24 so float32(acc) is exact: 255 * 127 per tap, plus the bias.
  for (size_t c = 0; c < out; ++c)
    if (std::abs(int64_t(l.bias[c])) >= (int64_t(1) << 23))
      throw std::invalid_argument("int8 " + n + ".bias[" + std::to_string(c) + "] is out of range");
}

}  // namespace

void validate(const QuantModel& q) {
  const Model& m = q.spec;
  lenet::validate(m);
  if (m.activation != Activation::ScaledTanh || m.pooling != Pooling::Trainable || m.head != Head::Rbf ||
      m.c1_padding != 0)
    throw std::invalid_argument("the INT8 engine runs scaled-tanh networks with trainable subsampling, "
                                "an RBF head and no C1 padding (lenet5); this is " + m.arch);
  if (!std::isfinite(q.input_scale) || !(q.input_scale > 0.f))
    throw std::invalid_argument("int8 input scale must be positive and finite");
  if (q.input_zero < 0 || q.input_zero > 255) throw std::invalid_argument("int8 input zero point must be in 0..255");
  if (!std::isfinite(q.head_scale) || !(q.head_scale > 0.f))
    throw std::invalid_argument("int8 head scale must be positive and finite");
  check_layer(q.conv1, "conv1", kC1Maps * 25, kC1Maps);
  check_layer(q.pool2, "pool2", kC1Maps * 4, kC1Maps);
  check_layer(q.conv3, "conv3", size_t(kC3Maps) * kC1Maps * 25, kC3Maps);
  check_layer(q.pool4, "pool4", kC3Maps * 4, kC3Maps);
  check_layer(q.conv5, "conv5", size_t(kC5Units) * kC5In, kC5Units);
  check_layer(q.fc6, "fc6", size_t(kF6Units) * kC5Units, kF6Units);
  if (q.prototypes.size() != size_t(kHeadClasses) * kF6Units)
    throw std::invalid_argument("int8 head.prototypes must be [10, 84]");
  for (float p : q.prototypes)
    if (!std::isfinite(p)) throw std::invalid_argument("int8 head.prototypes hold NaN or Inf");
}

}  // namespace lenet::cpu::int8
