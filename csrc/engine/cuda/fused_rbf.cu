// S4 -> C5 -> squash -> F6 -> squash -> RBF distances (or linear head), one pass per tile of
// 32 (or 16) images, writing only the scores. The logic is head_program (phases.h); the launch
// configuration is justified there.
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_exec.cuh"
#include "engine/cuda/kernels.h"

namespace lenet::cuda {

static_assert(sizeof(HeadShared<kHeadImages>) <= 48 * 1024, "static shared memory is limited to 48 KB");

template <int OutU, int Images>
// Small tiles exist to put more blocks on each SM: cap their registers at 4 blocks per SM.
__global__ void __launch_bounds__(head_threads(Images), Images == kHeadSmallImages ? 4 : 1)
    fused_rbf_kernel(const __grid_constant__ HeadParams p, const float* __restrict__ s4, int64_t n,
                     float* __restrict__ scores) {
  __shared__ HeadShared<Images> sh;
  DeviceExec<HeadRegs<Images>> ex;
  head_program<OutU>(ex, p, s4, n, int64_t(blockIdx.x) * Images, sh, scores);
}

template <int OutU, int Images>
static void launch(const HeadParams& p, const float* s4, int64_t n, float* scores, cudaStream_t stream) {
  const int64_t blocks = (n + Images - 1) / Images;
  fused_rbf_kernel<OutU, Images><<<unsigned(blocks), head_threads(Images), 0, stream>>>(p, s4, n, scores);
  LENET_CUDA_CHECK_LAUNCH("fused_rbf_kernel");
}

void launch_fused_rbf(const HeadParams& p, const float* s4, int64_t n, float* scores,
                      int multiprocessors, cudaStream_t stream) {
  if (n <= 0) return;
  const bool small = head_tile_images(n, multiprocessors) == kHeadSmallImages;
  if (p.out_u == 1)
    small ? launch<1, kHeadSmallImages>(p, s4, n, scores, stream) : launch<1, kHeadImages>(p, s4, n, scores, stream);
  else
    small ? launch<kHeadU, kHeadSmallImages>(p, s4, n, scores, stream)
          : launch<kHeadU, kHeadImages>(p, s4, n, scores, stream);
}

}  // namespace lenet::cuda
