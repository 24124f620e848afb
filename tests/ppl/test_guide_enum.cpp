// TraceEnum_ELBO with guide-side enumeration (Pyro's
// infer={"enumerate": "parallel"} on guide sites): a discrete guide variable
// takes every value at once, and the ELBO is its exact expectation under q,
//   ELBO = sum_y q(y) [ log sum_{model-enumerated e} p(x, y, z, e) - log q(y) - log q(z | y) ]
// with z drawn once per value of y. The tests compare losses and gradients
// with float64 sums written from the models: a global variable, one per
// datapoint, a guide variable above a model-enumerated one, continuous
// variables drawn per value (Monte Carlo, within standard errors), training
// to the exact posterior, and the errors.
//
// Tolerances for exact cases: the float32 loss sums a few dozen terms of
// O(1)-O(10), each within a few ulps of float64; 1e-4 relative to the
// loss (plus 1e-4) is > 10x that rounding and far below a wrong weight
// (dropping q from one term changes the loss by > 0.1).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/infer.hpp"
#include "ppl/optim.hpp"
#include "ppl/poutine.hpp"

using namespace cuvi;
using namespace cuvi::testing;

namespace {

const std::vector<float> kX = {-1.3f, 0.2f, 2.4f, 1.9f, -0.4f, 0.9f, 3.1f};
const std::vector<double> kPi = {0.2, 0.5, 0.3}, kMu = {-1.0, 0.5, 2.0};

Tensor pi_t() { return tensor({0.2f, 0.5f, 0.3f}); }
Tensor mu_t() { return tensor({-1.0f, 0.5f, 2.0f}); }

std::vector<double> softmax(const std::vector<float>& l) {
  double m = -INFINITY, z = 0;
  for (float v : l) m = std::max(m, static_cast<double>(v));
  std::vector<double> p;
  for (float v : l) p.push_back(std::exp(v - m));
  for (double v : p) z += v;
  for (double& v : p) v /= z;
  return p;
}

// dELBO/dl_k for ELBO = sum_y q_y (c_y - log q_y), q = softmax(l):
// sum_y q_y (delta_yk - q_k) (c_y - log q_y - 1).
std::vector<double> elbo_logit_grad(const std::vector<double>& q, const std::vector<double>& c) {
  std::vector<double> g(q.size(), 0.0);
  for (size_t k = 0; k < q.size(); ++k)
    for (size_t y = 0; y < q.size(); ++y)
      g[k] += q[y] * ((y == k ? 1.0 : 0.0) - q[k]) * (c[y] - std::log(q[y]) - 1.0);
  return g;
}

// One evaluation: loss and the surrogate's backward.
float evaluate(const infer::ELBO& elbo, const infer::Program& model, const infer::Program& guide) {
  const infer::ELBOResult r = elbo.compute(model, guide);
  r.surrogate.backward();
  return r.loss.item();
}

// y ~ Categorical(pi) over the whole data set, x_i ~ N(mu_y, 1).
void global_model() {
  Tensor y = sample("y", dist::Categorical(pi_t()));
  auto p = plate("data", static_cast<int64_t>(kX.size()));
  sample("x", dist::Normal(pick(mu_t(), y), 1.0f), tensor(kX));
}
// c_y = log pi_y + sum_i log N(x_i; mu_y, 1).
std::vector<double> global_costs() {
  std::vector<double> c;
  for (int y = 0; y < 3; ++y) {
    double v = std::log(kPi[y]);
    for (float x : kX) v += normal_lp(x, kMu[y], 1.0);
    c.push_back(v);
  }
  return c;
}

}  // namespace

// A global discrete variable: the loss is -sum_y q_y (c_y - log q_y) and
// the gradient with respect to q's logits its exact derivative.
TEST(GuideEnumeration, GlobalVariableIsExact) {
  fresh(1);
  const std::vector<float> l0 = {0.3f, -0.5f, 1.0f};
  auto guide = [&] {
    Tensor l = param("q_logits", tensor(l0));
    sample("y", dist::Categorical::from_logits(l), Infer{"parallel"});
  };
  const float loss = evaluate(infer::TraceEnum_ELBO(), global_model, guide);
  const auto q = softmax(l0);
  const auto c = global_costs();
  double elbo = 0;
  for (int y = 0; y < 3; ++y) elbo += q[y] * (c[y] - std::log(q[y]));
  EXPECT_NEAR(loss, -elbo, 1e-4 * (1 + std::fabs(elbo)));
  const auto g = param_store().unconstrained("q_logits").grad().to_vector();
  const auto want = elbo_logit_grad(q, c);
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(g[k], -want[k], 1e-4 * (1 + std::fabs(want[k]))) << k;
}

