// CUDA kernels of Gamma and Exponential.
// One translation unit per group of families (see ../dist_cuda_register.cpp),
// so that they compile in parallel.
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/dist/gamma.hpp"
#include "../../kernels/dist/exponential.hpp"

namespace cuvi::dist::detail {

void register_cuda_gamma() {
  namespace k = cuvi::kern;
  k::FamilyRegistry<k::Gamma>::cuda = k::cuda::FamilyLaunch<k::Gamma>::ops();
  k::FamilyRegistry<k::Exponential>::cuda = k::cuda::FamilyLaunch<k::Exponential>::ops();
}

}  // namespace cuvi::dist::detail
