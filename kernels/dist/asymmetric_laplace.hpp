// cuvi kernels: AsymmetricLaplace(loc, scale, asymmetry), Pyro's: with
// k = asymmetry, an exponential tail of scale s k left of loc and one of
// scale s / k right of it, joined continuously at the mode loc.
#pragma once

#include "support.hpp"

namespace cuvi::kern {

struct AsymmetricLaplace {
  static constexpr const char* kName = "AsymmetricLaplace";
  static constexpr int kNumParams = 3;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kReal;

  CUVI_HD static const char* param_name(int i) {
    return i == 0 ? "loc" : (i == 1 ? "scale" : (i == 2 ? "asymmetry" : ""));
  }
  CUVI_HD static int bad_param(const float* p) {
    const int b = check::first_bad_loc_scale(p);
    if (b >= 0) return b;
    return check::positive(p[2]) ? -1 : 2;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return check::real_value(x); }

  // log(k + 1/k) = log1p(k^2) - log k.
  CUVI_HD static float log_norm(float k) { return ::log1pf(k * k) - ::logf(k); }
  // With z = (x - loc)/s and slope a = k for z >= 0, -1/k for z < 0:
  // log p = -log s - log(k + 1/k) - a z.
  CUVI_HD static float log_prob(float x, const float* p) {
    const float z = (x - p[0]) / p[1], k = p[2];
    const float az = z >= 0.0f ? k * z : -z / k;
    return -::logf(p[1]) - log_norm(k) - az;
  }
  // d/dx = -a/s, d/dloc = a/s, d/ds = (a z - 1)/s,
  // d/dk = -(k^2 - 1)/(k (k^2 + 1)) - (z >= 0 ? z : z/k^2).
  // At z = 0 the value and loc gradients are 0, as autograd's of |z| in torch.
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float s = p[1], k = p[2];
    const float z = (x - p[0]) / s;
    const float a = z > 0.0f ? k : (z < 0.0f ? -1.0f / k : 0.0f);
    const float az = z >= 0.0f ? k * z : -z / k;
    *dx = -a / s;
    dp[0] = a / s;
    dp[1] = (az - 1.0f) / s;
    const float k2 = k * k;
    dp[2] = -(k2 - 1.0f) / (k * (k2 + 1.0f)) - (z >= 0.0f ? z : z / k2);
    return -::logf(s) - log_norm(k) - az;
  }
  // x = loc - s k E1 + (s / k) E2 for independent standard exponentials
  // (E = -log u, u in the open (0, 1)).
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const float e1 = -::logf(rng.uniform());
    const float e2 = -::logf(rng.uniform());
    return p[0] + p[1] * (e2 / p[2] - p[2] * e1);
  }
  // Implicit reparameterisation through the CDF F (F = k^2/(1+k^2) e^{z/k}
  // for z < 0, 1 - e^{-kz}/(1+k^2) above): dx/dloc = 1, dx/ds = z, and
  // dx/dk = -(dF/dk)/p = -s (|z|/k + 2/(1 + k^2)) on both sides.
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    const float s = p[1], k = p[2];
    const float z = (x - p[0]) / s;
    dxdp[0] = 1.0f;
    dxdp[1] = z;
    dxdp[2] = -s * (::fabsf(z) / k + 2.0f / (1.0f + k * k));
  }
  // mean loc + s (1/k - k); variance s^2 (k^2 + 1/k^2).
  CUVI_HD static float mean(const float* p) { return p[0] + p[1] * (1.0f / p[2] - p[2]); }
  CUVI_HD static float variance(const float* p) {
    const float k2 = p[2] * p[2];
    return p[1] * p[1] * (k2 + 1.0f / k2);
  }
};

}  // namespace cuvi::kern
