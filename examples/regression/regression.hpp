// Bayesian linear regression, as in Pyro's "Bayesian Regression -
// Introduction (Part 1)": weights ~ N(0, 1), bias ~ N(0, 10), the noise
// scale sigma ~ Uniform(0, 10), y_i ~ N(x_i . w + b, sigma) under a plate
// over the rows, fitted with an autoguide (AutoDiagonalNormal in the
// tutorial). With `batch` > 0 the plate draws `batch` rows per step on the
// device and scales their log-likelihood by N / batch, so a fit over
// millions of rows costs one minibatch per step.
//
// The data are synthetic (the tutorial's terrain data do not ship with
// cuvi): standard normal features, the second correlated with the first
// (rho = 0.6) so that a full-covariance guide has something to find, and a
// known truth. `exact_posterior` gives the posterior of (w, b) given sigma,
// a Gaussian in closed form (the prior is conjugate once sigma is fixed),
// to compare the guide with.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <cuvi.hpp>

namespace cuvi_examples {

struct RegressionData {
  cuvi::Tensor x;  // [n, d]
  cuvi::Tensor y;  // [n]
  std::vector<float> weight;  // the truth
  float bias = 0;
  float sigma = 0;
};

// n rows of d features (d >= 1), drawn with the current seed on dev.
// Truth: weight_j = (-1)^j (1 + 0.5 j), bias 1, sigma 0.5.
inline RegressionData make_regression_data(int64_t n, int64_t d, cuvi::Device dev) {
  using namespace cuvi;
  RegressionData r;
  for (int64_t j = 0; j < d; ++j) r.weight.push_back((j % 2 ? -1.0f : 1.0f) * (1.0f + 0.5f * static_cast<float>(j)));
  r.bias = 1.0f;
  r.sigma = 0.5f;
  Tensor e = randn({n, d}, dev);
  if (d >= 2) {
    // Column 1 becomes 0.6 e0 + 0.8 e1 (unit variance, correlation 0.6 with column 0).
    std::vector<float> mix(static_cast<size_t>(d * d), 0.0f);
    for (int64_t j = 0; j < d; ++j) mix[static_cast<size_t>(j * d + j)] = 1.0f;
    mix[static_cast<size_t>(0 * d + 1)] = 0.6f;
    mix[static_cast<size_t>(1 * d + 1)] = 0.8f;
    e = matmul(e, tensor(mix, {d, d}, dev));
  }
  r.x = e;
  r.y = matmul(r.x, tensor(r.weight, {d}, dev)) + r.bias + r.sigma * randn({n}, dev);
  return r;
}

struct BayesianRegression {
  int64_t batch = 0;  // rows per step; 0: all of them

