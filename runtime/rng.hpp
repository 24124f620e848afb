// The global (per-thread) generator: a seed and the next op offset. Every
// random op takes one offset, so draw i of that op is Philox at counter
// (i, offset) under key seed on every backend.
#pragma once

#include <cstdint>

namespace cuvi {

struct RngState {
  uint64_t seed = 0;
  uint32_t offset = 0;
};

void set_seed(uint64_t seed);
RngState get_rng_state();
void set_rng_state(RngState s);
// Returns the state to use for one random op and advances the offset.
RngState next_rng();

}  // namespace cuvi
