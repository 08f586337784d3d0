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
#define LENET_HDC __host__ __device__ constexpr
#else
#define LENET_HD inline
#define LENET_HDC constexpr
#endif
#ifdef __CUDA_ARCH__  // the device pass only: host compilers do not know the pragma
#define LENET_UNROLL _Pragma("unroll")
#else
#define LENET_UNROLL
#endif

#include <cmath>
#include <cstdint>

#include "engine/model.h"
#ifndef __CUDA_ARCH__
#include <stdexcept>
#endif

namespace lenet::cuda {

// ---- fixed geometry: the layer sizes of engine/model.h, under the kernels' short names ------------
constexpr int kFrame = kC1Size + kKernel - 1;  // C1 input frame: input_size + 2*c1_padding = 32
constexpr int kFramePix = kFrame * kFrame;
constexpr int kMaps1 = kC1Maps, kS2 = kS2Size, kS2Pix = kS2 * kS2;  // S2: 6@14x14
constexpr int kMaps3 = kC3Maps, kS4 = kS4Size, kS4Pix = kS4 * kS4;  // S4: 16@5x5
constexpr int kS4Len = kMaps3 * kS4Pix;                               // 400 = C5 fan-in
constexpr int kC5 = kC5Units, kF6 = kF6Units;
// (kActTanhLike/kActRelu and kPoolTrainable/kPoolAvg/kPoolMax: engine/model.h.)

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
// fused_rbf (the head): one block = kHeadImages (32) images and kHeadThreads (256) threads, or
//   16 images and 128 threads when 32-image tiles would give the GPU fewer than 2 blocks per SM
//   (head_tile_images); each thread owns a 2-image x 8-unit register tile (C5, F6 and wide
//   linear heads; 1 unit for <= 16 classes). The weights (C5 alone is 192 KB: too big for
//   constant memory, and read per unit, not uniformly) are streamed through shared memory in
//   double-buffered chunks of 20-28 inputs, so each weight read from global memory (L2-resident:
//   ~270 KB in all) serves the tile's images, and the next chunk is in flight while the current
//   one is accumulated (one barrier per chunk). Per 4 inputs a thread issues 2 activation loads
//   (broadcasts) and 8 weight loads, all 128-bit, for 64 FMAs: the same >= 4 FMAs per shared
//   load as the subsampling kernel. Shared: 2 weight chunks of 28x128 + one layer's activations
//   at a time (the S4 chunks, C5 or F6 outputs) = 44,032 B static for 32 images (36,352 B for 16).
//   The head is ~20 % of the model's MACs, so its lower occupancy costs less than smaller tiles
//   (more weight traffic per image) would, once the grid fills the GPU.
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

// tanh(x) for the squash, branch-free: x * P(x^2) / Q(x^2), an odd [11/6] rational minimax
// approximation on [-9, 9] (fitted for this engine by Lawson-weighted least squares on relative
// error: 5.9e-8 in exact arithmetic, within 3.5e-7 relative in float32; tests check 1e-6 over 17M
// floats), x clamped to that range (beyond it float32 tanh is 1 to within 3e-8). Costs 2 compares,
// 10 FMAs and one division (on the GPU MUFU.RCP + FMUL, within 2 ulp for Q in [1, 316]),
// where CUDA's tanhf costs 2 MUFU and 3 branches. The compares keep NaN as NaN (fminf/fmaxf
// would turn it into +-1).
constexpr float kTanhClamp = 9.0f;
LENET_HD float tanh_approx(float x) {
  x = x > kTanhClamp ? kTanhClamp : x;
  x = x < -kTanhClamp ? -kTanhClamp : x;
  const float s = x * x;
  float p = 1.8255425361723102e-11f;
  p = p * s - 1.2780520085938197e-08f;
  p = p * s + 9.267451669042167e-06f;
  p = p * s + 0.0029207656375911354f;
  p = p * s + 0.12919232156434432f;
  p = p * s + 0.9999999411706855f;
  float q = 0.0002281006982009035f;
  q = q * s + 0.023763184759510298f;
  q = q * s + 0.4625251602175724f;
  q = q * s + 1.0f;
#ifdef __CUDA_ARCH__
  // q >= 1: an approximate reciprocal (MUFU.RCP, 1 ulp) and a multiply; unlike __fdividef, no
  // rescaling for huge or tiny divisors is needed
  float rq;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(rq) : "f"(q));
  return (x * p) * rq;
#else
  return (x * p) / q;
#endif
}

