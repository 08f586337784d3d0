#pragma once
// The CPU backend: a validated Model, its weights repacked for the kernels, the kernel set of the
// running CPU and a thread pool. Thread-safe: scores() may be called from several threads at once.
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/cpu/kernel_params.h"
#include "engine/cpu/kernels.h"
#include "engine/cpu/thread_pool.h"
#include "engine/model.h"

namespace lenet::cpu {

class CpuEngine {
 public:
  // threads <= 0: one per hardware thread. isa: force an instruction set (tests, comparisons);
  // std::invalid_argument when this CPU or build cannot run it (see require_isa).
  CpuEngine(Model model, int threads, Isa isa);
  explicit CpuEngine(Model model, int threads = 0) : CpuEngine(std::move(model), threads, detect_isa()) {}
  // params_ points into this object's own vectors: a copy or a move would point into another's.
  CpuEngine(const CpuEngine&) = delete;
  CpuEngine& operator=(const CpuEngine&) = delete;
  CpuEngine(CpuEngine&&) = delete;
  CpuEngine& operator=(CpuEngine&&) = delete;

  const Model& model() const { return model_; }
  int threads() const { return pool_->size(); }
  Isa isa() const { return kernels_->isa; }
  int lanes() const { return kernels_->lanes; }

  // scores[n][num_classes] for a validated batch. Returns -1, or the index of the first image
  // that holds NaN/Inf (then scores are unspecified). Large batches are processed a block of
  // `lanes` images at a time per thread: memory use does not grow with n.
  int64_t scores(const InputBatch& batch, float* scores) const;

  // Batches smaller than this take the small-batch path (one image at a time, positions in lanes).
  int small_batch_limit() const { return small_limit_; }

  // The packed weights the kernels read (tools/stage_timings.cpp times the stages on them).
  const KernelParams& kernel_params() const { return params_; }
  // How many shared blocks stalled and started a back-off (tools/stage_timings.cpp reports it).
  int64_t share_trips() const { return share_trips_.load(); }

 private:
  void pack_weights();
  int64_t shared_block(const InputBatch& batch, float* scores, int64_t rem) const;
  bool share_now() const;  // false while backing off after shared blocks stalled
  void note_shared_block(int64_t stalled_us) const;

  Model model_;
  const KernelSet* kernels_;
  KernelParams params_;
  std::vector<float> c3_wo_, c5_wt_pos_, c5_wt_, c5_b_, f6_wt_, f6_b_, out_wt_, out_b_, small_in_[2];
  std::unique_ptr<ThreadPool> pool_;
  int small_limit_;
  // The shared block's back-off (note_shared_block): what a shared block saves over one thread
  // (AVX-512, 16 images: 127 -> about 80 us; less for AVX2's 8), the stall time that trips a
  // back-off, and the bounds of the number of calls that then run on one thread.
  static constexpr int64_t kShareGainUs = 20, kStallBudgetUs = 1000;
  static constexpr int kMinShareBackoff = 16, kMaxShareBackoff = 4096;
  mutable std::atomic<int> share_skip_{0}, share_backoff_{kMinShareBackoff}, shared_since_trip_{0};
  mutable std::atomic<int64_t> stall_debt_us_{0}, share_trips_{0};
};

}  // namespace lenet::cpu
