// OrderedLogistic (Pyro's ordinal-regression likelihood) and the
// ordered_vector constraint its cutpoints are learned under.
// Device-generic (also run on cuda:0 by cuvi_test_gpu_ppl).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cuvi.hpp"
#include "gradcheck.hpp"

using namespace cuvi;
using cuvi::testing::expect_error;
using cuvi::testing::gradcheck;

namespace {

// log P(y = k) in long double: sigmoid(b) - sigmoid(a) (or the mirrored
// difference of the upper tails), a = c_{k-1} - eta, b = c_k - eta.
long double ordinal_log_prob(double eta, const std::vector<double>& c, size_t k) {
  auto sig = [](long double x) { return 1.0L / (1.0L + std::exp(-x)); };
  const long double a = k == 0 ? -INFINITY : c[k - 1] - eta, b = k == c.size() ? INFINITY : c[k] - eta;
  const long double p = a + b > 0 ? sig(-a) - sig(-b) : sig(b) - sig(a);
  return std::log(p);
}

}  // namespace

// Log-probabilities against long double, from the middle to far tails
// (predictor 40 beyond the cutpoints: P(y = 0) ~ e^-41, which a difference
// of float sigmoids would round to 0 and log to -inf). float32 log-sigmoids
// and expm1 of their difference: ~4 roundings of relative size 6e-8 on
// values up to |log p| ~ 45: tolerance 1e-5 (1 + |ref|).
TEST(OrderedLogistic, LogProbsMatchLongDoubleIntoTheTails) {
  const std::vector<float> cf = {-1.5f, -0.2f, 0.4f, 2.5f};
  const std::vector<double> c(cf.begin(), cf.end());  // the float inputs, exactly
  for (double eta : {-40.0, -6.0, -1.0, 0.0, 0.3, 2.0, 7.0, 40.0}) {
    const dist::Categorical d = dist::OrderedLogistic(tensor(static_cast<float>(eta)), tensor(cf));
    EXPECT_EQ(d.batch_shape(), Shape{});
    const auto lp = d.log_prob(arange(5).to_float()).to_vector();
    for (size_t k = 0; k < 5; ++k) {
      const double ref = static_cast<double>(ordinal_log_prob(static_cast<float>(eta), c, k));
      EXPECT_NEAR(lp[k], ref, 1e-5 * (1 + std::fabs(ref))) << "eta " << eta << " k " << k;
    }
  }
}

// Batch broadcasting (predictor [3, 1] against cutpoints [2, 3] -> batch
// [3, 2], K = 4) and gradients in the predictor and the cutpoints against
// finite differences.
TEST(OrderedLogistic, BroadcastsAndDifferentiates) {
  const Tensor eta = tensor({-1.0f, 0.5f, 2.0f}, {3, 1});
  const Tensor c = tensor({-1.0f, 0.0f, 1.5f, -0.5f, 0.2f, 0.9f}, {2, 3});
  const dist::Categorical d = dist::OrderedLogistic(eta, c);
  EXPECT_EQ(d.batch_shape(), (Shape{3, 2}));
  const auto p = d.probs().to_vector();
  ASSERT_EQ(p.size(), 24u);
  for (size_t r = 0; r < 6; ++r) {
    double s = 0;
    for (size_t k = 0; k < 4; ++k) s += p[4 * r + k];
    EXPECT_NEAR(s, 1.0, 1e-6);
  }
  const Tensor y = tensor({0.0f, 3.0f, 1.0f, 2.0f, 3.0f, 1.0f}, {3, 2});
  gradcheck([&](const std::vector<Tensor>& x) { return dist::OrderedLogistic(x[0], x[1]).log_prob(y); },
            {eta.clone(), c.clone()});
}

TEST(OrderedLogistic, RejectsUnorderedCutpointsAndBadShapes) {
  expect_error<ValueError>([] { dist::OrderedLogistic(tensor(0.0f), tensor({0.0f, 1.0f, 1.0f})).probs().to_vector(); },
                           {"OrderedLogistic", "strictly increasing", "0"});
  expect_error<ValueError>([] { dist::OrderedLogistic(tensor(0.0f), tensor({0.5f, -0.25f})).probs().to_vector(); },
                           {"OrderedLogistic", "strictly increasing", "-0.75"});
  expect_error<ShapeError>([] { dist::OrderedLogistic(tensor(0.0f), tensor(1.0f)); }, {"OrderedLogistic", "last dim"});
  expect_error<DTypeError>([] { dist::OrderedLogistic(tensor_i64({0}), tensor({0.0f, 1.0f})); },
                           {"OrderedLogistic", "float32"});
}

// Maximum likelihood by SVI (no latents; the cutpoints a param under
// ordered_vector) reaches the closed-form MLE: with a fixed predictor 0 the
// likelihood is that of a multinomial over the K outcomes, maximised at
// c_k = logit(F_k), F_k the observed fraction of y <= k. The data are
// draws of OrderedLogistic itself (N = 4000); Adam converges to ~1e-3.
TEST(OrderedLogistic, SviRecoversTheClosedFormMle) {
  set_seed(11);
  param_store().clear();
  const int64_t n = 4000;
  const Tensor truth = tensor({-1.0f, 0.3f, 1.8f});
  const Tensor y = dist::OrderedLogistic(zeros({n}), truth.unsqueeze(0).expand({n, 3})).sample();
  auto model = [](const Tensor& obs) {
    const Tensor c = param("cutpoints", tensor({-0.5f, 0.0f, 0.5f}), constraints::ordered_vector);
    auto p = plate("data", obs.size(0));
    sample("y", dist::OrderedLogistic(zeros({obs.size(0)}), c.unsqueeze(0).expand({obs.size(0), 3})), obs);
  };
  auto guide = [](const Tensor&) {};
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.05f}), infer::Trace_ELBO());
  for (int i = 0; i < 1500; ++i) svi.step(y);
  const auto yv = y.to_float().to_vector();
  std::vector<double> cum(4, 0.0);
  for (float v : yv) cum[static_cast<size_t>(v)] += 1.0;
  double f = 0;
  const auto got = param_store().get("cutpoints").to_vector();
  for (size_t k = 0; k < 3; ++k) {
    f += cum[k] / static_cast<double>(n);
    EXPECT_NEAR(got[k], std::log(f / (1 - f)), 2e-3) << "cutpoint " << k;
  }
  EXPECT_TRUE(param_store().constraint("cutpoints") == constraints::ordered_vector);
  param_store().clear();
}
