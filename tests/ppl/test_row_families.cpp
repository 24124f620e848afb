// Dirichlet and Categorical through their row kernels (default device): log_prob
// against float64 host formulas with broadcasting, gradients by finite
// differences, the fused log-prob-sum, samplers (moments, chi-square), the
// Dirichlet pathwise gradient against the analytic derivative of an
// expectation, and validation messages.
#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/distributions.hpp"

using namespace cuvi;
using namespace cuvi::testing;

namespace {

struct ValidationOff {
  ValidationOff() { dist::set_validation(false); }
  ~ValidationOff() { dist::set_validation(true); }
};

// n rows of K positive numbers normalised in double (float rounding leaves
// each row's sum within 1e-7 of one).
Tensor random_simplex(int64_t n, int64_t K, std::mt19937& gen, const Shape& shape) {
  std::uniform_real_distribution<double> u(0.05, 1.0);
  std::vector<float> v;
  for (int64_t r = 0; r < n; ++r) {
    std::vector<double> row(static_cast<size_t>(K));
    double s = 0;
    for (auto& x : row) s += (x = u(gen));
    for (double x : row) v.push_back(static_cast<float>(x / s));
  }
  return tensor(v, shape);
}

// `rows` Dirichlet values (0.2, 0.3, 0.5) but for two bad rows, 20000 (a
// -0.4) and 30000 (a -0.1), and `rows` Categorical indices 1 but for two
// out of range, 25000 (7) and 35000 (9): the first bad by index is 20000 and
// 25000, the first met by a chunked or unordered scan need not be.
Tensor simplex_rows_with_two_bad(int64_t rows) {
  std::vector<float> xv;
  for (int64_t r = 0; r < rows; ++r) xv.insert(xv.end(), {0.2f, 0.3f, 0.5f});
  const auto put = [&](int64_t r, std::initializer_list<float> v) { std::copy(v.begin(), v.end(), xv.begin() + r * 3); };
  put(30000, {0.5f, 0.6f, -0.1f});
  put(20000, {0.7f, 0.7f, -0.4f});
  return tensor(xv, {rows, 3});
}
Tensor indices_with_two_bad(int64_t rows) {
  std::vector<int64_t> idx(static_cast<size_t>(rows), 1);
  idx[35000] = 9;
  idx[25000] = 7;
  return tensor_i64(idx, {rows});
}

double host_dirichlet(const float* x, const float* a, int K) {
  double a0 = 0, lp = 0;
  for (int k = 0; k < K; ++k) {
    a0 += a[k];
    lp += (a[k] - 1.0) * std::log(static_cast<double>(x[k])) - std::lgamma(static_cast<double>(a[k]));
  }
  return lp + std::lgamma(a0);
}

}  // namespace

// conc [2, 3] against values [4, 2, 3]: batch (4, 2), rows of conc broadcast.
TEST(RowDirichlet, LogProbBroadcastsAgainstHostFormula) {
  std::mt19937 gen(31);
  Tensor conc = random_tensor({2, 3}, gen, 0.5f, 4.0f);
  Tensor x = random_simplex(8, 3, gen, {4, 2, 3});
  Tensor lp = dist::Dirichlet(conc).log_prob(x);
  ASSERT_EQ(lp.shape(), (Shape{4, 2}));
  const auto cv = conc.to_vector(), xv = x.to_vector();
  std::vector<double> want;
  for (int i = 0; i < 4; ++i)
    for (int b = 0; b < 2; ++b) want.push_back(host_dirichlet(&xv[(i * 2 + b) * 3], &cv[b * 3], 3));
  // lgamma terms up to ~5 accumulated in double, the x terms in float32:
  // 1e-5 absolute + 1e-5 relative.
  expect_close(lp.to_vector(), want, 1e-5, 1e-5, "Dirichlet log_prob");
}

TEST(RowDirichlet, GradcheckConcentrationAndValue) {
  std::mt19937 gen(32);
  Tensor conc = random_tensor({3}, gen, 0.8f, 3.0f);
  Tensor x = random_simplex(2, 3, gen, {2, 3});
  gradcheck([&](const std::vector<Tensor>& in) { return dist::Dirichlet(in[0]).log_prob(x); }, {conc});
  // The value gradient treats the K components as free coordinates (as
  // PyTorch does); finite differences leave the simplex, so without checks.
  ValidationOff off;
  gradcheck([&](const std::vector<Tensor>& in) { return dist::Dirichlet(conc).log_prob(in[0]); }, {x});
}

