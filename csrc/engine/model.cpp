#include "engine/model.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace lenet {

SquashForm squash_form(Activation a) {
  switch (a) {
    case Activation::ScaledTanh: return {kActTanhLike, 1.7159f, 2.f / 3.f, 0.f};
    case Activation::Sigmoid: return {kActTanhLike, 0.5f, 0.5f, 0.5f};
    case Activation::Relu: break;
  }
  return {kActRelu, 1.f, 1.f, 0.f};
}

PoolKind pool_kind(Pooling p) {
  return p == Pooling::Trainable ? kPoolTrainable : p == Pooling::Avg ? kPoolAvg : kPoolMax;
}


namespace {

void check_size(const std::vector<float>& v, size_t want, const char* name) {
  if (v.size() != want)
    throw std::invalid_argument(std::string("weight '") + name + "' has " + std::to_string(v.size()) +
                                " values; expected " + std::to_string(want));
}

}  // namespace

void validate(const Model& m) {
  if (m.input_size != 28 && m.input_size != 32)
    throw std::invalid_argument("input_size must be 28 or 32, got " + std::to_string(m.input_size));
  if (m.input_size + 2 * m.c1_padding != 32)
    throw std::invalid_argument("input_size + 2*c1_padding must be 32");
  if (m.pre.pad < 0 || 28 + 2 * m.pre.pad != m.input_size)
    throw std::invalid_argument("preprocessing pad does not bring 28x28 images to input_size");
  if (m.num_classes < 1 || m.num_classes > 4096)
    throw std::invalid_argument("num_classes must be in 1..4096, got " + std::to_string(m.num_classes));
  if (m.head == Head::Rbf && m.num_classes != 10)
    throw std::invalid_argument("the RBF head has 10 prototypes; num_classes must be 10");
  check_size(m.c1_w, kC1Maps * 25, "c1.weight");
  check_size(m.c1_b, kC1Maps, "c1.bias");
  if (m.pooling == Pooling::Trainable) {
    check_size(m.s2_coef, kC1Maps, "s2.coef");
    check_size(m.s2_bias, kC1Maps, "s2.bias");
    check_size(m.s4_coef, kC3Maps, "s4.coef");
    check_size(m.s4_bias, kC3Maps, "s4.bias");
  }
  check_size(m.c3_w, kC3Maps * kC1Maps * 25, "c3.weight");
  check_size(m.c3_b, kC3Maps, "c3.bias");
  check_size(m.c5_w, size_t(kC5Units) * kC3Maps * 25, "c5.weight");
  check_size(m.c5_b, kC5Units, "c5.bias");
  check_size(m.f6_w, size_t(kF6Units) * kC5Units, "f6.weight");
  check_size(m.f6_b, kF6Units, "f6.bias");
  check_size(m.out_w, size_t(m.num_classes) * kF6Units,
             m.head == Head::Rbf ? "output.prototypes" : "output.weight");
  if (m.head == Head::Linear) check_size(m.out_b, m.num_classes, "output.bias");
  for (int o = 0; o < kC3Maps; ++o) {
    int fan_in = 0;
    for (int i = 0; i < kC1Maps; ++i) fan_in += m.c3_connected[o * kC1Maps + i] != 0;
    if (fan_in == 0)
      throw std::invalid_argument("C3 map " + std::to_string(o) + " reads no S2 map");
  }
}

std::vector<float> transpose_pad(const std::vector<float>& w, int units, int k, int ld) {
  std::vector<float> t(size_t(k) * ld, 0.f);
  for (int u = 0; u < units; ++u)
    for (int i = 0; i < k; ++i) t[size_t(i) * ld + u] = w[size_t(u) * k + i];
  return t;
}

std::vector<float> zero_pad(const std::vector<float>& v, size_t n) {
  std::vector<float> out(n, 0.f);
  std::copy(v.begin(), v.begin() + std::min(v.size(), n), out.begin());
  return out;
}

void c3_input_lists(const Model& m, int fan_in[kC3Maps], int inputs[kC3Maps][kC1Maps]) {
  for (int o = 0; o < kC3Maps; ++o) {
    fan_in[o] = 0;
    for (int i = 0; i < kC1Maps; ++i) inputs[o][i] = 0;
    for (int i = 0; i < kC1Maps; ++i)
      if (m.c3_connected[o * kC1Maps + i]) inputs[o][fan_in[o]++] = i;
  }
}

}  // namespace lenet
