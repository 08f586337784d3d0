#pragma once
// A small persistent pool: the batch is split into tasks that the workers and the calling thread
// pull from an atomic counter. One run at a time; a caller that finds the pool busy (another
// Python thread is using the same engine) computes on its own thread instead of waiting.
//
// Workers spin, then sleep. After a run a worker polls for the next one for kSpinWindow before it
// blocks on a condition variable: waking a sleeping thread costs 5-50 us (a futex round trip
// through the scheduler), as long as a whole 16-image call, while a spinning worker starts in
// well under a microsecond. The caller notifies only when a worker is actually asleep.
//
// A run does not wait for workers that never came: a worker joins a run only while it is open,
// and the caller closes it once it has drained the tasks itself, then waits only for the workers
// that joined (they are inside a task). So a worker that is asleep or descheduled costs the
// caller nothing but doing the work alone.
//
// Fork-safe: a forked child (another pid) has the pool's memory but not its threads, and may have
// copied its locks held or its condition variables waited on. There the pool never touches that
// state again: every run computes on the calling thread, and the destructor leaves it alone
// (destroying a condition variable that the parent's workers wait on blocks forever).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace lenet::cpu {

// One step of a busy wait (the pool's polling workers, StagedWork's stage ends): tells the core
// that this is a spin loop, so it yields execution resources to its sibling thread.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

class ThreadPool {
 public:
  // How long an idle worker polls before it sleeps. It covers the gap between back-to-back calls
  // of a Python loop (a few to tens of microseconds) many times over, and bounds what an idle
  // engine burns after its last call to about one 16-image block's time on one core. ONNX
  // Runtime and OpenMP runtimes spin their workers the same way (OpenMP's default is far longer).
  static constexpr std::chrono::microseconds kSpinWindow{100};

  explicit ThreadPool(int threads);  // total threads including the caller; 1 = no workers
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }
  // Runs fn(task) for every task in [0, n_tasks), on the calling thread and whichever workers
  // join while tasks are left. Returns false (having run nothing) when the pool is already
  // running another call.
  bool try_run(int64_t n_tasks, const std::function<void(int64_t)>& fn);

 private:
  // The run word: generation << 16 | open bit | number of workers inside the run.
  static constexpr uint64_t kOpen = 1u << 15, kJoinedMask = kOpen - 1;
  static constexpr int kGenShift = 16;

  // Everything the workers share, behind one pointer so a forked child can leave it untouched.
  struct State {
    std::vector<std::thread> workers;
    std::mutex busy;  // held by the caller for a whole run
    std::mutex m;     // guards sleeping on `wake`
    std::condition_variable wake;
    std::atomic<uint64_t> run{0};
    std::atomic<int> sleepers{0};
    std::atomic<bool> stop{false};
    const std::function<void(int64_t)>* fn = nullptr;
    int64_t n_tasks = 0;
    std::atomic<int64_t> next{0};
  };
  static void worker_loop(State& s);
  static void stop_workers(State& s);  // wake every worker with `stop` and join them
  static uint64_t await_run(State& s, uint64_t seen_generation);
  static void drain(State& s);

  int owner_pid_;
  int size_;
  std::unique_ptr<State> state_;
};

}  // namespace lenet::cpu
