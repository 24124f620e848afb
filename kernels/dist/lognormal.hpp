// cuvi kernels: LogNormal(loc, scale): log X ~ Normal(loc, scale).
#pragma once

#include "support.hpp"

namespace cuvi::kern {

struct LogNormal {
  static constexpr const char* kName = "LogNormal";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kPositive;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "loc" : (i == 1 ? "scale" : ""); }
  CUVI_HD static int bad_param(const float* p) { return check::first_bad_loc_scale(p); }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return x > 0.0f; }

  // log p = -z^2/2 - log s - log x - log sqrt(2 pi),  z = (log x - loc)/s;
  // -inf (and zero gradients) off the support. Branch-free (log_f and
  // selects), so the CPU's block loops vectorise it.
  CUVI_HD static float log_prob(float x, const float* p) {
    const bool in = x > 0.0f;
    const float lx = log_f(in ? x : 1.0f);
    const float z = (lx - p[0]) / p[1];
    const float l = -0.5f * z * z - log_f(p[1]) - lx - kLogSqrt2Pi;
    return in ? l : -kInfF;
  }
  // d/dx = -(1 + z/s)/x, d/dloc = z/s, d/dscale = (z^2 - 1)/s
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const bool in = x > 0.0f;
    const float xs = in ? x : 1.0f;
    const float s = p[1];
    const float lx = log_f(xs);
    const float z = (lx - p[0]) / s;
    const float zs = z / s;
    *dx = in ? -(1.0f + zs) / xs : 0.0f;
    dp[0] = in ? zs : 0.0f;
    dp[1] = in ? (z * z - 1.0f) / s : 0.0f;
    const float l = -0.5f * z * z - log_f(s) - lx - kLogSqrt2Pi;
    return in ? l : -kInfF;
  }
  // exp(loc + scale n), clamped below at the smallest normal float (an
  // underflow to 0 would leave the support).
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const float x = ::expf(p[0] + p[1] * rng.normal());
    return x < kFltMin ? kFltMin : x;
  }
  // x = exp(loc + scale * eps): dx/dloc = x, dx/dscale = x eps = x (log x - loc)/scale
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    dxdp[0] = x;
    dxdp[1] = x > 0.0f ? x * (::logf(x) - p[0]) / p[1] : 0.0f;
  }
  CUVI_HD static float mean(const float* p) { return ::expf(p[0] + 0.5f * p[1] * p[1]); }
  // (exp(s^2) - 1) exp(2 loc + s^2)
  CUVI_HD static float variance(const float* p) {
    const float s2 = p[1] * p[1];
    return ::expm1f(s2) * ::expf(2.0f * p[0] + s2);
  }
};

}  // namespace cuvi::kern
