#include "engine/cpu/thread_pool.h"

#include <sched.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <system_error>

namespace lenet::cpu {

ThreadPool::ThreadPool(int threads)
    : owner_pid_(getpid()), size_(threads < 1 ? 1 : threads), state_(std::make_unique<State>()) {
  State& s = *state_;
  try {
    for (int i = 1; i < size_; ++i) s.workers.emplace_back([&s] { worker_loop(s); });
  } catch (const std::system_error& e) {
    // The system refused a thread (a process or memory limit). The workers already started may
    // be asleep on `wake`: stop and join them, or destroying State would wait for them forever.
    const size_t started = s.workers.size();
    stop_workers(s);
    throw std::runtime_error("cannot start " + std::to_string(size_) + " engine threads (the system refused thread " +
                             std::to_string(started + 2) + ": " + e.what() + "); ask for fewer threads");
  }
}

void ThreadPool::stop_workers(State& s) {
  {
    std::lock_guard<std::mutex> lock(s.m);  // a worker between its check and its wait sees it
    s.stop = true;
  }
  s.wake.notify_all();
  for (auto& t : s.workers) t.join();
}

ThreadPool::~ThreadPool() {
  if (getpid() != owner_pid_) {
    (void)state_.release();  // a forked child: the parent's threads, locks and waiters (see .h)
    return;
  }
  stop_workers(*state_);
}

void ThreadPool::drain(State& s) {
  for (int64_t t; (t = s.next.fetch_add(1, std::memory_order_relaxed)) < s.n_tasks;) (*s.fn)(t);
}

// The run word once its generation differs from `seen_generation` (or stop): polls for
// kSpinWindow, then sleeps until try_run or the destructor wakes it.
uint64_t ThreadPool::await_run(State& s, uint64_t seen_generation) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinWindow;
  for (int i = 1;; ++i) {
    const uint64_t r = s.run.load(std::memory_order_acquire);
    if ((r >> kGenShift) != seen_generation || s.stop.load(std::memory_order_relaxed)) return r;
    cpu_relax();
    if (i % 64 == 0 && std::chrono::steady_clock::now() > deadline) break;
  }
  std::unique_lock<std::mutex> lock(s.m);
  // Announce the sleep before the last look at the run word; try_run publishes the run before
  // it reads `sleepers` (both sequentially consistent), so one of the two sees the other.
  s.sleepers.fetch_add(1);
  uint64_t r;
  s.wake.wait(lock, [&] {
    r = s.run.load();
    return (r >> kGenShift) != seen_generation || s.stop.load();
  });
  s.sleepers.fetch_sub(1);
  return r;
}

void ThreadPool::worker_loop(State& s) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t r = await_run(s, seen);
    if (s.stop.load()) return;
    // Join only while the run is open; a failed exchange reloads r (closed, or a newer run).
    while (r & kOpen) {
      if (s.run.compare_exchange_weak(r, r + 1, std::memory_order_acquire, std::memory_order_acquire)) {
        drain(s);
        s.run.fetch_sub(1, std::memory_order_release);
        break;
      }
    }
    seen = r >> kGenShift;
  }
}

bool ThreadPool::try_run(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  if (getpid() != owner_pid_) {  // a forked child: inline, without the pool's state (see .h)
    for (int64_t t = 0; t < n_tasks; ++t) fn(t);
    return true;
  }
  State& s = *state_;
  std::unique_lock<std::mutex> busy(s.busy, std::try_to_lock);
  if (!busy.owns_lock()) return false;
  if (s.workers.empty() || n_tasks <= 1) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t);
    return true;
  }
  // The last run's workers have all left (its caller waited for them), so the word is
  // `generation | 0`: open the next generation with nobody inside.
  s.fn = &fn;
  s.n_tasks = n_tasks;
  s.next.store(0, std::memory_order_relaxed);
  const uint64_t generation = (s.run.load(std::memory_order_relaxed) >> kGenShift) + 1;
  s.run.store(generation << kGenShift | kOpen);
  if (s.sleepers.load() > 0) {
    { std::lock_guard<std::mutex> lock(s.m); }  // a sleeper is now waiting, or will see the run
    s.wake.notify_all();
  }
  drain(s);
  // Close the run, then wait for the workers inside it: they hold a task (normally a few
  // microseconds; much longer if the scheduler took their core, hence the yield).
  s.run.fetch_and(~kOpen, std::memory_order_acq_rel);
  for (int i = 1; (s.run.load(std::memory_order_acquire) & kJoinedMask) != 0; ++i) {
    cpu_relax();
    if (i % 4096 == 0) sched_yield();
  }
  s.fn = nullptr;
  return true;
}

}  // namespace lenet::cpu
