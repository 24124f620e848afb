// AutoDiscreteParallel (Pyro's): a learnable distribution per discrete
// latent site of the model, sampled with parallel enumeration so that
// TraceEnum_ELBO takes the exact expectation over it. With the model's
// other quantities fixed, the ELBO's optimum over a mean-field discrete
// guide is the exact posterior of each datapoint's variable (the sites are
// independent given the data), computed here in float64; training is
// noise-free (no sampled sites), so Adam reaches it to the tolerances
// stated per test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/autoguide.hpp"
#include "ppl/infer.hpp"
#include "ppl/optim.hpp"
#include "ppl/poutine.hpp"

using namespace cuvi;
using namespace cuvi::testing;

namespace {

const std::vector<float> kX = {-1.3f, 0.2f, 2.4f, 1.9f, -0.4f, 0.9f, 3.1f};
const std::vector<double> kPi = {0.2, 0.5, 0.3}, kMu = {-1.0, 0.5, 2.0};

// z_n ~ Categorical(pi), x_n ~ N(mu_{z_n}, 1).
void mixture_model() {
  auto p = plate("data", static_cast<int64_t>(kX.size()));
  Tensor z = sample("z", dist::Categorical(tensor({0.2f, 0.5f, 0.3f})));
  sample("x", dist::Normal(pick(tensor({-1.0f, 0.5f, 2.0f}), z), 1.0f), tensor(kX));
}

// p(z_n = k | x_n) in float64.
std::vector<double> responsibilities(float x) {
  std::vector<double> r(3);
  double z = 0;
  for (int k = 0; k < 3; ++k) z += r[k] = kPi[k] * std::exp(normal_lp(x, kMu[k], 1.0));
  for (double& v : r) v /= z;
  return r;
}

}  // namespace

// The probs start at the prior's (one row per datapoint) and train to each
// datapoint's posterior. Tolerance 2e-3: Adam's final oscillation at lr
// 0.02 on a smooth objective (the posterior's entries are 0.03-0.9; a
// guide that ignored the data would stay at the prior, off by > 0.1).
TEST(AutoDiscreteParallel, LocalAssignmentsTrainToTheExactPosterior) {
  fresh(1);
  infer::AutoDiscreteParallel guide(mixture_model);
  guide();
  const Tensor p0 = param_store().get("AutoDiscreteParallel.z_probs");
  ASSERT_EQ(p0.shape(), (Shape{7, 3}));
  const auto v0 = p0.to_vector();
  for (size_t n = 0; n < 7; ++n)
    for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(v0[n * 3 + k], kPi[k], 1e-6);
  infer::SVI svi(mixture_model, guide, optim::Adam({.lr = 0.02f}), infer::TraceEnum_ELBO({.max_plate_nesting = 1}));
  for (int i = 0; i < 2500; ++i) svi.step();
  const auto v = param_store().get("AutoDiscreteParallel.z_probs").to_vector();
  for (size_t n = 0; n < 7; ++n) {
    const auto r = responsibilities(kX[n]);
    for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(v[n * 3 + k], r[k], 2e-3) << "datapoint " << n << " value " << k;
  }
  // median(): each datapoint's most probable component.
  const auto m = guide.median().at("z").to_vector();
  for (size_t n = 0; n < 7; ++n) {
    const auto r = responsibilities(kX[n]);
    const int best = static_cast<int>(std::max_element(r.begin(), r.end()) - r.begin());
    EXPECT_EQ(m[n], static_cast<float>(best)) << n;
  }
}

// A global Bernoulli switch (any parameterisation of the prior: logits
// here): q(b = 1) trains to p(b = 1 | x) = sigma(logit(0.3) + sum_n [log
// N(x_n; 2, 1) - log N(x_n; 0, 1)]), to 2e-3.
TEST(AutoDiscreteParallel, GlobalBernoulliTrainsToTheExactPosterior) {
  fresh(2);
  const std::vector<float> x = {0.9f, 1.4f, 0.3f};
  auto model = [&x] {
    Tensor b = sample("b", dist::Bernoulli::from_logits(std::log(0.3f / 0.7f)));
    auto p = plate("data", 3);
    sample("x", dist::Normal(b * 2.0f, 1.0f), tensor(x));
  };
  infer::AutoDiscreteParallel guide(model);
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.02f}), infer::TraceEnum_ELBO({.max_plate_nesting = 1}));
  svi.step();
  EXPECT_NEAR(param_store().get("AutoDiscreteParallel.b_probs").item(), 0.3, 0.03);  // one step from the prior's 0.3
  for (int i = 0; i < 2000; ++i) svi.step();
  double l = std::log(0.3 / 0.7);
  for (float v : x) l += normal_lp(v, 2.0, 1.0) - normal_lp(v, 0.0, 1.0);
  const double want = 1 / (1 + std::exp(-l));
  EXPECT_NEAR(param_store().get("AutoDiscreteParallel.b_probs").item(), want, 2e-3);
  EXPECT_EQ(guide.median().at("b").item(), want > 0.5 ? 1.0f : 0.0f);
}

