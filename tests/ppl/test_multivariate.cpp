// OneHotCategorical, RelaxedOneHotCategorical, Multinomial and
// LowRankMultivariateNormal (default device: the cpu, and cuda:0 in the gpu
// suite): log_prob against float64 references written here, with
// broadcasting; finite-difference gradients for every differentiable
// parameter; samplers on fixed seeds against their moments (tolerance 4
// standard errors: a correct sampler fails one such check with probability
// 6e-5, and the seeds are fixed, so a pass is reproducible) or a
// chi-square statistic (threshold: the 0.999 quantile of its distribution);
// pathwise gradients; error messages; and a use of each in inference.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/autoguide.hpp"
#include "ppl/distributions.hpp"
#include "ppl/infer.hpp"
#include "ppl/optim.hpp"
#include "ppl/poutine.hpp"

using namespace cuvi;
using namespace cuvi::testing;

namespace {

constexpr double kLog2Pi = 1.8378770664093453;

// The 0.999 quantiles of chi-square with 1..5 degrees of freedom.
double chi2_999(int dof) {
  static const double q[] = {0, 10.828, 13.816, 16.266, 18.467, 20.515};
  return q[dof];
}

// log pi (float64) of one unnormalised row: probs or logits.
std::vector<double> log_pi(const float* p, int K, bool logits) {
  std::vector<double> l(static_cast<size_t>(K));
  double norm;
  if (logits) {
    std::vector<double> v(p, p + K);
    norm = lse(v);
    for (int k = 0; k < K; ++k) l[static_cast<size_t>(k)] = p[k] - norm;
  } else {
    double s = 0;
    for (int k = 0; k < K; ++k) s += p[k];
    for (int k = 0; k < K; ++k) l[static_cast<size_t>(k)] = std::log(static_cast<double>(p[k]) / s);
  }
  return l;
}

// Rows of K one-hot floats at the given indices.
std::vector<float> one_hot_rows(const std::vector<int>& idx, int K) {
  std::vector<float> v(idx.size() * static_cast<size_t>(K), 0.0f);
  for (size_t i = 0; i < idx.size(); ++i) v[i * static_cast<size_t>(K) + static_cast<size_t>(idx[i])] = 1.0f;
  return v;
}

}  // namespace

// ============================== OneHotCategorical ==============================

// log_prob of one-hot rows equals Categorical's log_prob at the hot index
// and the float64 log pi, with value batch [3, 1] against parameter batch
// [2] (result [3, 2]), for probs and logits. Tolerance 2e-6 + 1e-6 |lp|:
// both are a handful of float32 operations on O(1) numbers.
TEST(OneHotCategorical, LogProbIsCategoricalAtTheHotIndex) {
  std::mt19937 gen(3);
  const int K = 4;
  const std::vector<int> idx = {2, 0, 3};
  const Tensor x = tensor(one_hot_rows(idx, K), {3, 1, K});
  const Tensor xi = tensor({2.0f, 0.0f, 3.0f}, {3, 1});
  for (bool logits : {false, true}) {
    SCOPED_TRACE(logits ? "logits" : "probs");
    const Tensor p = logits ? random_tensor({2, K}, gen, -2, 2) : random_tensor({2, K}, gen, 0.1f, 2.0f);
    const dist::OneHotCategorical d = logits ? dist::OneHotCategorical::from_logits(p) : dist::OneHotCategorical(p);
    const dist::Categorical c = logits ? dist::Categorical::from_logits(p) : dist::Categorical(p);
    EXPECT_EQ(d.batch_shape(), (Shape{2}));
    EXPECT_EQ(d.event_shape(), (Shape{K}));
    EXPECT_TRUE(d.is_discrete());
    EXPECT_FALSE(d.has_rsample());
    const Tensor lp = d.log_prob(x);
    ASSERT_EQ(lp.shape(), (Shape{3, 2}));
    const auto got = lp.to_vector(), want_c = c.log_prob(xi).to_vector(), pv = p.to_vector();
    for (int i = 0; i < 3; ++i)
      for (int b = 0; b < 2; ++b) {
        const double want = log_pi(pv.data() + b * K, K, logits)[static_cast<size_t>(idx[static_cast<size_t>(i)])];
        EXPECT_NEAR(got[static_cast<size_t>(i * 2 + b)], want, 2e-6 + 1e-6 * std::fabs(want)) << i << "," << b;
        EXPECT_NEAR(got[static_cast<size_t>(i * 2 + b)], want_c[static_cast<size_t>(i * 2 + b)], 2e-6) << i << "," << b;
      }
    // mean = probs, variance = probs (1 - probs).
    const auto m = d.mean().to_vector(), v = d.variance().to_vector();
    for (int b = 0; b < 2; ++b)
      for (int k = 0; k < K; ++k) {
        const double pk = std::exp(log_pi(pv.data() + b * K, K, logits)[static_cast<size_t>(k)]);
        EXPECT_NEAR(m[static_cast<size_t>(b * K + k)], pk, 1e-6);
        EXPECT_NEAR(v[static_cast<size_t>(b * K + k)], pk * (1 - pk), 1e-6);
      }
  }
}

// d log_prob / d parameter by central differences (gradcheck's float32
// tolerance), for probs and logits; and the fused log-prob-sum gives
// coef * sum(log_prob) with the same gradient (1e-5 relative: one float
// sum against another).
TEST(OneHotCategorical, GradientsAndFusedSum) {
  std::mt19937 gen(4);
  const int K = 3;
  const Tensor x = tensor(one_hot_rows({0, 2, 1, 2, 2}, K), {5, 1, K});
  for (bool logits : {false, true}) {
    SCOPED_TRACE(logits ? "logits" : "probs");
    const Tensor p = logits ? random_tensor({2, K}, gen, -1, 1) : random_tensor({2, K}, gen, 0.3f, 1.5f);
    auto make = [logits](const Tensor& q) {
      return logits ? dist::OneHotCategorical::from_logits(q) : dist::OneHotCategorical(q);
    };
    gradcheck([&](const std::vector<Tensor>& in) { return make(in[0]).log_prob(x); }, {p});
    const Tensor a = p.detach().requires_grad_(), b = p.detach().requires_grad_();
    const Tensor s1 = make(a).log_prob_sum(x, 0.7f);
    const Tensor s2 = sum(make(b).log_prob(x)) * 0.7f;
    EXPECT_NEAR(s1.item(), s2.item(), 1e-5 * std::fabs(s2.item()));
    s1.backward();
    s2.backward();
    const auto gb = b.grad().to_vector();
    expect_close(a.grad().to_vector(), std::vector<double>(gb.begin(), gb.end()), 1e-5, 1e-5, "fused gradient");
  }
}

