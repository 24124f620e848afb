// cuvi kernels: the modified Bessel functions I0 and I1 as VonMises needs
// them (log I0, the ratio I1/I0 and 1 - I1/I0), and VonMises(loc,
// concentration) with the Best-Fisher rejection sampler.
#pragma once

#include "support.hpp"

namespace cuvi::kern {

// ---------------------------------------------------------------------------
// Bessel I0 and I1 of a real argument x >= 0, in double inside (the results
// are rounded to float once, at the end):
//   log_i0e = log(I0(x) e^-x), ratio = I1(x)/I0(x), one_minus = 1 - ratio.
// 1 - ratio (~1/(2x) for large x) is formed without cancelling 1 against
// the ratio, so the circular variance and the gradient in the concentration
// stay accurate for large x.
//
// x < 15: the power series with q = x^2/4,
//   I0 = sum_k q^k / (k!)^2,   I1 = (x/2) sum_k q^k / (k! (k+1)!),
// all terms positive (no cancellation); at x = 15 about 30 terms reach 1e-17
// relative. 1 - ratio cancels at most a factor 1/(1 - ratio) < 30 there, in
// double.
// x >= 15: Hankel's asymptotic expansion I_n(x) ~ e^x / sqrt(2 pi x)
//   sum_k (-1)^k c_k(n) / x^k, c_k(n) = prod_{j<=k} (4n^2 - (2j-1)^2) / (k! 8^k),
// i.e. e^-x sqrt(2 pi x) I0 = sum a_k / x^k with a_k = a_{k-1} (2k-1)^2/(8k)
// (all positive) and e^-x sqrt(2 pi x) I1 = sum b_k / x^k with
// b_k = b_{k-1} ((2k-1)^2 - 4)/(8k), b_1 = -3/8 and every b_k < 0 for k >= 1,
// so 1 - ratio = sum (a_k - b_k)/x^k / sum a_k/x^k adds positive terms only.
// 20 terms: at x = 15 the first omitted one is a_20 / 15^20 ~ 1e-13 (the
// series' smallest term sits near k = 2x = 30); the exponentially small part
// the expansion drops is O(e^-2x) = 1e-13 relative.
struct BesselI01 {
  double log_i0e;
  double ratio;
  double one_minus;
};

CUVI_HD BesselI01 bessel_i01_d(double x) {
  BesselI01 r;
  if (x < 15.0) {
    const double q = 0.25 * x * x;
    double t0 = 1.0, s0m1 = 0.0;  // I0 - 1 = sum_{k>=1} t0_k
    double t1 = 1.0, s1 = 1.0;    // I1 / (x/2)
    for (int k = 1; k < 80; ++k) {
      const double dk = static_cast<double>(k);
      t0 *= q / (dk * dk);
      t1 *= q / (dk * (dk + 1.0));
      s0m1 += t0;
      s1 += t1;
      if (t0 <= 1e-17 * (1.0 + s0m1)) break;
    }
    r.log_i0e = ::log1p(s0m1) - x;
    r.ratio = 0.5 * x * s1 / (1.0 + s0m1);
    r.one_minus = 1.0 - r.ratio;
    return r;
  }
  const double y = 1.0 / x;
  double a = 1.0, b = 1.0, yk = 1.0;
  double sa = 1.0, sb = 1.0, sd = 0.0;
  for (int k = 1; k <= 20; ++k) {
    const double dk = static_cast<double>(k), o = 2.0 * dk - 1.0;
    a *= o * o / (8.0 * dk);
    b *= (o * o - 4.0) / (8.0 * dk);
    yk *= y;
    sa += a * yk;
    sb += b * yk;
    sd += (a - b) * yk;
  }
  r.log_i0e = ::log(sa) - 0.5 * ::log(2.0 * kPiD * x);
  r.ratio = sb / sa;
  r.one_minus = sd / sa;
  return r;
}

// log I0(x), x >= 0.
CUVI_HD float log_bessel_i0_f(float x) {
  const double xd = x;
  return static_cast<float>(xd + bessel_i01_d(xd).log_i0e);
}
// log(I0(x) e^-x), x >= 0 (what log densities need for large x).
CUVI_HD float log_bessel_i0e_f(float x) { return static_cast<float>(bessel_i01_d(x).log_i0e); }
// I1(x)/I0(x), x >= 0.
CUVI_HD float bessel_i1_over_i0_f(float x) { return static_cast<float>(bessel_i01_d(x).ratio); }
// 1 - I1(x)/I0(x), x >= 0, without cancellation.
CUVI_HD float bessel_one_minus_i1_over_i0_f(float x) { return static_cast<float>(bessel_i01_d(x).one_minus); }

// ---------------------------------------------------------------------------
// VonMises(loc, concentration k): log p = k cos(x - loc) - log(2 pi I0(k)).
// Written as -2 k sin^2((x - loc)/2) - log(2 pi) - log(I0(k) e^-k), since
// k (cos d - 1) would lose float digits to cancellation for large k. As
// torch (constraints.real), the support is the real line: the density is
// 2 pi periodic, any non-NaN value is accepted, and draws lie in [-pi, pi).
// No reparameterised sampler (as torch).
struct VonMises {
  static constexpr const char* kName = "VonMises";
  static constexpr int kNumParams = 2;
  static constexpr bool kHasRsample = false;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kReal;

