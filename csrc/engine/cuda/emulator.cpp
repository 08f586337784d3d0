#include "engine/cuda/emulator.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <utility>

namespace lenet::cuda {

namespace {

// One block on the host: per-thread registers live in an array; a phase runs for every thread
// before the next phase starts (the barrier).
template <class Regs>
struct HostExec {
  std::vector<Regs> regs;
  ThreadOrder order;
  HostExec(int threads, ThreadOrder o) : regs(size_t(threads)), order(o) {}
  template <class F>
  void phase(F&& f) {
    const int t = int(regs.size());
    if (order == ThreadOrder::Forward)
      for (int tid = 0; tid < t; ++tid) f(tid, regs[size_t(tid)]);
    else
      for (int tid = t - 1; tid >= 0; --tid) f(tid, regs[size_t(tid)]);
  }
};

// Shared memory starts as garbage on the GPU; poison it so a read-before-write shows up.
template <class T>
void poison(T& sh) {
  float* p = reinterpret_cast<float*>(&sh);
  std::fill(p, p + sizeof(T) / sizeof(float), std::numeric_limits<float>::quiet_NaN());
}

// The head's grid for one launch, with the tile and output width the engine would launch.
template <int OutU, int Images>
void emulate_head(const HeadParams& head, const float* s4, int64_t n, float* out, ThreadOrder order) {
  auto sh = std::make_unique<HeadShared<Images>>();
  for (int64_t blk = 0; blk < head_blocks(n, Images); ++blk) {
    poison(*sh);
    HostExec<HeadRegs<Images>> ex(head_threads(Images), order);
    head_program<OutU>(ex, head, s4, n, blk * Images, *sh, out);
  }
}

}  // namespace

int64_t emulate_scores(const Model& model, const InputBatch& batch, float* scores,
                       ThreadOrder order, int64_t chunk, int head_images) {
  if (head_images != kHeadImages && head_images != kHeadSmallImages)
    throw std::invalid_argument("head tile must be 16 or 32 images");
  const int64_t total = batch.n;
  if (total <= 0) return -1;
  if (batch.size != model.input_size && !(batch.u8 && batch.size == 28))
    throw std::invalid_argument("image size does not match the model input");
  if (total > INT_MAX) throw std::invalid_argument("batch too large for the emulator");
  if (chunk <= 0) chunk = total;
  const PackedModel pk = pack_model(model);
  const HeadParams head = host_head_params(pk);
  const size_t px = size_t(batch.size) * batch.size;
  int first_bad = INT_MAX;  // shared by the launches, as the engine's device flag is
  auto sub_sh = std::make_unique<SubShared>();
  std::vector<float> s4;
  for (int64_t base = 0; base < total; base += chunk) {
    const int64_t n = std::min(chunk, total - base);
    const InputView in{batch.u8 ? batch.u8 + base * px : nullptr,
                       batch.u8 ? nullptr : batch.f32 + base * px, n, batch.size, base};
    s4.assign(size_t(n) * kS4Len, std::numeric_limits<float>::quiet_NaN());
    // Grid of fused_subsample, then grid of fused_rbf (stream order).
    for (int64_t blk = 0; blk < subsample_blocks(n); ++blk) {
      poison(*sub_sh);
      HostExec<NoRegs> ex(kSubThreads, order);
      if (pk.sub.act == kActRelu)
        subsample_program<kActRelu>(ex, pk.sub, in, blk * kSubImages, *sub_sh, s4.data(), &first_bad);
      else
        subsample_program<kActTanhLike>(ex, pk.sub, in, blk * kSubImages, *sub_sh, s4.data(), &first_bad);
    }
    float* out = scores + base * model.num_classes;
    const bool small = head_images == kHeadSmallImages;
    if (head.out_u == 1)
      small ? emulate_head<1, kHeadSmallImages>(head, s4.data(), n, out, order)
            : emulate_head<1, kHeadImages>(head, s4.data(), n, out, order);
    else
      small ? emulate_head<kHeadU, kHeadSmallImages>(head, s4.data(), n, out, order)
            : emulate_head<kHeadU, kHeadImages>(head, s4.data(), n, out, order);
  }
  return first_bad == INT_MAX ? -1 : first_bad;
}

// ---- per-phase read/write conflict checker ------------------------------------------------------

namespace {

// The memory a kernel writes: its block's shared memory and its global output, as 4-byte words.
struct Region {
  unsigned char* p;
  size_t bytes;
  const char* name;
};

using Words = std::vector<uint32_t>;
using Writes = std::vector<std::pair<size_t, uint32_t>>;  // (word, value)

template <class Regs>
class CheckedExec {
 public:
  CheckedExec(int threads, std::vector<Region> regions, const char* kernel, int64_t block,
              int merge_after, PhaseCheck& report)
      : regs_(size_t(threads)), regions_(std::move(regions)), kernel_(kernel), block_(block),
        merge_after_(merge_after), report_(report) {}