// 40000 draws from one row: each is one-hot, and the category counts pass
// a chi-square test against N pi (3 dof, 0.999 quantile). Draws for a
// batch of 2 rows with sample shape [3] have shape [3, 2, K].
TEST(OneHotCategorical, SamplesAreOneHotWithCategoricalFrequencies) {
  fresh(5);
  const int K = 4, N = 40000;
  const std::vector<float> pr = {0.1f, 0.4f, 0.2f, 0.3f};
  for (bool logits : {false, true}) {
    SCOPED_TRACE(logits ? "logits" : "probs");
    std::vector<float> pv = pr;
    if (logits)
      for (float& v : pv) v = std::log(v) + 0.3f;  // unnormalised
    const dist::OneHotCategorical d =
        logits ? dist::OneHotCategorical::from_logits(tensor(pv)) : dist::OneHotCategorical(tensor(pv));
    const Tensor s = d.sample({N});
    ASSERT_EQ(s.shape(), (Shape{N, K}));
    ASSERT_EQ(s.dtype(), DType::kFloat32);
    const auto v = s.to_vector();
    std::vector<double> count(K, 0.0);
    for (int i = 0; i < N; ++i) {
      double row = 0;
      for (int k = 0; k < K; ++k) {
        const float e = v[static_cast<size_t>(i * K + k)];
        ASSERT_TRUE(e == 0.0f || e == 1.0f) << "draw " << i;
        row += e;
        count[static_cast<size_t>(k)] += e;
      }
      ASSERT_EQ(row, 1.0) << "draw " << i;
    }
    double chi2 = 0;
    for (int k = 0; k < K; ++k) {
      const double e = N * static_cast<double>(pr[static_cast<size_t>(k)]);
      chi2 += (count[static_cast<size_t>(k)] - e) * (count[static_cast<size_t>(k)] - e) / e;
    }
    EXPECT_LT(chi2, chi2_999(K - 1));
  }
  const dist::OneHotCategorical b(tensor({1.0f, 2.0f, 3.0f, 1.0f, 1.0f, 1.0f}, {2, 3}));
  EXPECT_EQ(b.sample({3}).shape(), (Shape{3, 2, 3}));
  EXPECT_EQ(b.expand({5, 2}).sample().shape(), (Shape{5, 2, 3}));
}

// The enumerated support: K one-hot rows, [K, 1, ..., 1, K] under
// enumerate_support.
TEST(OneHotCategorical, EnumerateSupportIsTheOneHotRows) {
  const dist::OneHotCategorical d(ones({2, 3}));
  EXPECT_TRUE(d.has_enumerate_support());
  const Tensor v = d.support_values();
  ASSERT_EQ(v.shape(), (Shape{3, 3}));
  const auto e = v.to_vector();
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(e[static_cast<size_t>(i * 3 + j)], i == j ? 1.0f : 0.0f);
  EXPECT_EQ(d.enumerate_support().shape(), (Shape{3, 1, 3}));
  // Enumerated values score against the batch: [K, 1, K] -> [K, 2].
  EXPECT_EQ(d.log_prob(d.enumerate_support()).shape(), (Shape{3, 2}));
}

// Mixture models under TraceEnum_ELBO, the assignment enumerated in
// parallel: written with OneHotCategorical (the component's mean picked by
// a dot product with the one-hot row) and with Categorical, the loss and
// the gradients of the weights and the means are bit-identical (each
// enumerated term is the same float operations: log p_k - log sum p, and
// the one-hot dot product adds exact zeros), and the loss is the float64
// -log p(x) within 1e-5 relative (float32 rounding of a few dozen terms).
TEST(OneHotCategorical, EnumeratedMixtureMatchesCategorical) {
  const std::vector<float> xs = {-1.3f, 0.2f, 2.4f, 1.9f, -0.4f, 0.9f, 3.1f};
  const int64_t n = static_cast<int64_t>(xs.size());
  const Tensor x = tensor(xs, {n});
  auto run = [&](bool one_hot) {
    fresh(6);
    auto model = [&, one_hot] {
      Tensor w = param("w", tensor({0.2f, 0.5f, 0.3f}), constraints::simplex);
      Tensor mu = param("mu", tensor({-1.0f, 0.5f, 2.0f}));
      auto p = plate("data", n);
      Tensor loc;
      if (one_hot) {
        Tensor z = sample("z", dist::OneHotCategorical(w), Infer{"parallel"});
        loc = sum(z * mu, {-1});
      } else {
        Tensor z = sample("z", dist::Categorical(w), Infer{"parallel"});
        loc = index_select(mu, 0, z.to_int64().reshape({z.numel()})).reshape(z.shape());
      }
      sample("x", dist::Normal(loc, 0.7f), x);
    };
    infer::ELBOResult r = infer::TraceEnum_ELBO().compute(model, [] {});
    r.surrogate.backward();
    std::vector<float> out{r.loss.item()};
    for (const char* nm : {"w", "mu"})
      for (float g : param_store().unconstrained(nm).grad().to_vector()) out.push_back(g);
    return out;
  };
  const std::vector<float> a = run(true), b = run(false);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "entry " << i;
  double want = 0;
  for (float xi : xs) {
    std::vector<double> t;
    const double w[] = {0.2, 0.5, 0.3}, mu[] = {-1.0, 0.5, 2.0};
    for (int k = 0; k < 3; ++k) t.push_back(std::log(w[k]) + normal_lp(xi, mu[k], 0.7));
    want -= lse(t);
  }
  EXPECT_NEAR(a[0], want, 1e-5 * std::fabs(want));
}

// infer_discrete (MAP, temperature 0) on the one-hot mixture: the chosen
// values are one-hot rows [n, K] (the support's event dim kept), hot at
// each point's largest responsibility (exact: an argmax of float64 terms
// that differ by > 1e-3 here).
TEST(OneHotCategorical, InferDiscreteGivesOneHotMapAssignments) {
  fresh(20);
  const std::vector<float> xs = {-1.3f, 0.2f, 2.4f, 1.9f, -0.4f, 0.9f, 3.1f};
  const int64_t n = static_cast<int64_t>(xs.size());
  auto model = [](const Tensor& x) {
    auto p = plate("data", x.numel());
    Tensor z = sample("z", dist::OneHotCategorical(tensor({0.2f, 0.5f, 0.3f})), Infer{"parallel"});
    sample("x", dist::Normal(sum(z * tensor({-1.0f, 0.5f, 2.0f}), {-1}), 0.7f), x);
  };
  const Trace tr = poutine::trace(infer::infer_discrete(model, -2, 0)).get_trace(tensor(xs, {n}));
  const Tensor z = tr.site("z").value;
  ASSERT_EQ(z.shape(), (Shape{n, 3}));
  const auto v = z.to_vector();
  const double w[] = {0.2, 0.5, 0.3}, mu[] = {-1.0, 0.5, 2.0};
  for (int64_t i = 0; i < n; ++i) {
    int best = 0;
    double best_lp = -INFINITY;
    for (int k = 0; k < 3; ++k) {
      const double lp = std::log(w[k]) + normal_lp(xs[static_cast<size_t>(i)], mu[k], 0.7);
      if (lp > best_lp) {
        best_lp = lp;
        best = k;
      }
    }
    for (int k = 0; k < 3; ++k) EXPECT_EQ(v[static_cast<size_t>(i * 3 + k)], k == best ? 1.0f : 0.0f) << i << "," << k;
  }
}

