#include "engine/cpu/thread_pool.h"

#include <unistd.h>

namespace lenet::cpu {

ThreadPool::ThreadPool(int threads) : owner_pid_(getpid()) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  if (getpid() != owner_pid_) {  // a forked child: the threads are not ours to join
    for (auto& t : workers_) t.detach();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::drain() {
  for (int64_t t; (t = next_.fetch_add(1, std::memory_order_relaxed)) < n_tasks_;) (*fn_)(t);
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(m_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    drain();
    {
      std::lock_guard<std::mutex> lock(m_);
      if (--active_ == 0) done_.notify_one();
    }
  }
}

bool ThreadPool::try_run(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
  if (!busy.owns_lock()) return false;
  // After fork() the child has the pool's memory but not its threads: compute inline.
  if (workers_.empty() || n_tasks <= 1 || getpid() != owner_pid_) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t);
    return true;
  }
  {
    std::lock_guard<std::mutex> lock(m_);
    fn_ = &fn;
    n_tasks_ = n_tasks;
    next_.store(0, std::memory_order_relaxed);
    active_ = int(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  drain();
  std::unique_lock<std::mutex> lock(m_);
  done_.wait(lock, [&] { return active_ == 0; });
  fn_ = nullptr;
  return true;
}

}  // namespace lenet::cpu
