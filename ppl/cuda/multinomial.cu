// CUDA kernels of OneHotCategorical and Multinomial (probs and logits) and
// the row validation of RelaxedOneHotCategorical: the generic row kernels
// of kern::CountRowsBody (kernels/dist/multinomial.hpp). Their sampling is
// Categorical's row sampler (categorical_mvn.cu).
#include "../../kernels/cuda/rows_kernels.cuh"
#include "../../kernels/dist/multinomial.hpp"

namespace cuvi::dist::detail {

void register_cuda_multinomial() {
  namespace k = cuvi::kern;
  k::RowsRegistry<k::OneHotCategoricalProbsBody>::cuda = k::cuda::RowsLaunch<k::OneHotCategoricalProbsBody>::ops();
  k::RowsRegistry<k::OneHotCategoricalLogitsBody>::cuda = k::cuda::RowsLaunch<k::OneHotCategoricalLogitsBody>::ops();
  k::RowsRegistry<k::MultinomialProbsBody>::cuda = k::cuda::RowsLaunch<k::MultinomialProbsBody>::ops();
  k::RowsRegistry<k::MultinomialLogitsBody>::cuda = k::cuda::RowsLaunch<k::MultinomialLogitsBody>::ops();
  k::RowsRegistry<k::RelaxedProbsBody>::cuda = k::cuda::RowsLaunch<k::RelaxedProbsBody>::ops();
  k::RowsRegistry<k::RelaxedLogitsBody>::cuda = k::cuda::RowsLaunch<k::RelaxedLogitsBody>::ops();
}

}  // namespace cuvi::dist::detail
