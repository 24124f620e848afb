// cuvi kernels: Pyro's compound and zero-inflated count families.
//   BetaBinomial(concentration1, concentration0, total_count): Binomial with
//     probs ~ Beta(concentration1, concentration0), summed out.
//   GammaPoisson(concentration, rate): Poisson with rate ~ Gamma(concentration,
//     rate), summed out (a NegativeBinomial in another parameterisation).
//   NegativeBinomialLogits(total_count, logits): NegativeBinomial with
//     probs = sigmoid(logits), exact in both tails of the logits.
//   ZeroInflated<Base, GateLogits>: with probability gate (or
//     sigmoid(gate_logits)) the value is 0, else a draw of Base; the gate is
//     the last parameter. ZeroInflatedPoisson and
//     ZeroInflatedNegativeBinomial (probs or logits) are its instances.
// None is reparameterised; value gradients are 0 (discrete); every
// parameter has its gradient (total_count too, through lgamma, as autograd
// gives it in torch).
#pragma once

#include "beta.hpp"
#include "counts.hpp"
#include "poisson.hpp"

namespace cuvi::kern {

namespace counts {
// log(e^a + e^b), -inf when both are -inf.
CUVI_HD float log_add_exp(float a, float b) {
  const float m = a > b ? a : b;
  if (m == -kInfF) return -kInfF;
  return m + ::log1pf(::expf(-::fabsf(a - b)));
}
}  // namespace counts

struct BetaBinomial {
  static constexpr const char* kName = "BetaBinomial";
  static constexpr int kNumParams = 3;
  static constexpr bool kHasRsample = false;
  static constexpr bool kDiscrete = true;
  static constexpr int kSupport = support::kNonNegInteger;  // and <= total_count (support_ok)

  CUVI_HD static const char* param_name(int i) {
    return i == 0 ? "concentration1" : (i == 1 ? "concentration0" : (i == 2 ? "total_count" : ""));
  }
  CUVI_HD static int bad_param(const float* p) {
    if (!check::positive(p[0])) return 0;
    if (!check::positive(p[1])) return 1;
    if (!check::nonneg_integer(p[2])) return 2;
    return -1;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float* p) { return check::nonneg_integer(x) && x <= p[2]; }

  // log p = log C(n, k) + lbeta(k + a, n - k + b) - lbeta(a, b)
  //       = log C(n, k) + log (a)_k + log (b)_(n-k) - log (a + b)_n
  // with rising factorials (a)_k = Gamma(a + k) / Gamma(a) (in double: the
  // lgammas cancel for large n, a, b; short counts as products).
  CUVI_HD static float log_prob(float x, const float* p) {
    if (!support_ok(x, p)) return -kInfF;
    const double a = p[0], b = p[1], n = p[2], k = x;
    return static_cast<float>(counts::log_choose_d(n, k) + counts::log_rising_d(a, k) + counts::log_rising_d(b, n - k) -
                              counts::log_rising_d(a + b, n));
  }
  // d/da = psi(k + a) - psi(a) - (psi(n + a + b) - psi(a + b))
  // d/db = psi(n - k + b) - psi(b) - (psi(n + a + b) - psi(a + b))
  // d/dn = psi(n + 1) - psi(n - k + 1) + psi(n - k + b) - psi(n + a + b)
  // (digamma differences over a count as sums of 1/(r + i) when short).
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    *dx = 0.0f;
    if (!support_ok(x, p)) {
      dp[0] = dp[1] = dp[2] = 0.0f;
      return -kInfF;
    }
    const double a = p[0], b = p[1], n = p[2], k = x;
    const double common = counts::digamma_rising_d(a + b, n);
    dp[0] = static_cast<float>(counts::digamma_rising_d(a, k) - common);
    dp[1] = static_cast<float>(counts::digamma_rising_d(b, n - k) - common);
    dp[2] = static_cast<float>(counts::digamma_rising_d(n - k + 1.0, k) + digamma_d(n - k + b) - digamma_d(n + a + b));
    return log_prob(x, p);
  }
  // probs ~ Beta(a, b), then Binomial(n, probs), from the element's rng.
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    if (!param_ok(p)) return quiet_nan_f();
    const float q[2] = {p[2], Beta::sample(p, rng)};
    return Binomial::sample(q, rng);
  }
  CUVI_HD static void sample_grad(float, const float*, float* dxdp) { dxdp[0] = dxdp[1] = dxdp[2] = 0.0f; }
  CUVI_HD static float mean(const float* p) { return p[2] * p[0] / (p[0] + p[1]); }
  // n a b (a + b + n) / ((a + b)^2 (a + b + 1))
  CUVI_HD static float variance(const float* p) {
    const float s = p[0] + p[1];
    return p[2] * p[0] * p[1] * (s + p[2]) / (s * s * (s + 1.0f));
  }
};

