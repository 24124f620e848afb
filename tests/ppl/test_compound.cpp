// Tensor-level tests of Pyro's compound and zero-inflated count families
// (the family table of test_distributions.cpp covers GammaPoisson, the
// zero-inflated ones and AsymmetricLaplace for broadcasting, gradcheck, the
// fused sum and moments; here: BetaBinomial, whose total_count is an integer,
// the zero cell, the errors, and a maximum-likelihood fit through SVI).
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/distributions.hpp"
#include "ppl/infer.hpp"
#include "ppl/optim.hpp"
#include "ppl/poutine.hpp"

using namespace cuvi;
using namespace cuvi::testing;

namespace {

// digamma as a central difference of std::lgamma in double (step 1e-4:
// truncation ~1e-9 for arguments >= 0.3, rounding ~1e-12).
double dig(double v) {
  const double h = 1e-4;
  return (std::lgamma(v + h) - std::lgamma(v - h)) / (2 * h);
}
double lbeta(double a, double b) { return std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b); }

}  // namespace

// log_prob against the float64 pmf, gradients against the float64
// derivatives (digamma by differences), with total_count a [3] tensor of
// integers broadcast against values [4, 3]. Tolerances as the family table's
// and the Binomial test's: log_prob 1e-5 abs + rel (float32 of O(10) values
// from double lgammas); gradients 1e-4 (float32 rounding of double digamma
// differences, summed over 4 rows).
TEST(BetaBinomial, LogProbAndGradientsAgainstFloat64) {
  const std::vector<float> av = {0.5f, 2.0f, 7.5f}, bv = {1.5f, 0.8f, 3.0f}, nv = {5, 12, 40};
  Tensor a = tensor(av).requires_grad_(), b = tensor(bv).requires_grad_(), n = tensor(nv).requires_grad_();
  const std::vector<float> kv = {0, 3, 40, 5, 12, 0, 2, 7, 33, 4, 0, 17};
  const Tensor k = tensor(kv, {4, 3});
  dist::BetaBinomial d(a, b, n);
  EXPECT_EQ(d.batch_shape(), (Shape{3}));
  const Tensor lp = d.log_prob(k);
  std::vector<double> want, ga(3, 0), gb(3, 0), gn(3, 0);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) {
      const double A = av[j], B = bv[j], N = nv[j], K = kv[i * 3 + j];
      want.push_back(std::lgamma(N + 1) - std::lgamma(K + 1) - std::lgamma(N - K + 1) + lbeta(K + A, N - K + B) -
                     lbeta(A, B));
      ga[j] += dig(K + A) - dig(N + A + B) - dig(A) + dig(A + B);
      gb[j] += dig(N - K + B) - dig(N + A + B) - dig(B) + dig(A + B);
      gn[j] += dig(N + 1) - dig(N - K + 1) + dig(N - K + B) - dig(N + A + B);
    }
  expect_close(lp.to_vector(), want, 1e-5, 1e-5, "log_prob");
  sum(lp).backward();
  expect_close(a.grad().to_vector(), ga, 1e-4, 1e-4, "d/dconcentration1");
  expect_close(b.grad().to_vector(), gb, 1e-4, 1e-4, "d/dconcentration0");
  expect_close(n.grad().to_vector(), gn, 1e-4, 1e-4, "d/dtotal_count");
  // The fused sum: the same value (1e-5 relative: another order of summation).
  const double total = std::accumulate(want.begin(), want.end(), 0.0);
  EXPECT_NEAR(d.log_prob_sum(k, -1.5f).item(), -1.5 * total, 1e-5 * std::fabs(total));
  // Draws: counts in [0, n]; moments as Pyro's.
  set_seed(8);
  const auto s = d.sample({2000}).to_vector();
  for (size_t i = 0; i < s.size(); ++i) ASSERT_TRUE(s[i] >= 0 && s[i] <= nv[i % 3] && s[i] == std::floor(s[i])) << s[i];
  std::vector<double> m, v;
  for (int j = 0; j < 3; ++j) {
    const double A = av[j], B = bv[j], N = nv[j];
    m.push_back(N * A / (A + B));
    v.push_back(N * A * B * (A + B + N) / ((A + B) * (A + B) * (A + B + 1)));
  }
  expect_close(d.mean().to_vector(), m, 1e-5, 1e-6, "mean");
  expect_close(d.variance().to_vector(), v, 1e-5, 1e-5, "variance");
  // total_count defaults to 1, as Pyro's.
  EXPECT_NEAR(dist::BetaBinomial(2.0f, 3.0f).log_prob(tensor(1.0f)).item(), std::log(0.4), 1e-6);
}

