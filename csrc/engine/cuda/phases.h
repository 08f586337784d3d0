#pragma once
// The CUDA kernels' logic, written once for the GPU and for the host emulator.
//
// Each kernel is a *program*: a fixed sequence of named phases separated by block-wide barriers.
// A phase is a __host__ __device__ function of (thread index, that thread's registers, the block's
// shared memory). The program is a template over an executor:
//   * on the GPU (DeviceExec, fused_*.cu) every thread runs the phase for itself, then
//     __syncthreads();
//   * on the host (HostExec, emulator.cpp) the phase runs for thread 0, 1, ..., T-1 (or in reverse,
//     to catch a phase that reads what another thread of the same phase writes), then the next.
// So the emulator executes exactly the code the GPU runs, with the same shared-memory layout,
// block shape and grid, and only the barrier semantics are modelled. Loops around phases (the
// weight chunks of the head) are uniform across the block, so their barriers are legal on the GPU.
//
// Plain C++ when not compiled by nvcc.
#include <cstdint>

#ifdef __CUDACC__
#define LENET_HD __host__ __device__ __forceinline__
#else
#define LENET_HD inline
#endif
#ifdef __CUDA_ARCH__  // the device pass only: host compilers do not know the pragma
#define LENET_UNROLL _Pragma("unroll")
#else
#define LENET_UNROLL
#endif

#include <cmath>
#include <cstdint>
#ifndef __CUDA_ARCH__
#include <stdexcept>
#endif