struct GammaPoisson {
  static constexpr const char* kName = "GammaPoisson";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = false;
  static constexpr bool kDiscrete = true;
  static constexpr int kSupport = support::kNonNegInteger;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "concentration" : (i == 1 ? "rate" : ""); }
  CUVI_HD static int bad_param(const float* p) { return check::first_nonpositive(p, 2); }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return check::nonneg_integer(x); }

  // log p = lgamma(x + a) - lgamma(x + 1) - lgamma(a) + a log(b) - (x + a) log1p(b)
  // (the lgammas as log rising factorials in double).
  CUVI_HD static float log_prob(float x, const float* p) {
    if (!check::nonneg_integer(x)) return -kInfF;
    const float lc = static_cast<float>(counts::log_rising_d(p[0], x) - counts::log_rising_d(1.0, x));
    return lc + p[0] * ::logf(p[1]) - (x + p[0]) * ::log1pf(p[1]);
  }
  // d/da = psi(x + a) - psi(a) + log(b) - log1p(b); d/db = a/b - (x + a)/(1 + b)
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    *dx = 0.0f;
    if (!check::nonneg_integer(x)) {
      dp[0] = dp[1] = 0.0f;
      return -kInfF;
    }
    dp[0] = static_cast<float>(counts::digamma_rising_d(p[0], x)) + ::logf(p[1]) - ::log1pf(p[1]);
    dp[1] = p[0] / p[1] - (x + p[0]) / (1.0f + p[1]);
    return log_prob(x, p);
  }
  // rate' ~ Gamma(a, b) (in logs), then Poisson(rate').
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    if (!param_ok(p)) return quiet_nan_f();
    const float rate[1] = {::expf(standard_gamma_log_f(p[0], rng) - ::logf(p[1]))};
    return Poisson::sample(rate, rng);
  }
  CUVI_HD static void sample_grad(float, const float*, float* dxdp) { dxdp[0] = dxdp[1] = 0.0f; }
  CUVI_HD static float mean(const float* p) { return p[0] / p[1]; }
  CUVI_HD static float variance(const float* p) { return p[0] * (1.0f + p[1]) / (p[1] * p[1]); }
};

struct NegativeBinomialLogits {
  static constexpr const char* kName = "NegativeBinomial";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = false;
  static constexpr bool kDiscrete = true;
  static constexpr int kSupport = support::kNonNegInteger;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "total_count" : (i == 1 ? "logits" : ""); }
  CUVI_HD static int bad_param(const float* p) {
    if (!check::positive(p[0])) return 0;
    if (!check::real(p[1])) return 1;
    return -1;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return check::nonneg_integer(x); }

  // log p = lgamma(x + r) - lgamma(x + 1) - lgamma(r) + r log(1 - q) + x log q,
  // with log q = -softplus(-l) and log(1 - q) = -softplus(l).
  CUVI_HD static float log_prob(float x, const float* p) {
    if (!check::nonneg_integer(x)) return -kInfF;
    const float lc = static_cast<float>(counts::log_rising_d(p[0], x) - counts::log_rising_d(1.0, x));
    const float l = p[1];
    return lc - p[0] * softplus_f(l) - (x == 0.0f ? 0.0f : x * softplus_f(-l));
  }
  // d/dr = psi(x + r) - psi(r) - softplus(l); d/dl = x (1 - q) - r q, with
  // q = sigmoid(l) and 1 - q = sigmoid(-l) (no cancellation in either tail).
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    *dx = 0.0f;
    if (!check::nonneg_integer(x)) {
      dp[0] = dp[1] = 0.0f;
      return -kInfF;
    }
    const float l = p[1];
    dp[0] = static_cast<float>(counts::digamma_rising_d(p[0], x)) - softplus_f(l);
    dp[1] = x * sigmoid_f(-l) - p[0] * sigmoid_f(l);
    return log_prob(x, p);
  }
  // Gamma-Poisson mixture: rate = Gamma(r) q / (1 - q) = Gamma(r) e^l.
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    if (!param_ok(p)) return quiet_nan_f();
    const float rate[1] = {static_cast<float>(::exp(static_cast<double>(standard_gamma_log_f(p[0], rng)) + p[1]))};
    return Poisson::sample(rate, rng);
  }
  CUVI_HD static void sample_grad(float, const float*, float* dxdp) { dxdp[0] = dxdp[1] = 0.0f; }
  // mean r e^l; variance r e^l / (1 - q) = r e^l (1 + e^l).
  CUVI_HD static float mean(const float* p) { return p[0] * ::expf(p[1]); }
  CUVI_HD static float variance(const float* p) {
    const float e = ::expf(p[1]);
    return p[0] * e * (1.0f + e);
  }
};