// The squash with the activation known at compile time (the subsampling kernel is instantiated
// per activation, so its 15 squashes per C1 item carry no branch), and with it chosen at run time
// (the head: 204 squashes per image, a uniform branch each).
template <int Act>
LENET_HD float squash_as(float amp, float slope, float add, float a) {
  if constexpr (Act == kActRelu) {
    (void)amp, (void)slope, (void)add;
    return a > 0.f ? a : 0.f;
  } else {
    return add + amp * tanh_approx(slope * a);
  }
}

LENET_HD float squash(int act, float amp, float slope, float add, float a) {
  return act == kActRelu ? squash_as<kActRelu>(amp, slope, add, a)
                         : squash_as<kActTanhLike>(amp, slope, add, a);
}

LENET_HD float max2(float a, float b) { return a > b ? a : b; }

// One 2x2 subsampling unit over four squashed convolution outputs.
template <int Act>
LENET_HD float pool4(int kind, float a, float b, float c, float d, float coef, float bias,
                     float amp, float slope, float add) {
  if (kind == kPoolMax) return max2(max2(a, b), max2(c, d));
  const float s = (a + b) + (c + d);
  if (kind == kPoolAvg) return s * 0.25f;
  return squash_as<Act>(amp, slope, add, s * coef + bias);
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

// Records the lowest index of an image with a NaN/Inf pixel (first_bad: null when unchecked).
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
        if (first_bad && !finite(v)) note_bad(first_bad, in.index_base + img);
      }
    }
    sh.in[b][y * kFrame + x] = v;
  }
}

// C1 maps M0..M0+2 at one S2 position from a 6x6 register patch; M0 is a template argument so
// the weights are constant-bank operands of the FMAs, not loads.
template <int M0, int Act>
LENET_HD void c1_s2_three_maps(const SubsampleParams& p, const float (&x)[6][6], float* s2, int pos) {
  LENET_UNROLL
  for (int m = M0; m < M0 + 3; ++m) {
    float acc[4] = {p.c1_b[m], p.c1_b[m], p.c1_b[m], p.c1_b[m]};
    conv2x2(x, p.c1_w + m * 25, acc);
    LENET_UNROLL
    for (int j = 0; j < 4; ++j) acc[j] = squash_as<Act>(p.act_amp, p.act_slope, p.act_add, acc[j]);
    const float coef = p.pooling == kPoolTrainable ? p.s2_coef[m] : 0.f;
    const float bias = p.pooling == kPoolTrainable ? p.s2_bias[m] : 0.f;
    s2[m * kS2Pix + pos] = pool4<Act>(p.pooling, acc[0], acc[1], acc[2], acc[3], coef, bias,
                                      p.act_amp, p.act_slope, p.act_add);
  }
}

// Phase 2, c1_s2: work item = (half of the C1 maps, image, S2 position), half-major: 1,568 items,
// 4.9 per thread. A 6x6 register patch feeds 3 maps (300 FMAs for 36 shared loads).
template <int Act>
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
      c1_s2_three_maps<0, Act>(p, x, sh.s2[b], pos);
    else
      c1_s2_three_maps<3, Act>(p, x, sh.s2[b], pos);
  }
}

// Phase 3, c3_s4: work item = (C3 map, image, S4 row), map-major: 320 items, one per thread. A
// thread computes the two C3 rows under its S4 row (2 x 10 accumulators), streaming the 6 input
// rows of each connected S2 map through registers: 500 FMAs per 84 shared loads. Only the S2
// maps the connection table names are read. Writes the S4 activations [n][400] (C5's order).
template <int Act>
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
      top[x] = squash_as<Act>(p.act_amp, p.act_slope, p.act_add, top[x]);
      bottom[x] = squash_as<Act>(p.act_amp, p.act_slope, p.act_add, bottom[x]);
    }
    const float coef = p.pooling == kPoolTrainable ? p.s4_coef[o] : 0.f;
    const float bias = p.pooling == kPoolTrainable ? p.s4_bias[o] : 0.f;
    if (first + b < n) {
      float* dst = s4 + (first + b) * kS4Len + o * kS4Pix + r * kS4;
      LENET_UNROLL
      for (int c = 0; c < kS4; ++c)
        dst[c] = pool4<Act>(p.pooling, top[2 * c], top[2 * c + 1], bottom[2 * c], bottom[2 * c + 1],
                            coef, bias, p.act_amp, p.act_slope, p.act_add);
    }
  }
}