// (The values against the host formula: DistCategorical.LogProbMatchesHostFormula.)
TEST(RowCategorical, Int64ValuesAndGradcheckBothForms) {
  std::mt19937 gen(33);
  Tensor raw = random_tensor({2, 4}, gen, 0.2f, 2.0f);
  Tensor x = tensor({0, 3, 1, 2, 2, 0}, {3, 2});
  for (bool logits : {false, true}) {
    SCOPED_TRACE(logits ? "logits" : "probs");
    auto make = [logits](const Tensor& p) {
      return logits ? dist::Categorical::from_logits(p) : dist::Categorical(p);
    };
    Tensor lp = make(raw).log_prob(x);
    ASSERT_EQ(lp.shape(), (Shape{3, 2}));
    EXPECT_EQ(make(raw).log_prob(x.to_int64()).to_vector(), lp.to_vector());
    gradcheck([&](const std::vector<Tensor>& in) { return make(in[0]).log_prob(x); }, {raw});
    // int64 values go to the kernels as they are: the same bits as float
    // values, for log_prob's gradient and for the fused sum and its gradient.
    const Tensor xi = x.to_int64();
    gradcheck([&](const std::vector<Tensor>& in) { return make(in[0]).log_prob(xi); }, {raw});
    auto fused = [&](const Tensor& v) {
      Tensor r = raw.detach().requires_grad_();
      Tensor s = make(r).log_prob_sum(v, -0.7f);
      s.backward();
      std::vector<float> out = r.grad().to_vector();
      out.push_back(s.item());
      return out;
    };
    EXPECT_EQ(fused(xi), fused(x));
  }
}

// The fused pass equals coef * sum(log_prob) and writes the same gradients.
TEST(RowFamilies, FusedLogProbSumMatchesUnfused) {
  std::mt19937 gen(34);
  const float coef = -0.6f;
  auto compare = [&](const std::function<dist::Dist(const Tensor&)>& make, const Tensor& p0, const Tensor& x0,
                     bool value_grad) {
    auto run = [&](bool fused, std::vector<std::vector<float>>* g) {
      Tensor p = p0.detach().requires_grad_();
      Tensor x = x0.detach();
      if (value_grad) x.requires_grad_();
      dist::Dist d = make(p);
      Tensor y = fused ? d.log_prob_sum(x, coef) : sum(d.log_prob(x)) * coef;
      EXPECT_EQ(y.dim(), 0);
      (y * 1.5f).backward();  // a non-unit upstream gradient
      g->push_back(p.grad().to_vector());
      if (value_grad) g->push_back(x.grad().to_vector());
      return static_cast<double>(y.item());
    };
    std::vector<std::vector<float>> ga, gb;
    const double a = run(true, &ga), b = run(false, &gb);
    // The same float32 terms summed in another order: 1e-5 relative.
    EXPECT_NEAR(a, b, 1e-5 * std::max(1.0, std::fabs(b)));
    ASSERT_EQ(ga.size(), gb.size());
    for (size_t k = 0; k < ga.size(); ++k) expect_close(ga[k], std::vector<double>(gb[k].begin(), gb[k].end()), 1e-6, 1e-5);
  };
  {
    SCOPED_TRACE("Dirichlet");
    compare([](const Tensor& p) { return dist::Dist(dist::Dirichlet(p).clone()); }, random_tensor({3}, gen, 0.5f, 3.0f),
            random_simplex(5, 3, gen, {5, 3}), true);
  }
  Tensor x = tensor({0, 1, 2, 3, 1, 0, 2, 2}, {4, 2});
  {
    SCOPED_TRACE("Categorical probs");
    compare([](const Tensor& p) { return dist::Dist(dist::Categorical(p).clone()); }, random_tensor({2, 4}, gen, 0.1f, 1.0f),
            x, false);
  }
  {
    SCOPED_TRACE("Categorical logits");
    compare([](const Tensor& p) { return dist::Dist(dist::Categorical::from_logits(p).clone()); },
            random_tensor({2, 4}, gen, -2.0f, 2.0f), x, false);
  }
}