  CUVI_HD static const char* param_name(int i) { return i == 0 ? "loc" : (i == 1 ? "concentration" : ""); }
  CUVI_HD static int bad_param(const float* p) { return check::first_bad_loc_scale(p); }
  CUVI_HD static bool param_ok(const float* p) { return bad_param(p) < 0; }
  CUVI_HD static bool support_ok(float x, const float*) { return check::real_value(x); }

  static constexpr float kLog2Pi = 1.83787706640934548356f;

  CUVI_HD static float log_prob(float x, const float* p) {
    const float k = p[1];
    const float h = ::sinf(0.5f * (x - p[0]));
    return -2.0f * k * h * h - kLog2Pi - log_bessel_i0e_f(k);
  }
  // d/dx = -k sin(d), d/dloc = k sin(d),
  // d/dk = cos(d) - I1(k)/I0(k) = (1 - I1/I0) - 2 sin^2(d/2).
  CUVI_HD static float log_prob_grad(float x, const float* p, float* dx, float* dp) {
    const float k = p[1];
    const float d = x - p[0];
    const float h = ::sinf(0.5f * d);
    const BesselI01 b = bessel_i01_d(k);
    *dx = -k * ::sinf(d);
    dp[0] = -*dx;
    dp[1] = static_cast<float>(b.one_minus) - 2.0f * h * h;
    return -2.0f * k * h * h - kLog2Pi - static_cast<float>(b.log_i0e);
  }

  // Best & Fisher (1979), in double. With
  //   tau = 1 + sqrt(1 + 4k^2), rho = (tau - sqrt(2 tau)) / (2k) = 2k / (tau + sqrt(2 tau)),
  //   r = (1 + rho^2) / (2 rho), so r - 1 = (1 - rho)^2 / (2 rho),
  // draw u1, u2, u3; z = cos(pi u1); f = (1 + r z)/(r + z); c = k (r - f);
  // accept if c (2 - c) > u2 or log(c / u2) + 1 - c >= 0; the angle is
  // +-acos(f) (sign from u3), shifted by loc and wrapped into [-pi, pi).
  // Every difference is formed without cancellation (rho, 1 - rho and r - 1
  // by the rationalised forms; with a = pi u1 / 2, r + z = (r - 1) + 2 cos^2 a,
  // r - f = (r^2 - 1)/(r + z), 1 - f = (r - 1) 2 sin^2 a / (r + z), and
  // acos(f) = 2 asin(sqrt((1 - f)/2))), so small k (r ~ 1/k) and large k
  // (r - 1 ~ 1/(2k)) both work. The rng is private to the element (its own
  // Philox counter blocks), so the variable number of draws is harmless.
  template <class Rng>
  CUVI_HD static float sample(const float* p, Rng& rng) {
    const double k = p[1];
    if (!(k > 0.0) || !(k <= kFltMax)) return quiet_nan_f();
    const double s = ::sqrt(1.0 + 4.0 * k * k);
    const double tau = 1.0 + s;
    const double st = ::sqrt(2.0 * tau);
    const double rho = 2.0 * k / (tau + st);
    // tau - 2k = 1 + 1/(s + 2k)
    const double one_minus_rho = (1.0 + 1.0 / (s + 2.0 * k) + st) / (tau + st);
    const double rm1 = one_minus_rho * one_minus_rho / (2.0 * rho);
    double theta = quiet_nan_d();
    for (int it = 0; it < 1000; ++it) {
      const double a = 0.5 * kPiD * static_cast<double>(rng.uniform());
      const double u2 = rng.uniform();
      const double u3 = rng.uniform();
      const double sa = ::sin(a), ca = ::cos(a);
      const double rz = rm1 + 2.0 * ca * ca;                   // r + z
      const double c = k * rm1 * (rm1 + 2.0) / rz;             // k (r - f)
      if (c * (2.0 - c) > u2 || ::log(c / u2) + 1.0 - c >= 0.0) {
        double h = rm1 * sa * sa / rz;                         // (1 - f)/2
        if (h > 1.0) h = 1.0;
        const double t = 2.0 * ::asin(::sqrt(h));
        theta = u3 < 0.5 ? -t : t;
        break;
      }
    }
    // loc + theta wrapped into [-pi, pi).
    double y = ::fmod(static_cast<double>(p[0]) + theta + kPiD, 2.0 * kPiD);
    if (y < 0.0) y += 2.0 * kPiD;
    float out = static_cast<float>(y - kPiD);
    if (out >= kPi) out = -kPi;  // float rounding up to pi
    return out;
  }
  CUVI_HD static void sample_grad(float, const float*, float* dxdp) {
    dxdp[0] = 0.0f;
    dxdp[1] = 0.0f;
  }
  // As torch: the mean is loc and the variance the circular variance
  // 1 - I1(k)/I0(k).
  CUVI_HD static float mean(const float* p) { return p[0]; }
  CUVI_HD static float variance(const float* p) { return bessel_one_minus_i1_over_i0_f(p[1]); }
};

}  // namespace cuvi::kern
