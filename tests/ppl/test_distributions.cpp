// Tensor-level distribution tests (default device): log_prob against float64 host
// formulas with broadcasting, gradients, the fused log_prob_sum, sampling and
// moments, expand/to_event, Categorical, Dirichlet, Delta, KL, validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include <cmath>
#include <limits>
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
  // The families below were added together; their host densities are
  // written from the definitions, independently of the kernels' forms.
  f.push_back({"Gumbel", {{-1, 1}, {0.5f, 2}}, {-2, 3}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::Gumbel>(a[0], a[1]); },
               [](double x, const std::vector<double>& p) {
                 const double z = (x - p[0]) / p[1];
                 return -std::log(p[1]) - z - std::exp(-z);
               }});
  f.push_back({"Logistic", {{-1, 1}, {0.5f, 2}}, {-3, 3}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::Logistic>(a[0], a[1]); },
               [](double x, const std::vector<double>& p) {
                 // density e^-z / (s (1 + e^-z)^2)
                 const double z = (x - p[0]) / p[1];
                 return -z - std::log(p[1]) - 2 * std::log1p(std::exp(-z));
               }});
  // Values above the largest scale: every value is in every element's support.
  f.push_back({"Pareto", {{0.5f, 1}, {1.5f, 4}}, {1.05f, 3}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::Pareto>(a[0], a[1]); },
               [](double x, const std::vector<double>& p) {
                 return std::log(p[1]) + p[1] * std::log(p[0]) - (p[1] + 1) * std::log(x);
               }});
  f.push_back({"Chi2", {{1.5f, 6}}, {0.2f, 4}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::Chi2>(a[0]); },
               [](double x, const std::vector<double>& p) {
                 const double h = 0.5 * p[0];
                 return (h - 1) * std::log(x) - 0.5 * x - h * std::log(2.0) - std::lgamma(h);
               }});
  f.push_back({"VonMises", {{-1, 1}, {0.5f, 4}}, {-3, 3}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::VonMises>(a[0], a[1]); },
               [](double x, const std::vector<double>& p) {
                 return p[1] * std::cos(x - p[0]) - std::log(2 * M_PI * std::cyl_bessel_i(0.0, p[1]));
               }});
  // ContinuousBernoulli: lambda^x (1 - lambda)^(1 - x) C(lambda), with
  // C = 2 atanh(1 - 2 lambda) / (1 - 2 lambda) (2 at lambda = 1/2).
  auto cb = [](double x, double lam) {
    const double t = 1 - 2 * lam;
    const double c = std::fabs(t) < 1e-12 ? 2.0 : 2 * std::atanh(t) / t;
    return x * std::log(lam) + (1 - x) * std::log1p(-lam) + std::log(c);
  };
  f.push_back({"ContinuousBernoulliProbs", {{0.15f, 0.95f}}, {0.02f, 0.98f}, false, false,
               [](const std::vector<Arg>& a) { return dist::Dist(dist::ContinuousBernoulli(a[0])); },
               [cb](double x, const std::vector<double>& p) { return cb(x, p[0]); }});
  f.push_back({"ContinuousBernoulliLogits", {{-3, 2.5f}}, {0.02f, 0.98f}, false, false,
               [](const std::vector<Arg>& a) { return dist::Dist(dist::ContinuousBernoulli::from_logits(a[0])); },
               [cb](double x, const std::vector<double>& p) { return cb(x, 1 / (1 + std::exp(-p[0]))); }});
  // RelaxedBernoulli: P(Y <= y) = P(logit(u) <= T logit(y) - l) = sigmoid(w),
  // w = T logit(y) - l, so p(y) = sigmoid(w) sigmoid(-w) T / (y (1 - y)).
  auto rb = [](double y, double t, double l) {
    const double w = t * std::log(y / (1 - y)) - l;
    return -std::log1p(std::exp(-w)) - std::log1p(std::exp(w)) + std::log(t) - std::log(y) - std::log1p(-y);
  };
  f.push_back({"RelaxedBernoulliProbs", {{0.3f, 2}, {0.2f, 0.8f}}, {0.03f, 0.97f}, false, false,
               [](const std::vector<Arg>& a) { return dist::Dist(dist::RelaxedBernoulli(a[0], a[1])); },
               [rb](double y, const std::vector<double>& p) { return rb(y, p[0], std::log(p[1] / (1 - p[1]))); }});
  f.push_back({"RelaxedBernoulliLogits", {{0.3f, 2}, {-2, 2}}, {0.03f, 0.97f}, false, false,
               [](const std::vector<Arg>& a) { return dist::Dist(dist::RelaxedBernoulli::from_logits(a[0], a[1])); },
               [rb](double y, const std::vector<double>& p) { return rb(y, p[0], p[1]); }});
  // Pyro's compound and zero-inflated counts and AsymmetricLaplace; host
  // densities from the definitions (BetaBinomial, whose total_count is an
  // integer, has its own test in test_compound.cpp).
  auto nb = [](double k, double r, double q) {
    return std::lgamma(k + r) - std::lgamma(k + 1) - std::lgamma(r) + r * std::log1p(-q) + k * std::log(q);
  };
  auto zi = [](double k, double g, double base) {
    return k == 0 ? std::log(g + (1 - g) * std::exp(base)) : std::log1p(-g) + base;
  };
  auto sig = [](double l) { return 1 / (1 + std::exp(-l)); };
  auto pois = [](double k, double r) { return k * std::log(r) - r - std::lgamma(k + 1); };
  f.push_back({"AsymmetricLaplace", {{-1, 1}, {0.5f, 2}, {0.5f, 2}}, {-3, 3}, false, false,
               [](const std::vector<Arg>& a) { return mk<dist::AsymmetricLaplace>(a[0], a[1], a[2]); },
               [](double x, const std::vector<double>& p) {
                 // left of loc: scale s k; right: s / k; normaliser s k + s / k
                 const double d = x - p[0], l = p[1] * p[2], r = p[1] / p[2];
                 return (d < 0 ? d / l : -d / r) - std::log(l + r);
               }});
  f.push_back({"GammaPoisson", {{0.5f, 4}, {0.5f, 2}}, {0, 6}, true, false,
               [](const std::vector<Arg>& a) { return mk<dist::GammaPoisson>(a[0], a[1]); },
               [nb](double x, const std::vector<double>& p) { return nb(x, p[0], 1 / (1 + p[1])); }});
  f.push_back({"NegativeBinomialLogits", {{0.5f, 4}, {-2, 1}}, {0, 6}, true, false,
               [](const std::vector<Arg>& a) { return dist::NegativeBinomial::from_logits(a[0], a[1]); },
               [nb, sig](double x, const std::vector<double>& p) { return nb(x, p[0], sig(p[1])); }});
  f.push_back({"ZeroInflatedPoisson", {{0.5f, 4}, {0.1f, 0.7f}}, {0, 6}, true, false,
               [](const std::vector<Arg>& a) { return mk<dist::ZeroInflatedPoisson>(a[0], a[1]); },
               [zi, pois](double x, const std::vector<double>& p) { return zi(x, p[1], pois(x, p[0])); }});
  f.push_back({"ZeroInflatedPoissonLogits", {{0.5f, 4}, {-2, 1}}, {0, 6}, true, false,
               [](const std::vector<Arg>& a) { return dist::ZeroInflatedPoisson::from_gate_logits(a[0], a[1]); },
               [zi, pois, sig](double x, const std::vector<double>& p) { return zi(x, sig(p[1]), pois(x, p[0])); }});
  f.push_back({"ZeroInflatedNegativeBinomial", {{0.5f, 4}, {0.2f, 0.7f}, {0.1f, 0.7f}}, {0, 6}, true, false,
               [](const std::vector<Arg>& a) { return mk<dist::ZeroInflatedNegativeBinomial>(a[0], a[1], a[2]); },
               [zi, nb](double x, const std::vector<double>& p) { return zi(x, p[2], nb(x, p[0], p[1])); }});
  f.push_back({"ZeroInflatedNegativeBinomialLogits", {{0.5f, 4}, {-2, 1}, {-2, 1}}, {0, 6}, true, false,
               [](const std::vector<Arg>& a) {
                 return dist::ZeroInflatedNegativeBinomial::from_logits(a[0], a[1], a[2]);
               },
               [zi, nb, sig](double x, const std::vector<double>& p) {
                 return zi(x, sig(p[2]), nb(x, p[0], sig(p[1])));
               }});
  return f;
}

