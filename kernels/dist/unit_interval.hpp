// cuvi kernels: two continuous relaxations of a Bernoulli on the unit
// interval, each by probabilities or by logits (torch's parameterisations):
//   ContinuousBernoulli(probs) (Loaiza-Ganem & Cunningham 2019), density
//     C(lambda) lambda^x (1 - lambda)^(1 - x) on [0, 1];
//   RelaxedBernoulli(temperature, probs) (Maddison et al. 2017; Jang et al.
//     2017), sigmoid of a LogitRelaxedBernoulli, on (0, 1).
// A probability parameter may be 0 or 1 (torch's unit_interval); it is
// clamped to [eps, 1 - eps] (eps = 2^-23, torch's clamp_probs) inside, and
// its gradient is 0 where the clamp is active.
#pragma once

#include "support.hpp"

namespace cuvi::kern {

namespace unit_detail {

constexpr float kEps = 1.1920928955078125e-7f;  // 2^-23, float32 epsilon

CUVI_HD float clamp_probs(float p) { return p < kEps ? kEps : (p > 1.0f - kEps ? 1.0f - kEps : p); }
CUVI_HD bool clamped(float p) { return !(p >= kEps && p <= 1.0f - kEps); }
// log(p / (1 - p)) of a clamped probability.
CUVI_HD float logit(float p) { return ::logf(p) - ::log1pf(-p); }

}  // namespace unit_detail

// ---------------------------------------------------------------------------
// ContinuousBernoulli in its natural parameter l = logit(lambda): the density
// is l e^(l x) / (e^l - 1) on [0, 1] (x log lambda + (1 - x) log(1 - lambda)
// = l x + log(1 - lambda)), so
//   C(l) = l / tanh(l/2)  [= 2 atanh(1 - 2 lambda) / (1 - 2 lambda)],
//   d log C / dl = 1/l - 1/sinh(l),
//   mean = 1/(1 - e^-l) - 1/l,  variance = 1/l^2 - 1/(4 sinh^2(l/2)),
//   CDF (e^(l x) - 1)/(e^l - 1).
// Each is even or odd in l, and each direct form cancels near l = 0
// (lambda = 1/2), where Taylor series take over (torch does the same on
// lambda in (0.499, 0.501); the series here are exact to float over wider
// bands, so the direct forms never cancel more than a factor ~30, and those
// that would show it in float run in double).

// log C(l). |l| < 0.5: with y = l/2, y coth y = 1 + y^2/3 - y^4/45
// + 2 y^6/945 - y^8/4725 + 2 y^10/93555 - ... (first omitted term < 1e-11).
// Else log|l| - log(tanh(|l|/2)) = log|l| - log(-expm1(-|l|)) + log1p(e^-|l|).
CUVI_HD float cb_log_norm_f(float l) {
  const float a = ::fabsf(l);
  if (a < 0.5f) {
    const float y2 = 0.25f * l * l;
    const float s = y2 * (1.0f / 3 + y2 * (-1.0f / 45 + y2 * (2.0f / 945 + y2 * (-1.0f / 4725 + y2 * (2.0f / 93555)))));
    return kLog2 + ::log1pf(s);
  }
  return ::logf(a) - ::logf(-::expm1f(-a)) + ::log1pf(::expf(-a));
}

// d log C / dl = 1/l - csch(l). |l| < 0.5: l/6 - 7 l^3/360 + 31 l^5/15120
// - 127 l^7/604800 + 73 l^9/3421440 (the csch series; the next term is
// < 1.1e-9 there). Else the direct form in double (it cancels up to ~25x
// near the switch, which float would show as ~1e-6 relative; csch
// overflows to 0 harmlessly).
CUVI_HD float cb_log_norm_grad_f(float l) {
  if (::fabsf(l) < 0.5f) {
    const float l2 = l * l;
    return l * (1.0f / 6 + l2 * (-7.0f / 360 + l2 * (31.0f / 15120 + l2 * (-127.0f / 604800 + l2 * (73.0f / 3421440)))));
  }
  const double ld = l;
  return static_cast<float>(1.0 / ld - 1.0 / ::sinh(ld));
}

// Mean. |l| < 1: 1/2 + l/12 - l^3/720 + l^5/30240 - l^7/1209600 + l^9/47900160
// (Bernoulli numbers; next term < 5e-10). Else 1/(1 - e^-l) - 1/l with
// 1 - e^-l = -expm1(-l), in double like the variance below.
CUVI_HD float cb_mean_f(float l) {
  if (::fabsf(l) < 1.0f) {
    const float l2 = l * l;
    return 0.5f +
           l * (1.0f / 12 + l2 * (-1.0f / 720 + l2 * (1.0f / 30240 + l2 * (-1.0f / 1209600 + l2 * (1.0f / 47900160)))));
  }
  const double ld = l;
  return static_cast<float>(-1.0 / ::expm1(-ld) - 1.0 / ld);
}

// Variance = d mean / dl. |l| < 1: 1/12 - l^2/240 + l^4/6048 - l^6/172800
// + l^8/5322240 (next term < 6e-9). Else 1/l^2 - 1/(4 sinh^2(l/2)) in
// double (it cancels ~13x at |l| = 1, 3e-6 relative in float).
CUVI_HD float cb_variance_f(float l) {
  const float l2 = l * l;
  if (l2 < 1.0f) return 1.0f / 12 + l2 * (-1.0f / 240 + l2 * (1.0f / 6048 + l2 * (-1.0f / 172800 + l2 * (1.0f / 5322240))));
  const double ld = l, sh = ::sinh(0.5 * ld);
  return static_cast<float>(1.0 / (ld * ld) - 0.25 / (sh * sh));
}

// Inverse CDF for l >= 0: x = log1p(u expm1(l)) / l (l < 20); for l >= 20,
// where expm1 would overflow, the same as 1 + log(u + (1 - u) e^-l) / l.
CUVI_HD float cb_icdf_pos_f(float u, float l) {
  if (l < 1e-30f) return u;
  if (l < 20.0f) return ::log1pf(u * ::expm1f(l)) / l;
  return 1.0f + ::logf(u + (1.0f - u) * ::expf(-l)) / l;
}
// Inverse CDF for any l: X ~ CB(l) is 1 - Y with Y ~ CB(-l), and
// F_l(x) = 1 - F_{-l}(1 - x), so for l < 0, x = 1 - icdf_{-l}(1 - u)
// (1 - u is exact for u on the 2^-24 grid). Clamped to [0, 1].
CUVI_HD float cb_icdf_f(float u, float l) {
  const float x = l >= 0.0f ? cb_icdf_pos_f(u, l) : 1.0f - cb_icdf_pos_f(1.0f - u, -l);
  return clamp_f(x, 0.0f, 1.0f);
}

// dx/dl of x = icdf(u; l) at fixed u, from x alone (implicit
// reparameterisation, -(dF/dl)/p):
//   dx/dl = (expm1(-l x)/expm1(-l) - x) / l.
// For l < 0 the symmetry above gives dx/dl(x; l) = dx/dl(1 - x; -l), so take
// m = |l| >= 0 and y = x or 1 - x (no overflow: e^-m <= 1).
//  * m < 0.5: with q(a) = expm1(a)/a, the bracket is
//      y (1 - y) sum_{k>=1} (-m)^(k-1) (1 + y + ... + y^(k-1)) / (k+1)! / q(-m),
//    10 terms (the next is < 3e-10 relative).
//  * else, y <= 1/2: the direct form (it cancels at most a factor 4/m <= 8);
//    y > 1/2: (1 - y) - e^(-m y) expm1(-m (1 - y)) / expm1(-m), over m
//    (1 - A/B written without subtracting from 1; also <= 8).
CUVI_HD float cb_dx_dl_f(float x, float l) {
  const float m = ::fabsf(l);
  const float y = l >= 0.0f ? x : 1.0f - x;
  if (m < 0.5f) {
    float sum = 0.0f, sk = 0.0f, yp = 1.0f, mp = 1.0f, fact = 1.0f;
    for (int k = 1; k <= 10; ++k) {
      sk += yp;  // 1 + y + ... + y^(k-1)
      yp *= y;
      fact *= static_cast<float>(k + 1);  // (k+1)!
      sum += mp * sk / fact;
      mp *= -m;
    }
    const float q = m > 0.0f ? -::expm1f(-m) / m : 1.0f;
    return y * (1.0f - y) * sum / q;
  }
  const float b = ::expm1f(-m);
  if (y <= 0.5f) return (::expm1f(-m * y) / b - y) / m;
  return ((1.0f - y) - ::expf(-m * y) * ::expm1f(-m * (1.0f - y)) / b) / m;
}

// What the two ContinuousBernoulli forms share.
struct ContinuousBernoulliBase {
  static constexpr const char* kName = "ContinuousBernoulli";
  static constexpr int kNumParams = 1;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kUnitInterval;

