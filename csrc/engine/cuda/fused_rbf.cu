// S4 -> C5 -> squash -> F6 -> squash -> RBF distances (or linear head), one pass per tile of
// kHeadImages images, writing only the scores. The logic is head_program (phases.h); the launch
// configuration is justified there.
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_exec.cuh"
#include "engine/cuda/kernels.h"

namespace lenet::cuda {

static_assert(sizeof(HeadShared) <= 48 * 1024, "static shared memory is limited to 48 KB");

__global__ void __launch_bounds__(kHeadThreads)
    fused_rbf_kernel(const __grid_constant__ HeadParams p, const float* __restrict__ s4, int64_t n,
                     float* __restrict__ scores) {
  __shared__ HeadShared sh;
  DeviceExec<HeadRegs> ex;
  head_program(ex, p, s4, n, int64_t(blockIdx.x) * kHeadImages, sh, scores);
}

void launch_fused_rbf(const HeadParams& p, const float* s4, int64_t n, float* scores,
                      cudaStream_t stream) {
  if (n <= 0) return;
  const int64_t blocks = (n + kHeadImages - 1) / kHeadImages;
  fused_rbf_kernel<<<unsigned(blocks), kHeadThreads, 0, stream>>>(p, s4, n, scores);
  LENET_CUDA_CHECK_LAUNCH("fused_rbf_kernel");
}

}  // namespace lenet::cuda
