// CUDA kernels of the built-in elementwise and row families.
#include "../kernels/cuda/family_kernels.cuh"
#include "../kernels/cuda/row_family_kernels.cuh"
#include "../kernels/dist/categorical.hpp"
#include "../kernels/dist/dirichlet.hpp"
#include "../kernels/dist/mvn.hpp"
#include "distributions.hpp"

namespace cuvi::dist::detail {

void register_builtin_cuda_families() {
  namespace k = cuvi::kern;
  k::FamilyRegistry<k::Normal>::cuda = k::cuda::FamilyLaunch<k::Normal>::ops();
  k::FamilyRegistry<k::LogNormal>::cuda = k::cuda::FamilyLaunch<k::LogNormal>::ops();
  k::FamilyRegistry<k::Laplace>::cuda = k::cuda::FamilyLaunch<k::Laplace>::ops();
  k::FamilyRegistry<k::Exponential>::cuda = k::cuda::FamilyLaunch<k::Exponential>::ops();
  k::FamilyRegistry<k::Gamma>::cuda = k::cuda::FamilyLaunch<k::Gamma>::ops();
  k::FamilyRegistry<k::Beta>::cuda = k::cuda::FamilyLaunch<k::Beta>::ops();
  k::FamilyRegistry<k::StudentT>::cuda = k::cuda::FamilyLaunch<k::StudentT>::ops();
  k::FamilyRegistry<k::Poisson>::cuda = k::cuda::FamilyLaunch<k::Poisson>::ops();
  k::FamilyRegistry<k::BernoulliProbs>::cuda = k::cuda::FamilyLaunch<k::BernoulliProbs>::ops();
  k::FamilyRegistry<k::BernoulliLogits>::cuda = k::cuda::FamilyLaunch<k::BernoulliLogits>::ops();
  k::FamilyRegistry<k::Uniform>::cuda = k::cuda::FamilyLaunch<k::Uniform>::ops();
  k::cuda::RowFamilyLaunch<k::Dirichlet>::register_ops();
  k::cuda::RowFamilyLaunch<k::CategoricalLogits>::register_ops();
  k::cuda::RowFamilyLaunch<k::CategoricalProbs>::register_ops();
  k::RowsRegistry<k::MvnBody>::cuda = k::cuda::RowsLaunch<k::MvnBody>::ops();
}

}  // namespace cuvi::dist::detail
