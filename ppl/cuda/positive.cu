// CUDA kernels of InverseGamma and Weibull.
// One translation unit per group of families (see ../dist_cuda_register.cpp),
// so that they compile in parallel.
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/dist/positive.hpp"

namespace cuvi::dist::detail {

void register_cuda_positive() {
  namespace k = cuvi::kern;
  k::FamilyRegistry<k::InverseGamma>::cuda = k::cuda::FamilyLaunch<k::InverseGamma>::ops();
  k::FamilyRegistry<k::Weibull>::cuda = k::cuda::FamilyLaunch<k::Weibull>::ops();
}

}  // namespace cuvi::dist::detail
