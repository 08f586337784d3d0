#pragma once
// The weights of a Model in the layouts the CPU kernels read, as plain pointers.
// Built once per engine (cpu_engine.cpp); the ISA units only read it. Plain C data on purpose:
// the ISA units must not instantiate std:: templates (see vec.h).
#include <cstdint>

#include "engine/model.h"

namespace lenet::cpu {

// (ActKind and PoolKind: engine/model.h, shared with the CUDA kernels.)
enum HeadKind : int { kHeadRbf = 0, kHeadLinear = 1 };

struct KernelParams {
  // squash(a) = act_add + act_amp * tanh(act_slope * a)  (scaled tanh; sigmoid = 0.5 + 0.5 tanh(a/2))
  int act = kActTanhLike;
  float act_amp = 1.f, act_slope = 1.f, act_add = 0.f;
  int pooling = kPoolTrainable;
  int head = kHeadRbf;
  int classes = 10;

  const float* c1_w = nullptr;     // [6][25]
  const float* c1_b = nullptr;     // [6]
  const float* s2_coef = nullptr;  // [6]   (trainable pooling)
  const float* s2_bias = nullptr;  // [6]
  const float* c3_w = nullptr;     // [16][6][25] dense, zero where unconnected
  const float* c3_b = nullptr;     // [16]
  int c3_fan_in[kC3Maps] = {};     // connected S2 maps of each C3 map (the table)
  int c3_inputs[kC3Maps][kC1Maps] = {};
  bool c3_lecun = false;           // the table is kLeCunTable (the small path's fast C3)
  const float* c3_wo = nullptr;    // [6][25][16]: c3_w with the output maps innermost (small path)
  const float* s4_coef = nullptr;  // [16]
  const float* s4_bias = nullptr;  // [16]
  // Dense layers stored transposed ([inputs][outputs], k = map*25 + ky*5 + kx for C5) with the
  // output dimension zero-padded to a multiple of 16: the wide path broadcasts one weight per
  // FMA, the small-batch path loads whole vectors of output units.
  const float* c5_wt = nullptr;    // [400][kC5Ld]
  const float* c5_wt_pos = nullptr;  // [25*16][kC5Ld]: row pos*16 + map (small path's S4 order)
  const float* c5_b = nullptr;     // [kC5Ld]
  const float* f6_wt = nullptr;    // [120][kF6Ld]
  const float* f6_b = nullptr;     // [kF6Ld]
  const float* out_wt = nullptr;   // [84][out_ld]: RBF prototypes or linear weights, transposed
  const float* out_b = nullptr;    // [out_ld] (zeros for the RBF head)
  int out_ld = 16;

  // Preprocessing of uint8 pixels, folded into the first kernel: lut[p] = offset + scale * ink(p);
  // `background` fills the preprocessing pad; the conv's own zero padding is c1_pad.
  float lut[256] = {};
  float background = 0.f;
  int input_size = 32;
  int c1_pad = 0;
  // The small path's input before its raw pixels are written (zero padding, background, zero
  // slack), copied whole per image: [0] for 28x28 images, [1] for input_size x input_size.
  const float* small_in[2] = {nullptr, nullptr};
};

// Geometry shared by the kernels: every arch's C1 input (after its zero padding) is 32x32.
constexpr int kIn = 32;
constexpr int kSmallInLen = kIn * kIn + 64;  // the small path's input: slack for junk lanes' taps

// LeCun et al. 1998, Table I (lenet.spec.LECUN_C3_TABLE): kLeCunTable[o][i] = C3 map o reads S2
// map i. The small path compiles its C3 for this table (KernelParams::c3_lecun).
constexpr uint8_t kLeCunTable[16][6] = {
    {1, 1, 1, 0, 0, 0}, {0, 1, 1, 1, 0, 0}, {0, 0, 1, 1, 1, 0}, {0, 0, 0, 1, 1, 1},
    {1, 0, 0, 0, 1, 1}, {1, 1, 0, 0, 0, 1}, {1, 1, 1, 1, 0, 0}, {0, 1, 1, 1, 1, 0},
    {0, 0, 1, 1, 1, 1}, {1, 0, 0, 1, 1, 1}, {1, 1, 0, 0, 1, 1}, {1, 1, 1, 0, 0, 1},
    {1, 1, 0, 1, 1, 0}, {0, 1, 1, 0, 1, 1}, {1, 0, 1, 1, 0, 1}, {1, 1, 1, 1, 1, 1}};

// Value of packed input position (y, x) that no raw pixel of a size x size image covers: the
// conv's zero padding outside the model input, the preprocessing pad (background) inside it.
// (static: the ISA units each keep their own copy, see vec.h)
static inline float fill_value(const KernelParams& kp, int size, int y, int x, bool* raw) {
  const int lo = kp.c1_pad, hi = kp.c1_pad + kp.input_size;
  if (y < lo || y >= hi || x < lo || x >= hi) { *raw = false; return 0.f; }
  const int off = lo + (kp.input_size - size) / 2;
  *raw = y >= off && y < off + size && x >= off && x < off + size;
  return kp.background;
}

constexpr int kC5Ld = 128, kF6Ld = 96;
constexpr int round16(int n) { return (n + 15) / 16 * 16; }

}  // namespace lenet::cpu
