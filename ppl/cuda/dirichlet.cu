// CUDA kernels of Dirichlet.
// One translation unit per group of families (see ../dist_cuda_register.cpp),
// so that they compile in parallel.
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/cuda/row_family_kernels.cuh"
#include "../../kernels/dist/dirichlet.hpp"

namespace cuvi::dist::detail {

void register_cuda_dirichlet() {
  namespace k = cuvi::kern;
  k::cuda::RowFamilyLaunch<k::Dirichlet>::register_ops();
}

}  // namespace cuvi::dist::detail