// Pyro's Gaussian-mixture pattern: AutoDelta for the continuous globals
// (the discrete site hidden from it), AutoDiscreteParallel for the
// assignments (only they exposed), in an AutoGuideList. Two clusters far
// apart: the MAP locations land near the cluster means (within 0.3 of
// them: 4 points each, unit noise, a N(0, 10) prior) and every point's
// assignment follows its cluster.
TEST(AutoDiscreteParallel, InAnAutoGuideListWithAutoDelta) {
  fresh(3);
  const std::vector<float> data = {-4.2f, -3.9f, -4.4f, -3.6f, 4.1f, 3.8f, 4.3f, 3.9f};
  auto model = [](const Tensor& d) {
    Tensor locs = sample("locs", dist::Normal(zeros({2}), 10.0f).to_event(1));
    auto p = plate("data", d.size(0));
    Tensor z = sample("assignment", dist::Categorical(tensor({0.5f, 0.5f})));
    sample("obs", dist::Normal(pick(locs, z), 1.0f), d);
  };
  infer::AutoGuideList<Tensor> guide;
  guide.append(infer::AutoDelta(poutine::block(model, {"assignment"}),
                                {.init_loc_fn = infer::init_to_value({{"locs", tensor({-1.0f, 1.0f})}})}));
  guide.append(infer::AutoDiscreteParallel(poutine::block(model, {}, {"assignment"})));
  const Tensor d = tensor(data);
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.1f}), infer::TraceEnum_ELBO({.max_plate_nesting = 1}));
  for (int i = 0; i < 600; ++i) svi.step(d);
  const auto locs = param_store().get("AutoDelta.locs").to_vector();
  EXPECT_NEAR(locs[0], -4.025, 0.3);
  EXPECT_NEAR(locs[1], 4.025, 0.3);
  const auto z = guide.median(d).at("assignment").to_vector();
  for (size_t n = 0; n < data.size(); ++n) EXPECT_EQ(z[n], n < 4 ? 0.0f : 1.0f) << n;
}

// Under a subsampled plate the probs param is full size [N, K]; a step
// moves only the minibatch's rows (Adam's first update is exactly 0 where
// the gradient is), and the guide's site is marked for parallel enumeration.
TEST(AutoDiscreteParallel, SubsampledPlateKeepsFullSizeParams) {
  fresh(4);
  const int64_t N = 40, B = 8;
  auto model = [](const Tensor& d) {
    auto p = plate("data", d.size(0), 8);
    Tensor z = sample("z", dist::Categorical(tensor({0.2f, 0.5f, 0.3f})));
    sample("x", dist::Normal(pick(tensor({-1.0f, 0.5f, 2.0f}), z), 1.0f), p.subsample(d));
  };
  const Tensor d = randn({N});
  infer::AutoDiscreteParallel guide(model);
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.05f}), infer::TraceEnum_ELBO({.max_plate_nesting = 1}));
  svi.step(d);
  const Tensor probs = param_store().get("AutoDiscreteParallel.z_probs");
  ASSERT_EQ(probs.shape(), (Shape{N, 3}));
  const auto v = probs.to_vector();
  int moved = 0;
  for (int64_t n = 0; n < N; ++n)
    if (std::fabs(v[n * 3] - 0.2f) > 1e-7f || std::fabs(v[n * 3 + 1] - 0.5f) > 1e-7f) ++moved;
  EXPECT_EQ(moved, B);
  EXPECT_EQ(poutine::trace(guide).get_trace(d).site("z").enumerate, "parallel");
}

TEST(AutoDiscreteParallel, RefusesContinuousAndUnsupportedSites) {
  fresh(5);
  auto continuous = [] {
    sample("loc", dist::Normal(0.0f, 1.0f));
    sample("z", dist::Bernoulli(0.5f));
  };
  infer::AutoDiscreteParallel g1(continuous);
  expect_error<ValueError>([&] { g1(); }, {"AutoDiscreteParallel", "'loc'", "continuous", "AutoGuideList"});
  auto counts = [] { sample("k", dist::Poisson(3.0f)); };
  infer::AutoDiscreteParallel g2(counts);
  expect_error<ValueError>([&] { g2(); }, {"AutoDiscreteParallel", "'k'", "Poisson", "Bernoulli, Categorical"});
}
