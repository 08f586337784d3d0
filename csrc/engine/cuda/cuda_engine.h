#pragma once
// The CUDA engine: plain C++ interface (the bindings are compiled without nvcc). Owns its device
// buffers and reuses them across calls; weights are uploaded once. Thread-safe (one call at a
// time per engine). Every CUDA failure throws CudaError (std::runtime_error) naming the error.
#include <cstdint>
#include <memory>
#include <string>

#include "engine/cuda/phases.h"
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

  // Host batch (numpy): staged through pinned memory in chunks (several threads copy each
  // chunk), with asynchronous copies and kernels on two streams, so the staging of one chunk
  // overlaps the upload and kernels of the previous one; returns when `scores` (host,
  // [n][classes]) is filled. Returns the first image with a NaN/Inf pixel (float input), or -1.
  int64_t scores_host(const InputBatch& batch, float* scores);

  // Rows of S4 activations a device call needs in its workspace (scores_device).
  static int64_t workspace_rows(int64_t n);
  static constexpr int kWorkspaceCols = kS4Len;

  // Device batch (pointers in this engine's device memory, e.g. a torch CUDA tensor through
  // DLPack), zero-copy, enqueued on `stream` (a cudaStream_t as an integer; 0 = the legacy
  // default stream). Asynchronous: returns without waiting for the GPU, so it can be captured in a
  // CUDA graph. `scores`: device [n][classes]. `first_bad`: device int or null; for float input
  // it is set (by a memset and the first kernel, in stream order) to the lowest index of an image
  // with a NaN/Inf pixel, or 0x7f7f7f7f. `workspace`: device float [workspace_rows(n)][400] for
  // the S4 activations, or null for the engine's own buffer, which may have to grow: refused
  // with an error before anything is launched while the stream is being captured.
  void scores_device(const InputBatch& batch, float* scores, uintptr_t stream, int* first_bad,
                     float* workspace);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lenet::cuda