// A family's name in its messages: the table's name without a
// parameterisation suffix ("BernoulliLogits" -> "Bernoulli").
std::string message_name(const std::string& table_name) {
  for (const char* suffix : {"Logits", "Probs"}) {
    const std::string s(suffix);
    if (table_name.size() > s.size() && table_name.compare(table_name.size() - s.size(), s.size(), s) == 0)
      return table_name.substr(0, table_name.size() - s.size());
  }
  return table_name;
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
    const bool reparam = !f.discrete && f.name != "VonMises";  // VonMises: no rsample, as torch
    EXPECT_EQ(d.has_rsample(), reparam);
    EXPECT_EQ(d.is_discrete(), f.discrete);
    Tensor s = d.sample({5, 2});
    EXPECT_EQ(s.shape(), (Shape{5, 2, 3}));
    EXPECT_FALSE(s.requires_grad());
    EXPECT_EQ(d.shape({5, 2}), (Shape{5, 2, 3}));
    if (!reparam) {
      const std::string shown = message_name(f.name);
      expect_error<ValueError>([&] { d.rsample({2}); }, {shown.c_str(), "sample()"});
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
    // VonMises's variance is the circular one and RelaxedBernoulli has no
    // moments: both are checked by the KS and circular-moment tests below.
    if (f.name == "VonMises" || f.name.rfind("RelaxedBernoulli", 0) == 0) continue;
    if (f.name == "Pareto") a[1] = 9.0f;  // alpha > 8: finite 8th moment, so the variance's SE is itself reliable
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

namespace {

// Kolmogorov-Smirnov statistic of draws x against a float64 CDF.
double ks_statistic(std::vector<float> x, const std::function<double(double)>& cdf) {
  std::sort(x.begin(), x.end());
  const double n = static_cast<double>(x.size());
  double d = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double c = cdf(x[i]);
    d = std::max({d, c - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - c});
  }
  return d;
}

// x - loc wrapped into [-pi, pi).
double wrap_angle(double d) {
  double y = std::fmod(d + M_PI, 2 * M_PI);
  if (y < 0) y += 2 * M_PI;
  return y - M_PI;
}

// VonMises(0, k) CDF on [-pi, pi): the density is
// (1 + 2 sum_n (I_n(k)/I_0(k)) cos(n t)) / (2 pi), so
// F(t) = (t + pi)/(2 pi) + sum_n (I_n/I_0) sin(n t) / (n pi).
// Coefficients from std::cyl_bessel_i (float64); terms until I_n/I_0 < 1e-17.
std::function<double(double)> von_mises_cdf(double k) {
  std::vector<double> c;
  const double i0 = std::cyl_bessel_i(0.0, k);
  for (int n = 1; n < 400; ++n) {
    const double r = std::cyl_bessel_i(static_cast<double>(n), k) / i0;
    if (r < 1e-17) break;
    c.push_back(r);
  }
  return [c](double t) {
    double f = (t + M_PI) / (2 * M_PI);
    for (size_t n = 1; n <= c.size(); ++n) f += c[n - 1] * std::sin(static_cast<double>(n) * t) / (static_cast<double>(n) * M_PI);
    return f;
  };
}

}  // namespace

// The samplers of Gumbel, Logistic, Pareto, Chi2, ContinuousBernoulli,
// RelaxedBernoulli and VonMises against their exact float64 CDFs, through
// the tensor API (so on the default device's kernels). With n = 100000
// draws the KS critical value at alpha = 0.001 is 1.95 / sqrt(n) = 0.0062.
// (Pareto at alpha = 1.5 has no variance and RelaxedBernoulli no closed-form
// moments, so KS is their distribution test.)
TEST(DistSampling, AddedFamiliesPassKolmogorovSmirnov) {
  const int64_t n = 100000;
  const double crit = 1.95 / std::sqrt(static_cast<double>(n));
  auto sig = [](double w) { return 1 / (1 + std::exp(-w)); };
  auto cb_cdf = [](double l) {
    return [l](double x) { return std::fabs(l) < 1e-12 ? x : std::expm1(l * x) / std::expm1(l); };
  };
  auto rb_cdf = [sig](double t, double l) {
    return [sig, t, l](double y) { return y <= 0 ? 0.0 : (y >= 1 ? 1.0 : sig(t * std::log(y / (1 - y)) - l)); };
  };
  struct Case {
    const char* what;
    dist::Dist d;
    std::function<double(double)> cdf;
  };
  const double l08 = std::log(0.8 / 0.2);
  std::vector<Case> cases = {
      {"Gumbel(0.5, 2)", mk<dist::Gumbel>(0.5f, 2.0f),
       [](double x) { return std::exp(-std::exp(-(x - 0.5) / 2.0)); }},
      {"Logistic(-1, 0.7)", mk<dist::Logistic>(-1.0f, 0.7f), [sig](double x) { return sig((x + 1) / 0.7); }},
      {"Pareto(0.8, 1.5)", mk<dist::Pareto>(0.8f, 1.5f),
       [](double x) { return x < 0.8 ? 0.0 : 1 - std::pow(0.8 / x, 1.5); }},
      // P(3/2, x/2) = erf(sqrt(x/2)) - sqrt(2x/pi) e^(-x/2); P(1/2, x/2) = erf(sqrt(x/2)).
      {"Chi2(3)", mk<dist::Chi2>(3.0f),
       [](double x) { return std::erf(std::sqrt(x / 2)) - std::sqrt(2 * x / M_PI) * std::exp(-x / 2); }},
      {"Chi2(1)", mk<dist::Chi2>(1.0f), [](double x) { return std::erf(std::sqrt(x / 2)); }},
      {"ContinuousBernoulli(0.8)", dist::Dist(dist::ContinuousBernoulli(0.8f)), cb_cdf(l08)},
      {"ContinuousBernoulli(0.5)", dist::Dist(dist::ContinuousBernoulli(0.5f)), cb_cdf(0.0)},
      {"ContinuousBernoulli.from_logits(-2.5)", dist::Dist(dist::ContinuousBernoulli::from_logits(-2.5f)),
       cb_cdf(-2.5)},
      {"ContinuousBernoulli.from_logits(0.3)", dist::Dist(dist::ContinuousBernoulli::from_logits(0.3f)),
       cb_cdf(static_cast<double>(0.3f))},
      {"RelaxedBernoulli(0.6, 0.3)", dist::Dist(dist::RelaxedBernoulli(0.6f, 0.3f)),
       rb_cdf(static_cast<double>(0.6f), std::log(static_cast<double>(0.3f) / (1 - static_cast<double>(0.3f))))},
      {"RelaxedBernoulli.from_logits(1.7, 0.8)", dist::Dist(dist::RelaxedBernoulli::from_logits(1.7f, 0.8f)),
       rb_cdf(static_cast<double>(1.7f), static_cast<double>(0.8f))},
  };
  set_seed(78);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_LT(ks_statistic(c.d.sample({n}).to_vector(), c.cdf), crit);
  }
  // VonMises: draws lie in [-pi, pi]; KS of the angle from loc (wrapped)
  // against the series CDF; small, moderate and large concentrations, loc
  // near the wrap point for the first.
  for (auto [loc, k] : {std::pair{-2.9f, 0.3f}, std::pair{0.5f, 2.0f}, std::pair{1.0f, 50.0f}}) {
    SCOPED_TRACE("VonMises(" + std::to_string(loc) + ", " + std::to_string(k) + ")");
    const auto xs = dist::VonMises(loc, k).sample({n}).to_vector();
    std::vector<float> t(xs.size());
    for (size_t i = 0; i < xs.size(); ++i) {
      ASSERT_TRUE(xs[i] >= -M_PI - 1e-6 && xs[i] <= M_PI + 1e-6) << xs[i];
      t[i] = static_cast<float>(wrap_angle(static_cast<double>(xs[i]) - loc));
    }
    EXPECT_LT(ks_statistic(t, von_mises_cdf(k)), crit);
  }
}

