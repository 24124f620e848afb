// Test utilities: float64 comparisons and a finite-difference gradient check
// usable for any op or composition of ops, on any device.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include <cuvi.hpp>

// The ppl tests run on the default device (the cpu, or cuda:0 in
// cuvi_test_gpu_ppl). A test about behaviour that only the cpu backend has
// (host pointers into tensor storage, ...) skips elsewhere, saying why.
#define CUVI_CPU_ONLY(why)                                                   \
  do {                                                                       \
    if (::cuvi::default_device().is_cuda()) GTEST_SKIP() << "cpu-only: " << why; \
  } while (0)

namespace cuvi::testing {

// A fresh start for a test that uses the param store: empty, and the
// generator seeded.
inline void fresh(uint64_t seed = 0) {
  param_store().clear();
  set_seed(seed);
}

// Rows of `table` (dim 0) at the int64 (or integral float) values of z,
// shaped as z: a mixture's component parameters at sampled or enumerated
// assignments.
inline Tensor pick(const Tensor& table, const Tensor& z) {
  return index_select(table, 0, z.to_int64().reshape({z.numel()})).reshape(z.shape());
}

// float64 references: log N(x; mu, sd) and log sum_i exp(v_i).
inline double normal_lp(double x, double mu, double sd) {
  const double z = (x - mu) / sd;
  return -0.5 * z * z - std::log(sd) - 0.5 * std::log(2 * M_PI);
}

inline double lse(const std::vector<double>& v) {
  double m = -INFINITY;
  for (double x : v) m = std::max(m, x);
  if (m == -INFINITY) return m;
  double acc = 0;
  for (double x : v) acc += std::exp(x - m);
  return m + std::log(acc);
}

inline std::vector<float> random_values(int64_t n, std::mt19937& gen, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = u(gen);
  return v;
}

inline Tensor random_tensor(const Shape& s, std::mt19937& gen, float lo, float hi, Device dev = default_device()) {
  return tensor(random_values(shape_numel(s), gen, lo, hi), s, dev);
}

// Weighted sum L = sum_i w_i f(x)_i in double on the host.
inline double weighted_sum(const Tensor& y, const std::vector<float>& w) {
  const auto v = y.to_vector();
  double acc = 0;
  for (size_t i = 0; i < v.size(); ++i) acc += static_cast<double>(v[i]) * w[i];
  return acc;
}

// Compares the analytic gradient of L = sum(w * f(inputs)) with central
// differences. Finite differences in float32 carry a rounding error of about
// ulp(f) * |w| / eps per element, so with eps = 1e-3 and |f| ~ 1 the
// numerical derivative is good to ~1e-3 absolute; the tolerance
// atol + rtol * |g| with atol = 2e-3, rtol = 1e-2 leaves room for curvature
// (O(eps^2) truncation) without hiding a wrong formula (which is off by O(1)).
inline void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                      double eps = 1e-3, double atol = 2e-3, double rtol = 1e-2) {
  std::mt19937 gen(1234);
  for (auto& t : inputs) t = t.detach().requires_grad_();
  Tensor y = f(inputs);
  const std::vector<float> w = random_values(y.numel(), gen, 0.5f, 1.5f);
  Tensor wt = tensor(w, y.shape(), y.device());
  sum(y * wt).backward();
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor g = inputs[k].grad();
    ASSERT_TRUE(g.defined()) << "no gradient reached input " << k;
    ASSERT_EQ(g.shape(), inputs[k].shape());
    const auto ga = g.to_vector();
    const auto base = inputs[k].to_vector();
    for (size_t i = 0; i < base.size(); ++i) {
      auto shifted = [&](double d) {
        std::vector<Tensor> xs;
        for (size_t j = 0; j < inputs.size(); ++j) {
          if (j != k) {
            xs.push_back(inputs[j].detach());
            continue;
          }
          auto v = base;
          v[i] = static_cast<float>(v[i] + d);
          xs.push_back(tensor(v, inputs[k].shape(), inputs[k].device()));
        }
        NoGradGuard ng;
        return weighted_sum(f(xs), w);
      };
      const double h = eps * std::max(1.0, std::fabs(static_cast<double>(base[i])));
      const double num = (shifted(h) - shifted(-h)) / (2 * h);
      EXPECT_NEAR(ga[i], num, atol + rtol * std::fabs(num)) << "input " << k << " element " << i;
    }
  }
}

inline void expect_close(const std::vector<float>& got, const std::vector<double>& want, double atol, double rtol,
                         const char* what = "") {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], atol + rtol * std::fabs(want[i])) << what << " element " << i;
}

// Sample mean of Monte Carlo draws and its standard error (sample std /
// sqrt(n)), in double.
struct McEstimate {
  double mean, se;
};
template <class V>
McEstimate mc_estimate(const V& draws) {
  const double n = static_cast<double>(draws.size());
  double m = 0;
  for (double v : draws) m += v;
  m /= n;
  double s2 = 0;
  for (double v : draws) s2 += (v - m) * (v - m);
  return {m, std::sqrt(s2 / (n - 1) / n)};
}

// J[i][j] = d f(x)_i / d x_j for f: R^D -> R^E at one point x [D] (E =
// f(x).numel()), by reverse mode: one backward per output.
inline std::vector<std::vector<double>> jacobian(const std::function<Tensor(const Tensor&)>& f, const Tensor& x0) {
  const int64_t d = x0.numel();
  int64_t e = 0;
  {
    NoGradGuard ng;
    e = f(x0.detach()).numel();
  }
  std::vector<std::vector<double>> J(e, std::vector<double>(d));
  for (int64_t i = 0; i < e; ++i) {
    Tensor x = x0.detach().requires_grad_();
    Tensor y = f(x).reshape({e});
    std::vector<float> sel(static_cast<size_t>(e), 0.0f);
    sel[static_cast<size_t>(i)] = 1.0f;
    sum(y * tensor(sel, {e}, x.device())).backward();
    if (!x.grad().defined()) continue;  // an output that does not depend on x: a zero row
    const auto g = x.grad().to(Device::cpu()).to_vector();
    for (int64_t j = 0; j < d; ++j) J[i][j] = g[j];
  }
  return J;
}

// log|det A| by Gaussian elimination with partial pivoting, in double.
inline double log_abs_det(std::vector<std::vector<double>> a) {
  const size_t n = a.size();
  double acc = 0;
  for (size_t c = 0; c < n; ++c) {
    size_t p = c;
    for (size_t r = c + 1; r < n; ++r)
      if (std::fabs(a[r][c]) > std::fabs(a[p][c])) p = r;
    std::swap(a[p], a[c]);
    if (a[c][c] == 0) return -INFINITY;
    acc += std::log(std::fabs(a[c][c]));
    for (size_t r = c + 1; r < n; ++r) {
      const double f = a[r][c] / a[c][c];
      for (size_t k = c; k < n; ++k) a[r][k] -= f * a[c][k];
    }
  }
  return acc;
}

// Runs `body` and checks it throws E with every fragment in its message.
// On a GPU default device the body's queued checks (parameter and value
// validation, index ranges) raise at the next synchronisation, so it
// synchronises inside the try: the same test reads the same on both backends.
template <class E, class F>
void expect_error(F&& body, std::initializer_list<const char*> fragments) {
  try {
    body();
    if (default_device().is_cuda()) synchronize(default_device());
    ADD_FAILURE() << "expected an exception";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const char* f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "message: " << msg << " lacks " << f;
  }
}

}  // namespace cuvi::testing
