#pragma once
// Every CUDA call and launch goes through check(): failures become lenet::cuda::CudaError (a
// std::runtime_error, so Python sees RuntimeError) naming the CUDA error and the call.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace lenet::cuda {

struct CudaError : std::runtime_error {
  cudaError_t code;
  CudaError(cudaError_t e, const std::string& what)
      : std::runtime_error(std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e) +
                           " (in " + what + ")"),
        code(e) {}
};

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear a non-sticky error so the next call starts clean
    throw CudaError(e, what);
  }
}

}  // namespace lenet::cuda

#define LENET_CUDA_CHECK(call) ::lenet::cuda::check((call), #call)
// After a <<<...>>> launch: configuration errors are reported by cudaGetLastError.
#define LENET_CUDA_CHECK_LAUNCH(name) ::lenet::cuda::check(cudaGetLastError(), "launch of " name)
