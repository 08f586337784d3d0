#pragma once
// The CPU kernel entry points of one instruction set. Each ISA unit fills a KernelSet; the engine
// picks the best one the running CPU supports (isa.h).
#include <cstddef>
#include <cstdint>

#include "engine/cpu/isa.h"
#include "engine/cpu/kernel_params.h"
#include "engine/model.h"

namespace lenet::cpu {

struct KernelSet {
  Isa isa;
  int lanes;  // images per vector on the wide path
  // Floats of per-thread scratch either path needs (64-byte aligned by the caller).
  size_t (*scratch_floats)(const KernelParams&);
  // Wide path: `count` (1..lanes) images starting at `first`, one image per SIMD lane, every layer
  // fused and kept in per-thread scratch. Writes scores[first..first+count) and returns false if
  // an image of a float batch holds NaN or Inf (uint8 input cannot).
  bool (*run_wide)(const KernelParams&, const InputBatch&, int64_t first, int count, float* scratch,
                   float* scores);
  // The wide path of one block in stages, so the threads can share a block: stage s (of
  // wide_stages) has wide_parts[s] independent parts, and every part of a stage must be done
  // before any part of the next one starts. `block` is the block's scratch (shared), `own` the
  // calling thread's. Stage 0 (packing) returns false for NaN/Inf in its part of the input.
  int wide_stages;
  const int* wide_parts;
  bool (*run_wide_part)(const KernelParams&, const InputBatch&, int64_t first, int count, int stage,
                        int part, float* block, float* own, float* scores);
  // Small-batch path: one image, output positions / units in the lanes.
  bool (*run_small)(const KernelParams&, const InputBatch&, int64_t index, float* scratch,
                    float* scores);
};

const KernelSet& kernels_baseline();
#if LENET_HAVE_AVX2
const KernelSet& kernels_avx2();
#endif
#if LENET_HAVE_AVX512
const KernelSet& kernels_avx512();
#endif

// The best set compiled in that `isa` (normally detect_isa()) can run.
const KernelSet& kernels_for(Isa isa);

}  // namespace lenet::cpu
