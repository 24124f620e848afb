// CUDA kernels of Normal and LogNormal.
// One translation unit per group of families (see ../dist_cuda_register.cpp),
// so that they compile in parallel.
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/dist/normal.hpp"
#include "../../kernels/dist/lognormal.hpp"

namespace cuvi::dist::detail {

void register_cuda_normal() {
  namespace k = cuvi::kern;
  k::FamilyRegistry<k::Normal>::cuda = k::cuda::FamilyLaunch<k::Normal>::ops();
  k::FamilyRegistry<k::LogNormal>::cuda = k::cuda::FamilyLaunch<k::LogNormal>::ops();
}

}  // namespace cuvi::dist::detail
