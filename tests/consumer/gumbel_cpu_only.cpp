// Without CUDA in the package, the family has CPU kernels only.
#include "gumbel.hpp"

namespace consumer {
bool gumbel_has_cuda_kernels() { return false; }
}  // namespace consumer
