#pragma once
// What the CUDA backend can see, callable in every build: without nvcc (device_none.cpp), without a
// driver or without a GPU it reports zero devices and says why instead of failing.
#include <string>
#include <vector>

namespace lenet::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;       // compute capability
  int multiprocessors = 0;
  int clock_khz = 0;              // peak SM clock
  long long memory_bytes = 0;
};

struct CudaStatus {
  bool compiled = false;          // built with nvcc
  int runtime_version = 0;        // e.g. 13000
  int driver_version = 0;         // 0: no driver
  std::string archs;              // the architectures this build carries code for
  std::string error;              // why there are no devices, e.g. "cudaErrorNoDevice: ..."
  std::vector<DeviceInfo> devices;
};

CudaStatus cuda_status() noexcept;
int device_count() noexcept;

}  // namespace lenet::cuda
