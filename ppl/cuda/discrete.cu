// CUDA kernels of Poisson and Bernoulli (probs and logits).
// One translation unit per group of families (see ../dist_cuda_register.cpp),
// so that they compile in parallel.
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/dist/bernoulli.hpp"
#include "../../kernels/dist/poisson.hpp"

namespace cuvi::dist::detail {

void register_cuda_discrete() {
  namespace k = cuvi::kern;
  k::FamilyRegistry<k::Poisson>::cuda = k::cuda::FamilyLaunch<k::Poisson>::ops();
  k::FamilyRegistry<k::BernoulliProbs>::cuda = k::cuda::FamilyLaunch<k::BernoulliProbs>::ops();
  k::FamilyRegistry<k::BernoulliLogits>::cuda = k::cuda::FamilyLaunch<k::BernoulliLogits>::ops();
}

}  // namespace cuvi::dist::detail
