// The CPU backend's thread pool (see kernels/cpu_parallel.hpp for why it is
// not OpenMP's).
//
// One job at a time. A job is published in one 64-bit word, `next_`:
//   bits 40..63  the job's epoch (its number, mod 2^24),
//   bits 20..39  its chunk count,
//   bits  0..19  the next unclaimed chunk.
// A thread claims a chunk by a compare-and-swap of that word from (e, c, i)
// to (e, c, i + 1) with i < c, so a claim is valid only for the job that is
// current at that instant; the job's other fields (function, context,
// range) are written before the word is published (release) and are not
// rewritten until every chunk of the job is done, which cannot happen
// while a chunk is still unclaimed. The caller claims chunks like any
// worker and returns when `done_` reaches the chunk count: chunks nobody
// else took, it ran itself.
//
// Workers wait for `signal_` (bumped once per job): they spin ~50 us, then
// sleep on the futex behind std::atomic::wait; the caller wakes them only
// when one sleeps (the seq_cst pair sleepers_ / signal_ cannot lose a
// wake-up). The caller, once its own chunks are done, waits for the
// workers' the same way: a short spin, then a sleep on `done_` that the
// worker finishing the last chunk ends (caller_waits_ / done_, seq_cst).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>
#include <sched.h>

#include <cstring>

#include "../kernels/cpu_parallel.hpp"
#include "device.hpp"
#include "error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace cuvi {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#else
  std::this_thread::yield();
#endif
}

constexpr auto kSpin = std::chrono::microseconds(50);
constexpr int kChunksPerThread = 4;
constexpr uint64_t kField = (uint64_t{1} << 20) - 1;

constexpr uint64_t pack(uint64_t epoch, uint64_t chunks, uint64_t next) {
  return (epoch << 40) | (chunks << 20) | next;
}

// A positive thread count from an environment variable ("4", or OpenMP's
// list form "4,2": the first entry); 0 when unset or unusable.
int env_threads(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (end != v && n > 0 && n < 4096) ? static_cast<int>(n) : 0;
}

int default_threads() {
  if (int n = env_threads("CUVI_NUM_THREADS")) return n;
  if (int n = env_threads("OMP_NUM_THREADS")) return n;  // the knob users of the OpenMP build know
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// Debian 12's OpenBLAS (0.3.21, built for every x86 core with DYNAMIC_ARCH)
// does not recognise CPUs newer than itself and then falls back to its
// Prescott (SSE3) kernels. On the development VM (an Emerald Rapids Xeon,
// CPU model 207, AVX-512) that made a 1024^3 sgemm run at 38 GFLOP/s
// against 165 with the kernels OPENBLAS_CORETYPE=Cooperlake or SkylakeX
// selects, and the VAE step 3x slower than NumPyro's (XLA brings its own
// GEMM). When OpenBLAS picked a core older than the instructions this CPU
// (and its OS) supports, and the user did not choose one with
// OPENBLAS_CORETYPE, this re-runs OpenBLAS's own start-up selection with
// OPENBLAS_CORETYPE set to SkylakeX (AVX-512 F, CD, BW, DQ and VL) or
// Haswell (AVX2 and FMA): what setting the variable before start would have
// done. Found through dlsym, so another BLAS (or an OpenBLAS built for one
// core) is left alone. CUVI_OPENBLAS_CORE=keep turns this off.
void select_openblas_core() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  if (const char* k = std::getenv("CUVI_OPENBLAS_CORE"); k != nullptr && std::strcmp(k, "keep") == 0) return;
  using NameFn = char* (*)();
  using VoidFn = void (*)();
  auto corename = reinterpret_cast<NameFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  auto quit = reinterpret_cast<VoidFn>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
  auto init = reinterpret_cast<VoidFn>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
  if (corename == nullptr || quit == nullptr || init == nullptr) return;
  const char* now = corename();
  if (now == nullptr) return;
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vl");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  // OpenBLAS's names of the x86 cores without AVX2: a fallback when the CPU
  // supports AVX2. (Its choice among AVX2 kernels is left alone.)
  static const char* const kPreAvx2[] = {"Prescott", "Core2",   "Penryn",  "Dunnington", "Nehalem",
                                         "Atom",     "Katmai",  "Northwood", "Banias",   "Sandybridge",
                                         "Opteron",  "Barcelona", "Bobcat", "Bulldozer", "Piledriver"};
  bool old = false;
  for (const char* c : kPreAvx2) old = old || std::strcmp(now, c) == 0;
  const char* want = nullptr;
  if (old && avx512) want = "SkylakeX";
  else if (old && avx2) want = "Haswell";
  if (want == nullptr) return;
  setenv("OPENBLAS_CORETYPE", want, 1);
  quit();
  init();
  unsetenv("OPENBLAS_CORETYPE");
#endif
}

