// Tensor-level distribution tests (default device): log_prob against float64 host
// formulas with broadcasting, gradients, the fused log_prob_sum, sampling and
// moments, expand/to_event, Categorical, Dirichlet, Delta, KL, validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include <cmath>
#include <numeric>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "csv.hpp"
#include "gradcheck.hpp"
#include "ppl/distributions.hpp"

using namespace cuvi;
using namespace cuvi::testing;
using dist::Arg;

namespace {

constexpr double kLog2Pi = 1.8378770664093453;

// One elementwise family: how to build it from its parameters, where its
// parameters and values live, and its log-density in float64.
struct Family {
  std::string name;
  std::vector<std::pair<float, float>> param_ranges;
  std::pair<float, float> x_range;
  bool discrete;  // values are integers (rounded), no value gradient
  bool binary;    // values in {0, 1}
  std::function<dist::Dist(const std::vector<Arg>&)> make;
  std::function<double(double, const std::vector<double>&)> host;
};

template <class D, class... A>
dist::Dist mk(A&&... a) {
  return dist::Dist(std::make_shared<D>(std::forward<A>(a)...));
}

std::vector<Family> families() {
  std::vector<Family> f;
  f.push_back({"Normal", {{-1, 1}, {0.5f, 2}}, {-2, 2}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::Normal>(a[0], a[1]); },
               [](double x, const std::vector<double>& p) {
                 const double z = (x - p[0]) / p[1];
                 return -0.5 * z * z - std::log(p[1]) - 0.5 * kLog2Pi;
               }});
  f.push_back({"LogNormal", {{-1, 1}, {0.5f, 2}}, {0.3f, 3}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::LogNormal>(a[0], a[1]); },
               [](double x, const std::vector<double>& p) {
                 const double z = (std::log(x) - p[0]) / p[1];
                 return -0.5 * z * z - std::log(p[1]) - 0.5 * kLog2Pi - std::log(x);
               }});
  f.push_back({"Laplace", {{-1, 1}, {0.5f, 2}}, {-2, 2}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::Laplace>(a[0], a[1]); },
               [](double x, const std::vector<double>& p) { return -std::log(2 * p[1]) - std::fabs(x - p[0]) / p[1]; }});
  f.push_back({"Gamma", {{0.8f, 3}, {0.5f, 2}}, {0.2f, 3}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::Gamma>(a[0], a[1]); },
               [](double x, const std::vector<double>& p) {
                 return p[0] * std::log(p[1]) + (p[0] - 1) * std::log(x) - p[1] * x - std::lgamma(p[0]);
               }});
  f.push_back({"Beta", {{0.8f, 3}, {0.8f, 3}}, {0.1f, 0.9f}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::Beta>(a[0], a[1]); },
               [](double x, const std::vector<double>& p) {
                 return (p[0] - 1) * std::log(x) + (p[1] - 1) * std::log1p(-x) - std::lgamma(p[0]) - std::lgamma(p[1]) +
                        std::lgamma(p[0] + p[1]);
               }});
  f.push_back({"StudentT", {{2, 6}, {-1, 1}, {0.5f, 2}}, {-2, 2}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::StudentT>(a[0], a[1], a[2]); },
               [](double x, const std::vector<double>& p) {
                 const double v = p[0], z = (x - p[1]) / p[2];
                 return std::lgamma((v + 1) / 2) - std::lgamma(v / 2) - 0.5 * std::log(v * M_PI) - std::log(p[2]) -
                        (v + 1) / 2 * std::log1p(z * z / v);
               }});
  f.push_back({"Exponential", {{0.5f, 2}}, {0.1f, 3}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::Exponential>(a[0]); },
               [](double x, const std::vector<double>& p) { return std::log(p[0]) - p[0] * x; }});
  f.push_back({"Uniform", {{-2, -1}, {1, 2}}, {-0.9f, 0.9f}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::Uniform>(a[0], a[1]); },
               [](double, const std::vector<double>& p) { return -std::log(p[1] - p[0]); }});
  f.push_back({"Cauchy", {{-1, 1}, {0.5f, 2}}, {-3, 3}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::Cauchy>(a[0], a[1]); },
               [](double x, const std::vector<double>& p) {
                 const double z = (x - p[0]) / p[1];
                 return -std::log(M_PI * p[1]) - std::log1p(z * z);
               }});
  f.push_back({"HalfCauchy", {{0.5f, 2}}, {0.1f, 4}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::HalfCauchy>(a[0]); },
               [](double x, const std::vector<double>& p) {
                 const double z = x / p[0];
                 return std::log(2.0 / M_PI) - std::log(p[0]) - std::log1p(z * z);
               }});
  f.push_back({"HalfNormal", {{0.5f, 2}}, {0.1f, 3}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::HalfNormal>(a[0]); },
               [](double x, const std::vector<double>& p) {
                 const double z = x / p[0];
                 return 0.5 * std::log(2.0 / M_PI) - std::log(p[0]) - 0.5 * z * z;
               }});
  // InverseGamma's concentration above 4: a finite fourth moment for the
  // moment test's standard error of the variance.
  f.push_back({"InverseGamma", {{4.5f, 7}, {0.5f, 2}}, {0.1f, 2}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::InverseGamma>(a[0], a[1]); },
               [](double x, const std::vector<double>& p) {
                 return p[0] * std::log(p[1]) - std::lgamma(p[0]) - (p[0] + 1) * std::log(x) - p[1] / x;
               }});
  f.push_back({"Weibull", {{0.5f, 2}, {0.7f, 3}}, {0.1f, 3}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::Weibull>(a[0], a[1]); },
               [](double x, const std::vector<double>& p) {
                 const double z = x / p[0];
                 return std::log(p[1]) - std::log(p[0]) + (p[1] - 1) * std::log(z) - std::pow(z, p[1]);
               }});
  f.push_back({"Poisson", {{0.5f, 4}}, {0, 6}, true, false,
               [](const std::vector<Arg>& a) { return mk<dist::Poisson>(a[0]); },
               [](double x, const std::vector<double>& p) { return x * std::log(p[0]) - p[0] - std::lgamma(x + 1); }});
  f.push_back({"Geometric", {{0.2f, 0.8f}}, {0, 6}, true, false,
               [](const std::vector<Arg>& a) { return mk<dist::Geometric>(a[0]); },
               [](double x, const std::vector<double>& p) { return x * std::log1p(-p[0]) + std::log(p[0]); }});
  f.push_back({"NegativeBinomial", {{0.5f, 4}, {0.2f, 0.7f}}, {0, 6}, true, false,
               [](const std::vector<Arg>& a) { return mk<dist::NegativeBinomial>(a[0], a[1]); },
               [](double x, const std::vector<double>& p) {
                 return std::lgamma(x + p[0]) - std::lgamma(x + 1) - std::lgamma(p[0]) + p[0] * std::log1p(-p[1]) +
                        x * std::log(p[1]);
               }});
  f.push_back({"BernoulliProbs", {{0.2f, 0.8f}}, {0, 1}, true, true,
               [](const std::vector<Arg>& a) { return dist::Dist(dist::Bernoulli(a[0])); },
               [](double x, const std::vector<double>& p) { return x * std::log(p[0]) + (1 - x) * std::log1p(-p[0]); }});
  f.push_back({"BernoulliLogits", {{-2, 2}}, {0, 1}, true, true,
               [](const std::vector<Arg>& a) { return dist::Dist(dist::Bernoulli::from_logits(a[0])); },
               [](double x, const std::vector<double>& p) {
                 return x * p[0] - (std::max(p[0], 0.0) + std::log1p(std::exp(-std::fabs(p[0]))));
               }});
  return f;
}

