// CUDA kernels of Cauchy, HalfCauchy and HalfNormal.
// One translation unit per group of families (see ../dist_cuda_register.cpp),
// so that they compile in parallel.
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/dist/cauchy.hpp"

namespace cuvi::dist::detail {

void register_cuda_cauchy_halfs() {
  namespace k = cuvi::kern;
  k::FamilyRegistry<k::Cauchy>::cuda = k::cuda::FamilyLaunch<k::Cauchy>::ops();
  k::FamilyRegistry<k::HalfCauchy>::cuda = k::cuda::FamilyLaunch<k::HalfCauchy>::ops();
  k::FamilyRegistry<k::HalfNormal>::cuda = k::cuda::FamilyLaunch<k::HalfNormal>::ops();
}

}  // namespace cuvi::dist::detail
