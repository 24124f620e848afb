// cuvi kernels: Bernoulli, by probabilities or by logits.
#pragma once

#include "support.hpp"

namespace cuvi::kern {

struct BernoulliProbs {
  static constexpr const char* kName = "Bernoulli";
  static constexpr int kNumParams = 1;
  static constexpr bool kHasRsample = false;
  static constexpr bool kDiscrete = true;
  static constexpr int kSupport = support::kBoolean;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "probs" : ""; }
  CUVI_HD static int bad_param(const float* p) { return check::unit(p[0]) ? -1 : 0; }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return check::boolean(x); }

  // log p = x log p + (1-x) log1p(-p); the 0 * log 0 terms of x in {0, 1}
  // are skipped (so p = 0 or 1 gives 0 / -inf, never NaN). Values strictly
  // between 0 and 1 (relaxed data) use the full formula.
  CUVI_HD static float log_prob(float x, const float* p) {
    const float q = p[0];
    if (x == 1.0f) return ::logf(q);
    if (x == 0.0f) return ::log1pf(-q);
    return x * ::logf(q) + (1.0f - x) * ::log1pf(-q);
  }
  // d/dp = x/p - (1-x)/(1-p); value gradient 0 (discrete).
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float q = p[0];
    *dx = 0.0f;
    if (x == 1.0f) {
      dp[0] = 1.0f / q;
    } else if (x == 0.0f) {
      dp[0] = -1.0f / (1.0f - q);
    } else {
      dp[0] = x / q - (1.0f - x) / (1.0f - q);
    }
    return log_prob(x, p);
  }
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    return rng.uniform() < p[0] ? 1.0f : 0.0f;
  }
  CUVI_HD static void sample_grad(float, const float*, float* dxdp) { dxdp[0] = 0.0f; }
  CUVI_HD static float mean(const float* p) { return p[0]; }
  CUVI_HD static float variance(const float* p) { return p[0] * (1.0f - p[0]); }
};

struct BernoulliLogits {
  static constexpr const char* kName = "Bernoulli";
  static constexpr int kNumParams = 1;
  static constexpr bool kHasRsample = false;
  static constexpr bool kDiscrete = true;
  static constexpr int kSupport = support::kBoolean;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "logits" : ""; }
  CUVI_HD static int bad_param(const float* p) { return check::real(p[0]) ? -1 : 0; }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return check::boolean(x); }

  // log p = x l - softplus(l) = -(x softplus(-l) + (1-x) softplus(l)),
  // with softplus(+-l) = max(+-l, 0) + log1p(e) and e = exp(-|l|): one exp
  // and one log1p for both, branch-free (selects), so the CPU loops
  // vectorise. The second form is exact in both tails: x = 1, l = 40 gives
  // -log1p(e^-40) = -4.2e-18 rather than 40 - 40 = 0.
  CUVI_HD static float log_prob_e(float x, float l, float e) {
    const float t = log1p_f(e);
    const float sp_pos = max_f(l, 0.0f) + t, sp_neg = max_f(-l, 0.0f) + t;  // softplus(l), softplus(-l)
    const float mixed = -(x * sp_neg + (1.0f - x) * sp_pos);
    return x == 1.0f ? -sp_neg : (x == 0.0f ? -sp_pos : mixed);
  }
  CUVI_HD static float log_prob(float x, const float* p) { return log_prob_e(x, p[0], exp_f(-::fabsf(p[0]))); }
  // d/dl = x - sigmoid(l) = x sigmoid(-l) - (1-x) sigmoid(l) (no cancellation
  // for x = 1 and large l); sigmoid(+-l) from the same e: 1/(1+e) on the
  // side of l's sign, e/(1+e) on the other.
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float l = p[0];
    const float e = exp_f(-::fabsf(l));
    const float r = 1.0f / (1.0f + e), er = e * r;
    const float sig_pos = l >= 0.0f ? r : er, sig_neg = l >= 0.0f ? er : r;  // sigmoid(l), sigmoid(-l)
    const float mixed = x * sig_neg - (1.0f - x) * sig_pos;
    *dx = 0.0f;
    dp[0] = x == 1.0f ? sig_neg : (x == 0.0f ? -sig_pos : mixed);
    return log_prob_e(x, l, e);
  }
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    return rng.uniform() < sigmoid_f(p[0]) ? 1.0f : 0.0f;
  }
  CUVI_HD static void sample_grad(float, const float*, float* dxdp) { dxdp[0] = 0.0f; }
  CUVI_HD static float mean(const float* p) { return sigmoid_f(p[0]); }
  CUVI_HD static float variance(const float* p) { return sigmoid_f(p[0]) * sigmoid_f(-p[0]); }
};

}  // namespace cuvi::kern
