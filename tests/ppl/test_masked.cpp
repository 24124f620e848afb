// Distribution::mask (Pyro's fn.mask / MaskedDistribution): log_prob kept
// where the mask is 1 and 0 where it is 0, broadcast batch shapes,
// gradients only through kept terms, mask(false) evaluating nothing, and a
// model with masked (missing) observations giving the ELBO of the model
// that leaves them out. Runs on the default device (cpu; cuda:0 in the gpu
// suite).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/infer.hpp"
#include "ppl/optim.hpp"
#include "ppl/poutine.hpp"

using namespace cuvi;
using namespace cuvi::testing;

TEST(Masked, LogProbKeptWhereMaskIsOneAndBatchShapesBroadcast) {
  set_seed(1);
  const Tensor loc = tensor({0.5f, -1.0f, 2.0f});
  const Tensor m = tensor({1.0f, 0.0f}, {2, 1});  // broadcast with the batch [3]: [2, 3]
  const dist::Dist d = dist::Normal(loc, 1.5f).mask(m);
  EXPECT_EQ(d.batch_shape(), (Shape{2, 3}));
  EXPECT_EQ(d.name(), "Masked(Normal)");
  const Tensor x = tensor({0.1f, 0.2f, 0.3f, 1.1f, 1.2f, 1.3f}, {2, 3});
  const auto lp = d.log_prob(x).to_vector();
  const auto base = dist::Normal(loc, 1.5f).log_prob(x).to_vector();
  ASSERT_EQ(lp.size(), 6u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(lp[i], base[i]);
  for (size_t i = 3; i < 6; ++i) EXPECT_EQ(lp[i], 0.0f);
  // Draws have the broadcast batch shape; to_event composes.
  EXPECT_EQ(d.sample().shape(), (Shape{2, 3}));
  const dist::Dist e = d.to_event(1);
  EXPECT_EQ(e.batch_shape(), (Shape{2}));
  const auto le = e.log_prob(x).to_vector();
  EXPECT_FLOAT_EQ(le[0], base[0] + base[1] + base[2]);
  EXPECT_EQ(le[1], 0.0f);
  // int64 masks work as well.
  const auto li = dist::Normal(loc, 1.5f).mask(tensor_i64({0, 1, 1}, {3})).log_prob(x).to_vector();
  EXPECT_EQ(li[0], 0.0f);
  EXPECT_EQ(li[4], base[4]);
}

TEST(Masked, GradientsFlowOnlyThroughKeptTerms) {
  const Tensor m = tensor({1.0f, 0.0f, 1.0f, 0.0f});
  const Tensor x = tensor({0.3f, 9.0f, -0.4f, 2.0f});
  Tensor loc = tensor({0.1f, 0.2f, 0.3f, 0.4f}).requires_grad_();
  Tensor scale = tensor({1.0f, 0.5f, 2.0f, 1.5f}).requires_grad_();
  sum(dist::Normal(loc, scale).mask(m).log_prob(x)).backward();
  Tensor loc2 = tensor({0.1f, 0.2f, 0.3f, 0.4f}).requires_grad_();
  Tensor scale2 = tensor({1.0f, 0.5f, 2.0f, 1.5f}).requires_grad_();
  sum(dist::Normal(loc2, scale2).log_prob(x) * m).backward();
  EXPECT_EQ(loc.grad().to_vector(), loc2.grad().to_vector());
  EXPECT_EQ(scale.grad().to_vector(), scale2.grad().to_vector());
  EXPECT_EQ(loc.grad().to_vector()[1], 0.0f);
  // The fused term of a site: coef * the masked sum.
  const float s = dist::Normal(0.0f, 1.0f).mask(m).log_prob_sum(x, -2.0f).item();
  const float want = -2.0f * sum(dist::Normal(0.0f, 1.0f).log_prob(x) * m).item();
  EXPECT_NEAR(s, want, 1e-6f * std::fabs(want));
}

TEST(Masked, BoolMasks) {
  const Tensor x = tensor({0.3f, -0.2f});
  const dist::Dist keep = dist::Normal(0.0f, 1.0f).expand({2}).mask(true);
  EXPECT_EQ(keep.log_prob(x).to_vector(), dist::Normal(0.0f, 1.0f).log_prob(x).to_vector());
  EXPECT_EQ(keep.log_prob_sum(x, 1.0f).item(), dist::Normal(0.0f, 1.0f).expand({2}).log_prob_sum(x, 1.0f).item());
  // mask(false): zeros of the broadcast shape, and (as Pyro) the base is not
  // evaluated, so a value outside the support is not an error there.
  const dist::Dist drop = dist::Exponential(1.0f).expand({2}).mask(false);
  const Tensor bad = tensor({-1.0f, 2.0f});
  EXPECT_EQ(drop.log_prob(bad).to_vector(), (std::vector<float>{0.0f, 0.0f}));
  EXPECT_EQ(drop.log_prob_sum(bad, 3.0f).item(), 0.0f);
}

TEST(Masked, TensorMasksStillValidateEveryValueAndBadShapesAreNamed) {
  // As Pyro: the base's log_prob (and its validation) runs on every element.
  // On a GPU the check is deferred to the next read: read the whole result.
  expect_error<ValueError>(
      [] { (void)dist::Exponential(1.0f).mask(tensor({0.0f, 1.0f})).log_prob(tensor({-1.0f, 2.0f})).to_vector(); },
      {"Exponential", "-1"});
  expect_error<ShapeError>([] { dist::Normal(zeros({3}), 1.0f).mask(ones({4})); }, {"mask", "[3]", "[4]"});
}

TEST(Masked, MissingObservationsGiveTheElboOfTheModelWithoutThem) {
  // Normal-Normal with six observations, two of them missing (mask 0): with
  // one guide and one seed the loss equals that of the model given only the
  // four observed values (the same draw of mu; the sums differ only in
  // order, so within float rounding of the terms' magnitude).
  const std::vector<float> y = {0.5f, 7.0f, 1.5f, -0.3f, -9.0f, 1.1f};
  const std::vector<float> keep = {1, 0, 1, 1, 0, 1};
  std::vector<float> y_obs;
  for (size_t i = 0; i < y.size(); ++i)
    if (keep[i] != 0.0f) y_obs.push_back(y[i]);
  auto guide = [](const Tensor&) {
    Tensor a = param("a", 0.2f);
    Tensor b = param("b", 0.7f, constraints::positive);
    sample("mu", dist::Normal(a, b));
  };
  auto masked_model = [&](const Tensor& data) {
    Tensor mu = sample("mu", dist::Normal(0.0f, 2.0f));
    auto p = plate("data", static_cast<int64_t>(y.size()));
    sample("obs", dist::Normal(mu, 1.0f).mask(tensor(keep)), data);
  };
  auto short_model = [&](const Tensor& data) {
    Tensor mu = sample("mu", dist::Normal(0.0f, 2.0f));
    auto p = plate("data", data.size(0));
    sample("obs", dist::Normal(mu, 1.0f), data);
  };
  param_store().clear();
  set_seed(5);
  infer::SVI a(masked_model, guide, optim::SGD({.lr = 0.01f}), infer::Trace_ELBO({.num_particles = 4}));
  const float la = a.evaluate_loss(tensor(y)).item();
  param_store().clear();
  set_seed(5);
  infer::SVI b(short_model, guide, optim::SGD({.lr = 0.01f}), infer::Trace_ELBO({.num_particles = 4}));
  const float lb = b.evaluate_loss(tensor(y_obs)).item();
  EXPECT_NEAR(la, lb, 1e-5f * (std::fabs(lb) + 10.0f));
}
