#pragma once
// INT8 CPU, one image: its rows spread over the lanes instead of 16 images in them. Lane l runs
// the block kernels' first row pair on the image's rows shifted by 2l: C1/S2 computes S2 row l in
// lane l (14 of 16 lanes busy), C3/S4 S4 row l (5 lanes), then the head with its units in the lanes. The
// same code and arithmetic as the block path (bit-exact with it); about a fifth of its work.
#include <cstring>

#include "engine/cpu/int8/fused_c1_s2.h"
#include "engine/cpu/int8/fused_c3_s4.h"
#include "engine/cpu/int8/fused_head.h"

namespace lenet::cpu::int8::LENET_I8_NS {

namespace single {

constexpr int L = V16::kLanes;
// Scratch: C1's plane (6 rows), S2 codes, C3's plane (6 maps x 6 rows), the image's codes, then vectors.
constexpr size_t align64(size_t n) { return (n + 63) / 64 * 64; }
constexpr size_t kPlane1 = 0, kS2Codes = align64(kPlane1 + size_t(6) * kIn * L),
                 kPlane3 = align64(kS2Codes + size_t(kC1Maps) * kS2Size * kS2Size),
                 kFull = align64(kPlane3 + size_t(kC1Maps) * 6 * kS2Size * L),
                 kVecs = align64(kFull + size_t(kIn) * kIn);
// Vectors (V16): ring (kRingVectors), S2 words (6 maps x 14 rows x 14; row 0 used by C1/S2, rows 0..5 by
// C3/S4), S2 column words (6 maps x 2 rows x 14), S4 400.
constexpr size_t kRing = 0, kS2W = kRing + kRingVectors, kS2Cols = kS2W + size_t(kC1Maps) * kS2Size * kS2Size,
                 kS4 = kS2Cols + size_t(kC1Maps) * 2 * kS2Size, kEnd16 = kS4 + kC5In;
constexpr size_t kBytes = kVecs + kEnd16 * sizeof(V16::vi);

}  // namespace single

// Scores of image `index`. Returns false when a float pixel is NaN or Inf.
static bool run_single(const Packed& p, const InputBatch& b, int64_t index, uint8_t* scratch, float* scores) {
  using namespace single;
  using vi = V16::vi;
  // The image's codes, once, [y][x].
  uint8_t* full = scratch + kFull;
  const bool finite = image_codes(p, b, index, full);
  // Lane l: input rows 2l .. 2l+5.
  uint8_t* plane1 = scratch + kPlane1;
  std::memset(plane1, 0, size_t(6) * kIn * L);
  for (int l = 0; l < kS2Size; ++l)
    for (int r = 0; r < 6; ++r)
      for (int x = 0; x < kIn; ++x) plane1[(size_t(r) * kIn + x) * L + l] = full[size_t(2 * l + r) * kIn + x];
  vi* v = reinterpret_cast<vi*>(scratch + kVecs);
  c1_s2<V16>(p, plane1, v + kRing, v + kS2W, 1);
  // S2 codes (byte 0 of each word), lane = row.
  uint8_t* s2 = scratch + kS2Codes;
  for (int c = 0; c < kC1Maps; ++c)
    for (int x = 0; x < kS2Size; ++x) {
      alignas(64) int32_t t[L];
      _mm512_store_si512(t, v[kS2W + size_t(c) * kS2Size * kS2Size + x]);
      for (int row = 0; row < kS2Size; ++row) s2[(size_t(c) * kS2Size + row) * kS2Size + x] = uint8_t(t[row] & 0xFF);
    }
  // C3's input: lane py holds S2 rows 2py .. 2py+5, as words.
  uint8_t* plane3 = scratch + kPlane3;
  std::memset(plane3, 0, size_t(kC1Maps) * 6 * kS2Size * L);
  for (int c = 0; c < kC1Maps; ++c)
    for (int r = 0; r < 6; ++r)
      for (int x = 0; x < kS2Size; ++x)
        for (int py = 0; py < kS4Size; ++py)
          plane3[((size_t(c) * 6 + r) * kS2Size + x) * L + py] = s2[(size_t(c) * kS2Size + 2 * py + r) * kS2Size + x];
  for (int c = 0; c < kC1Maps; ++c)
    for (int r = 0; r < 6; ++r) {
      vi codes[kS2Size];
      for (int x = 0; x < kS2Size; ++x) codes[x] = V16::widen_codes(plane3 + ((size_t(c) * 6 + r) * kS2Size + x) * L);
      row_words<V16>(codes, kS2Size, v + kS2W + (size_t(c) * kS2Size + r) * kS2Size);
    }
  c3_s4<V16>(p, v + kS2W, v + kS2Cols, v + kS4, 1);
  // The head: feature o*25 + py*5 + x is lane py of s4[o*25 + x].
  alignas(64) uint8_t codes[kC5In];
  for (int o = 0; o < kC3Maps; ++o)
    for (int x = 0; x < kS4Size; ++x) {
      alignas(64) int32_t t[L];
      _mm512_store_si512(t, stage_out<V16>(p.s4, v[kS4 + o * 25 + x], o));
      for (int py = 0; py < kS4Size; ++py) codes[o * 25 + py * kS4Size + x] = uint8_t(t[py]);
    }
  head_one(p, codes, scores + index * kHeadClasses);
  return finite;
}

}  // namespace lenet::cpu::int8::LENET_I8_NS
