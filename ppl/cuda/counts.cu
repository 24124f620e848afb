// CUDA kernels of Binomial (probs and logits), Geometric and NegativeBinomial.
// One translation unit per group of families (see ../dist_cuda_register.cpp),
// so that they compile in parallel.
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/dist/counts.hpp"

namespace cuvi::dist::detail {

void register_cuda_counts() {
  namespace k = cuvi::kern;
  k::FamilyRegistry<k::Binomial>::cuda = k::cuda::FamilyLaunch<k::Binomial>::ops();
  k::FamilyRegistry<k::BinomialLogits>::cuda = k::cuda::FamilyLaunch<k::BinomialLogits>::ops();
  k::FamilyRegistry<k::Geometric>::cuda = k::cuda::FamilyLaunch<k::Geometric>::ops();
  k::FamilyRegistry<k::NegativeBinomial>::cuda = k::cuda::FamilyLaunch<k::NegativeBinomial>::ops();
}

}  // namespace cuvi::dist::detail