  CUVI_HD static bool support_ok(float x, const float*) { return check::unit(x); }
};

struct ContinuousBernoulliProbs : ContinuousBernoulliBase {
  CUVI_HD static const char* param_name(int i) { return i == 0 ? "probs" : ""; }
  CUVI_HD static int bad_param(const float* p) { return check::unit(p[0]) ? -1 : 0; }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }

  // log p = x l + log(1 - lambda) + log C(l), l = logit(lambda).
  CUVI_HD static float log_prob(float x, const float* p) {
    const float q = unit_detail::clamp_probs(p[0]);
    const float l = unit_detail::logit(q);
    return x * l + ::log1pf(-q) + cb_log_norm_f(l);
  }
  // d/dx = l; d/dlambda = x/lambda - (1 - x)/(1 - lambda) + (d log C/dl) dl/dlambda
  //                     = (x - lambda + d log C/dl) / (lambda (1 - lambda)).
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float q = unit_detail::clamp_probs(p[0]);
    const float l = unit_detail::logit(q);
    *dx = l;
    dp[0] = unit_detail::clamped(p[0]) ? 0.0f : (x - q + cb_log_norm_grad_f(l)) / (q * (1.0f - q));
    return x * l + ::log1pf(-q) + cb_log_norm_f(l);
  }
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    return cb_icdf_f(rng.uniform(), unit_detail::logit(unit_detail::clamp_probs(p[0])));
  }
  // dx/dlambda = dx/dl / (lambda (1 - lambda)).
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    const float q = unit_detail::clamp_probs(p[0]);
    dxdp[0] = unit_detail::clamped(p[0]) ? 0.0f : cb_dx_dl_f(x, unit_detail::logit(q)) / (q * (1.0f - q));
  }
  CUVI_HD static float mean(const float* p) { return cb_mean_f(unit_detail::logit(unit_detail::clamp_probs(p[0]))); }
  CUVI_HD static float variance(const float* p) {
    return cb_variance_f(unit_detail::logit(unit_detail::clamp_probs(p[0])));
  }
};