// Errors name the distribution and the offending shape or number.
TEST(OneHotCategorical, ErrorsNameTheDistributionAndTheValue) {
  const dist::OneHotCategorical d(tensor({0.2f, 0.3f, 0.5f}));
  expect_error<ShapeError>(
      [&] {
        d.log_prob(tensor({1.0f, 0.0f, 0.0f, 0.0f}, {1, 4}));
      },
      {"OneHotCategorical", "[1, 4]", "3"});
  expect_error<ValueError>([&] { d.log_prob(tensor({0.5f, 0.5f, 0.0f})); }, {"OneHotCategorical", "value", "0.5"});
  expect_error<ValueError>([&] { d.log_prob(tensor({1.0f, 1.0f, 0.0f})); }, {"OneHotCategorical", "one-hot", "2"});
  expect_error<ValueError>(
      [&] {
        d.log_prob_sum(tensor({0.0f, 0.0f, 0.0f}), 1.0f);
      },
      {"OneHotCategorical", "one-hot", "0"});
  expect_error<ValueError>(
      [&] {
        dist::OneHotCategorical(tensor({0.2f, -0.5f, 0.5f}));
      },
      {"OneHotCategorical", "probs", "-0.5"});
  expect_error<ValueError>(
      [&] {
        dist::OneHotCategorical::from_logits(tensor({0.2f, NAN, 0.5f}));
      },
      {"OneHotCategorical", "logits", "nan"});
  {
    dist::detail::SiteScope site("z_onehot");
    expect_error<ValueError>([&] { d.log_prob(tensor({0.0f, 2.0f, 0.0f})); }, {"OneHotCategorical", "site 'z_onehot'"});
  }
}

// ================================ Multinomial =================================

// log_prob against lgamma in float64, values [4, 1, K] against parameter
// rows [2, K] (result [4, 2]), probs and logits; mean n pi, variance
// n pi (1 - pi). Tolerance 1e-5 + 1e-6 |lp| (the kernel accumulates in
// double; the float inputs are exact).
TEST(Multinomial, LogProbAgainstFloat64Lgamma) {
  std::mt19937 gen(7);
  const int K = 3, n = 5;
  const std::vector<float> xv = {5, 0, 0, 1, 2, 2, 0, 4, 1, 3, 1, 1};
  const Tensor x = tensor(xv, {4, 1, K});
  for (bool logits : {false, true}) {
    SCOPED_TRACE(logits ? "logits" : "probs");
    const Tensor p = logits ? random_tensor({2, K}, gen, -2, 2) : random_tensor({2, K}, gen, 0.1f, 2.0f);
    const dist::Multinomial d = logits ? dist::Multinomial::from_logits(n, p) : dist::Multinomial(n, p);
    EXPECT_EQ(d.batch_shape(), (Shape{2}));
    EXPECT_EQ(d.event_shape(), (Shape{K}));
    EXPECT_EQ(d.total_count(), n);
    const Tensor lp = d.log_prob(x);
    ASSERT_EQ(lp.shape(), (Shape{4, 2}));
    const auto got = lp.to_vector(), pv = p.to_vector();
    for (int i = 0; i < 4; ++i)
      for (int b = 0; b < 2; ++b) {
        const auto l = log_pi(pv.data() + b * K, K, logits);
        double want = std::lgamma(n + 1.0);
        for (int k = 0; k < K; ++k) {
          const double c = xv[static_cast<size_t>(i * K + k)];
          want += c * l[static_cast<size_t>(k)] - std::lgamma(c + 1);
        }
        EXPECT_NEAR(got[static_cast<size_t>(i * 2 + b)], want, 1e-5 + 1e-6 * std::fabs(want)) << i << "," << b;
      }
    const auto m = d.mean().to_vector(), v = d.variance().to_vector();
    for (int b = 0; b < 2; ++b)
      for (int k = 0; k < K; ++k) {
        const double pk = std::exp(log_pi(pv.data() + b * K, K, logits)[static_cast<size_t>(k)]);
        EXPECT_NEAR(m[static_cast<size_t>(b * K + k)], n * pk, 1e-5);
        EXPECT_NEAR(v[static_cast<size_t>(b * K + k)], n * pk * (1 - pk), 1e-5);
      }
  }
}

// A zero probability with a zero count contributes nothing (not NaN); with
// a positive count the value is impossible (-inf).
TEST(Multinomial, ZeroProbabilityCategories) {
  const dist::Multinomial d(3, tensor({0.5f, 0.0f, 0.5f}));
  const auto lp = d.log_prob(tensor({1.0f, 0.0f, 2.0f, 1.0f, 1.0f, 1.0f}, {2, 3})).to_vector();
  EXPECT_NEAR(lp[0], std::log(3.0) + 3 * std::log(0.5), 1e-6);
  EXPECT_EQ(lp[1], -INFINITY);
}

// Gradients by central differences (probs, logits) and the fused sum.
TEST(Multinomial, GradientsAndFusedSum) {
  std::mt19937 gen(8);
  const int K = 4, n = 6;
  const Tensor x = tensor({1, 2, 0, 3, 6, 0, 0, 0, 2, 2, 1, 1}, {3, 1, K});
  for (bool logits : {false, true}) {
    SCOPED_TRACE(logits ? "logits" : "probs");
    const Tensor p = logits ? random_tensor({2, K}, gen, -1, 1) : random_tensor({2, K}, gen, 0.3f, 1.5f);
    auto make = [logits, n](const Tensor& q) {
      return logits ? dist::Multinomial::from_logits(n, q) : dist::Multinomial(n, q);
    };
    gradcheck([&](const std::vector<Tensor>& in) { return make(in[0]).log_prob(x); }, {p});
    const Tensor a = p.detach().requires_grad_(), b = p.detach().requires_grad_();
    const Tensor s1 = make(a).log_prob_sum(x, -1.3f);
    const Tensor s2 = sum(make(b).log_prob(x)) * -1.3f;
    EXPECT_NEAR(s1.item(), s2.item(), 1e-5 * std::fabs(s2.item()));
    s1.backward();
    s2.backward();
    const auto gb = b.grad().to_vector();
    expect_close(a.grad().to_vector(), std::vector<double>(gb.begin(), gb.end()), 1e-5, 1e-5, "fused gradient");
  }
}