// VonMises's circular moments: E cos(x - loc) = I1(k)/I0(k) and
// E sin(x - loc) = 0, with Var cos = (1 + I2/I0)/2 - (I1/I0)^2 and
// Var sin = (1 - I2/I0)/2 (cos^2 = (1 + cos 2t)/2); 5 standard errors of the
// sample means (n = 200000). mean() is loc, variance() 1 - I1/I0 (float64
// std::cyl_bessel_i reference; 1e-6 relative: float32 rounding).
TEST(DistSampling, VonMisesCircularMoments) {
  const int64_t n = 200000;
  set_seed(2025);
  for (auto [loc, k] : {std::pair{0.3f, 0.7f}, std::pair{-1.2f, 4.0f}, std::pair{2.8f, 20.0f}}) {
    SCOPED_TRACE("VonMises(" + std::to_string(loc) + ", " + std::to_string(k) + ")");
    dist::VonMises d(loc, k);
    const auto xs = d.sample({n}).to_vector();
    double c = 0, s = 0;
    for (float x : xs) {
      c += std::cos(static_cast<double>(x) - loc);
      s += std::sin(static_cast<double>(x) - loc);
    }
    c /= n;
    s /= n;
    const double kd = k, i0 = std::cyl_bessel_i(0.0, kd), r1 = std::cyl_bessel_i(1.0, kd) / i0,
                 r2 = std::cyl_bessel_i(2.0, kd) / i0;
    const double se_c = std::sqrt(((1 + r2) / 2 - r1 * r1) / n), se_s = std::sqrt((1 - r2) / 2 / n);
    EXPECT_NEAR(c, r1, 5 * se_c);
    EXPECT_NEAR(s, 0.0, 5 * se_s);
    EXPECT_EQ(d.mean().item(), loc);
    EXPECT_NEAR(d.variance().item(), 1 - r1, 1e-6 * (1 - r1));
  }
}

