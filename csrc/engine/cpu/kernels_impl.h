#pragma once
// The whole network for one instruction set: input packing (with the spec's preprocessing) and
// the fused stages, for the wide path (one image per lane) and the small-batch path (one image,
// positions in lanes). Included once by each kernels_<isa>.cpp.
#include "engine/cpu/fused_head.h"
#include "engine/cpu/kernels.h"

namespace lenet::cpu::LENET_ISA_NS {

// ---- wide path -----------------------------------------------------------------------------
// Scratch, in vectors: packed input 32x32, two C1 rows, S2, two C3 rows, S4, C5, F6, output.
constexpr int kWideIn = 0;
constexpr int kWideC1Rows = kWideIn + kIn * kIn;
constexpr int kWideS2 = kWideC1Rows + 2 * kC1Size;
constexpr int kWideC3Rows = kWideS2 + kC1Maps * kS2Size * kS2Size;
constexpr int kWideS4 = kWideC3Rows + 2 * kC3Size;
constexpr int kWideC5 = kWideS4 + kC3Maps * kS4Size * kS4Size;
constexpr int kWideF6 = kWideC5 + kC5Ld;
constexpr int kWideOut = kWideF6 + kF6Ld;

// Transposes `count` images into lanes, applying the preprocessing contract for uint8 input:
// packed rows [y0, y1) (a part of the block when threads share it). Lanes past `count` repeat
// the last image so they stay finite. Returns false on NaN/Inf.
static bool pack_wide(const KernelParams& kp, const InputBatch& b, int64_t first, int count, vf* in,
                      int y0 = 0, int y1 = kIn) {
  const int size = b.size;
  const int off = kp.c1_pad + (kp.input_size - size) / 2;
  for (int y = y0; y < y1; ++y)
    for (int x = 0; x < kIn; ++x) {
      bool raw;
      const float v = fill_value(kp, size, y, x, &raw);
      if (!raw) in[y * kIn + x] = bcast(v);
    }
  // The raw rows that land in [y0, y1).
  const int r0 = y0 - off > 0 ? y0 - off : 0, r1 = y1 - off < size ? y1 - off : size;
  const int64_t npix = int64_t(size) * size;
  // Pixel-major: each packed vector is built from the same pixel of W images (W sequential read
  // streams) and stored once, instead of W passes of scattered scalar stores.
  const uint8_t* u8[W];
  const float* f32[W];
  for (int l = 0; l < W; ++l) {
    const int64_t img = first + (l < count ? l : count - 1);
    u8[l] = b.u8 ? b.u8 + img * npix : nullptr;
    f32[l] = b.f32 ? b.f32 + img * npix : nullptr;
  }
  if (b.u8) {
    for (int y = r0; y < r1; ++y)
      for (int x = 0; x < size; ++x) {
        const int i = y * size + x;
        vf v;
        for (int l = 0; l < W; ++l) v[l] = kp.lut[u8[l][i]];
        in[(off + y) * kIn + off + x] = v;
      }
    return true;
  }
  vf probe{};  // NaN*0 and Inf*0 are NaN: one multiply-add per pixel finds both
  for (int y = r0; y < r1; ++y)
    for (int x = 0; x < size; ++x) {
      const int i = y * size + x;
      vf v;
      for (int l = 0; l < W; ++l) v[l] = f32[l][i];
      probe += v * 0.f;
      in[(off + y) * kIn + off + x] = v;
    }
  for (int l = 0; l < count; ++l)
    if (probe[l] != probe[l]) return false;
  return true;
}

static bool run_wide(const KernelParams& kp, const InputBatch& b, int64_t first, int count,
                     float* scratch, float* scores) {
  vf* s = reinterpret_cast<vf*>(scratch);
  const bool finite = pack_wide(kp, b, first, count, s + kWideIn);
  const Act act(kp);
  c1_s2_wide(kp, act, s + kWideIn, s + kWideC1Rows, s + kWideS2);
  c3_s4_wide(kp, act, s + kWideS2, s + kWideC3Rows, s + kWideS4);
  head_wide(kp, act, s + kWideS4, s + kWideC5, s + kWideF6, s + kWideOut);
  const float* out = reinterpret_cast<const float*>(s + kWideOut);
  for (int l = 0; l < count; ++l)
    for (int c = 0; c < kp.classes; ++c) scores[(first + l) * kp.classes + c] = out[c * W + l];
  return finite;
}

// The wide path in stages, for threads sharing one block (a batch of one block would otherwise
// run on one core): every part of a stage must finish before the next stage starts; the parts
// of a stage are independent. `block` holds the block's data (one thread's scratch), `own` is
// the calling thread's scratch (its C1/C3 rows). Stage 0 returns false on NaN/Inf in its rows.
constexpr int kWideStages = 6;
// Small parts (a map, a pair of maps, 12 units): on a busy machine a thread may stall inside a
// part, and the others wait for at most that part at the stage's end.
static const int kWideParts[kWideStages] = {2, kC1Maps, kC3Maps / 2, kC5Units / 12, kF6Units / 12, 1};

static bool run_wide_part(const KernelParams& kp, const InputBatch& b, int64_t first, int count,
                          int stage, int part, float* block, float* own, float* scores) {
  vf* s = reinterpret_cast<vf*>(block);
  vf* mine = reinterpret_cast<vf*>(own);
  const Act act(kp);
  switch (stage) {
    case 0: return pack_wide(kp, b, first, count, s + kWideIn, part * kIn / 2, (part + 1) * kIn / 2);
    case 1: c1_s2_wide(kp, act, s + kWideIn, mine + kWideC1Rows, s + kWideS2, part, part + 1); break;
    case 2: c3_s4_wide(kp, act, s + kWideS2, mine + kWideC3Rows, s + kWideS4, 2 * part, 2 * part + 2); break;
    case 3: c5_wide(kp, act, s + kWideS4, s + kWideC5, 12 * part, 12 * part + 12); break;
    case 4: f6_wide(kp, act, s + kWideC5, s + kWideF6, 12 * part, 12 * part + 12); break;
    default: {
      out_wide(kp, s + kWideF6, s + kWideOut);
      const float* out = reinterpret_cast<const float*>(s + kWideOut);
      for (int l = 0; l < count; ++l)
        for (int c = 0; c < kp.classes; ++c) scores[(first + l) * kp.classes + c] = out[c * W + l];
    }
  }
  return true;
}

// ---- small-batch path ------------------------------------------------------------------------
constexpr int kSmallIn = 0;
constexpr int kSmallC1 = kSmallIn + kSmallInLen;
constexpr int kSmallS2 = kSmallC1 + kC1Maps * kSmallC1Len + 64;
constexpr int kSmallS2T = kSmallS2 + kC1Maps * kSmallS2Map;
constexpr int kSmallC3 = kSmallS2T + kSmallT;  // [100][16] (any table) or [16][kSmallC3Map] (LeCun's)
constexpr int kSmallS4 = kSmallC3 + kC3Maps * kSmallC3Map;
static_assert(kC3Maps * kSmallC3Map >= kC3Size * kC3Size * kC3Maps, "room for either C3 layout");
constexpr int kSmallC5 = kSmallS4 + kC3Maps * kS4Size * kS4Size;
constexpr int kSmallF6 = kSmallC5 + kC5Ld;
constexpr int kSmallOut = kSmallF6 + kF6Ld;

// The input image in the padded 32x32 (+ slack) layout, from the per-engine template of its
// padding. Returns false on NaN/Inf.
static bool fill_small(const KernelParams& kp, const InputBatch& b, int64_t index, float* in) {
  const int size = b.size;
  const int off = kp.c1_pad + (kp.input_size - size) / 2;
  std::memcpy(in, kp.small_in[size == 28 ? 0 : 1], kSmallInLen * sizeof(float));
  const int64_t npix = int64_t(size) * size;
  if (b.u8) {
    const uint8_t* p = b.u8 + index * npix;
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x) in[(off + y) * kIn + off + x] = kp.lut[p[y * size + x]];
    return true;
  }
  const float* p = b.f32 + index * npix;
  float probe = 0.f;
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      const float v = p[y * size + x];
      probe += v * 0.f;
      in[(off + y) * kIn + off + x] = v;
    }
  return probe == probe;
}

