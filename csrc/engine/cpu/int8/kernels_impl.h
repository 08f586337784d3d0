#pragma once
// One block of 16 images through the INT8 network, for one instruction set (LENET_I8_NS).
#include "engine/cpu/int8/fused_c1_s2.h"
#include "engine/cpu/int8/fused_c3_s4.h"
#include "engine/cpu/int8/fused_head.h"
#include "engine/cpu/int8/kernels.h"

namespace lenet::cpu::int8::LENET_I8_NS {

// Scratch, in 64-byte vectors after the input plane.
constexpr size_t kRing = 0, kS2Words = kRing + 6 * kIn, kS4 = kS2Words + size_t(kC1Maps) * kS2Size * kS2Size,
                 kWork = kS4 + kC5In, kVectors = kWork + kC5Words + kC5Units + kF6Units;
constexpr size_t kScratchBytes = kPlaneBytes + kVectors * sizeof(vi);

static bool run_block(const Packed& p, const InputBatch& b, int64_t first, int count, uint8_t* scratch,
                      float* scores) {
  uint8_t* plane = scratch;
  vi* v = reinterpret_cast<vi*>(scratch + kPlaneBytes);
  const bool finite = input_codes(p, b, first, count, plane);
  c1_s2(p, plane, v + kRing, v + kS2Words);
  c3_s4(p, v + kS2Words, v + kS4);
  head(p, v + kS4, v + kWork, count, scores + first * kHeadClasses);
  return finite;
}

}  // namespace lenet::cpu::int8::LENET_I8_NS