// The zero cell of the zero-inflated families: every value 0, parameters as
// tensors; log_prob and gradients against the float64 mixture
// log(g + (1 - g) b(0)) and its derivatives by central differences (step
// 1e-6 relative; truncation and rounding ~1e-10), to 2e-5 abs + rel.
TEST(ZeroInflated, ZeroCellAgainstFloat64) {
  const std::vector<float> rate = {0.3f, 2.0f, 9.0f}, gate = {0.05f, 0.5f, 0.9f};
  auto host = [](double r, double g) { return std::log(g + (1 - g) * std::exp(-r)); };
  Tensor rt = tensor(rate).requires_grad_(), gt = tensor(gate).requires_grad_();
  const Tensor lp = dist::ZeroInflatedPoisson(rt, gt).log_prob(zeros({2, 3}));
  std::vector<double> want, dr, dg;
  for (int j = 0; j < 3; ++j) {
    const double r = rate[j], g = gate[j], hr = 1e-6 * r, hg = 1e-6 * g;
    want.push_back(host(r, g));
    dr.push_back(2 * (host(r + hr, g) - host(r - hr, g)) / (2 * hr));  // two rows
    dg.push_back(2 * (host(r, g + hg) - host(r, g - hg)) / (2 * hg));
  }
  expect_close(lp.to_vector(), {want[0], want[1], want[2], want[0], want[1], want[2]}, 2e-5, 2e-5, "log_prob");
  sum(lp).backward();
  expect_close(rt.grad().to_vector(), dr, 2e-5, 2e-5, "d/drate");
  expect_close(gt.grad().to_vector(), dg, 2e-5, 2e-5, "d/dgate");
  // The logits form gives the same density, and d/dgate_logits = d/dgate g (1 - g).
  std::vector<float> gl;
  for (float g : gate) gl.push_back(static_cast<float>(std::log(g / (1.0 - g))));
  Tensor glt = tensor(gl).requires_grad_();
  const Tensor lp2 = dist::ZeroInflatedPoisson::from_gate_logits(tensor(rate), glt).log_prob(zeros({2, 3}));
  expect_close(lp2.to_vector(), {want[0], want[1], want[2], want[0], want[1], want[2]}, 2e-5, 2e-5, "logits log_prob");
  sum(lp2).backward();
  std::vector<double> dl;
  for (int j = 0; j < 3; ++j) dl.push_back(dg[j] * gate[j] * (1 - gate[j]));
  expect_close(glt.grad().to_vector(), dl, 2e-5, 2e-5, "d/dgate_logits");
}