// 20000 draws with n = 6 over K = 3: every row holds non-negative integers
// summing to n; per category the mean is within 4 SE of n pi (SE = sqrt(n
// pi (1 - pi) / N)) and the sample variance within 4 SE of n pi (1 - pi)
// (SE from the draws' fourth central moment); the pooled category counts
// pass a chi-square test (2 dof, 0.999 quantile; pooled rows are one
// multinomial of N n trials). n = 0 gives zero rows; shapes broadcast.
TEST(Multinomial, SamplerMomentsAndChiSquare) {
  fresh(9);
  const int K = 3, n = 6, N = 20000;
  const std::vector<double> pi = {0.2, 0.5, 0.3};
  for (bool logits : {false, true}) {
    SCOPED_TRACE(logits ? "logits" : "probs");
    const Tensor p = logits ? tensor({std::log(0.2f) - 1.0f, std::log(0.5f) - 1.0f, std::log(0.3f) - 1.0f})
                            : tensor({0.4f, 1.0f, 0.6f});
    const dist::Multinomial d = logits ? dist::Multinomial::from_logits(n, p) : dist::Multinomial(n, p);
    const Tensor s = d.sample({N});
    ASSERT_EQ(s.shape(), (Shape{N, K}));
    const auto v = s.to_vector();
    std::vector<std::vector<double>> col(K);
    for (int i = 0; i < N; ++i) {
      double row = 0;
      for (int k = 0; k < K; ++k) {
        const float c = v[static_cast<size_t>(i * K + k)];
        ASSERT_TRUE(c >= 0 && std::floor(c) == c) << c;
        row += c;
        col[static_cast<size_t>(k)].push_back(c);
      }
      ASSERT_EQ(row, n) << "draw " << i;
    }
    double chi2 = 0;
    for (int k = 0; k < K; ++k) {
      const auto& c = col[static_cast<size_t>(k)];
      const double pk = pi[static_cast<size_t>(k)], m = n * pk, var = n * pk * (1 - pk);
      const McEstimate e = mc_estimate(c);
      EXPECT_NEAR(e.mean, m, 4 * std::sqrt(var / N)) << "mean " << k;
      double s2 = 0, m4 = 0;
      for (double x : c) {
        s2 += (x - e.mean) * (x - e.mean);
        m4 += std::pow(x - e.mean, 4);
      }
      s2 /= (N - 1);
      m4 /= N;
      EXPECT_NEAR(s2, var, 4 * std::sqrt((m4 - s2 * s2) / N)) << "variance " << k;
      const double total = e.mean * N, expect = static_cast<double>(N) * n * pk;
      chi2 += (total - expect) * (total - expect) / expect;
    }
    EXPECT_LT(chi2, chi2_999(K - 1));
  }
  EXPECT_EQ(dist::Multinomial(0, ones({3})).sample({2}).to_vector(), std::vector<float>(6, 0.0f));
  EXPECT_EQ(dist::Multinomial(2, ones({2, 3})).sample({4}).shape(), (Shape{4, 2, 3}));
}

// Values must be rows of non-negative integers summing to total_count; the
// error names the distribution, the constraint and the offending number
// (the bad entry, else the row's sum).
TEST(Multinomial, ErrorsNameTheDistributionAndTheValue) {
  const dist::Multinomial d(5, tensor({0.2f, 0.3f, 0.5f}));
  expect_error<ValueError>([&] { d.log_prob(tensor({1.0f, 2.0f, 1.0f})); }, {"Multinomial", "total_count", "4"});
  expect_error<ValueError>([&] { d.log_prob(tensor({1.5f, 2.0f, 1.5f})); }, {"Multinomial", "value", "1.5"});
  expect_error<ValueError>(
      [&] {
        d.log_prob_sum(tensor({-1.0f, 3.0f, 3.0f}), 1.0f);
      },
      {"Multinomial", "non-negative integers", "-1"});
  expect_error<ShapeError>([&] { d.log_prob(tensor({1.0f, 4.0f}, {1, 2})); }, {"Multinomial", "[1, 2]", "3"});
  expect_error<ValueError>([&] { dist::Multinomial(-1, tensor({0.5f, 0.5f})); }, {"Multinomial", "total_count", "-1"});
  expect_error<ValueError>([&] { dist::Multinomial(3, tensor({0.5f, -0.25f})); }, {"Multinomial", "probs", "-0.25"});
  expect_error<ValueError>(
      [&] {
        dist::Multinomial::from_logits(3, tensor({INFINITY, 0.0f}));
      },
      {"Multinomial", "logits", "inf"});
  {
    dist::detail::SiteScope site("counts");
    expect_error<ValueError>([&] { d.log_prob(tensor({5.0f, 1.0f, 0.0f})); }, {"Multinomial", "6", "site 'counts'"});
  }
}

// Maximum likelihood on observed counts: a probs parameter on the simplex,
// fitted by SVI with an empty guide, reaches the empirical frequencies
// (the MLE) within 0.01 (Adam's noise-free convergence on a smooth
// concave objective; a wrong gradient ends elsewhere by > 0.05).
TEST(Multinomial, MaximumLikelihoodBySVI) {
  fresh(10);
  const Tensor counts = tensor({3, 1, 6, 2, 2, 6, 4, 0, 6, 1, 3, 6}, {4, 3});  // totals 10 each
  auto model = [](const Tensor& c) {
    Tensor p = param("p", tensor({1.0f / 3, 1.0f / 3, 1.0f / 3}), constraints::simplex);
    auto pl = plate("rows", c.size(0));
    sample("c", dist::Multinomial(10, p), c);
  };
  infer::SVI svi(
      model, [](const Tensor&) {}, optim::Adam({.lr = 0.05f}), infer::Trace_ELBO());
  for (int i = 0; i < 1500; ++i) svi.step(counts);
  const auto p = param_store().get("p").to_vector();
  EXPECT_NEAR(p[0], 10.0 / 40, 0.01);
  EXPECT_NEAR(p[1], 6.0 / 40, 0.01);
  EXPECT_NEAR(p[2], 24.0 / 40, 0.01);
}

// ========================== RelaxedOneHotCategorical ==========================

namespace {

// The Concrete density for K = 2 by another route: y_1 = sigmoid((l_1 -
// l_2 + L) / T) with L = G_1 - G_2 standard logistic, so u = logit(y_1) has
// density T f(T u - (l_1 - l_2)), f(s) = e^-s / (1 + e^-s)^2, and y_1 has
// that times |du/dy_1| = 1 / (y_1 (1 - y_1)) (the density over the first
// coordinate, as the K-dim formula's).
double relaxed2_log_density(double y1, double l1, double l2, double T) {
  const double u = std::log(y1 / (1 - y1));
  const double s = T * u - (l1 - l2);
  const double log_f = -s - 2 * std::log1p(std::exp(-s));
  return std::log(T) + log_f - std::log(y1) - std::log(1 - y1);
}

}  // namespace

// For K = 2 log_prob equals the change-of-variables density above (float64)
// at several y and temperatures, probs and logits, with a tensor
// temperature [3] broadcasting against 3 parameter rows, values [2, 1, 2]
// against batch [3] (result [2, 3]). Tolerance 2e-5 + 2e-5 |lp|: float32
// logs of numbers in (0.05, 0.95) with O(10) magnitudes.
TEST(RelaxedOneHotCategorical, TwoCategoriesMatchTheLogisticDensity) {
  std::mt19937 gen(11);
  const std::vector<float> y = {0.3f, 0.7f, 0.9f, 0.1f};  // two simplex rows
  const Tensor yt = tensor(y, {2, 1, 2});
  for (bool logits : {false, true}) {
    for (bool tensor_t : {false, true}) {
      SCOPED_TRACE(std::string(logits ? "logits" : "probs") + (tensor_t ? ", tensor T" : ", float T"));
      const Tensor p = logits ? random_tensor({3, 2}, gen, -1.5f, 1.5f) : random_tensor({3, 2}, gen, 0.2f, 2.0f);
      const std::vector<float> Ts =
          tensor_t ? std::vector<float>{0.5f, 1.0f, 2.5f} : std::vector<float>{0.7f, 0.7f, 0.7f};
      const dist::Arg T = tensor_t ? dist::Arg(tensor(Ts)) : dist::Arg(0.7f);
      const dist::RelaxedOneHotCategorical d =
          logits ? dist::RelaxedOneHotCategorical::from_logits(T, p) : dist::RelaxedOneHotCategorical(T, p);
      EXPECT_EQ(d.batch_shape(), (Shape{3}));
      EXPECT_EQ(d.event_shape(), (Shape{2}));
      EXPECT_TRUE(d.has_rsample());
      const Tensor lp = d.log_prob(yt);
      ASSERT_EQ(lp.shape(), (Shape{2, 3}));
      const auto got = lp.to_vector(), pv = p.to_vector();
      for (int i = 0; i < 2; ++i)
        for (int b = 0; b < 3; ++b) {
          const auto l = log_pi(pv.data() + b * 2, 2, logits);
          const double want =
              relaxed2_log_density(y[static_cast<size_t>(i * 2)], l[0], l[1], Ts[static_cast<size_t>(b)]);
          EXPECT_NEAR(got[static_cast<size_t>(i * 3 + b)], want, 2e-5 + 2e-5 * std::fabs(want)) << i << "," << b;
        }
    }
  }
}