// Moments where torch has none or infinite ones.
TEST(DistSampling, AddedFamiliesInfiniteOrMissingMoments) {
  EXPECT_TRUE(std::isinf(dist::Pareto(1.0f, 0.9f).mean().item()));
  EXPECT_TRUE(std::isinf(dist::Pareto(1.0f, 1.0f).mean().item()));
  EXPECT_FLOAT_EQ(dist::Pareto(1.0f, 1.5f).mean().item(), 3.0f);
  EXPECT_TRUE(std::isinf(dist::Pareto(1.0f, 1.5f).variance().item()));
  EXPECT_TRUE(std::isinf(dist::Pareto(1.0f, 2.0f).variance().item()));
  EXPECT_FLOAT_EQ(dist::Pareto(2.0f, 3.0f).variance().item(), 3.0f);  // 4 * 3 / (4 * 1)
  EXPECT_TRUE(std::isnan(dist::RelaxedBernoulli(0.5f, 0.3f).mean().item()));
  EXPECT_TRUE(std::isnan(dist::RelaxedBernoulli::from_logits(0.5f, 0.3f).variance().item()));
  // Supports: Pareto's follows a constant scale; a tensor scale gives the
  // wider positive (see ppl/distributions.hpp).
  EXPECT_EQ(dist::Pareto(1.5f, 2.0f).support()->name(), "greater_than(1.5)");
  EXPECT_EQ(dist::Pareto(tensor({1.0f, 2.0f}), 2.0f).support()->name(), "positive");
  EXPECT_EQ(dist::VonMises(0.0f, 1.0f).support()->name(), "real");
  EXPECT_EQ(dist::ContinuousBernoulli(0.3f).support()->name(), "unit_interval");
  EXPECT_EQ(dist::RelaxedBernoulli(1.0f, 0.3f).support()->name(), "unit_interval");
  EXPECT_EQ(dist::Chi2(2.0f).support()->name(), "positive");
  EXPECT_EQ(dist::Gumbel(0.0f, 1.0f).support()->name(), "real");
  EXPECT_EQ(dist::Logistic(0.0f, 1.0f).support()->name(), "real");
}