// Only the gradients asked for are computed (and given a buffer): with the
// value alone or the concentration alone requiring a gradient, each is the
// same bits as when both do, through log_prob's backward and the fused sum.
TEST(RowDirichlet, GradientOfOneInputAloneMatchesBoth) {
  std::mt19937 gen(35);
  const Tensor c0 = random_tensor({2, 3}, gen, 0.5f, 3.0f), x0 = random_simplex(8, 3, gen, {4, 2, 3});
  for (bool fused : {false, true}) {
    SCOPED_TRACE(fused ? "fused" : "log_prob");
    auto run = [&](bool gc, bool gx) {
      Tensor c = c0.detach(), x = x0.detach();
      if (gc) c.requires_grad_();
      if (gx) x.requires_grad_();
      dist::Dirichlet d(c);
      Tensor y = fused ? d.log_prob_sum(x, -0.7f) : sum(d.log_prob(x)) * -0.7f;
      y.backward();
      return std::make_pair(gc ? c.grad().to_vector() : std::vector<float>{},
                            gx ? x.grad().to_vector() : std::vector<float>{});
    };
    const auto both = run(true, true);
    EXPECT_EQ(run(true, false).first, both.first);
    EXPECT_EQ(run(false, true).second, both.second);
  }
}

TEST(RowDirichlet, SampleShapesMomentsPerBatchRow) {
  set_seed(35);
  Tensor conc = tensor({0.3f, 1.0f, 2.0f, 5.0f, 5.0f, 5.0f}, {2, 3});
  const int64_t n = 40000;
  Tensor s = dist::Dirichlet(conc).sample({n});
  ASSERT_EQ(s.shape(), (Shape{n, 2, 3}));
  EXPECT_FALSE(s.requires_grad());
  const auto v = s.to_vector();
  const auto cv = conc.to_vector();
  for (int b = 0; b < 2; ++b) {
    const double a0 = cv[b * 3] + cv[b * 3 + 1] + cv[b * 3 + 2];
    for (int k = 0; k < 3; ++k) {
      double m = 0;
      for (int64_t i = 0; i < n; ++i) m += v[(i * 2 + b) * 3 + k];
      m /= n;
      const double mu = cv[b * 3 + k] / a0, var = mu * (1 - mu) / (a0 + 1);
      // SE of a mean of n draws: sqrt(var / n).
      EXPECT_NEAR(m, mu, 5 * std::sqrt(var / n)) << "row " << b << " component " << k;
    }
    for (int64_t i = 0; i < 50; ++i) {
      double tot = 0;
      for (int k = 0; k < 3; ++k) tot += v[(i * 2 + b) * 3 + k];
      ASSERT_NEAR(tot, 1.0, 1e-6);
    }
  }
}

// d/da E[x_0^2] by the pathwise (implicit reparameterisation) estimator
// against the analytic derivative of E[x_0^2] = u(u+1) / (s(s+1)), u = a_0,
// s = sum a. Each of n rows is its own leaf, so the per-row gradients give
// the estimator's standard error.
TEST(RowDirichlet, PathwiseGradientOfSecondMoment) {
  set_seed(36);
  const std::vector<float> a{0.7f, 1.5f, 2.5f};
  const int64_t n = 20000;
  std::vector<float> rows;
  for (int64_t i = 0; i < n; ++i) rows.insert(rows.end(), a.begin(), a.end());
  Tensor conc = tensor(rows, {n, 3}).requires_grad_();
  Tensor x = dist::Dirichlet(conc).rsample();
  Tensor x0 = narrow(x, 1, 0, 1);
  sum(x0 * x0).backward();
  const auto g = conc.grad().to_vector();
  const double u = a[0], s = a[0] + a[1] + a[2];
  const double d = s * (s + 1);
  const double common = -u * (u + 1) * (2 * s + 1) / (d * d);
  const double want[3] = {(2 * u + 1) / d + common, common, common};
  for (int j = 0; j < 3; ++j) {
    std::vector<double> per_row;
    for (int64_t i = 0; i < n; ++i) per_row.push_back(g[static_cast<size_t>(i * 3 + j)]);
    const McEstimate e = mc_estimate(per_row);  // SE = sample std / sqrt(n)
    EXPECT_NEAR(e.mean, want[j], 5 * e.se) << "d/da_" << j << " (SE " << e.se << ")";
  }
}

