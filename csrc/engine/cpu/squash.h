#pragma once
// Squashing functions and subsampling on vectors (included by the ISA units after vec.h).
#include "engine/cpu/kernel_params.h"
#include "engine/cpu/vec.h"

namespace lenet::cpu::LENET_ISA_NS {

struct Act {
  bool relu, shifted;
  TanhCoefs tanh;
  vf add;
  explicit Act(const KernelParams& kp)
      : relu(kp.act == kActRelu), shifted(kp.act_add != 0.f), tanh(kp.act_slope, kp.act_amp),
        add(bcast(kp.act_add)) {}
  vf operator()(vf a) const {
    if (relu) return vmax(a, vf{});
    const vf t = vtanh_scaled(a, tanh);
    return shifted ? add + t : t;
  }
};

// One 2x2 subsampling unit: trainable (sum * coef + bias, squashed), average or max.
static inline vf pool4(int kind, vf a, vf b, vf c, vf d, float coef, float bias, const Act& act) {
  if (kind == kPoolMax) return vmax(vmax(a, b), vmax(c, d));
  const vf s = (a + b) + (c + d);
  if (kind == kPoolAvg) return s * 0.25f;
  return act(s * coef + bias);
}

}  // namespace lenet::cpu::LENET_ISA_NS
