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
#include <optional>

#include "../dist/family.hpp"
#include "launch.cuh"

namespace cuvi::kern::cuda {

constexpr int kFamilyItems = 8;
constexpr int64_t kFamilyChunk = static_cast<int64_t>(kThreads) * kFamilyItems;

// Records a failed check (validate's result r, the offending number) in the
// deferred flag; the first thread to fail wins.
__device__ __forceinline__ void report_check(const FamilyCheck& c, int r, float bad) {
  const int code = r > 0 ? pick_at<8>(c.param_code, r - 1) : (r < 0 ? c.value_code : 0);
  if (code != 0 && atomicCAS(c.flag, 0, code) == 0 && c.bad) *c.bad = bad;
}

// With check.flag set, each element's parameters and value are validated as
// they are loaded for the density (no separate validation pass).
template <class F>
__global__ void family_log_prob_kernel(const FamilyArgs<F::kNumParams> a, float* out, const FamilyCheck check) {
  if (check.flag) {
    CUVI_GRID_STRIDE(i, a.geom.n) {
      float bad = 0.0f;
      int r = 0;
      out[i] = elem_log_prob_checked<F>(a, i, &r, &bad);
      if (r != 0) report_check(check, r, bad);
    }
  } else {
    CUVI_GRID_STRIDE(i, a.geom.n) out[i] = elem_log_prob<F>(a, i);
  }
}

template <class F>
__global__ void family_log_prob_grad_kernel(const FamilyArgs<F::kNumParams> a, const float* g, float coef, float* lp,
                                            const FamilyGrads<F::kNumParams> out) {
  CUVI_GRID_STRIDE(i, a.geom.n) {
    const float l = elem_log_prob_grad<F>(a, i, coef * (g ? g[i] : 1.0f), out);
    if (lp) lp[i] = l;
  }
}

// Each thread first loads its kFamilyItems elements' value and parameters,
// then computes and stores: the gradient stores may alias the inputs as far
// as the compiler knows, so loads interleaved with stores would leave only
// one element's loads in flight per thread. kFlat (FamilyArgs::flat())
// drops the broadcast index arithmetic. Either way the thread adds its
// elements in order j = 0..kFamilyItems-1: the same bits in every variant.
// With a single block (`single`), it writes coef * the sum into partial[0]
// itself (the sum's final value: the partials pass would add only zeros).
// With check.flag set, each loaded element is also validated (parameters and
// value), so validation costs no second read of the inputs.
template <class F, bool kGrads, bool kFlat>
__global__ void family_log_prob_sum_kernel(const FamilyArgs<F::kNumParams> a, float coef,
                                           const FamilyGrads<F::kNumParams> out, float* partial, bool single,
                                           const FamilyCheck check) {
  constexpr int NP = F::kNumParams;
  using BlockReduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename BlockReduce::TempStorage tmp;
  const int64_t base = static_cast<int64_t>(blockIdx.x) * kFamilyChunk + threadIdx.x;
  const int64_t n = a.geom.n;
  float xv[kFamilyItems], pv[kFamilyItems][NP];
#pragma unroll
  for (int j = 0; j < kFamilyItems; ++j) {
    const int64_t i = base + static_cast<int64_t>(j) * kThreads;
    if (i < n) {
      xv[j] = a.template value_at<kFlat>(i);
      a.template params_at<kFlat>(i, pv[j]);
    }
  }
  float acc = 0.0f;
#pragma unroll
  for (int j = 0; j < kFamilyItems; ++j) {
    const int64_t i = base + static_cast<int64_t>(j) * kThreads;
    if (i < n) {
      if (check.flag) {
        float bad = 0.0f;
        const int r = elem_validate_of<F>(xv[j], pv[j], true, &bad);
        if (r != 0) report_check(check, r, bad);
      }
      if constexpr (kGrads) acc += elem_log_prob_grad_of<F>(xv[j], pv[j], i, coef, out);
      else acc += F::log_prob(xv[j], pv[j]);
    }
  }
  const float r = BlockReduce(tmp).Sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = single ? coef * r : r;
}

// One block adds the partials in a fixed order and scales by coef. This
// header is part of several translation units of one program (the
// library's ppl/cuda/*.cu, a user's family), each with its own device
// module; a template (launched as family_sum_partials_kernel<>) may be
// defined in all of them. Its host stubs are weak symbols the linker may
// merge, which is harmless: every module holds the same device code.
template <int = 0>
__global__ void family_sum_partials_kernel(const float* partial, int64_t n, float coef, float* sum) {
  using BlockReduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename BlockReduce::TempStorage tmp;
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) acc += partial[i];
  const float r = BlockReduce(tmp).Sum(acc);
  if (threadIdx.x == 0) *sum = coef * r;
}

