// cuvi kernels: closed-form KL divergences with gradients.
#pragma once

#include "support.hpp"

namespace cuvi::kern {

// KL(N(lq, sq) || N(lp, sp)) = log(sp/sq) + (sq^2 + (lq - lp)^2)/(2 sp^2) - 1/2
//                            = (r^2 - 1)/2 - log r + m^2/2,  r = sq/sp, m = (lq - lp)/sp
CUVI_HD float kl_normal_normal(float lq, float sq, float lp, float sp) {
  const float r = sq / sp;
  const float m = (lq - lp) / sp;
  return 0.5f * (r * r - 1.0f) - ::logf(r) + 0.5f * m * m;
}

// Gradients d[0..3] = dKL/d(lq, sq, lp, sp):
//   dlq = m/sp, dsq = (r^2 - 1)/sq, dlp = -m/sp, dsp = (1 - r^2 - m^2)/sp.
CUVI_HD float kl_normal_normal_grad(float lq, float sq, float lp, float sp, float* d) {
  const float r = sq / sp;
  const float m = (lq - lp) / sp;
  const float r2 = r * r;
  d[0] = m / sp;
  d[1] = (r2 - 1.0f) / sq;
  d[2] = -m / sp;
  d[3] = (1.0f - r2 - m * m) / sp;
  return 0.5f * (r2 - 1.0f) - ::logf(r) + 0.5f * m * m;
}

}  // namespace cuvi::kern
