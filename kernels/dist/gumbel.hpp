// cuvi kernels: Gumbel(loc, scale) (PyTorch's) and Logistic(loc, scale)
// (NumPyro's), two location-scale families on the real line, both
// reparameterised by their inverse CDF.
#pragma once

#include "loc_scale.hpp"

namespace cuvi::kern {

// Gumbel (maximum): z = (x - loc)/s, log p = -log s - z - exp(-z);
// CDF exp(-exp(-z)).
struct Gumbel : LocScaleOnReals {
  static constexpr const char* kName = "Gumbel";

  CUVI_HD static float log_prob(float x, const float* p) {
    const float z = (x - p[0]) / p[1];
    return -::logf(p[1]) - z - ::expf(-z);
  }
  // d/dz log p = e^-z - 1, so d/dx = (e^-z - 1)/s, d/dloc = -d/dx,
  // d/ds = -1/s - z (e^-z - 1)/s = (z (1 - e^-z) - 1)/s.
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float s = p[1];
    const float z = (x - p[0]) / s;
    const float e = ::expf(-z);
    const float g = e - 1.0f;  // d log p / dz
    *dx = g / s;
    dp[0] = -*dx;
    dp[1] = -(1.0f + z * g) / s;
    return -::logf(s) - z - e;
  }
  // Inverse CDF: x = loc - s log(-log u), u in the open (0, 1).
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    return p[0] - p[1] * ::logf(-::logf(rng.uniform()));
  }
  // loc + s * Euler's gamma; (pi s)^2 / 6.
  CUVI_HD static float mean(const float* p) { return p[0] + p[1] * 0.57721566490153286061f; }
  CUVI_HD static float variance(const float* p) { return p[1] * p[1] * 1.64493406684822643647f; }  // pi^2/6
};

// Logistic: z = (x - loc)/s, log p = -z - 2 softplus(-z) - log s
//         = -|z| - 2 log1p(exp(-|z|)) - log s  (symmetric, no overflow);
// CDF sigmoid(z).
struct Logistic : LocScaleOnReals {
  static constexpr const char* kName = "Logistic";

  CUVI_HD static float log_prob(float x, const float* p) {
    const float a = ::fabsf((x - p[0]) / p[1]);
    return -a - 2.0f * ::log1pf(::expf(-a)) - ::logf(p[1]);
  }
  // d/dz log p = 1 - 2 sigmoid(z) = -tanh(z/2): d/dx = g/s, d/dloc = -g/s,
  // d/ds = -(1 + z g)/s.
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float s = p[1];
    const float z = (x - p[0]) / s;
    const float g = -tanh_f(0.5f * z);
    *dx = g / s;
    dp[0] = -*dx;
    dp[1] = -(1.0f + z * g) / s;
    const float a = ::fabsf(z);
    return -a - 2.0f * ::log1pf(::expf(-a)) - ::logf(s);
  }
  // Inverse CDF: x = loc + s logit(u) = loc + s (log u - log1p(-u)).
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const float u = rng.uniform();
    return p[0] + p[1] * (::logf(u) - ::log1pf(-u));
  }
  // loc; (pi s)^2 / 3.
  CUVI_HD static float mean(const float* p) { return p[0]; }
  CUVI_HD static float variance(const float* p) { return p[1] * p[1] * 3.28986813369645287294f; }  // pi^2/3
};

}  // namespace cuvi::kern
