// cuvi kernels: count families with PyTorch's parameterisations:
// Binomial(total_count, probs), Geometric(probs) (failures before the first
// success, support 0, 1, ...) and NegativeBinomial(total_count, probs)
// (successes, each with probability probs, before total_count failures).
// None is reparameterised; the value gradient is 0 (discrete), and every
// parameter has its gradient (total_count too, through lgamma, as autograd
// gives it in torch). Terms of the form 0 * log(0) are 0, as torch's xlogy.
#pragma once

#include "gamma.hpp"
#include "poisson.hpp"
#include "support.hpp"

namespace cuvi::kern {

namespace counts {
// c * log(p), 0 when c == 0 (whatever p).
CUVI_HD float xlog(float c, float p) { return c == 0.0f ? 0.0f : c * ::logf(p); }
// c * log1p(-p), 0 when c == 0.
CUVI_HD float xlog1m(float c, float p) { return c == 0.0f ? 0.0f : c * ::log1pf(-p); }
// c / p, 0 when c == 0.
CUVI_HD float xdiv(float c, float p) { return c == 0.0f ? 0.0f : c / p; }

// Counts below kShortRise take the direct forms below (most counts in
// count models are small): k factors or terms instead of two lgammas or
// digammas, and no cancellation between them when r is large.
constexpr double kShortRise = 16.0;
// log of the rising factorial (r)_k = Gamma(r + k) / Gamma(r), r > 0, k a
// count: for k < 16 (and r < 1e15, so the product stays finite) the log of
// the product of its k factors (~k ulp), else lgamma(r + k) - lgamma(r).
CUVI_HD double log_rising_d(double r, double k) {
  if (k < kShortRise && r < 1e15) {
    double prod = 1.0;
    for (double i = 0.0; i < k; i += 1.0) prod *= r + i;
    return ::log(prod);
  }
  return lgamma_d(r + k) - lgamma_d(r);
}
// log C(n, x) = log (x + 1)_(n-x) - log (n - x)! (as lgammas they cancel for
// large n; short n - x as products).
CUVI_HD double log_choose_d(double n, double x) { return log_rising_d(x + 1.0, n - x) - log_rising_d(1.0, n - x); }
// digamma(r + k) - digamma(r) = sum_{i < k} 1/(r + i) for k < 16.
CUVI_HD double digamma_rising_d(double r, double k) {
  if (k < kShortRise) {
    double acc = 0.0;
    for (double i = 0.0; i < k; i += 1.0) acc += 1.0 / (r + i);
    return acc;
  }
  return digamma_d(r + k) - digamma_d(r);
}
}  // namespace counts

struct Binomial {
  static constexpr const char* kName = "Binomial";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = false;
  static constexpr bool kDiscrete = true;
  static constexpr int kSupport = support::kNonNegInteger;  // and <= total_count (support_ok)

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "total_count" : (i == 1 ? "probs" : ""); }
  CUVI_HD static int bad_param(const float* p) {
    if (!check::nonneg_integer(p[0])) return 0;
    if (!check::unit(p[1])) return 1;
    return -1;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float* p) { return check::nonneg_integer(x) && x <= p[0]; }