// Pathwise gradient through the tensor API (family_sample's reparameterised
// path, both parameters): RelaxedBernoulli.from_logits(T, l), E[y] by
// float64 quadrature over the logistic noise z (Simpson, 40000 intervals on
// [-40, 40]) and its derivatives by central differences (step 1e-5: error
// ~1e-10). The Monte Carlo means of dy/dT and dy/dl are within 5 standard
// errors (each SE from the per-draw gradients' sample sd / sqrt(n)).
TEST(DistSampling, RelaxedBernoulliPathwiseGradientThroughTensors) {
  const int64_t n = 200000;
  const float t0 = 0.7f, l0 = 0.4f;
  auto ey = [](double t, double l) {
    const int m = 40000;
    const double a = -40, h = 80.0 / m;
    double acc = 0;
    for (int i = 0; i <= m; ++i) {
      const double z = a + i * h;
      const double w = (i == 0 || i == m) ? 1 : (i % 2 ? 4 : 2);
      const double dens = 1 / ((1 + std::exp(-z)) * (1 + std::exp(z)));
      acc += w * dens / (1 + std::exp(-(l + z) / t));
    }
    return acc * h / 3;
  };
  const double h = 1e-5, td = t0, ld = l0;
  const double dt = (ey(td + h, ld) - ey(td - h, ld)) / (2 * h), dl = (ey(td, ld + h) - ey(td, ld - h)) / (2 * h);
  set_seed(91);
  Tensor t = full({n}, t0).requires_grad_(), l = full({n}, l0).requires_grad_();
  sum(dist::RelaxedBernoulli::from_logits(t, l).rsample()).backward();
  auto check = [n](const std::vector<float>& g, double want, const char* what) {
    double m = 0, q = 0;
    for (float v : g) {
      m += v;
      q += static_cast<double>(v) * v;
    }
    m /= n;
    const double se = std::sqrt(std::max(q / n - m * m, 0.0) / n);
    EXPECT_NEAR(m, want, 5 * se) << what << " (SE " << se << ")";
  };
  check(t.grad().to_vector(), dt, "dE[y]/dT");
  check(l.grad().to_vector(), dl, "dE[y]/dl");
}

