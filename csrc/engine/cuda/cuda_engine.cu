#include "engine/cuda/cuda_engine.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device.h"
#include "engine/cuda/packing.h"
#include "engine/cuda/kernels.h"

#ifndef LENET_CUDA_ARCHS
#define LENET_CUDA_ARCHS "?"
#endif

namespace lenet::cuda {

// ---- device discovery ---------------------------------------------------------------------------

CudaStatus cuda_status() noexcept {
  CudaStatus s;
  s.compiled = true;
  s.archs = LENET_CUDA_ARCHS;
  cudaRuntimeGetVersion(&s.runtime_version);
  if (cudaDriverGetVersion(&s.driver_version) != cudaSuccess) s.driver_version = 0;
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    s.error = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    (void)cudaGetLastError();
    return s;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    DeviceInfo d;
    d.index = i;
    d.name = prop.name;
    d.major = prop.major;
    d.minor = prop.minor;
    d.multiprocessors = prop.multiProcessorCount;
    if (cudaDeviceGetAttribute(&d.clock_khz, cudaDevAttrClockRate, i) != cudaSuccess) {
      d.clock_khz = 0;
      (void)cudaGetLastError();
    }
    d.memory_bytes = static_cast<long long>(prop.totalGlobalMem);
    s.devices.push_back(d);
  }
  if (s.devices.empty() && s.error.empty()) s.error = "no CUDA device found";
  return s;
}

int device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

// ---- buffers ------------------------------------------------------------------------------------

namespace {

// Images per pass on device input: bounds the reused S4 buffer (65,536 images = 105 MB).
constexpr int64_t kMaxChunk = 65536;
// Images per chunk of a host batch: at most 16,384 (4,096 blocks of the first kernel fill any
// GPU), and a quarter of the batch down to 2,048, so a batch of a few thousand images is still
// cut into chunks whose staging, upload and kernels overlap.
constexpr int64_t kHostChunkMax = 16384, kHostChunkMin = 2048;
int64_t host_chunk(int64_t n) {
  return std::min(n, std::max(kHostChunkMin, std::min(kHostChunkMax, (n + 3) / 4)));
}

// memcpy by up to 4 threads (1 MB each at least): one core's copy bandwidth does not keep up
// with a PCIe 4/5 upload of pinned memory.
void staged_copy(void* dst, const void* src, size_t bytes) {
  constexpr size_t kPerThread = size_t(1) << 20;
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const size_t parts = std::min<size_t>({4, hw, std::max<size_t>(1, bytes / kPerThread)});
  if (parts <= 1) {
    std::memcpy(dst, src, bytes);
    return;
  }
  const size_t step = (bytes + parts - 1) / parts;
  std::vector<std::thread> helpers;
  for (size_t i = 1; i < parts; ++i) {
    const size_t off = i * step, len = std::min(step, bytes - std::min(bytes, off));
    if (len) helpers.emplace_back([=] { std::memcpy(static_cast<char*>(dst) + off, static_cast<const char*>(src) + off, len); });
  }
  std::memcpy(dst, src, std::min(step, bytes));
  for (std::thread& t : helpers) t.join();
}

// Owners of one allocation: not copyable (a copy would free twice), not movable (never needed).
struct DeviceBuffer {
  void* p = nullptr;
  size_t bytes = 0;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { if (p) cudaFree(p); }
  void* get(size_t want) {
    if (want > bytes) {
      if (p) LENET_CUDA_CHECK(cudaFree(p));
      p = nullptr;
      bytes = 0;
      LENET_CUDA_CHECK(cudaMalloc(&p, want));
      bytes = want;
    }
    return p;
  }
};

struct PinnedBuffer {
  void* p = nullptr;
  size_t bytes = 0;
  PinnedBuffer() = default;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() { if (p) cudaFreeHost(p); }
  void* get(size_t want) {
    if (want > bytes) {
      if (p) LENET_CUDA_CHECK(cudaFreeHost(p));
      p = nullptr;
      bytes = 0;
      LENET_CUDA_CHECK(cudaMallocHost(&p, want));
      bytes = want;
    }
    return p;
  }
};

template <class T>
T* upload(DeviceBuffer& buf, const std::vector<T>& v) {
  T* d = static_cast<T*>(buf.get(v.size() * sizeof(T)));
  LENET_CUDA_CHECK(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

// Makes the engine's device current for the scope and restores the caller's.
struct DeviceGuard {
  int prev = -1;
  explicit DeviceGuard(int dev) {
    LENET_CUDA_CHECK(cudaGetDevice(&prev));
    if (prev != dev) LENET_CUDA_CHECK(cudaSetDevice(dev));
  }
  ~DeviceGuard() {
    int cur = -1;
    if (cudaGetDevice(&cur) == cudaSuccess && cur != prev) cudaSetDevice(prev);
  }
};

}  // namespace

// One of the two staging slots of the host path: pinned and device buffers and a stream, so the
// host copy and upload of one chunk overlap the kernels of the previous chunk on the other slot.
struct Slot {
  cudaStream_t stream = nullptr;
  PinnedBuffer h_in, h_scores;
  DeviceBuffer d_in, d_s4, d_scores;
  int64_t pending_first = -1, pending_n = 0;  // the chunk whose scores are in flight
};

struct CudaEngine::Impl {
  Model model;
  PackedModel packed;
  HeadParams head{};
  int device = 0;
  int multiprocessors = 1;  // chooses the head's tile (head_tile_images)
  std::string name;
  std::mutex mu;
  DeviceBuffer w_c5, w_c5b, w_f6, w_f6b, w_out, w_outb;  // weights, uploaded once
  Slot slots[2];                                         // reused across calls
  DeviceBuffer d_s4;                                     // device path without a workspace
  DeviceBuffer d_bad;                                    // host path's NaN/Inf flag
  PinnedBuffer h_bad;

  ~Impl() {
    for (Slot& sl : slots)
      if (sl.stream) {
        cudaStreamSynchronize(sl.stream);
        cudaStreamDestroy(sl.stream);
      }
  }

  // Both kernels for one chunk already in device memory; S4 activations in s4 ([in.n][400]),
  // scores to device memory.
  void run(const InputView& in, float* s4, float* scores, int* bad, cudaStream_t s) {
    launch_fused_subsample(packed.sub, in, s4, bad, s);
    launch_fused_rbf(head, s4, in.n, scores, multiprocessors, s);
  }
};

CudaEngine::CudaEngine(Model model) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    throw std::runtime_error(std::string("device='cuda': no usable CUDA driver or device (") +
                             cudaGetErrorName(e) + ": " + cudaGetErrorString(e) + ")");
  }
  if (count == 0) throw std::runtime_error("device='cuda': no CUDA device found");
  LENET_CUDA_CHECK(cudaGetDevice(&m.device));
  cudaDeviceProp prop{};
  LENET_CUDA_CHECK(cudaGetDeviceProperties(&prop, m.device));
  m.name = prop.name;
  m.multiprocessors = prop.multiProcessorCount;
  m.model = std::move(model);
  m.packed = pack_model(m.model);  // validates
  m.head = m.packed.head;
  m.head.c5_wt = upload(m.w_c5, m.packed.c5_wt);
  m.head.c5_b = upload(m.w_c5b, m.packed.c5_b);
  m.head.f6_wt = upload(m.w_f6, m.packed.f6_wt);
  m.head.f6_b = upload(m.w_f6b, m.packed.f6_b);
  m.head.out_wt = upload(m.w_out, m.packed.out_wt);
  m.head.out_b = upload(m.w_outb, m.packed.out_b);
  // Non-blocking: the engine's copies and kernels do not serialize with the legacy stream.
  for (Slot& sl : m.slots) LENET_CUDA_CHECK(cudaStreamCreateWithFlags(&sl.stream, cudaStreamNonBlocking));
}