  CUVI_HD static float log_choose(float n, float x) { return static_cast<float>(counts::log_choose_d(n, x)); }
  // log p = log C(n, x) + x log q + (n - x) log(1 - q)
  CUVI_HD static float log_prob(float x, const float* p) {
    if (!support_ok(x, p)) return -kInfF;
    return log_choose(p[0], x) + counts::xlog(x, p[1]) + counts::xlog1m(p[0] - x, p[1]);
  }
  // d/dq = x/q - (n - x)/(1 - q); d/dn = digamma(n + 1) - digamma(n - x + 1) + log(1 - q)
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    *dx = 0.0f;
    if (!support_ok(x, p)) {
      dp[0] = dp[1] = 0.0f;
      return -kInfF;
    }
    const float n = p[0], q = p[1];
    dp[1] = counts::xdiv(x, q) - counts::xdiv(n - x, 1.0f - q);
    dp[0] = static_cast<float>(counts::digamma_rising_d(static_cast<double>(n) - x + 1.0, x)) + ::log1pf(-q);
    return log_choose(n, x) + counts::xlog(x, q) + counts::xlog1m(n - x, q);
  }

  // With q' = min(q, 1 - q) (the draw mirrored when q > 1/2): n q' < 10,
  // sequential inversion in double (at most ~40 steps beyond the mean);
  // otherwise BTRS, the transformed rejection with squeeze of Hormann
  // (1993), with the exact acceptance test on log pmf in double.
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const double n = p[0];
    const double q0 = p[1];
    if (!(n >= 0.0) || !(q0 >= 0.0 && q0 <= 1.0)) return quiet_nan_f();
    if (n == 0.0 || q0 == 0.0) return 0.0f;
    if (q0 == 1.0) return static_cast<float>(n);
    const bool flip = q0 > 0.5;
    const double q = flip ? 1.0 - q0 : q0;
    const double r = q / (1.0 - q);
    double k = 0.0;
    if (n * q < 10.0) {
      const double u = rng.uniform();
      double pk = ::exp(n * ::log1p(-q));
      double cdf = pk;
      while (u > cdf && k < n) {
        pk *= (n - k) / (k + 1.0) * r;
        k += 1.0;
        cdf += pk;
        if (pk < 1e-300) break;
      }
    } else {
      const double spq = ::sqrt(n * q * (1.0 - q));
      const double b = 1.15 + 2.53 * spq;
      const double a = -0.0873 + 0.0248 * b + 0.01 * q;
      const double c = n * q + 0.5;
      const double alpha = (2.83 + 5.1 / b) * spq;
      const double vr = 0.92 - 4.2 / b;
      const double m = ::floor((n + 1.0) * q);
      const double lr = ::log(r);
      const double h = lgamma_d(m + 1.0) + lgamma_d(n - m + 1.0);
      k = -1.0;
      for (int it = 0; it < 10000 && k < 0.0; ++it) {
        const double u = static_cast<double>(rng.uniform()) - 0.5;
        const double v = rng.uniform();
        const double us = 0.5 - ::fabs(u);
        const double kk = ::floor((2.0 * a / us + b) * u + c);
        if (kk < 0.0 || kk > n) continue;
        if (us >= 0.07 && v <= vr) {
          k = kk;
          break;
        }
        const double lv = ::log(v * alpha / (a / (us * us) + b));
        if (lv <= h - lgamma_d(kk + 1.0) - lgamma_d(n - kk + 1.0) + (kk - m) * lr) k = kk;
      }
      if (k < 0.0) return quiet_nan_f();
    }
    return static_cast<float>(flip ? n - k : k);
  }
  CUVI_HD static void sample_grad(float, const float*, float* dxdp) { dxdp[0] = dxdp[1] = 0.0f; }
  CUVI_HD static float mean(const float* p) { return p[0] * p[1]; }
  CUVI_HD static float variance(const float* p) { return p[0] * p[1] * (1.0f - p[1]); }
};

// Binomial(total_count, logits): probs = sigmoid(logits), evaluated from
// the logits (torch's Binomial(total_count, logits=)):
//   log p = log C(n, k) + k l - n softplus(l),
// exact in both tails of l (k l - n softplus(l) = -k softplus(-l) - (n - k)
// softplus(l), each term without cancellation).
struct BinomialLogits {
  static constexpr const char* kName = "Binomial";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = false;
  static constexpr bool kDiscrete = true;
  static constexpr int kSupport = support::kNonNegInteger;  // and <= total_count (support_ok)

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "total_count" : (i == 1 ? "logits" : ""); }
  CUVI_HD static int bad_param(const float* p) {
    if (!check::nonneg_integer(p[0])) return 0;
    if (!check::real(p[1])) return 1;
    return -1;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float* p) { return check::nonneg_integer(x) && x <= p[0]; }

  CUVI_HD static float log_prob(float x, const float* p) {
    if (!support_ok(x, p)) return -kInfF;
    const float l = p[1];
    return Binomial::log_choose(p[0], x) - (x == 0.0f ? 0.0f : x * softplus_f(-l)) -
           (p[0] == x ? 0.0f : (p[0] - x) * softplus_f(l));
  }
  // d/dl = k (1 - q) - (n - k) q = k sigmoid(-l) - (n - k) sigmoid(l);
  // d/dn = digamma(n + 1) - digamma(n - k + 1) - softplus(l).
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    *dx = 0.0f;
    if (!support_ok(x, p)) {
      dp[0] = dp[1] = 0.0f;
      return -kInfF;
    }
    const float n = p[0], l = p[1];
    dp[1] = x * sigmoid_f(-l) - (n - x) * sigmoid_f(l);
    dp[0] = static_cast<float>(counts::digamma_rising_d(static_cast<double>(n) - x + 1.0, x)) - softplus_f(l);
    return log_prob(x, p);
  }
  // Binomial's sampler at probs = sigmoid(l) (it mirrors q > 1/2 itself).
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    if (!param_ok(p)) return quiet_nan_f();
    const float q[2] = {p[0], sigmoid_f(p[1])};
    return Binomial::sample(q, rng);
  }
  CUVI_HD static void sample_grad(float, const float*, float* dxdp) { dxdp[0] = dxdp[1] = 0.0f; }
  CUVI_HD static float mean(const float* p) { return p[0] * sigmoid_f(p[1]); }
  CUVI_HD static float variance(const float* p) { return p[0] * sigmoid_f(p[1]) * sigmoid_f(-p[1]); }
};

