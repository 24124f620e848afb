// cuvi kernels: Normal(loc, scale), per-element math (PyTorch parameterisation).
#pragma once

#include "loc_scale.hpp"

namespace cuvi::kern {

struct Normal : LocScaleOnReals {
  static constexpr const char* kName = "Normal";

  // log N(x; m, s) = -z^2/2 - log s - log sqrt(2 pi),  z = (x - m)/s
  CUVI_HD static float log_prob(float x, const float* p) {
    const float z = (x - p[0]) / p[1];
    return -0.5f * z * z - log_f(p[1]) - kLogSqrt2Pi;
  }
  // d/dx = -z/s, d/dloc = z/s, d/dscale = (z^2 - 1)/s
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float s = p[1];
    const float z = (x - p[0]) / s;
    const float zs = z / s;
    *dx = -zs;
    dp[0] = zs;
    dp[1] = (z * z - 1.0f) / s;
    return -0.5f * z * z - log_f(s) - kLogSqrt2Pi;
  }
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    return p[0] + p[1] * rng.normal();
  }
  // sample_grad (LocScaleOnReals): x = loc + scale * eps, dx/dscale = eps = (x - loc)/scale
  CUVI_HD static float mean(const float* p) { return p[0]; }
  CUVI_HD static float variance(const float* p) { return p[1] * p[1]; }
};

}  // namespace cuvi::kern