  template <class F>
  void phase(F&& f) {
    const int t_count = int(regs_.size());
    const Words m0 = snapshot();
    std::vector<Writes> writes(static_cast<size_t>(t_count));
    std::vector<Regs> after(regs_);
    for (int t = 0; t < t_count; ++t) {  // each thread alone from the phase's starting memory
      restore(m0);
      f(t, after[size_t(t)]);
      writes[size_t(t)] = diff(m0, snapshot());
    }
    std::unordered_map<size_t, int> writer;
    Words m1 = m0;  // the memory after the barrier
    for (int t = 0; t < t_count; ++t)
      for (const auto& [w, v] : writes[size_t(t)]) {
        auto [it, fresh] = writer.emplace(w, t);
        if (!fresh && it->second != t) conflict("threads " + std::to_string(it->second) + " and " +
                                                std::to_string(t) + " both write " + where(w));
        m1[w] = v;
      }
    // Reads of another thread's writes: the same thread on the memory with them applied, and
    // with them set to NaN, must do exactly what it did alone.
    for (int t = 0; t < t_count; ++t) {
      Words seen = m1, poisoned = m0;
      for (const auto& [w, v] : writes[size_t(t)]) seen[w] = m0[w];
      for (const auto& [w, owner] : writer)
        if (owner != t) poisoned[w] = 0x7fc00000u;  // quiet NaN
      for (const Words* start : {&seen, &poisoned})
        if (!same_run(f, t, *start, regs_[size_t(t)], writes[size_t(t)], after[size_t(t)]))
          conflict("thread " + std::to_string(t) + " reads a word another thread writes");
    }
    // Without the barrier after the previous phase (the debug switch), this phase may also see
    // any of that phase's writes by other threads, or none of them.
    if (prev_) {
      for (int t = 0; t < t_count; ++t) {
        Words own = prev_->m0;
        for (const auto& [w, v] : prev_->writes[size_t(t)]) own[w] = v;
        if (!same_run(f, t, own, regs_[size_t(t)], writes[size_t(t)], after[size_t(t)]))
          conflict("thread " + std::to_string(t) +
                   " reads a word another thread wrote in the previous phase (no barrier)");
        for (const auto& [w, v] : writes[size_t(t)])
          for (int u = 0; u < t_count; ++u)
            if (u != t && prev_->written_by(u, w))
              conflict("thread " + std::to_string(t) + " overwrites " + where(w) + " that thread " +
                       std::to_string(u) + " wrote in the previous phase (no barrier)");
      }
      prev_.reset();
    }
    if (phase_index_ == merge_after_) prev_ = std::make_unique<Previous>(Previous{m0, writes});
    restore(m1);
    regs_ = std::move(after);
    ++phase_index_;
    ++report_.phases;
  }

 private:
  struct Previous {
    Words m0;
    std::vector<Writes> writes;
    bool written_by(int u, size_t w) const {
      for (const auto& [x, v] : writes[size_t(u)])
        if (x == w) return true;
      return false;
    }
  };

  template <class F>
  bool same_run(F& f, int t, const Words& start, const Regs& regs0, const Writes& want,
                const Regs& want_regs) {
    restore(start);
    Regs r = regs0;
    f(t, r);
    if constexpr (!std::is_empty_v<Regs>)  // (an empty struct's byte is padding)
      if (std::memcmp(&r, &want_regs, sizeof(Regs)) != 0) return false;
    const Words end = snapshot();
    for (const auto& [w, v] : want)
      if (end[w] != v) return false;
    for (size_t w = 0; w < end.size(); ++w)  // and nothing else written
      if (end[w] != start[w] && !std::any_of(want.begin(), want.end(), [&](const auto& x) { return x.first == w; }))
        return false;
    return true;
  }