// One assignment per datapoint (a local variable in the data plate) with
// its own logits: loss -sum_i sum_k q_ik (c_ik - log q_ik); at the exact
// responsibilities it is -log p(x).
TEST(GuideEnumeration, LocalVariablesAreExact) {
  fresh(2);
  const int64_t n = static_cast<int64_t>(kX.size());
  std::mt19937 gen(3);
  const std::vector<float> l0 = random_values(n * 3, gen, -1.0f, 1.0f);
  auto model = [] {
    auto p = plate("data", static_cast<int64_t>(kX.size()));
    Tensor z = sample("z", dist::Categorical(pi_t()));
    sample("x", dist::Normal(pick(mu_t(), z), 0.7f), tensor(kX));
  };
  auto guide_at = [&](const std::vector<float>& init) {
    return [init, n] {
      auto p = plate("data", n);
      Tensor l = param("assign_logits", tensor(init, {n, 3}));
      sample("z", dist::Categorical::from_logits(l), Infer{"parallel"});
    };
  };
  const float loss = evaluate(infer::TraceEnum_ELBO(), model, guide_at(l0));
  double elbo = 0, logp = 0;
  std::vector<double> want_grad;
  std::vector<float> exact_logits;
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<float> li(l0.begin() + 3 * i, l0.begin() + 3 * i + 3);
    const auto q = softmax(li);
    std::vector<double> c;
    for (int k = 0; k < 3; ++k) c.push_back(std::log(kPi[k]) + normal_lp(kX[i], kMu[k], 0.7));
    for (int k = 0; k < 3; ++k) elbo += q[k] * (c[k] - std::log(q[k]));
    for (double v : elbo_logit_grad(q, c)) want_grad.push_back(v);
    logp += lse(c);
    for (double v : c) exact_logits.push_back(static_cast<float>(v));
  }
  EXPECT_NEAR(loss, -elbo, 1e-4 * (1 + std::fabs(elbo)));
  const auto g = param_store().unconstrained("assign_logits").grad().to_vector();
  for (size_t k = 0; k < g.size(); ++k) EXPECT_NEAR(g[k], -want_grad[k], 1e-4 * (1 + std::fabs(want_grad[k]))) << k;
  // The exact posterior's logits (the joint's log terms): ELBO = log p(x).
  param_store().clear();
  const float at_posterior = evaluate(infer::TraceEnum_ELBO(), model, guide_at(exact_logits));
  EXPECT_NEAR(at_posterior, -logp, 1e-4 * (1 + std::fabs(logp)));
}

// A guide variable c over the plate, a model-enumerated z_i | c inside it:
// loss -sum_c q_c [log p(c) - log q_c + sum_i log sum_z T[c, z] N(x_i; mu_z, 1)].
TEST(GuideEnumeration, AboveModelEnumeration) {
  fresh(4);
  const std::vector<float> l0 = {0.4f, -0.2f};
  const std::vector<double> pc = {0.35, 0.65}, T = {0.6, 0.3, 0.1, 0.1, 0.3, 0.6}, mz = {-1.0, 0.8, 2.5};
  auto model = [] {
    const Tensor ttab = tensor({0.6f, 0.3f, 0.1f, 0.1f, 0.3f, 0.6f}, {2, 3});
    Tensor c = sample("c", dist::Categorical(tensor({0.35f, 0.65f})), Infer{"parallel"});
    auto p = plate("data", static_cast<int64_t>(kX.size()));
    Shape rows = c.shape();
    rows.push_back(3);
    Tensor probs = index_select(ttab, 0, c.to_int64().reshape({c.numel()})).reshape(rows);
    Tensor z = sample("z", dist::Categorical(probs), Infer{"parallel"});
    sample("x", dist::Normal(pick(tensor({-1.0f, 0.8f, 2.5f}), z), 1.0f), tensor(kX));
  };
  auto guide = [&] {
    Tensor l = param("c_logits", tensor(l0));
    sample("c", dist::Categorical::from_logits(l), Infer{"parallel"});
  };
  const float loss = evaluate(infer::TraceEnum_ELBO({.max_plate_nesting = 1}), model, guide);
  const auto q = softmax(l0);
  std::vector<double> cost;
  for (int c = 0; c < 2; ++c) {
    double v = std::log(pc[c]);
    for (float x : kX) {
      std::vector<double> t;
      for (int z = 0; z < 3; ++z) t.push_back(std::log(T[3 * c + z]) + normal_lp(x, mz[z], 1.0));
      v += lse(t);
    }
    cost.push_back(v);
  }
  double elbo = 0;
  for (int c = 0; c < 2; ++c) elbo += q[c] * (cost[c] - std::log(q[c]));
  EXPECT_NEAR(loss, -elbo, 1e-4 * (1 + std::fabs(elbo)));
  const auto g = param_store().unconstrained("c_logits").grad().to_vector();
  const auto want = elbo_logit_grad(q, cost);
  for (int k = 0; k < 2; ++k) EXPECT_NEAR(g[k], -want[k], 1e-4 * (1 + std::fabs(want[k]))) << k;
}