CudaEngine::~CudaEngine() = default;

const Model& CudaEngine::model() const { return impl_->model; }
int CudaEngine::device() const { return impl_->device; }
std::string CudaEngine::device_name() const { return impl_->name; }

static void check_batch(const Model& model, const InputBatch& batch) {
  if (batch.size != model.input_size && !(batch.u8 && batch.size == 28))
    throw std::invalid_argument("image size does not match the model input");
  if (batch.n > INT_MAX) throw std::invalid_argument("batch too large (more than 2^31 images)");
}

int64_t CudaEngine::workspace_rows(int64_t n) { return std::min(n, kMaxChunk); }

int64_t CudaEngine::scores_host(const InputBatch& batch, float* scores) {
  Impl& m = *impl_;
  check_batch(m.model, batch);
  if (batch.n <= 0) return -1;
  std::lock_guard<std::mutex> lock(m.mu);
  DeviceGuard guard(m.device);
  const int classes = m.model.num_classes;
  const size_t px = size_t(batch.size) * batch.size * (batch.u8 ? 1 : sizeof(float));
  const size_t row = size_t(classes) * sizeof(float);
  const int64_t chunk = host_chunk(batch.n);
  const char* src = batch.u8 ? reinterpret_cast<const char*>(batch.u8)
                             : reinterpret_cast<const char*>(batch.f32);
  // The NaN/Inf flag (float input only) is shared by both slots' streams: set it before either
  // starts.
  int* d_bad = nullptr;
  if (batch.f32) {
    d_bad = static_cast<int*>(m.d_bad.get(sizeof(int)));
    LENET_CUDA_CHECK(cudaMemsetAsync(d_bad, 0x7f, sizeof(int), m.slots[0].stream));  // none
    LENET_CUDA_CHECK(cudaStreamSynchronize(m.slots[0].stream));
  }
  // Scores of a slot's in-flight chunk: wait for its stream, copy out of pinned memory.
  auto drain = [&](Slot& sl) {
    if (sl.pending_n == 0) return;
    LENET_CUDA_CHECK(cudaStreamSynchronize(sl.stream));
    std::memcpy(scores + sl.pending_first * classes, sl.h_scores.p, size_t(sl.pending_n) * row);
    sl.pending_n = 0;
  };
  try {
    int64_t c = 0;
    for (int64_t first = 0; first < batch.n; first += chunk, ++c) {
      Slot& sl = m.slots[c % 2];
      drain(sl);  // the slot's previous chunk (two chunks ago); the other slot keeps computing
      const int64_t n = std::min(chunk, batch.n - first);
      void* h_in = sl.h_in.get(size_t(chunk) * px);
      float* h_out = static_cast<float*>(sl.h_scores.get(size_t(chunk) * row));
      void* d_in = sl.d_in.get(size_t(chunk) * px);
      float* d_out = static_cast<float*>(sl.d_scores.get(size_t(chunk) * row));
      float* d_s4 = static_cast<float*>(sl.d_s4.get(size_t(chunk) * kS4Len * sizeof(float)));
      staged_copy(h_in, src + first * px, size_t(n) * px);
      LENET_CUDA_CHECK(cudaMemcpyAsync(d_in, h_in, size_t(n) * px, cudaMemcpyHostToDevice, sl.stream));
      const InputView in{batch.u8 ? static_cast<const uint8_t*>(d_in) : nullptr,
                         batch.u8 ? nullptr : static_cast<const float*>(d_in), n, batch.size, first};
      m.run(in, d_s4, d_out, d_bad, sl.stream);
      LENET_CUDA_CHECK(cudaMemcpyAsync(h_out, d_out, size_t(n) * row, cudaMemcpyDeviceToHost, sl.stream));
      sl.pending_first = first;
      sl.pending_n = n;
    }
    drain(m.slots[0]);
    drain(m.slots[1]);
  } catch (...) {
    for (Slot& sl : m.slots) {
      cudaStreamSynchronize(sl.stream);
      sl.pending_n = 0;
    }
    throw;
  }
  if (!d_bad) return -1;
  int* h_bad = static_cast<int*>(m.h_bad.get(sizeof(int)));
  LENET_CUDA_CHECK(cudaMemcpy(h_bad, d_bad, sizeof(int), cudaMemcpyDeviceToHost));
  return *h_bad == 0x7f7f7f7f ? -1 : *h_bad;  // the lowest bad index over all chunks
}

