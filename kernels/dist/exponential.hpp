// cuvi kernels: Exponential(rate).
#pragma once

#include "support.hpp"

namespace cuvi::kern {

struct Exponential {
  static constexpr const char* kName = "Exponential";
  static constexpr int kNumParams = 1;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kPositive;  // x >= 0 accepted, as PyTorch

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "rate" : ""; }
  CUVI_HD static int bad_param(const float* p) { return check::positive(p[0]) ? -1 : 0; }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return x >= 0.0f; }

  // log p = log rate - rate x
  CUVI_HD static float log_prob(float x, const float* p) {
    if (!(x >= 0.0f)) return -kInfF;
    return ::logf(p[0]) - p[0] * x;
  }
  // d/dx = -rate, d/drate = 1/rate - x
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    if (!(x >= 0.0f)) {
      *dx = 0.0f;
      dp[0] = 0.0f;
      return -kInfF;
    }
    const float r = p[0];
    *dx = -r;
    dp[0] = 1.0f / r - x;
    return ::logf(r) - r * x;
  }
  // x = -log(u)/rate, u in (0,1)
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    return -::logf(rng.uniform()) / p[0];
  }
  // x = E/rate with E standard exponential: dx/drate = -x/rate
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) { dxdp[0] = -x / p[0]; }
  CUVI_HD static float mean(const float* p) { return 1.0f / p[0]; }
  CUVI_HD static float variance(const float* p) { return 1.0f / (p[0] * p[0]); }
};

}  // namespace cuvi::kern
