#include "engine/cpu/int8/int8_engine.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <new>
#include <stdexcept>
#include <thread>

#include "engine/cpu/scratch.h"

namespace lenet::cpu::int8 {

Int8Engine::Int8Engine(const QuantModel& q, int threads, Int8Isa isa)
    : model_(q.spec), kernels_(&int8_kernels_for(isa)), packed_(std::make_unique<Packed>()) {
  pack(q, *packed_);
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  pool_ = std::make_unique<ThreadPool>(threads);
}

int64_t Int8Engine::scores(const InputBatch& batch, float* scores) const {
  const int64_t n = batch.n;
  if (n <= 0) return -1;
  if (batch.size != 32 && !(batch.u8 && batch.size == 28))
    throw std::invalid_argument("image size does not match the model input");
  const KernelSet& k = *kernels_;
  const int64_t blocks = (n + k.lanes - 1) / k.lanes;
  std::atomic<int64_t> first_bad{-1};
  std::atomic<bool> out_of_memory{false};
  const std::function<void(int64_t)> task = [&](int64_t t) {
    uint8_t* s;
    try {
      s = reinterpret_cast<uint8_t*>(tls_scratch.get((k.scratch_bytes + sizeof(float) - 1) / sizeof(float)));
    } catch (const std::bad_alloc&) {  // never let an exception escape a pool thread
      out_of_memory = true;
      return;
    }
    const int64_t first = t * k.lanes;
    const int count = int(std::min<int64_t>(k.lanes, n - first));
    // A block of few images (a small call, a batch's tail) on the narrow vectors.
    const auto run = count <= k.small_lanes ? k.run_small : k.run_block;
    // The block this thread most likely takes next (the pool's threads take blocks in turn).
    Ahead ahead;
    const int64_t next = first + int64_t(pool_->size()) * k.lanes;
    if (next < n) {
      const int64_t npix = int64_t(batch.size) * batch.size;
      ahead.data = batch.u8 ? static_cast<const void*>(batch.u8 + next * npix) : static_cast<const void*>(batch.f32 + next * npix);
      ahead.bytes = size_t(std::min<int64_t>(k.lanes, n - next) * npix) * (batch.u8 ? 1 : sizeof(float));
    }
    if (count == 1 ? !k.run_single(*packed_, batch, first, s, scores) : !run(*packed_, batch, first, count, s, scores, ahead)) {
      // Which image: each of the block's images alone (error path only).
      for (int64_t i = first; i < first + count; ++i)
        if (!k.run_small(*packed_, batch, i, 1, s, scores, Ahead{})) {
          int64_t cur = first_bad.load();
          while ((cur < 0 || i < cur) && !first_bad.compare_exchange_weak(cur, i)) {}
          break;
        }
    }
  };
  if (blocks == 1) task(0);
  else if (!pool_->try_run(blocks, task))
    for (int64_t t = 0; t < blocks; ++t) task(t);
  if (out_of_memory) throw std::bad_alloc();
  return first_bad.load();
}

}  // namespace lenet::cpu::int8
