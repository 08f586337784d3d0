#pragma once
// Host side of the CUDA backend that exists in every build (also without nvcc):
//   * emulate_scores: runs the kernels' programs (phases.h) on the CPU over every block and
//     thread, with the launch configuration and shared-memory layout of the GPU.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/cuda/packing.h"
#include "engine/cuda/phases.h"
#include "engine/model.h"

namespace lenet::cuda {

// Grid sizes of the two kernels for n images.
inline int64_t subsample_blocks(int64_t n) { return (n + kSubImages - 1) / kSubImages; }
inline int64_t head_blocks(int64_t n, int images) { return (n + images - 1) / images; }

enum class ThreadOrder { Forward, Reverse };

// Scores [n][classes] exactly as the GPU computes them. Returns the index of the first image with
// a NaN/Inf float pixel, or -1. `order` runs each phase's threads backwards: a phase whose result
// depends on thread order (a missing barrier) gives different scores.
// `chunk` > 0 splits the batch into launches of that many images, as the CUDA engine does.
// `head_images`: the head's tile, kHeadImages or kHeadSmallImages (the engine picks it per launch
// from the GPU's size: head_tile_images).
int64_t emulate_scores(const Model& model, const InputBatch& batch, float* scores,
                       ThreadOrder order = ThreadOrder::Forward, int64_t chunk = 0,
                       int head_images = kHeadImages);

// The per-phase read/write conflict checker: runs both kernels' programs over every block for
// `batch`, and for every phase records, per thread, the shared and global words it writes (each
// thread runs alone from the phase's starting memory; a word is written if its bytes change) and
// whether it reads a word another thread of the same phase writes (it is run again on the
// memory with the other threads' writes applied, and once with those words set to NaN: a
// different result means it read one). Reports write/write and read/write conflicts between
// threads of one phase, i.e. code that needs a barrier it does not have.
// `merge_kernel` ("subsample" or "head") and `merge_after` = k remove the barrier after phase k
// of each block of that kernel (a debug switch): the reads and writes of a thread in phase k+1
// are then checked against the other threads' writes in phase k too (not phase k's reads
// against phase k+1's writes: the phase-k program is gone by then).
struct PhaseCheck {
  int64_t phases = 0;                  // phases checked (over all blocks)
  int64_t conflicts = 0;
  std::vector<std::string> examples;   // the first few conflicts, described
};
PhaseCheck check_phases(const Model& model, const InputBatch& batch, int head_images = kHeadImages,
                        const std::string& merge_kernel = "", int merge_after = -1);

}  // namespace lenet::cuda
