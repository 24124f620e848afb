// CUDA kernels for a row body B (kernels/dist/rows.hpp): one thread per row.
// The fused log-prob-sum reduces fixed chunks of rows (one block each, CUB
// BlockReduce) and adds the chunk partials in order in one more block, so
// its result has the same bits on every run.
#pragma once

#include <cub/block/block_reduce.cuh>
#include <optional>

#include "../dist/rows.hpp"
#include "family_kernels.cuh"

namespace cuvi::kern::cuda {

constexpr int kRowItems = 4;
constexpr int64_t kRowChunk = static_cast<int64_t>(kThreads) * kRowItems;

// With check.flag set, each row is validated just before its density.
template <class B>
__global__ void rows_log_prob_kernel(const typename B::Args a, float* out, const FamilyCheck check) {
  CUVI_GRID_STRIDE(r, B::rows(a)) {
    if (check.flag) {
      float bad = 0.0f;
      const int v = B::validate(a, r, true, &bad);
      if (v != 0) report_check(check, v, bad);
    }
    out[r] = B::log_prob(a, r);
  }
}

template <class B>
__global__ void rows_log_prob_grad_kernel(const typename B::Args a, const float* g, float coef,
                                          const typename B::Grads out) {
  CUVI_GRID_STRIDE(r, B::rows(a)) B::log_prob_grad(a, r, coef * (g ? g[r] : 1.0f), out);
}

// `single`: one block, which writes coef * the sum into partial[0] itself
// (as family_log_prob_sum_kernel). With check.flag set, each row is
// validated right before it is used (its data then comes from cache).
template <class B, bool kGrads>
__global__ void rows_log_prob_sum_kernel(const typename B::Args a, float coef, const typename B::Grads out,
                                         float* partial, bool single, const FamilyCheck check) {
  using BlockReduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename BlockReduce::TempStorage tmp;
  const int64_t n = B::rows(a);
  const int64_t base = static_cast<int64_t>(blockIdx.x) * kRowChunk;
  float acc = 0.0f;
#pragma unroll
  for (int j = 0; j < kRowItems; ++j) {
    const int64_t r = base + static_cast<int64_t>(j) * kThreads + threadIdx.x;
    if (r < n) {
      if (check.flag) {
        float bad = 0.0f;
        const int v = B::validate(a, r, true, &bad);
        if (v != 0) report_check(check, v, bad);
      }
      if constexpr (kGrads) acc += B::log_prob_grad(a, r, coef, out);
      else acc += B::log_prob(a, r);
    }
  }
  const float s = BlockReduce(tmp).Sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = single ? coef * s : s;
}

template <class B>
__global__ void rows_validate_kernel(const typename B::Args a, bool values, const FamilyCheck c) {
  CUVI_GRID_STRIDE(r, B::rows(a)) {
    float bad = 0.0f;
    const int v = B::validate(a, r, values, &bad);
    if (v != 0) report_check(c, v, bad);
  }
}

template <class B>
struct RowsLaunch {
  using Args = typename B::Args;
  using Grads = typename B::Grads;
  static cudaStream_t s(void* stream) { return static_cast<cudaStream_t>(stream); }

  static void log_prob(const Args& a, float* out, const FamilyCheck* check, void* st) {
    const int64_t n = B::rows(a);
    if (n == 0) return;
    rows_log_prob_kernel<B><<<grid_for(n), kThreads, 0, s(st)>>>(a, out, check ? *check : FamilyCheck{});
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static void log_prob_grad(const Args& a, const float* g, float coef, const Grads& o, void* st) {
    const int64_t n = B::rows(a);
    if (n == 0) return;
    rows_log_prob_grad_kernel<B><<<grid_for(n), kThreads, 0, s(st)>>>(a, g, coef, o);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static void log_prob_sum(const Args& a, float coef, float* sum, const Grads& o, bool grads,
                           const FamilyCheck* check, void* st) {
    const FamilyCheck c = check ? *check : FamilyCheck{};
    const int64_t chunks = (B::rows(a) + kRowChunk - 1) / kRowChunk;
    if (chunks == 0) {
      CUVI_CUDA_CHECK(cudaMemsetAsync(sum, 0, sizeof(float), s(st)));
      return;
    }
    const bool single = chunks == 1;  // one launch writes the sum, no scratch
    std::optional<AsyncScratch> scratch;
    if (!single) scratch.emplace(static_cast<size_t>(chunks) * sizeof(float), s(st));
    float* partial = single ? sum : scratch->as<float>();
    const unsigned blocks = static_cast<unsigned>(chunks);
    if (grads)
      rows_log_prob_sum_kernel<B, true><<<blocks, kThreads, 0, s(st)>>>(a, coef, o, partial, single, c);
    else
      rows_log_prob_sum_kernel<B, false><<<blocks, kThreads, 0, s(st)>>>(a, coef, o, partial, single, c);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
    if (single) return;
    family_sum_partials_kernel<><<<1, kThreads, 0, s(st)>>>(partial, chunks, coef, sum);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
    scratch->free();
  }
  static void validate(const Args& a, bool values, const FamilyCheck& c, void* st) {
    const int64_t n = B::rows(a);
    if (n == 0) return;
    rows_validate_kernel<B><<<grid_for(n), kThreads, 0, s(st)>>>(a, values, c);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static const RowsCudaOps<B>* ops() {
    static const RowsCudaOps<B> table{&log_prob, &log_prob_grad, &log_prob_sum, &validate};
    return &table;
  }
};

}  // namespace cuvi::kern::cuda