// The K = 3 density integrates to 1 over the simplex: importance sampling
// from the uniform Dirichlet(1, 1, 1) (density 2 on the simplex's first two
// coordinates), 200000 draws, E[p / q] within 4 SE of 1. T = 2 keeps p / q
// bounded (at T <= 1 the density is unbounded at the vertices).
TEST(RelaxedOneHotCategorical, ThreeCategoryDensityIntegratesToOne) {
  fresh(12);
  const int N = 200000;
  const Tensor y = dist::Dirichlet(ones({3})).sample({N});
  const dist::RelaxedOneHotCategorical d =
      dist::RelaxedOneHotCategorical::from_logits(2.0f, tensor({0.3f, -0.4f, 0.8f}));
  const auto lp = d.log_prob(y).to_vector();
  std::vector<double> w(lp.size());
  for (size_t i = 0; i < lp.size(); ++i) w[i] = std::exp(static_cast<double>(lp[i])) / 2.0;
  const McEstimate e = mc_estimate(w);
  EXPECT_NEAR(e.mean, 1.0, 4 * e.se) << "SE " << e.se;
  EXPECT_LT(e.se, 0.01);
}

// rsample: rows on the simplex (sum 1 within 1e-5) with positive entries;
// argmax(y) is exactly Categorical(pi) whatever T (the Gumbel-max trick):
// chi-square (2 dof, 0.999 quantile) on 30000 draws; for K = 2, P(y_1 < c)
// = sigmoid(T logit(c) - (l_1 - l_2)) at three c within 4 SE of a
// proportion.
TEST(RelaxedOneHotCategorical, SamplesFollowTheGumbelSoftmaxLaw) {
  fresh(13);
  const int N = 30000;
  const std::vector<double> pi = {0.2, 0.5, 0.3};
  const dist::RelaxedOneHotCategorical d(0.4f, tensor({0.2f, 0.5f, 0.3f}));
  const Tensor s = d.rsample({N});
  ASSERT_EQ(s.shape(), (Shape{N, 3}));
  const auto v = s.to_vector();
  std::vector<double> count(3, 0.0);
  for (int i = 0; i < N; ++i) {
    const float* r = v.data() + i * 3;
    ASSERT_GT(r[0], 0.0f);
    ASSERT_GT(r[1], 0.0f);
    ASSERT_GT(r[2], 0.0f);
    ASSERT_NEAR(r[0] + r[1] + r[2], 1.0, 1e-5);
    const int am = r[0] >= r[1] && r[0] >= r[2] ? 0 : (r[1] >= r[2] ? 1 : 2);
    count[static_cast<size_t>(am)] += 1;
  }
  double chi2 = 0;
  for (int k = 0; k < 3; ++k) {
    const double e = N * pi[static_cast<size_t>(k)];
    chi2 += (count[static_cast<size_t>(k)] - e) * (count[static_cast<size_t>(k)] - e) / e;
  }
  EXPECT_LT(chi2, chi2_999(2));
  // K = 2, T = 1.5, logits (0.4, -0.3).
  const double T = 1.5, dl = 0.7;
  const auto y1 =
      dist::RelaxedOneHotCategorical::from_logits(1.5f, tensor({0.4f, -0.3f})).rsample({N}).narrow(1, 0, 1).to_vector();
  for (double c : {0.2, 0.5, 0.8}) {
    double below = 0;
    for (float u : y1) below += u < c ? 1 : 0;
    const double want = 1 / (1 + std::exp(-(T * std::log(c / (1 - c)) - dl)));
    EXPECT_NEAR(below / N, want, 4 * std::sqrt(want * (1 - want) / N)) << "c " << c;
  }
  // A tensor temperature broadcasts into the batch shape.
  const dist::RelaxedOneHotCategorical b(tensor({0.5f, 1.0f}, {2, 1}), ones({3, 4}));
  EXPECT_EQ(b.batch_shape(), (Shape{2, 3}));
  EXPECT_EQ(b.rsample({5}).shape(), (Shape{5, 2, 3, 4}));
  EXPECT_EQ(b.sample().shape(), (Shape{2, 3, 4}));
}

// Gradients of log_prob by central differences: the parameter (probs,
// logits) and a tensor temperature.
TEST(RelaxedOneHotCategorical, LogProbGradients) {
  std::mt19937 gen(14);
  const Tensor y = tensor({0.2f, 0.5f, 0.3f, 0.6f, 0.1f, 0.3f}, {2, 1, 3});
  for (bool logits : {false, true}) {
    SCOPED_TRACE(logits ? "logits" : "probs");
    const Tensor p = logits ? random_tensor({2, 3}, gen, -1, 1) : random_tensor({2, 3}, gen, 0.3f, 1.5f);
    const Tensor T = tensor({0.6f, 1.3f});
    gradcheck(
        [&](const std::vector<Tensor>& in) {
          return logits ? dist::RelaxedOneHotCategorical::from_logits(in[1], in[0]).log_prob(y)
                        : dist::RelaxedOneHotCategorical(in[1], in[0]).log_prob(y);
        },
        {p, T});
  }
}

// The pathwise gradient of E[f(y)], f(y) = sum_k c_k y_k^2, over 2000
// draws: autodiff through rsample against central differences of the same
// estimate with common random numbers (the same seed, so the same Gumbel
// noise: a smooth function of the logits and T). Agreement to 1e-4 + 1e-3
// |g|: central differences with h = 1e-2 of a float32 mean of 2000 terms
// (truncation O(h^2) and rounding ~1e-7 / h; measured ~2e-6 here, while
// a wrong pathwise term is off by O(|g|) ~ 0.1).
TEST(RelaxedOneHotCategorical, PathwiseGradientMatchesCommonRandomNumbers) {
  const Tensor c = tensor({1.0f, -2.0f, 0.5f});
  const int N = 2000;
  auto estimate = [&](const Tensor& logits, const Tensor& T) {
    set_seed(77);
    const Tensor y = dist::RelaxedOneHotCategorical::from_logits(T, logits).rsample({N});
    return mean(sum(square(y) * c, {-1}));
  };
  const Tensor l0 = tensor({0.3f, -0.2f, 0.5f}).requires_grad_();
  const Tensor T0 = tensor({0.8f}).requires_grad_();
  estimate(l0, T0).backward();
  const auto gl = l0.grad().to_vector();
  const float gT = T0.grad().item();
  const double h = 1e-2;
  auto fd = [&](int which) {
    auto at = [&](double s) {
      NoGradGuard ng;
      std::vector<float> lv = {0.3f, -0.2f, 0.5f};
      float tv = 0.8f;
      if (which < 3) lv[static_cast<size_t>(which)] += static_cast<float>(s);
      else tv += static_cast<float>(s);
      return static_cast<double>(estimate(tensor(lv), tensor({tv})).item());
    };
    return (at(h) - at(-h)) / (2 * h);
  };
  for (int k = 0; k < 3; ++k) {
    const double want = fd(k);
    EXPECT_NEAR(gl[static_cast<size_t>(k)], want, 1e-4 + 1e-3 * std::fabs(want)) << "logit " << k;
  }
  const double wT = fd(3);
  EXPECT_NEAR(gT, wT, 1e-4 + 1e-3 * std::fabs(wT)) << "temperature";
  EXPECT_GT(std::fabs(wT), 1e-2);  // the check has something to compare
}

