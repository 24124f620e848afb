// The CPU backend's parallel loop.
#pragma once

#include <cstdint>

namespace cuvi::kern::cpu {

// body(i) for i in [0, n), split statically over the OpenMP threads when
// `parallel`. The serial path never enters an OpenMP region: libgomp builds
// a thread team (a heap allocation) on every region entry, even when an
// if-clause turns it serial, and that cost dominated the ops on the small
// tensors of an SVI step.
template <class Body>
inline void parallel_for(bool parallel, int64_t n, Body&& body) {
  if (parallel) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) body(i);
  } else {
    for (int64_t i = 0; i < n; ++i) body(i);
  }
}

}  // namespace cuvi::kern::cpu
