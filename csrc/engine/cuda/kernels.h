#pragma once
// Launchers of the two fused kernels (defined in fused_subsample.cu / fused_rbf.cu). Both only
// enqueue on `stream`; every launch is checked.
#include <cuda_runtime.h>

#include "engine/cuda/phases.h"

namespace lenet::cuda {

// S4 activations [n][400] of images in.n; first_bad: device int, lowered to the index of the
// first image with a NaN/Inf float pixel.
void launch_fused_subsample(const SubsampleParams& p, const InputView& in, float* s4,
                            int* first_bad, cudaStream_t stream);

// Scores [n][classes] from the S4 activations; the tile size (head_tile_images) depends on the
// device's multiprocessor count.
void launch_fused_rbf(const HeadParams& p, const float* s4, int64_t n, float* scores,
                      int multiprocessors, cudaStream_t stream);

}  // namespace lenet::cuda
