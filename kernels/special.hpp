// cuvi kernels: special functions, identical formulas on host and device.
//
// Float versions are what the batched distribution kernels use; double
// versions back the implicit-reparameterisation gradients (incomplete gamma
// and beta functions and their derivatives in the shape parameters), which
// need more precision than float can carry through a finite difference.
//
// We deliberately do not call lgammaf/lgamma: glibc's writes the global
// `signgam` (a data race in OpenMP loops) and libdevice's differs from
// glibc's in the last bits. Everything below is written from the textbook
// series (Stirling, Taylor series around 2 with zeta coefficients, Lentz's
// continued fractions).
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#include "common.hpp"

namespace cuvi::kern {

// ---------------------------------------------------------------------------
// Overloaded wrappers so that templates below call the float function for
// float and the double function for double on both compilers.
CUVI_HD float k_log(float x) { return ::logf(x); }
CUVI_HD double k_log(double x) { return ::log(x); }
CUVI_HD float k_log1p(float x) { return ::log1pf(x); }
CUVI_HD double k_log1p(double x) { return ::log1p(x); }
CUVI_HD float k_exp(float x) { return ::expf(x); }
CUVI_HD double k_exp(double x) { return ::exp(x); }
CUVI_HD float k_expm1(float x) { return ::expm1f(x); }
CUVI_HD double k_expm1(double x) { return ::expm1(x); }
CUVI_HD float k_sqrt(float x) { return ::sqrtf(x); }
CUVI_HD double k_sqrt(double x) { return ::sqrt(x); }
CUVI_HD float k_fabs(float x) { return ::fabsf(x); }
CUVI_HD double k_fabs(double x) { return ::fabs(x); }
CUVI_HD float k_floor(float x) { return ::floorf(x); }
CUVI_HD double k_floor(double x) { return ::floor(x); }

constexpr float kInfF = std::numeric_limits<float>::infinity();
constexpr double kInfD = std::numeric_limits<double>::infinity();
constexpr float kNanF = std::numeric_limits<float>::quiet_NaN();
constexpr double kNanD = std::numeric_limits<double>::quiet_NaN();
constexpr float kFltMax = 3.402823466e+38f;
constexpr float kFltMin = 1.175494351e-38f;  // smallest normal float
constexpr float kHalfLog2PiF = 0.91893853320467274178f;
constexpr double kHalfLog2PiD = 0.91893853320467274178;
constexpr double kEulerD = 0.57721566490153286061;

CUVI_HD float quiet_nan_f() { return kNanF; }
CUVI_HD double quiet_nan_d() { return kNanD; }
CUVI_HD bool finite_f(float x) { return k_fabs(x) <= kFltMax; }  // false for NaN and +-inf
CUVI_HD bool finite_d(double x) { return k_fabs(x) <= 1.7976931348623157e308; }

// ---------------------------------------------------------------------------
// Stirling correction s(x) = lgamma(x) - [(x - 1/2) log x - x + log(2 pi)/2],
// valid for x >= 6 (float) / x >= 10 (double): the asymptotic series
// sum_k B_2k / (2k (2k-1) x^(2k-1)).
// Float: terms through x^-9; the first omitted term at x = 6 is
// 691/(360360 * 6^11) = 5e-12, far below float resolution.
CUVI_HD float stirling_corr_f(float x) {
  const float r = 1.0f / x;
  const float r2 = r * r;
  return r * (1.0f / 12.0f +
              r2 * (-1.0f / 360.0f + r2 * (1.0f / 1260.0f + r2 * (-1.0f / 1680.0f + r2 * (1.0f / 1188.0f)))));
}
// Double: terms through x^-15; the first omitted term at x = 10 is
// B_18/(18*17*10^17) = 1.8e-18.
CUVI_HD double stirling_corr_d(double x) {
  const double r = 1.0 / x;
  const double r2 = r * r;
  return r * (1.0 / 12.0 +
              r2 * (-1.0 / 360.0 +
                    r2 * (1.0 / 1260.0 +
                          r2 * (-1.0 / 1680.0 +
                                r2 * (1.0 / 1188.0 +
                                      r2 * (-691.0 / 360360.0 + r2 * (1.0 / 156.0 + r2 * (-3617.0 / 122400.0))))))));
}

// lgamma(2 + t) for |t| <= 1/2: Taylor series
//   lgamma(2+t) = (1-gamma) t + sum_{k>=2} (-1)^k (zeta(k)-1)/k t^k,
// coefficients computed in 40-digit arithmetic. (zeta(k)-1) ~ 2^-k, so the
// k-th term is ~ 4^-k/k at |t| = 1/2: through k = 13 the truncation error is
// below 2e-9 absolute. Exactly 0 at t = 0 (x = 2) and x = 1 reaches it via
// lgamma(1) = lgamma(2) - log 1, so both roots are exact.
CUVI_HD float lgamma2_series_f(float t) {
  float p = -9.439488275268397e-06f;
  p = p * t + 2.050721277567069e-05f;
  p = p * t + -4.492623673813314e-05f;
  p = p * t + 9.945751278180853e-05f;
  p = p * t + -0.00022315475845357939f;
  p = p * t + 0.0005096695247430425f;
  p = p * t + -0.001192753911703261f;
  p = p * t + 0.0028905103307415234f;
  p = p * t + -0.007385551028673986f;
  p = p * t + 0.020580808427784546f;
  p = p * t + -0.0673523010531981f;
  p = p * t + 0.3224670334241132f;
  p = p * t + 0.42278433509846713f;
  return p * t;
}

// digamma(2 + t) for |t| <= 1/2:
//   psi(2+t) = (1-gamma) + sum_{k>=2} (-1)^k (zeta(k)-1) t^(k-1);
// through k = 15 the truncation error is below 1e-9.
CUVI_HD float digamma2_series_f(float t) {
  float p = 1.528225940865187e-05f;
  p = p * t + -3.058823630702049e-05f;
  p = p * t + 6.124813505870483e-05f;
  p = p * t + -0.00012271334757848915f;
  p = p * t + 0.0002460865533080483f;
  p = p * t + -0.0004941886041194645f;
  p = p * t + 0.0009945751278180853f;
  p = p * t + -0.0020083928260822143f;
  p = p * t + 0.00407735619794434f;
  p = p * t + -0.008349277381922827f;
  p = p * t + 0.01734306198444914f;
  p = p * t + -0.03692775514336993f;
  p = p * t + 0.08232323371113819f;
  p = p * t + -0.2020569031595943f;
  p = p * t + 0.6449340668482264f;
  return p * t + 0.42278433509846713f;
}

// log Gamma(x) in float for x > 0 (reflection for x < 0, +inf at the poles).
// x >= 6: Stirling, written as (x - 1/2)(log x - 1) - 1/2 + log(2 pi)/2 + s(x)
//   so the large terms do not cancel (lgamma(225) has 1 ulp error).
// x < 6: the series around 2 at an exactly computed t, with
//   x < 0.5:        lgamma(x) = lgamma(2 + x) - log(x) - log1p(x)      (t = x)
//   0.5 <= x < 1.5: lgamma(x) = lgamma(2 + t) - log1p(t),  t = x - 1  (exact)
//   1.5 <= x < 2.5: t = x - 2                                         (exact)
//   2.5 <= x < 6:   Gamma(x) = Gamma(y) y (y+1)...(x-1), y = x - n in [1.5, 2.5)
// so both roots are exact (x = 1: t = 0, log1p(0) = 0) and the error near
// them is relative: ~2e-7 of |lgamma| near 1 and 2, ~1e-7 elsewhere.
CUVI_HD float lgamma_f(float x) {
  if (!(x > 0.0f)) {
    if (x != x) return x;
    if (x == k_floor(x)) return kInfF;  // poles at 0, -1, -2, ...
    // Reflection: lgamma(x) = log(pi / |sin(pi x)|) - lgamma(1 - x).
    const double s = ::sin(kPiD * (static_cast<double>(x) - ::floor(static_cast<double>(x))));
    return static_cast<float>(::log(kPiD / ::fabs(s))) - lgamma_f(1.0f - x);
  }
  if (x >= 6.0f) {
    if (x > 1e30f) return x * (::logf(x) - 1.0f);
    return (x - 0.5f) * (::logf(x) - 1.0f) + (kHalfLog2PiF - 0.5f) + stirling_corr_f(x);
  }
  if (x < 0.5f) return lgamma2_series_f(x) - (::logf(x) + ::log1pf(x));
  if (x < 1.5f) {
    const float t = x - 1.0f;
    return lgamma2_series_f(t) - ::log1pf(t);
  }
  if (x < 2.5f) return lgamma2_series_f(x - 2.0f);
  float y = x;
  float prod = 1.0f;
  while (y >= 2.5f) {
    y -= 1.0f;  // exact: x < 6 has an ulp dividing 1
    prod *= y;
  }
  return lgamma2_series_f(y - 2.0f) + ::logf(prod);
}

// lgamma(2 + t) for |t| <= 1/2 in double: the same series through k = 27
// (first omitted term < 4^-28/28 ~ 5e-19).
CUVI_HD double lgamma2_series_d(double t) {
  double p = -2.7595228851242334e-10;
  p = p * t + 5.731367241678862e-10;
  p = p * t + -1.1921401405860912e-09;
  p = p * t + 2.4836745438024785e-09;
  p = p * t + -5.183475041970047e-09;
  p = p * t + 1.0838659214896955e-08;
  p = p * t + -2.2711094608943164e-08;
  p = p * t + 4.7698101693639804e-08;
  p = p * t + -1.0043224823968099e-07;
  p = p * t + 2.1207184805554665e-07;
  p = p * t + -4.492469198764566e-07;
  p = p * t + 9.55141213040742e-07;
  p = p * t + -2.039215753801366e-06;
  p = p * t + 4.374866789907488e-06;
  p = p * t + -9.439488275268397e-06;
  p = p * t + 2.050721277567069e-05;
  p = p * t + -4.492623673813314e-05;
  p = p * t + 9.945751278180853e-05;
  p = p * t + -0.00022315475845357939;
  p = p * t + 0.0005096695247430425;
  p = p * t + -0.001192753911703261;
  p = p * t + 0.0028905103307415234;
  p = p * t + -0.007385551028673986;
  p = p * t + 0.020580808427784546;
  p = p * t + -0.0673523010531981;
  p = p * t + 0.3224670334241132;
  p = p * t + 0.42278433509846713;
  return p * t;
}

// log Gamma(x) in double: x >= 10 Stirling with terms through x^-15; below,
// the windows of lgamma_f with the longer series (at most 8 factors in the
// product for 2.5 <= x < 10). Exact at 1 and 2, ~1e-15 relative elsewhere.
CUVI_HD double lgamma_d(double x) {
  if (!(x > 0.0)) {
    if (x != x) return x;
    if (x == ::floor(x)) return kInfD;
    const double s = ::sin(kPiD * (x - ::floor(x)));
    return ::log(kPiD / ::fabs(s)) - lgamma_d(1.0 - x);
  }
  if (x >= 10.0) {
    if (x > 1e300) return x * (::log(x) - 1.0);
    return (x - 0.5) * (::log(x) - 1.0) + (kHalfLog2PiD - 0.5) + stirling_corr_d(x);
  }
  if (x < 0.5) return lgamma2_series_d(x) - (::log(x) + ::log1p(x));
  if (x < 1.5) {
    const double t = x - 1.0;
    return lgamma2_series_d(t) - ::log1p(t);
  }
  if (x < 2.5) return lgamma2_series_d(x - 2.0);
  double y = x;
  double prod = 1.0;
  while (y >= 2.5) {
    y -= 1.0;
    prod *= y;
  }
  return lgamma2_series_d(y - 2.0) + ::log(prod);
}

// Asymptotic digamma remainder: psi(x) = log x - 1/(2x) + r(x),
// r(x) = -sum_k B_2k / (2k x^2k).
// Float: through x^-10; at x >= 6 the first omitted term is 691/(32760 * 6^12) = 1e-11.
CUVI_HD float digamma_asym_rem_f(float x) {
  const float r2 = 1.0f / (x * x);
  return -r2 * (1.0f / 12.0f +
                r2 * (-1.0f / 120.0f + r2 * (1.0f / 252.0f + r2 * (-1.0f / 240.0f + r2 * (1.0f / 132.0f)))));
}
// Double: through x^-16; at x >= 10 the first omitted term is B_18/(18*10^18) = 3e-18.
CUVI_HD double digamma_asym_rem_d(double x) {
  const double r2 = 1.0 / (x * x);
  return -r2 * (1.0 / 12.0 +
                r2 * (-1.0 / 120.0 +
                      r2 * (1.0 / 252.0 +
                            r2 * (-1.0 / 240.0 +
                                  r2 * (1.0 / 132.0 + r2 * (-691.0 / 32760.0 + r2 * (1.0 / 12.0 + r2 * (-3617.0 / 8160.0))))))));
}

// digamma (psi) in float. x >= 6: asymptotic series; below, the series
// around 2 at an exactly computed t (same windows as lgamma_f):
//   x < 0.5: psi(x) = psi(2 + x) - 1/x - 1/(1 + x);  x < 1.5: psi(1 + x) - 1/x;
//   2.5 <= x < 6: psi(x) = psi(y) + sum 1/(y + k) (positive terms only).
// x < 0: reflection psi(x) = psi(1 - x) - pi / tan(pi x).
// Absolute error ~1e-7 near the root 1.4616; ~1e-7 relative elsewhere.
CUVI_HD float digamma_f(float x) {
  if (x != x) return x;
  if (x <= 0.0f) {
    if (x == k_floor(x)) return quiet_nan_f();
    const double f = static_cast<double>(x) - ::floor(static_cast<double>(x));
    const double cot = ::cos(kPiD * f) / ::sin(kPiD * f);
    return digamma_f(1.0f - x) - static_cast<float>(kPiD * cot);
  }
  if (x >= 6.0f) return ::logf(x) - 0.5f / x + digamma_asym_rem_f(x);
  if (x < 0.5f) return digamma2_series_f(x) - (1.0f / x + 1.0f / (1.0f + x));
  if (x < 1.5f) return digamma2_series_f(x - 1.0f) - 1.0f / x;
  if (x < 2.5f) return digamma2_series_f(x - 2.0f);
  float acc = 0.0f;
  float y = x;
  while (y >= 2.5f) {
    y -= 1.0f;
    acc += 1.0f / y;
  }
  return digamma2_series_f(y - 2.0f) + acc;
}

// digamma in double: recur up to x >= 10, then the asymptotic series.
CUVI_HD double digamma_d(double x) {
  if (x != x) return x;
  if (x <= 0.0) {
    if (x == ::floor(x)) return quiet_nan_d();
    const double f = x - ::floor(x);
    return digamma_d(1.0 - x) - kPiD * ::cos(kPiD * f) / ::sin(kPiD * f);
  }
  double acc = 0.0;
  while (x < 10.0) {
    acc -= 1.0 / x;
    x += 1.0;
  }
  return acc + ::log(x) - 0.5 / x + digamma_asym_rem_d(x);
}

// trigamma psi'(x) = sum_n 1/(x+n)^2: recur up to x >= 10 (float: 6), then
// psi'(x) = 1/x + 1/(2x^2) + sum_k B_2k / x^(2k+1). Positive terms only.
// Reflection for x < 0: psi'(1-x) + psi'(x) = pi^2 / sin^2(pi x).
CUVI_HD double trigamma_d(double x) {
  if (x != x) return x;
  if (x <= 0.0) {
    if (x == ::floor(x)) return kInfD;
    const double s = ::sin(kPiD * (x - ::floor(x)));
    return kPiD * kPiD / (s * s) - trigamma_d(1.0 - x);
  }
  double acc = 0.0;
  while (x < 10.0) {
    acc += 1.0 / (x * x);
    x += 1.0;
  }
  const double r = 1.0 / x;
  const double r2 = r * r;
  // through B_16 / x^17; at x >= 10 the first omitted term is B_18/10^19 = 6e-18
  const double series =
      r * (1.0 + r * (0.5 + r * (1.0 / 6.0 +
                                 r2 * (-1.0 / 30.0 +
                                       r2 * (1.0 / 42.0 +
                                             r2 * (-1.0 / 30.0 +
                                                   r2 * (5.0 / 66.0 +
                                                         r2 * (-691.0 / 2730.0 + r2 * (7.0 / 6.0 + r2 * (-3617.0 / 510.0))))))))));
  return acc + series;
}

CUVI_HD float trigamma_f(float x) {
  if (x != x) return x;
  if (x <= 0.0f) return static_cast<float>(trigamma_d(static_cast<double>(x)));
  float acc = 0.0f;
  while (x < 6.0f) {
    acc += 1.0f / (x * x);
    x += 1.0f;
  }
  const float r = 1.0f / x;
  const float r2 = r * r;
  // through B_8 / x^9; at x >= 6 the first omitted term is (5/66)/6^11 = 2e-10
  const float series =
      r * (1.0f + r * (0.5f + r * (1.0f / 6.0f + r2 * (-1.0f / 30.0f + r2 * (1.0f / 42.0f + r2 * (-1.0f / 30.0f))))));
  return acc + series;
}

// psi(a + b) - psi(a) for a > 0, b >= 0 without the cancellation of the two
// digammas when b << a (Beta/Dirichlet/StudentT gradients need it: e.g.
// psi(14.45) - psi(14) = 0.031 from two values of 2.6).
// Shift a up to >= 6 / 10 (each step adds b / ((a+k)(a+b+k)) > 0), then
//   psi(a+b) - psi(a) = log1p(b/a) + b / (2 a (a+b)) + r(a+b) - r(a),
// r the asymptotic remainder (|r| < 2.4e-3, so its difference is harmless).
template <class T>
CUVI_HD T digamma_diff(T a, T b) {
  // asymptotic remainder accurate from 6 (float, terms to x^-10) / 10 (double)
  constexpr T kBig = sizeof(T) == sizeof(float) ? T(6) : T(10);
  // Outside the domain (a <= 0, -inf, NaN): NaN, and no shift loop (which
  // would never end for a = -inf or a <= -2^24, where a + 1 == a).
  if (!(a > T(0))) return sizeof(T) == sizeof(float) ? T(quiet_nan_f()) : T(quiet_nan_d());
  T acc = T(0);
  while (a < kBig) {
    acc += b / (a * (a + b));
    a += T(1);
  }
  T rem;
  if constexpr (sizeof(T) == sizeof(float)) {
    rem = digamma_asym_rem_f(a + b) - digamma_asym_rem_f(a);
  } else {
    rem = digamma_asym_rem_d(a + b) - digamma_asym_rem_d(a);
  }
  return acc + k_log1p(b / a) + b / (T(2) * a * (a + b)) + rem;
}

// log B(a, b) = lgamma(a) + lgamma(b) - lgamma(a + b), a, b > 0, with the
// large terms cancelled analytically (Stirling) when a parameter is large:
// p = min, q = max;
//  p >= 6 (float) / 10 (double): lbeta = log(2 pi)/2 - log(q)/2
//      + (p - 1/2) log(p/(p+q)) + q log1p(-p/(p+q)) + s(p) + s(q) - s(p+q)
//  q >= 6/10 > p: lbeta = lgamma(p) + s(q) - s(p+q) - p log(p+q) + p
//      + (q - 1/2) log1p(-p/(p+q))
//  otherwise the plain sum (all terms small).
template <class T>
CUVI_HD T lbeta(T a, T b) {
  const T p = a < b ? a : b;
  const T q = a < b ? b : a;
  constexpr T kBig = sizeof(T) == sizeof(float) ? T(6) : T(10);
  constexpr T kHalfLog2Pi = T(0.91893853320467274178);
  const T pq = p + q;
  if constexpr (sizeof(T) == sizeof(float)) {
    if (p >= kBig) {
      return kHalfLog2Pi - T(0.5) * k_log(q) + (p - T(0.5)) * k_log(p / pq) + q * k_log1p(-p / pq) + stirling_corr_f(p) +
             stirling_corr_f(q) - stirling_corr_f(pq);
    }
    if (q >= kBig) {
      return lgamma_f(p) + stirling_corr_f(q) - stirling_corr_f(pq) - p * k_log(pq) + p + (q - T(0.5)) * k_log1p(-p / pq);
    }
    return lgamma_f(p) + lgamma_f(q) - lgamma_f(pq);
  } else {
    if (p >= kBig) {
      return kHalfLog2Pi - T(0.5) * k_log(q) + (p - T(0.5)) * k_log(p / pq) + q * k_log1p(-p / pq) + stirling_corr_d(p) +
             stirling_corr_d(q) - stirling_corr_d(pq);
    }
    if (q >= kBig) {
      return lgamma_d(p) + stirling_corr_d(q) - stirling_corr_d(pq) - p * k_log(pq) + p + (q - T(0.5)) * k_log1p(-p / pq);
    }
    return lgamma_d(p) + lgamma_d(q) - lgamma_d(pq);
  }
}

// ---------------------------------------------------------------------------
// exp, log and log1p (float) written out branch-free, the same formulas on
// host and device. The reason is the CPU: glibc's expf/log1pf are opaque
// scalar calls, so a loop over a softplus or a Bernoulli-logits log-density
// cannot be vectorised; these inline into straight-line code (selects, a
// polynomial, integer exponent arithmetic) that GCC vectorises even at the
// baseline x86-64 ISA. Measured over every float (tests/kernels/
// test_special.cpp samples them; an exhaustive run was done once): exp_f
// within 1.23 ulp and log1p_f within 1.44 ulp of the correctly rounded
// result, log_f within 1 ulp; inf, -inf, NaN, 0, -1 and subnormal inputs
// and results as the C library gives them.
CUVI_HD_FLAT int32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_int(x);
#else
  int32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
#endif
}
CUVI_HD_FLAT float bits_float(int32_t b) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(b);
#else
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
#endif
}