// Zero inflation of a count family Base (whose parameters come first; the
// gate is the last): p(0) = g + (1 - g) b(0), p(k) = (1 - g) b(k) for k > 0,
// with g = gate, or g = sigmoid(gate_logits) when GateLogits (then log g and
// log(1 - g) are -softplus(-l) and -softplus(l), exact in both tails).
template <class Base, bool GateLogits>
struct ZeroInflated {
  static constexpr int kGate = Base::kNumParams;
  static constexpr int kNumParams = Base::kNumParams + 1;
  static constexpr bool kHasRsample = false;
  static constexpr bool kDiscrete = true;
  static constexpr int kSupport = support::kNonNegInteger;

  CUVI_HD static const char* param_name(int i) {
    return i < kGate ? Base::param_name(i) : (i == kGate ? (GateLogits ? "gate_logits" : "gate") : "");
  }
  CUVI_HD static int bad_param(const float* p) {
    const int b = Base::bad_param(p);
    if (b >= 0) return b;
    const bool ok = GateLogits ? check::real(p[kGate]) : check::unit(p[kGate]);
    return ok ? -1 : kGate;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float* p) { return Base::support_ok(x, p); }

  // log g and log(1 - g).
  CUVI_HD static float log_gate(float v) { return GateLogits ? -softplus_f(-v) : ::logf(v); }
  CUVI_HD static float log_not_gate(float v) { return GateLogits ? -softplus_f(v) : ::log1pf(-v); }

  CUVI_HD static float log_prob(float x, const float* p) {
    if (!support_ok(x, p)) return -kInfF;
    const float lb = Base::log_prob(x, p);
    const float l1g = log_not_gate(p[kGate]);
    return x == 0.0f ? counts::log_add_exp(log_gate(p[kGate]), l1g + lb) : l1g + lb;
  }
  // k > 0: the base's gradients; d/dg log(1 - g) = -1/(1 - g), or
  //   d/dl log(1 - g) = -g.
  // k = 0: with w = (1 - g) b(0) / p(0), the base's gradients times w;
  //   d/dg = (1 - b(0)) / p(0), or d/dl = g (1 - g) (1 - b(0)) / p(0).
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    *dx = 0.0f;
    if (!support_ok(x, p)) {
      for (int i = 0; i < kNumParams; ++i) dp[i] = 0.0f;
      return -kInfF;
    }
    float bx = 0.0f;
    const float lb = Base::log_prob_grad(x, p, &bx, dp);
    const float v = p[kGate];
    const float l1g = log_not_gate(v);
    if (x != 0.0f) {
      dp[kGate] = GateLogits ? -sigmoid_f(v) : -1.0f / (1.0f - v);
      return l1g + lb;
    }
    const float lg = log_gate(v);
    const float lp = counts::log_add_exp(lg, l1g + lb);
    const float w = ::expf(l1g + lb - lp);
    for (int i = 0; i < kGate; ++i) dp[i] *= w;
    const float d = -::expm1f(lb) * ::expf(-lp);  // (1 - b(0)) / p(0)
    dp[kGate] = GateLogits ? ::expf(lg + l1g) * d : d;
    return lp;
  }
  // 0 with probability g (one uniform), else the base's draw.
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    if (!param_ok(p)) return quiet_nan_f();
    const float u = rng.uniform();
    return u < gate(p) ? 0.0f : Base::sample(p, rng);
  }
  CUVI_HD static void sample_grad(float, const float*, float* dxdp) {
    for (int i = 0; i < kNumParams; ++i) dxdp[i] = 0.0f;
  }
  // E = (1 - g) m; Var = (1 - g) (v + g m^2) for the base's mean m and variance v.
  CUVI_HD static float mean(const float* p) { return not_gate(p) * Base::mean(p); }
  CUVI_HD static float variance(const float* p) {
    const float m = Base::mean(p);
    return not_gate(p) * (Base::variance(p) + gate(p) * m * m);
  }
  // g and 1 - g.
  CUVI_HD static float gate(const float* p) { return GateLogits ? sigmoid_f(p[kGate]) : p[kGate]; }
  CUVI_HD static float not_gate(const float* p) { return GateLogits ? sigmoid_f(-p[kGate]) : 1.0f - p[kGate]; }
};

struct ZeroInflatedPoisson : ZeroInflated<Poisson, false> {
  static constexpr const char* kName = "ZeroInflatedPoisson";
};
struct ZeroInflatedPoissonLogits : ZeroInflated<Poisson, true> {
  static constexpr const char* kName = "ZeroInflatedPoisson";
};
struct ZeroInflatedNegativeBinomial : ZeroInflated<NegativeBinomial, false> {
  static constexpr const char* kName = "ZeroInflatedNegativeBinomial";
};
struct ZeroInflatedNegativeBinomialLogits : ZeroInflated<NegativeBinomialLogits, true> {
  static constexpr const char* kName = "ZeroInflatedNegativeBinomial";
};

}  // namespace cuvi::kern
