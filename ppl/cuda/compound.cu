// CUDA kernels of BetaBinomial, GammaPoisson, NegativeBinomial (logits) and
// AsymmetricLaplace (see ../dist_cuda_register.cpp).
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/dist/asymmetric_laplace.hpp"
#include "../../kernels/dist/compound.hpp"

namespace cuvi::dist::detail {

void register_cuda_compound() {
  namespace k = cuvi::kern;
  k::FamilyRegistry<k::BetaBinomial>::cuda = k::cuda::FamilyLaunch<k::BetaBinomial>::ops();
  k::FamilyRegistry<k::GammaPoisson>::cuda = k::cuda::FamilyLaunch<k::GammaPoisson>::ops();
  k::FamilyRegistry<k::NegativeBinomialLogits>::cuda = k::cuda::FamilyLaunch<k::NegativeBinomialLogits>::ops();
  k::FamilyRegistry<k::AsymmetricLaplace>::cuda = k::cuda::FamilyLaunch<k::AsymmetricLaplace>::ops();
}

}  // namespace cuvi::dist::detail