// e^x = 2^n e^r, n = round(x / log 2), r = x - n log 2 (Cody-Waite: log 2
// split so that n * kLn2Hi is exact), |r| <= log(2)/2; e^r by its Taylor
// polynomial of degree 7 (remainder below 1e-8 relative). 2^n is applied
// as two factors 2^a 2^b, a = n/2, so that subnormal results (n < -126)
// and overflow to inf (n = 128) come out right without branches.
CUVI_HD_FLAT float exp_f(float x) {
  constexpr float kLn2Hi = 0.693145751953125f, kLn2Lo = 1.42860682030941723212e-6f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: x + kRound - kRound rounds x to an integer
  float xc = x < -104.0f ? -104.0f : x;  // e^-104 rounds to 0, e^89 to inf; NaN passes
  xc = xc > 89.0f ? 89.0f : xc;
  float n = (xc * 1.44269504088896341f + kRound) - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  n = n == n ? n : 0.0f;  // NaN: p is NaN already; keep the conversion defined
  const int32_t ni = static_cast<int32_t>(n), a = ni / 2, b = ni - a;
  return p * bits_float((a + 127) << 23) * bits_float((b + 127) << 23);
}

// log v for v > 0 as e log 2 + log m, v = m 2^e with m in [sqrt(1/2),
// sqrt(2)); log m = log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f/(2+f)
// (the atanh series; f = m - 1 is exact). Returns the two parts' sum with
// log 2 split as in exp_f; `corr` is added before the large part.
CUVI_HD_FLAT float log_parts_f(float v, float corr) {
  constexpr float kLn2Hi = 0.693145751953125f, kLn2Lo = 1.42860682030941723212e-6f;
  const bool sub = v < 1.17549435e-38f;  // subnormal: scale by 2^23 first
  const float vs = sub ? v * 8388608.0f : v;
  const int32_t bits = float_bits(vs);
  const int32_t e = (bits - 0x3f3504f3) >> 23;  // 0x3f3504f3 = sqrt(1/2)
  const float m = bits_float(bits - (e << 23));
  const float f = m - 1.0f;
  const float s = f / (2.0f + f);
  const float z = s * s;
  float q = 1.0f / 11.0f;
  q = q * z + 1.0f / 9.0f;
  q = q * z + 1.0f / 7.0f;
  q = q * z + 1.0f / 5.0f;
  q = q * z + 1.0f / 3.0f;
  const float hf = 0.5f * f * f;
  const float logm = f - (hf - s * (hf + 2.0f * z * q));
  const float ef = static_cast<float>(e) - (sub ? 23.0f : 0.0f);
  return ef * kLn2Hi + (logm + (ef * kLn2Lo + corr));
}
CUVI_HD_FLAT float log_f(float x) {
  float r = log_parts_f(x, 0.0f);
  r = x == 0.0f ? -kInfF : r;
  r = x == kInfF ? kInfF : r;
  return (x < 0.0f || x != x) ? kNanF : r;
}
// log1p(u) = log(v) + (u - (v - 1)) / v with v = 1 + u rounded: the
// correction restores what the rounding of 1 + u lost.
CUVI_HD_FLAT float log1p_f(float u) {
  const float v = 1.0f + u;
  float r = log_parts_f(v, (u - (v - 1.0f)) / v);
  r = v == 0.0f ? -kInfF : r;
  r = u == kInfF ? kInfF : r;
  return (u < -1.0f || u != u) ? kNanF : r;
}