Tensor values_for(const Family& f, const Shape& s, std::mt19937& gen) {
  auto v = random_values(shape_numel(s), gen, f.x_range.first, f.x_range.second);
  if (f.discrete)
    for (auto& x : v) x = f.binary ? (x > 0.5f ? 1.0f : 0.0f) : std::round(x);
  return tensor(v, s);
}

double mid(std::pair<float, float> r) { return 0.5 * (r.first + r.second); }

struct ValidationOff {
  ValidationOff() { dist::set_validation(false); }
  ~ValidationOff() { dist::set_validation(true); }
};

}  // namespace

// value [4,3] against param 0 as a [3] tensor and the others as float constants.
TEST(DistLogProb, MatchesHostFormulaWithBroadcasting) {
  std::mt19937 gen(7);
  for (const Family& f : families()) {
    SCOPED_TRACE(f.name);
    const size_t np = f.param_ranges.size();
    Tensor p0 = random_tensor({3}, gen, f.param_ranges[0].first, f.param_ranges[0].second);
    std::vector<Arg> args{p0};
    std::vector<double> consts{0};
    for (size_t k = 1; k < np; ++k) {
      args.push_back(static_cast<float>(mid(f.param_ranges[k])));
      consts.push_back(static_cast<float>(mid(f.param_ranges[k])));
    }
    dist::Dist d = f.make(args);
    EXPECT_EQ(d.batch_shape(), (Shape{3}));
    Tensor x = values_for(f, {4, 3}, gen);
    Tensor lp = d.log_prob(x);
    ASSERT_EQ(lp.shape(), (Shape{4, 3}));
    const auto xv = x.to_vector();
    const auto pv = p0.to_vector();
    std::vector<double> want;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j) {
        std::vector<double> p = consts;
        p[0] = pv[j];
        want.push_back(f.host(xv[i * 3 + j], p));
      }
    // float32 log-densities of magnitude <= ~10: a few ulp (~1e-6 rel) plus
    // lgamma/log rounding; 1e-5 abs + 1e-5 rel as the data README suggests.
    expect_close(lp.to_vector(), want, 1e-5, 1e-5, f.name.c_str());
  }
}

