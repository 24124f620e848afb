// CUDA kernels of Gumbel, Logistic, Pareto and Chi2.
// One translation unit per group of families (see ../dist_cuda_register.cpp),
// so that they compile in parallel.
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/dist/gumbel.hpp"
#include "../../kernels/dist/pareto.hpp"

namespace cuvi::dist::detail {

void register_cuda_gumbel_logistic_pareto() {
  namespace k = cuvi::kern;
  k::FamilyRegistry<k::Gumbel>::cuda = k::cuda::FamilyLaunch<k::Gumbel>::ops();
  k::FamilyRegistry<k::Logistic>::cuda = k::cuda::FamilyLaunch<k::Logistic>::ops();
  k::FamilyRegistry<k::Pareto>::cuda = k::cuda::FamilyLaunch<k::Pareto>::ops();
  k::FamilyRegistry<k::Chi2>::cuda = k::cuda::FamilyLaunch<k::Chi2>::ops();
}

}  // namespace cuvi::dist::detail
