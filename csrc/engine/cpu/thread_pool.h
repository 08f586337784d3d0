#pragma once
// A small persistent pool: the batch is split into tasks that the workers and the calling thread
// pull from an atomic counter. One run at a time; a caller that finds the pool busy (another
// Python thread is using the same engine) computes on its own thread instead of waiting.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lenet::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // total threads including the caller; 1 = no workers
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }
  // Runs fn(task) for every task in [0, n_tasks). Returns false (having run nothing) when the
  // pool is already running another call.
  bool try_run(int64_t n_tasks, const std::function<void(int64_t)>& fn);

 private:
  void worker_loop();
  void drain();

  int owner_pid_;
  std::vector<std::thread> workers_;
  std::mutex busy_;  // held for a whole run
  std::mutex m_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  int active_ = 0;  // workers still inside the current run
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
};

}  // namespace lenet::cpu
