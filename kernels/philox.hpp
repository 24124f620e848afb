// Philox4x32-10 counter-based RNG (Salmon et al., SC'11), identical on host
// and device. A draw is addressed, never sequenced: element i of random op
// number `offset` under `seed` uses counter (i_lo, i_hi, offset, block) and key
// (seed_lo, seed_hi). `block` is private to the element, so a rejection
// sampler may consume any number of blocks without touching its neighbours.
#pragma once

#include "common.hpp"

namespace cuvi::kern {

struct Philox4 {
  uint32_t v[4];
};

CUVI_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

CUVI_HD Philox4 philox4x32_10(Philox4 c, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
CUVI_UNROLL
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += W0;
      k1 += W1;
    }
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(M0, c.v[0], &hi0);
    const uint32_t lo1 = mulhilo32(M1, c.v[2], &hi1);
    c = Philox4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
  }
  return c;
}

// Uniform in the open interval (0, 1): 24 random bits with the lowest forced
// to one, so neither 0 nor 1 can occur and the value is exact in float32.
CUVI_HD float u01_open(uint32_t x) { return static_cast<float>((x >> 8) | 1u) * 5.9604644775390625e-8f; }

// Per-element stream: 4 words per Philox call, refilled from the next block.
struct ElemRng {
  uint32_t k0, k1, c0, c1, c2, block;
  uint32_t buf[4];
  int pos;
  float spare;
  bool has_spare;

  CUVI_HD ElemRng(uint64_t seed, uint64_t elem, uint32_t offset)
      : k0(static_cast<uint32_t>(seed)),
        k1(static_cast<uint32_t>(seed >> 32)),
        c0(static_cast<uint32_t>(elem)),
        c1(static_cast<uint32_t>(elem >> 32)),
        c2(offset),
        block(0),
        buf{0, 0, 0, 0},
        pos(4),
        spare(0.f),
        has_spare(false) {}

  CUVI_HD uint32_t next_u32() {
    if (pos == 4) {
      const Philox4 r = philox4x32_10(Philox4{{c0, c1, c2, block}}, k0, k1);
      ++block;
      buf[0] = r.v[0];
      buf[1] = r.v[1];
      buf[2] = r.v[2];
      buf[3] = r.v[3];
      pos = 0;
    }
    // A chain of selects, not buf[pos]: an array indexed by a value only
    // known at run time (a rejection sampler's) lives in a GPU thread's
    // local memory; four scalars stay in registers.
    const uint32_t v = pos == 0 ? buf[0] : pos == 1 ? buf[1] : pos == 2 ? buf[2] : buf[3];
    ++pos;
    return v;
  }

  CUVI_HD float uniform() { return u01_open(next_u32()); }

  // Box-Muller with the accurate logf/sinf/cosf on both sides (the fast
  // __sincosf would differ from the host). The second normal is kept.
  CUVI_HD float normal() {
    if (has_spare) {
      has_spare = false;
      return spare;
    }
    const float u1 = uniform();
    const float u2 = uniform();
    const float r = ::sqrtf(-2.0f * ::logf(u1));
    const float th = 2.0f * kPi * u2;
    spare = r * ::sinf(th);
    has_spare = true;
    return r * ::cosf(th);
  }
};

}  // namespace cuvi::kern