  Words snapshot() const {
    Words m;
    for (const Region& r : regions_) {
      const size_t n = r.bytes / 4, at = m.size();
      m.resize(at + n);
      std::memcpy(m.data() + at, r.p, n * 4);
    }
    return m;
  }
  void restore(const Words& m) {
    size_t at = 0;
    for (const Region& r : regions_) {
      std::memcpy(r.p, m.data() + at, (r.bytes / 4) * 4);
      at += r.bytes / 4;
    }
  }
  static Writes diff(const Words& a, const Words& b) {
    Writes out;
    for (size_t w = 0; w < a.size(); ++w)
      if (a[w] != b[w]) out.emplace_back(w, b[w]);
    return out;
  }
  std::string where(size_t w) const {
    for (const Region& r : regions_) {
      if (w < r.bytes / 4) return std::string(r.name) + " word " + std::to_string(w);
      w -= r.bytes / 4;
    }
    return "?";
  }
  void conflict(const std::string& what) {
    ++report_.conflicts;
    if (report_.examples.size() < 8)
      report_.examples.push_back(std::string(kernel_) + " block " + std::to_string(block_) +
                                 " phase " + std::to_string(phase_index_) + ": " + what);
  }

  std::vector<Regs> regs_;
  std::vector<Region> regions_;
  const char* kernel_;
  int64_t block_;
  int merge_after_;
  PhaseCheck& report_;
  int phase_index_ = 0;
  std::unique_ptr<Previous> prev_;
};

template <int OutU, int Images>
void check_head(const HeadParams& head, const float* s4, int64_t n, std::vector<float>& out,
                int merge_after, PhaseCheck& report) {
  auto sh = std::make_unique<HeadShared<Images>>();
  for (int64_t blk = 0; blk < head_blocks(n, Images); ++blk) {
    poison(*sh);
    CheckedExec<HeadRegs<Images>> ex(
        head_threads(Images),
        {{reinterpret_cast<unsigned char*>(sh.get()), sizeof(*sh), "shared"},
         {reinterpret_cast<unsigned char*>(out.data()), out.size() * sizeof(float), "scores"}},
        "head", blk, merge_after, report);
    head_program<OutU>(ex, head, s4, n, blk * Images, *sh, out.data());
  }
}

}  // namespace

PhaseCheck check_phases(const Model& model, const InputBatch& batch, int head_images,
                        const std::string& merge_kernel, int merge_after) {
  if (head_images != kHeadImages && head_images != kHeadSmallImages)
    throw std::invalid_argument("head tile must be 16 or 32 images");
  if (!merge_kernel.empty() && merge_kernel != "subsample" && merge_kernel != "head")
    throw std::invalid_argument("merge_kernel must be 'subsample' or 'head'");
  if (batch.size != model.input_size && !(batch.u8 && batch.size == 28))
    throw std::invalid_argument("image size does not match the model input");
  const int64_t n = batch.n;
  PhaseCheck report;
  if (n <= 0) return report;
  const PackedModel pk = pack_model(model);
  const HeadParams head = host_head_params(pk);
  const InputView in{batch.u8, batch.f32, n, batch.size, 0};
  std::vector<float> s4(size_t(n) * kS4Len, std::numeric_limits<float>::quiet_NaN());
  auto sub_sh = std::make_unique<SubShared>();
  const int sub_merge = merge_kernel == "subsample" ? merge_after : -1;
  for (int64_t blk = 0; blk < subsample_blocks(n); ++blk) {
    poison(*sub_sh);
    CheckedExec<NoRegs> ex(
        kSubThreads,
        {{reinterpret_cast<unsigned char*>(sub_sh.get()), sizeof(SubShared), "shared"},
         {reinterpret_cast<unsigned char*>(s4.data()), s4.size() * sizeof(float), "s4"}},
        "subsample", blk, sub_merge, report);
    if (pk.sub.act == kActRelu)
      subsample_program<kActRelu>(ex, pk.sub, in, blk * kSubImages, *sub_sh, s4.data(), nullptr);
    else
      subsample_program<kActTanhLike>(ex, pk.sub, in, blk * kSubImages, *sub_sh, s4.data(), nullptr);
  }
  std::vector<float> out(size_t(n) * model.num_classes, std::numeric_limits<float>::quiet_NaN());
  const int head_merge = merge_kernel == "head" ? merge_after : -1;
  const bool small = head_images == kHeadSmallImages;
  if (head.out_u == 1)
    small ? check_head<1, kHeadSmallImages>(head, s4.data(), n, out, head_merge, report)
          : check_head<1, kHeadImages>(head, s4.data(), n, out, head_merge, report);
  else
    small ? check_head<kHeadU, kHeadSmallImages>(head, s4.data(), n, out, head_merge, report)
          : check_head<kHeadU, kHeadImages>(head, s4.data(), n, out, head_merge, report);
  return report;
}

}  // namespace lenet::cuda