TEST(RelaxedOneHotCategorical, ErrorsNameTheDistributionAndTheValue) {
  const dist::RelaxedOneHotCategorical d(0.5f, tensor({0.2f, 0.3f, 0.5f}));
  expect_error<ShapeError>([&] { d.log_prob(tensor({0.5f, 0.5f}, {1, 2})); }, {"RelaxedOneHotCategorical", "[1, 2]"});
  expect_error<ValueError>(
      [&] {
        d.log_prob(tensor({0.5f, 0.6f, 0.1f}));
      },
      {"RelaxedOneHotCategorical", "simplex", "1.2"});
  expect_error<ValueError>(
      [&] {
        d.log_prob(tensor({-0.5f, 1.0f, 0.5f}));
      },
      {"RelaxedOneHotCategorical", "value", "-0.5"});
  expect_error<ValueError>(
      [&] {
        dist::RelaxedOneHotCategorical(-1.0f, tensor({0.5f, 0.5f}));
      },
      {"RelaxedOneHotCategorical", "temperature", "-1"});
  expect_error<ValueError>(
      [&] {
        dist::RelaxedOneHotCategorical(1.0f, tensor({0.5f, -0.5f}));
      },
      {"RelaxedOneHotCategorical", "probs", "-0.5"});
  expect_error<ShapeError>(
      [&] {
        dist::RelaxedOneHotCategorical(tensor({1.0f, 2.0f}), ones({3, 2}));
      },
      {"RelaxedOneHotCategorical", "temperature"});
  // A tensor temperature is checked on the device: at once on the cpu, at
  // the next synchronisation on a GPU.
  expect_error<ValueError>(
      [&] {
        dist::RelaxedOneHotCategorical(tensor({1.0f, 0.0f}), ones({2, 2}));
        synchronize(default_device());
      },
      {"RelaxedOneHotCategorical", "temperature", "0"});
}

// ========================== LowRankMultivariateNormal ==========================

namespace {

// log N(x; loc, W W^T + diag(d)) in float64 through the full covariance's
// Cholesky factor.
double lowrank_host(const float* x, const float* loc, const float* W, const float* d, int D, int R) {
  std::vector<double> S(static_cast<size_t>(D * D)), L(static_cast<size_t>(D * D), 0.0);
  for (int i = 0; i < D; ++i)
    for (int j = 0; j < D; ++j) {
      double s = i == j ? d[i] : 0.0;
      for (int r = 0; r < R; ++r) s += static_cast<double>(W[i * R + r]) * W[j * R + r];
      S[static_cast<size_t>(i * D + j)] = s;
    }
  for (int i = 0; i < D; ++i)
    for (int j = 0; j <= i; ++j) {
      double s = S[static_cast<size_t>(i * D + j)];
      for (int k = 0; k < j; ++k) s -= L[static_cast<size_t>(i * D + k)] * L[static_cast<size_t>(j * D + k)];
      L[static_cast<size_t>(i * D + j)] = i == j ? std::sqrt(s) : s / L[static_cast<size_t>(j * D + j)];
    }
  std::vector<double> z(static_cast<size_t>(D));
  double maha = 0, half_log_det = 0;
  for (int i = 0; i < D; ++i) {
    double acc = static_cast<double>(x[i]) - loc[i];
    for (int j = 0; j < i; ++j) acc -= L[static_cast<size_t>(i * D + j)] * z[static_cast<size_t>(j)];
    z[static_cast<size_t>(i)] = acc / L[static_cast<size_t>(i * D + i)];
    maha += z[static_cast<size_t>(i)] * z[static_cast<size_t>(i)];
    half_log_det += std::log(L[static_cast<size_t>(i * D + i)]);
  }
  return -0.5 * maha - half_log_det - 0.5 * D * kLog2Pi;
}

}  // namespace

// log_prob (Woodbury) against the full-covariance formula in float64 for
// (D, R) up to (8, 3), loc [2, 1, D], cov_factor [3, D, R], cov_diag [D],
// values [4, 1, 1, D] (result [4, 2, 3]); mean, variance,
// covariance_matrix and scale_tril against the host. Tolerance 2e-4 +
// 2e-5 |lp|: float32 sums of O(10) terms (a wrong capacitance term is off
// by O(1)).
TEST(LowRankMultivariateNormal, LogProbMatchesTheFullCovariance) {
  std::mt19937 gen(15);
  for (auto [D, R] : std::vector<std::pair<int, int>>{{1, 1}, {3, 1}, {5, 2}, {8, 3}, {2, 3}}) {
    SCOPED_TRACE("D " + std::to_string(D) + ", R " + std::to_string(R));
    const Tensor loc = random_tensor({2, 1, D}, gen, -1, 1);
    const Tensor W = random_tensor({3, D, R}, gen, -0.8f, 0.8f);
    const Tensor d = random_tensor({D}, gen, 0.3f, 1.5f);
    const Tensor x = random_tensor({4, 1, 1, D}, gen, -2, 2);
    const dist::LowRankMultivariateNormal m(loc, W, d);
    EXPECT_EQ(m.batch_shape(), (Shape{2, 3}));
    EXPECT_EQ(m.event_shape(), (Shape{D}));
    const Tensor lp = m.log_prob(x);
    ASSERT_EQ(lp.shape(), (Shape{4, 2, 3}));
    const auto got = lp.to_vector(), lv = loc.to_vector(), wv = W.to_vector(), dv = d.to_vector(), xv = x.to_vector();
    for (int i = 0; i < 4; ++i)
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 3; ++b) {
          const double want =
              lowrank_host(xv.data() + i * D, lv.data() + a * D, wv.data() + b * D * R, dv.data(), D, R);
          EXPECT_NEAR(got[static_cast<size_t>((i * 2 + a) * 3 + b)], want, 2e-4 + 2e-5 * std::fabs(want));
        }
    const auto var = m.variance().to_vector(), cov = m.covariance_matrix().to_vector();
    const auto L = m.scale_tril().to_vector();
    ASSERT_EQ(m.mean().shape(), (Shape{2, 3, D}));
    ASSERT_EQ(m.covariance_matrix().shape(), (Shape{2, 3, D, D}));
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 3; ++b)
        for (int i = 0; i < D; ++i)
          for (int j = 0; j < D; ++j) {
            double s = i == j ? dv[static_cast<size_t>(i)] : 0.0;
            for (int r = 0; r < R; ++r)
              s += static_cast<double>(wv[static_cast<size_t>((b * D + i) * R + r)]) *
                   wv[static_cast<size_t>((b * D + j) * R + r)];
            const size_t at = static_cast<size_t>(((a * 3 + b) * D + i) * D + j);
            EXPECT_NEAR(cov[at], s, 1e-5);
            if (i == j) EXPECT_NEAR(var[static_cast<size_t>((a * 3 + b) * D + i)], s, 1e-5);
            // (L L^T)_ij
            double ll = 0;
            for (int k = 0; k < D; ++k)
              ll += static_cast<double>(L[static_cast<size_t>(((a * 3 + b) * D + i) * D + k)]) *
                    L[static_cast<size_t>(((a * 3 + b) * D + j) * D + k)];
            EXPECT_NEAR(ll, s, 1e-4);
          }
  }
}