TEST(RowCategorical, SamplesAreInt64AndFollowEachRow) {
  set_seed(37);
  Tensor logits = log(tensor({0.1f, 0.2f, 0.7f, 0.5f, 0.25f, 0.25f}, {2, 3}));
  const int64_t n = 60000;
  for (bool use_logits : {true, false}) {
    SCOPED_TRACE(use_logits ? "logits" : "probs");
    dist::Categorical c = use_logits ? dist::Categorical::from_logits(logits) : dist::Categorical(exp(logits) * 3.0f);
    Tensor s = c.sample({n});
    ASSERT_EQ(s.dtype(), DType::kInt64);
    ASSERT_EQ(s.shape(), (Shape{n, 2}));
    const auto v = s.to_vector_i64();
    const double p[2][3] = {{0.1, 0.2, 0.7}, {0.5, 0.25, 0.25}};
    for (int b = 0; b < 2; ++b) {
      double cnt[3] = {0, 0, 0};
      for (int64_t i = 0; i < n; ++i) {
        const int64_t k = v[static_cast<size_t>(i * 2 + b)];
        ASSERT_GE(k, 0);
        ASSERT_LT(k, 3);
        cnt[k] += 1;
      }
      double chi2 = 0;
      for (int k = 0; k < 3; ++k) chi2 += (cnt[k] - n * p[b][k]) * (cnt[k] - n * p[b][k]) / (n * p[b][k]);
      // chi-square with 2 dof: P(chi2 > 13.82) = 0.001.
      EXPECT_LT(chi2, 13.82) << "row " << b;
    }
    // Normalised accessors.
    expect_close(c.probs().to_vector(), {0.1, 0.2, 0.7, 0.5, 0.25, 0.25}, 1e-6, 1e-5, "probs");
  }
}

// The fused sums validate inside their pass (no separate validation pass):
// across several CPU chunks the first bad row by index is named, with and
// without gradients; on a GPU the first thread to fail is.
TEST(RowFamilies, FusedSumValidatesAsItGoes) {
  const int64_t rows = 40000;
  const bool cpu = default_device().is_cpu();
  const Tensor x = simplex_rows_with_two_bad(rows);
  for (bool grad : {false, true}) {
    SCOPED_TRACE(grad ? "with gradients" : "without gradients");
    Tensor conc = full({rows, 3}, 1.5f);
    if (grad) conc.requires_grad_();
    dist::Dirichlet d(conc);
    if (cpu) expect_error<ValueError>([&] { d.log_prob_sum(x, -1.0f); }, {"Dirichlet", "value", "-0.4"});
    else expect_error<ValueError>([&] { d.log_prob_sum(x, -1.0f); }, {"Dirichlet", "value"});
    ValidationOff off;
    EXPECT_NO_THROW(d.log_prob_sum(x, -1.0f).item());
  }
  dist::Categorical c(full({3}, 1.0f / 3.0f));
  const Tensor xi = indices_with_two_bad(rows);
  if (cpu) expect_error<ValueError>([&] { c.log_prob_sum(xi, 1.0f); }, {"Categorical", "value", "7"});
  else expect_error<ValueError>([&] { c.log_prob_sum(xi, 1.0f); }, {"Categorical", "value"});
}

