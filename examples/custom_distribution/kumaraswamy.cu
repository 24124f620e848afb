// The GPU half of the custom family: instantiate and register its kernels.
#include <kernels/cuda/family_kernels.cuh>

#include "kumaraswamy.hpp"

CUVI_REGISTER_CUDA_FAMILY(custom::KumaraswamyFamily);
