#pragma once
// One block of images through the INT8 network, for one instruction set (LENET_I8_NS) and width.
#include "engine/cpu/int8/fused_c1_s2.h"
#include "engine/cpu/int8/fused_c3_s4.h"
#include "engine/cpu/int8/fused_head.h"
#include "engine/cpu/int8/kernels.h"
#include "engine/cpu/int8/single_image.h"

namespace lenet::cpu::int8::LENET_I8_NS {

// Scratch, in vectors after the input plane.
constexpr size_t kRing = 0, kS2Words = kRing + kRingVectors, kS2Cols = kS2Words + size_t(kC1Maps) * kS2Size * kS2Size,
                 kS4 = kS2Cols + size_t(kC1Maps) * kC3Size * kS2Size, kWork = kS4 + kC5In,
                 kVectors = kWork + kC5Words + kF6Words + kF6Units;
template <class V>
constexpr size_t scratch_bytes() { return plane_bytes<V>() + kVectors * sizeof(typename V::vi); }
constexpr size_t kScratchBytes = scratch_bytes<V16>() > single::kBytes ? scratch_bytes<V16>() : single::kBytes;

template <class V>
static bool run_block(const Packed& p, const InputBatch& b, int64_t first, int count, uint8_t* scratch,
                      float* scores, const Ahead& ahead) {
  using vi = typename V::vi;
  uint8_t* plane = scratch;
  vi* v = reinterpret_cast<vi*>(scratch + plane_bytes<V>());
  const bool finite = input_codes<V>(p, b, first, count, scratch + plane_bytes<V>(), plane);  // tile: in v's room
  c1_s2<V>(p, plane, v + kRing, v + kS2Words, kS2Size, ahead);
  c3_s4<V>(p, v + kS2Words, v + kS2Cols, v + kS4);
  s4_words<V>(p, v + kS4, v + kWork);
  head<V>(p, v + kWork, v + kWork + kC5Words, count, scores + first * kHeadClasses);
  return finite;
}

static_assert(scratch_bytes<V16>() >= scratch_bytes<V8>(), "the wide block's scratch holds the narrow one's");
static_assert(kVectors * sizeof(V8::vi) >= tile_bytes<V16>(), "input_codes' tile fits in the vectors' room");

}  // namespace lenet::cpu::int8::LENET_I8_NS