// The program of one block (images first .. first+3); Act = p.act, as a template argument.
template <int Act, class Exec>
LENET_HD void subsample_program(Exec& ex, const SubsampleParams& p, const InputView& in,
                                int64_t first, SubShared& sh, float* s4, int* first_bad) {
  ex.phase([&](int tid, NoRegs&) { phase_load_frames(p, in, first, tid, sh, first_bad); });
  ex.phase([&](int tid, NoRegs&) { phase_c1_s2<Act>(p, tid, sh); });
  ex.phase([&](int tid, NoRegs&) { phase_c3_s4<Act>(p, in.n, first, tid, sh, s4); });
}

// ================================================================================================
// fused_rbf: S4 -> C5 -> squash -> F6 -> squash -> RBF distances (or linear), scores only
// ================================================================================================
//
// The weights stream through shared memory in chunks (20 S4 inputs x 128 C5 units, 24 x 128 for
// F6, 28 x 16|128 for the output layer). Chunks are double-buffered: the phase that accumulates
// chunk c from buffer c%2 first issues the loads of chunk c+1 into buffer (c+1)%2, so their L2
// latency hides behind the FMAs, and one barrier per chunk suffices (a phase reads one buffer and
// writes the other; the barrier orders both for the next phase). On sm_80+ the copy is cp.async
// (global -> shared without registers, completed before the barrier); elsewhere, and in the
// emulator, the loads go to registers at the start of the phase and are stored to shared at its
// end (stage_issue / stage_commit).

// Threads of a head block with Images images: each thread owns 2 images x up to 8 units.
LENET_HDC int head_threads(int images) { return images / 2 * kHeadUnitGroups; }
constexpr int kHeadSmallImages = 16;  // tile for batches too small to fill the GPU with 32s
static_assert(head_threads(kHeadImages) == kHeadThreads, "the 32-image tile has 256 threads");

// 32-image tiles unless that leaves the GPU with fewer than 2 blocks per SM (n/32 < 2 x SMs): then
// 16-image tiles, which double the blocks at the price of reading each weight chunk for 16 images.
inline int head_tile_images(int64_t n, int multiprocessors) {
  return (n + kHeadImages - 1) / kHeadImages < 2 * int64_t(multiprocessors) ? kHeadSmallImages
                                                                             : kHeadImages;
}

constexpr int kC5Chunks = kS4Len / kChunk, kF6Chunks = kC5 / kF6Chunk, kOutChunks = kF6 / kOutChunk;
static_assert(kC5Chunks * kChunk == kS4Len && kF6Chunks * kF6Chunk == kC5 &&
                  kOutChunks * kOutChunk == kF6, "chunks tile the layers");

// 16-byte aligned so activations (4 inputs) and weights (4 units) are single 128-bit loads. The
// activations of one layer at a time share storage: S4 chunks during C5, C5's outputs during F6,
// F6's outputs during the output layer (each is written only after the barrier that ends the
// last read of the previous one).
template <int Images>
struct HeadShared {
  alignas(16) float w[2][kWChunkMax];  // weight chunks [rows][cols], double-buffered
  union Acts {
    float x[2][Images][kChunk];        // S4 chunks, double-buffered
    float c5[Images][kC5];
    float f6[Images][kF6];
  };
  alignas(16) Acts a;
};

// float4 copies one thread stages per chunk: the largest chunk (28 x 128 output weights or the
// C5 chunk: 20 x 128 weights + Images x 20 activations) over the block's threads.
template <int Images>
LENET_HDC int head_stage_quads() {
  constexpr int c5 = kChunk * kC5Pad / 4 + Images * kChunk / 4;
  constexpr int widest = kWChunkMax / 4 > c5 ? kWChunkMax / 4 : c5;
  return (widest + head_threads(Images) - 1) / head_threads(Images);
}

// A thread's registers: its 2-image x up-to-8-unit tile, and the chunk it stages (register path).
template <int Images>
struct HeadRegs {
  float acc[2][kHeadU];
  float stage[head_stage_quads<Images>()][4];
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
  if (reinterpret_cast<uintptr_t>(src) % 16 != 0) throw std::logic_error("misaligned 128-bit load");
  for (int i = 0; i < 4; ++i) v[i] = src[i];
#endif
}