TEST(DistLogProb, GradcheckValueAndParams) {
  std::mt19937 gen(11);
  for (const Family& f : families()) {
    SCOPED_TRACE(f.name);
    const size_t np = f.param_ranges.size();
    std::vector<Tensor> params;
    for (size_t k = 0; k < np; ++k)
      params.push_back(random_tensor({3}, gen, f.param_ranges[k].first, f.param_ranges[k].second));
    Tensor x = values_for(f, {2, 3}, gen);
    if (f.discrete) {
      gradcheck(
          [&](const std::vector<Tensor>& in) {
            std::vector<Arg> a(in.begin(), in.end());
            return f.make(a).log_prob(x);
          },
          params);
    } else {
      std::vector<Tensor> in = params;
      in.insert(in.begin(), x);
      gradcheck(
          [&](const std::vector<Tensor>& in2) {
            std::vector<Arg> a(in2.begin() + 1, in2.end());
            return f.make(a).log_prob(in2[0]);
          },
          in);
    }
  }
}

TEST(DistLogProbSum, EqualsScaledSumWithSameGradients) {
  std::mt19937 gen(13);
  const float coef = 0.7f;
  for (const Family& f : families()) {
    SCOPED_TRACE(f.name);
    const size_t np = f.param_ranges.size();
    std::vector<Tensor> params;
    for (size_t k = 0; k < np; ++k)
      params.push_back(random_tensor({3}, gen, f.param_ranges[k].first, f.param_ranges[k].second));
    Tensor x0 = values_for(f, {4, 3}, gen);
    auto run = [&](bool fused, std::vector<std::vector<float>>* grads) {
      std::vector<Tensor> ps;
      for (auto& p : params) ps.push_back(p.detach().requires_grad_());
      Tensor x = x0.detach();
      if (!f.discrete) x.requires_grad_();
      std::vector<Arg> a(ps.begin(), ps.end());
      dist::Dist d = f.make(a);
      Tensor y = fused ? d.log_prob_sum(x, coef) : sum(d.log_prob(x)) * coef;
      EXPECT_EQ(y.dim(), 0);
      y.backward();
      for (auto& p : ps) grads->push_back(p.grad().to_vector());
      if (!f.discrete) grads->push_back(x.grad().to_vector());
      return static_cast<double>(y.item());
    };
    std::vector<std::vector<float>> ga, gb;
    const double a = run(true, &ga), b = run(false, &gb);
    // Same float32 quantities summed in a different order: 1e-5 relative.
    EXPECT_NEAR(a, b, 1e-5 * std::max(1.0, std::fabs(b)));
    ASSERT_EQ(ga.size(), gb.size());
    for (size_t k = 0; k < ga.size(); ++k) {
      std::vector<double> want(gb[k].begin(), gb[k].end());
      expect_close(ga[k], want, 1e-6, 1e-5, ("grad " + std::to_string(k)).c_str());
    }
  }
}

TEST(DistSampling, ShapesAndDifferentiability) {
  std::mt19937 gen(17);
  for (const Family& f : families()) {
    SCOPED_TRACE(f.name);
    std::vector<Tensor> params;
    for (auto r : f.param_ranges) params.push_back(random_tensor({3}, gen, r.first, r.second).requires_grad_());
    std::vector<Arg> a(params.begin(), params.end());
    dist::Dist d = f.make(a);
    EXPECT_EQ(d.has_rsample(), !f.discrete);
    EXPECT_EQ(d.is_discrete(), f.discrete);
    Tensor s = d.sample({5, 2});
    EXPECT_EQ(s.shape(), (Shape{5, 2, 3}));
    EXPECT_FALSE(s.requires_grad());
    EXPECT_EQ(d.shape({5, 2}), (Shape{5, 2, 3}));
    if (f.discrete) {
      expect_error<ValueError>([&] { d.rsample({2}); }, {f.name.rfind("Bernoulli", 0) == 0 ? "Bernoulli" : f.name.c_str(), "sample()"});
      continue;
    }
    Tensor r = d.rsample({5, 2});
    EXPECT_EQ(r.shape(), (Shape{5, 2, 3}));
    ASSERT_TRUE(r.requires_grad());
    sum(r).backward();
    for (size_t k = 0; k < params.size(); ++k) {
      if (f.name == "StudentT" && k == 0) continue;  // df may or may not be pathwise
      EXPECT_TRUE(params[k].grad().defined()) << "param " << k;
    }
  }
}

TEST(DistSampling, MomentsMatchMeanAndVariance) {
  const int64_t n = 200000;
  for (const Family& f : families()) {
    SCOPED_TRACE(f.name);
    set_seed(2024);
    std::vector<Arg> a;
    for (auto r : f.param_ranges) a.push_back(static_cast<float>(mid(r)));
    if (f.name == "StudentT") a[0] = 10.0f;  // finite 4th moment for the variance's SE
    if (f.name == "Cauchy" || f.name == "HalfCauchy") continue;  // no moments: KS test below
    dist::Dist d = f.make(a);
    const auto xs = d.sample({n}).to_vector();
    double m = 0;
    for (float x : xs) m += x;
    m /= n;
    double v = 0, m4 = 0;
    for (float x : xs) {
      const double c = x - m;
      v += c * c;
      m4 += c * c * c * c;
    }
    v /= (n - 1);
    m4 /= n;
    const double mu = d.mean().item(), var = d.variance().item();
    // SE(mean) = sqrt(var/n); SE(sample var) = sqrt((mu4 - var^2)/n).
    const double se_m = std::sqrt(var / n), se_v = std::sqrt(std::max(m4 - v * v, 1e-12) / n);
    EXPECT_NEAR(m, mu, 5 * se_m);
    EXPECT_NEAR(v, var, 5 * se_v);
  }
}

