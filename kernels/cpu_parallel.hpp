// The CPU backend's parallel loop, on cuvi's own thread pool
// (runtime/cpu_pool.cpp).
//
// Why not OpenMP: libgomp's idle threads busy-wait after every parallel
// region (hundreds of thousands of spins), and the region's end waits for
// every thread of the team to have run. When another process holds a core
// (a compiler, a second experiment, two ctest jobs), a thread that is
// waiting to be scheduled stalls each region for a time slice while the
// spinning ones take the cores: measured on the 2-core VM with two other
// processes busy, the VAE step (B 128, 784-400-50) took 372 ms with two
// OpenMP threads against 17 ms with one. Here the calling thread takes
// chunks of the range itself and returns once every chunk is done: a
// worker that is not running never holds it up (it finds no chunk left
// when it wakes), and idle workers spin for at most ~50 us before they
// sleep on a futex.
//
// body(i) for i in [0, n): split in chunks over the pool's threads when
// `parallel` (and n > 1), else a plain loop. Which thread runs an index is
// not fixed, so a body must not depend on it: every result of the CPU
// backend is a function of the index alone (fixed reduction chunks), so
// they are the same bits for any thread count. A body that throws: the
// first exception is rethrown in the caller after every chunk has ended.
// A call from inside a pool task, or while another thread's loop holds
// the pool, runs serially in the calling thread.
#pragma once

#include <cstdint>
#include <memory>
#include <type_traits>

namespace cuvi::kern::cpu {

// Runs fn(ctx, lo, hi) over chunks [lo, hi) covering [0, n), on the pool.
void parallel_run(int64_t n, void (*fn)(void*, int64_t, int64_t), void* ctx);
// The number of threads a parallel loop uses (the caller included).
int pool_threads();

template <class Body>
inline void parallel_for(bool parallel, int64_t n, Body&& body) {
  if (parallel && n > 1 && pool_threads() > 1) {
    using B = std::remove_reference_t<Body>;
    parallel_run(
        n,
        [](void* c, int64_t lo, int64_t hi) {
          B& b = *static_cast<B*>(c);
          for (int64_t i = lo; i < hi; ++i) b(i);
        },
        const_cast<void*>(static_cast<const void*>(std::addressof(body))));
  } else {
    for (int64_t i = 0; i < n; ++i) body(i);
  }
}

}  // namespace cuvi::kern::cpu