// Gradients of log_prob by central differences for the value, loc,
// cov_factor and cov_diag, with broadcasting batch dims.
TEST(LowRankMultivariateNormal, LogProbGradients) {
  std::mt19937 gen(16);
  const int D = 3, R = 2;
  gradcheck(
      [](const std::vector<Tensor>& in) {
        return dist::LowRankMultivariateNormal(in[1], in[2], in[3]).log_prob(in[0]);
      },
      {random_tensor({2, 1, D}, gen, -1, 1), random_tensor({2, D}, gen, -1, 1), random_tensor({D, R}, gen, -0.8f, 0.8f),
       random_tensor({D}, gen, 0.5f, 1.5f)});
}

// 40000 draws: the sample mean within 4 SE (sqrt(S_ii / N)) of loc and
// each sample covariance entry within 4 SE (sqrt((S_ii S_jj + S_ij^2) /
// N), a Gaussian's) of W W^T + diag(d).
TEST(LowRankMultivariateNormal, SampleCovarianceIsLowRankPlusDiagonal) {
  fresh(17);
  const int D = 3, R = 2, N = 40000;
  const std::vector<float> lv = {0.5f, -1.0f, 2.0f}, wv = {1.0f, 0.3f, -0.5f, 0.8f, 0.2f, -0.7f},
                           dv = {0.4f, 0.9f, 0.25f};
  const dist::LowRankMultivariateNormal m(tensor(lv), tensor(wv, {D, R}), tensor(dv));
  const auto s = m.rsample({N}).to_vector();
  const auto S = m.covariance_matrix().to_vector();
  std::vector<double> mu(D, 0.0);
  for (int i = 0; i < N; ++i)
    for (int k = 0; k < D; ++k) mu[static_cast<size_t>(k)] += s[static_cast<size_t>(i * D + k)];
  for (double& v : mu) v /= N;
  for (int k = 0; k < D; ++k)
    EXPECT_NEAR(mu[static_cast<size_t>(k)], lv[static_cast<size_t>(k)],
                4 * std::sqrt(S[static_cast<size_t>(k * D + k)] / N));
  for (int a = 0; a < D; ++a)
    for (int b = 0; b < D; ++b) {
      double c = 0;
      for (int i = 0; i < N; ++i)
        c += (s[static_cast<size_t>(i * D + a)] - mu[static_cast<size_t>(a)]) *
             (s[static_cast<size_t>(i * D + b)] - mu[static_cast<size_t>(b)]);
      c /= (N - 1);
      const double want = S[static_cast<size_t>(a * D + b)];
      const double se =
          std::sqrt((S[static_cast<size_t>(a * D + a)] * S[static_cast<size_t>(b * D + b)] + want * want) / N);
      EXPECT_NEAR(c, want, 4 * se) << a << "," << b;
    }
}

// The pathwise gradient of mean_i f(y_i), f(y) = sum_k a_k y_k^2, over
// 40000 draws against its expectation's gradient: E f = sum_k a_k (loc_k^2
// + S_kk), so d/dloc_k = 2 a_k loc_k, d/dW_kr = 2 a_k W_kr, d/dd_k = a_k.
// Per draw the gradients are 2 a_k y_k, 2 a_k y_k e_r and a_k y_k e_k /
// sqrt(d_k) (e the draw's noise), whose variances a_k^2 times 4 (S_kk), 4
// (loc_k^2 + S_kk + W_kr^2) and (loc_k^2 + S_kk + d_k) / d_k set 4-SE
// tolerances.
TEST(LowRankMultivariateNormal, PathwiseGradientIsUnbiased) {
  fresh(18);
  const int D = 3, R = 2, N = 40000;
  const std::vector<float> lv = {0.5f, -1.0f, 0.2f}, wv = {1.0f, 0.3f, -0.5f, 0.8f, 0.2f, -0.7f},
                           dv = {0.4f, 0.9f, 0.25f};
  const std::vector<double> a = {1.0, 0.5, -1.5};
  const Tensor loc = tensor(lv).requires_grad_(), W = tensor(wv, {D, R}).requires_grad_(),
               d = tensor(dv).requires_grad_();
  const Tensor y = dist::LowRankMultivariateNormal(loc, W, d).rsample({N});
  mean(sum(square(y) * tensor({1.0f, 0.5f, -1.5f}), {-1})).backward();
  const auto gl = loc.grad().to_vector(), gW = W.grad().to_vector(), gd = d.grad().to_vector();
  for (int k = 0; k < D; ++k) {
    double Skk = dv[static_cast<size_t>(k)];
    for (int r = 0; r < R; ++r) Skk += wv[static_cast<size_t>(k * R + r)] * wv[static_cast<size_t>(k * R + r)];
    const double l = lv[static_cast<size_t>(k)], ak = std::fabs(a[static_cast<size_t>(k)]);
    EXPECT_NEAR(gl[static_cast<size_t>(k)], 2 * a[static_cast<size_t>(k)] * l, 4 * ak * std::sqrt(4 * Skk / N))
        << "loc " << k;
    for (int r = 0; r < R; ++r) {
      const double w = wv[static_cast<size_t>(k * R + r)];
      EXPECT_NEAR(gW[static_cast<size_t>(k * R + r)], 2 * a[static_cast<size_t>(k)] * w,
                  4 * ak * std::sqrt(4 * (l * l + Skk + w * w) / N))
          << "W " << k << "," << r;
    }
    const double dk = dv[static_cast<size_t>(k)];
    EXPECT_NEAR(gd[static_cast<size_t>(k)], a[static_cast<size_t>(k)], 4 * ak * std::sqrt((l * l + Skk + dk) / dk / N))
        << "d " << k;
  }
}