// ---------------------------------------------------------------------------
// Softplus family (float), branch-free on exp_f / log1p_f (see above).
CUVI_HD_FLAT float softplus_f(float x) { return max_f(x, 0.0f) + log1p_f(exp_f(-::fabsf(x))); }
// Inverse of softplus for y > 0: y + log(-expm1(-y)) (exact for small y too).
CUVI_HD float softplus_inv_f(float y) { return y + ::logf(-::expm1f(-y)); }
// 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below: one exp of -|x|, no
// cancellation in either tail.
CUVI_HD_FLAT float sigmoid_f(float x) {
  const float e = exp_f(-::fabsf(x));
  const float r = 1.0f / (1.0f + e);
  return x >= 0.0f ? r : e * r;
}
// tanh x. |x| < 0.625: x + x z P(z), z = x^2, P a degree-4 fit of
// (tanh x - x) / x^3 (relative error 0.07 ulp before rounding; the x^3 term
// is small against x, so the sum rounds well). Otherwise sign(x) (1 -
// 2 / (e^(2|x|) + 1)), where 2 / (e + 1) < 0.45 makes exp_f's error count
// at most half; exp_f's inf (|x| > 44) gives +-1 and NaN stays NaN.
// Measured over every float: within 1.35 ulp (worst 1.343 at 0x1.43dddcp-1,
// just above the switch; tests/kernels/test_special.cpp samples it).
CUVI_HD_FLAT float tanh_f(float x) {
  const float a = ::fabsf(x), z = x * x;
  float p = -0x1.75e1eep-8f;
  p = p * z + 0x1.5226a4p-6f;
  p = p * z - 0x1.b83c5cp-5f;
  p = p * z + 0x1.110726p-3f;
  p = p * z - 0x1.555532p-2f;
  const float small = a + a * (z * p);  // (from |x|: tanh(-0) is -0)
  const float big = 1.0f - 2.0f / (exp_f(2.0f * a) + 1.0f);
  return ::copysignf(a < 0.625f ? small : big, x);
}

