// cuvi kernels: StudentT(df, loc, scale).
#pragma once

#include "gamma.hpp"

namespace cuvi::kern {

// Pieces of the standard t CDF through the incomplete beta, in double.
// With z = df/(df + t^2), w = t^2/(df + t^2) = 1 - z:
//   F(t) = I_z(df/2, 1/2) / 2          for t <= 0,
//   F(t) = 1 - I_z(df/2, 1/2) / 2      for t > 0.
// studentt_tail_raw evaluates, with the continued fraction in the given
// orientation, G = I_z(df/2, 1/2) (direct) or G - 1 = -I_w(1/2, df/2), so a
// finite difference in df of either gives dG/ddf.
CUVI_HD double studentt_tail_raw_d(double df, double t2, bool direct) {
  const double den = df + t2;
  const double z = df / den, w = t2 / den;
  if (direct) return beta_inc_cf_raw_d(0.5 * df, 0.5, z, w);
  return -beta_inc_cf_raw_d(0.5, 0.5 * df, w, z);
}

// Implicit reparameterisation gradient dt/ddf of a standard t(df) sample t:
// dt/ddf = -(dF/ddf)/pdf(t), with dF/ddf = -sign(t) dG/ddf / 2 (central
// difference of G in df, step fd_step_d), pdf(t) =
// (1 + t^2/df)^(-(df+1)/2) / (sqrt(df) B(df/2, 1/2)).
CUVI_HD double studentt_dt_ddf_d(double df, double t) {
  if (t == 0.0 || !(t == t)) return 0.0;
  const double t2 = t * t;
  const double den = df + t2;
  const double z = df / den;
  const bool direct = beta_inc_direct(0.5 * df, 0.5, z);
  // Far in the tails G ~ z^(df/2): its log changes by log(z)/2 per unit df.
  const double h = fd_step_d(df, direct ? 0.5 * ::log(z) : 0.0);
  const double dG = (studentt_tail_raw_d(df + h, t2, direct) - studentt_tail_raw_d(df - h, t2, direct)) / (2.0 * h);
  const double dF = (t < 0.0 ? 0.5 : -0.5) * dG;
  const double logpdf = -lbeta<double>(0.5 * df, 0.5) - 0.5 * ::log(df) - 0.5 * (df + 1.0) * ::log1p(t2 / df);
  const double pdf = ::exp(logpdf);
  if (!(pdf > 0.0)) return 0.0;
  return -dF / pdf;
}

struct StudentT {
  static constexpr const char* kName = "StudentT";
  static constexpr int kNumParams = 3;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kReal;

  CUVI_HD static const char* param_name(int i) {
    return i == 0 ? "df" : (i == 1 ? "loc" : (i == 2 ? "scale" : ""));
  }
  CUVI_HD static int bad_param(const float* p) {
    if (!check::positive(p[0])) return 0;
    if (!check::real(p[1])) return 1;
    if (!check::positive(p[2])) return 2;
    return -1;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return check::real_value(x); }

  // log p = -lbeta(df/2, 1/2) - log(df)/2 - log(scale) - (df+1)/2 log1p(t^2/df),
  // t = (x - loc)/scale (lgamma((df+1)/2) - lgamma(df/2) - log(pi)/2 = -lbeta(df/2, 1/2) - ...
  // with lgamma(1/2) = log(pi)/2, and lbeta cancels the large terms for large df).
  CUVI_HD static float log_prob(float x, const float* p) {
    const float df = p[0], s = p[2];
    const float t = (x - p[1]) / s;
    return -lbeta<float>(0.5f * df, 0.5f) - 0.5f * ::logf(df) - ::logf(s) - 0.5f * (df + 1.0f) * ::log1pf(t * t / df);
  }
  // d/dt = -(df+1) t/(df + t^2); d/dx = d/dt / s; d/dloc = -d/dx;
  // d/dscale = ((df+1) t^2/(df + t^2) - 1)/s;
  // d/ddf = [psi((df+1)/2) - psi(df/2)]/2 - 1/(2 df) - log1p(t^2/df)/2
  //         + (df+1) t^2 / (2 df (df + t^2))
  // The df derivative is a sum of terms ~1e-2 that cancel to ~1e-4 for
  // moderate df, so it is evaluated in double.
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float df = p[0], s = p[2];
    const float t = (x - p[1]) / s;
    const float t2 = t * t;
    const float den = df + t2;
    const float dt = -(df + 1.0f) * t / den;
    *dx = dt / s;
    dp[1] = -dt / s;
    dp[2] = ((df + 1.0f) * t2 / den - 1.0f) / s;
    const double dfd = df;
    const double td = (static_cast<double>(x) - static_cast<double>(p[1])) / static_cast<double>(s);
    const double t2d = td * td;
    dp[0] = static_cast<float>(0.5 * digamma_diff<double>(0.5 * dfd, 0.5) - 0.5 / dfd - 0.5 * ::log1p(t2d / dfd) +
                               (dfd + 1.0) * t2d / (2.0 * dfd * (dfd + t2d)));
    return -lbeta<float>(0.5f * df, 0.5f) - 0.5f * ::logf(df) - ::logf(s) - 0.5f * (df + 1.0f) * ::log1pf(t2 / df);
  }
  // x = loc + scale * n * sqrt(df / chi2), chi2 = 2 Gamma(df/2): the ratio is
  // formed in logs (sqrt(df/chi2) = exp((log(df/2) - log g)/2)).
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const float df = p[0];
    const float n = rng.normal();
    const float lg = standard_gamma_log_f(0.5f * df, rng);
    const float t = n * ::expf(0.5f * (::logf(0.5f * df) - lg));
    return p[1] + p[2] * t;
  }
  // dx/ddf = scale * dt/ddf (implicit, through the t CDF), dx/dloc = 1,
  // dx/dscale = t = (x - loc)/scale.
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    const double s = p[2];
    const double t = (static_cast<double>(x) - static_cast<double>(p[1])) / s;
    dxdp[0] = static_cast<float>(s * studentt_dt_ddf_d(static_cast<double>(p[0]), t));
    dxdp[1] = 1.0f;
    dxdp[2] = static_cast<float>(t);
  }
  // As PyTorch: mean undefined (NaN) for df <= 1; variance inf for
  // 1 < df <= 2 and NaN for df <= 1.
  CUVI_HD static float mean(const float* p) { return p[0] > 1.0f ? p[1] : quiet_nan_f(); }
  CUVI_HD static float variance(const float* p) {
    const float df = p[0];
    if (df > 2.0f) return p[2] * p[2] * df / (df - 2.0f);
    if (df > 1.0f) return kInfF;
    return quiet_nan_f();
  }
};

}  // namespace cuvi::kern
