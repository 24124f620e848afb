// A distribution cuvi does not ship, defined entirely outside the library:
// Kumaraswamy(a, b) on (0, 1), density a b x^(a-1) (1 - x^a)^(b-1), CDF
// 1 - (1 - x^a)^b, so the inverse-CDF sample x = (1 - (1-u)^(1/b))^(1/a) is
// reparameterised. One struct of CUVI_HD functions gives batched CPU and CUDA
// kernels, broadcasting, autodiff and ELBO support.
#pragma once

#include <cuvi.hpp>

#include "kernels/dist/support.hpp"
#include "kernels/special.hpp"

namespace custom {

struct KumaraswamyFamily {
  static constexpr const char* kName = "Kumaraswamy";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = cuvi::kern::support::kUnitInterval;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "a" : "b"; }
  CUVI_HD static int bad_param(const float* p) {
    if (!(p[0] > 0.0f && p[0] < 3.0e38f)) return 0;
    if (!(p[1] > 0.0f && p[1] < 3.0e38f)) return 1;
    return -1;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return x > 0.0f && x < 1.0f; }

  CUVI_HD static float log_prob(float x, const float* p) {
    const float a = p[0], b = p[1], lx = ::logf(x);
    const float xa = ::expf(a * lx);
    return ::logf(a) + ::logf(b) + (a - 1.0f) * lx + (b - 1.0f) * ::log1pf(-xa);
  }
  // d/dx = (a-1)/x - (b-1) a x^(a-1)/(1-x^a); d/da = 1/a + log x - (b-1) x^a log x/(1-x^a);
  // d/db = 1/b + log(1-x^a).
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float a = p[0], b = p[1], lx = ::logf(x);
    const float xa = ::expf(a * lx), l1 = ::log1pf(-xa);
    const float r = xa / (1.0f - xa);
    *dx = (a - 1.0f) / x - (b - 1.0f) * a * r / x;
    dp[0] = 1.0f / a + lx - (b - 1.0f) * r * lx;
    dp[1] = 1.0f / b + l1;
    return ::logf(a) + ::logf(b) + (a - 1.0f) * lx + (b - 1.0f) * l1;
  }
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const float u = rng.uniform();
    // 1 - (1-u)^(1/b) = -expm1(log1p(-u)/b), then the 1/a power.
    const float w = -::expm1f(::log1pf(-u) / p[1]);
    return ::expf(::logf(w) / p[0]);
  }
  // Implicit reparameterisation -dF/dtheta / pdf: dx/da = -x log x / a,
  // dx/db = (1 - x^a) log(1 - x^a) / (a b x^(a-1)).
  CUVI_HD static void sample_grad(float x, const float* p, float* d) {
    const float a = p[0], b = p[1], lx = ::logf(x);
    const float xa = ::expf(a * lx);
    d[0] = -x * lx / a;
    d[1] = (1.0f - xa) * ::log1pf(-xa) * x / (a * b * xa);
  }
  // E[x^n] = b B(1 + n/a, b).
  CUVI_HD static float raw_moment(const float* p, float n) {
    const float a = p[0], b = p[1];
    return b * ::expf(cuvi::kern::lgamma_f(1.0f + n / a) + cuvi::kern::lgamma_f(b) -
                      cuvi::kern::lgamma_f(1.0f + n / a + b));
  }
  CUVI_HD static float mean(const float* p) { return raw_moment(p, 1.0f); }
  CUVI_HD static float variance(const float* p) {
    const float m = raw_moment(p, 1.0f);
    return raw_moment(p, 2.0f) - m * m;
  }
};

class Kumaraswamy : public cuvi::dist::Elementwise<KumaraswamyFamily, Kumaraswamy> {
 public:
  Kumaraswamy(cuvi::dist::Arg a, cuvi::dist::Arg b) : Elementwise({a, b}) {}
};

}  // namespace custom
