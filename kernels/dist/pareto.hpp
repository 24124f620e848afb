// cuvi kernels: Pareto(scale, alpha) (PyTorch's parameterisation: support
// x >= scale) and Chi2(df) = Gamma(df/2, rate 1/2).
#pragma once

#include "gamma.hpp"
#include "support.hpp"

namespace cuvi::kern {

// Pareto: log p = log alpha + alpha log scale - (alpha + 1) log x on
// x >= scale, written as log alpha - log x - alpha log(x/scale) (x/scale >= 1
// is exact in its rounding for x >= scale, and no large terms cancel).
// The support depends on the parameter: support_ok reads p[0].
struct Pareto {
  static constexpr const char* kName = "Pareto";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kGreaterThan;  // x >= p[0]

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "scale" : (i == 1 ? "alpha" : ""); }
  CUVI_HD static int bad_param(const float* p) { return check::first_nonpositive(p, 2); }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  // x >= scale (NaN fails; +inf is in the support, its density 0).
  CUVI_HD static bool support_ok(float x, const float* p) { return x >= p[0]; }

  CUVI_HD static float log_prob(float x, const float* p) {
    if (!(x >= p[0])) return -kInfF;
    const float a = p[1];
    return ::logf(a) - ::logf(x) - a * ::logf(x / p[0]);
  }
  // d/dx = -(alpha + 1)/x, d/dscale = alpha/scale, d/dalpha = 1/alpha - log(x/scale).
  // Below the support the density is 0 and so are the gradients.
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float s = p[0], a = p[1];
    if (!(x >= s)) {
      *dx = 0.0f;
      dp[0] = 0.0f;
      dp[1] = 0.0f;
      return -kInfF;
    }
    const float lr = ::logf(x / s);
    *dx = -(a + 1.0f) / x;
    dp[0] = a / s;
    dp[1] = 1.0f / a - lr;
    return ::logf(a) - ::logf(x) - a * lr;
  }
  // Inverse CDF (1 - F(x) = (scale/x)^alpha): x = scale exp(E / alpha) with
  // E = -log u ~ Exponential(1), u in the open (0, 1).
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    return p[0] * ::expf(-::logf(rng.uniform()) / p[1]);
  }
  // dx/dscale = x/scale; dx/dalpha = -x E/alpha^2 = -x log(x/scale)/alpha.
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    dxdp[0] = x / p[0];
    dxdp[1] = -x * ::logf(x / p[0]) / p[1];
  }
  // As torch: mean inf for alpha <= 1, else alpha scale/(alpha - 1);
  // variance inf for alpha <= 2, else scale^2 alpha / ((alpha - 1)^2 (alpha - 2)).
  CUVI_HD static float mean(const float* p) {
    const float a = p[1];
    return a <= 1.0f ? kInfF : a * p[0] / (a - 1.0f);
  }
  CUVI_HD static float variance(const float* p) {
    const float a = p[1];
    if (a <= 2.0f) return kInfF;
    const float am1 = a - 1.0f;
    return p[0] * p[0] * a / (am1 * am1 * (a - 2.0f));
  }
};

// Chi2(df) = Gamma(df/2, 1/2): every formula is Gamma's at (df/2, 1/2), and
// the derivative with respect to df is half the one with respect to the
// Gamma's concentration (log_prob and the implicit-reparameterisation
// gradient of the draw alike).
struct Chi2 {
  static constexpr const char* kName = "Chi2";
  static constexpr int kNumParams = 1;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kPositive;  // x >= 0 accepted, as Gamma

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "df" : ""; }
  CUVI_HD static int bad_param(const float* p) { return check::positive(p[0]) ? -1 : 0; }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return x >= 0.0f; }

  CUVI_HD static float log_prob(float x, const float* p) {
    const float g[2] = {0.5f * p[0], 0.5f};
    return Gamma::log_prob(x, g);
  }
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float g[2] = {0.5f * p[0], 0.5f};
    float dg[2];
    const float l = Gamma::log_prob_grad(x, g, dx, dg);
    dp[0] = 0.5f * dg[0];
    return l;
  }
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const float g[2] = {0.5f * p[0], 0.5f};
    return Gamma::sample(g, rng);
  }
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    const float g[2] = {0.5f * p[0], 0.5f};
    float dg[2];
    Gamma::sample_grad(x, g, dg);
    dxdp[0] = 0.5f * dg[0];
  }
  CUVI_HD static float mean(const float* p) { return p[0]; }
  CUVI_HD static float variance(const float* p) { return 2.0f * p[0]; }
};

}  // namespace cuvi::kern
