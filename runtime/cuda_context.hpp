// What code outside the CUDA backend (distribution launchers, user kernels)
// needs to queue work on a device: its stream and its deferred-error flag.
// Opaque types so that this header compiles without the CUDA toolkit.
#pragma once

namespace cuvi {

// The device's stream as a cudaStream_t cast to void*; throws DeviceError
// when the device is not usable.
void* cuda_stream(int device);

}  // namespace cuvi
