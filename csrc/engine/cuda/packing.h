#pragma once
// The Model in the layout the CUDA kernels read: SubsampleParams for the constant bank, the head's
// weights transposed and zero-padded. The CUDA engine uploads exactly this and the host emulator
// runs on exactly this, so the two cannot pack differently.
#include <vector>

#include "engine/cuda/phases.h"
#include "engine/model.h"

namespace lenet::cuda {

struct PackedModel {
  SubsampleParams sub{};
  HeadParams head{};  // pointers unset: point them at host (emulator) or device copies
  std::vector<float> c5_wt, c5_b, f6_wt, f6_b, out_wt, out_b;
};

// Validates the model, then packs it.
PackedModel pack_model(const Model& model);

// Points head's weight pointers at the packed host vectors.
HeadParams host_head_params(const PackedModel& packed);

}  // namespace lenet::cuda
