#pragma once
// The INT8 CPU engine: a packed QuantModel, the INT8 kernel set of the running CPU and a thread
// pool. Thread-safe: scores() may be called from several threads at once.
#include <cstdint>
#include <memory>

#include "engine/cpu/int8/kernels.h"
#include "engine/cpu/int8/packed.h"
#include "engine/cpu/thread_pool.h"

namespace lenet::cpu::int8 {

class Int8Engine {
 public:
  // threads <= 0: one per hardware thread. isa: std::invalid_argument when this CPU cannot run it.
  Int8Engine(const QuantModel& q, int threads, Int8Isa isa);
  Int8Engine(const Int8Engine&) = delete;
  Int8Engine& operator=(const Int8Engine&) = delete;

  const Model& model() const { return model_; }
  int threads() const { return pool_->size(); }
  Int8Isa isa() const { return kernels_->isa; }
  int lanes() const { return kernels_->lanes; }

  // scores[n][10] (minus the RBF distances) for a validated batch. Returns -1, or the index of
  // the first image holding NaN/Inf.
  int64_t scores(const InputBatch& batch, float* scores) const;

 private:
  Model model_;
  const KernelSet* kernels_;
  std::unique_ptr<Packed> packed_;
  std::unique_ptr<ThreadPool> pool_;
};

}  // namespace lenet::cpu::int8