TEST(DistSampling, HeavyTailedAndHalfFamiliesPassKolmogorovSmirnov) {
  // Cauchy and HalfCauchy have no moments, so their samplers are checked by
  // the Kolmogorov-Smirnov statistic against the exact CDF (HalfNormal too):
  // with n = 100000 draws the critical value at alpha = 0.001 is
  // 1.95 / sqrt(n) = 0.0062.
  const int64_t n = 100000;
  const double crit = 1.95 / std::sqrt(static_cast<double>(n));
  auto ks = [n](std::vector<float> x, const std::function<double(double)>& cdf) {
    std::sort(x.begin(), x.end());
    double d = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double c = cdf(x[static_cast<size_t>(i)]);
      d = std::max({d, c - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - c});
    }
    return d;
  };
  set_seed(77);
  EXPECT_LT(ks(dist::Cauchy(0.5f, 2.0f).sample({n}).to_vector(),
               [](double x) { return 0.5 + std::atan((x - 0.5) / 2.0) / M_PI; }),
            crit);
  EXPECT_LT(ks(dist::HalfCauchy(1.5f).sample({n}).to_vector(),
               [](double x) { return 2.0 / M_PI * std::atan(x / 1.5); }),
            crit);
  EXPECT_LT(ks(dist::HalfNormal(0.7f).sample({n}).to_vector(),
               [](double x) { return std::erf(x / (0.7 * std::sqrt(2.0))); }),
            crit);
  // No moments, as PyTorch reports them.
  EXPECT_TRUE(std::isnan(dist::Cauchy(0.0f, 1.0f).mean().item()));
  EXPECT_TRUE(std::isinf(dist::Cauchy(0.0f, 1.0f).variance().item()));
  EXPECT_TRUE(std::isinf(dist::HalfCauchy(1.0f).mean().item()));
  // Pathwise gradient of E[x] for HalfNormal: d/ds (s sqrt(2/pi)) = sqrt(2/pi);
  // the Monte Carlo mean of dx/ds = |eps| has sd sqrt(1 - 2/pi) = 0.603, so
  // over n draws its standard error is 0.0019; 5 SE.
  Tensor s = tensor({1.3f}).requires_grad_();
  sum(dist::HalfNormal(s).rsample({n})).backward();
  EXPECT_NEAR(s.grad().to_vector()[0] / n, std::sqrt(2.0 / M_PI), 5 * 0.603 / std::sqrt(static_cast<double>(n)));
}

TEST(DistShape, ExpandAndToEvent) {
  Tensor loc = tensor({0.1f, -0.3f, 0.5f});
  dist::Normal base(loc, 1.5f);
  dist::Dist e = base.expand({2, 3});
  EXPECT_EQ(e.batch_shape(), (Shape{2, 3}));
  EXPECT_EQ(e.event_shape(), (Shape{}));
  dist::Dist ind = e.to_event(1);
  EXPECT_EQ(ind.batch_shape(), (Shape{2}));
  EXPECT_EQ(ind.event_shape(), (Shape{3}));
  EXPECT_EQ(ind.sample({4}).shape(), (Shape{4, 2, 3}));
  dist::Dist ind2 = e.to_event(2);
  EXPECT_EQ(ind2.batch_shape(), (Shape{}));
  EXPECT_EQ(ind2.event_shape(), (Shape{2, 3}));
  std::mt19937 gen(3);
  Tensor x = random_tensor({2, 3}, gen, -2, 2);
  const auto lp = base.log_prob(x).to_vector();
  Tensor li = ind.log_prob(x);
  ASSERT_EQ(li.shape(), (Shape{2}));
  std::vector<double> want{lp[0] + lp[1] + lp[2], lp[3] + lp[4] + lp[5]};
  expect_close(li.to_vector(), want, 1e-5, 1e-5, "Independent");
  Tensor l2 = ind2.log_prob(x);
  EXPECT_EQ(l2.dim(), 0);
  EXPECT_NEAR(l2.item(), want[0] + want[1], 1e-5 + 1e-5 * std::fabs(want[0] + want[1]));
  expect_error<ShapeError>([&] { base.expand({2, 4}); }, {"expand"});
}

TEST(DistShape, BadExpandNamesFamily) {
  dist::Normal base(tensor({0.1f, -0.3f, 0.5f}), 1.5f);
  expect_error<ShapeError>([&] { base.expand({2, 4}); }, {"Normal", "expand", "[2, 4]"});
}

