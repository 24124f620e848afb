// CUDA kernels for a row family F (kernels/dist/row_family.hpp): the generic
// row kernels of RowBody<F> (rows_kernels.cuh) plus sampling, one thread per
// row. Include from a .cu file and register with
// CUVI_REGISTER_CUDA_ROW_FAMILY(F).
#pragma once

#include "../dist/row_family.hpp"
#include "rows_kernels.cuh"

namespace cuvi::kern::cuda {

template <class F>
__global__ void row_sample_kernel(const RowArgs a, uint64_t seed, uint32_t offset, float* out, int64_t* idx,
                                  float* aux) {
  CUVI_GRID_STRIDE(r, a.geom.n) row_sample<F>(a, r, seed, offset, out, idx, aux);
}

template <class F>
__global__ void row_sample_grad_kernel(const RowArgs a, const float* aux, const float* g, float* gp) {
  CUVI_GRID_STRIDE(r, a.geom.n) row_sample_grad<F>(a, r, aux, g, gp);
}

template <class F>
struct RowFamilyLaunch {
  static cudaStream_t s(void* stream) { return static_cast<cudaStream_t>(stream); }

  static void sample(const RowArgs& a, uint64_t seed, uint32_t offset, float* out, int64_t* idx, float* aux,
                     void* st) {
    if (a.geom.n == 0) return;
    row_sample_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, seed, offset, out, idx, aux);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static void sample_grad(const RowArgs& a, const float* aux, const float* g, float* gp, void* st) {
    if (a.geom.n == 0) return;
    row_sample_grad_kernel<F><<<grid_for(a.geom.n), kThreads, 0, s(st)>>>(a, aux, g, gp);
    CUVI_CUDA_LAUNCH_CHECK(s(st));
  }
  static const RowFamilyCudaOps<F>* ops() {
    static const RowFamilyCudaOps<F> table{&sample, &sample_grad};
    return &table;
  }
  // Fills both registries: the family's (sampling) and its body's (log_prob,
  // backward, fused sum, validation).
  static bool register_ops() {
    RowsRegistry<RowBody<F>>::cuda = RowsLaunch<RowBody<F>>::ops();
    RowFamilyRegistry<F>::cuda = ops();
    return true;
  }
};

}  // namespace cuvi::kern::cuda

// Registers the CUDA kernels of row family F (in a .cu file of the program).
#define CUVI_REGISTER_CUDA_ROW_FAMILY(F)                                                    \
  static const bool CUVI_CONCAT(cuvi_row_family_registered_, __COUNTER__) = \
      ::cuvi::kern::cuda::RowFamilyLaunch<F>::register_ops()