template <class F>
__global__ void family_sample_kernel(const FamilyArgs<F::kNumParams> a, uint64_t seed, uint32_t offset, float* out) {
  CUVI_GRID_STRIDE(i, a.geom.n) out[i] = elem_sample<F>(a, i, seed, offset);
}

template <class F>
__global__ void family_sample_grad_kernel(const FamilyArgs<F::kNumParams> a, const float* g,
                                          const FamilyGrads<F::kNumParams> out) {
  CUVI_GRID_STRIDE(i, a.geom.n) elem_sample_grad<F>(a, i, g, out);
}

template <class F>
__global__ void family_moments_kernel(const FamilyArgs<F::kNumParams> a, float* mean, float* var) {
  CUVI_GRID_STRIDE(i, a.geom.n) elem_moments<F>(a, i, mean, var);
}

template <class F>
__global__ void family_validate_kernel(const FamilyArgs<F::kNumParams> a, bool values, const FamilyCheck c) {
  CUVI_GRID_STRIDE(i, a.geom.n) {
    float bad = 0.0f;
    const int r = elem_validate<F>(a, i, values, &bad);
    if (r != 0) report_check(c, r, bad);
  }
}

template <class F>
struct FamilyLaunch {
  static constexpr int NP = F::kNumParams;
  static cudaStream_t s(void* stream) { return static_cast<cudaStream_t>(stream); }

  static void log_prob(const FamilyArgs<NP>& a, float* out, const FamilyCheck* check, void* st) {
    if (a.geom.n == 0) return;
    family_log_prob_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, out, check ? *check : FamilyCheck{});
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static void log_prob_grad(const FamilyArgs<NP>& a, const float* g, float coef, float* lp, const FamilyGrads<NP>& o,
                            void* st) {
    if (a.geom.n == 0) return;
    family_log_prob_grad_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, g, coef, lp, o);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static void log_prob_sum(const FamilyArgs<NP>& a, float coef, float* sum, const FamilyGrads<NP>& o,
                           const FamilyCheck* check, void* st) {
    const FamilyCheck c = check ? *check : FamilyCheck{};
    const int64_t chunks = (a.geom.n + kFamilyChunk - 1) / kFamilyChunk;
    if (chunks == 0) {
      CUVI_CUDA_CHECK(cudaMemsetAsync(sum, 0, sizeof(float), s(st)));
      return;
    }
    // One chunk (a small site): one launch writes the sum, no scratch.
    const bool single = chunks == 1;
    std::optional<AsyncScratch> scratch;
    if (!single) scratch.emplace(static_cast<size_t>(chunks) * sizeof(float), s(st));
    float* partial = single ? sum : scratch->as<float>();
    bool grads = o.gx != nullptr;
    for (int k = 0; k < NP; ++k) grads = grads || o.gp[k] != nullptr;
    const unsigned blocks = static_cast<unsigned>(chunks);
    const bool flat = a.flat();
    if (grads && flat)
      family_log_prob_sum_kernel<F, true, true><<<blocks, kThreads, 0, s(st)>>>(a, coef, o, partial, single, c);
    else if (grads)
      family_log_prob_sum_kernel<F, true, false><<<blocks, kThreads, 0, s(st)>>>(a, coef, o, partial, single, c);
    else if (flat)
      family_log_prob_sum_kernel<F, false, true><<<blocks, kThreads, 0, s(st)>>>(a, coef, o, partial, single, c);
    else
      family_log_prob_sum_kernel<F, false, false><<<blocks, kThreads, 0, s(st)>>>(a, coef, o, partial, single, c);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
    if (single) return;
    family_sum_partials_kernel<><<<1, kThreads, 0, s(st)>>>(partial, chunks, coef, sum);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
    scratch->free();
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