TEST(CompoundValidation, ErrorsNameDistributionArgumentAndValue) {
  expect_error<ValueError>([] { dist::BetaBinomial(1.0f, 2.0f, 3.5f); }, {"BetaBinomial", "total_count", "3.5"});
  expect_error<ValueError>([] { dist::BetaBinomial(-1.0f, 2.0f, 3.0f); }, {"BetaBinomial", "concentration1", "-1"});
  expect_error<ValueError>([] { dist::BetaBinomial(1.0f, 2.0f, 3.0f).log_prob(tensor(4.0f)); },
                           {"BetaBinomial", "4"});
  expect_error<ValueError>([] { dist::GammaPoisson(2.0f, 0.0f); }, {"GammaPoisson", "rate", "0"});
  expect_error<ValueError>([] { dist::GammaPoisson(2.0f, 1.0f).log_prob(tensor(1.5f)); }, {"GammaPoisson", "1.5"});
  expect_error<ValueError>([] { dist::ZeroInflatedPoisson(2.0f, 1.25f); }, {"ZeroInflatedPoisson", "gate", "1.25"});
  expect_error<ValueError>([] { dist::ZeroInflatedPoisson::from_gate_logits(2.0f, NAN); },
                           {"ZeroInflatedPoisson", "gate_logits"});
  expect_error<ValueError>([] { dist::ZeroInflatedNegativeBinomial(2.0f, 1.0f, 0.5f); },
                           {"ZeroInflatedNegativeBinomial", "probs", "1"});
  expect_error<ValueError>([] { dist::ZeroInflatedNegativeBinomial::from_logits(-2.0f, 0.0f, 0.0f); },
                           {"ZeroInflatedNegativeBinomial", "total_count", "-2"});
  expect_error<ValueError>([] { dist::ZeroInflatedNegativeBinomial(2.0f, 0.5f, 0.5f).log_prob(tensor(-1.0f)); },
                           {"ZeroInflatedNegativeBinomial", "-1"});
  expect_error<ValueError>([] { dist::NegativeBinomial::from_logits(2.0f, INFINITY); },
                           {"NegativeBinomial", "logits", "inf"});
  expect_error<ValueError>([] { dist::AsymmetricLaplace(0.0f, 1.0f, -0.5f); }, {"AsymmetricLaplace", "asymmetry", "-0.5"});
  expect_error<ValueError>([] { dist::AsymmetricLaplace(0.0f, 0.0f, 1.0f); }, {"AsymmetricLaplace", "scale", "0"});
  // Logits of +-40 are valid (a probability would round to 0 or 1), and
  // the densities are finite.
  EXPECT_TRUE(std::isfinite(dist::NegativeBinomial::from_logits(2.0f, 40.0f).log_prob(tensor(3.0f)).item()));
  EXPECT_TRUE(std::isfinite(
      dist::ZeroInflatedNegativeBinomial::from_logits(2.0f, -40.0f, 40.0f).log_prob(tensor(2.0f)).item()));
  // Validation off: nothing is checked.
  dist::set_validation(false);
  EXPECT_NO_THROW(dist::ZeroInflatedPoisson(2.0f, 1.25f));
  dist::set_validation(true);
}

// Maximum likelihood through SVI: rate and gate of a ZeroInflatedPoisson
// as constrained params, an empty guide, Adam on the exact negative
// log-likelihood of 4000 counts. The optimum is the MLE, computed here in
// float64 by EM (iterated to a fixed point); Adam's noise-free convergence
// on this smooth objective reaches it to within 2e-3 (a wrong gradient of
// either parameter ends elsewhere by far more: the MLE of a plain Poisson,
// gate 0, has rate 2.1 against 3.0).
TEST(ZeroInflated, MaximumLikelihoodBySVIMatchesEM) {
  fresh(3);
  std::mt19937 gen(17);
  std::bernoulli_distribution zero(0.3);
  std::poisson_distribution<int> pois(3.0);
  std::vector<float> xs(4000);
  for (auto& x : xs) x = zero(gen) ? 0.0f : static_cast<float>(pois(gen));
  const double n = static_cast<double>(xs.size());
  double n0 = 0, sx = 0;
  for (float x : xs) {
    n0 += x == 0;
    sx += x;
  }
  double g = 0.5, r = 1.0;
  for (int it = 0; it < 20000; ++it) {
    const double w = g / (g + (1 - g) * std::exp(-r));  // P(gate | x = 0)
    g = n0 * w / n;
    r = sx / (n - n0 * w);
  }
  const Tensor data = tensor(xs);
  auto model = [](const Tensor& x) {
    Tensor rate = param("rate", 1.0f, constraints::positive);
    Tensor gate = param("gate", 0.5f, constraints::unit_interval);
    auto p = plate("data", x.size(0));
    sample("obs", dist::ZeroInflatedPoisson(rate, gate), x);
  };
  infer::SVI svi(
      model, [](const Tensor&) {}, optim::Adam({.lr = 0.02f}), infer::Trace_ELBO());
  for (int i = 0; i < 1500; ++i) svi.step(data);
  EXPECT_NEAR(param_store().get("rate").item(), r, 2e-3);
  EXPECT_NEAR(param_store().get("gate").item(), g, 2e-3);
  EXPECT_NEAR(r, 3.0, 0.15);  // the data's truth, for orientation (SE ~0.03)
}