  void model(const cuvi::Tensor& x, const cuvi::Tensor& y) const {
    using namespace cuvi;
    const Device dev = x.device();
    const int64_t d = x.size(1);
    Tensor w = sample("weight", dist::Normal(zeros({d}, dev), ones({d}, dev)).to_event(1));
    Tensor b = sample("bias", dist::Normal(zeros({}, dev), full({}, 10.0f, dev)));
    Tensor sigma = sample("sigma", dist::Uniform(0.0f, 10.0f));
    auto rows = plate("data", x.size(0), batch);
    const Tensor mean = matmul(rows.subsample(x, 1), w) + b;
    sample("obs", dist::Normal(mean, sigma), rows.subsample(y));
  }
};

// The posterior of beta = (w, b) given sigma: prior N(0, diag(1, ..., 1,
// 100)), likelihood y ~ N(Z beta, sigma^2) with Z = [x, 1]; precision
// Lambda = Z^T Z / sigma^2 + diag(1, ..., 1, 0.01), mean Lambda^{-1} Z^T y /
// sigma^2. In float64 on the host (one pass over the rows).
struct GaussianPosterior {
  std::vector<double> mean;        // [d + 1]: weights, then bias
  std::vector<double> covariance;  // [(d + 1)^2], row-major
  double sd(size_t i) const { return std::sqrt(covariance[i * mean.size() + i]); }
};

inline GaussianPosterior exact_posterior(const cuvi::Tensor& x, const cuvi::Tensor& y, double sigma) {
  const int64_t n = x.size(0), d = x.size(1);
  const size_t k = static_cast<size_t>(d + 1);
  const std::vector<float> xv = x.to_vector(), yv = y.to_vector();
  std::vector<double> A(k * k, 0.0), rhs(k, 0.0), z(k);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) z[static_cast<size_t>(j)] = xv[static_cast<size_t>(i * d + j)];
    z[k - 1] = 1.0;
    for (size_t a = 0; a < k; ++a) {
      rhs[a] += z[a] * yv[static_cast<size_t>(i)];
      for (size_t b = 0; b <= a; ++b) A[a * k + b] += z[a] * z[b];
    }
  }
  const double s2 = sigma * sigma;
  for (size_t a = 0; a < k; ++a) {
    rhs[a] /= s2;
    for (size_t b = 0; b <= a; ++b) A[a * k + b] = A[b * k + a] = A[a * k + b] / s2;
    A[a * k + a] += a + 1 == k ? 0.01 : 1.0;
  }
  // Gauss-Jordan on [A | I | rhs]: A is symmetric positive definite and small.
  std::vector<double> inv(k * k, 0.0);
  for (size_t a = 0; a < k; ++a) inv[a * k + a] = 1.0;
  for (size_t c = 0; c < k; ++c) {
    const double p = A[c * k + c];
    for (size_t j = 0; j < k; ++j) {
      A[c * k + j] /= p;
      inv[c * k + j] /= p;
    }
    rhs[c] /= p;
    for (size_t r = 0; r < k; ++r) {
      if (r == c) continue;
      const double f = A[r * k + c];
      for (size_t j = 0; j < k; ++j) {
        A[r * k + j] -= f * A[c * k + j];
        inv[r * k + j] -= f * inv[c * k + j];
      }
      rhs[r] -= f * rhs[c];
    }
  }
  return {rhs, inv};
}

// The guide's Gaussian over its flat unconstrained latent vector (the
// AutoContinuous guides: sites in trace order, here weight [d], bias,
// sigma's unconstrained value): mean and per-coordinate sd from the param
// store, for prefix "AutoDiagonalNormal" or "AutoMultivariateNormal".
inline void continuous_guide_moments(const std::string& prefix, std::vector<float>* mean, std::vector<float>* sd) {
  using namespace cuvi;
  *mean = param_store().get(prefix + ".loc").to_vector();
  sd->assign(mean->size(), 0.0f);
  if (param_store().contains(prefix + ".scale_tril")) {
    const auto L = param_store().get(prefix + ".scale_tril").to_vector();
    const size_t k = mean->size();
    for (size_t i = 0; i < k; ++i) {
      double s = 0;
      for (size_t j = 0; j <= i; ++j) s += static_cast<double>(L[i * k + j]) * L[i * k + j];
      (*sd)[i] = static_cast<float>(std::sqrt(s));
    }
  } else {
    *sd = param_store().get(prefix + ".scale").to_vector();
  }
}

// Per-coordinate mean and sd of n draws of a distribution over a vector
// (AutoIAFNormal's posterior, whose moments have no closed form), in double.
inline void sampled_moments(const cuvi::dist::Distribution& q, int64_t n, std::vector<float>* mean,
                            std::vector<float>* sd) {
  using namespace cuvi;
  NoGradGuard ng;
  const Tensor x = q.sample({n});
  const int64_t k = x.size(-1);
  const auto v = x.to_vector();
  std::vector<double> m(static_cast<size_t>(k), 0.0), s2(static_cast<size_t>(k), 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j) m[j] += v[static_cast<size_t>(r * k + j)];
  for (auto& e : m) e /= static_cast<double>(n);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j) {
      const double d = v[static_cast<size_t>(r * k + j)] - m[j];
      s2[j] += d * d;
    }
  mean->assign(m.begin(), m.end());
  sd->resize(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) (*sd)[j] = static_cast<float>(std::sqrt(s2[j] / static_cast<double>(n - 1)));
}

}  // namespace cuvi_examples