// By logits l (any finite real; no clamp): log p = -(x softplus(-l)
// + (1 - x) softplus(l)) + log C(l) (no cancellation in either tail).
struct ContinuousBernoulliLogits : ContinuousBernoulliBase {
  CUVI_HD static const char* param_name(int i) { return i == 0 ? "logits" : ""; }
  CUVI_HD static int bad_param(const float* p) { return check::real(p[0]) ? -1 : 0; }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }

  CUVI_HD static float log_prob(float x, const float* p) {
    const float l = p[0];
    return -(x * softplus_f(-l) + (1.0f - x) * softplus_f(l)) + cb_log_norm_f(l);
  }
  // d/dx = l, d/dl = x - sigmoid(l) + d log C/dl.
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float l = p[0];
    *dx = l;
    dp[0] = x - sigmoid_f(l) + cb_log_norm_grad_f(l);
    return log_prob(x, p);
  }
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    return cb_icdf_f(rng.uniform(), p[0]);
  }
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) { dxdp[0] = cb_dx_dl_f(x, p[0]); }
  CUVI_HD static float mean(const float* p) { return cb_mean_f(p[0]); }
  CUVI_HD static float variance(const float* p) { return cb_variance_f(p[0]); }
};

// ---------------------------------------------------------------------------
// RelaxedBernoulli(temperature T, logits l): L = (l + logit(u))/T, u uniform,
// is LogitRelaxedBernoulli; Y = sigmoid(L). logit(u) is standard logistic,
// log density lam - 2 softplus(lam) = -lam - 2 softplus(-lam), and
// logit(u) = T L - l with |d/dL| = T, so
//   log p_L(L) = log T + d - 2 softplus(d),  d = l - T L,
// and with L = logit(y), dL/dy = 1/(y (1 - y)):
//   log p_Y(y) = log T + d - 2 softplus(d) - log y - log1p(-y).
// d - 2 softplus(d) = -|d| - 2 log1p(e^-|d|). With g = 1 - 2 sigmoid(d)
// = -tanh(d/2), its derivative in d:
//   d/dl = g, d/dT = 1/T - g L, d/dy = (-T g + 2y - 1) / (y (1 - y)).
// As torch (whose sigmoid transform clamps to [tiny, 1 - eps] both ways),
// values in the closed [0, 1] are accepted and evaluated at y clamped to
// [smallest normal float, 1 - 2^-23] (the density at 0 or 1 itself is 0 or
// infinite; an autoguide's float sigmoid can round to 1); the value
// gradient is 0 where the clamp is active. Draws are clamped the same way.
// No mean or variance in closed form (torch has none): both NaN.
struct RelaxedBernoulliBase {
  static constexpr const char* kName = "RelaxedBernoulli";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kUnitInterval;