// Binomial::from_logits: the probs form's density and moments where both are
// exact (logits +-1.5: 2e-6 abs + rel, float32 logs of O(1) probabilities),
// d/dlogits = d/dprobs q (1 - q) (1e-5), finite where probs would round to 0
// or 1, and its errors.
TEST(BinomialLogits, AgreesWithProbsAndStaysFiniteInTheTails) {
  const std::vector<float> l = {-1.5f, 0.0f, 1.5f};
  std::vector<float> q;
  for (float v : l) q.push_back(static_cast<float>(1 / (1 + std::exp(-static_cast<double>(v)))));
  Tensor lt = tensor(l).requires_grad_(), qt = tensor(q).requires_grad_();
  const Tensor k = tensor({0.0f, 3.0f, 8.0f, 8.0f, 1.0f, 5.0f}, {2, 3});
  const Tensor a = dist::Binomial::from_logits(8.0f, lt).log_prob(k), b = dist::Binomial(8.0f, qt).log_prob(k);
  const auto bv = b.to_vector();
  expect_close(a.to_vector(), std::vector<double>(bv.begin(), bv.end()), 2e-6, 2e-6, "log_prob");
  sum(a).backward();
  sum(b).backward();
  const auto gq = qt.grad().to_vector();
  std::vector<double> want;
  for (size_t j = 0; j < 3; ++j) want.push_back(gq[j] * q[j] * (1 - q[j]));
  expect_close(lt.grad().to_vector(), want, 1e-5, 1e-5, "d/dlogits");
  const dist::Dist d = dist::Binomial::from_logits(8.0f, lt);
  const auto mv = dist::Binomial(8.0f, qt).mean().to_vector(), vv = dist::Binomial(8.0f, qt).variance().to_vector();
  expect_close(d.mean().to_vector(), std::vector<double>(mv.begin(), mv.end()), 1e-5, 1e-5, "mean");
  expect_close(d.variance().to_vector(), std::vector<double>(vv.begin(), vv.end()), 1e-5, 1e-5, "variance");
  // logits 40: log p(n) = -n softplus(-40) = -8 * 4.2e-18 (probs would be 1.0f).
  EXPECT_NEAR(dist::Binomial::from_logits(8.0f, 40.0f).log_prob(tensor(8.0f)).item(), 0.0, 1e-12);
  EXPECT_NEAR(dist::Binomial::from_logits(8.0f, 40.0f).log_prob(tensor(7.0f)).item(), std::log(8.0) - 40.0, 1e-4);
  expect_error<ValueError>([] { dist::Binomial::from_logits(5.5f, 0.0f); }, {"Binomial", "total_count", "5.5"});
  expect_error<ValueError>([] { dist::Binomial::from_logits(5.0f, NAN); }, {"Binomial", "logits"});
  expect_error<ValueError>([] { dist::Binomial::from_logits(5.0f, 0.0f).log_prob(tensor(6.0f)); }, {"Binomial", "6"});
}
