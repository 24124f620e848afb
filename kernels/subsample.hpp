// Minibatch indices without replacement in O(B) work: element i of the
// minibatch is pi(i), where pi is a keyed pseudo-random permutation of
// [0, N). pi is a balanced Feistel network on [0, 2^(2h)) (2^(2h) >= N) whose
// round function is Philox, restricted to [0, N) by cycle-walking: since the
// network is a bijection, re-applying it to a value >= N eventually lands in
// range, and distinct i give distinct results. Expected walks per index are
// below 4 (the domain is at most 4N). No permutation of N is ever built, and
// every index is computed independently (one thread each on the GPU).
#pragma once

#include "philox.hpp"

namespace cuvi::kern {

CUVI_HD uint64_t feistel_permute(uint64_t x, int half_bits, uint64_t seed, uint32_t offset) {
  const uint64_t mask = (half_bits >= 32) ? 0xFFFFFFFFull : ((1ull << half_bits) - 1ull);
  uint64_t left = (x >> half_bits) & mask;
  uint64_t right = x & mask;
  constexpr int kRounds = 8;
  for (int r = 0; r < kRounds; ++r) {
    const Philox4 f = philox4x32_10(
        Philox4{{static_cast<uint32_t>(right), static_cast<uint32_t>(r), offset, 0x5AB5A4E1u}},
        static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    const uint64_t nl = right;
    right = (left ^ static_cast<uint64_t>(f.v[0])) & mask;
    left = nl;
  }
  return (left << half_bits) | right;
}

CUVI_HD int subsample_half_bits(uint64_t n) {
  int bits = 2;
  while ((1ull << bits) < n && bits < 62) bits += 2;
  return bits / 2;
}

CUVI_HD int64_t subsample_index(int64_t i, int64_t n, int half_bits, uint64_t seed, uint32_t offset) {
  uint64_t x = static_cast<uint64_t>(i);
  do {
    x = feistel_permute(x, half_bits, seed, offset);
  } while (x >= static_cast<uint64_t>(n));
  return static_cast<int64_t>(x);
}

}  // namespace cuvi::kern
