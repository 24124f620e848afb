// The CPU backend's thread pool (kernels/cpu_parallel.hpp, runtime/cpu_pool.cpp):
// every index runs exactly once for any range and thread count; nested
// loops, loops from several threads at once and a body that throws behave;
// and the backend's results (sums, products of every transpose and shape
// class, index_add, logsumexp) are the same bits for 1, 2, 3 and 5
// threads.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "../../kernels/cpu_parallel.hpp"
#include "runtime/ops.hpp"
#include "runtime/tensor.hpp"

using namespace cuvi;

namespace {

// Restores the pool's thread count at the end of a test.
struct ThreadsGuard {
  int prev = get_num_threads();
  ~ThreadsGuard() { set_num_threads(prev); }
};

void expect_each_index_once(int64_t n) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  kern::cpu::parallel_for(true, n, [&](int64_t i) { hits[static_cast<size_t>(i)].fetch_add(1); });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n " << n << " index " << i;
}

}  // namespace

TEST(CpuPool, EveryIndexOnceForAnyRangeAndThreadCount) {
  ThreadsGuard g;
  for (int threads : {1, 2, 3, 8}) {
    set_num_threads(threads);
    EXPECT_EQ(get_num_threads(), threads);
    EXPECT_EQ(kern::cpu::pool_threads(), threads);
    for (int64_t n : {0, 1, 2, 3, 7, 8, 9, 31, 100, 1000, 100003}) expect_each_index_once(n);
    // parallel_run itself, on an empty range: no chunk runs.
    kern::cpu::parallel_run(0, [](void*, int64_t, int64_t) { FAIL() << "a chunk of an empty range ran"; }, nullptr);
    // Many small loops back to back (workers caught spinning, or asleep).
    for (int rep = 0; rep < 2000; ++rep) expect_each_index_once(5 + rep % 17);
  }
}

TEST(CpuPool, NestedLoopsAndLoopsFromSeveralThreads) {
  ThreadsGuard g;
  set_num_threads(3);
  // A loop inside a loop's body runs serially in that thread.
  std::vector<std::atomic<int>> hits(64 * 50);
  kern::cpu::parallel_for(true, 64, [&](int64_t i) {
    kern::cpu::parallel_for(true, 50, [&](int64_t j) { hits[static_cast<size_t>(i * 50 + j)].fetch_add(1); });
  });
  for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  // Four threads' loops at once: one holds the pool, the others run theirs
  // serially; all complete, each index once.
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&ok] {
      for (int rep = 0; rep < 200; ++rep) {
        const int64_t n = 1000 + rep;
        std::vector<std::atomic<int>> h(static_cast<size_t>(n));
        kern::cpu::parallel_for(true, n, [&](int64_t i) { h[static_cast<size_t>(i)].fetch_add(1); });
        bool all = true;
        for (auto& x : h) all = all && x.load() == 1;
        if (!all) return;
      }
      ok.fetch_add(1);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 4);
}

TEST(CpuPool, AThrowingBodyRethrowsInTheCallerAndThePoolGoesOn) {
  ThreadsGuard g;
  set_num_threads(4);
  std::atomic<int> ran{0};
  EXPECT_THROW(kern::cpu::parallel_for(true, 1000,
                                       [&](int64_t i) {
                                         ran.fetch_add(1);
                                         if (i == 777) throw std::runtime_error("index 777");
                                       }),
               std::runtime_error);
  EXPECT_GE(ran.load(), 1);
  expect_each_index_once(1000);
  EXPECT_THROW(set_num_threads(0), ValueError);
  EXPECT_EQ(get_num_threads(), 4);
}

// The same bits whatever the thread count: reductions use fixed chunks,
// products fixed blocks whose k-sums OpenBLAS runs in one order.
TEST(CpuPool, BackendResultsAreTheSameBitsForAnyThreadCount) {
  ThreadsGuard g;
  std::mt19937 gen(5);
  std::normal_distribution<float> nd;
  auto rnd = [&](const Shape& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = nd(gen);
    return tensor(v, s, Device::cpu());
  };
  const Tensor big = rnd({3, 200000});
  const Tensor a = rnd({300, 250}), b = rnd({250, 180}), at = rnd({250, 300}), bt = rnd({180, 250});
  const Tensor thin = rnd({3, 4000}), wide = rnd({4000, 500});  // few rows: split by columns
  const Tensor batched_a = rnd({4, 64, 96}), batched_b = rnd({4, 96, 80});
  std::vector<int64_t> idx(60000);
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>((i * 7919) % 1000);
  const Tensor index = tensor_i64(idx, {60000}, Device::cpu());
  const Tensor src = rnd({60000, 8});
  auto results = [&] {
    std::vector<std::vector<float>> r;
    r.push_back(sum(big).to_vector());
    r.push_back(sum(big, {1}).to_vector());
    r.push_back(matmul(a, b).to_vector());
    r.push_back(matmul(transpose(at, 0, 1), b).to_vector());
    r.push_back(matmul(a, transpose(bt, 0, 1)).to_vector());
    r.push_back(matmul(thin, wide).to_vector());
    r.push_back(matmul(batched_a, batched_b).to_vector());
    r.push_back(index_add(zeros({1000, 8}, Device::cpu()), 0, index, src).to_vector());
    r.push_back(logsumexp(big, {1}).to_vector());
    return r;
  };
  set_num_threads(1);
  const auto want = results();
  for (int threads : {2, 3, 5}) {
    set_num_threads(threads);
    const auto got = results();
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < want.size(); ++k) EXPECT_EQ(got[k], want[k]) << "result " << k << ", " << threads << " threads";
  }
}

namespace cuvi::kern::cpu {
const char* blas_core();  // runtime/cpu_pool.cpp
}

// Debian 12's OpenBLAS falls back to its SSE3 (Prescott) kernels on CPUs it
// does not know (the development VM's Emerald Rapids, 4x slower products);
// the pool's start re-selects kernels for the instructions the CPU has,
// unless the user chose with OPENBLAS_CORETYPE (or CUVI_OPENBLAS_CORE=keep).
TEST(CpuPool, OpenBlasRunsKernelsForThisCpu) {
  const std::string core = cuvi::kern::cpu::blas_core();
  if (core.empty()) GTEST_SKIP() << "not OpenBLAS";
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr || std::getenv("CUVI_OPENBLAS_CORE") != nullptr)
    GTEST_SKIP() << "kernels chosen by the environment: " << core;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) GTEST_SKIP() << "no AVX2: " << core;
  for (const char* old : {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Sandybridge"})
    EXPECT_NE(core, old) << "OpenBLAS runs pre-AVX2 kernels on an AVX2 CPU";
  std::printf("OpenBLAS core: %s\n", core.c_str());
#else
  GTEST_SKIP() << "x86-64 only: " << core;
#endif
}