// C3's inputs read past S2's rows (junk lanes): keep that slack finite.
static void clear_s2_slack(float* s2) {
  for (int m = 0; m < kC1Maps; ++m)
    std::memset(s2 + m * kSmallS2Map + kS2Size * kSmallS2Stride, 0,
                (kSmallS2Map - kS2Size * kSmallS2Stride) * sizeof(float));
}

// F6, the output layer and the scores, from C5.
static void tail_small(const KernelParams& kp, const Act& act, const float* c5, float* scratch,
                       float* scores, int64_t index) {
  float* f6 = scratch + kSmallF6;
  dense_small(c5, kC5Units, kp.f6_wt, kF6Ld, kp.f6_b, kF6Ld, false, f6);
  squash_small(act, f6, kF6Ld);
  float* out = scratch + kSmallOut;
  dense_small(f6, kF6Units, kp.out_wt, kp.out_ld, kp.out_b, kp.out_ld, kp.head == kHeadRbf, out);
  std::memcpy(scores + index * kp.classes, out, kp.classes * sizeof(float));
}

static bool run_small(const KernelParams& kp, const InputBatch& b, int64_t index, float* scratch,
                      float* scores) {
  float* in = scratch + kSmallIn;
  const bool finite = fill_small(kp, b, index, in);
  const Act act(kp);
  float* s2 = scratch + kSmallS2;
  c1_small(kp, act, in, scratch + kSmallC1);
  clear_s2_slack(s2);
  s2_small(kp, act, scratch + kSmallC1, s2);
  float* s4 = scratch + kSmallS4;
  if (kp.c3_lecun) {
    spread_s2(s2, scratch + kSmallS2T);
    c3_small_lecun(kp, act, scratch + kSmallS2T, scratch + kSmallC3);
    s4_small_lecun(kp, act, scratch + kSmallC3, s4);
  } else {
    c3_small(kp, act, s2, scratch + kSmallC3);
    s4_small(kp, act, scratch + kSmallC3, s4);
  }
  float* c5 = scratch + kSmallC5;
  dense_small(s4, kC3Maps * 25, kp.c5_wt_pos, kC5Ld, kp.c5_b, kC5Ld, false, c5);
  squash_small(act, c5, kC5Ld);
  tail_small(kp, act, c5, scratch, scores, index);
  return finite;
}

static size_t scratch_floats(const KernelParams& kp) {
  const size_t wide = size_t(kWideOut + round16(kp.classes)) * W;
  const size_t small = size_t(kSmallOut + kp.out_ld);
  return wide > small ? wide : small;
}

}  // namespace lenet::cpu::LENET_ISA_NS
