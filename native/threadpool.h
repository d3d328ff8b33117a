// Persistent worker pool shared by every kernel.
//
// Kernels call parallel_for(); the pool runs the pieces on its workers plus the calling thread and returns when
// all are done. The interface is a plain function pointer + context so that translation units compiled for a
// different ISA (the -mavx2 kernels) never share template instantiations with the rest of the addon.
#pragma once

#include <stdint.h>

namespace echoatt {

using TaskFn = void (*)(void* ctx, int64_t task);

// Runs fn(ctx, i) for every i in [0, n_tasks), spread over the pool, and returns when all have finished.
// Runs inline on the caller when the pool has one thread, when called from inside a pool task, or when another
// JS thread (worker_threads) is already using the pool.
void pool_run(int64_t n_tasks, TaskFn fn, void* ctx);

// Number of threads kernels should plan for (the caller counts as one).
int pool_threads();

// Denormal floats (below 1.2e-38) cost x86 cores around a hundred cycles per operation, and training makes plenty:
// softmax tails, and gradients of confident predictions. Kernels therefore run with flush-to-zero and
// denormals-are-zero: pool workers always, the calling thread for the duration of each kernel call (this guard; the
// previous mode is restored, so JavaScript's own arithmetic keeps IEEE denormals). No-op off x86.
class FlushDenormals {
 public:
  FlushDenormals();
  ~FlushDenormals();
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned saved_;
};

// Resize the pool (clamped to [1, 1024]). Not meant to be called concurrently with pool_run from another thread;
// it waits for any job in flight.
void pool_set_threads(int n);

// Splits [0, n) into contiguous ranges of at least `grain` items, at most tasks_per_thread × threads of them, and
// calls f(begin, end) for each. With a single range, f runs inline with no pool round-trip, which is how small
// jobs stay cheap. Ranges are claimed dynamically, so uneven work (causal attention rows) balances itself.
template <class F>
inline void parallel_for(int64_t n, int64_t grain, F&& f, int tasks_per_thread = 1) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t tasks = n / grain;
  const int64_t cap = (int64_t)pool_threads() * tasks_per_thread;
  if (tasks > cap) tasks = cap;
  if (tasks <= 1) {
    f((int64_t)0, n);
    return;
  }
  struct Ctx {
    F* f;
    int64_t n, tasks;
  } ctx{&f, n, tasks};
  pool_run(
      tasks,
      [](void* p, int64_t t) {
        const Ctx& c = *static_cast<Ctx*>(p);
        // Balanced split: the first n % tasks ranges get one extra item.
        const int64_t base = c.n / c.tasks, rem = c.n % c.tasks;
        const int64_t begin = t * base + (t < rem ? t : rem);
        const int64_t end = begin + base + (t < rem ? 1 : 0);
        (*c.f)(begin, end);
      },
      &ctx);
}

}  // namespace echoatt