namespace {

// y ~ Categorical(0.4, 0.6), z | y ~ N(m_y, 1), x ~ N(z, 0.5) observed at
// 1.3; the guide enumerates y (logits ly) and draws z | y ~ N(a_y, s_y)
// for both values at once.
const std::vector<double> kPy = {0.4, 0.6}, kM = {-1.0, 2.0};
constexpr double kObs = 1.3, kSx = 0.5;
void branch_model() {
  Tensor y = sample("y", dist::Categorical(tensor({0.4f, 0.6f})));
  Tensor z = sample("z", dist::Normal(pick(tensor({-1.0f, 2.0f}), y), 1.0f));
  sample("x", dist::Normal(z, static_cast<float>(kSx)), tensor({static_cast<float>(kObs)}).reshape({}));
}
const std::vector<float> kLy = {0.2f, -0.3f}, kA = {0.1f, 1.6f}, kS = {0.8f, 0.4f};
void branch_guide() {
  Tensor l = param("ly", tensor(kLy));
  Tensor y = sample("y", dist::Categorical::from_logits(l), Infer{"parallel"});
  Tensor a = param("a", tensor(kA));
  Tensor s = param("s", tensor(kS), constraints::positive);
  sample("z", dist::Normal(pick(a, y), pick(s, y)));
}
// C_y = log p(y) + E_{z ~ N(a_y, s_y)}[log N(z; m_y, 1) + log N(x; z, 0.5) - log N(z; a_y, s_y)].
std::vector<double> branch_costs() {
  std::vector<double> c;
  for (int y = 0; y < 2; ++y) {
    const double a = kA[y], s = kS[y];
    const double prior = -0.5 * std::log(2 * M_PI) - 0.5 * ((a - kM[y]) * (a - kM[y]) + s * s);
    const double lik = -0.5 * std::log(2 * M_PI * kSx * kSx) - ((kObs - a) * (kObs - a) + s * s) / (2 * kSx * kSx);
    const double entropy = 0.5 * std::log(2 * M_PI * M_E * s * s);
    c.push_back(std::log(kPy[y]) + prior + lik + entropy);
  }
  return c;
}

}  // namespace

// Continuous z drawn once per value of y: the loss and its gradients are
// Monte Carlo estimates of the closed forms above. 4000 evaluations of 8
// vectorised particles; each mean within 4 standard errors (from the
// evaluations' sample variance) of the exact value: the loss, d/dlogits
// (the weights' gradient), and d/da (pathwise, within each branch, weighted
// by q_y: dELBO/da_y = q_y ((m_y - a_y) + (x - a_y) / 0.25)).
TEST(GuideEnumeration, ContinuousVariablesPerValue) {
  fresh(5);
  const auto q = softmax(kLy);
  const auto c = branch_costs();
  double elbo = 0;
  for (int y = 0; y < 2; ++y) elbo += q[y] * (c[y] - std::log(q[y]));
  const auto gl = elbo_logit_grad(q, c);
  std::vector<double> ga;
  for (int y = 0; y < 2; ++y) ga.push_back(q[y] * ((kM[y] - kA[y]) + (kObs - kA[y]) / (kSx * kSx)));

  const infer::TraceEnum_ELBO elbo_fn({.num_particles = 8, .vectorize_particles = true, .max_plate_nesting = 0});
  std::vector<double> losses, dl0, dl1, da0, da1;
  for (int i = 0; i < 4000; ++i) {
    param_store().clear();
    losses.push_back(evaluate(elbo_fn, branch_model, branch_guide));
    const auto g1 = param_store().unconstrained("ly").grad().to_vector();
    const auto g2 = param_store().unconstrained("a").grad().to_vector();
    dl0.push_back(g1[0]);
    dl1.push_back(g1[1]);
    da0.push_back(g2[0]);
    da1.push_back(g2[1]);
  }
  const auto check = [](const std::vector<double>& draws, double want, const char* what) {
    const McEstimate e = mc_estimate(draws);
    if (std::getenv("CUVI_TEST_VERBOSE"))
      std::printf("    %-10s %+.5f want %+.5f (se %.5f)\n", what, e.mean, want, e.se);
    EXPECT_NEAR(e.mean, want, 4 * e.se) << what;
    EXPECT_LT(e.se, 0.05 * (1 + std::fabs(want))) << what << ": the check has power";
  };
  check(losses, -elbo, "loss");
  check(dl0, -gl[0], "dlogit0");
  check(dl1, -gl[1], "dlogit1");
  check(da0, -ga[0], "da0");
  check(da1, -ga[1], "da1");
}

