#pragma once
// A small persistent pool: the batch is split into tasks that the workers and the calling thread
// pull from an atomic counter. One run at a time; a caller that finds the pool busy (another
// Python thread is using the same engine) computes on its own thread instead of waiting.
//
// Fork-safe: a forked child (another pid) has the pool's memory but not its threads, and may have
// copied its locks held or its condition variables waited on. There the pool never touches that
// state again: every run computes on the calling thread, and the destructor leaves it alone
// (destroying a condition variable that the parent's workers wait on blocks forever).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
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

  int size() const { return size_; }
  // Runs fn(task) for every task in [0, n_tasks). Returns false (having run nothing) when the
  // pool is already running another call.
  bool try_run(int64_t n_tasks, const std::function<void(int64_t)>& fn);

 private:
  // Everything the workers share, behind one pointer so a forked child can leave it untouched.
  struct State {
    std::vector<std::thread> workers;
    std::mutex busy;  // held for a whole run
    std::mutex m;
    std::condition_variable wake, done;
    uint64_t generation = 0;
    bool stop = false;
    int active = 0;  // workers still inside the current run
    const std::function<void(int64_t)>* fn = nullptr;
    int64_t n_tasks = 0;
    std::atomic<int64_t> next{0};
  };
  static void worker_loop(State& s);
  static void drain(State& s);

  int owner_pid_;
  int size_;
  std::unique_ptr<State> state_;
};

}  // namespace lenet::cpu
