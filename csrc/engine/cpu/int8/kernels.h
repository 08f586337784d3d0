#pragma once
// The INT8 kernel entry points of one instruction set (kernels_vnni.cpp, kernels_avx512bw.cpp).
#include <cstddef>
#include <cstdint>

#include "engine/cpu/int8/packed.h"
#include "engine/model.h"

namespace lenet::cpu::int8 {

enum class Int8Isa { Avx512Bw, Avx512Vnni };

// Input bytes to prefetch: the next block's images (on a large batch they come from memory, not
// cache, and a block's compute hides their latency).
struct Ahead {
  const void* data = nullptr;
  size_t bytes = 0;
};

struct KernelSet {
  Int8Isa isa;
  int lanes;             // images per block
  int small_lanes;       // images per narrow block (calls and tails of at most this many images)
  size_t scratch_bytes;  // per-thread scratch either block needs (64-byte aligned by the caller)
  // Scores of images [first, first + count), count <= lanes. Returns false when a float image
  // holds NaN or Inf (its lanes' scores are then unspecified). While it computes, it prefetches
  // `ahead` (the input of the block this thread takes next, or null) into the cache.
  bool (*run_block)(const Packed&, const InputBatch&, int64_t first, int count, uint8_t* scratch,
                    float* scores, const Ahead& ahead);
  // The same with count <= small_lanes, on narrower vectors.
  bool (*run_small)(const Packed&, const InputBatch&, int64_t first, int count, uint8_t* scratch,
                    float* scores, const Ahead& ahead);
  // One image, its rows spread over the lanes (same scores as a block).
  bool (*run_single)(const Packed&, const InputBatch&, int64_t index, uint8_t* scratch, float* scores);
};

#if LENET_HAVE_AVX512
const KernelSet& kernels_vnni();
const KernelSet& kernels_avx512bw();
#endif

// The best INT8 instruction set this CPU and build run (none: std::invalid_argument naming what
// is missing); LENET_MAX_CPU_ISA below avx512 rules both out.
Int8Isa detect_int8_isa();
const char* int8_isa_name(Int8Isa isa);
// `wanted` when detect allows it, else std::invalid_argument (never a silent fallback).
Int8Isa require_int8_isa(Int8Isa wanted);
const KernelSet& int8_kernels_for(Int8Isa isa);

}  // namespace lenet::cpu::int8