// Gradients of log_prob against central differences of the float64 host
// densities (step 1e-5 of each input: truncation ~1e-10, rounding ~1e-11),
// for every continuous family of the table: values [4, 3], parameters [3]
// (each parameter's gradient sums 4 elements). float32 evaluation of
// gradients of magnitude <= ~10 with a few cancelling terms: 2e-5 absolute
// plus 2e-5 relative. (gradcheck above differentiates the float32 kernels
// themselves, to ~1e-3; this pins the formulas to float32 accuracy.)
TEST(DistLogProb, GradientsMatchFloat64Differences) {
  std::mt19937 gen(29);
  for (const Family& f : families()) {
    if (f.discrete) continue;
    SCOPED_TRACE(f.name);
    const size_t np = f.param_ranges.size();
    std::vector<Tensor> ps;
    for (size_t k = 0; k < np; ++k)
      ps.push_back(random_tensor({3}, gen, f.param_ranges[k].first, f.param_ranges[k].second).requires_grad_());
    Tensor x = values_for(f, {4, 3}, gen).requires_grad_();
    std::vector<Arg> a(ps.begin(), ps.end());
    sum(f.make(a).log_prob(x)).backward();
    const auto xv = x.to_vector();
    std::vector<std::vector<float>> pv;
    for (auto& p : ps) pv.push_back(p.to_vector());
    std::vector<double> want_x(12), got_x;
    std::vector<std::vector<double>> want_p(np, std::vector<double>(3, 0.0));
    const double h = 1e-5;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j) {
        std::vector<double> p(np);
        for (size_t k = 0; k < np; ++k) p[k] = pv[k][static_cast<size_t>(j)];
        const double xx = xv[static_cast<size_t>(i * 3 + j)];
        want_x[static_cast<size_t>(i * 3 + j)] = (f.host(xx + h, p) - f.host(xx - h, p)) / (2 * h);
        for (size_t k = 0; k < np; ++k) {
          std::vector<double> hi = p, lo = p;
          hi[k] += h;
          lo[k] -= h;
          want_p[k][static_cast<size_t>(j)] += (f.host(xx, hi) - f.host(xx, lo)) / (2 * h);
        }
      }
    expect_close(x.grad().to_vector(), want_x, 2e-5, 2e-5, "d/dx");
    for (size_t k = 0; k < np; ++k)
      expect_close(ps[k].grad().to_vector(), want_p[k], 2e-5, 2e-5, ("d/dparam " + std::to_string(k)).c_str());
  }
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
// The pairs added with Pyro's (torch's) registry in mind, each against the
// Monte Carlo mean (5 standard errors of 2e5 draws).
TEST(KlDivergence, MorePairsMonteCarlo) {
  check_kl_mc(dist::Laplace(0.3f, 1.2f), dist::Laplace(-0.5f, 0.8f));
  check_kl_mc(dist::HalfNormal(0.7f), dist::HalfNormal(1.9f));
  check_kl_mc(dist::Cauchy(0.5f, 0.6f), dist::Cauchy(-1.0f, 1.5f));
  check_kl_mc(dist::Gumbel(0.4f, 1.3f), dist::Gumbel(-0.2f, 0.9f));
  check_kl_mc(dist::Uniform(0.2f, 0.9f), dist::Uniform(-1.0f, 2.0f));
  check_kl_mc(dist::Pareto(2.0f, 3.0f), dist::Pareto(1.5f, 1.2f));
  check_kl_mc(dist::Poisson(3.5f), dist::Poisson(2.0f));
  check_kl_mc(dist::Geometric(0.3f), dist::Geometric(0.55f));
  check_kl_mc(dist::Bernoulli(0.3f), dist::Bernoulli(0.8f));
  check_kl_mc(dist::Bernoulli::from_logits(-1.2f), dist::Bernoulli(0.6f));
  check_kl_mc(dist::Categorical(tensor({0.2f, 0.5f, 0.3f})), dist::Categorical(tensor({0.6f, 0.1f, 0.3f})));
  check_kl_mc(dist::OneHotCategorical(tensor({0.1f, 0.1f, 0.8f})),
              dist::OneHotCategorical(tensor({0.3f, 0.3f, 0.4f})));
}

// The edges, exactly: a support not inside p's is +inf, a zero probability
// in q contributes 0 (0 log 0), one in p where q has mass gives +inf.
TEST(KlDivergence, SupportEdgesAndZeroProbabilities) {
  using dist::kl_divergence;
  const float inf = std::numeric_limits<float>::infinity();
  // [0, 1] inside [0, 2]: log 2; [-2, 1] and [0.5, 3] reach outside: inf.
  const auto u = kl_divergence(dist::Uniform(tensor({0.0f, -2.0f, 0.5f}), tensor({1.0f, 1.0f, 3.0f})),
                               dist::Uniform(0.0f, 2.0f))
                     .to_vector();
  EXPECT_NEAR(u[0], std::log(2.0), 1e-6);
  EXPECT_EQ(u[1], inf);
  EXPECT_EQ(u[2], inf);
  EXPECT_EQ(kl_divergence(dist::Pareto(1.0f, 2.0f), dist::Pareto(1.5f, 2.0f)).item(), inf);
  // Bernoulli: q = 0 against 1/4: -log(3/4); q = 1 against 0: inf; 0 against 0: 0.
  const auto b =
      kl_divergence(dist::Bernoulli(tensor({0.0f, 1.0f, 0.0f})), dist::Bernoulli(tensor({0.25f, 0.0f, 0.0f})))
          .to_vector();
  EXPECT_NEAR(b[0], -std::log(0.75), 1e-6);
  EXPECT_EQ(b[1], inf);
  EXPECT_EQ(b[2], 0.0f);
  // A category q never draws adds nothing: log 2 from the other two.
  EXPECT_NEAR(kl_divergence(dist::Categorical(tensor({0.5f, 0.5f, 0.0f})),
                            dist::Categorical(tensor({0.25f, 0.25f, 0.5f})))
                  .item(),
              std::log(2.0), 1e-6);
  EXPECT_NEAR(kl_divergence(dist::Poisson(0.0f), dist::Poisson(1.5f)).item(), 1.5, 1e-6);
  EXPECT_NEAR(kl_divergence(dist::Geometric(1.0f), dist::Geometric(0.4f)).item(), -std::log(0.4), 1e-6);
  // Gradients of an interior pair are finite and flow to both sides.
  Tensor lq = tensor(0.3f).requires_grad_(), sp = tensor(0.9f).requires_grad_();
  kl_divergence(dist::Gumbel(lq, 1.2f), dist::Gumbel(0.0f, sp)).backward();
  EXPECT_TRUE(std::isfinite(lq.grad().item()) && lq.grad().item() != 0.0f);
  EXPECT_TRUE(std::isfinite(sp.grad().item()) && sp.grad().item() != 0.0f);
}