TEST(LowRankMultivariateNormal, ErrorsNameTheDistributionAndTheShapes) {
  expect_error<ShapeError>(
      [] {
        dist::LowRankMultivariateNormal(zeros({3}), ones({4, 2}), ones({3}));
      },
      {"LowRankMultivariateNormal", "cov_factor", "[4, 2]", "[3]"});
  expect_error<ShapeError>(
      [] {
        dist::LowRankMultivariateNormal(zeros({3}), ones({3, 2}), ones({2}));
      },
      {"LowRankMultivariateNormal", "cov_diag", "[2]"});
  expect_error<ShapeError>(
      [] {
        dist::LowRankMultivariateNormal(zeros({2, 3}), ones({4, 3, 1}), ones({3}));
      },
      {"LowRankMultivariateNormal"});
  const dist::LowRankMultivariateNormal m(zeros({3}), ones({3, 1}), ones({3}));
  expect_error<ShapeError>([&] { m.log_prob(zeros({2, 4})); }, {"LowRankMultivariateNormal", "log_prob", "[2, 4]"});
  EXPECT_EQ(m.expand({2, 5}).batch_shape(), (Shape{2, 5}));
  const dist::LowRankMultivariateNormal mb(zeros({2, 3}), ones({3, 1}), ones({3}));
  expect_error<ShapeError>([&] { mb.expand({5}); }, {"LowRankMultivariateNormal", "expand", "[2]", "[5]"});
  // Parameter values are checked on the device: at once on the cpu, at the
  // next synchronisation on a GPU (a step that builds one does not wait).
  const Device dev = default_device();
  expect_error<ValueError>(
      [dev] {
        dist::LowRankMultivariateNormal(zeros({2}), ones({2, 1}), tensor({1.0f, -1.0f}));
        synchronize(dev);
      },
      {"LowRankMultivariateNormal", "cov_diag", "-1"});
  expect_error<ValueError>(
      [dev] {
        dist::LowRankMultivariateNormal(tensor({0.0f, NAN}), ones({2, 1}), ones({2}));
        synchronize(dev);
      },
      {"LowRankMultivariateNormal", "loc", "nan"});
  expect_error<ValueError>(
      [dev] {
        dist::LowRankMultivariateNormal(zeros({2}), tensor({1.0f, INFINITY}, {2, 1}), ones({2}));
        synchronize(dev);
      },
      {"LowRankMultivariateNormal", "cov_factor", "inf"});
  const bool was = dist::validation_enabled();
  dist::set_validation(false);  // no check at all
  EXPECT_NO_THROW({
    dist::LowRankMultivariateNormal(zeros({2}), ones({2, 1}), tensor({1.0f, -1.0f}));
    synchronize(dev);
  });
  dist::set_validation(was);
}

// A guide over a correlated 2-D Gaussian posterior: z ~ N(0, I_2), x_i ~
// N(z_1 + z_2, 1), n = 8, so with a = (1, 1) the posterior has precision
// I + n a a^T: covariance I - n / (1 + 2n) a a^T, mean (sum x / (1 + 2n))
// a. A LowRankMultivariateNormal guide (rank 1 plus a diagonal holds any
// 2 x 2 covariance) fitted by SVI; its mean and covariance averaged over
// the last 1500 of 4000 steps match within 0.05 (as AutoLowRank's test:
// the averaged SGD noise with 4 particles is a few hundredths).
TEST(LowRankMultivariateNormal, GuideFitsAConjugateGaussianPosterior) {
  fresh(19);
  const std::vector<float> xs = {1.2f, 0.4f, 2.1f, 0.9f, 1.6f, -0.3f, 1.1f, 0.8f};
  const int n = static_cast<int>(xs.size());
  double sx = 0;
  for (float v : xs) sx += v;
  const double mean_z = sx / (1 + 2 * n), var = 1.0 - static_cast<double>(n) / (1 + 2 * n),
               cov = -static_cast<double>(n) / (1 + 2 * n);
  auto model = [](const Tensor& x) {
    Tensor z = sample("z", dist::Normal(zeros({2}), ones({2})).to_event(1));
    auto p = plate("data", x.size(0));
    sample("obs", dist::Normal(sum(z), 1.0f), x);
  };
  auto guide = [](const Tensor&) {
    Tensor loc = param("q_loc", zeros({2}));
    Tensor W = param("q_W", tensor({0.1f, -0.1f}, {2, 1}));
    Tensor d = param("q_d", tensor({0.5f, 0.5f}), constraints::positive);
    sample("z", dist::LowRankMultivariateNormal(loc, W, d));
  };
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.01f}), infer::Trace_ELBO({.num_particles = 4}));
  const Tensor x = tensor(xs);
  std::vector<double> m(2, 0.0), c(3, 0.0);
  int count = 0;
  for (int k = 0; k < 4000; ++k) {
    svi.step(x);
    if (k >= 2500) {
      const auto l = param_store().get("q_loc").to_vector();
      const auto w = param_store().get("q_W").to_vector();
      const auto d = param_store().get("q_d").to_vector();
      m[0] += l[0];
      m[1] += l[1];
      c[0] += w[0] * w[0] + d[0];
      c[1] += w[1] * w[1] + d[1];
      c[2] += w[0] * w[1];
      ++count;
    }
  }
  for (double& v : m) v /= count;
  for (double& v : c) v /= count;
  EXPECT_NEAR(m[0], mean_z, 0.05);
  EXPECT_NEAR(m[1], mean_z, 0.05);
  EXPECT_NEAR(c[0], var, 0.05);
  EXPECT_NEAR(c[1], var, 0.05);
  EXPECT_NEAR(c[2], cov, 0.05);
}

// AutoLowRankMultivariateNormal's get_posterior() is this distribution:
// loc, cov_factor s W and cov_diag s^2 from its parameters, and its
// log_prob equals the full-covariance MultivariateNormal's (1e-4 + 1e-5
// |lp|: two float32 routes to the same number).
TEST(LowRankMultivariateNormal, IsAutoLowRankMultivariateNormalsPosterior) {
  fresh(21);
  auto model = [](const Tensor& x) {
    Tensor z = sample("z", dist::Normal(zeros({3}), ones({3})).to_event(1));
    auto p = plate("data", x.size(0));
    sample("obs", dist::Normal(sum(z), 1.0f), x);
  };
  infer::AutoLowRankMultivariateNormal guide(model, {.rank = 2});
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.05f}), infer::Trace_ELBO());
  const Tensor x = tensor({0.5f, 1.5f, -0.2f});
  for (int i = 0; i < 20; ++i) svi.step(x);
  const dist::DistPtr post = guide.get_posterior();
  const auto* lr = dynamic_cast<const dist::LowRankMultivariateNormal*>(post.get());
  ASSERT_NE(lr, nullptr) << post->name();
  const auto w = param_store().get("AutoLowRankMultivariateNormal.cov_factor").to_vector();  // [3, 2]
  const auto s = param_store().get("AutoLowRankMultivariateNormal.scale").to_vector();
  const auto f = lr->cov_factor().to_vector(), d = lr->cov_diag().to_vector();
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(d[static_cast<size_t>(i)], s[static_cast<size_t>(i)] * s[static_cast<size_t>(i)], 1e-6);
    for (int r = 0; r < 2; ++r)
      EXPECT_NEAR(f[static_cast<size_t>(i * 2 + r)], s[static_cast<size_t>(i)] * w[static_cast<size_t>(i * 2 + r)],
                  1e-6);
  }
  std::mt19937 gen(22);
  const Tensor pts = random_tensor({4, 3}, gen, -2, 2);
  const auto a = lr->log_prob(pts).to_vector();
  const auto b =
      dist::MultivariateNormal::from_covariance(lr->loc(), lr->covariance_matrix()).log_prob(pts).to_vector();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4 + 1e-5 * std::fabs(b[i])) << i;
}