void CudaEngine::scores_device(const InputBatch& batch, float* scores, uintptr_t stream,
                               int* first_bad, float* workspace) {
  Impl& m = *impl_;
  check_batch(m.model, batch);
  if (batch.n <= 0) return;
  std::lock_guard<std::mutex> lock(m.mu);
  DeviceGuard guard(m.device);
  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  float* s4 = workspace;
  if (!s4) {
    const size_t want = size_t(workspace_rows(batch.n)) * kS4Len * sizeof(float);
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    LENET_CUDA_CHECK(cudaStreamIsCapturing(s, &capture));
    if (capture != cudaStreamCaptureStatusNone && want > m.d_s4.bytes)
      throw std::runtime_error(
          "lenet_ext: the CUDA engine would allocate its S4 buffer inside a CUDA graph capture; "
          "pass a workspace (the Python wrapper does) or run the batch size once before capturing");
    s4 = static_cast<float*>(m.d_s4.get(want));
  }
  const int classes = m.model.num_classes;
  const size_t px = size_t(batch.size) * batch.size;
  if (batch.u8) first_bad = nullptr;  // uint8 pixels are always finite
  if (first_bad) LENET_CUDA_CHECK(cudaMemsetAsync(first_bad, 0x7f, sizeof(int), s));
  // The S4 rows are reused from chunk to chunk: the stream orders the reuse.
  for (int64_t first = 0; first < batch.n; first += kMaxChunk) {
    const int64_t n = std::min(kMaxChunk, batch.n - first);
    InputView in{batch.u8 ? batch.u8 + first * px : nullptr,
                 batch.u8 ? nullptr : batch.f32 + first * px, n, batch.size, first};
    m.run(in, s4, scores + first * classes, first_bad, s);
  }
}

}  // namespace lenet::cuda
