#pragma once
// The CUDA engine: plain C++ interface (bindings.cpp is compiled without nvcc). Owns its device
// buffers and reuses them across calls; weights are uploaded once. Thread-safe (one call at a
// time per engine). Every CUDA failure throws CudaError (std::runtime_error) naming the error.
#include <cstdint>
#include <memory>
#include <string>

#include "engine/model.h"

namespace lenet::cuda {

class CudaEngine {
 public:
  // On the current CUDA device. Throws std::runtime_error when there is no usable device.
  explicit CudaEngine(Model model);
  ~CudaEngine();
  CudaEngine(const CudaEngine&) = delete;
  CudaEngine& operator=(const CudaEngine&) = delete;

  const Model& model() const;
  int device() const;
  std::string device_name() const;

  // Host batch (numpy): staged through pinned memory with asynchronous copies on the engine's
  // stream, in chunks; returns when `scores` (host, [n][classes]) is filled. Returns the first
  // image with a NaN/Inf pixel, or -1.
  int64_t scores_host(const InputBatch& batch, float* scores);

  // Device batch (pointers in this engine's device memory, e.g. a torch CUDA tensor through
  // DLPack), zero-copy, on `stream` (a cudaStream_t as an integer; 0 = the legacy default stream).
  // `scores` is device memory [n][classes]. Waits for the stream so errors and NaN/Inf inputs are
  // reported by this call.
  int64_t scores_device(const InputBatch& batch, float* scores, uintptr_t stream);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lenet::cuda