TEST(DistCategorical, LogProbMatchesHostFormula) {
  std::mt19937 gen(5);
  Tensor raw = random_tensor({2, 4}, gen, 0.1f, 2.0f);
  Tensor x = tensor({0, 3, 1, 2, 2, 0, 3, 1, 1, 1}, {5, 2});
  const auto rv = raw.to_vector();
  const auto xv = x.to_vector();
  for (bool logits : {false, true}) {
    SCOPED_TRACE(logits ? "logits" : "probs");
    dist::Categorical c = logits ? dist::Categorical::from_logits(raw) : dist::Categorical(raw);
    EXPECT_EQ(c.batch_shape(), (Shape{2}));
    EXPECT_TRUE(c.is_discrete());
    Tensor lp = c.log_prob(x);
    ASSERT_EQ(lp.shape(), (Shape{5, 2}));
    std::vector<double> want;
    for (int i = 0; i < 5; ++i)
      for (int b = 0; b < 2; ++b) {
        double norm = 0;
        for (int k = 0; k < 4; ++k) norm += logits ? std::exp(rv[b * 4 + k]) : rv[b * 4 + k];
        const double v = rv[b * 4 + static_cast<int>(xv[i * 2 + b])];
        want.push_back(logits ? v - std::log(norm) : std::log(v / norm));
      }
    expect_close(lp.to_vector(), want, 1e-5, 1e-5);
    EXPECT_EQ(c.sample({7}).shape(), (Shape{7, 2}));
  }
}

TEST(DistCategorical, SampleFrequenciesChiSquare) {
  set_seed(99);
  const std::vector<float> p{0.1f, 0.2f, 0.3f, 0.4f};
  dist::Categorical c(tensor(p));
  const int64_t n = 100000;
  const auto xs = c.sample({n}).to_float().to_vector();
  std::vector<double> cnt(4, 0);
  for (float x : xs) {
    ASSERT_GE(x, 0);
    ASSERT_LE(x, 3);
    cnt[static_cast<int>(x)] += 1;
  }
  double chi2 = 0;
  for (int k = 0; k < 4; ++k) chi2 += (cnt[k] - n * p[k]) * (cnt[k] - n * p[k]) / (n * p[k]);
  // chi-square with 3 dof: P(chi2 > 16.27) = 0.001.
  EXPECT_LT(chi2, 16.27);
}

TEST(DistDirichlet, LogProbMatchesReferenceData) {
  auto rows = cuvi::testing::read_csv("dirichlet3.csv").rows;
  ASSERT_GE(rows.size(), 5u);
  for (size_t r = 0; r < 5; ++r) {
    const auto& row = rows[r];
    Tensor conc = tensor({(float)row[0], (float)row[1], (float)row[2]}).requires_grad_();
    Tensor x = tensor({(float)row[3], (float)row[4], (float)row[5]});
    dist::Dirichlet d(conc);
    EXPECT_EQ(d.event_shape(), (Shape{3}));
    EXPECT_EQ(d.batch_shape(), (Shape{}));
    Tensor lp = d.log_prob(x);
    // lgamma terms up to ~20 in float32 (ulp ~2e-6) cancel: 1e-4 abs + 1e-5 rel.
    EXPECT_NEAR(lp.item(), row[6], 1e-4 + 1e-5 * std::fabs(row[6])) << "row " << r;
    lp.backward();
    // digamma differences, same float32 reasoning: 1e-4 abs + 1e-4 rel.
    expect_close(conc.grad().to_vector(), {row[7], row[8], row[9]}, 1e-4, 1e-4, "dlogp/dconc");
  }
}

TEST(DistDirichlet, RsampleOnSimplexAndMean) {
  set_seed(5);
  Tensor conc = tensor({1.5f, 2.0f, 3.0f}).requires_grad_();
  dist::Dirichlet d(conc);
  const int64_t n = 100000;
  Tensor s = d.rsample({n});
  ASSERT_EQ(s.shape(), (Shape{n, 3}));
  ASSERT_TRUE(s.requires_grad());
  const auto v = s.to_vector();
  std::vector<double> m(3, 0);
  for (int64_t i = 0; i < n; ++i) {
    double tot = 0;
    for (int k = 0; k < 3; ++k) {
      ASSERT_GT(v[i * 3 + k], 0.0f);
      tot += v[i * 3 + k];
      m[k] += v[i * 3 + k];
    }
    ASSERT_NEAR(tot, 1.0, 1e-5);
  }
  const auto mu = d.mean().to_vector();
  const auto var = d.variance().to_vector();
  const double a0 = 6.5;
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(mu[k], conc.to_vector()[k] / a0, 1e-6);
    // SE = sqrt(var_k / n).
    EXPECT_NEAR(m[k] / n, mu[k], 5 * std::sqrt(var[k] / n)) << k;
  }
  sum(narrow(s, 1, 0, 1)).backward();
  EXPECT_TRUE(conc.grad().defined());
}

TEST(DistDelta, LogProbAndRsample) {
  Tensor v = tensor({1.0f, 2.0f}).requires_grad_();
  dist::Delta d(v, 0.5f);
  EXPECT_EQ(d.batch_shape(), (Shape{2}));
  const auto lp = d.log_prob(tensor({1.0f, 3.0f})).to_vector();
  EXPECT_FLOAT_EQ(lp[0], 0.5f);
  EXPECT_TRUE(std::isinf(lp[1]) && lp[1] < 0);
  Tensor r = d.rsample();
  EXPECT_EQ(r.to_vector(), (std::vector<float>{1.0f, 2.0f}));
  sum(r * 3.0f).backward();
  EXPECT_EQ(v.grad().to_vector(), (std::vector<float>{3.0f, 3.0f}));
  dist::Delta e(tensor({1.0f, 2.0f}), 0.0f, 1);
  EXPECT_EQ(e.batch_shape(), (Shape{}));
  EXPECT_EQ(e.event_shape(), (Shape{2}));
  EXPECT_EQ(e.log_prob(tensor({1.0f, 2.0f})).dim(), 0);
  EXPECT_FLOAT_EQ(e.log_prob(tensor({1.0f, 2.0f})).item(), 0.0f);
}