class Pool {
 public:
  explicit Pool(int threads) : threads_(std::max(1, threads)) {
    static std::once_flag blas_core_once;
    std::call_once(blas_core_once, select_openblas_core);
    // A pthreads OpenBLAS would start its own threads inside every chunk's
    // product: hold it to one (this pool splits the products). The OpenMP
    // build follows the calling thread's OpenMP setting instead, which the
    // workers set to 1 below and the caller's GEMMs set around each call.
    if (openblas_get_parallel() == 1) openblas_set_num_threads(1);
    workers_.reserve(static_cast<size_t>(threads_ - 1));
    for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { worker(); });
  }
  ~Pool() {
    stop_.store(true, std::memory_order_seq_cst);
    signal_.fetch_add(1, std::memory_order_seq_cst);
    signal_.notify_all();
    for (auto& t : workers_) t.join();
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int threads() const { return threads_; }

  void run(int64_t n, void (*fn)(void*, int64_t, int64_t), void* ctx) {
    if (n <= 0) return;
    bool idle = false;
    if (threads_ == 1 || !busy_.compare_exchange_strong(idle, true, std::memory_order_acquire)) {
      fn(ctx, 0, n);  // nested in a task, or another thread's loop holds the pool
      return;
    }
    const int64_t want = std::min<int64_t>(n, static_cast<int64_t>(threads_) * kChunksPerThread);
    const int64_t chunk = (n + want - 1) / want;
    const int64_t chunks = (n + chunk - 1) / chunk;
    fn_.store(fn, std::memory_order_relaxed);
    ctx_.store(ctx, std::memory_order_relaxed);
    n_.store(n, std::memory_order_relaxed);
    chunk_.store(chunk, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    epoch_ = (epoch_ + 1) & ((uint64_t{1} << 24) - 1);
    next_.store(pack(epoch_, static_cast<uint64_t>(chunks), 0), std::memory_order_release);
    signal_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) signal_.notify_all();
    drain();
    // The chunks left are running on workers: spin briefly, then sleep
    // until the last one ends (it wakes the caller only when it sleeps).
    const auto t0 = std::chrono::steady_clock::now();
    const auto total = static_cast<uint32_t>(chunks);
    for (int spins = 0;; ++spins) {
      const uint32_t d = done_.load(std::memory_order_acquire);
      if (d >= total) break;
      if ((spins & 255) == 255 && std::chrono::steady_clock::now() - t0 > kSpin) {
        caller_waits_.store(true, std::memory_order_seq_cst);
        const uint32_t d2 = done_.load(std::memory_order_seq_cst);
        if (d2 < total) done_.wait(d2, std::memory_order_seq_cst);
        caller_waits_.store(false, std::memory_order_relaxed);
      } else {
        cpu_relax();
      }
    }
    std::exception_ptr err;
    {
      std::lock_guard<std::mutex> lock(err_mu_);
      std::swap(err, err_);
    }
    busy_.store(false, std::memory_order_release);
    if (err) std::rethrow_exception(err);
  }

 private:
  // Claims and runs chunks of the current job until none is left.
  void drain() {
    uint64_t v = next_.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t i = v & kField, c = (v >> 20) & kField;
      if (i >= c) return;
      if (!next_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      // Claimed chunk i: the job's fields stay as they are until it is done.
      const int64_t n = n_.load(std::memory_order_relaxed), chunk = chunk_.load(std::memory_order_relaxed);
      const int64_t lo = static_cast<int64_t>(i) * chunk, hi = std::min(n, lo + chunk);
      try {
        fn_.load(std::memory_order_relaxed)(ctx_.load(std::memory_order_relaxed), lo, hi);
      } catch (...) {
        std::lock_guard<std::mutex> lock(err_mu_);
        if (!err_) err_ = std::current_exception();
      }
      if (done_.fetch_add(1, std::memory_order_seq_cst) + 1 == static_cast<uint32_t>(c) &&
          caller_waits_.load(std::memory_order_seq_cst))
        done_.notify_all();
      v = next_.load(std::memory_order_acquire);
    }
  }

  void worker() {
    omp_set_num_threads(1);  // an OpenMP OpenBLAS called from here stays on this thread
    uint32_t seen = signal_.load(std::memory_order_acquire);
    for (;;) {
      if (stop_.load(std::memory_order_acquire)) return;
      drain();
      const auto t0 = std::chrono::steady_clock::now();
      bool changed = false;
      for (int spins = 0;; ++spins) {
        if (signal_.load(std::memory_order_acquire) != seen) {
          changed = true;
          break;
        }
        if ((spins & 255) == 255 && std::chrono::steady_clock::now() - t0 > kSpin) break;
        cpu_relax();
      }
      if (!changed) {
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        if (signal_.load(std::memory_order_seq_cst) == seen) signal_.wait(seen, std::memory_order_seq_cst);
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      }
      seen = signal_.load(std::memory_order_acquire);
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> next_{0};
  std::atomic<void (*)(void*, int64_t, int64_t)> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int64_t> n_{0}, chunk_{1};
  std::atomic<uint32_t> done_{0};  // chunks finished (a futex word: the caller may sleep on it)
  std::atomic<bool> caller_waits_{false};
  std::atomic<uint32_t> signal_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> busy_{false}, stop_{false};
  uint64_t epoch_ = 0;  // written only by the thread holding busy_
  std::mutex err_mu_;
  std::exception_ptr err_;
};

// The pool is never destroyed at exit (its workers may be asleep in a
// futex while static destructors run; the process ends them): only
// set_num_threads replaces it.
std::mutex g_pool_mu;
std::atomic<Pool*> g_pool{nullptr};

Pool& pool() {
  if (Pool* p = g_pool.load(std::memory_order_acquire)) return *p;
  std::lock_guard<std::mutex> lock(g_pool_mu);
  if (g_pool.load(std::memory_order_relaxed) == nullptr)
    g_pool.store(new Pool(default_threads()), std::memory_order_release);
  return *g_pool.load(std::memory_order_relaxed);
}

}  // namespace

void set_num_threads(int n) {
  CUVI_CHECK(n >= 1 && n < 4096, ValueError, "set_num_threads: " << n << " is not a thread count (1..4095)");
  std::lock_guard<std::mutex> lock(g_pool_mu);
  Pool* old = g_pool.load(std::memory_order_relaxed);
  if (old != nullptr && old->threads() == n) return;
  g_pool.store(new Pool(n), std::memory_order_release);
  delete old;  // joins its workers
}

int get_num_threads() { return pool().threads(); }

namespace kern::cpu {

void parallel_run(int64_t n, void (*fn)(void*, int64_t, int64_t), void* ctx) { pool().run(n, fn, ctx); }
int pool_threads() { return pool().threads(); }
// OpenBLAS's name of the kernels its products run ("SkylakeX", "Haswell",
// ...; "" for another BLAS), once the pool's start has replaced a fallback
// (select_openblas_core). Internal: declared where it is used (tests).
const char* blas_core() {
  pool();  // the core is (re)selected when the pool starts
  using NameFn = char* (*)();
  auto corename = reinterpret_cast<NameFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* name = corename != nullptr ? corename() : nullptr;
  return name != nullptr ? name : "";
}

}  // namespace kern::cpu
}  // namespace cuvi
