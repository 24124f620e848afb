// CUDA kernels of VonMises, ContinuousBernoulli and RelaxedBernoulli (probs
// and logits forms). One translation unit per group of families (see
// ../dist_cuda_register.cpp), so that they compile in parallel.
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/dist/unit_interval.hpp"
#include "../../kernels/dist/vonmises.hpp"

namespace cuvi::dist::detail {

void register_cuda_vonmises_relaxed() {
  namespace k = cuvi::kern;
  k::FamilyRegistry<k::VonMises>::cuda = k::cuda::FamilyLaunch<k::VonMises>::ops();
  k::FamilyRegistry<k::ContinuousBernoulliProbs>::cuda = k::cuda::FamilyLaunch<k::ContinuousBernoulliProbs>::ops();
  k::FamilyRegistry<k::ContinuousBernoulliLogits>::cuda = k::cuda::FamilyLaunch<k::ContinuousBernoulliLogits>::ops();
  k::FamilyRegistry<k::RelaxedBernoulliProbs>::cuda = k::cuda::FamilyLaunch<k::RelaxedBernoulliProbs>::ops();
  k::FamilyRegistry<k::RelaxedBernoulliLogits>::cuda = k::cuda::FamilyLaunch<k::RelaxedBernoulliLogits>::ops();
}

}  // namespace cuvi::dist::detail
