// CUDA kernels for any elementwise distribution family F; include from a .cu
// file and register with CUVI_REGISTER_CUDA_FAMILY(F).
//
// The fused log-prob-sum is the ELBO's hot path: one pass reads the value
// and the parameters once, writes coef * d/dvalue and coef * d/dparam once,
// and reduces coef * log_prob over fixed 2048-element chunks (one block each,
// CUB BlockReduce), then one block adds the chunk partials in order. Bytes
// per element for a mean-field Normal site: 3 reads + 3 writes of 4 bytes.
#pragma once

#include <cub/block/block_reduce.cuh>

#include "../dist/family.hpp"
#include "launch.cuh"

namespace cuvi::kern::cuda {

constexpr int kFamilyItems = 8;
constexpr int64_t kFamilyChunk = static_cast<int64_t>(kThreads) * kFamilyItems;

template <class F>
__global__ void family_log_prob_kernel(const FamilyArgs<F::kNumParams> a, float* out) {
  CUVI_GRID_STRIDE(i, a.geom.n) {
    float p[F::kNumParams];
    a.params(i, p);
    out[i] = F::log_prob(a.value(i), p);
  }
}

template <class F>
__global__ void family_log_prob_grad_kernel(const FamilyArgs<F::kNumParams> a, const float* g, float coef, float* lp,
                                            const FamilyGrads<F::kNumParams> out) {
  CUVI_GRID_STRIDE(i, a.geom.n) {
    float p[F::kNumParams], dp[F::kNumParams], dx;
    a.params(i, p);
    const float l = F::log_prob_grad(a.value(i), p, &dx, dp);
    const float s = coef * (g ? g[i] : 1.0f);
    if (lp) lp[i] = l;
    if (out.gx) out.gx[i] = s * dx;
#pragma unroll
    for (int k = 0; k < F::kNumParams; ++k)
      if (out.gp[k]) out.gp[k][i] = s * dp[k];
  }
}

template <class F, bool kGrads>
__global__ void family_log_prob_sum_kernel(const FamilyArgs<F::kNumParams> a, float coef,
                                           const FamilyGrads<F::kNumParams> out, float* partial) {
  using BlockReduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename BlockReduce::TempStorage tmp;
  const int64_t base = static_cast<int64_t>(blockIdx.x) * kFamilyChunk;
  float acc = 0.0f;
#pragma unroll
  for (int j = 0; j < kFamilyItems; ++j) {
    const int64_t i = base + static_cast<int64_t>(j) * kThreads + threadIdx.x;
    if (i < a.geom.n) {
      float p[F::kNumParams];
      a.params(i, p);
      if constexpr (kGrads) {
        float dp[F::kNumParams], dx;
        acc += F::log_prob_grad(a.value(i), p, &dx, dp);
        if (out.gx) out.gx[i] = coef * dx;
#pragma unroll
        for (int k = 0; k < F::kNumParams; ++k)
          if (out.gp[k]) out.gp[k][i] = coef * dp[k];
      } else {
        acc += F::log_prob(a.value(i), p);
      }
    }
  }
  const float r = BlockReduce(tmp).Sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = r;
}

// One block adds the partials in a fixed order and scales by coef.
__global__ inline void family_sum_partials_kernel(const float* partial, int64_t n, float coef, float* sum) {
  using BlockReduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename BlockReduce::TempStorage tmp;
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) acc += partial[i];
  const float r = BlockReduce(tmp).Sum(acc);
  if (threadIdx.x == 0) *sum = coef * r;
}

template <class F>
__global__ void family_sample_kernel(const FamilyArgs<F::kNumParams> a, uint64_t seed, uint32_t offset, float* out) {
  CUVI_GRID_STRIDE(i, a.geom.n) {
    float p[F::kNumParams];
    a.params(i, p);
    ElemRng rng(seed, static_cast<uint64_t>(i), offset);
    out[i] = F::sample(p, rng);
  }
}

template <class F>
__global__ void family_sample_grad_kernel(const FamilyArgs<F::kNumParams> a, const float* g,
                                          const FamilyGrads<F::kNumParams> out) {
  CUVI_GRID_STRIDE(i, a.geom.n) {
    float p[F::kNumParams], d[F::kNumParams];
    a.params(i, p);
    F::sample_grad(a.value(i), p, d);
#pragma unroll
    for (int k = 0; k < F::kNumParams; ++k)
      if (out.gp[k]) out.gp[k][i] = g[i] * d[k];
  }
}

