// cuvi kernels: Poisson(rate).
#pragma once

#include "support.hpp"

namespace cuvi::kern {

struct Poisson {
  static constexpr const char* kName = "Poisson";
  static constexpr int kNumParams = 1;
  static constexpr bool kHasRsample = false;
  static constexpr bool kDiscrete = true;
  static constexpr int kSupport = support::kNonNegInteger;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "rate" : ""; }
  // rate >= 0 and finite (rate 0 is the point mass at 0, as PyTorch).
  CUVI_HD static int bad_param(const float* p) { return (p[0] >= 0.0f && p[0] <= kFltMax) ? -1 : 0; }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return check::nonneg_integer(x); }

  // log p = x log(rate) - rate - lgamma(x + 1).
  // For x >= 10, with lgamma(x+1) = (x + 1/2) log x - x + log(2 pi)/2 + s(x):
  //   log p = x (log1p(d) - d) - log(2 pi x)/2 - s(x),  d = (rate - x)/x,
  // which avoids the cancellation of x log(rate) against lgamma(x+1)
  // (190 - 153 for x = 51).
  CUVI_HD static float log_prob(float x, const float* p) {
    const float r = p[0];
    if (!check::nonneg_integer(x)) return -kInfF;
    if (x == 0.0f) return -r;
    if (!(r > 0.0f)) return -kInfF;
    if (x < 10.0f) return x * ::logf(r) - r - lgamma_f(x + 1.0f);
    const float d = (r - x) / x;
    return x * (::log1pf(d) - d) - 0.5f * ::logf(2.0f * kPi * x) - stirling_corr_f(x);
  }
  // d/drate = x/rate - 1 = (x - rate)/rate; value gradient 0 (discrete).
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float r = p[0];
    *dx = 0.0f;
    if (!check::nonneg_integer(x)) {
      dp[0] = 0.0f;
    } else {
      dp[0] = x == 0.0f ? -1.0f : (x - r) / r;
    }
    return log_prob(x, p);
  }

  // rate < 10: sequential inversion in double (at most ~40 steps; the double
  // CDF reaches any float uniform < 1 - 2^-24 long before it stalls).
  // rate >= 10: PTRS, the transformed rejection of Hormann (1993), with its
  // squeeze and an exact acceptance test on log pmf (double).
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const double mu = p[0];
    if (!(mu > 0.0)) return mu == 0.0 ? 0.0f : quiet_nan_f();
    if (mu < 10.0) {
      const double u = rng.uniform();
      double pk = ::exp(-mu);
      double cdf = pk;
      int k = 0;
      while (u > cdf && k < 1000) {
        ++k;
        pk *= mu / k;
        cdf += pk;
        if (pk < 1e-300) break;
      }
      return static_cast<float>(k);
    }
    const double smu = ::sqrt(mu);
    const double b = 0.931 + 2.53 * smu;
    const double a = -0.059 + 0.02483 * b;
    const double inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    const double vr = 0.9277 - 3.6224 / (b - 2.0);
    const double lmu = ::log(mu);
    for (int it = 0; it < 10000; ++it) {
      const double u = static_cast<double>(rng.uniform()) - 0.5;
      const double v = rng.uniform();
      const double us = 0.5 - ::fabs(u);
      const double k = ::floor((2.0 * a / us + b) * u + mu + 0.43);
      if (us >= 0.07 && v <= vr) return static_cast<float>(k);
      if (k < 0.0 || (us < 0.013 && v > us)) continue;
      if (::log(v) + ::log(inv_alpha) - ::log(a / (us * us) + b) <= -mu + k * lmu - lgamma_d(k + 1.0))
        return static_cast<float>(k);
    }
    return quiet_nan_f();
  }
  CUVI_HD static void sample_grad(float, const float*, float* dxdp) { dxdp[0] = 0.0f; }
  CUVI_HD static float mean(const float* p) { return p[0]; }
  CUVI_HD static float variance(const float* p) { return p[0]; }
};

}  // namespace cuvi::kern
