// cuvi kernels: Gamma(concentration, rate), and the standard Gamma sampler
// shared with Beta, StudentT and Dirichlet.
#pragma once

#include "support.hpp"

namespace cuvi::kern {

// log of a standard Gamma(a) draw (Marsaglia & Tsang 2000).
// d = a' - 1/3, c = 1/sqrt(9 d); draw n ~ N(0,1), v = (1 + c n)^3 (redraw if
// 1 + c n <= 0); accept if u < 1 - 0.0331 n^4 (squeeze, ~98% of draws at
// a' >= 1) or if log u < n^2/2 + d (1 - v + log v) (evaluated in double: for
// large d the bracket is O(c^2 n^2) and float would lose it). The result is
// d v. For a < 1 we sample a' = a + 1 and multiply by u^(1/a); the product is
// formed in logs, so tiny shapes (where the draw underflows float) keep an
// exact log. The rng is private to the element, so the variable number of
// draws is harmless. Returns NaN for a non-positive or NaN shape.
template <class Rng>
CUVI_HD float standard_gamma_log_f(float a, Rng& rng) {
  if (!(a > 0.0f) || !(a <= kFltMax)) return quiet_nan_f();
  // The proposal v = (1 + c n)^3 is formed in double: for large d, c n is
  // ~1/sqrt(9d) and rounding 1 + c n to float would perturb the acceptance
  // test by O(d * ulp * c n); in double the only rounding is of the result.
  const double ap = a < 1.0f ? static_cast<double>(a) + 1.0 : static_cast<double>(a);
  const double d = ap - 1.0 / 3.0;
  const double c = 1.0 / ::sqrt(9.0 * d);
  float logg = quiet_nan_f();
  for (int it = 0; it < 1000; ++it) {
    const double n = rng.normal();
    const double cn1 = 1.0 + c * n;
    if (!(cn1 > 0.0)) continue;
    const double v = cn1 * cn1 * cn1;
    const double u = rng.uniform();
    const double n2 = n * n;
    if (u < 1.0 - 0.0331 * n2 * n2 || ::log(u) < 0.5 * n2 + d * (1.0 - v + ::log(v))) {
      logg = static_cast<float>(::log(d * v));
      break;
    }
  }
  if (a < 1.0f) logg += ::logf(rng.uniform()) / a;
  return logg;
}

// Standard Gamma(a) draw, clamped below at the smallest normal float (as
// PyTorch does) so that log_prob and gradients of the draw stay finite.
template <class Rng>
CUVI_HD float standard_gamma_f(float a, Rng& rng) {
  float g = ::expf(standard_gamma_log_f(a, rng));
  if (g < kFltMin) g = kFltMin;
  return g;
}

struct Gamma {
  static constexpr const char* kName = "Gamma";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kPositive;  // x >= 0 accepted, as PyTorch

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "concentration" : (i == 1 ? "rate" : ""); }
  CUVI_HD static int bad_param(const float* p) { return check::first_nonpositive(p, 2); }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return x >= 0.0f; }

  // log(rate x) without going through a denormal or infinite product.
  CUVI_HD static float log_rx(float r, float x) {
    const float rx = r * x;
    return (rx >= kFltMin && rx <= kFltMax) ? ::logf(rx) : ::logf(r) + ::logf(x);
  }
  // log p = a log(rate) + (a-1) log x - rate x - lgamma(a)
  //       = a log(rate x) - log x - rate x - lgamma(a)   (fewer large terms)
  CUVI_HD static float log_prob(float x, const float* p) {
    const float a = p[0], r = p[1];
    if (!(x > 0.0f)) {
      if (x == 0.0f) return a < 1.0f ? kInfF : (a == 1.0f ? ::logf(r) : -kInfF);
      return -kInfF;
    }
    return a * log_rx(r, x) - ::logf(x) - r * x - lgamma_f(a);
  }
  // d/dx = (a-1)/x - rate, d/da = log(rate x) - psi(a), d/drate = a/rate - x
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float a = p[0], r = p[1];
    if (!(x > 0.0f)) {
      *dx = 0.0f;
      dp[0] = 0.0f;
      dp[1] = 0.0f;
      return log_prob(x, p);
    }
    const float lrx = log_rx(r, x);
    *dx = (a - 1.0f) / x - r;
    dp[0] = lrx - digamma_f(a);
    dp[1] = a / r - x;
    return a * lrx - ::logf(x) - r * x - lgamma_f(a);
  }
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const float lg = standard_gamma_log_f(p[0], rng);
    float x = ::expf(lg) / p[1];
    if (x < kFltMin) x = kFltMin;
    return x;
  }
  // x = g / rate, g ~ Gamma(a, 1): dx/da = (dg/da)(g = rate x) / rate with
  // dg/da from implicit reparameterisation of the standard Gamma CDF (double);
  // dx/drate = -x/rate.
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    const double r = p[1];
    const double g = static_cast<double>(x) * r;
    dxdp[0] = static_cast<float>(standard_gamma_grad_d(static_cast<double>(p[0]), g) / r);
    dxdp[1] = -x / p[1];
  }
  CUVI_HD static float mean(const float* p) { return p[0] / p[1]; }
  CUVI_HD static float variance(const float* p) { return p[0] / (p[1] * p[1]); }
};

}  // namespace cuvi::kern
