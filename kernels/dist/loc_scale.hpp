// cuvi kernels: what the location-scale families on the real line share
// (Normal, Laplace, Cauchy, Gumbel, Logistic).
#pragma once

#include "support.hpp"

namespace cuvi::kern {

// What a location-scale family on the reals shares: (loc, scale), loc
// finite, scale positive, any non-NaN value, and dx/dloc = 1,
// dx/dscale = (x - loc)/scale for a draw loc + scale * z.
struct LocScaleOnReals {
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kReal;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "loc" : (i == 1 ? "scale" : ""); }
  CUVI_HD static int bad_param(const float* p) { return check::first_bad_loc_scale(p); }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return check::real_value(x); }
  CUVI_HD static void sample_grad(float x, const float* p, float* dxdp) {
    dxdp[0] = 1.0f;
    dxdp[1] = (x - p[0]) / p[1];
  }
};

}  // namespace cuvi::kern
