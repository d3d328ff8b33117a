// Thread pool: workers wait on a generation counter. A new job bumps the generation; a worker that finished the
// previous job spins on it for a short while (dispatch in well under a microsecond when jobs come back to back, as
// they do layer after layer) and then sleeps on a condition variable, so an idle process burns no CPU.
//
// The caller never waits for a worker that has not picked the job up: on a busy machine a descheduled worker
// would otherwise stall every kernel. The job lives on the caller's stack and is published through `job_`; a worker
// announces itself in `active_` before reading `job_` and leaves after its last access, so once the caller has seen
// every task done, cleared `job_` and seen `active_ == 0`, no worker can touch the job again (the seq_cst pairs
// active_++ / job_ load and job_ store / active_ load make that a Dekker handshake).
#include "threadpool.h"

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ECHOATT_CPU_RELAX() _mm_pause()
// MXCSR bits: flush-to-zero (15) and denormals-are-zero (6).
#define ECHOATT_FTZ_DAZ 0x8040u
#define ECHOATT_GET_CSR() _mm_getcsr()
#define ECHOATT_SET_CSR(v) _mm_setcsr(v)
#else
#define ECHOATT_CPU_RELAX() std::this_thread::yield()
#define ECHOATT_FTZ_DAZ 0u
#define ECHOATT_GET_CSR() 0u
#define ECHOATT_SET_CSR(v) ((void)(v))
#endif

namespace echoatt {
namespace {

// How long a worker (or the waiting caller) spins before blocking. Long enough to bridge the gap between
// consecutive kernels of one forward pass, short enough not to matter when the process goes idle.
constexpr auto kSpin = std::chrono::microseconds(50);

thread_local bool t_in_pool_task = false;

struct Job {
  TaskFn fn;
  void* ctx;
  int64_t n_tasks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
};

class Pool {
 public:
  Pool() {
    // ECHOATT_THREADS is validated and applied by the TypeScript side (src/backend/threads.ts), not parsed here.
    start(clamp((int)std::thread::hardware_concurrency()));
  }
  ~Pool() { stop(); }

  int threads() const { return n_threads_; }

  void set_threads(int n) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    n = clamp(n);
    if (n == n_threads_) return;
    stop();
    start(n);
  }

  void run(int64_t n_tasks, TaskFn fn, void* ctx) {
    std::unique_lock<std::mutex> run_lock(run_mutex_, std::try_to_lock);
    if (n_tasks == 1 || t_in_pool_task || !run_lock.owns_lock() || workers_.empty()) {
      for (int64_t i = 0; i < n_tasks; ++i) fn(ctx, i);
      return;
    }
    Job job;
    job.fn = fn;
    job.ctx = ctx;
    job.n_tasks = n_tasks;
    job_.store(&job, std::memory_order_seq_cst);
    // seq_cst increment + sleepers_ load pairs with the worker's sleepers_ increment + generation load: either the
    // worker sees the new generation before sleeping or we see it asleep and wake it.
    generation_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lk(wake_mutex_);
      wake_cv_.notify_all();
    }
    t_in_pool_task = true;
    drain(job);
    t_in_pool_task = false;
    auto all_done = [&] { return job.done.load(std::memory_order_acquire) == n_tasks; };
    if (!spin_until(all_done)) {
      std::unique_lock<std::mutex> lk(done_mutex_);
      done_cv_.wait(lk, all_done);
    }
    job_.store(nullptr, std::memory_order_seq_cst);
    // Workers still between their active_ increment and decrement are a few instructions from leaving (none of
    // them can claim a task now); yield rather than pause in case one is descheduled on this core.
    while (active_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  }

 private:
  static int clamp(int n) { return n < 1 ? 1 : n > 1024 ? 1024 : n; }

  template <class Pred>
  static bool spin_until(Pred pred) {
    const auto deadline = std::chrono::steady_clock::now() + kSpin;
    for (;;) {
      for (int i = 0; i < 64; ++i) {
        if (pred()) return true;
        ECHOATT_CPU_RELAX();
      }
      if (std::chrono::steady_clock::now() > deadline) return pred();
    }
  }

  void drain(Job& job) {
    for (int64_t i; (i = job.next.fetch_add(1, std::memory_order_relaxed)) < job.n_tasks;) {
      job.fn(job.ctx, i);
      if (job.done.fetch_add(1, std::memory_order_acq_rel) == job.n_tasks - 1) {
        std::lock_guard<std::mutex> lk(done_mutex_);
        done_cv_.notify_one();
      }
    }
  }

  // `seen` is the generation at spawn time, read by the spawning thread: reading it here instead would let a
  // thread that starts late take a job's wake-up for "nothing new".
  void worker_loop(uint64_t seen) {
    t_in_pool_task = true;
    ECHOATT_SET_CSR(ECHOATT_GET_CSR() | ECHOATT_FTZ_DAZ);  // workers only ever run kernels
    for (;;) {
      auto fresh = [&] { return generation_.load(std::memory_order_acquire) != seen || stopping_.load(); };
      if (!spin_until(fresh)) {
        std::unique_lock<std::mutex> lk(wake_mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        wake_cv_.wait(lk, fresh);
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
      }
      if (stopping_.load()) return;
      seen = generation_.load(std::memory_order_acquire);
      active_.fetch_add(1, std::memory_order_seq_cst);
      if (Job* job = job_.load(std::memory_order_seq_cst)) drain(*job);
      active_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }

  void start(int n) {
    n_threads_ = n;
    stopping_.store(false);
    workers_.reserve(n - 1);
    const uint64_t gen = generation_.load();
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, gen] { worker_loop(gen); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(wake_mutex_);
      stopping_.store(true);
    }
    wake_cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one job at a time; a second JS thread runs its job inline instead of waiting

  std::atomic<Job*> job_{nullptr};
  std::atomic<int> active_{0};  // workers that may be looking at job_

  std::atomic<uint64_t> generation_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stopping_{false};
  std::mutex wake_mutex_;
  std::condition_variable wake_cv_;
  std::mutex done_mutex_;
  std::condition_variable done_cv_;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

void pool_run(int64_t n_tasks, TaskFn fn, void* ctx) { pool().run(n_tasks, fn, ctx); }

FlushDenormals::FlushDenormals() : saved_(ECHOATT_GET_CSR()) { ECHOATT_SET_CSR(saved_ | ECHOATT_FTZ_DAZ); }
FlushDenormals::~FlushDenormals() { ECHOATT_SET_CSR(saved_); }
int pool_threads() { return pool().threads(); }
void pool_set_threads(int n) { pool().set_threads(n); }

}  // namespace echoatt
