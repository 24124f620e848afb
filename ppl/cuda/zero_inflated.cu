// CUDA kernels of ZeroInflatedPoisson and ZeroInflatedNegativeBinomial, with
// gates as probabilities or logits (see ../dist_cuda_register.cpp).
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/dist/compound.hpp"

namespace cuvi::dist::detail {

void register_cuda_zero_inflated() {
  namespace k = cuvi::kern;
  k::FamilyRegistry<k::ZeroInflatedPoisson>::cuda = k::cuda::FamilyLaunch<k::ZeroInflatedPoisson>::ops();
  k::FamilyRegistry<k::ZeroInflatedPoissonLogits>::cuda = k::cuda::FamilyLaunch<k::ZeroInflatedPoissonLogits>::ops();
  k::FamilyRegistry<k::ZeroInflatedNegativeBinomial>::cuda =
      k::cuda::FamilyLaunch<k::ZeroInflatedNegativeBinomial>::ops();
  k::FamilyRegistry<k::ZeroInflatedNegativeBinomialLogits>::cuda =
      k::cuda::FamilyLaunch<k::ZeroInflatedNegativeBinomialLogits>::ops();
}

}  // namespace cuvi::dist::detail
