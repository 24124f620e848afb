// The GPU half of the consumer's family, compiled by nvcc against the
// installed kernel headers.
#include <kernels/cuda/family_kernels.cuh>

#include "gumbel.hpp"

CUVI_REGISTER_CUDA_FAMILY(consumer::GumbelFamily);

namespace consumer {
bool gumbel_has_cuda_kernels() { return cuvi::kern::FamilyRegistry<GumbelFamily>::cuda != nullptr; }
}  // namespace consumer
