#include "engine/cpu/thread_pool.h"

#include <unistd.h>

namespace lenet::cpu {

ThreadPool::ThreadPool(int threads)
    : owner_pid_(getpid()), size_(threads < 1 ? 1 : threads), state_(std::make_unique<State>()) {
  State& s = *state_;
  for (int i = 1; i < size_; ++i) s.workers.emplace_back([&s] { worker_loop(s); });
}

ThreadPool::~ThreadPool() {
  if (getpid() != owner_pid_) {
    (void)state_.release();  // a forked child: the parent's threads, locks and waiters (see .h)
    return;
  }
  State& s = *state_;
  {
    std::lock_guard<std::mutex> lock(s.m);
    s.stop = true;
  }
  s.wake.notify_all();
  for (auto& t : s.workers) t.join();
}

void ThreadPool::drain(State& s) {
  for (int64_t t; (t = s.next.fetch_add(1, std::memory_order_relaxed)) < s.n_tasks;) (*s.fn)(t);
}

void ThreadPool::worker_loop(State& s) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(s.m);
      s.wake.wait(lock, [&] { return s.stop || s.generation != seen; });
      if (s.stop) return;
      seen = s.generation;
    }
    drain(s);
    {
      std::lock_guard<std::mutex> lock(s.m);
      if (--s.active == 0) s.done.notify_one();
    }
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
  {
    std::lock_guard<std::mutex> lock(s.m);
    s.fn = &fn;
    s.n_tasks = n_tasks;
    s.next.store(0, std::memory_order_relaxed);
    s.active = int(s.workers.size());
    ++s.generation;
  }
  s.wake.notify_all();
  drain(s);
  std::unique_lock<std::mutex> lock(s.m);
  s.done.wait(lock, [&] { return s.active == 0; });
  s.fn = nullptr;
  return true;
}

}  // namespace lenet::cpu