// log sigmoid(x) = -softplus(-x), accurate for both tails.
CUVI_HD float log_sigmoid_f(float x) { return -softplus_f(-x); }
// log(1 - exp(-a)) for a > 0 (Maechler's switch at log 2).
CUVI_HD float log1mexp_f(float a) { return a < kLog2 ? ::logf(-::expm1f(-a)) : ::log1pf(-::expf(-a)); }
CUVI_HD double log1mexp_d(double a) { return a < 0.69314718055994530942 ? ::log(-::expm1(-a)) : ::log1p(-::exp(-a)); }

// ---------------------------------------------------------------------------
// Regularised incomplete gamma P(a, x) = gamma(a, x) / Gamma(a), Q = 1 - P.

// log of x^a e^-x / Gamma(a + 1), the common prefactor. For a >= 10 the
// large terms of a log x - x - lgamma(a+1) are cancelled analytically:
//   = a (log1p(u) - u) - log(2 pi a)/2 - s(a),  u = (x - a)/a,
// so the relative error of the prefactor stays ~1e-15 for large a (the
// finite-difference derivatives in a divide by a step of 1e-5).
CUVI_HD double gamma_log_prefactor_d(double a, double x) {
  if (a < 10.0) return a * ::log(x) - x - lgamma_d(a + 1.0);
  const double u = (x - a) / a;
  return a * (::log1p(u) - u) - 0.5 * ::log(2.0 * kPiD * a) - stirling_corr_d(a);
}