// Row families' log_prob validates each row just before its density, in
// the same pass; on the CPU the first bad row by index is named.
TEST(RowFamilies, LogProbValidatesAsItGoes) {
  const int64_t rows = 40000;
  const bool cpu = default_device().is_cpu();
  dist::Dirichlet d(full({rows, 3}, 1.5f));
  const Tensor x = simplex_rows_with_two_bad(rows);
  if (cpu) expect_error<ValueError>([&] { d.log_prob(x); }, {"Dirichlet", "value", "-0.4"});
  else expect_error<ValueError>([&] { d.log_prob(x).to_vector(); }, {"Dirichlet", "value"});
  dist::Categorical c(full({3}, 1.0f / 3.0f));
  const Tensor xi = indices_with_two_bad(rows);
  if (cpu) expect_error<ValueError>([&] { c.log_prob(xi); }, {"Categorical", "value", "7"});
  else expect_error<ValueError>([&] { c.log_prob(xi).to_vector(); }, {"Categorical", "value"});
  // MultivariateNormal (D <= 32: the row kernel): a scale_tril made invalid
  // after construction is caught by log_prob's pass.
  std::vector<float> L(static_cast<size_t>(rows * 4), 0.0f);
  for (int64_t r = 0; r < rows; ++r) L[static_cast<size_t>(r * 4)] = L[static_cast<size_t>(r * 4 + 3)] = 1.0f;
  L[static_cast<size_t>(33000 * 4 + 3)] = -2.0f;
  std::unique_ptr<dist::MultivariateNormal> m;
  {
    ValidationOff off;
    m = std::make_unique<dist::MultivariateNormal>(zeros({2}), tensor(L, {rows, 2, 2}));
  }
  if (cpu) expect_error<ValueError>([&] { m->log_prob(zeros({rows, 2})); }, {"MultivariateNormal", "scale_tril"});
  else expect_error<ValueError>([&] { m->log_prob(zeros({rows, 2})).to_vector(); }, {"MultivariateNormal"});
  ValidationOff off;
  EXPECT_EQ(c.log_prob(xi).to_vector()[25000], -INFINITY);
}

TEST(RowFamilies, ValidationNamesFamilyArgumentAndValue) {
  expect_error<ValueError>([] { dist::Dirichlet(tensor({1.0f, -1.0f, 2.0f})); }, {"Dirichlet", "concentration", "-1"});
  dist::Dirichlet d(tensor({1.0f, 2.0f, 3.0f}));
  expect_error<ValueError>([&] { d.log_prob(tensor({0.5f, 0.6f, 0.1f})); }, {"Dirichlet", "value", "1.2"});
  expect_error<ValueError>([&] { d.log_prob(tensor({1.2f, -0.2f, 0.0f})); }, {"Dirichlet", "value", "-0.2"});
  expect_error<ShapeError>([&] { d.log_prob(tensor({0.5f, 0.5f})); }, {"Dirichlet", "[2]", "3"});
  expect_error<ValueError>([] { dist::Categorical(tensor({0.5f, -0.5f})); }, {"Categorical", "probs", "-0.5"});
  expect_error<ValueError>([] { dist::Categorical::from_logits(tensor({0.0f, NAN})); }, {"Categorical", "logits"});
  dist::Categorical c(tensor({0.2f, 0.3f, 0.5f}));
  expect_error<ValueError>([&] { c.log_prob(tensor(5.0f)); }, {"Categorical", "value", "5"});
  expect_error<ValueError>([&] { c.log_prob(tensor(1.5f)); }, {"Categorical", "1.5"});
  expect_error<ValueError>([&] { c.log_prob(tensor_i64({0, 3})); }, {"Categorical", "value", "3"});
  expect_error<ValueError>([&] { c.log_prob_sum(tensor_i64({-2}), 1.0f); }, {"Categorical", "value", "-2"});
  expect_error<DTypeError>([&] { d.log_prob(tensor_i64({0, 1, 0})); }, {"Dirichlet", "float32", "int64"});
  // Many rows (several chunks of the CPU's parallel check): the first bad
  // row by index is named there; on a GPU the first thread to fail is.
  {
    const int64_t rows = 40000;
    std::vector<float> conc(static_cast<size_t>(rows * 3), 1.5f);
    conc[30000 * 3 + 1] = -2.0f;
    conc[20000 * 3 + 2] = -0.5f;
    const Tensor ct = tensor(conc, {rows, 3});
    if (default_device().is_cpu())
      expect_error<ValueError>([&] { dist::Dirichlet{ct}; }, {"Dirichlet", "concentration", "-0.5"});
    else
      expect_error<ValueError>([&] { dist::Dirichlet{ct}; }, {"Dirichlet", "concentration"});
  }
  ValidationOff off;
  EXPECT_NO_THROW(dist::Dirichlet(tensor({1.0f, -1.0f, 2.0f})));
  EXPECT_NO_THROW(d.log_prob(tensor({0.5f, 0.6f, 0.1f})));
  EXPECT_EQ(c.log_prob(tensor(5.0f)).item(), -INFINITY);
}