// Binomial against Binomial (probs or logits on either side): the exact sum
// over the support 0..n of q(k) log(q(k) / p(k)) in double. float32 logs of
// probabilities near 1e-2, times n = 12: 2e-5 (1 + |KL|). Gradients reach
// both sides' parameters (gradcheck). A larger total count in q is +inf; a
// smaller one has no closed form (as torch): has_kl is false for constant
// counts, a deferred error for tensor ones.
TEST(KlDivergence, BinomialBinomialMatchesTheSupportSum) {
  using dist::kl_divergence;
  auto exact = [](double n, double a, double b) {
    double kl = 0;
    for (int k = 0; k <= static_cast<int>(n); ++k) {
      const double lc = std::lgamma(n + 1) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1);
      const double lq = lc + k * std::log(a) + (n - k) * std::log1p(-a);
      const double lp = lc + k * std::log(b) + (n - k) * std::log1p(-b);
      kl += std::exp(lq) * (lq - lp);
    }
    return kl;
  };
  const float n = 12.0f;
  for (auto [a, b] : std::vector<std::pair<float, float>>{{0.3f, 0.6f}, {0.05f, 0.5f}, {0.9f, 0.85f}}) {
    const double want = exact(n, a, b);
    const float la = std::log(a / (1 - a)), lb = std::log(b / (1 - b));
    EXPECT_NEAR(kl_divergence(dist::Binomial(n, a), dist::Binomial(n, b)).item(), want, 2e-5 * (1 + want));
    EXPECT_NEAR(kl_divergence(dist::Binomial::from_logits(n, la), dist::Binomial(n, b)).item(), want,
                2e-5 * (1 + want));
    EXPECT_NEAR(kl_divergence(dist::Binomial(n, a), dist::Binomial::from_logits(n, lb)).item(), want,
                2e-5 * (1 + want));
  }
  cuvi::testing::gradcheck(
      [](const std::vector<Tensor>& x) {
        return kl_divergence(dist::Binomial(7.0f, x[0]), dist::Binomial::from_logits(7.0f, x[1]));
      },
      {tensor({0.2f, 0.6f}), tensor({-0.4f, 1.1f})});
  EXPECT_EQ(kl_divergence(dist::Binomial(5.0f, 0.3f), dist::Binomial(4.0f, 0.3f)).item(),
            std::numeric_limits<float>::infinity());
  EXPECT_FALSE(dist::has_kl(dist::Binomial(3.0f, 0.3f), dist::Binomial(4.0f, 0.3f)));
  const auto t = kl_divergence(dist::Binomial(tensor({4.0f, 6.0f}), 0.3f), dist::Binomial(4.0f, 0.5f)).to_vector();
  EXPECT_NEAR(t[0], exact(4, 0.3, 0.5), 2e-5);
  EXPECT_EQ(t[1], std::numeric_limits<float>::infinity());
  expect_error<ValueError>(
      [] { kl_divergence(dist::Binomial(tensor({4.0f, 2.0f}), 0.3f), dist::Binomial(4.0f, 0.5f)).to_vector(); },
      {"kl_divergence(Binomial, Binomial)", "below", "2"});
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