// Series P(a,x) = prefactor * sum_{n>=0} x^n / ((a+1)...(a+n)); use for
// x < a + 1 (terms shrink from the start). Stops at relative 1e-17.
CUVI_HD double gamma_p_series_d(double a, double x) {
  if (x <= 0.0) return 0.0;
  double term = 1.0, sum = 1.0, ap = a;
  for (int n = 0; n < 100000; ++n) {
    ap += 1.0;
    term *= x / ap;
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum * ::exp(gamma_log_prefactor_d(a, x));
}

// Continued fraction for Q(a,x) (Legendre), evaluated by the modified Lentz
// method; use for x >= a + 1.
//   Q = x^a e^-x / Gamma(a) * 1/(x+1-a- 1(1-a)/(x+3-a- 2(2-a)/(x+5-a- ...)))
CUVI_HD double gamma_q_cf_d(double a, double x) {
  constexpr double kTiny = 1e-300;
  double b = x + 1.0 - a;
  double c = 1.0 / kTiny;
  double d = 1.0 / b;
  double h = d;
  for (int i = 1; i < 100000; ++i) {
    const double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (::fabs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (::fabs(del - 1.0) < 4e-16) break;  // two ulps of 1: cannot stall
  }
  // x^a e^-x / Gamma(a) = prefactor * a
  return ::exp(gamma_log_prefactor_d(a, x)) * a * h;
}

CUVI_HD double gamma_p_d(double a, double x) {
  if (!(x > 0.0)) return x == 0.0 ? 0.0 : quiet_nan_d();
  if (x >= kInfD) return 1.0;
  if (x < a + 1.0) return gamma_p_series_d(a, x);
  return 1.0 - gamma_q_cf_d(a, x);
}
CUVI_HD double gamma_q_d(double a, double x) {
  if (!(x > 0.0)) return x == 0.0 ? 1.0 : quiet_nan_d();
  if (x >= kInfD) return 0.0;
  if (x < a + 1.0) return 1.0 - gamma_p_series_d(a, x);
  return gamma_q_cf_d(a, x);
}

// Finite-difference step in a shape parameter a. The functions
// differentiated here (P, Q, I and their complements) vary with a on the
// scale of a itself when a is small (x^a, Gamma(a)), on the scale sqrt(a)
// when a is large (the distribution is then nearly normal and its quantiles
// move by O(1/sqrt(a)) per unit of a), and in the far tails on the scale
// 1/|dlog|, dlog being the a-derivative of the log of the prefactor
// (x^a e^-x / Gamma(a) for P, Q; x^a (1-x)^b / B(a,b) for I), e.g. x^a at
// x = 1e-5 changes by e per 0.09 of a. With h = 1e-5 times the smallest of
// these scales the central difference has truncation error
// ~ (h/scale)^2 / 6 < 2e-11 relative and rounding error
// ~ eps_eval / (h/scale) ~ 1e-15 / 1e-5 = 1e-10 relative: both far below the
// 6e-8 resolution of the float gradient that consumes it.
CUVI_HD double fd_step_d(double a, double dlog) {
  double s = a < 1.0 ? a : ::sqrt(a);
  const double ad = ::fabs(dlog);
  if (ad * s > 1.0) s = 1.0 / ad;
  return 1e-5 * s;
}

// d/da P(a, x) by a central difference of whichever of P and Q is computed
// directly (series or continued fraction, chosen at the central a and kept
// for both evaluations so the two sides use one formula). dQ/da = -dP/da.
CUVI_HD double gamma_p_da_d(double a, double x) {
  if (!(x > 0.0) || x >= kInfD) return 0.0;
  const double lx = ::log(x);
  if (x < a + 1.0) {
    const double h = fd_step_d(a, lx - digamma_d(a + 1.0));
    return (gamma_p_series_d(a + h, x) - gamma_p_series_d(a - h, x)) / (2.0 * h);
  }
  const double h = fd_step_d(a, lx - digamma_d(a));
  return -(gamma_q_cf_d(a + h, x) - gamma_q_cf_d(a - h, x)) / (2.0 * h);
}

// Density of the standard Gamma(a) at x: x^(a-1) e^-x / Gamma(a).
CUVI_HD double gamma_pdf_d(double a, double x) { return ::exp(gamma_log_prefactor_d(a, x)) * a / x; }

// Implicit reparameterisation gradient of a standard Gamma(a) sample x:
// dx/da = -(dP(a, x)/da) / pdf(x; a)  (Figurnov et al. 2018).
CUVI_HD double standard_gamma_grad_d(double a, double x) {
  if (!(x > 0.0)) return 0.0;
  const double pdf = gamma_pdf_d(a, x);
  if (!(pdf > 0.0)) return 0.0;
  return -gamma_p_da_d(a, x) / pdf;
}

// ---------------------------------------------------------------------------
// Regularised incomplete beta I_x(a, b).

// log of x^a (1-x)^b / (a B(a,b)); y = 1 - x supplied separately so that a
// value near 1 keeps its accurate complement.
CUVI_HD double beta_log_prefactor_d(double a, double b, double x, double y) {
  return a * ::log(x) + b * ::log(y) - lbeta<double>(a, b) - ::log(a);
}

// Continued fraction for I_x(a, b) (modified Lentz):
//   I = prefactor / (1 + d1/(1 + d2/(1 + ...))),
//   d_{2m+1} = -(a+m)(a+b+m) x / ((a+2m)(a+2m+1)),
//   d_{2m}   = m (b-m) x / ((a+2m-1)(a+2m)).
// Converges fast for x < (a+1)/(a+b+2); used raw (no symmetry switch) by the
// derivatives below so both sides of a difference use one formula.
CUVI_HD double beta_inc_cf_raw_d(double a, double b, double x, double y) {
  if (!(x > 0.0)) return 0.0;
  if (!(y > 0.0)) return 1.0;
  constexpr double kTiny = 1e-300;
  const double qab = a + b, qap = a + 1.0, qam = a - 1.0;
  double c = 1.0;
  double d = 1.0 - qab * x / qap;
  if (::fabs(d) < kTiny) d = kTiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m < 100000; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1.0 + aa * d;
    if (::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1.0 + aa * d;
    if (::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (::fabs(del - 1.0) < 4e-16) break;  // two ulps of 1: cannot stall
  }
  return ::exp(beta_log_prefactor_d(a, b, x, y)) * h;
}

// true when the continued fraction should be applied to I_x(a,b) directly,
// false when to I_{1-x}(b,a) (= 1 - I_x(a,b)).
CUVI_HD bool beta_inc_direct(double a, double b, double x) { return x < (a + 1.0) / (a + b + 2.0); }

CUVI_HD double beta_inc_d(double a, double b, double x) {
  if (!(x > 0.0)) return x == 0.0 ? 0.0 : quiet_nan_d();
  if (!(x < 1.0)) return x == 1.0 ? 1.0 : quiet_nan_d();
  const double y = 1.0 - x;
  if (beta_inc_direct(a, b, x)) return beta_inc_cf_raw_d(a, b, x, y);
  return 1.0 - beta_inc_cf_raw_d(b, a, y, x);
}

// d/da and d/db of I_x(a,b): central differences (step: fd_step_d, with the
// log-prefactor slope of the side being differentiated) of the directly
// computed side, orientation fixed at the central parameters.
CUVI_HD double beta_inc_da_d(double a, double b, double x) {
  if (!(x > 0.0) || !(x < 1.0)) return 0.0;
  const double y = 1.0 - x;
  const double dab = digamma_diff<double>(a, b);  // psi(a+b) - psi(a)
  if (beta_inc_direct(a, b, x)) {
    const double h = fd_step_d(a, ::log(x) + dab - 1.0 / a);
    return (beta_inc_cf_raw_d(a + h, b, x, y) - beta_inc_cf_raw_d(a - h, b, x, y)) / (2.0 * h);
  }
  const double h = fd_step_d(a, ::log(x) + dab);
  return -(beta_inc_cf_raw_d(b, a + h, y, x) - beta_inc_cf_raw_d(b, a - h, y, x)) / (2.0 * h);
}
CUVI_HD double beta_inc_db_d(double a, double b, double x) {
  if (!(x > 0.0) || !(x < 1.0)) return 0.0;
  const double y = 1.0 - x;
  const double dba = digamma_diff<double>(b, a);  // psi(a+b) - psi(b)
  if (beta_inc_direct(a, b, x)) {
    const double h = fd_step_d(b, ::log(y) + dba);
    return (beta_inc_cf_raw_d(a, b + h, x, y) - beta_inc_cf_raw_d(a, b - h, x, y)) / (2.0 * h);
  }
  const double h = fd_step_d(b, ::log(y) + dba - 1.0 / b);
  return -(beta_inc_cf_raw_d(b + h, a, y, x) - beta_inc_cf_raw_d(b - h, a, y, x)) / (2.0 * h);
}

// Beta(a, b) density at x (y = 1 - x).
CUVI_HD double beta_pdf_d(double a, double b, double x, double y) {
  return ::exp((a - 1.0) * ::log(x) + (b - 1.0) * ::log(y) - lbeta<double>(a, b));
}

// ---------------------------------------------------------------------------
// The regularised incomplete gamma and beta functions and Student's t
// distribution function as float ops (torch.special.gammainc / gammaincc,
// scipy.special.betainc / stdtr), with their derivatives in every argument:
// the shape parameters through the central differences above, the
// integration variable through the density. Evaluated in double and rounded
// once. Arguments outside the domain (a, b, df <= 0; x < 0; x > 1 for
// betainc; NaN) give NaN, value and derivatives alike.

// d/dx P(a, x) = x^(a-1) e^-x / Gamma(a), including its limits at x = 0
// (+inf for a < 1, 1 for a = 1, 0 above) and x = inf.
CUVI_HD double gamma_p_dx_d(double a, double x) {
  if (x == 0.0) return a < 1.0 ? kInfD : (a == 1.0 ? 1.0 : 0.0);
  if (x >= kInfD) return 0.0;
  return gamma_pdf_d(a, x);
}
CUVI_HD bool gammainc_domain(float a, float x) { return a > 0.0f && x >= 0.0f; }  // false for NaN
CUVI_HD float gammainc_f(float a, float x) {
  return gammainc_domain(a, x) ? static_cast<float>(gamma_p_d(a, x)) : kNanF;
}
CUVI_HD float gammaincc_f(float a, float x) {
  return gammainc_domain(a, x) ? static_cast<float>(gamma_q_d(a, x)) : kNanF;
}
// (dP/da, dP/dx); Q's are their negatives.
CUVI_HD void gammainc_grad_f(float a, float x, float* da, float* dx) {
  if (!gammainc_domain(a, x)) {
    *da = kNanF;
    *dx = kNanF;
    return;
  }
  *da = static_cast<float>(gamma_p_da_d(a, x));
  *dx = static_cast<float>(gamma_p_dx_d(a, x));
}

// d/dx I_x(a, b), the Beta(a, b) density, including its limits at the ends
// (at 0: +inf for a < 1, b for a = 1, 0 above; at 1 the same with a, b swapped).
CUVI_HD double beta_inc_dx_d(double a, double b, double x) {
  if (x == 0.0) return a < 1.0 ? kInfD : (a == 1.0 ? b : 0.0);
  if (x == 1.0) return b < 1.0 ? kInfD : (b == 1.0 ? a : 0.0);
  return beta_pdf_d(a, b, x, 1.0 - x);
}
CUVI_HD bool betainc_domain(float a, float b, float x) { return a > 0.0f && b > 0.0f && x >= 0.0f && x <= 1.0f; }
CUVI_HD float betainc_f(float a, float b, float x) {
  return betainc_domain(a, b, x) ? static_cast<float>(beta_inc_d(a, b, x)) : kNanF;
}
CUVI_HD void betainc_grad_f(float a, float b, float x, float* da, float* db, float* dx) {
  if (!betainc_domain(a, b, x)) {
    *da = *db = *dx = kNanF;
    return;
  }
  *da = static_cast<float>(beta_inc_da_d(a, b, x));
  *db = static_cast<float>(beta_inc_db_d(a, b, x));
  *dx = static_cast<float>(beta_inc_dx_d(a, b, x));
}

// Student's t: the tail mass beyond |t|, P(T > |t|) = I_z(df/2, 1/2) / 2 with
// z = df / (df + t^2) and its complement w = t^2 / (df + t^2) each formed by
// one division (so neither loses precision to 1 - the other). `direct`
// fixes the continued fraction's orientation (I_z(df/2, 1/2) itself, or
// 1 - I_w(1/2, df/2)) so that a difference in df uses one formula.
CUVI_HD bool stdtr_direct(double df, double t) {
  const double t2 = t * t;
  return beta_inc_direct(0.5 * df, 0.5, df / (df + t2));
}
CUVI_HD double stdtr_tail_raw_d(double df, double t, bool direct) {
  const double t2 = t * t;
  if (t2 >= kInfD) return 0.0;
  const double z = df / (df + t2), w = t2 / (df + t2);
  return direct ? 0.5 * beta_inc_cf_raw_d(0.5 * df, 0.5, z, w) : 0.5 - 0.5 * beta_inc_cf_raw_d(0.5, 0.5 * df, w, z);
}
// F(t; df) = P(T <= t): the tail below 0, one minus it above.
CUVI_HD double stdtr_d(double df, double t) {
  const double tail = stdtr_tail_raw_d(df, t, stdtr_direct(df, t));
  return t < 0.0 ? tail : 1.0 - tail;
}
// The t density at t (0 at +-inf).
CUVI_HD double stdt_pdf_d(double df, double t) {
  const double t2 = t * t;
  if (t2 >= kInfD) return 0.0;
  return ::exp(lgamma_d(0.5 * (df + 1.0)) - lgamma_d(0.5 * df) - 0.5 * ::log(df * kPiD) -
               0.5 * (df + 1.0) * ::log1p(t2 / df));
}
// dF/d df: F varies with df on the scale of df itself (for large df it is
// Phi(t) + c(t) / df + ...: the derivative is ~1/df^2, tiny against F, so a
// step ~sqrt(df) as fd_step_d takes would leave the difference at the
// level of F's own rounding), or, in the far tails where F ~ |t|^-df, on
// the scale 1 / |(1/2) log z|. A central difference with step h = 1e-2
// times that scale, Richardson-extrapolated from h and 2h
// ((4 D(h) - D(2h)) / 3, truncation ~(h/scale)^4 ~ 1e-8 relative), divides
// F's ~1e-15 rounding by only ~1e-2 of the scale.
CUVI_HD double stdtr_tail_diff_d(double df, double t, double h, bool direct) {
  return (stdtr_tail_raw_d(df + h, t, direct) - stdtr_tail_raw_d(df - h, t, direct)) / (2.0 * h);
}
CUVI_HD double stdtr_ddf_d(double df, double t) {
  const double t2 = t * t;
  if (t2 >= kInfD || t == 0.0) return 0.0;
  const bool direct = stdtr_direct(df, t);
  double s = df;
  const double slope = ::fabs(0.5 * ::log(df / (df + t2)));
  if (slope * s > 1.0) s = 1.0 / slope;
  const double h = 1e-2 * s;
  const double d = (4.0 * stdtr_tail_diff_d(df, t, h, direct) - stdtr_tail_diff_d(df, t, 2.0 * h, direct)) / 3.0;
  return t < 0.0 ? d : -d;
}
CUVI_HD bool stdtr_domain(float df, float t) { return df > 0.0f && t == t; }
CUVI_HD float stdtr_f(float df, float t) { return stdtr_domain(df, t) ? static_cast<float>(stdtr_d(df, t)) : kNanF; }
CUVI_HD void stdtr_grad_f(float df, float t, float* ddf, float* dt) {
  if (!stdtr_domain(df, t)) {
    *ddf = *dt = kNanF;
    return;
  }
  *ddf = static_cast<float>(stdtr_ddf_d(df, t));
  *dt = static_cast<float>(stdt_pdf_d(df, t));
}

// ---------------------------------------------------------------------------
// The standard normal distribution function Phi (ndtr), its inverse (ndtri),
// and erf's inverse, for the cdf and icdf of Normal-based families. Evaluated
// in double and rounded once, so the float results are correctly rounded
// up to a unit or so in the last place over the whole range, tails included.

// Phi(x) = erfc(-x / sqrt 2) / 2: erfc keeps the lower tail's relative accuracy.
CUVI_HD double ndtr_d(double x) { return 0.5 * ::erfc(-x * 0.70710678118654752440); }
CUVI_HD float ndtr_f(float x) { return static_cast<float>(ndtr_d(static_cast<double>(x))); }

// Phi^-1(p) for p in [0, 1] (-inf at 0, +inf at 1, NaN outside). The lower
// half q = min(p, 1 - p) (1 - p is exact for p >= 1/2) starts from the
// rational approximation of Abramowitz & Stegun 26.2.23 in t = sqrt(-2 log q)
// (absolute error < 4.5e-4), then three Halley steps on Phi(x) = q, each
// cubing the error: 4.5e-4 -> ~1e-10 -> below double resolution.
CUVI_HD double ndtri_d(double p) {
  if (!(p > 0.0 && p < 1.0)) {
    if (p == 0.0) return -kInfD;
    if (p == 1.0) return kInfD;
    return kNanD;
  }
  if (p == 0.5) return 0.0;  // exactly (the iteration would stop within an ulp of it)
  const bool upper = p > 0.5;
  const double q = upper ? 1.0 - p : p;
  const double t = ::sqrt(-2.0 * ::log(q));
  double x = -(t - (2.515517 + t * (0.802853 + t * 0.010328)) /
                       (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308))));
  for (int it = 0; it < 3; ++it) {
    // u = (Phi(x) - q) / phi(x); Halley: x -= u / (1 + x u / 2).
    const double u = (ndtr_d(x) - q) * 2.50662827463100050242 * ::exp(0.5 * x * x);
    x -= u / (1.0 + 0.5 * x * u);
  }
  return upper ? -x : x;
}
CUVI_HD float ndtri_f(float p) { return static_cast<float>(ndtri_d(static_cast<double>(p))); }

// erf^-1(y) for y in [-1, 1] (+-inf at +-1, NaN outside). |y| >= 1/2:
// through Phi^-1 of (1 - |y|) / 2, exact for a float y (so the tails keep
// their relative accuracy); |y| < 1/2: Halley steps on erf itself from the
// series' first two terms (relative error < 5e-3 at 1/2), so tiny y keep
// theirs (erf^-1(y) ~ y sqrt(pi) / 2).
CUVI_HD double erfinv_d(double y) {
  const double a = ::fabs(y);
  if (!(a < 1.0)) {
    if (a == 1.0) return y > 0.0 ? kInfD : -kInfD;
    return kNanD;
  }
  if (a >= 0.5) {
    const double x = -ndtri_d(0.5 * (1.0 - a)) * 0.70710678118654752440;
    return y > 0.0 ? x : -x;
  }
  double x = 0.88622692545275801365 * y * (1.0 + 0.26179938779914943654 * y * y);
  for (int it = 0; it < 3; ++it) {
    // u = (erf(x) - y) / erf'(x), erf'(x) = 2 / sqrt(pi) e^-x^2; erf'' / erf' = -2x.
    const double u = (::erf(x) - y) * 0.88622692545275801365 * ::exp(x * x);
    x -= u / (1.0 + x * u);
  }
  return x;
}
CUVI_HD float erfinv_f(float y) { return static_cast<float>(erfinv_d(static_cast<double>(y))); }

}  // namespace cuvi::kern
