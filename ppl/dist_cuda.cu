// CUDA kernels of the built-in elementwise families.
#include "../kernels/cuda/family_kernels.cuh"
#include "distributions.hpp"

namespace cuvi::dist::detail {

void register_builtin_cuda_families() {
  using namespace cuvi::kern;
  FamilyRegistry<Normal>::cuda = cuda::FamilyLaunch<Normal>::ops();
  FamilyRegistry<LogNormal>::cuda = cuda::FamilyLaunch<LogNormal>::ops();
  FamilyRegistry<Laplace>::cuda = cuda::FamilyLaunch<Laplace>::ops();
  FamilyRegistry<Exponential>::cuda = cuda::FamilyLaunch<Exponential>::ops();
  FamilyRegistry<Gamma>::cuda = cuda::FamilyLaunch<Gamma>::ops();
  FamilyRegistry<Beta>::cuda = cuda::FamilyLaunch<Beta>::ops();
  FamilyRegistry<StudentT>::cuda = cuda::FamilyLaunch<StudentT>::ops();
  FamilyRegistry<Poisson>::cuda = cuda::FamilyLaunch<Poisson>::ops();
  FamilyRegistry<BernoulliProbs>::cuda = cuda::FamilyLaunch<BernoulliProbs>::ops();
  FamilyRegistry<BernoulliLogits>::cuda = cuda::FamilyLaunch<BernoulliLogits>::ops();
  FamilyRegistry<Uniform>::cuda = cuda::FamilyLaunch<Uniform>::ops();
}

}  // namespace cuvi::dist::detail
