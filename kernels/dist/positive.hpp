// cuvi kernels: InverseGamma(concentration, rate) and Weibull(scale,
// concentration), torch's parameterisations, on x > 0.
#pragma once

#include "gamma.hpp"
#include "support.hpp"

namespace cuvi::kern {

// What the two families share: two positive parameters, reparameterised
// draws, values x > 0.
struct TwoPositiveParamsOnPositives {
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kPositive;

  CUVI_HD static int bad_param(const float* p) { return check::first_nonpositive(p, 2); }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return check::positive(x); }
};

// 1/x ~ Gamma(a, b):
//   log p = a log b - lgamma(a) - (a + 1) log x - b / x
//         = a log(b / x) - log x - b / x - lgamma(a)
struct InverseGamma : TwoPositiveParamsOnPositives {
  static constexpr const char* kName = "InverseGamma";

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "concentration" : (i == 1 ? "rate" : ""); }

  CUVI_HD static float log_prob(float x, const float* p) {
    if (!(x > 0.0f)) return -kInfF;
    const float a = p[0], z = p[1] / x;
    return a * ::logf(z) - ::logf(x) - z - lgamma_f(a);
  }
  // With z = b / x: d/dx = (z - a - 1) / x, d/da = log z - psi(a),
  // d/db = a / b - 1 / x.
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    if (!(x > 0.0f)) {
      *dx = 0.0f;
      dp[0] = 0.0f;
      dp[1] = 0.0f;
      return -kInfF;
    }
    const float a = p[0], b = p[1], z = b / x, lz = ::logf(z);
    *dx = (z - a - 1.0f) / x;
    dp[0] = lz - digamma_f(a);
    dp[1] = a / b - 1.0f / x;
    return a * lz - ::logf(x) - z - lgamma_f(a);
  }
  // x = b / g with g ~ Gamma(a, 1), formed in logs; kept within the floats.
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const float lx = ::logf(p[1]) - standard_gamma_log_f(p[0], rng);
    float x = ::expf(lx);
    if (x < kFltMin) x = kFltMin;
    if (x > kFltMax) x = kFltMax;
    return x;
  }
  // g = b / x: dx/da = -(b / g^2) dg/da = -(x^2 / b) dg/da with dg/da the
  // standard Gamma's implicit reparameterisation gradient (double);
  // dx/db = 1 / g = x / b.
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    const double b = p[1], xd = x;
    dxdp[0] = static_cast<float>(-(xd * xd / b) * standard_gamma_grad_d(static_cast<double>(p[0]), b / xd));
    dxdp[1] = x / p[1];
  }
  // b / (a - 1) for a > 1, b^2 / ((a - 1)^2 (a - 2)) for a > 2, else inf.
  CUVI_HD static float mean(const float* p) { return p[0] > 1.0f ? p[1] / (p[0] - 1.0f) : kInfF; }
  CUVI_HD static float variance(const float* p) {
    const float am1 = p[0] - 1.0f;
    return p[0] > 2.0f ? p[1] * p[1] / (am1 * am1 * (p[0] - 2.0f)) : kInfF;
  }
};

// Weibull(scale l, concentration k), z = x / l:
//   log p = log k - log l + (k - 1) log z - z^k
struct Weibull : TwoPositiveParamsOnPositives {
  static constexpr const char* kName = "Weibull";

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "scale" : (i == 1 ? "concentration" : ""); }

  CUVI_HD static float log_prob(float x, const float* p) {
    if (!(x > 0.0f)) return -kInfF;
    const float l = p[0], k = p[1], lz = ::logf(x / l);
    return ::logf(k) - ::logf(l) + (k - 1.0f) * lz - ::expf(k * lz);
  }
  // d/dx = ((k - 1) - k z^k) / x, d/dl = k (z^k - 1) / l,
  // d/dk = 1/k + log z (1 - z^k)
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    if (!(x > 0.0f)) {
      *dx = 0.0f;
      dp[0] = 0.0f;
      dp[1] = 0.0f;
      return -kInfF;
    }
    const float l = p[0], k = p[1], lz = ::logf(x / l), zk = ::expf(k * lz);
    *dx = ((k - 1.0f) - k * zk) / x;
    dp[0] = k * (zk - 1.0f) / l;
    dp[1] = 1.0f / k + lz * (1.0f - zk);
    return ::logf(k) - ::logf(l) + (k - 1.0f) * lz - zk;
  }
  // Inverse CDF: x = l (-log u)^(1/k), u in the open (0, 1).
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const float e = -::logf(rng.uniform());
    return p[0] * ::expf(::logf(e) / p[1]);
  }
  // x = l E^(1/k): dx/dl = x / l, dx/dk = -x log(E) / k^2 = -x log(x / l) / k.
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    dxdp[0] = x / p[0];
    dxdp[1] = -x * ::logf(x / p[0]) / p[1];
  }
  // l Gamma(1 + 1/k) and l^2 (Gamma(1 + 2/k) - Gamma(1 + 1/k)^2).
  CUVI_HD static float mean(const float* p) { return p[0] * ::expf(lgamma_f(1.0f + 1.0f / p[1])); }
  CUVI_HD static float variance(const float* p) {
    const float g1 = ::expf(lgamma_f(1.0f + 1.0f / p[1])), g2 = ::expf(lgamma_f(1.0f + 2.0f / p[1]));
    return p[0] * p[0] * (g2 - g1 * g1);
  }
};

}  // namespace cuvi::kern