namespace lenet::cuda {

// ---- fixed geometry (DESIGN.md §3) ------------------------------------------------------------
constexpr int kFrame = 32;                    // C1 input frame: input_size + 2*c1_padding
constexpr int kFramePix = kFrame * kFrame;
constexpr int kMaps1 = 6, kS2 = 14, kS2Pix = kS2 * kS2;        // S2: 6@14x14
constexpr int kMaps3 = 16, kS4 = 5, kS4Pix = kS4 * kS4;        // S4: 16@5x5
constexpr int kS4Len = kMaps3 * kS4Pix;                         // 400 = C5 fan-in
constexpr int kC5 = 120, kF6 = 84;

enum : int { kActTanhLike = 0, kActRelu = 1 };
enum : int { kPoolTrainable = 0, kPoolAvg = 1, kPoolMax = 2 };

// ---- launch configuration -------------------------------------------------------------------
//
// fused_subsample: one block = kSubImages (4) images, kSubThreads (320) threads.
//   Shared memory: the 4 padded 32x32 input frames (preprocessed once, as they are loaded) and the
//   4 images' S2 maps: (4*1024 + 4*1176)*4 B = 35.2 KB, static (< 48 KB, no opt-in needed).
//   C1 and C3 maps are never stored anywhere: a thread computes convolution outputs in registers,
//   squashes, pools 2x2 and squashes again, and only the pooled value goes to shared (S2) or
//   global (S4) memory.
//   Reuse: GPUs with 128 FP32 lanes per SM (sm_86/89/120) issue 4 warp-FMAs per clock but one
//   shared load, so each shared load must feed >= 4 FMAs. C1: a 6x6 register patch feeds 3 maps
//   (300 FMAs per 36 loads; the weights are constant-bank operands of the FMAs). C3: a thread
//   computes the two C3 rows under one S4 row, streaming 6 input rows per connected map through
//   registers (500 FMAs per 84 loads). Balance: 320 threads = exactly the 320 C3 items (16 maps x
//   4 images x 5 rows) and 1,568 C1 items = 4.9 per thread, so barriers wait for almost no one.
//   C3 items are map-major, so a warp mostly reads one map's weights (constant-cache broadcast)
//   and runs one fan-in.
//   Occupancy: ptxas reports 60-82 registers/thread (sm_80: 60, sm_86: 75, sm_120: 82), so
//   3 blocks (960 threads) per SM on sm_80/90, 2 (640) on sm_86/89/120, 1 on sm_75 (64 KB shared).
//   Each thread has 4-20 independent accumulator chains, so ~40 % occupancy hides the latency of
//   the shared loads; more images per block would not raise occupancy (shared memory grows with
//   them).
// fused_rbf (the head): one block = kHeadImages (32) images, kHeadThreads (256) threads; each
//   thread owns a 2-image x 8-unit register tile (C5, F6 and wide linear heads; 1 unit for <= 16
//   classes). The weights (C5 alone is 192 KB: too big for constant memory, and read per unit,
//   not uniformly) are streamed through shared memory in chunks of 20-28 inputs, so each weight
//   read from global memory (L2-resident: ~270 KB in all) serves 32 images. Per 4 inputs a thread
//   issues 2 activation loads (broadcasts) and 8 weight loads, all 128-bit, for 64 FMAs: the same
//   >= 4 FMAs per shared load as the subsampling kernel. Shared: 32x20 activation chunk + 28x128
//   weight chunk + C5 and F6 outputs of 32 images = 43 KB static; ptxas: 61-86 registers/thread,
//   so 3 blocks (768 threads) per SM on sm_80/90, 2 on sm_86/89/120, 1 on sm_75. The head is
//   ~20 % of the model's MACs, so its lower occupancy costs less than smaller tiles (more weight
//   traffic per image) would.
constexpr int kSubImages = 4;
constexpr int kSubThreads = 320;  // = C3 items: 16 maps x 4 images x 5 S4 rows
constexpr int kHeadImages = 32;
constexpr int kHeadThreads = 256;
constexpr int kHeadUnitGroups = 16;  // threads per image pair (their units: unit_of)
constexpr int kHeadImageGroups = kHeadThreads / kHeadUnitGroups;  // 16 pairs = 32 images
constexpr int kChunk = 20;           // C5 inputs per chunk (400 = 20 x 20)
constexpr int kF6Chunk = 24;         // F6 inputs per chunk (120 = 5 x 24)
constexpr int kOutChunk = 28;        // output-layer inputs per chunk (84 = 3 x 28)
constexpr int kC5Pad = 128, kF6Pad = 128;  // units rounded up to 16 threads x 8
constexpr int kHeadU = 8;            // units per thread in C5, F6 and wide linear heads
constexpr int kWChunkMax = kOutChunk * kHeadUnitGroups * kHeadU;  // floats of the weight chunk
static_assert(2 * kHeadImageGroups == kHeadImages, "each thread owns two images of the tile");
static_assert(kWChunkMax >= kChunk * kC5Pad && kWChunkMax >= kF6Chunk * kF6Pad,
              "weight chunk buffer too small");
static_assert(kChunk % 4 == 0 && kF6Chunk % 4 == 0 && kOutChunk % 4 == 0 && kC5 % 4 == 0 &&
                  kF6 % 4 == 0, "activation rows are read 4 floats at a time");

// ---- parameters -------------------------------------------------------------------------------

// Everything the subsampling kernel reads besides pixels: ~10.6 KB, passed by value as a
// __grid_constant__ kernel parameter, so it lives in the constant bank of each launch (uniform
// reads are broadcasts) and two engines with different weights never share a __constant__ symbol.
// (Kernel parameters up to 32 KB: CUDA >= 12.1, sm_70+.)
struct SubsampleParams {
  int act;                       // kActTanhLike: add + amp*tanh(slope*a); kActRelu
  float act_amp, act_slope, act_add;
  int pooling;
  int input_size, c1_pad;        // model input side, C1 zero padding
  int pre_pad, pre_invert;       // uint8 contract: pad 28x28 images with background, ink polarity
  float pre_scale, pre_offset;
  float c1_w[kMaps1 * 25], c1_b[kMaps1], s2_coef[kMaps1], s2_bias[kMaps1];
  float c3_w[kMaps3 * kMaps1 * 25], c3_b[kMaps3], s4_coef[kMaps3], s4_bias[kMaps3];
  int c3_fan_in[kMaps3];
  int c3_inputs[kMaps3][kMaps1];
};

// The head's weights stay in global memory (C5 alone is 192 KB), transposed and zero-padded to
// [inputs][units rounded up], and are staged through shared memory chunk by chunk.
struct HeadParams {
  int act;
  float act_amp, act_slope, act_add;
  int rbf;                       // 1: scores = -sum (x - w)^2; 0: scores = x.w + b
  int classes, out_pad, out_u;   // out_pad = 16 * out_u * unit blocks
  const float* c5_wt;            // [400][128]
  const float* c5_b;             // [128]
  const float* f6_wt;            // [120][96]
  const float* f6_b;             // [96]
  const float* out_wt;           // [84][out_pad]
  const float* out_b;            // [out_pad]
};

// A batch in device (or, for the emulator, host) memory: contiguous uint8 [n][size][size] raw
// pixels or float32 [n][input_size][input_size] normalized input.
struct InputView {
  const uint8_t* u8;
  const float* f32;
  int64_t n;
  int size;
  int64_t index_base;  // index of image 0 in the caller's batch (for NaN/Inf reports)
};

// ---- helpers --------------------------------------------------------------------------------

LENET_HD float squash(int act, float amp, float slope, float add, float a) {
  if (act == kActRelu) return a > 0.f ? a : 0.f;
  return add + amp * tanhf(slope * a);
}

LENET_HD float max2(float a, float b) { return a > b ? a : b; }

// One 2x2 subsampling unit over four squashed convolution outputs.
LENET_HD float pool4(int kind, float a, float b, float c, float d, float coef, float bias,
                     int act, float amp, float slope, float add) {
  if (kind == kPoolMax) return max2(max2(a, b), max2(c, d));
  const float s = (a + b) + (c + d);
  if (kind == kPoolAvg) return s * 0.25f;
  return squash(act, amp, slope, add, s * coef + bias);
}

// 5x5 convolution at the four positions of a 2x2 window, from a 6x6 register patch.
LENET_HD void conv2x2(const float (&x)[6][6], const float* w, float (&acc)[4]) {
LENET_UNROLL
  for (int ky = 0; ky < 5; ++ky)
LENET_UNROLL
    for (int kx = 0; kx < 5; ++kx) {
      const float wv = w[ky * 5 + kx];
      acc[0] += wv * x[ky][kx];
      acc[1] += wv * x[ky][kx + 1];
      acc[2] += wv * x[ky + 1][kx];
      acc[3] += wv * x[ky + 1][kx + 1];
    }
}

// Records the lowest index of an image with a NaN/Inf pixel.
LENET_HD void note_bad(int* first_bad, int64_t img) {
#ifdef __CUDA_ARCH__
  atomicMin(first_bad, int(img));
#else
  if (int(img) < *first_bad) *first_bad = int(img);
#endif
}

LENET_HD bool finite(float v) { return v - v == 0.f; }

// ================================================================================================
// fused_subsample: input -> C1 -> squash -> S2 (-> squash) -> C3 -> squash -> S4 (-> squash)
// ================================================================================================

struct SubShared {
  float in[kSubImages][kFramePix];   // padded, preprocessed 32x32 frames
  float s2[kSubImages][kMaps1 * kS2Pix];
};

struct NoRegs {};

// Phase 1, load_frames: each thread fills frame pixels tid, tid+T, ... applying the padding of C1
// and, for uint8, the preprocessing contract (ink polarity, scale/offset, background padding).
LENET_HD void phase_load_frames(const SubsampleParams& p, const InputView& in, int64_t first,
                                int tid, SubShared& sh, int* first_bad) {
  const int isz = p.input_size;
  for (int idx = tid; idx < kSubImages * kFramePix; idx += kSubThreads) {
    const int b = idx / kFramePix, y = (idx % kFramePix) / kFrame, x = idx % kFrame;
    const int64_t img = first + b;
    float v = 0.f;
    const int iy = y - p.c1_pad, ix = x - p.c1_pad;  // model-input coordinates
    if (img < in.n && iy >= 0 && iy < isz && ix >= 0 && ix < isz) {
      if (in.u8) {
        const int pad = in.size == isz ? 0 : p.pre_pad;
        const int ry = iy - pad, rx = ix - pad;
        if (ry >= 0 && ry < in.size && rx >= 0 && rx < in.size) {
          const float px = float(in.u8[(img * in.size + ry) * in.size + rx]);
          const float ink = p.pre_invert ? 1.f - px / 255.f : px / 255.f;
          v = p.pre_offset + p.pre_scale * ink;
        } else {
          v = p.pre_offset;  // pad pixels are zero-ink pixels, whatever the polarity
        }
      } else {
        v = in.f32[(img * isz + iy) * isz + ix];
        if (!finite(v)) note_bad(first_bad, in.index_base + img);
      }
    }
    sh.in[b][y * kFrame + x] = v;
  }
}

// C1 maps M0..M0+2 at one S2 position from a 6x6 register patch; M0 is a template argument so
// the weights are constant-bank operands of the FMAs, not loads.
template <int M0>
LENET_HD void c1_s2_three_maps(const SubsampleParams& p, const float (&x)[6][6], float* s2, int pos) {
  LENET_UNROLL
  for (int m = M0; m < M0 + 3; ++m) {
    float acc[4] = {p.c1_b[m], p.c1_b[m], p.c1_b[m], p.c1_b[m]};
    conv2x2(x, p.c1_w + m * 25, acc);
    LENET_UNROLL
    for (int j = 0; j < 4; ++j) acc[j] = squash(p.act, p.act_amp, p.act_slope, p.act_add, acc[j]);
    const float coef = p.pooling == kPoolTrainable ? p.s2_coef[m] : 0.f;
    const float bias = p.pooling == kPoolTrainable ? p.s2_bias[m] : 0.f;
    s2[m * kS2Pix + pos] = pool4(p.pooling, acc[0], acc[1], acc[2], acc[3], coef, bias, p.act,
                                 p.act_amp, p.act_slope, p.act_add);
  }
}

// Phase 2, c1_s2: work item = (half of the C1 maps, image, S2 position), half-major: 1,568 items,
// 4.9 per thread. A 6x6 register patch feeds 3 maps (300 FMAs for 36 shared loads).
LENET_HD void phase_c1_s2(const SubsampleParams& p, int tid, SubShared& sh) {
  constexpr int kPerHalf = kSubImages * kS2Pix;
  for (int item = tid; item < 2 * kPerHalf; item += kSubThreads) {
    const int half = item / kPerHalf, b = (item % kPerHalf) / kS2Pix, pos = item % kS2Pix;
    const int r = pos / kS2, c = pos % kS2;
    float x[6][6];
    const float* src = sh.in[b] + (2 * r) * kFrame + 2 * c;
    LENET_UNROLL
    for (int dy = 0; dy < 6; ++dy)
      LENET_UNROLL
      for (int dx = 0; dx < 6; ++dx) x[dy][dx] = src[dy * kFrame + dx];
    if (half == 0)
      c1_s2_three_maps<0>(p, x, sh.s2[b], pos);
    else
      c1_s2_three_maps<3>(p, x, sh.s2[b], pos);
  }
}

// Phase 3, c3_s4: work item = (C3 map, image, S4 row), map-major: 320 items, one per thread. A
// thread computes the two C3 rows under its S4 row (2 x 10 accumulators), streaming the 6 input
// rows of each connected S2 map through registers: 500 FMAs per 84 shared loads. Only the S2
// maps the connection table names are read. Writes the S4 activations [n][400] (C5's order).
LENET_HD void phase_c3_s4(const SubsampleParams& p, int64_t n, int64_t first, int tid,
                          const SubShared& sh, float* s4) {
  constexpr int kPerMap = kSubImages * kS4;
  for (int item = tid; item < kMaps3 * kPerMap; item += kSubThreads) {
    const int o = item / kPerMap, b = (item % kPerMap) / kS4, r = item % kS4;
    float top[10], bottom[10];  // C3 rows 2r and 2r+1
    LENET_UNROLL
    for (int x = 0; x < 10; ++x) top[x] = bottom[x] = p.c3_b[o];
    for (int t = 0; t < p.c3_fan_in[o]; ++t) {
      const int i = p.c3_inputs[o][t];
      const float* w = p.c3_w + (o * kMaps1 + i) * 25;
      const float* src = sh.s2[b] + i * kS2Pix + (2 * r) * kS2;
      LENET_UNROLL
      for (int j = 0; j < 6; ++j) {  // input row 2r+j: kernel row j for top, j-1 for bottom
        float row[kS2];
        LENET_UNROLL
        for (int x = 0; x < kS2; ++x) row[x] = src[j * kS2 + x];
        if (j < 5) {
          LENET_UNROLL
          for (int kx = 0; kx < 5; ++kx) {
            const float wv = w[j * 5 + kx];
            LENET_UNROLL
            for (int x = 0; x < 10; ++x) top[x] += wv * row[x + kx];
          }
        }
        if (j > 0) {
          LENET_UNROLL
          for (int kx = 0; kx < 5; ++kx) {
            const float wv = w[(j - 1) * 5 + kx];
            LENET_UNROLL
            for (int x = 0; x < 10; ++x) bottom[x] += wv * row[x + kx];
          }
        }
      }
    }
    LENET_UNROLL
    for (int x = 0; x < 10; ++x) {
      top[x] = squash(p.act, p.act_amp, p.act_slope, p.act_add, top[x]);
      bottom[x] = squash(p.act, p.act_amp, p.act_slope, p.act_add, bottom[x]);
    }
    const float coef = p.pooling == kPoolTrainable ? p.s4_coef[o] : 0.f;
    const float bias = p.pooling == kPoolTrainable ? p.s4_bias[o] : 0.f;
    if (first + b < n) {
      float* dst = s4 + (first + b) * kS4Len + o * kS4Pix + r * kS4;
      LENET_UNROLL
      for (int c = 0; c < kS4; ++c)
        dst[c] = pool4(p.pooling, top[2 * c], top[2 * c + 1], bottom[2 * c], bottom[2 * c + 1], coef,
                       bias, p.act, p.act_amp, p.act_slope, p.act_add);
    }
  }
}

// The program of one block (images first .. first+3).
template <class Exec>
LENET_HD void subsample_program(Exec& ex, const SubsampleParams& p, const InputView& in,
                                int64_t first, SubShared& sh, float* s4, int* first_bad) {
  ex.phase([&](int tid, NoRegs&) { phase_load_frames(p, in, first, tid, sh, first_bad); });
  ex.phase([&](int tid, NoRegs&) { phase_c1_s2(p, tid, sh); });
  ex.phase([&](int tid, NoRegs&) { phase_c3_s4(p, in.n, first, tid, sh, s4); });
}

// ================================================================================================
// fused_rbf: S4 -> C5 -> squash -> F6 -> squash -> RBF distances (or linear), scores only
// ================================================================================================

// 16-byte aligned so activations (4 inputs) and weights (4 units) are single 128-bit loads.
struct HeadShared {
  alignas(16) float x[kHeadImages][kChunk];  // current chunk of S4 activations
  alignas(16) float w[kWChunkMax];           // current chunk of weights [rows][cols]
  alignas(16) float c5[kHeadImages][kC5];
  alignas(16) float f6[kHeadImages][kF6];
};

// A thread's register tile: 2 images x up to 8 units.
struct HeadRegs {
  float acc[2][kHeadU];
};

LENET_HD int head_image_group(int tid) { return tid / kHeadUnitGroups; }
LENET_HD int head_unit_group(int tid) { return tid % kHeadUnitGroups; }

// Unit j of unit group g: with 8 units, two runs of 4 adjacent units (4g.., 64+4g..), each one
// 128-bit shared load, and a warp's 16 groups cover 64 consecutive words per run (no bank
// conflict beyond the 2 wavefronts a 128-bit load needs); with 1 unit, unit g.
template <int U>
LENET_HD int unit_of(int g, int j) {
  if (U == kHeadU) return j < 4 ? 4 * g + j : 4 * kHeadUnitGroups + 4 * g + (j - 4);
  return g + kHeadUnitGroups * j;
}

// 4 consecutive floats from shared memory: one 128-bit load on the GPU. The emulator checks the
// alignment the GPU requires.
LENET_HD void load4(const float* src, float (&v)[4]) {
#ifdef __CUDA_ARCH__
  const float4 q = *reinterpret_cast<const float4*>(src);
  v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
#else
  if (reinterpret_cast<uintptr_t>(src) % 16 != 0) throw std::logic_error("misaligned 128-bit shared load");
  for (int i = 0; i < 4; ++i) v[i] = src[i];
#endif
}

template <int U>
LENET_HD void tile_init(HeadRegs& r, const float* bias /* nullable */, int u0, int ug) {
  LENET_UNROLL
  for (int j = 0; j < U; ++j) {
    const float b = bias ? bias[u0 + unit_of<U>(ug, j)] : 0.f;
    r.acc[0][j] = b;
    r.acc[1][j] = b;
  }
}

// Phase stage_weights: copy rows k0..k0+rows-1, columns u0..u0+cols-1 of a transposed weight
// matrix (row stride ld) into the shared chunk; coalesced along the units.
LENET_HD void phase_stage_weights(const float* wt, int ld, int k0, int rows, int u0, int cols,
                                  int tid, HeadShared& sh) {
  for (int idx = tid; idx < rows * cols; idx += kHeadThreads) {
    const int kk = idx / cols, u = idx % cols;
    sh.w[idx] = wt[(k0 + kk) * ld + u0 + u];
  }
}

// Phase stage_c5_chunk: the S4 activations k0..k0+19 of the block's 32 images, and C5's weights.
LENET_HD void phase_stage_c5_chunk(const HeadParams& p, const float* s4, int64_t n, int64_t first,
                                   int k0, int tid, HeadShared& sh) {
  for (int idx = tid; idx < kHeadImages * kChunk; idx += kHeadThreads) {
    const int b = idx / kChunk, kk = idx % kChunk;
    sh.x[b][kk] = first + b < n ? s4[(first + b) * kS4Len + k0 + kk] : 0.f;
  }
  phase_stage_weights(p.c5_wt, kC5Pad, k0, kChunk, 0, kC5Pad, tid, sh);
}

// Phase accumulate: acc[i][j] += x[image i][k] * w[k][unit j] (or the squared distance) over the
// chunk's rows (a multiple of 4). x rows have stride x_ld and start at column xk0. Per 4 rows a
// thread issues 2 activation loads and 4 x (U/4) weight loads (128-bit) for 8U FMAs.
template <int U, bool Rbf>
LENET_HD void phase_accumulate(const float* x, int x_ld, int xk0, int rows, int cols, int tid,
                               const HeadShared& sh, HeadRegs& r) {
  const int ig = head_image_group(tid), ug = head_unit_group(tid);
  const float* x0 = x + (2 * ig) * x_ld + xk0;
  const float* x1 = x0 + x_ld;
  for (int kk = 0; kk < rows; kk += 4) {
    float a0[4], a1[4];
    load4(x0 + kk, a0);
    load4(x1 + kk, a1);
    LENET_UNROLL
    for (int q = 0; q < 4; ++q) {
      const float* wrow = sh.w + (kk + q) * cols;
      float w[U];
      if constexpr (U == kHeadU) {
        float lo[4], hi[4];
        load4(wrow + 4 * ug, lo);
        load4(wrow + 4 * kHeadUnitGroups + 4 * ug, hi);
        LENET_UNROLL
        for (int j = 0; j < 4; ++j) w[j] = lo[j], w[4 + j] = hi[j];
      } else {
        LENET_UNROLL
        for (int j = 0; j < U; ++j) w[j] = wrow[unit_of<U>(ug, j)];
      }
      LENET_UNROLL
      for (int j = 0; j < U; ++j) {
        if constexpr (Rbf) {
          const float d0 = a0[q] - w[j], d1 = a1[q] - w[j];
          r.acc[0][j] += d0 * d0;
          r.acc[1][j] += d1 * d1;
        } else {
          r.acc[0][j] += a0[q] * w[j];
          r.acc[1][j] += a1[q] * w[j];
        }
      }
    }
  }
}

// Phase squash_to: squash the tile and store units < units of both images into dst[image][units].
template <int U>
LENET_HD void phase_squash_to(const HeadParams& p, int units, float* dst, int tid, HeadRegs& r) {
  const int ig = head_image_group(tid), ug = head_unit_group(tid);
  LENET_UNROLL
  for (int j = 0; j < U; ++j) {
    const int u = unit_of<U>(ug, j);
    if (u < units)
      for (int i = 0; i < 2; ++i)
        dst[(2 * ig + i) * units + u] = squash(p.act, p.act_amp, p.act_slope, p.act_add, r.acc[i][j]);
  }
}

// Phase write_scores: the only global store of the head.
template <int U>
LENET_HD void phase_write_scores(const HeadParams& p, int u0, int64_t n, int64_t first, float* out,
                                 int tid, HeadRegs& r) {
  const int ig = head_image_group(tid), ug = head_unit_group(tid);
  LENET_UNROLL
  for (int j = 0; j < U; ++j) {
    const int u = u0 + unit_of<U>(ug, j);
    if (u >= p.classes) continue;
    for (int i = 0; i < 2; ++i) {
      const int64_t img = first + 2 * ig + i;
      if (img < n) out[img * p.classes + u] = p.rbf ? -r.acc[i][j] : r.acc[i][j];
    }
  }
}

template <int U, class Exec>
LENET_HD void output_layer(Exec& ex, const HeadParams& p, int64_t n, int64_t first,
                           HeadShared& sh, float* out) {
  constexpr int cols = kHeadUnitGroups * U;
  for (int u0 = 0; u0 < p.out_pad; u0 += cols) {
    ex.phase([&](int tid, HeadRegs& r) { tile_init<U>(r, p.rbf ? nullptr : p.out_b, u0, head_unit_group(tid)); });
    for (int k0 = 0; k0 < kF6; k0 += kOutChunk) {
      ex.phase([&](int tid, HeadRegs&) {
        phase_stage_weights(p.out_wt, p.out_pad, k0, kOutChunk, u0, cols, tid, sh);
      });
      if (p.rbf)
        ex.phase([&](int tid, HeadRegs& r) { phase_accumulate<U, true>(&sh.f6[0][0], kF6, k0, kOutChunk, cols, tid, sh, r); });
      else
        ex.phase([&](int tid, HeadRegs& r) { phase_accumulate<U, false>(&sh.f6[0][0], kF6, k0, kOutChunk, cols, tid, sh, r); });
    }
    ex.phase([&](int tid, HeadRegs& r) { phase_write_scores<U>(p, u0, n, first, out, tid, r); });
  }
}

// The program of one block (images first .. first+31).
template <class Exec>
LENET_HD void head_program(Exec& ex, const HeadParams& p, const float* s4, int64_t n,
                           int64_t first, HeadShared& sh, float* out) {
  // C5: 20 chunks of 20 inputs.
  ex.phase([&](int tid, HeadRegs& r) { tile_init<kHeadU>(r, p.c5_b, 0, head_unit_group(tid)); });
  for (int k0 = 0; k0 < kS4Len; k0 += kChunk) {
    ex.phase([&](int tid, HeadRegs&) { phase_stage_c5_chunk(p, s4, n, first, k0, tid, sh); });
    ex.phase([&](int tid, HeadRegs& r) {
      phase_accumulate<kHeadU, false>(&sh.x[0][0], kChunk, 0, kChunk, kC5Pad, tid, sh, r);
    });
  }
  ex.phase([&](int tid, HeadRegs& r) { phase_squash_to<kHeadU>(p, kC5, &sh.c5[0][0], tid, r); });
  // F6: the C5 outputs stay in shared memory; weights in 5 chunks of 24 rows.
  ex.phase([&](int tid, HeadRegs& r) { tile_init<kHeadU>(r, p.f6_b, 0, head_unit_group(tid)); });
  for (int k0 = 0; k0 < kC5; k0 += kF6Chunk) {
    ex.phase([&](int tid, HeadRegs&) {
      phase_stage_weights(p.f6_wt, kF6Pad, k0, kF6Chunk, 0, kF6Pad, tid, sh);
    });
    ex.phase([&](int tid, HeadRegs& r) {
      phase_accumulate<kHeadU, false>(&sh.c5[0][0], kC5, k0, kF6Chunk, kF6Pad, tid, sh, r);
    });
  }
  ex.phase([&](int tid, HeadRegs& r) { phase_squash_to<kHeadU>(p, kF6, &sh.f6[0][0], tid, r); });
  // Output: RBF distances to the 10 prototypes (U = 1) or the linear head (U = 1 or 8).
  if (p.out_u == 1)
    output_layer<1>(ex, p, n, first, sh, out);
  else
    output_layer<kHeadU>(ex, p, n, first, sh, out);
}

}  // namespace lenet::cuda
