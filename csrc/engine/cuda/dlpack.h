#pragma once
// The DLPack (legacy, unversioned "dltensor" capsule) structures, as in dmlc/dlpack's dlpack.h,
// declared here so the binding layer can read torch/cupy CUDA tensors without either library.
#include <cstdint>
#include <stdexcept>
#include <string>

namespace lenet::dlpack {

enum DeviceType : int32_t { kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3, kDLCUDAManaged = 13 };
enum TypeCode : uint8_t { kDLInt = 0, kDLUInt = 1, kDLFloat = 2 };

struct DLDevice {
  int32_t device_type;
  int32_t device_id;
};

struct DLDataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};

struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; null = compact row-major
  uint64_t byte_offset;
};

struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};

// A kernel reading a float32 at an address that is not a multiple of 4 raises the sticky
// cudaErrorMisalignedAddress, which breaks the whole CUDA context (the caller's torch included),
// so the data address is checked on the host before anything is launched. DLPack allows any
// byte_offset; torch's is always a multiple of the element size, other producers' need not be.
inline void check_aligned(const DLTensor& t, const char* what) {
  const uint64_t bytes = (t.dtype.bits * uint64_t(t.dtype.lanes) + 7) / 8;
  const uint64_t addr = reinterpret_cast<uintptr_t>(t.data) + t.byte_offset;
  if (bytes > 1 && addr % bytes != 0)
    throw std::invalid_argument(std::string(what) + ": DLPack data (byte_offset " +
                                std::to_string(t.byte_offset) + ") is not aligned to its " +
                                std::to_string(bytes) + "-byte elements");
}

}  // namespace lenet::dlpack
