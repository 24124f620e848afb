// cuvi kernels: Cauchy(loc, scale), HalfCauchy(scale) and HalfNormal(scale)
// (PyTorch parameterisations), the usual heavy- and light-tailed priors on
// scales. All three are reparameterised by their inverse CDF / |N|.
// (NaN and inf come from special.hpp's namespace constants: a call to
// numeric_limits inside a CUVI_HD function needs nvcc's relaxed-constexpr
// flag, which a user's .cu including these headers may not pass.)
#pragma once

#include "loc_scale.hpp"

namespace cuvi::kern {

struct Cauchy : LocScaleOnReals {
  static constexpr const char* kName = "Cauchy";

  // log p = -log(pi s) - log1p(z^2), z = (x - loc)/s
  CUVI_HD static float log_prob(float x, const float* p) {
    const float z = (x - p[0]) / p[1];
    return -kLogPi - ::logf(p[1]) - ::log1pf(z * z);
  }
  // d/dx = -2z / (s (1 + z^2)), d/dloc = -d/dx, d/ds = (z^2 - 1) / (s (1 + z^2))
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float s = p[1];
    const float z = (x - p[0]) / s;
    const float q = 1.0f + z * z;
    *dx = -2.0f * z / (s * q);
    dp[0] = -*dx;
    dp[1] = (z * z - 1.0f) / (s * q);
    return -kLogPi - ::logf(s) - ::log1pf(z * z);
  }
  // Inverse CDF: x = loc + s tan(pi (u - 1/2)), u in the open (0, 1).
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    return p[0] + p[1] * ::tanf(kPi * (rng.uniform() - 0.5f));
  }
  // No moments, as PyTorch: mean NaN, variance inf.
  CUVI_HD static float mean(const float*) { return kNanF; }
  CUVI_HD static float variance(const float*) { return kInfF; }

  static constexpr float kLogPi = 1.14472988584940017414f;
};

// What the half-line families with one scale parameter share: the
// parameter, its check, and the positive support.
struct OneScaleOnPositives {
  static constexpr int kNumParams = 1;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kPositive;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "scale" : ""; }
  CUVI_HD static int bad_param(const float* p) { return check::positive(p[0]) ? -1 : 0; }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return check::positive(x); }
};

// |Cauchy(0, scale)|: log p = log(2/pi) - log s - log1p((x/s)^2), x > 0.
struct HalfCauchy : OneScaleOnPositives {
  static constexpr const char* kName = "HalfCauchy";

  CUVI_HD static float log_prob(float x, const float* p) {
    const float z = x / p[0];
    return kLog2OverPi - ::logf(p[0]) - ::log1pf(z * z);
  }
  // d/dx = -2z / (s (1 + z^2)), d/ds = (z^2 - 1) / (s (1 + z^2))
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float s = p[0];
    const float z = x / s;
    const float q = 1.0f + z * z;
    *dx = -2.0f * z / (s * q);
    dp[0] = (z * z - 1.0f) / (s * q);
    return kLog2OverPi - ::logf(s) - ::log1pf(z * z);
  }
  // Inverse CDF: x = s tan(pi u / 2), u in the open (0, 1).
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    return p[0] * ::tanf(0.5f * kPi * rng.uniform());
  }
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) { dxdp[0] = x / p[0]; }
  CUVI_HD static float mean(const float*) { return kInfF; }
  CUVI_HD static float variance(const float*) { return kInfF; }

  static constexpr float kLog2OverPi = -0.45158270528945486473f;  // log(2/pi)
};

// |Normal(0, scale)|: log p = log(2)/2 - log(pi)/2 - log s - z^2/2, z = x/s, x > 0.
struct HalfNormal : OneScaleOnPositives {
  static constexpr const char* kName = "HalfNormal";

  CUVI_HD static float log_prob(float x, const float* p) {
    const float z = x / p[0];
    return kHalfLog2OverPi - ::logf(p[0]) - 0.5f * z * z;
  }
  // d/dx = -z/s, d/ds = (z^2 - 1)/s
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float s = p[0];
    const float z = x / s;
    *dx = -z / s;
    dp[0] = (z * z - 1.0f) / s;
    return kHalfLog2OverPi - ::logf(s) - 0.5f * z * z;
  }
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    return p[0] * ::fabsf(rng.normal());
  }
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) { dxdp[0] = x / p[0]; }
  // s sqrt(2/pi) and s^2 (1 - 2/pi)
  CUVI_HD static float mean(const float* p) { return p[0] * 0.79788456080286535588f; }
  CUVI_HD static float variance(const float* p) { return p[0] * p[0] * 0.36338022763241865692f; }

  static constexpr float kHalfLog2OverPi = -0.22579135264472743236f;  // log(2/pi)/2
};

}  // namespace cuvi::kern
