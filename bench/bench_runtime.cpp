// Runtime micro-benchmarks on every backend: elementwise ops, reductions,
// matmul, and a plain device-to-device copy as the bandwidth reference.
// Names read family/backend/size, e.g. `binary_add/cuda/1048576`; filter one
// backend with --benchmark_filter=/cpu/ or /cuda/.
//
// Timing. This file is plain C++ compiled against the library, without CUDA
// headers, so it cannot record cudaEvents. Every benchmark uses manual time:
// a wall clock around the op followed by cuvi::synchronize(dev). On the CPU
// the sync is free; on a GPU every iteration includes one stream
// synchronisation (plus the op's launches and its output allocation from the
// stream-ordered pool), so small sizes measure launch + sync latency (several
// microseconds), not bandwidth. Only from a few MiB up does bytes_per_second
// approach what the kernels can do. The op's output is freed after the clock
// stops; one untimed warm-up call per run pays for pool growth, cuBLAS handle
// creation and module loading.
//
// Bytes are the fewest an op must move: each input read once, each output
// written once (add: reads 2N floats, writes N = 12N bytes; exp: 8N; [N] * [1]:
// 4(2N + 1); sum over all: 4(N + 1); matmul: 4(3n^2)). Composite ops
// (logsumexp is amax, sub, exp, sum, log, add) move more than that, and the
// gap shows in frac_of_copy.
//
// frac_of_copy (GPU runs only): achieved bytes/s over the bytes/s of a
// device-to-device copy moving the same number of bytes (half read, half
// written), measured once per process and size with the same wall-clock +
// sync method. Near 1: the op runs at copy speed for this size, sync overhead
// included on both sides.
#include <vector>

#include "bench_common.hpp"