TEST(KlDivergence, NormalNormalMatchesReferenceData) {
  auto rows = cuvi::testing::read_csv("kl_normal_normal.csv").rows;
  ASSERT_FALSE(rows.empty());
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    Tensor lq = tensor((float)row[0]).requires_grad_();
    Tensor sq = tensor((float)row[1]).requires_grad_();
    dist::Normal q(lq, sq), p((float)row[2], (float)row[3]);
    Tensor kl = dist::kl_divergence(q, p);
    // float32 ratios of scales and squared differences: 1e-5 abs + 1e-4 rel
    // (the inputs themselves are rounded to float32, ~6e-8 rel each, amplified
    // by the (dloc/scale_p)^2 term).
    EXPECT_NEAR(kl.item(), row[4], 1e-5 + 1e-4 * std::fabs(row[4])) << "row " << r;
    kl.backward();
    EXPECT_NEAR(lq.grad().item(), row[5], 1e-4 + 1e-4 * std::fabs(row[5])) << "row " << r;
    EXPECT_NEAR(sq.grad().item(), row[6], 1e-4 + 1e-4 * std::fabs(row[6])) << "row " << r;
  }
}

namespace {
// KL(q||p) vs the Monte Carlo mean of log q(z) - log p(z), z ~ q, 2e5 draws.
void check_kl_mc(const dist::Distribution& q, const dist::Distribution& p) {
  set_seed(31);
  const int64_t n = 200000;
  Tensor z = q.sample({n});
  const auto f = (q.log_prob(z) - p.log_prob(z)).to_vector();
  ASSERT_EQ(static_cast<int64_t>(f.size()), n);
  const McEstimate e = mc_estimate(f);  // SE = sample std / sqrt(n)
  EXPECT_NEAR(dist::kl_divergence(q, p).item(), e.mean, 5 * e.se);
}
}  // namespace

TEST(KlDivergence, GammaGammaMonteCarlo) { check_kl_mc(dist::Gamma(2.0f, 1.5f), dist::Gamma(3.0f, 1.0f)); }
TEST(KlDivergence, BetaBetaMonteCarlo) { check_kl_mc(dist::Beta(2.0f, 3.0f), dist::Beta(1.5f, 1.2f)); }
TEST(KlDivergence, ExponentialExponentialMonteCarlo) {
  check_kl_mc(dist::Exponential(1.5f), dist::Exponential(0.7f));
}
TEST(KlDivergence, DirichletDirichletMonteCarlo) {
  check_kl_mc(dist::Dirichlet(tensor({1.5f, 2.0f, 3.0f})), dist::Dirichlet(tensor({1.0f, 2.5f, 1.2f})));
}
TEST(KlDivergence, UnsupportedPairNamesBothFamilies) {
  dist::Normal n(0.0f, 1.0f);
  dist::Gamma g(2.0f, 1.0f);
  EXPECT_FALSE(dist::has_kl(n, g));
  expect_error<ValueError>([&] { dist::kl_divergence(n, g); }, {"Normal", "Gamma"});
}

// log_prob_sum validates inside its fused pass (no second read of the
// inputs). Over several CPU chunks it still names the first bad element in
// index order, as a separate validation pass did; on a GPU the first thread
// to fail wins, so there only the message is checked.
TEST(DistValidation, FusedSumValidatesAsItGoes) {
  const int64_t n = 40000;  // > 2 chunks of the CPU's fused loop
  std::vector<float> xv(static_cast<size_t>(n), 0.5f), scale(static_cast<size_t>(n), 1.0f);
  xv[30000] = 1.5f;
  xv[20000] = -0.25f;
  scale[35000] = -7.0f;
  scale[25000] = -3.0f;
  const bool cpu = default_device().is_cpu();
  dist::Beta b(tensor(std::vector<float>(static_cast<size_t>(n), 2.0f), {n}), 3.0f);
  if (cpu) expect_error<ValueError>([&] { b.log_prob_sum(tensor(xv, {n}), 1.0f); }, {"Beta", "support", "-0.25"});
  else expect_error<ValueError>([&] { b.log_prob_sum(tensor(xv, {n}), 1.0f); }, {"Beta", "support"});
  Tensor s = tensor(scale, {n}).requires_grad_();
  // Construction checks the parameters (in parallel chunks on the CPU; the
  // first bad one by index is named there too).
  if (cpu) expect_error<ValueError>([&] { dist::Normal(0.0f, s); }, {"Normal", "scale", "-3"});
  else expect_error<ValueError>([&] { dist::Normal(0.0f, s); }, {"Normal", "scale"});
  std::unique_ptr<dist::Normal> nd;
  {
    ValidationOff off;  // construct it anyway, to reach the fused pass
    nd = std::make_unique<dist::Normal>(0.0f, s);
  }
  const Tensor x0 = zeros({n});
  if (cpu) expect_error<ValueError>([&] { nd->log_prob_sum(x0, -1.0f); }, {"Normal", "scale", "-3"});
  else expect_error<ValueError>([&] { nd->log_prob_sum(x0, -1.0f); }, {"Normal", "scale"});
  {
    ValidationOff off;
    EXPECT_NO_THROW(b.log_prob_sum(tensor(xv, {n}), 1.0f).item());
    EXPECT_NO_THROW(nd->log_prob_sum(x0, -1.0f).item());
  }
  // Valid inputs pass, and the sum is the per-element one: both are float32
  // tree sums of depth <= 20, within 20 * 2^-24 (< 2e-6) of the total each.
  const Tensor ok = full({n}, 0.5f);
  const float want = sum(b.log_prob(ok)).item();
  EXPECT_NEAR(b.log_prob_sum(ok, 1.0f).item(), want, 2e-6 * std::fabs(want));
}

