// cuvi kernels: Dirichlet(concentration), math for ONE row of length K.
#pragma once

#include "gamma.hpp"

namespace cuvi::kern {

struct Dirichlet {
  static constexpr const char* kName = "Dirichlet";
  static constexpr bool kHasRsample = true;
  static constexpr bool kDiscrete = false;
  static constexpr int kSupport = support::kSimplex;
  static constexpr bool kValueEvent = true;  // a value is a row of K

  CUVI_HD static const char* param_name(int) { return "concentration"; }
  // Index of the first non-positive / non-finite concentration, or -1.
  CUVI_HD static int bad_param(const float* alpha, int K) {
    for (int i = 0; i < K; ++i)
      if (!check::positive(alpha[i])) return i;
    return -1;
  }
  CUVI_HD static bool param_ok(const float* alpha, int K) { return bad_param(alpha, K) < 0; }
  // On the simplex as PyTorch checks it: x_i >= 0 and |sum x - 1| < 1e-6
  // (summed in double, so the check does not depend on K's rounding).
  CUVI_HD static bool support_ok(const float* x, int K) {
    double s = 0.0;
    for (int i = 0; i < K; ++i) {
      if (!(x[i] >= 0.0f)) return false;
      s += static_cast<double>(x[i]);
    }
    return ::fabs(s - 1.0) < 1e-6;
  }
  // support_ok, naming the offending number: the first negative (or NaN)
  // component, else the row's sum.
  CUVI_HD static bool check_value(const float* x, int K, float* bad) {
    if (support_ok(x, K)) return true;
    double s = 0.0;
    for (int i = 0; i < K; ++i) {
      if (!(x[i] >= 0.0f)) {
        *bad = x[i];
        return false;
      }
      s += static_cast<double>(x[i]);
    }
    *bad = static_cast<float>(s);
    return false;
  }

  // log p = sum (a_i - 1) log x_i + lgamma(a0) - sum lgamma(a_i), a0 = sum a_i.
  // The normaliser is accumulated in double from float lgammas' double
  // counterparts: for K ~ 5 and a0 ~ 40 its terms reach 100 and the float
  // sum would carry ~1e-5 absolute error.
  CUVI_HD static float log_prob(const float* x, const float* alpha, int K) {
    double a0 = 0.0, norm = 0.0;
    float acc = 0.0f;
    for (int i = 0; i < K; ++i) {
      a0 += static_cast<double>(alpha[i]);
      norm -= lgamma_d(alpha[i]);
      acc += (alpha[i] - 1.0f) * ::logf(x[i]);
    }
    norm += lgamma_d(a0);
    return static_cast<float>(norm + static_cast<double>(acc));
  }
  // dx_i = (a_i - 1)/x_i (x_i treated as free coordinates), and
  // dalpha_i = log x_i + psi(a0) - psi(a_i) (difference without cancellation).
  // A null dx or dalpha is not computed.
  CUVI_HD static float log_prob_grad(const float* x, const float* alpha, int K, float* dx, float* dalpha) {
    if (dx)
      for (int i = 0; i < K; ++i) dx[i] = (alpha[i] - 1.0f) / x[i];
    if (dalpha) {
      float a0 = 0.0f;
      for (int i = 0; i < K; ++i) a0 += alpha[i];
      for (int i = 0; i < K; ++i) {
        const float rest = a0 - alpha[i];
        dalpha[i] = ::logf(x[i]) + digamma_diff<float>(alpha[i], rest > 0.0f ? rest : 0.0f);
      }
    }
    return log_prob(x, alpha, K);
  }

  // x_i = g_i / S, g_i ~ Gamma(a_i, 1) drawn in order from the private rng,
  // S = sum g_i. Normalised in logs (tiny concentrations underflow the
  // gammas but not their logs); the sum is accumulated in double so that
  // sum x_i = 1 within one float rounding for any K. Writes x into
  // out[0..K) and returns S (clamped to the smallest normal float), which
  // sample_grad needs.
  template <class Rng>
  CUVI_HD static float sample(const float* alpha, int K, Rng& rng, float* out) {
    float m = -kInfF;
    for (int i = 0; i < K; ++i) {
      out[i] = standard_gamma_log_f(alpha[i], rng);
      if (out[i] > m) m = out[i];
    }
    double s = 0.0;
    for (int i = 0; i < K; ++i) {
      out[i] = ::expf(out[i] - m);
      s += static_cast<double>(out[i]);
    }
    for (int i = 0; i < K; ++i) {
      float xi = static_cast<float>(static_cast<double>(out[i]) / s);
      if (xi < kFltMin) xi = kFltMin;
      out[i] = xi;
    }
    float S = static_cast<float>(::exp(static_cast<double>(m) + ::log(s)));
    if (S < kFltMin) S = kFltMin;
    return S;
  }

  // Backward of x = g / sum(g) through the Gamma path: with g_j = x_j S,
  //   dx_i/da_j = (delta_ij - x_i) (dg_j/da_j) / S,
  //   dL/da_j = (gx_j - sum_i gx_i x_i) (dg_j/da_j) / S,
  // dg_j/da_j the implicit standard-Gamma gradient at g_j (double).
  CUVI_HD static void sample_grad(const float* x, const float* alpha, float S, int K, const float* gx, float* galpha) {
    double dot = 0.0;
    for (int i = 0; i < K; ++i) dot += static_cast<double>(gx[i]) * static_cast<double>(x[i]);
    const double Sd = S;
    for (int j = 0; j < K; ++j) {
      const double g = static_cast<double>(x[j]) * Sd;
      const double dg = standard_gamma_grad_d(static_cast<double>(alpha[j]), g);
      galpha[j] = static_cast<float>((static_cast<double>(gx[j]) - dot) * dg / Sd);
    }
  }

  CUVI_HD static void mean(const float* alpha, int K, float* out) {
    float a0 = 0.0f;
    for (int i = 0; i < K; ++i) a0 += alpha[i];
    for (int i = 0; i < K; ++i) out[i] = alpha[i] / a0;
  }
  // Var x_i = a_i (a0 - a_i) / (a0^2 (a0 + 1))
  CUVI_HD static void variance(const float* alpha, int K, float* out) {
    float a0 = 0.0f;
    for (int i = 0; i < K; ++i) a0 += alpha[i];
    for (int i = 0; i < K; ++i) out[i] = alpha[i] * (a0 - alpha[i]) / (a0 * a0 * (a0 + 1.0f));
  }
};

}  // namespace cuvi::kern
