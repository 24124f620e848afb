// CUDA launch helpers shared by the runtime's kernels and by distribution
// kernels (built-in or user-defined): error checks and grid sizing.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include "../../runtime/error.hpp"

namespace cuvi::detail {
void count_launch();  // runtime/tensor.cpp: cuvi::launch_count()'s counter
}

namespace cuvi::kern::cuda {

[[noreturn]] inline void throw_cuda(cudaError_t err, const char* call, const char* file, int line) {
  // A failing runtime call also records its error as the thread's "last
  // error"; clear it so that a caught (non-sticky) failure, e.g. an
  // out-of-memory allocation, is not reported again by the next launch check.
  (void)cudaGetLastError();
  std::ostringstream os;
  os << "CUDA error " << cudaGetErrorName(err) << " (" << cudaGetErrorString(err) << ") in " << call << " [" << file
     << ":" << line << "]";
  throw ::cuvi::CudaError(os.str());
}

// CUVI_SYNC_DEBUG=1 synchronises after every launch so an asynchronous
// failure is reported at the launch that caused it.
inline bool sync_debug() {
  static const bool on = [] {
    const char* v = std::getenv("CUVI_SYNC_DEBUG");
    return v && v[0] == '1';
  }();
  return on;
}

constexpr int kThreads = 256;

// Grid for a grid-stride loop over n elements: enough blocks to fill the
// GPU several times over, never more than the work needs.
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t want = (n + threads - 1) / threads;
  const int64_t cap = 132 * 32;  // ~32 blocks per SM on an H100 (132 SMs)
  return static_cast<unsigned>(want < 1 ? 1 : (want > cap ? cap : want));
}

// Stream-ordered scratch memory, freed in stream order when the owner goes
// out of scope, also when a launch check throws in between (where a failure
// to free is dropped: an error is already on its way).
class AsyncScratch {
 public:
  AsyncScratch(size_t bytes, cudaStream_t s) : s_(s) {
    const cudaError_t err = cudaMallocAsync(&p_, bytes ? bytes : 1, s_);
    if (err != cudaSuccess) throw_cuda(err, "cudaMallocAsync", __FILE__, __LINE__);
  }
  AsyncScratch(AsyncScratch&& o) noexcept : p_(o.p_), s_(o.s_) { o.p_ = nullptr; }
  AsyncScratch(const AsyncScratch&) = delete;
  AsyncScratch& operator=(const AsyncScratch&) = delete;
  AsyncScratch& operator=(AsyncScratch&&) = delete;
  ~AsyncScratch() {
    if (p_ && cudaFreeAsync(p_, s_) != cudaSuccess) (void)cudaGetLastError();
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }
  // Frees now, reporting a failure.
  void free() {
    void* p = p_;
    p_ = nullptr;
    const cudaError_t err = cudaFreeAsync(p, s_);
    if (err != cudaSuccess) throw_cuda(err, "cudaFreeAsync", __FILE__, __LINE__);
  }

 private:
  void* p_ = nullptr;
  cudaStream_t s_;
};

}  // namespace cuvi::kern::cuda

#define CUVI_CUDA_CHECK(call)                                                   \
  do {                                                                          \
    cudaError_t cuvi_err_ = (call);                                             \
    if (cuvi_err_ != cudaSuccess) ::cuvi::kern::cuda::throw_cuda(cuvi_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a launch: the launch error now, an execution error too in debug mode.
#define CUVI_CUDA_LAUNCH_CHECK(stream)                                  \
  do {                                                                  \
    ::cuvi::detail::count_launch();                                     \
    CUVI_CUDA_CHECK(cudaGetLastError());                                \
    if (::cuvi::kern::cuda::sync_debug()) CUVI_CUDA_CHECK(cudaStreamSynchronize(stream)); \
  } while (0)

#define CUVI_GRID_STRIDE(i, n) \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