// log_prob validates inside its pass too: each element's parameters and
// value are checked as they are loaded for the density. Across several CPU
// chunks the first bad element by index is named (on a GPU the first thread
// to fail, so there only the message is checked); with validation off the
// densities come out as computed.
TEST(DistValidation, LogProbValidatesAsItGoes) {
  const int64_t n = 40000;  // > 2 chunks of the CPU's loop
  const bool cpu = default_device().is_cpu();
  std::vector<float> xv(static_cast<size_t>(n), 0.5f);
  xv[30000] = 1.5f;
  xv[20000] = -0.25f;
  dist::Beta b(tensor(std::vector<float>(static_cast<size_t>(n), 2.0f), {n}), 3.0f);
  const Tensor x = tensor(xv, {n});
  if (cpu) expect_error<ValueError>([&] { b.log_prob(x); }, {"Beta", "support", "-0.25"});
  else expect_error<ValueError>([&] { b.log_prob(x).to_vector(); }, {"Beta", "support"});
  std::vector<float> scale(static_cast<size_t>(n), 1.0f);
  scale[35000] = -7.0f;
  scale[25000] = -3.0f;
  std::unique_ptr<dist::Normal> nd;
  {
    ValidationOff off;  // construct it anyway, to reach log_prob's pass
    nd = std::make_unique<dist::Normal>(0.0f, tensor(scale, {n}));
  }
  if (cpu) expect_error<ValueError>([&] { nd->log_prob(zeros({n})); }, {"Normal", "scale", "-3"});
  else expect_error<ValueError>([&] { nd->log_prob(zeros({n})).to_vector(); }, {"Normal", "scale"});
  ValidationOff off;
  const auto lp = b.log_prob(x).to_vector();
  EXPECT_EQ(lp[20000], -INFINITY);
  EXPECT_NEAR(lp[0], std::log(12.0 * 0.5 * 0.25), 1e-5);  // Beta(2, 3) density 12 x (1 - x)^2
}

TEST(DistValidation, BadParametersAndValues) {
  expect_error<ValueError>([] { dist::Normal(0.0f, -1.0f); }, {"Normal", "scale", "-1"});
  dist::Beta b(2.0f, 2.0f);
  expect_error<ValueError>([&] { b.log_prob(tensor(1.5f)); }, {"Beta"});
  {
    ValidationOff off;
    EXPECT_NO_THROW(dist::Normal(0.0f, -1.0f));
    EXPECT_NO_THROW(b.log_prob(tensor(1.5f)));
  }
  EXPECT_TRUE(dist::validation_enabled());
  expect_error<ValueError>([] { dist::Normal(0.0f, -1.0f); }, {"Normal"});
}