LENET_HD void store4(float* dst, const float (&v)[4]) {
#ifdef __CUDA_ARCH__
  *reinterpret_cast<float4*>(dst) = make_float4(v[0], v[1], v[2], v[3]);
#else
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0) throw std::logic_error("misaligned 128-bit store");
  for (int i = 0; i < 4; ++i) dst[i] = v[i];
#endif
}

// A weight chunk: layer (kC5, kF6 or kOut: a compile-time constant, so shapes and divisions are
// constants), its first input row k0 and, for the output layer, its first column u0.
enum : int { kC5Layer = 0, kF6Layer = 1, kOutLayer = 2 };
struct HeadChunk {
  int k0, u0;
};

// Where copy q (a float4) of a chunk of Layer goes: the chunk's weight rows [k][units] into w[b]
// and, for C5, the tile's S4 activations into a.x[b]. Returns false past the chunk's last copy;
// rows of images past the batch are not read (valid = false: zeros).
template <int Layer, int OutU, int Images>
LENET_HD bool copy_at(const HeadParams& p, const float* s4, int64_t n, int64_t first,
                      HeadChunk ch, int b, HeadShared<Images>& sh, int q,
                      const float*& src, float*& dst, bool& valid) {
  valid = true;
  if constexpr (Layer == kC5Layer) {
    constexpr int xq = kChunk / 4, xcopies = Images * xq;
    if (q < xcopies) {
      const int img = q / xq, col = 4 * (q % xq);
      valid = first + img < n;
      src = valid ? s4 + (first + img) * kS4Len + ch.k0 + col : s4;
      dst = &sh.a.x[b][img][col];
      return true;
    }
    q -= xcopies;
    constexpr int wq = kC5Pad / 4;
    if (q >= kChunk * wq) return false;
    src = p.c5_wt + (ch.k0 + q / wq) * kC5Pad + 4 * (q % wq);
  } else if constexpr (Layer == kF6Layer) {
    constexpr int wq = kF6Pad / 4;
    if (q >= kF6Chunk * wq) return false;
    src = p.f6_wt + (ch.k0 + q / wq) * kF6Pad + 4 * (q % wq);
  } else {
    constexpr int wq = kHeadUnitGroups * OutU / 4;  // a block of 16 x OutU output columns
    if (q >= kOutChunk * wq) return false;
    src = p.out_wt + (ch.k0 + q / wq) * p.out_pad + ch.u0 + 4 * (q % wq);
  }
  dst = sh.w[b] + 4 * q;
  return true;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define LENET_CP_ASYNC 1
#endif

// Starts the copy of a chunk: copy q = tid + j * Threads is this thread's j-th.
template <int Layer, int OutU, int Images>
LENET_HD void stage_issue(const HeadParams& p, const float* s4, int64_t n, int64_t first,
                          HeadChunk ch, int b, HeadShared<Images>& sh, int tid,
                          HeadRegs<Images>& r) {
  constexpr int T = head_threads(Images);
  LENET_UNROLL
  for (int j = 0; j < head_stage_quads<Images>(); ++j) {
    const float* src;
    float* dst;
    bool valid;
    if (!copy_at<Layer, OutU>(p, s4, n, first, ch, b, sh, tid + j * T, src, dst, valid)) break;
#ifdef LENET_CP_ASYNC
    // 16 bytes global -> shared through L2 only (.cg); source size 0 fills zeros.
    const unsigned sdst = unsigned(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(sdst), "l"(src),
                 "r"(valid ? 16 : 0));
#else
    if (valid) {
#ifdef __CUDA_ARCH__
      const float4 v = __ldg(reinterpret_cast<const float4*>(src));
      r.stage[j][0] = v.x, r.stage[j][1] = v.y, r.stage[j][2] = v.z, r.stage[j][3] = v.w;
#else
      load4(src, r.stage[j]);
#endif
    } else {
      r.stage[j][0] = r.stage[j][1] = r.stage[j][2] = r.stage[j][3] = 0.f;
    }
#endif
  }
}

// Completes the copy before the phase's barrier.
template <int Layer, int OutU, int Images>
LENET_HD void stage_commit(const HeadParams& p, const float* s4, int64_t n, int64_t first,
                           HeadChunk ch, int b, HeadShared<Images>& sh, int tid,
                           HeadRegs<Images>& r) {
#ifdef LENET_CP_ASYNC
  (void)p, (void)s4, (void)n, (void)first, (void)ch, (void)b, (void)sh, (void)tid, (void)r;
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#else
  constexpr int T = head_threads(Images);
  LENET_UNROLL
  for (int j = 0; j < head_stage_quads<Images>(); ++j) {
    const float* src;
    float* dst;
    bool valid;
    if (!copy_at<Layer, OutU>(p, s4, n, first, ch, b, sh, tid + j * T, src, dst, valid)) break;
    store4(dst, r.stage[j]);
  }
#endif
}

template <int U, int Images>
LENET_HD void tile_init(HeadRegs<Images>& r, const float* bias /* nullable */, int u0, int ug) {
  LENET_UNROLL
  for (int j = 0; j < U; ++j) {
    const float b = bias ? bias[u0 + unit_of<U>(ug, j)] : 0.f;
    r.acc[0][j] = b;
    r.acc[1][j] = b;
  }
}

// Phase accumulate: acc[i][j] += x[image i][k] * w[k][unit j] (or the squared distance) over the
// chunk's rows (a multiple of 4). x rows have stride x_ld and start at column xk0. Per 4 rows a
// thread issues 2 activation loads and 4 x (U/4) weight loads (128-bit) for 8U FMAs.
template <int U, bool Rbf, int Images>
LENET_HD void phase_accumulate(const float* x, int x_ld, int xk0, int rows, int cols, int tid,
                               const float* w_chunk, HeadRegs<Images>& r) {
  const int ig = head_image_group(tid), ug = head_unit_group(tid);
  const float* x0 = x + (2 * ig) * x_ld + xk0;
  const float* x1 = x0 + x_ld;
  for (int kk = 0; kk < rows; kk += 4) {
    float a0[4], a1[4];
    load4(x0 + kk, a0);
    load4(x1 + kk, a1);
    LENET_UNROLL
    for (int q = 0; q < 4; ++q) {
      const float* wrow = w_chunk + (kk + q) * cols;
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
template <int U, int Images>
LENET_HD void phase_squash_to(const HeadParams& p, int units, float* dst, int tid, HeadRegs<Images>& r) {
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
template <int U, int Images>
LENET_HD void phase_write_scores(const HeadParams& p, int u0, int64_t n, int64_t first, float* out,
                                 int tid, HeadRegs<Images>& r) {
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

// Phase chunk: accumulate chunk `ch` of Layer from buffer b while staging the next chunk (of
// layer Next, at `next`) into the other buffer; Next < 0: nothing left to stage.
template <int Layer, int Next, int OutU, int Images>
LENET_HD void phase_chunk(const HeadParams& p, const float* s4, int64_t n, int64_t first,
                          HeadChunk ch, HeadChunk next, int b, int tid, HeadShared<Images>& sh,
                          HeadRegs<Images>& r) {
  constexpr int cols = kHeadUnitGroups * OutU;
  constexpr int NextLayer = Next < 0 ? Layer : Next;
  if constexpr (Next >= 0) stage_issue<NextLayer, OutU>(p, s4, n, first, next, b ^ 1, sh, tid, r);
  if constexpr (Layer == kC5Layer)
    phase_accumulate<kHeadU, false>(&sh.a.x[b][0][0], kChunk, 0, kChunk, kC5Pad, tid, sh.w[b], r);
  else if constexpr (Layer == kF6Layer)
    phase_accumulate<kHeadU, false>(&sh.a.c5[0][0], kC5, ch.k0, kF6Chunk, kF6Pad, tid, sh.w[b], r);
  else if (p.rbf)
    phase_accumulate<OutU, true>(&sh.a.f6[0][0], kF6, ch.k0, kOutChunk, cols, tid, sh.w[b], r);
  else
    phase_accumulate<OutU, false>(&sh.a.f6[0][0], kF6, ch.k0, kOutChunk, cols, tid, sh.w[b], r);
  if constexpr (Next >= 0) stage_commit<NextLayer, OutU>(p, s4, n, first, next, b ^ 1, sh, tid, r);
}

// The program of one block (images first .. first+Images-1); OutU: output units per thread (1 for
// <= 16 classes, else 8). Chunk c is accumulated from buffer c % 2; a layer's last chunk stages
// the next layer's first.
template <int OutU, int Images, class Exec>
LENET_HD void head_program(Exec& ex, const HeadParams& p, const float* s4, int64_t n,
                           int64_t first, HeadShared<Images>& sh, float* out) {
  using Regs = HeadRegs<Images>;
  constexpr int cols = kHeadUnitGroups * OutU;
  ex.phase([&](int tid, Regs& r) {
    stage_issue<kC5Layer, OutU>(p, s4, n, first, HeadChunk{0, 0}, 0, sh, tid, r);
    tile_init<kHeadU>(r, p.c5_b, 0, head_unit_group(tid));
    stage_commit<kC5Layer, OutU>(p, s4, n, first, HeadChunk{0, 0}, 0, sh, tid, r);
  });
  int b = 0;  // the buffer of the chunk being accumulated; uniform, like every loop here
  // C5: 20 chunks of 20 inputs; the last one stages F6's first chunk.
  for (int c = 0; c < kC5Chunks - 1; ++c, b ^= 1)
    ex.phase([&](int tid, Regs& r) {
      phase_chunk<kC5Layer, kC5Layer, OutU>(p, s4, n, first, HeadChunk{c * kChunk, 0},
                                            HeadChunk{(c + 1) * kChunk, 0}, b, tid, sh, r);
    });
  ex.phase([&](int tid, Regs& r) {
    phase_chunk<kC5Layer, kF6Layer, OutU>(p, s4, n, first, HeadChunk{kS4Len - kChunk, 0},
                                          HeadChunk{0, 0}, b, tid, sh, r);
  });
  b ^= 1;
  // C5's outputs replace the S4 chunks (the barrier above ended the last read of those).
  ex.phase([&](int tid, Regs& r) {
    phase_squash_to<kHeadU>(p, kC5, &sh.a.c5[0][0], tid, r);
    tile_init<kHeadU>(r, p.f6_b, 0, head_unit_group(tid));
  });
  // F6: 5 chunks of 24 inputs; the last one stages the output layer's first chunk.
  for (int c = 0; c < kF6Chunks - 1; ++c, b ^= 1)
    ex.phase([&](int tid, Regs& r) {
      phase_chunk<kF6Layer, kF6Layer, OutU>(p, s4, n, first, HeadChunk{c * kF6Chunk, 0},
                                            HeadChunk{(c + 1) * kF6Chunk, 0}, b, tid, sh, r);
    });
  ex.phase([&](int tid, Regs& r) {
    phase_chunk<kF6Layer, kOutLayer, OutU>(p, s4, n, first, HeadChunk{kC5 - kF6Chunk, 0},
                                           HeadChunk{0, 0}, b, tid, sh, r);
  });
  b ^= 1;
  // F6's outputs replace C5's.
  ex.phase([&](int tid, Regs& r) {
    phase_squash_to<kHeadU>(p, kF6, &sh.a.f6[0][0], tid, r);
    tile_init<OutU>(r, p.rbf ? nullptr : p.out_b, 0, head_unit_group(tid));
  });
  // Output layer: RBF distances to the prototypes or the linear head, per block of cols units,
  // 3 chunks of 28 inputs each; a block's last chunk stages the next block's first.
  for (int u0 = 0; u0 < p.out_pad; u0 += cols) {
    for (int k = 0; k < kOutChunks - 1; ++k, b ^= 1)
      ex.phase([&](int tid, Regs& r) {
        phase_chunk<kOutLayer, kOutLayer, OutU>(p, s4, n, first, HeadChunk{k * kOutChunk, u0},
                                                HeadChunk{(k + 1) * kOutChunk, u0}, b, tid, sh, r);
      });
    if (u0 + cols < p.out_pad)
      ex.phase([&](int tid, Regs& r) {
        phase_chunk<kOutLayer, kOutLayer, OutU>(p, s4, n, first, HeadChunk{kF6 - kOutChunk, u0},
                                                HeadChunk{0, u0 + cols}, b, tid, sh, r);
      });
    else
      ex.phase([&](int tid, Regs& r) {
        phase_chunk<kOutLayer, -1, OutU>(p, s4, n, first, HeadChunk{kF6 - kOutChunk, u0},
                                         HeadChunk{0, 0}, b, tid, sh, r);
      });
    b ^= 1;
    ex.phase([&](int tid, Regs& r) {
      phase_write_scores<OutU>(p, u0, n, first, out, tid, r);
      if (u0 + cols < p.out_pad)
        tile_init<OutU>(r, p.rbf ? nullptr : p.out_b, u0 + cols, head_unit_group(tid));
    });
  }
}

}  // namespace lenet::cuda