namespace {

using namespace cuvi_bench;

constexpr int64_t kMaxNCpu = int64_t{1} << 24;   // keeps a 2-core run short
constexpr int64_t kMaxNCuda = int64_t{1} << 26;  // 256 MiB per float tensor
constexpr int64_t kRowLen = 256;                 // last dim of the 2-D reduction inputs

// ---- elementwise -----------------------------------------------------------

void unary_exp(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const cuvi::NoGradGuard no_grad;
  const int64_t n = state.range(0);
  const Tensor x = cuvi::randn({n}, *dev);
  const double s = run_timed(state, *dev, [&] { return cuvi::exp(x); });
  report(state, *dev, s, 2 * n * kF32, n);
}

void binary_add(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const cuvi::NoGradGuard no_grad;
  const int64_t n = state.range(0);
  const Tensor a = cuvi::randn({n}, *dev);
  const Tensor b = cuvi::randn({n}, *dev);
  const double s = run_timed(state, *dev, [&] { return cuvi::add(a, b); });
  report(state, *dev, s, 3 * n * kF32, n);
}

// [N] * [1]: the broadcast path (one operand with stride 0).
void binary_mul_bcast(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const cuvi::NoGradGuard no_grad;
  const int64_t n = state.range(0);
  const Tensor a = cuvi::randn({n}, *dev);
  const Tensor b = cuvi::randn({1}, *dev);
  const double s = run_timed(state, *dev, [&] { return cuvi::mul(a, b); });
  report(state, *dev, s, (2 * n + 1) * kF32, n);
}

// ---- reductions ------------------------------------------------------------

// Over all elements: the deterministic two-pass (fixed chunks, then partials
// in order) path.
void sum_all(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const cuvi::NoGradGuard no_grad;
  const int64_t n = state.range(0);
  const Tensor x = cuvi::randn({n}, *dev);
  const double s = run_timed(state, *dev, [&] { return cuvi::sum(x); });
  report(state, *dev, s, (n + 1) * kF32, n);
}

// [N/256, 256] summed over dim 0: a strided (column) reduction to 256 outputs.
void sum_dim0(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const cuvi::NoGradGuard no_grad;
  const int64_t n = state.range(0);
  const Tensor x = cuvi::randn({n / kRowLen, kRowLen}, *dev);
  const double s = run_timed(state, *dev, [&] { return cuvi::sum(x, {0}); });
  report(state, *dev, s, (n + kRowLen) * kF32, n);
}

// [N/256, 256] over the last dim: N/256 rows of 256. Counted as one read of x
// and one write of the row results, although the op is composite.
void logsumexp_last(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const cuvi::NoGradGuard no_grad;
  const int64_t n = state.range(0);
  const Tensor x = cuvi::randn({n / kRowLen, kRowLen}, *dev);
  const double s = run_timed(state, *dev, [&] { return cuvi::logsumexp(x, {-1}); });
  report(state, *dev, s, (n + n / kRowLen) * kF32, n);
}

// cumsum of one line of N (a random walk's prefix sums): the chunked scan
// on a GPU. Counted as one read and one write.
void cumsum_line(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const cuvi::NoGradGuard no_grad;
  const int64_t n = state.range(0);
  const Tensor x = cuvi::randn({n}, *dev);
  const double s = run_timed(state, *dev, [&] { return cuvi::cumsum(x, 0); });
  report(state, *dev, s, 2 * n * kF32, n);
}

// ---- matmul ----------------------------------------------------------------

// Square n x n x n; flops is a rate counter of 2 n^3 per iteration.
void matmul_square(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const cuvi::NoGradGuard no_grad;
  const int64_t n = state.range(0);
  const Tensor a = cuvi::randn({n, n}, *dev);
  const Tensor b = cuvi::randn({n, n}, *dev);
  const double s = run_timed(state, *dev, [&] { return cuvi::matmul(a, b); });
  report(state, *dev, s, 3 * n * n * kF32, n * n);
  state.counters["flops"] = benchmark::Counter(2.0 * static_cast<double>(n) * static_cast<double>(n) *
                                                   static_cast<double>(n) * static_cast<double>(state.iterations()),
                                               benchmark::Counter::kIsRate);
}

// ---- indexing ----------------------------------------------------------------

// index_add of N rows into a [G] target with G = 64: the backward of a
// hierarchical model's theta[group] over N data (runs of ~N/64 repeated
// indices: the sorted-run path with its chunk partials on a GPU). Counted as
// reading the N values and N indices, and writing G (the copy of x aside).
void index_add_groups(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const cuvi::NoGradGuard no_grad;
  const int64_t n = state.range(0), groups = 64;
  const Tensor x = cuvi::zeros({groups}, *dev);
  const Tensor src = cuvi::randn({n}, *dev);
  std::vector<int64_t> iv(static_cast<size_t>(n));
  uint64_t z = 88172645463325252ull;  // xorshift64: uniform groups, cheap at 2^24 draws
  for (auto& v : iv) {
    z ^= z << 13;
    z ^= z >> 7;
    z ^= z << 17;
    v = static_cast<int64_t>(z % static_cast<uint64_t>(groups));
  }
  const Tensor idx = cuvi::tensor_i64(iv, {n}, *dev);
  const double s = run_timed(state, *dev, [&] { return cuvi::index_add(x, 0, idx, src); });
  report(state, *dev, s, n * (kF32 + 8) + groups * kF32, n);
}

// ---- bandwidth reference ---------------------------------------------------

// N floats through backend(dev).copy_d2d into a preallocated buffer (memcpy
// on the CPU, cudaMemcpyAsync on a GPU): reads N, writes N.
void copy_d2d(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const int64_t n = state.range(0);
  const Tensor src = cuvi::randn({n}, *dev);
  const Tensor dst = Tensor::empty({n}, cuvi::DType::kFloat32, *dev);
  cuvi::Backend& be = cuvi::backend(*dev);
  const double s = run_timed(state, *dev, [&] {
    be.copy_d2d(dst.data<float>(), src.data<float>(), static_cast<size_t>(n * kF32));
    return 0;
  });
  report(state, *dev, s, 2 * n * kF32, n);
}

// ---- registration ----------------------------------------------------------
// Static registration touches no CUDA: the cuda variants look for a device
// when they run, and skip with an error when there is none.

void sizes_cpu(benchmark::internal::Benchmark* b) { b->RangeMultiplier(2)->Range(kMinN, kMaxNCpu); }
void sizes_cuda(benchmark::internal::Benchmark* b) { b->RangeMultiplier(2)->Range(kMinN, kMaxNCuda); }
void matmul_cpu(benchmark::internal::Benchmark* b) { b->RangeMultiplier(2)->Range(128, 1024); }
void matmul_cuda(benchmark::internal::Benchmark* b) { b->RangeMultiplier(2)->Range(128, 2048); }
void index_cpu(benchmark::internal::Benchmark* b) { b->RangeMultiplier(16)->Range(kMinN, kMaxNCpu); }
void index_cuda(benchmark::internal::Benchmark* b) { b->RangeMultiplier(16)->Range(kMinN, int64_t{1} << 24); }

#define CUVI_BENCH(fn, cpu_sizes, cuda_sizes)                                                          \
  BENCHMARK_CAPTURE(fn, cpu, Which::kCpu)->Apply(cpu_sizes)->UseManualTime()->Unit(benchmark::kMicrosecond); \
  BENCHMARK_CAPTURE(fn, cuda, Which::kCuda)->Apply(cuda_sizes)->UseManualTime()->Unit(benchmark::kMicrosecond)

CUVI_BENCH(copy_d2d, sizes_cpu, sizes_cuda);
CUVI_BENCH(unary_exp, sizes_cpu, sizes_cuda);
CUVI_BENCH(binary_add, sizes_cpu, sizes_cuda);
CUVI_BENCH(binary_mul_bcast, sizes_cpu, sizes_cuda);
CUVI_BENCH(sum_all, sizes_cpu, sizes_cuda);
CUVI_BENCH(sum_dim0, sizes_cpu, sizes_cuda);
CUVI_BENCH(logsumexp_last, sizes_cpu, sizes_cuda);
CUVI_BENCH(matmul_square, matmul_cpu, matmul_cuda);
CUVI_BENCH(index_add_groups, index_cpu, index_cuda);
CUVI_BENCH(cumsum_line, index_cpu, index_cuda);

}  // namespace

BENCHMARK_MAIN();