  CUVI_HD static bool support_ok(float x, const float*) { return check::unit(x); }

  static constexpr float kYMax = 1.0f - unit_detail::kEps;  // 1 - 2^-23

  // log p_Y(y) at logits l, and its derivatives into dy, dT, dl (dy null: none).
  CUVI_HD static float log_prob_logits(float y0, float t, float l, float* dy, float* dt, float* dl) {
    const float y = clamp_f(y0, kFltMin, kYMax);
    const float ly = ::logf(y), l1y = ::log1pf(-y);
    const float L = ly - l1y;
    const float d = l - t * L;
    const float ad = ::fabsf(d);
    if (dy) {
      const float g = -tanh_f(0.5f * d);
      *dy = (y0 == y) ? (-t * g + 2.0f * y - 1.0f) / (y * (1.0f - y)) : 0.0f;
      *dt = 1.0f / t - g * L;
      *dl = g;
    }
    return ::logf(t) - ad - 2.0f * ::log1pf(::expf(-ad)) - ly - l1y;
  }
  // y = sigmoid((l + logit(u)) / T), clamped as log_prob clamps.
  template <class Rng>
  CUVI_HD static float sample_logits(float t, float l, Rng& rng) {
    const float u = rng.uniform();
    const float y = sigmoid_f((l + (::logf(u) - ::log1pf(-u))) / t);
    return clamp_f(y, kFltMin, kYMax);
  }
  // dy/dL = y (1 - y); dL/dl = 1/T, dL/dT = -L/T with L = logit(y).
  CUVI_HD static void sample_grad_logits(float y, float t, float* dydt, float* dydl) {
    const float w = y * (1.0f - y);
    *dydl = w / t;
    *dydt = -w * (::logf(y) - ::log1pf(-y)) / t;
  }
  CUVI_HD static float mean(const float*) { return kNanF; }
  CUVI_HD static float variance(const float*) { return kNanF; }
};

struct RelaxedBernoulliProbs : RelaxedBernoulliBase {
  CUVI_HD static const char* param_name(int i) { return i == 0 ? "temperature" : (i == 1 ? "probs" : ""); }
  CUVI_HD static int bad_param(const float* p) {
    if (!check::positive(p[0])) return 0;
    if (!check::unit(p[1])) return 1;
    return -1;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }

  CUVI_HD static float log_prob(float x, const float* p) {
    return log_prob_logits(x, p[0], unit_detail::logit(unit_detail::clamp_probs(p[1])), nullptr, nullptr, nullptr);
  }
  // d/dprobs = d/dl / (p (1 - p)).
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float q = unit_detail::clamp_probs(p[1]);
    float dl;
    const float lp = log_prob_logits(x, p[0], unit_detail::logit(q), dx, &dp[0], &dl);
    dp[1] = unit_detail::clamped(p[1]) ? 0.0f : dl / (q * (1.0f - q));
    return lp;
  }
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    return sample_logits(p[0], unit_detail::logit(unit_detail::clamp_probs(p[1])), rng);
  }
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    const float q = unit_detail::clamp_probs(p[1]);
    float dl;
    sample_grad_logits(x, p[0], &dxdp[0], &dl);
    dxdp[1] = unit_detail::clamped(p[1]) ? 0.0f : dl / (q * (1.0f - q));
  }
};

struct RelaxedBernoulliLogits : RelaxedBernoulliBase {
  CUVI_HD static const char* param_name(int i) { return i == 0 ? "temperature" : (i == 1 ? "logits" : ""); }
  CUVI_HD static int bad_param(const float* p) {
    if (!check::positive(p[0])) return 0;
    if (!check::real(p[1])) return 1;
    return -1;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }

  CUVI_HD static float log_prob(float x, const float* p) {
    return log_prob_logits(x, p[0], p[1], nullptr, nullptr, nullptr);
  }
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    return log_prob_logits(x, p[0], p[1], dx, &dp[0], &dp[1]);
  }
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    return sample_logits(p[0], p[1], rng);
  }
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    sample_grad_logits(x, p[0], &dxdp[0], &dxdp[1]);
  }
};

}  // namespace cuvi::kern
