// CUDA kernels of Laplace and Uniform.
// One translation unit per group of families (see ../dist_cuda_register.cpp),
// so that they compile in parallel.
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/dist/laplace.hpp"
#include "../../kernels/dist/uniform.hpp"

namespace cuvi::dist::detail {

void register_cuda_laplace_uniform() {
  namespace k = cuvi::kern;
  k::FamilyRegistry<k::Laplace>::cuda = k::cuda::FamilyLaunch<k::Laplace>::ops();
  k::FamilyRegistry<k::Uniform>::cuda = k::cuda::FamilyLaunch<k::Uniform>::ops();
}

}  // namespace cuvi::dist::detail