// Each added family names itself, the argument and the value: bad
// parameters at construction, values outside the support (Pareto's depends
// on its scale, read per element) at log_prob. Boundary probabilities 0 and
// 1 are valid (torch's unit_interval; clamped inside).
TEST(DistValidation, AddedFamiliesNameDistributionArgumentAndValue) {
  expect_error<ValueError>([] { dist::Gumbel(0.0f, -1.0f); }, {"Gumbel", "scale", "-1"});
  expect_error<ValueError>([] { dist::Logistic(0.0f, 0.0f); }, {"Logistic", "scale", "0"});
  expect_error<ValueError>([] { dist::Logistic(INFINITY, 1.0f); }, {"Logistic", "loc", "inf"});
  expect_error<ValueError>([] { dist::Pareto(-2.0f, 1.0f); }, {"Pareto", "scale", "-2"});
  expect_error<ValueError>([] { dist::Pareto(1.0f, -0.5f); }, {"Pareto", "alpha", "-0.5"});
  expect_error<ValueError>([] { dist::Pareto(2.0f, 3.0f).log_prob(tensor(1.5f)); }, {"Pareto", "support", "1.5"});
  expect_error<ValueError>([] { dist::Pareto(tensor({1.0f, 2.0f}), 3.0f).log_prob(tensor({1.5f, 1.75f})); },
                           {"Pareto", "support", "1.75"});
  EXPECT_NO_THROW(dist::Pareto(tensor({1.0f, 2.0f}), 3.0f).log_prob(tensor({1.5f, 2.0f})));
  expect_error<ValueError>([] { dist::Chi2(0.0f); }, {"Chi2", "df", "0"});
  expect_error<ValueError>([] { dist::Chi2(3.0f).log_prob(tensor(-0.5f)); }, {"Chi2", "support", "-0.5"});
  expect_error<ValueError>([] { dist::VonMises(0.0f, -2.0f); }, {"VonMises", "concentration", "-2"});
  expect_error<ValueError>([] { dist::VonMises(NAN, 2.0f); }, {"VonMises", "loc"});
  expect_error<ValueError>([] { dist::ContinuousBernoulli(1.5f); }, {"ContinuousBernoulli", "probs", "1.5"});
  expect_error<ValueError>([] { dist::ContinuousBernoulli::from_logits(-INFINITY); },
                           {"ContinuousBernoulli", "logits", "inf"});
  expect_error<ValueError>([] { dist::ContinuousBernoulli(0.3f).log_prob(tensor(1.25f)); },
                           {"ContinuousBernoulli", "support", "1.25"});
  expect_error<ValueError>([] { dist::RelaxedBernoulli(-0.5f, 0.3f); }, {"RelaxedBernoulli", "temperature", "-0.5"});
  expect_error<ValueError>([] { dist::RelaxedBernoulli(1.0f, 1.25f); }, {"RelaxedBernoulli", "probs", "1.25"});
  expect_error<ValueError>([] { dist::RelaxedBernoulli::from_logits(1.0f, NAN); }, {"RelaxedBernoulli", "logits"});
  expect_error<ValueError>([] { dist::RelaxedBernoulli(1.0f, 0.3f).log_prob(tensor(1.25f)); },
                           {"RelaxedBernoulli", "support", "1.25"});
  expect_error<ValueError>([] { dist::RelaxedBernoulli(1.0f, 0.3f).log_prob(tensor(-0.5f)); },
                           {"RelaxedBernoulli", "support", "-0.5"});
  // Probabilities 0 and 1 are accepted and give finite densities and draws in the support.
  EXPECT_TRUE(std::isfinite(dist::ContinuousBernoulli(0.0f).log_prob(tensor(0.5f)).item()));
  EXPECT_TRUE(std::isfinite(dist::ContinuousBernoulli(1.0f).log_prob(tensor(0.5f)).item()));
  EXPECT_TRUE(std::isfinite(dist::RelaxedBernoulli(0.5f, 1.0f).log_prob(tensor(0.5f)).item()));
  set_seed(3);
  for (float y : dist::RelaxedBernoulli(0.05f, 0.0f).sample({1000}).to_vector()) ASSERT_TRUE(y > 0.0f && y < 1.0f) << y;
  for (float y : dist::RelaxedBernoulli(0.05f, 1.0f).sample({1000}).to_vector()) ASSERT_TRUE(y > 0.0f && y < 1.0f) << y;
  // RelaxedBernoulli values 0 and 1 (a float sigmoid rounds to them) are
  // evaluated at torch's clamp [tiny, 1 - 2^-23]: the same density as there,
  // finite, with a zero value gradient.
  {
    dist::RelaxedBernoulli rb(0.7f, 0.4f);
    EXPECT_EQ(rb.log_prob(tensor(1.0f)).item(), rb.log_prob(tensor(1.0f - 1.1920929e-7f)).item());
    EXPECT_EQ(rb.log_prob(tensor(0.0f)).item(), rb.log_prob(tensor(1.17549435e-38f)).item());
    EXPECT_TRUE(std::isfinite(rb.log_prob(tensor(1.0f)).item()));
    Tensor y = tensor({0.0f, 1.0f}).requires_grad_();
    sum(rb.log_prob(y)).backward();
    EXPECT_EQ(y.grad().to_vector(), (std::vector<float>{0.0f, 0.0f}));
  }
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
