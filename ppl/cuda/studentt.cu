// CUDA kernels of StudentT.
// One translation unit per group of families (see ../dist_cuda_register.cpp),
// so that they compile in parallel.
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/dist/studentt.hpp"

namespace cuvi::dist::detail {

void register_cuda_studentt() {
  namespace k = cuvi::kern;
  k::FamilyRegistry<k::StudentT>::cuda = k::cuda::FamilyLaunch<k::StudentT>::ops();
}

}  // namespace cuvi::dist::detail