struct Geometric {
  static constexpr const char* kName = "Geometric";
  static constexpr int kNumParams = 1;
  static constexpr bool kHasRsample = false;
  static constexpr bool kDiscrete = true;
  static constexpr int kSupport = support::kNonNegInteger;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "probs" : ""; }
  // 0 < probs <= 1 (probs 1 is the point mass at 0).
  CUVI_HD static int bad_param(const float* p) { return p[0] > 0.0f && p[0] <= 1.0f ? -1 : 0; }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return check::nonneg_integer(x); }

  // log p = x log(1 - q) + log q
  CUVI_HD static float log_prob(float x, const float* p) {
    if (!check::nonneg_integer(x)) return -kInfF;
    return counts::xlog1m(x, p[0]) + ::logf(p[0]);
  }
  // d/dq = 1/q - x/(1 - q)
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    *dx = 0.0f;
    if (!check::nonneg_integer(x)) {
      dp[0] = 0.0f;
      return -kInfF;
    }
    dp[0] = 1.0f / p[0] - counts::xdiv(x, 1.0f - p[0]);
    return counts::xlog1m(x, p[0]) + ::logf(p[0]);
  }
  // Inversion: floor(log u / log(1 - q)), u in the open (0, 1), in double.
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const double q = p[0];
    if (!(q > 0.0 && q <= 1.0)) return quiet_nan_f();
    if (q == 1.0) return 0.0f;
    return static_cast<float>(::floor(::log(static_cast<double>(rng.uniform())) / ::log1p(-q)));
  }
  CUVI_HD static void sample_grad(float, const float*, float* dxdp) { dxdp[0] = 0.0f; }
  CUVI_HD static float mean(const float* p) { return (1.0f - p[0]) / p[0]; }
  CUVI_HD static float variance(const float* p) { return (1.0f - p[0]) / (p[0] * p[0]); }
};

struct NegativeBinomial {
  static constexpr const char* kName = "NegativeBinomial";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = false;
  static constexpr bool kDiscrete = true;
  static constexpr int kSupport = support::kNonNegInteger;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "total_count" : (i == 1 ? "probs" : ""); }
  // total_count > 0 (real, as torch), 0 <= probs < 1.
  CUVI_HD static int bad_param(const float* p) {
    if (!check::positive(p[0])) return 0;
    if (!(p[1] >= 0.0f && p[1] < 1.0f)) return 1;
    return -1;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return check::nonneg_integer(x); }

  // log p = lgamma(x + r) - lgamma(x + 1) - lgamma(r) + r log(1 - q) + x log q
  // (the lgamma combination as log rising factorials in double: it cancels
  // for large x and r).
  CUVI_HD static float log_prob(float x, const float* p) {
    if (!check::nonneg_integer(x)) return -kInfF;
    const float lc = static_cast<float>(counts::log_rising_d(p[0], x) - counts::log_rising_d(1.0, x));
    return lc + p[0] * ::log1pf(-p[1]) + counts::xlog(x, p[1]);
  }
  // d/dr = digamma(x + r) - digamma(r) + log(1 - q); d/dq = x/q - r/(1 - q)
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    *dx = 0.0f;
    if (!check::nonneg_integer(x)) {
      dp[0] = dp[1] = 0.0f;
      return -kInfF;
    }
    dp[0] = static_cast<float>(counts::digamma_rising_d(p[0], x)) + ::log1pf(-p[1]);
    dp[1] = counts::xdiv(x, p[1]) - p[0] / (1.0f - p[1]);
    return log_prob(x, p);
  }
  // Gamma-Poisson mixture: rate = Gamma(r) q / (1 - q), then Poisson(rate).
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    if (!param_ok(p)) return quiet_nan_f();
    if (p[1] == 0.0f) return 0.0f;
    const double lrate =
        static_cast<double>(standard_gamma_log_f(p[0], rng)) + ::log(static_cast<double>(p[1])) - ::log1p(-p[1]);
    const float rate[1] = {static_cast<float>(::exp(lrate))};
    return Poisson::sample(rate, rng);
  }
  CUVI_HD static void sample_grad(float, const float*, float* dxdp) { dxdp[0] = dxdp[1] = 0.0f; }
  CUVI_HD static float mean(const float* p) { return p[0] * p[1] / (1.0f - p[1]); }
  CUVI_HD static float variance(const float* p) { return p[0] * p[1] / ((1.0f - p[1]) * (1.0f - p[1])); }
};

}  // namespace cuvi::kern
