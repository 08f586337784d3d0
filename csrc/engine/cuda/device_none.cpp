// The CUDA status of a build without nvcc. (With CUDA, cuda_engine.cu defines these.)
#include "engine/cuda/device.h"

#ifndef LENET_WITH_CUDA
namespace lenet::cuda {

CudaStatus cuda_status() noexcept {
  CudaStatus s;
  s.error = "lenet_ext was built without CUDA (no nvcc at build time)";
  return s;
}

int device_count() noexcept { return 0; }

}  // namespace lenet::cuda
#endif
