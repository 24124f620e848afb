// CUDA kernels of Categorical (probs and logits) and MultivariateNormal.
// One translation unit per group of families (see ../dist_cuda_register.cpp),
// so that they compile in parallel.
#include "../../kernels/cuda/family_kernels.cuh"
#include "../../kernels/cuda/row_family_kernels.cuh"
#include "../../kernels/dist/categorical.hpp"
#include "../../kernels/cuda/rows_kernels.cuh"
#include "../../kernels/dist/mvn.hpp"

namespace cuvi::dist::detail {

void register_cuda_categorical_mvn() {
  namespace k = cuvi::kern;
  k::cuda::RowFamilyLaunch<k::CategoricalLogits>::register_ops();
  k::cuda::RowFamilyLaunch<k::CategoricalProbs>::register_ops();
  k::RowsRegistry<k::MvnBody>::cuda = k::cuda::RowsLaunch<k::MvnBody>::ops();
}

}  // namespace cuvi::dist::detail
