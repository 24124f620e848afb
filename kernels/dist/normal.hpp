// cuvi kernels: Normal(loc, scale), per-element math (PyTorch parameterisation).
#pragma once

#include "support.hpp"

namespace cuvi::kern {

struct Normal {
  static constexpr const char* kName = "Normal";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kReal;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "loc" : (i == 1 ? "scale" : ""); }
  CUVI_HD static int bad_param(const float* p) {
    if (!check::real(p[0])) return 0;
    if (!check::positive(p[1])) return 1;
    return -1;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return check::real_value(x); }

  // log N(x; m, s) = -z^2/2 - log s - log sqrt(2 pi),  z = (x - m)/s
  CUVI_HD static float log_prob(float x, const float* p) {
    const float z = (x - p[0]) / p[1];
    return -0.5f * z * z - ::logf(p[1]) - kLogSqrt2Pi;
  }
  // d/dx = -z/s, d/dloc = z/s, d/dscale = (z^2 - 1)/s
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float s = p[1];
    const float z = (x - p[0]) / s;
    const float zs = z / s;
    *dx = -zs;
    dp[0] = zs;
    dp[1] = (z * z - 1.0f) / s;
    return -0.5f * z * z - ::logf(s) - kLogSqrt2Pi;
  }
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    return p[0] + p[1] * rng.normal();
  }
  // x = loc + scale * eps: dx/dloc = 1, dx/dscale = eps = (x - loc)/scale
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    dxdp[0] = 1.0f;
    dxdp[1] = (x - p[0]) / p[1];
  }
  CUVI_HD static float mean(const float* p) { return p[0]; }
  CUVI_HD static float variance(const float* p) { return p[1] * p[1]; }
};

}  // namespace cuvi::kern
