// A family the library does not ship, written as a user would, against the
// installed headers only: Gumbel(loc, scale), log-density -(z + e^-z) - log s
// with z = (x - loc) / s, reparameterised through the inverse CDF
// x = loc - s log(-log u).
#pragma once

#include <cuvi.hpp>

#include "kernels/dist/support.hpp"

namespace consumer {

struct GumbelFamily {
  static constexpr const char* kName = "Gumbel";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = cuvi::kern::support::kReal;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "loc" : "scale"; }
  CUVI_HD static int bad_param(const float* p) {
    if (!(p[0] > -3.0e38f && p[0] < 3.0e38f)) return 0;
    if (!(p[1] > 0.0f && p[1] < 3.0e38f)) return 1;
    return -1;
  }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return x > -3.0e38f && x < 3.0e38f; }

  CUVI_HD static float log_prob(float x, const float* p) {
    const float z = (x - p[0]) / p[1];
    return -(z + ::expf(-z)) - ::logf(p[1]);
  }
  // d/dz = e^-z - 1; dz/dx = 1/s, dz/dloc = -1/s, dz/ds = -z/s (and -1/s from -log s).
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float s = p[1], z = (x - p[0]) / s, e = ::expf(-z);
    *dx = (e - 1.0f) / s;
    dp[0] = (1.0f - e) / s;
    dp[1] = (z * (1.0f - e) - 1.0f) / s;
    return -(z + e) - ::logf(s);
  }
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const float u = rng.uniform();  // in (0, 1)
    return p[0] - p[1] * ::logf(-::logf(u));
  }
  // x = loc + s g with g = -log(-log u): dx/dloc = 1, dx/ds = (x - loc) / s.
  CUVI_HD static void sample_grad(float x, const float* p, float* d) {
    d[0] = 1.0f;
    d[1] = (x - p[0]) / p[1];
  }
  CUVI_HD static float mean(const float* p) { return p[0] + p[1] * 0.5772156649f; }
  CUVI_HD static float variance(const float* p) { return 1.6449340668f * p[1] * p[1]; }
};

class Gumbel : public cuvi::dist::Elementwise<GumbelFamily, Gumbel> {
 public:
  Gumbel(cuvi::dist::Arg loc, cuvi::dist::Arg scale) : Elementwise({loc, scale}) {}
};

// True when gumbel.cu (compiled when the package has CUDA) registered the
// family's CUDA kernels.
bool gumbel_has_cuda_kernels();

}  // namespace consumer
