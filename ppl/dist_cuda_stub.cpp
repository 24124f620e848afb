// Without CUDA there is nothing to register.
#include "family_ops.hpp"

namespace cuvi::dist::detail {
void register_builtin_cuda_families() {}
}  // namespace cuvi::dist::detail
