// Statistical checks of the samplers (kernel level): draws from ElemRng as
// the batched kernels make them, moments, Kolmogorov-Smirnov, chi-square,
// pathwise gradients. Shared by test_dist_math.cpp and test_compound.cpp.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/philox.hpp"
#include "kernels/special.hpp"

// ---------------------------------------------------------------------------
// Samplers. Element i of a test draws from ElemRng(seed, i, 0), as the
// batched kernels will. Checks, for N draws:
//  * mean within 5 standard errors of mean(): SE = sqrt(var / N);
//  * sample variance (1/(N-1)) within 5 SE of variance(), with
//    SE(s^2) = sqrt((mu4 - sigma^4) / N), mu4 the known fourth central
//    moment of the family (kurtosis formulas in each test);
//  * Kolmogorov-Smirnov: sup |F_N - F| < 1.95 / sqrt(N) (alpha ~ 1e-3);
//  * discrete families: chi-square p-value > 1e-3 (cells with expected
//    count >= 5, tails pooled; p-value from the regularised gamma Q).
// 5 SE is a 6e-7 two-sided false-alarm rate per check; with fixed seeds the
// outcome is deterministic anyway.
namespace cuvi::testing {

constexpr int kN = 200000;

template <class D>
inline std::vector<double> draw(const float* p, int n, uint64_t seed) {
  std::vector<double> xs(n);
  for (int i = 0; i < n; ++i) {
    cuvi::kern::ElemRng rng(seed, static_cast<uint64_t>(i), 0);
    xs[i] = D::sample(p, rng);
  }
  return xs;
}

inline void check_moments(const std::vector<double>& xs, double mean, double var, double mu4, const std::string& what) {
  const double n = static_cast<double>(xs.size());
  double m = 0.0;
  for (double x : xs) m += x;
  m /= n;
  double s2 = 0.0;
  for (double x : xs) s2 += (x - m) * (x - m);
  s2 /= (n - 1.0);
  const double se_m = std::sqrt(var / n);
  const double se_v = std::sqrt((mu4 - var * var) / n);
  EXPECT_NEAR(m, mean, 5.0 * se_m) << what << ": sample mean (SE " << se_m << ")";
  EXPECT_NEAR(s2, var, 5.0 * se_v) << what << ": sample variance (SE " << se_v << ")";
}

inline void check_ks(std::vector<double> xs, const std::function<double(double)>& cdf, const std::string& what) {
  std::sort(xs.begin(), xs.end());
  const double n = static_cast<double>(xs.size());
  double d = 0.0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double f = cdf(xs[i]);
    d = std::max(d, std::max(f - i / n, (i + 1) / n - f));
  }
  EXPECT_LT(d, 1.95 / std::sqrt(n)) << what << ": KS statistic";
}

// counts[k] observed, prob[k] expected probability (prob must cover all but
// a negligible tail; counts beyond it join the last cell). Cells are merged
// left to right until each expects >= 5; a short remainder joins the last.
inline void check_chi2(const std::vector<long>& counts, const std::vector<double>& prob, const std::string& what) {
  double n = 0.0;
  for (long c : counts) n += static_cast<double>(c);
  std::vector<double> obs, ex;
  double o = 0.0, e = 0.0;
  for (size_t k = 0; k < prob.size(); ++k) {
    o += k < counts.size() ? static_cast<double>(counts[k]) : 0.0;
    e += n * prob[k];
    if (e >= 5.0) {
      obs.push_back(o);
      ex.push_back(e);
      o = e = 0.0;
    }
  }
  for (size_t k = prob.size(); k < counts.size(); ++k) o += static_cast<double>(counts[k]);
  if (e > 0.0 || o > 0.0) {
    if (ex.empty() || e >= 5.0) {
      obs.push_back(o);
      ex.push_back(e);
    } else {
      obs.back() += o;
      ex.back() += e;
    }
  }
  double stat = 0.0;
  for (size_t k = 0; k < obs.size(); ++k) stat += (obs[k] - ex[k]) * (obs[k] - ex[k]) / ex[k];
  const double dof = static_cast<double>(obs.size()) - 1.0;
  ASSERT_GE(dof, 1.0) << what;
  const double pval = cuvi::kern::gamma_q_d(0.5 * dof, 0.5 * stat);
  EXPECT_GT(pval, 1e-3) << what << ": chi2 = " << stat << " on " << dof << " dof";
}

// Pathwise gradients: for each parameter i, with g = dx/dp_i from
// sample_grad at each draw,
//   mean(g) ~ d E[x] / dp_i  and  mean(2 x g) ~ d E[x^2] / dp_i,
// within 5 standard errors of the estimator (sd / sqrt(N)) plus 1e-6
// relative for the float rounding of the per-draw gradients (which is all
// that remains when g is constant, e.g. dx/dloc = 1).
template <class D>
void check_pathwise(const std::vector<double>& xs, const float* p, const double* dmean, const double* dsecond, const std::string& what) {
  constexpr int np = D::kNumParams;
  const double n = static_cast<double>(xs.size());
  for (int i = 0; i < np; ++i) {
    double s1 = 0, q1 = 0, s2 = 0, q2 = 0;
    for (double x : xs) {
      float g[4];
      D::sample_grad(static_cast<float>(x), p, g);
      const double a = g[i], b = 2.0 * x * g[i];
      s1 += a;
      q1 += a * a;
      s2 += b;
      q2 += b * b;
    }
    const double m1 = s1 / n, m2 = s2 / n;
    const double se1 = std::sqrt(std::max(q1 / n - m1 * m1, 0.0) / n);
    const double se2 = std::sqrt(std::max(q2 / n - m2 * m2, 0.0) / n);
    EXPECT_NEAR(m1, dmean[i], 5.0 * se1 + 1e-6 * std::fabs(dmean[i]) + 1e-7)
        << what << ": dE[x]/d" << D::param_name(i) << " (SE " << se1 << ")";
    EXPECT_NEAR(m2, dsecond[i], 5.0 * se2 + 1e-6 * std::fabs(dsecond[i]) + 1e-7)
        << what << ": dE[x^2]/d" << D::param_name(i) << " (SE " << se2 << ")";
  }
}

// Count samplers: chi-square against the pmf (host std::lgamma, independent
// of the kernels') and the first two moments, on kN draws each.
inline void count_case(const std::vector<double>& xs, const std::function<double(double)>& log_pmf, double mean,
                double var, double mu4, double kmax, const std::string& what) {
  std::vector<long> counts;
  for (double x : xs) {
    ASSERT_TRUE(x >= 0 && x == std::floor(x)) << what << ": draw " << x;
    const size_t k = static_cast<size_t>(x);
    if (k >= counts.size()) counts.resize(k + 1, 0);
    counts[k]++;
  }
  std::vector<double> prob;
  for (double k = 0; k <= kmax; k += 1) prob.push_back(std::exp(log_pmf(k)));
  check_chi2(counts, prob, what);
  check_moments(xs, mean, var, mu4, what);
}

}  // namespace cuvi::testing
