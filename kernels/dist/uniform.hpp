// cuvi kernels: Uniform(low, high).
#pragma once

#include "support.hpp"

namespace cuvi::kern {

struct Uniform {
  static constexpr const char* kName = "Uniform";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kInterval;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "low" : (i == 1 ? "high" : ""); }
  // low and high finite, low < high (a violation is reported on `high`).
  CUVI_HD static int bad_param(const float* p) {
    if (!check::real(p[0])) return 0;
    if (!check::real(p[1]) || !(p[0] < p[1])) return 1;
    return -1;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float* p) { return x >= p[0] && x <= p[1]; }

  // As PyTorch: density 1/(high - low) on low <= x < high, else -inf.
  CUVI_HD static float log_prob(float x, const float* p) {
    if (!(x >= p[0] && x < p[1])) return -kInfF;
    return -::logf(p[1] - p[0]);
  }
  // d/dx = 0, d/dlow = 1/(high - low), d/dhigh = -1/(high - low)
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    *dx = 0.0f;
    if (!(x >= p[0] && x < p[1])) {
      dp[0] = 0.0f;
      dp[1] = 0.0f;
      return -kInfF;
    }
    const float w = p[1] - p[0];
    dp[0] = 1.0f / w;
    dp[1] = -1.0f / w;
    return -::logf(w);
  }
  // low + (high - low) u can round up to high (where log_prob is -inf, as in
  // PyTorch); such a draw is moved to the largest float below high.
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const float x = p[0] + (p[1] - p[0]) * rng.uniform();
    return x < p[1] ? x : ::nextafterf(p[1], p[0]);
  }
  // x = low + (high - low) u: dx/dlow = 1 - u = (high - x)/(high - low), dx/dhigh = u
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    const float w = p[1] - p[0];
    dxdp[0] = (p[1] - x) / w;
    dxdp[1] = (x - p[0]) / w;
  }
  CUVI_HD static float mean(const float* p) { return 0.5f * (p[0] + p[1]); }
  CUVI_HD static float variance(const float* p) {
    const float w = p[1] - p[0];
    return w * w / 12.0f;
  }
};

}  // namespace cuvi::kern
