#include "engine/cpu/cpu_engine.h"
#include "engine/cpu/scratch.h"
#include "engine/cpu/staged_work.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <thread>

namespace lenet::cpu {

const KernelSet& kernels_for(Isa isa) {
#if LENET_HAVE_AVX512
  if (isa == Isa::Avx512) return kernels_avx512();
#endif
#if LENET_HAVE_AVX2
  if (isa == Isa::Avx512 || isa == Isa::Avx2) return kernels_avx2();
#endif
  (void)isa;
  return kernels_baseline();
}

CpuEngine::CpuEngine(Model model, int threads, Isa isa) : model_(std::move(model)) {
  validate(model_);
  kernels_ = &kernels_for(require_isa(isa));
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  pool_ = std::make_unique<ThreadPool>(threads);
  // A wide block costs about this many images on the small path (measured on Zen 4, 1 thread:
  // AVX-512 block of 16 = 10 images, AVX2 block of 8 = 5.7; baseline SSE block of 4 = 4.5, so
  // without AVX the small path is used for every image: 4 lanes cannot pay for the transposes
  // and register spills of the wide path).
  small_limit_ = kernels_->isa == Isa::Avx512 ? 10 : kernels_->isa == Isa::Avx2 ? 5 : kernels_->lanes + 1;
  pack_weights();
}

void CpuEngine::pack_weights() {
  const Model& m = model_;
  KernelParams& p = params_;
  const SquashForm squash = squash_form(m.activation);
  p.act = squash.act;
  p.act_amp = squash.amp, p.act_slope = squash.slope, p.act_add = squash.add;
  p.pooling = pool_kind(m.pooling);
  p.head = m.head == Head::Rbf ? kHeadRbf : kHeadLinear;
  p.classes = m.num_classes;
  p.c1_w = m.c1_w.data();
  p.c1_b = m.c1_b.data();
  p.s2_coef = m.pooling == Pooling::Trainable ? m.s2_coef.data() : nullptr;
  p.s2_bias = m.pooling == Pooling::Trainable ? m.s2_bias.data() : nullptr;
  p.s4_coef = m.pooling == Pooling::Trainable ? m.s4_coef.data() : nullptr;
  p.s4_bias = m.pooling == Pooling::Trainable ? m.s4_bias.data() : nullptr;
  p.c3_w = m.c3_w.data();
  p.c3_b = m.c3_b.data();
  c3_input_lists(m, p.c3_fan_in, p.c3_inputs);
  p.c3_lecun = true;
  for (int o = 0; o < kC3Maps; ++o)
    for (int i = 0; i < kC1Maps; ++i)
      p.c3_lecun = p.c3_lecun && (m.c3_connected[o * kC1Maps + i] != 0) == (kLeCunTable[o][i] != 0);
  c3_wo_.assign(size_t(kC1Maps) * 25 * kC3Maps, 0.f);
  for (int o = 0; o < kC3Maps; ++o)
    for (int i = 0; i < kC1Maps; ++i)
      for (int t = 0; t < 25; ++t)
        c3_wo_[(size_t(i) * 25 + t) * kC3Maps + o] = m.c3_w[(size_t(o) * kC1Maps + i) * 25 + t];
  p.c3_wo = c3_wo_.data();
  constexpr int kC5In = kC3Maps * 25;
  c5_wt_pos_.assign(size_t(kC5In) * kC5Ld, 0.f);
  for (int u = 0; u < kC5Units; ++u)
    for (int o = 0; o < kC3Maps; ++o)
      for (int pos = 0; pos < 25; ++pos)
        c5_wt_pos_[(size_t(pos) * kC3Maps + o) * kC5Ld + u] = m.c5_w[size_t(u) * kC5In + o * 25 + pos];
  p.c5_wt_pos = c5_wt_pos_.data();
  c5_wt_ = transpose_pad(m.c5_w, kC5Units, kC5In, kC5Ld);
  c5_b_ = zero_pad(m.c5_b, kC5Ld);
  f6_wt_ = transpose_pad(m.f6_w, kF6Units, kC5Units, kF6Ld);
  f6_b_ = zero_pad(m.f6_b, kF6Ld);
  p.out_ld = round16(m.num_classes);
  out_wt_ = transpose_pad(m.out_w, m.num_classes, kF6Units, p.out_ld);
  out_b_ = zero_pad(m.head == Head::Linear ? m.out_b : std::vector<float>{}, size_t(p.out_ld));
  p.c5_wt = c5_wt_.data();
  p.c5_b = c5_b_.data();
  p.f6_wt = f6_wt_.data();
  p.f6_b = f6_b_.data();
  p.out_wt = out_wt_.data();
  p.out_b = out_b_.data();
  for (int v = 0; v < 256; ++v) {
    const float ink = m.pre.invert ? 1.f - float(v) / 255.f : float(v) / 255.f;
    p.lut[v] = m.pre.offset + m.pre.scale * ink;
  }
  // Pad pixels are zero-ink pixels, whatever the ink polarity.
  p.background = m.pre.offset;
  p.input_size = m.input_size;
  p.c1_pad = m.c1_padding;
  for (int k = 0; k < 2; ++k) {
    const int size = k == 0 ? 28 : m.input_size;
    small_in_[k].assign(kSmallInLen, 0.f);
    for (int y = 0; y < kIn; ++y)
      for (int x = 0; x < kIn; ++x) {
        bool raw;
        const float v = fill_value(p, size, y, x, &raw);
        if (!raw) small_in_[k][y * kIn + x] = v;
      }
    p.small_in[k] = small_in_[k].data();
  }
}

int64_t CpuEngine::scores(const InputBatch& batch, float* scores) const {
  const int64_t n = batch.n;
  if (n <= 0) return -1;
  if (batch.size != model_.input_size && !(batch.u8 && batch.size == 28))
    throw std::invalid_argument("image size does not match the model input");
  const KernelSet& k = *kernels_;
  const size_t scratch = k.scratch_floats(params_);
  std::atomic<int64_t> first_bad{-1};
  auto mark_bad = [&](int64_t i) {
    int64_t cur = first_bad.load();
    while ((cur < 0 || i < cur) && !first_bad.compare_exchange_weak(cur, i)) {}
  };
  // Full blocks of `lanes` images take the wide path; a remainder smaller than small_limit_
  // takes the small path one image per task (n = 20 on AVX-512: one block + 4 single images).
  const bool wide = small_limit_ <= k.lanes;
  const int64_t full = wide ? n / k.lanes : 0;
  const int64_t rem = wide ? n % k.lanes : n;
  const bool rem_small = rem > 0 && (!wide || rem < small_limit_);
  const int64_t tasks = full + (rem == 0 ? 0 : rem_small ? rem : 1);
  std::atomic<bool> out_of_memory{false};
  if (full == 1 && rem < small_limit_ && pool_->size() > 1 && share_now()) return shared_block(batch, scores, rem);
  const std::function<void(int64_t)> task = [&](int64_t t) {
    float* s;
    try {
      s = tls_scratch.get(scratch);
    } catch (const std::bad_alloc&) {  // never let an exception escape a pool thread
      out_of_memory = true;
      return;
    }
    if (t >= full && rem_small) {
      const int64_t i = full * k.lanes + (t - full);
      if (!k.run_small(params_, batch, i, s, scores)) mark_bad(i);
      return;
    }
    const int64_t first = t * k.lanes;
    const int count = int(std::min<int64_t>(k.lanes, n - first));  // wide path only
    if (!k.run_wide(params_, batch, first, count, s, scores)) {
      // Which lane: re-check the images of this block one by one (rare, error path only).
      for (int64_t i = first; i < first + count; ++i)
        if (!k.run_small(params_, batch, i, s, scores)) { mark_bad(i); break; }
    }
  };
  if (tasks == 1) task(0);  // one image or one block: no pool round trip
  else if (!pool_->try_run(tasks, task))
    for (int64_t t = 0; t < tasks; ++t) task(t);  // pool busy with another caller's batch
  if (out_of_memory) throw std::bad_alloc();
  return first_bad.load();
}

bool CpuEngine::share_now() const {
  if (share_skip_.load(std::memory_order_relaxed) <= 0) return true;
  share_skip_.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

// A worker that does not come costs a shared block nothing (the caller runs its parts), but one
// that the scheduler deschedules inside a part makes the others wait for that part. On a quiet
// machine such stalls are rare and short (an interrupt, the hypervisor: tens of microseconds,
// about once in a few hundred calls), less than sharing saves; when another runnable task
// competes for the worker's core they last a scheduler time slice (milliseconds) and come every
// few calls. So stall time is a debt that each shared call pays down by what sharing saves, and
// only a debt above kStallBudgetUs backs off: the next calls run their block on one thread, twice
// as many after each trip that comes before as many clean shared calls as the last back-off had.
void CpuEngine::note_shared_block(int64_t stalled_us) const {
  // The engine's threads may race on these counters; the policy only needs them about right.
  const int64_t debt = std::max<int64_t>(0, stall_debt_us_.load() - kShareGainUs) + stalled_us;
  const int since_trip = shared_since_trip_.fetch_add(1) + 1;
  if (debt <= kStallBudgetUs) {
    stall_debt_us_ = debt;
    return;
  }
  const int backoff = since_trip > share_backoff_.load() ? kMinShareBackoff : share_backoff_.load();
  share_skip_ = backoff;
  share_backoff_ = std::min(2 * backoff, kMaxShareBackoff);
  stall_debt_us_ = 0;
  shared_since_trip_ = 0;
  share_trips_.fetch_add(1);
}

// One full block (plus fewer than small_limit_ single images): the pool's threads share it stage
// by stage (a block per thread would leave all but one idle), then take the single images.
int64_t CpuEngine::shared_block(const InputBatch& batch, float* scores, int64_t rem) const {
  const KernelSet& k = *kernels_;
  const size_t floats = k.scratch_floats(params_);
  float* block = tls_scratch.get(floats);  // the caller's scratch holds the block's data
  int parts[StagedWork::kMaxStages];
  static_assert(StagedWork::kMaxStages >= 8, "room for the kernel's stages and the single images");
  for (int s = 0; s < k.wide_stages; ++s) parts[s] = k.wide_parts[s];
  parts[k.wide_stages] = int(rem);  // then the single images, one part each
  StagedWork work(k.wide_stages + 1, parts);
  std::atomic<bool> block_bad{false};
  std::atomic<int64_t> first_bad{-1};
  note_shared_block(run_shared(*pool_, work, floats, [&](int stage, int part, float* own) {
    if (stage < k.wide_stages) {
      if (!k.run_wide_part(params_, batch, 0, k.lanes, stage, part, block, own, scores)) block_bad = true;
    } else {
      // The block is finished (its last stage is behind every thread): `own` may be `block`.
      const int64_t i = k.lanes + part;
      if (!k.run_small(params_, batch, i, own, scores)) {
        int64_t cur = first_bad.load();
        while ((cur < 0 || i < cur) && !first_bad.compare_exchange_weak(cur, i)) {}
      }
    }
  }));
  if (block_bad)  // which image: re-check the block's images one by one (error path only)
    for (int64_t i = 0; i < k.lanes; ++i)
      if (!k.run_small(params_, batch, i, block, scores)) return i;
  return first_bad.load();
}

}  // namespace lenet::cpu