TEST(DistBinomial, LogProbAndGradientsAgainstFloat64) {
  // total_count is an integer count, so Binomial is kept out of the family
  // table (whose parameters are drawn from continuous ranges). log_prob
  // against float64 (tolerance as the table's: 1e-5 abs + rel); gradients
  // against d/dq = k/q - (n-k)/(1-q) and d/dn = digamma(n+1) - digamma(n-k+1)
  // + log(1-q) (digamma as a central difference of std::lgamma in double,
  // step 1e-4: error ~1e-8), to 1e-4 (float32 digamma and division).
  const std::vector<float> nv = {5, 10, 40}, qv = {0.2f, 0.5f, 0.9f};
  Tensor n = tensor(nv, {3}).requires_grad_(), q = tensor(qv, {3}).requires_grad_();
  const std::vector<float> kv = {0, 3, 40, 5, 10, 0, 2, 7, 33, 4, 0, 39};
  const Tensor k = tensor(kv, {4, 3});
  dist::Binomial d(n, q);
  const Tensor lp = d.log_prob(k);
  std::vector<double> want, gq(3, 0.0), gn(3, 0.0);
  auto lgam = [](double x) { return std::lgamma(x); };
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) {
      const double nn = nv[j], qq = qv[j], kk = kv[i * 3 + j];
      want.push_back(lgam(nn + 1) - lgam(kk + 1) - lgam(nn - kk + 1) + (kk > 0 ? kk * std::log(qq) : 0.0) +
                     (nn - kk > 0 ? (nn - kk) * std::log1p(-qq) : 0.0));
      gq[j] += (kk > 0 ? kk / qq : 0.0) - (nn - kk > 0 ? (nn - kk) / (1 - qq) : 0.0);
      const double h = 1e-4;
      const double dig1 = (lgam(nn + 1 + h) - lgam(nn + 1 - h)) / (2 * h);
      const double dig2 = (lgam(nn - kk + 1 + h) - lgam(nn - kk + 1 - h)) / (2 * h);
      gn[j] += dig1 - dig2 + std::log1p(-qq);
    }
  expect_close(lp.to_vector(), want, 1e-5, 1e-5, "Binomial log_prob");
  sum(lp).backward();
  expect_close(q.grad().to_vector(), gq, 1e-4, 1e-4, "d/dprobs");
  expect_close(n.grad().to_vector(), gn, 1e-4, 1e-4, "d/dtotal_count");
  // The fused sum agrees.
  EXPECT_NEAR(d.log_prob_sum(k, -2.0f).item(), -2.0 * std::accumulate(want.begin(), want.end(), 0.0), 1e-3);
  // Draws are counts in [0, n]; moments as torch's.
  set_seed(5);
  const std::vector<float> s = d.sample({1000}).to_vector();
  for (size_t i = 0; i < s.size(); ++i) ASSERT_TRUE(s[i] >= 0 && s[i] <= nv[i % 3] && s[i] == std::floor(s[i]));
  expect_close(d.mean().to_vector(), {1.0, 5.0, 36.0}, 1e-6, 1e-6, "mean");
  expect_close(d.variance().to_vector(), {0.8, 2.5, 3.6}, 1e-5, 1e-5, "variance");
  // Validation: a fractional total_count, a count beyond it.
  expect_error<ValueError>([] { dist::Binomial(5.5f, 0.3f); }, {"Binomial", "total_count", "5.5"});
  expect_error<ValueError>([] { dist::Binomial(5.0f, 0.3f).log_prob(tensor(7.0f)); }, {"Binomial", "7"});
  expect_error<ValueError>([] { dist::Geometric(0.0f); }, {"Geometric", "probs"});
  expect_error<ValueError>([] { dist::NegativeBinomial(2.0f, 1.0f); }, {"NegativeBinomial", "probs"});
}

TEST(DistCategorical, BroadcastParameterGatherMatchesRowKernels) {
  // A [4] probability vector expanded over 8192 rows and the 4 enumerated
  // values [4, 1]: 32768 rows of 4 entries, where log_prob gathers the
  // normalised log-probabilities once (validation on) instead of the row
  // kernels' normaliser per row (what runs with validation off). Values and
  // gradients agree to float rounding (1e-5 on log-probabilities of
  // magnitude < 3; 1e-4 relative on gradients summed over 8192 rows).
  std::mt19937 gen(41);
  const Tensor w = random_tensor({4, 8192}, gen, -1.0f, 1.0f);
  const Tensor x = arange_i64(4).reshape({4, 1});
  auto run = [&](bool logits) {
    Tensor p = (logits ? random_tensor({4}, gen, -1.0f, 1.0f) : random_tensor({4}, gen, 0.2f, 1.0f)).requires_grad_();
    auto make = [&] { return (logits ? dist::Categorical::from_logits(p) : dist::Categorical(p)).expand({8192}); };
    Tensor lp = make().log_prob(x);
    sum(lp * w).backward();
    const std::vector<float> gather_lp = lp.to_vector(), gather_g = p.grad().to_vector();
    const float gather_sum = make().log_prob_sum(x, -0.5f).item();
    p.zero_grad();
    std::vector<float> row_lp, row_g;
    float row_sum;
    {
      ValidationOff off;
      Tensor lr = make().log_prob(x);
      sum(lr * w).backward();
      row_lp = lr.to_vector();
      row_g = p.grad().to_vector();
      row_sum = make().log_prob_sum(x, -0.5f).item();
    }
    ASSERT_EQ(lp.shape(), (Shape{4, 8192}));
    expect_close(gather_lp, std::vector<double>(row_lp.begin(), row_lp.end()), 1e-5, 1e-5, "log_prob");
    expect_close(gather_g, std::vector<double>(row_g.begin(), row_g.end()), 1e-4, 1e-4, "gradient");
    EXPECT_NEAR(gather_sum, row_sum, 1e-4 * std::fabs(row_sum));
    // float values give the same bits as int64 ones.
    EXPECT_EQ(make().log_prob(x.to_float()).to_vector(), gather_lp);
  };
  run(false);
  run(true);
  // A value outside the support is still named (the row kernels' validation).
  dist::Categorical c(full({3}, 1.0f / 3.0f));
  std::vector<int64_t> bad(40000, 1);
  bad[25000] = 7;
  expect_error<ValueError>([&] { c.expand({40000}).log_prob(tensor_i64(bad, {40000})).to_vector(); },
                           {"Categorical", "value"});
}
