#pragma once
// Host side of the CUDA backend that exists in every build (also without nvcc):
//   * pack_model: the Model in the layout the kernels read (SubsampleParams for the constant bank,
//     the head's weights transposed and zero-padded); the CUDA engine uploads exactly this;
//   * emulate_scores: runs the kernels' programs (phases.h) on the CPU over every block and
//     thread, with the launch configuration and shared-memory layout of the GPU.
#include <cstdint>
#include <vector>

#include "engine/cuda/phases.h"
#include "engine/model.h"

namespace lenet::cuda {

struct PackedModel {
  SubsampleParams sub{};
  HeadParams head{};  // pointers unset: point them at host (emulator) or device copies
  std::vector<float> c5_wt, c5_b, f6_wt, f6_b, out_wt, out_b;
};

PackedModel pack_model(const Model& model);

// Points head's weight pointers at the packed host vectors.
HeadParams host_head_params(const PackedModel& packed);

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

}  // namespace lenet::cuda
