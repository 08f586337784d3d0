// Input -> C1 -> squash -> S2 -> C3 (connection table) -> squash -> S4: one block of
// kSubThreads threads per kSubImages images; C1/C3 maps live only in registers. The logic is
// subsample_program (phases.h); the launch configuration is justified there.
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_exec.cuh"
#include "engine/cuda/kernels.h"

namespace lenet::cuda {

static_assert(sizeof(SubsampleParams) <= 32000, "kernel parameters are limited to 32 KB");
static_assert(sizeof(SubShared) <= 48 * 1024, "static shared memory is limited to 48 KB");

template <int Act>
__global__ void __launch_bounds__(kSubThreads)
    fused_subsample_kernel(const __grid_constant__ SubsampleParams p, const InputView in, float* s4,
                           int* first_bad) {
  __shared__ SubShared sh;
  DeviceExec<NoRegs> ex;
  subsample_program<Act>(ex, p, in, int64_t(blockIdx.x) * kSubImages, sh, s4, first_bad);
}

void launch_fused_subsample(const SubsampleParams& p, const InputView& in, float* s4,
                            int* first_bad, cudaStream_t stream) {
  if (in.n <= 0) return;
  const unsigned blocks = unsigned((in.n + kSubImages - 1) / kSubImages);
  if (p.act == kActRelu)
    fused_subsample_kernel<kActRelu><<<blocks, kSubThreads, 0, stream>>>(p, in, s4, first_bad);
  else
    fused_subsample_kernel<kActTanhLike><<<blocks, kSubThreads, 0, stream>>>(p, in, s4, first_bad);
  LENET_CUDA_CHECK_LAUNCH("fused_subsample_kernel");
}

}  // namespace lenet::cuda