template <class F>
__global__ void family_moments_kernel(const FamilyArgs<F::kNumParams> a, float* mean, float* var) {
  CUVI_GRID_STRIDE(i, a.geom.n) {
    float p[F::kNumParams];
    a.params(i, p);
    if (mean) mean[i] = F::mean(p);
    if (var) var[i] = F::variance(p);
  }
}

template <class F>
__global__ void family_validate_kernel(const FamilyArgs<F::kNumParams> a, bool values, const FamilyCheck c) {
  CUVI_GRID_STRIDE(i, a.geom.n) {
    float p[F::kNumParams];
    a.params(i, p);
    const int k = F::bad_param(p);
    int code = 0;
    float bad = 0.0f;
    if (k >= 0) {
      code = c.param_code[k];
      bad = p[k];
    } else if (values && !F::support_ok(a.value(i), p)) {
      code = c.value_code;
      bad = a.value(i);
    }
    if (code != 0 && atomicCAS(c.flag, 0, code) == 0 && c.bad) *c.bad = bad;
  }
}

template <class F>
struct FamilyLaunch {
  static constexpr int NP = F::kNumParams;
  static cudaStream_t s(void* stream) { return static_cast<cudaStream_t>(stream); }

  static void log_prob(const FamilyArgs<NP>& a, float* out, void* st) {
    if (a.geom.n == 0) return;
    family_log_prob_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, out);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static void log_prob_grad(const FamilyArgs<NP>& a, const float* g, float coef, float* lp, const FamilyGrads<NP>& o,
                            void* st) {
    if (a.geom.n == 0) return;
    family_log_prob_grad_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, g, coef, lp, o);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static void log_prob_sum(const FamilyArgs<NP>& a, float coef, float* sum, const FamilyGrads<NP>& o, void* st) {
    const int64_t chunks = (a.geom.n + kFamilyChunk - 1) / kFamilyChunk;
    if (chunks == 0) {
      CUVI_CUDA_CHECK(cudaMemsetAsync(sum, 0, sizeof(float), s(st)));
      return;
    }
    float* partial = nullptr;
    CUVI_CUDA_CHECK(cudaMallocAsync(&partial, static_cast<size_t>(chunks) * sizeof(float), s(st)));
    bool grads = o.gx != nullptr;
    for (int k = 0; k < NP; ++k) grads = grads || o.gp[k] != nullptr;
    if (grads)
      family_log_prob_sum_kernel<F, true><<<static_cast<unsigned>(chunks), kThreads, 0, s(st)>>>(a, coef, o, partial);
    else
      family_log_prob_sum_kernel<F, false><<<static_cast<unsigned>(chunks), kThreads, 0, s(st)>>>(a, coef, o, partial);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
    family_sum_partials_kernel<<<1, kThreads, 0, s(st)>>>(partial, chunks, coef, sum);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
    CUVI_CUDA_CHECK(cudaFreeAsync(partial, s(st)));
  }
  static void sample(const FamilyArgs<NP>& a, uint64_t seed, uint32_t offset, float* out, void* st) {
    if (a.geom.n == 0) return;
    family_sample_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, seed, offset, out);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static void sample_grad(const FamilyArgs<NP>& a, const float* g, const FamilyGrads<NP>& o, void* st) {
    if (a.geom.n == 0) return;
    family_sample_grad_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, g, o);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static void moments(const FamilyArgs<NP>& a, float* mean, float* var, void* st) {
    if (a.geom.n == 0) return;
    family_moments_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, mean, var);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static void validate(const FamilyArgs<NP>& a, bool values, const FamilyCheck& c, void* st) {
    if (a.geom.n == 0) return;
    family_validate_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, values, c);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static const FamilyCudaOps<NP>* ops() {
    static const FamilyCudaOps<NP> table{&log_prob, &log_prob_grad, &log_prob_sum, &sample,
                                         &sample_grad, &moments,   &validate};
    return &table;
  }
};

}  // namespace cuvi::kern::cuda

#define CUVI_CONCAT_INNER(a, b) a##b
#define CUVI_CONCAT(a, b) CUVI_CONCAT_INNER(a, b)
// Registers the CUDA kernels of family F (in a .cu file of the program).
#define CUVI_REGISTER_CUDA_FAMILY(F)                                                        \
  static const bool CUVI_CONCAT(cuvi_family_registered_, __COUNTER__) = [] {               \
    ::cuvi::kern::FamilyRegistry<F>::cuda = ::cuvi::kern::cuda::FamilyLaunch<F>::ops();    \
    return true;                                                                            \
  }()
