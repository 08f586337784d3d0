#pragma once
// The scheduler that lets the pool's threads share one block of work stage by stage (the CPU
// engine's single images and single blocks, where a block per thread would leave threads idle).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <new>
#include <thread>

#include <sched.h>

#include "engine/cpu/scratch.h"
#include "engine/cpu/thread_pool.h"

namespace lenet::cpu {

// Longer than any part of a shared block takes (the largest, C1+S2 of one map, is ~10 us).
constexpr auto kStall = std::chrono::microseconds(50);

// Stages run in order by every thread that joins: the parts of a stage go to whichever thread
// takes them first, and a thread that finds none left waits until the stage's last part is done.
// A thread that joins late finds work done and skips it, so the caller alone can run everything
// (the pool's worker may be asleep, or busy with something else on a shared machine).
class StagedWork {
 public:
  static constexpr int kMaxStages = 8;
  StagedWork(int stages, const int* parts) : stages_(stages), parts_(parts) {}

  template <class Part>
  void join(Part&& part) {
    for (int s = 0; s < stages_; ++s) {
      for (int p; (p = next_[s].v.fetch_add(1, std::memory_order_relaxed)) < parts_[s];) {
        part(s, p);
        done_[s].v.fetch_add(1, std::memory_order_release);
      }
      wait_stage(s);
    }
  }

  // Microseconds that threads waited at stage ends, counting only waits longer than a part
  // takes (kStall): the thread holding that part was descheduled, i.e. the machine's cores are
  // busy with other work.
  int64_t stalled_us() const { return stalled_us_.load(); }

 private:
  void wait_stage(int s) {
    std::chrono::steady_clock::time_point start;
    bool stalled = false;
    for (int i = 0; done_[s].v.load(std::memory_order_acquire) < parts_[s]; ++i) {
      if (i % 256 == 255) {  // a clock read now and then; past kStall, yield to the holder
        const auto now = std::chrono::steady_clock::now();
        if (i == 255) start = now;
        else stalled = stalled || now - start > kStall;
        if (stalled) sched_yield();
      }
      cpu_relax();
    }
    if (stalled)
      stalled_us_ += std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::steady_clock::now() - start).count();
  }

  int stages_;
  const int* parts_;
  // One cache line per counter: a thread polling a stage's end would otherwise keep pulling the
  // line away from the thread that claims and finishes parts (each transfer between cores costs
  // about as much as a small part's work).
  struct alignas(64) Counter {
    std::atomic<int> v{0};
  };
  Counter next_[kMaxStages], done_[kMaxStages];
  std::atomic<int64_t> stalled_us_{0};
};

// Runs `work` on the calling thread and whichever pool threads come: part(stage, part, own) with
// each thread's scratch. Returns the microseconds of stalls (StagedWork::stalled_us, and the
// pool's wait for a worker to leave when longer than a part).
template <class Part>
int64_t run_shared(ThreadPool& pool, StagedWork& work, size_t scratch_floats, Part&& part) {
  const std::thread::id caller = std::this_thread::get_id();
  std::chrono::steady_clock::time_point caller_done{};  // when the caller last left join
  const std::function<void(int64_t)> join = [&](int64_t) {
    float* own;
    try {
      own = tls_scratch.get(scratch_floats);
    } catch (const std::bad_alloc&) {  // this worker stays out; the others do its share
      return;
    }
    work.join([&](int stage, int p) { part(stage, p, own); });
    if (std::this_thread::get_id() == caller) caller_done = std::chrono::steady_clock::now();
  };
  if (!pool.try_run(pool.size(), join)) join(0);  // pool busy: the caller runs every stage
  // (A caller that never joined found the work done by the worker: it was itself descheduled.)
  const auto late = caller_done == std::chrono::steady_clock::time_point{}
                        ? std::chrono::steady_clock::duration{}
                        : std::chrono::steady_clock::now() - caller_done;
  return work.stalled_us() +
         (late > kStall ? std::chrono::duration_cast<std::chrono::microseconds>(late).count() : 0);
}

}  // namespace lenet::cpu
