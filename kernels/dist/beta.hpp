// cuvi kernels: Beta(concentration1, concentration0) = Beta(a, b).
#pragma once

#include "gamma.hpp"

namespace cuvi::kern {

struct Beta {
  static constexpr const char* kName = "Beta";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kUnitInterval;

  // Largest float below 1: samples are clamped to [kFltMin, kOneMinus].
  static constexpr float kOneMinus = 0.999999940395355224609375f;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "concentration1" : (i == 1 ? "concentration0" : ""); }
  CUVI_HD static int bad_param(const float* p) {
    if (!check::positive(p[0])) return 0;
    if (!check::positive(p[1])) return 1;
    return -1;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return x >= 0.0f && x <= 1.0f; }

  // log p = (a-1) log x + (b-1) log1p(-x) - lbeta(a, b)
  CUVI_HD static float log_prob(float x, const float* p) {
    const float a = p[0], b = p[1];
    if (!(x > 0.0f && x < 1.0f)) {
      if (x == 0.0f) return a < 1.0f ? kInfF : (a == 1.0f ? -lbeta<float>(a, b) : -kInfF);
      if (x == 1.0f) return b < 1.0f ? kInfF : (b == 1.0f ? -lbeta<float>(a, b) : -kInfF);
      return -kInfF;
    }
    return (a - 1.0f) * ::logf(x) + (b - 1.0f) * ::log1pf(-x) - lbeta<float>(a, b);
  }
  // d/dx = (a-1)/x - (b-1)/(1-x)
  // d/da = log x + psi(a+b) - psi(a),  d/db = log1p(-x) + psi(a+b) - psi(b)
  // (the digamma differences without cancellation: digamma_diff)
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float a = p[0], b = p[1];
    if (!(x > 0.0f && x < 1.0f)) {
      *dx = 0.0f;
      dp[0] = 0.0f;
      dp[1] = 0.0f;
      return log_prob(x, p);
    }
    const float lx = ::logf(x);
    const float l1x = ::log1pf(-x);
    *dx = (a - 1.0f) / x - (b - 1.0f) / (1.0f - x);
    dp[0] = lx + digamma_diff<float>(a, b);
    dp[1] = l1x + digamma_diff<float>(b, a);
    return (a - 1.0f) * lx + (b - 1.0f) * l1x - lbeta<float>(a, b);
  }
  // x = g1 / (g1 + g2), g1 ~ Gamma(a), g2 ~ Gamma(b) from the same private
  // rng; formed as sigmoid(log g1 - log g2) so tiny shapes (underflowing
  // gammas) keep the right ratio.
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const float l1 = standard_gamma_log_f(p[0], rng);
    const float l2 = standard_gamma_log_f(p[1], rng);
    float x = sigmoid_f(l1 - l2);
    if (x < kFltMin) x = kFltMin;
    if (x > kOneMinus) x = kOneMinus;
    return x;
  }
  // Implicit reparameterisation through the Beta CDF I_x(a, b) (double):
  // dx/da = -(dI/da) / pdf(x), dx/db = -(dI/db) / pdf(x).
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    const double a = p[0], b = p[1], xd = x;
    const double y = 1.0 - xd;  // exact for a float x
    if (!(xd > 0.0 && y > 0.0)) {
      dxdp[0] = 0.0f;
      dxdp[1] = 0.0f;
      return;
    }
    const double pdf = beta_pdf_d(a, b, xd, y);
    if (!(pdf > 0.0)) {
      dxdp[0] = 0.0f;
      dxdp[1] = 0.0f;
      return;
    }
    dxdp[0] = static_cast<float>(-beta_inc_da_d(a, b, xd) / pdf);
    dxdp[1] = static_cast<float>(-beta_inc_db_d(a, b, xd) / pdf);
  }
  CUVI_HD static float mean(const float* p) { return p[0] / (p[0] + p[1]); }
  CUVI_HD static float variance(const float* p) {
    const float n = p[0] + p[1];
    return p[0] * p[1] / (n * n * (n + 1.0f));
  }
};

}  // namespace cuvi::kern
