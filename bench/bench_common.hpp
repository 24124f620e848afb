// Shared benchmark plumbing: device selection with a clean skip, wall-clock
// + synchronize timing, and the device-to-device copy reference that
// frac_of_copy divides by. See bench_runtime.cpp's header for the method.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include <cuvi.hpp>

#include "runtime/backend.hpp"

namespace cuvi_bench {

using cuvi::Device;
using cuvi::Tensor;
using Clock = std::chrono::steady_clock;

enum class Which { kCpu, kCuda };

constexpr int64_t kMinN = int64_t{1} << 12;
constexpr int64_t kF32 = 4;

inline double elapsed_s(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The device to run on, or nullopt after marking the benchmark as skipped.
inline std::optional<Device> acquire(benchmark::State& state, Which which) {
  if (which == Which::kCpu) return Device::cpu();
  if (!cuvi::cuda_available()) {
    state.SkipWithError("no CUDA device");
    return std::nullopt;
  }
  return Device::cuda(0);
}

// One untimed warm-up call, then the timed loop: wall clock around body()
// and the device sync. body()'s result (the op's output) lives until after
// the clock stops. Returns the mean seconds per iteration.
template <class Body>
double run_timed(benchmark::State& state, Device dev, Body&& body) {
  {
    [[maybe_unused]] auto warm = body();
    cuvi::synchronize(dev);
  }
  double total = 0.0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    [[maybe_unused]] auto out = body();
    cuvi::synchronize(dev);
    const double s = elapsed_s(t0);
    state.SetIterationTime(s);
    total += s;
  }
  return state.iterations() > 0 ? total / static_cast<double>(state.iterations()) : 0.0;
}

// Bytes/s of backend(dev).copy_d2d moving `bytes` in total (bytes / 2 read,
// bytes / 2 written), timed as run_timed times ops: warm-up, then per copy a
// wall clock around the copy and a sync, until 50 ms or 10000 copies (at least
// 10). Cached per device and byte count for the life of the process.
inline double copy_bytes_per_s(Device dev, int64_t bytes) {
  static std::mutex mu;
  static std::map<std::pair<int, int64_t>, double> cache;
  const std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(dev.is_cpu() ? -1 : dev.index, bytes);
  if (auto it = cache.find(key); it != cache.end()) return it->second;

  const int64_t half_floats = (bytes / 2 + kF32 - 1) / kF32;
  Tensor src = cuvi::randn({half_floats}, dev);
  Tensor dst = Tensor::empty({half_floats}, cuvi::DType::kFloat32, dev);
  cuvi::Backend& be = cuvi::backend(dev);
  const auto copy_bytes = static_cast<size_t>(half_floats * kF32);
  for (int i = 0; i < 3; ++i) be.copy_d2d(dst.data<float>(), src.data<float>(), copy_bytes);
  cuvi::synchronize(dev);
  double total = 0.0;
  int reps = 0;
  while (reps < 10 || (total < 0.05 && reps < 10000)) {
    const auto t0 = Clock::now();
    be.copy_d2d(dst.data<float>(), src.data<float>(), copy_bytes);
    cuvi::synchronize(dev);
    total += elapsed_s(t0);
    ++reps;
  }
  const double bps = 2.0 * static_cast<double>(copy_bytes) * reps / total;
  cache.emplace(key, bps);
  return bps;
}

inline void report(benchmark::State& state, Device dev, double mean_s, int64_t bytes_per_iter, int64_t items_per_iter) {
  state.SetBytesProcessed(state.iterations() * bytes_per_iter);
  state.SetItemsProcessed(state.iterations() * items_per_iter);
  if (dev.is_cuda() && mean_s > 0.0) {
    const double achieved = static_cast<double>(bytes_per_iter) / mean_s;
    state.counters["frac_of_copy"] = achieved / copy_bytes_per_s(dev, bytes_per_iter);
  }
}

}  // namespace cuvi_bench
