#pragma once
// The GPU executor of the phase programs (phases.h): each thread runs a phase for itself with its
// own registers, then the block meets at a barrier.
#include "engine/cuda/phases.h"

namespace lenet::cuda {

template <class Regs>
struct DeviceExec {
  Regs regs;
  template <class F>
  __device__ __forceinline__ void phase(F&& f) {
    f(int(threadIdx.x), regs);
    __syncthreads();
  }
};

}  // namespace lenet::cuda