// Training the guide of GlobalVariableIsExact by SVI (exact gradients, no
// noise) reaches the exact posterior p(y | x) = softmax(c): probabilities
// within 1e-3.
TEST(GuideEnumeration, TrainsToTheExactPosterior) {
  fresh(6);
  auto guide = [] {
    Tensor l = param("q_logits", zeros({3}));
    sample("y", dist::Categorical::from_logits(l), Infer{"parallel"});
  };
  infer::SVI svi(global_model, guide, optim::Adam({.lr = 0.05f}), infer::TraceEnum_ELBO());
  for (int i = 0; i < 1500; ++i) svi.step();
  const auto c = global_costs();
  const std::vector<float> cf(c.begin(), c.end());
  const auto want = softmax(cf);
  const auto got = softmax(param_store().get("q_logits").to_vector());
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(got[k], want[k], 1e-3) << k;
}

TEST(GuideEnumeration, Errors) {
  fresh(7);
  // A non-reparameterised guide site beside an enumerated one.
  auto guide_score = [] {
    sample("y", dist::Categorical(tensor({0.5f, 0.3f, 0.2f})), Infer{"parallel"});
    sample("w", dist::Poisson(2.0f));
  };
  auto model_score = [] {
    Tensor y = sample("y", dist::Categorical(pi_t()));
    sample("w", dist::Poisson(3.0f));
    sample("x", dist::Normal(pick(mu_t(), y), 1.0f), tensor({0.5f}).reshape({}));
  };
  expect_error<ValueError>([&] { infer::TraceEnum_ELBO().compute(model_score, guide_score); },
                           {"guide site 'w'", "reparameterised", "guide-side enumeration"});
  // A model-enumerated global variable meeting guide-enumerated local ones:
  // the expectation over every combination does not factorise.
  auto model_bad = [] {
    Tensor g = sample("g", dist::Categorical(tensor({0.5f, 0.5f})), Infer{"parallel"});
    auto p = plate("data", static_cast<int64_t>(kX.size()));
    Tensor z = sample("z", dist::Categorical(pi_t()));
    sample("x", dist::Normal(pick(mu_t(), z) + g.to_float(), 1.0f), tensor(kX));
  };
  auto guide_bad = [] {
    auto p = plate("data", static_cast<int64_t>(kX.size()));
    sample("z", dist::Categorical(tensor({0.2f, 0.3f, 0.5f})), Infer{"parallel"});
  };
  expect_error<ValueError>([&] { infer::TraceEnum_ELBO({.max_plate_nesting = 1}).compute(model_bad, guide_bad); },
                           {"TraceEnum_ELBO", "guide-enumerated"});
}

// A global guide variable over a subsampled plate: the prior's term has
// scale 1, the likelihood's N/B; both are linear in the expectation, so
// they may differ (model-enumerated sites still share one scale). Each
// step's loss is unbiased for the full data's exact loss: the mean of
// 4000 evaluations (minibatches of 3 of the 7 points) within 4 standard
// errors of -sum_y q_y (c_y - log q_y).
TEST(GuideEnumeration, GlobalVariableOverASubsampledPlate) {
  fresh(8);
  const std::vector<float> l0 = {0.3f, -0.5f, 1.0f};
  auto model = [] {
    Tensor y = sample("y", dist::Categorical(pi_t()));
    auto p = plate("data", static_cast<int64_t>(kX.size()), 3);
    sample("x", dist::Normal(pick(mu_t(), y), 1.0f), p.subsample(tensor(kX)));
  };
  auto guide = [&] {
    Tensor l = param("q_logits", tensor(l0));
    sample("y", dist::Categorical::from_logits(l), Infer{"parallel"});
  };
  const infer::TraceEnum_ELBO elbo({.max_plate_nesting = 1});
  std::vector<double> losses;
  for (int i = 0; i < 4000; ++i) losses.push_back(elbo.compute(model, guide).loss.item());
  const auto q = softmax(l0);
  const auto c = global_costs();
  double want = 0;
  for (int y = 0; y < 3; ++y) want -= q[y] * (c[y] - std::log(q[y]));
  const McEstimate e = mc_estimate(losses);
  if (std::getenv("CUVI_TEST_VERBOSE")) std::printf("    loss %.4f want %.4f (se %.4f)\n", e.mean, want, e.se);
  EXPECT_NEAR(e.mean, want, 4 * e.se);
  EXPECT_LT(e.se, 0.05 * std::fabs(want));
}
