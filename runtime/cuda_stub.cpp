// Linked instead of the CUDA backend when cuvi is built without CUDA.
#include "backend.hpp"
#include "cuda_context.hpp"
#include "error.hpp"

namespace cuvi {
bool cuda_built() { return false; }
Backend* cuda_backend(int) { return nullptr; }
int cuda_backend_device_count() { return 0; }
void* cuda_stream(int device) {
  CUVI_THROW(DeviceError, "cuda:" << device << " requested but cuvi was built without CUDA");
}
}  // namespace cuvi
