// cuvi kernels: Laplace(loc, scale).
#pragma once

#include "loc_scale.hpp"

namespace cuvi::kern {

struct Laplace : LocScaleOnReals {
  static constexpr const char* kName = "Laplace";

  // log p = -log(2 s) - |x - loc|/s
  CUVI_HD static float log_prob(float x, const float* p) {
    return -kLog2 - ::logf(p[1]) - ::fabsf(x - p[0]) / p[1];
  }
  // d/dx = -sign(x - loc)/s, d/dloc = sign/s, d/dscale = (|x - loc|/s - 1)/s;
  // sign(0) = 0 as in PyTorch.
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float s = p[1];
    const float d = x - p[0];
    const float a = ::fabsf(d) / s;
    const float sg = d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f);
    *dx = -sg / s;
    dp[0] = sg / s;
    dp[1] = (a - 1.0f) / s;
    return -kLog2 - ::logf(s) - a;
  }
  // Inverse CDF: u in (-1/2, 1/2) (never 0 for the (0,1) uniforms of ElemRng),
  // x = loc - scale sign(u) log1p(-2|u|).
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const float u = rng.uniform() - 0.5f;
    const float e = -::log1pf(-2.0f * ::fabsf(u));
    return u < 0.0f ? p[0] - p[1] * e : p[0] + p[1] * e;
  }
  CUVI_HD static float mean(const float* p) { return p[0]; }
  CUVI_HD static float variance(const float* p) { return 2.0f * p[1] * p[1]; }
};

}  // namespace cuvi::kern
