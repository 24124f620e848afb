// cuvi kernels: Categorical by logits or by (unnormalised) probabilities, math
// for ONE row of length K. Values are floats holding an index in [0, K).
#pragma once

#include "support.hpp"

namespace cuvi::kern {

struct CategoricalLogits {
  static constexpr const char* kName = "Categorical";
  static constexpr bool kHasRsample = false;
  static constexpr bool kDiscrete = true;
  static constexpr int kSupport = support::kIntegerInterval;
  static constexpr bool kValueEvent = false;  // a value is one index per row

  CUVI_HD static const char* param_name(int) { return "logits"; }
  // Logits may be -inf (a masked category) but not NaN or +inf, and at least
  // one must be finite. Returns the first offending index (K-1 when all are
  // -inf), or -1.
  CUVI_HD static int bad_param(const float* l, int K) {
    bool any = false;
    for (int i = 0; i < K; ++i) {
      if (l[i] != l[i] || l[i] > kFltMax) return i;
      if (l[i] >= -kFltMax) any = true;
    }
    return any ? -1 : K - 1;
  }
  CUVI_HD static bool param_ok(const float* l, int K) { return bad_param(l, K) < 0; }
  CUVI_HD static bool support_ok(float x, int K) { return check::nonneg_integer(x) && x < static_cast<float>(K); }
  CUVI_HD static bool check_value(const float* x, int K, float* bad) {
    if (support_ok(*x, K)) return true;
    *bad = *x;
    return false;
  }

  CUVI_HD static float logsumexp(const float* l, int K) {
    float m = -kInfF;
    for (int i = 0; i < K; ++i)
      if (l[i] > m) m = l[i];
    float s = 0.0f;
    for (int i = 0; i < K; ++i) s += ::expf(l[i] - m);
    return m + ::logf(s);
  }
  // log p = l_x - logsumexp(l)
  CUVI_HD static float log_prob(float x, const float* l, int K) {
    if (!support_ok(x, K)) return -kInfF;
    return l[static_cast<int>(x)] - logsumexp(l, K);
  }
  // d/dl_j = [j == x] - softmax(l)_j
  CUVI_HD static float log_prob_grad(float x, const float* l, int K, float* dl) {
    const float lse = logsumexp(l, K);
    if (!support_ok(x, K)) {
      for (int j = 0; j < K; ++j) dl[j] = 0.0f;
      return -kInfF;
    }
    const int idx = static_cast<int>(x);
    for (int j = 0; j < K; ++j) dl[j] = (j == idx ? 1.0f : 0.0f) - ::expf(l[j] - lse);
    return l[idx] - lse;
  }
  // Inversion with one uniform: the first j whose cumulative weight
  // exp(l_j - max) exceeds u * total; rounding can leave u * total at or above
  // the last partial sum, then the last category with positive weight wins.
  template <class Rng>
  CUVI_HD static float sample(const float* l, int K, Rng& rng) {
    float m = -kInfF;
    for (int i = 0; i < K; ++i)
      if (l[i] > m) m = l[i];
    float s = 0.0f;
    for (int i = 0; i < K; ++i) s += ::expf(l[i] - m);
    const float target = rng.uniform() * s;
    float c = 0.0f;
    int last = 0;
    for (int j = 0; j < K; ++j) {
      const float w = ::expf(l[j] - m);
      if (w > 0.0f) last = j;
      c += w;
      if (target < c) return static_cast<float>(j);
    }
    return static_cast<float>(last);
  }
};

struct CategoricalProbs {
  static constexpr const char* kName = "Categorical";
  static constexpr bool kHasRsample = false;
  static constexpr bool kDiscrete = true;
  static constexpr int kSupport = support::kIntegerInterval;
  static constexpr bool kValueEvent = false;  // a value is one index per row

  CUVI_HD static const char* param_name(int) { return "probs"; }
  // probs finite and >= 0 with a positive sum (normalised inside); returns
  // the first offending index (K-1 for an all-zero row) or -1.
  CUVI_HD static int bad_param(const float* p, int K) {
    float s = 0.0f;
    for (int i = 0; i < K; ++i) {
      if (!(p[i] >= 0.0f && p[i] <= kFltMax)) return i;
      s += p[i];
    }
    return s > 0.0f ? -1 : K - 1;
  }
  CUVI_HD static bool param_ok(const float* p, int K) { return bad_param(p, K) < 0; }
  CUVI_HD static bool support_ok(float x, int K) { return check::nonneg_integer(x) && x < static_cast<float>(K); }
  CUVI_HD static bool check_value(const float* x, int K, float* bad) {
    if (support_ok(*x, K)) return true;
    *bad = *x;
    return false;
  }

  CUVI_HD static float total(const float* p, int K) {
    float s = 0.0f;
    for (int i = 0; i < K; ++i) s += p[i];
    return s;
  }
  // log p = log p_x - log sum(p)
  CUVI_HD static float log_prob(float x, const float* p, int K) {
    if (!support_ok(x, K)) return -kInfF;
    return ::logf(p[static_cast<int>(x)]) - ::logf(total(p, K));
  }
  // d/dp_j = [j == x]/p_x - 1/sum(p)
  CUVI_HD static float log_prob_grad(float x, const float* p, int K, float* dp) {
    const float s = total(p, K);
    if (!support_ok(x, K)) {
      for (int j = 0; j < K; ++j) dp[j] = 0.0f;
      return -kInfF;
    }
    const int idx = static_cast<int>(x);
    for (int j = 0; j < K; ++j) dp[j] = (j == idx ? 1.0f / p[idx] : 0.0f) - 1.0f / s;
    return ::logf(p[idx]) - ::logf(s);
  }
  template <class Rng>
  CUVI_HD static float sample(const float* p, int K, Rng& rng) {
    const float target = rng.uniform() * total(p, K);
    float c = 0.0f;
    int last = 0;
    for (int j = 0; j < K; ++j) {
      if (p[j] > 0.0f) last = j;
      c += p[j];
      if (target < c) return static_cast<float>(j);
    }
    return static_cast<float>(last);
  }
};

}  // namespace cuvi::kern
