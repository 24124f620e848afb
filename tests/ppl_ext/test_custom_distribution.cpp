// The extension point: Kumaraswamy is defined in examples/custom_distribution,
// outside the library, as one struct of CUVI_HD functions.
#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.hpp"
#include "kumaraswamy.hpp"

using namespace cuvi;
using namespace cuvi::testing;

namespace {

double kuma_logpdf(double x, double a, double b) {
  return std::log(a) + std::log(b) + (a - 1) * std::log(x) + (b - 1) * std::log1p(-std::pow(x, a));
}

TEST(CustomDistribution, LogProbMatchesFloat64WithBroadcasting) {
  std::mt19937 gen(5);
  Tensor x = random_tensor({4, 3}, gen, 0.05f, 0.95f);
  Tensor a = random_tensor({3}, gen, 0.5f, 3.0f);
  custom::Kumaraswamy d(a, 2.5f);
  const auto lp = d.log_prob(x).to_vector();
  const auto xv = x.to_vector(), av = a.to_vector();
  for (size_t i = 0; i < lp.size(); ++i)
    EXPECT_NEAR(lp[i], kuma_logpdf(xv[i], av[i % 3], 2.5), 2e-5 * (1 + std::fabs(lp[i])));
}

TEST(CustomDistribution, GradientsMatchFiniteDifferences) {
  std::mt19937 gen(6);
  gradcheck([](const std::vector<Tensor>& t) { return custom::Kumaraswamy(t[1], t[2]).log_prob(t[0]); },
            {random_tensor({5}, gen, 0.1f, 0.9f), random_tensor({5}, gen, 0.7f, 3.0f),
             random_tensor({5}, gen, 0.7f, 3.0f)});
}

TEST(CustomDistribution, SamplesHaveTheAnalyticMeanAndPathwiseGradient) {
  set_seed(11);
  const int n = 200000;
  Tensor a = tensor({2.0f}).requires_grad_();
  Tensor b = tensor({3.0f}).requires_grad_();
  custom::Kumaraswamy d(a, b);
  Tensor x = d.rsample({n});
  const auto v = x.to_vector();
  double m = 0, m2 = 0;
  for (float s : v) {
    m += s;
    m2 += double(s) * s;
  }
  m /= n;
  m2 /= n;
  const double var = m2 - m * m;
  // SE of the sample mean: sqrt(var / n).
  EXPECT_NEAR(m, d.mean().item(), 5 * std::sqrt(var / n));
  EXPECT_NEAR(var, d.variance().item(), 0.02 * var);
  // d E[x] / d a through the implicit reparameterisation, against a central
  // difference of the analytic mean b B(1 + 1/a, b); the estimator's SE is
  // that of the mean of the per-sample gradients.
  mean(x).backward();
  auto mean_at = [](float aa, float bb) { return custom::Kumaraswamy(aa, bb).mean().item(); };
  const double h = 1e-2;
  const double da = (mean_at(2.0f + h, 3.0f) - mean_at(2.0f - h, 3.0f)) / (2 * h);
  const double db = (mean_at(2.0f, 3.0f + h) - mean_at(2.0f, 3.0f - h)) / (2 * h);
  EXPECT_NEAR(a.grad().item(), da, 0.02 * std::fabs(da) + 1e-3);
  EXPECT_NEAR(b.grad().item(), db, 0.02 * std::fabs(db) + 1e-3);
}

TEST(CustomDistribution, WorksInSampleAndSvi) {
  param_store().clear();
  set_seed(2);
  auto model = [] { sample("x", dist::Beta(2.0f, 5.0f)); };
  auto guide = [] {
    sample("x", custom::Kumaraswamy(param("a", 1.0f, constraints::positive), param("b", 1.0f, constraints::positive)));
  };
  // KL(q || Beta(2, 5)) by Monte Carlo with 1e5 draws: its standard error
  // is below 2e-3 here, far under the margins asserted. At the start q is
  // Uniform and KL = 5 - log 30 = 1.599 nats; a Kumaraswamy can match a
  // Beta(2, 5) closely, so a working SVI must drive it near zero.
  auto kl = [](float a, float b) {
    NoGradGuard ng;
    custom::Kumaraswamy q(a, b);
    Tensor x = q.sample({100000});
    return mean(q.log_prob(x) - dist::Beta(2.0f, 5.0f).log_prob(x)).item();
  };
  EXPECT_NEAR(kl(1.0f, 1.0f), 5.0 - std::log(30.0), 0.02);
  infer::SVI svi(model, guide, optim::Adam({.lr = 2e-2f}), infer::Trace_ELBO({.num_particles = 4}));
  for (int i = 0; i < 600; ++i) svi.step();
  const float a = param_store().get("a").item(), b = param_store().get("b").item();
  EXPECT_LT(kl(a, b), 0.05) << "a " << a << " b " << b;
}

TEST(CustomDistribution, ValidationNamesTheFamily) {
  expect_error<ValueError>([] { custom::Kumaraswamy(-1.0f, 2.0f); }, {"Kumaraswamy", "a", "-1"});
  expect_error<ValueError>([] { custom::Kumaraswamy(1.0f, 2.0f).log_prob(tensor({1.5f})); }, {"Kumaraswamy", "1.5"});
}

}  // namespace
