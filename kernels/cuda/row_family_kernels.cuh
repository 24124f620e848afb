// CUDA kernels for a row family F (kernels/dist/row_family.hpp): one thread
// per row. Include from a .cu file and register with
// CUVI_REGISTER_CUDA_ROW_FAMILY(F).
//
// The fused log-prob-sum reduces fixed chunks of rows (one block each, CUB
// BlockReduce) and adds the chunk partials in order in one more block, so
// its result has the same bits on every run.
#pragma once

#include <cub/block/block_reduce.cuh>

#include "../dist/row_family.hpp"
#include "family_kernels.cuh"

namespace cuvi::kern::cuda {

constexpr int kRowItems = 4;
constexpr int64_t kRowChunk = static_cast<int64_t>(kThreads) * kRowItems;

template <class F>
__global__ void row_log_prob_kernel(const RowArgs a, float* out) {
  CUVI_GRID_STRIDE(r, a.geom.n) out[r] = row_log_prob<F>(a, r);
}

template <class F>
__global__ void row_log_prob_grad_kernel(const RowArgs a, const float* g, float coef, const RowGrads out) {
  CUVI_GRID_STRIDE(r, a.geom.n) row_log_prob_grad<F>(a, r, coef * (g ? g[r] : 1.0f), out);
}

template <class F, bool kGrads>
__global__ void row_log_prob_sum_kernel(const RowArgs a, float coef, const RowGrads out, float* partial) {
  using BlockReduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename BlockReduce::TempStorage tmp;
  const int64_t base = static_cast<int64_t>(blockIdx.x) * kRowChunk;
  float acc = 0.0f;
#pragma unroll
  for (int j = 0; j < kRowItems; ++j) {
    const int64_t r = base + static_cast<int64_t>(j) * kThreads + threadIdx.x;
    if (r < a.geom.n) {
      if constexpr (kGrads) acc += row_log_prob_grad<F>(a, r, coef, out);
      else acc += row_log_prob<F>(a, r);
    }
  }
  const float s = BlockReduce(tmp).Sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

template <class F>
__global__ void row_sample_kernel(const RowArgs a, uint64_t seed, uint32_t offset, float* out, float* aux) {
  CUVI_GRID_STRIDE(r, a.geom.n) row_sample<F>(a, r, seed, offset, out, aux);
}

template <class F>
__global__ void row_sample_grad_kernel(const RowArgs a, const float* aux, const float* g, float* gp) {
  CUVI_GRID_STRIDE(r, a.geom.n) row_sample_grad<F>(a, r, aux, g, gp);
}

template <class F>
__global__ void row_validate_kernel(const RowArgs a, bool values, const FamilyCheck c) {
  CUVI_GRID_STRIDE(r, a.geom.n) {
    float bad = 0.0f;
    const int v = row_validate<F>(a, r, values, &bad);
    const int code = v > 0 ? c.param_code[0] : (v < 0 ? c.value_code : 0);
    if (code != 0 && atomicCAS(c.flag, 0, code) == 0 && c.bad) *c.bad = bad;
  }
}

template <class F>
struct RowFamilyLaunch {
  static cudaStream_t s(void* stream) { return static_cast<cudaStream_t>(stream); }

  static void log_prob(const RowArgs& a, float* out, void* st) {
    if (a.geom.n == 0) return;
    row_log_prob_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, out);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static void log_prob_grad(const RowArgs& a, const float* g, float coef, const RowGrads& o, void* st) {
    if (a.geom.n == 0) return;
    row_log_prob_grad_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, g, coef, o);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static void log_prob_sum(const RowArgs& a, float coef, float* sum, const RowGrads& o, void* st) {
    const int64_t chunks = (a.geom.n + kRowChunk - 1) / kRowChunk;
    if (chunks == 0) {
      CUVI_CUDA_CHECK(cudaMemsetAsync(sum, 0, sizeof(float), s(st)));
      return;
    }
    float* partial = nullptr;
    CUVI_CUDA_CHECK(cudaMallocAsync(&partial, static_cast<size_t>(chunks) * sizeof(float), s(st)));
    if (o.gp)
      row_log_prob_sum_kernel<F, true><<<static_cast<unsigned>(chunks), kThreads, 0, s(st)>>>(a, coef, o, partial);
    else
      row_log_prob_sum_kernel<F, false><<<static_cast<unsigned>(chunks), kThreads, 0, s(st)>>>(a, coef, o, partial);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
    family_sum_partials_kernel<<<1, kThreads, 0, s(st)>>>(partial, chunks, coef, sum);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
    CUVI_CUDA_CHECK(cudaFreeAsync(partial, s(st)));
  }
  static void sample(const RowArgs& a, uint64_t seed, uint32_t offset, float* out, float* aux, void* st) {
    if (a.geom.n == 0) return;
    row_sample_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, seed, offset, out, aux);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static void sample_grad(const RowArgs& a, const float* aux, const float* g, float* gp, void* st) {
    if (a.geom.n == 0) return;
    row_sample_grad_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, aux, g, gp);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static void validate(const RowArgs& a, bool values, const FamilyCheck& c, void* st) {
    if (a.geom.n == 0) return;
    row_validate_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, values, c);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static const RowFamilyCudaOps* ops() {
    static const RowFamilyCudaOps table{&log_prob, &log_prob_grad, &log_prob_sum, &sample, &sample_grad, &validate};
    return &table;
  }
};

}  // namespace cuvi::kern::cuda

// Registers the CUDA kernels of row family F (in a .cu file of the program).
#define CUVI_REGISTER_CUDA_ROW_FAMILY(F)                                                    \
  static const bool CUVI_CONCAT(cuvi_row_family_registered_, __COUNTER__) = [] {           \
    ::cuvi::kern::RowFamilyRegistry<F>::cuda = ::cuvi::kern::cuda::RowFamilyLaunch<F>::ops(); \
    return true;                                                                            \
  }()
