// CUDA kernels of Beta.
// One translation unit per group of families (see ../dist_cuda_register.cpp),
// so that they compile in parallel.
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/dist/beta.hpp"

namespace cuvi::dist::detail {

void register_cuda_beta() {
  namespace k = cuvi::kern;
  k::FamilyRegistry<k::Beta>::cuda = k::cuda::FamilyLaunch<k::Beta>::ops();
}

}  // namespace cuvi::dist::detail
