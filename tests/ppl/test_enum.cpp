// TraceEnum_ELBO (Pyro's parallel enumeration of discrete model sites):
// with no latent site left in the guide the loss is exactly -log p(x), the
// discrete variables summed out; the tests compare it, and its gradients,
// with float64 sums written from the model (mixtures with a local variable,
// a global variable over a plate, a global and a local one nested, a
// subsampled plate), then train Pyro's Gaussian-mixture tutorial model by
// MAP and check the errors. Runs on the default device (cpu, and cuda:0 in
// the gpu suite).
//
// Tolerances: the float32 loss sums a few dozen log-sum-exps of O(1)-O(10)
// terms; each is within a few ulps (relative 1e-7) of float64, so 1e-4
// absolute on losses of magnitude < 100 is > 10x the rounding and far below
// any wrong contraction (a missing term or a product taken in the wrong
// order changes the loss by > 0.1).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "../../examples/gmm/gmm.hpp"
#include "gradcheck.hpp"
#include "ppl/infer.hpp"
#include "ppl/optim.hpp"
#include "ppl/poutine.hpp"

using namespace cuvi;
using namespace cuvi::testing;
namespace P = cuvi::poutine;

namespace {

const std::vector<float> kX = {-1.3f, 0.2f, 2.4f, 1.9f, -0.4f, 0.9f, 3.1f};

// A global c ~ Categorical(0.35, 0.65); in the plate z_i | c ~
// Categorical(T[c]) (T's rows (0.6, 0.3, 0.1) and (0.1, 0.3, 0.6)) and x_i |
// z_i ~ N(mu_z, 1), mu = (-1, 0.8, 2.5); both discrete sites enumerated.
void nested_model(const Tensor& x) {
  const Tensor ttab = tensor({0.6f, 0.3f, 0.1f, 0.1f, 0.3f, 0.6f}, {2, 3});
  Tensor c = sample("c", dist::Categorical(tensor({0.35f, 0.65f})), Infer{"parallel"});
  auto p = plate("data", x.numel());
  // Rows of the transition table for each value of c, then the K columns.
  Shape rows = c.shape();
  rows.push_back(3);
  Tensor probs = index_select(ttab, 0, c.reshape({c.numel()})).reshape(rows);
  Tensor z = sample("z", dist::Categorical(probs), Infer{"parallel"});
  sample("x", dist::Normal(pick(tensor({-1.0f, 0.8f, 2.5f}), z), 1.0f), x);
}

// The mixture of MixtureWithALocalAssignmentIsTheExactMarginal with its
// weights, locs and scale as constants.
const std::vector<double> kW = {0.2, 0.5, 0.3}, kMu = {-1.0, 0.5, 2.0};
constexpr double kSc = 0.7;
void mixture(const Tensor& x) {
  auto p = plate("data", x.numel());
  Tensor z = sample("z", dist::Categorical(tensor({0.2f, 0.5f, 0.3f})), Infer{"parallel"});
  sample("x", dist::Normal(pick(tensor({-1.0f, 0.5f, 2.0f}), z), static_cast<float>(kSc)), x);
}
// One point's log marginal under it: log sum_k w_k N(x | mu_k, sc).
double mixture_point_lm(double x) {
  std::vector<double> t;
  for (int k = 0; k < 3; ++k) t.push_back(std::log(kW[k]) + normal_lp(x, kMu[k], kSc));
  return lse(t);
}

// A global switch s ~ Bernoulli(0.3) over the data plate, x_i ~ N(mu_s, 1)
// with mu = (-0.5, 1.5); `infer` marks s (or not, for config_enumerate).
void switch_model(const Tensor& x, const Infer& infer) {
  Tensor s = sample("s", dist::Bernoulli(0.3f), infer);
  auto p = plate("data", x.numel());
  sample("x", dist::Normal(pick(tensor({-0.5f, 1.5f}), s), 1.0f), x);
}
// Its log p(x) = log sum_s p(s) prod_i N(x_i | mu_s, 1) at x = kX.
double switch_log_marginal() {
  double l0 = std::log(0.7), l1 = std::log(0.3);
  for (float xi : kX) {
    l0 += normal_lp(xi, -0.5, 1.0);
    l1 += normal_lp(xi, 1.5, 1.0);
  }
  return lse({l0, l1});
}

// nested_model's exact quantities given x = kX: log p(x, c) for c = 0, 1,
// and for each c the posterior p(z_0 | c, x_0).
struct NestedExact {
  std::vector<double> log_c;
  std::vector<std::vector<double>> pz0;
};
NestedExact nested_exact() {
  const std::vector<double> pc = {0.35, 0.65}, mu = {-1.0, 0.8, 2.5};
  const std::vector<std::vector<double>> tm = {{0.6, 0.3, 0.1}, {0.1, 0.3, 0.6}};
  NestedExact e{std::vector<double>(2), std::vector<std::vector<double>>(2, std::vector<double>(3))};
  for (int c = 0; c < 2; ++c) {
    e.log_c[c] = std::log(pc[c]);
    for (size_t i = 0; i < kX.size(); ++i) {
      std::vector<double> t;
      for (int z = 0; z < 3; ++z) t.push_back(std::log(tm[c][z]) + normal_lp(kX[i], mu[z], 1.0));
      const double l = lse(t);
      e.log_c[c] += l;
      if (i == 0)
        for (int z = 0; z < 3; ++z) e.pz0[c][z] = std::exp(t[z] - l);
    }
  }
  return e;
}

// The loss and the surrogate's gradients of one TraceEnum_ELBO evaluation.
infer::ELBOResult evaluate(const infer::Program& model, const infer::Program& guide, infer::ELBOOptions o = {}) {
  return infer::TraceEnum_ELBO(o).compute(model, guide);
}

}  // namespace

TEST(TraceEnumELBO, MixtureWithALocalAssignmentIsTheExactMarginal) {
  fresh(1);
  const std::vector<double> w = {0.2, 0.5, 0.3}, mu = {-1.0, 0.5, 2.0};
  const double sc = 0.7;
  const int64_t n = static_cast<int64_t>(kX.size());
  const Tensor x = tensor(kX, {n});
  auto model = [&] {
    Tensor weights = param("w", tensor({0.2f, 0.5f, 0.3f}), constraints::simplex);
    Tensor locs = param("locs", tensor({-1.0f, 0.5f, 2.0f}));
    Tensor scale = param("sc", 0.7f, constraints::positive);
    auto p = plate("data", n);
    Tensor z = sample("z", dist::Categorical(weights), Infer{"parallel"});
    sample("x", dist::Normal(pick(locs, z), scale), x);
  };
  infer::ELBOResult r = evaluate(model, [] {});
  // -log p(x) and d/dmu_k = -sum_i r_ik (x_i - mu_k) / s^2 (responsibilities r).
  double want = 0;
  std::vector<double> dmu(3, 0.0);
  double dlogs = 0;  // d/d log(s) of -log p(x)
  for (float xi : kX) {
    std::vector<double> t;
    for (int k = 0; k < 3; ++k) t.push_back(std::log(w[k]) + normal_lp(xi, mu[k], sc));
    const double l = lse(t);
    want -= l;
    for (int k = 0; k < 3; ++k) {
      const double rk = std::exp(t[k] - l);
      dmu[k] -= rk * (xi - mu[k]) / (sc * sc);
      dlogs -= rk * (-1.0 + (xi - mu[k]) * (xi - mu[k]) / (sc * sc));
    }
  }
  EXPECT_NEAR(r.loss.item(), want, 1e-4);
  r.surrogate.backward();
  const std::vector<float> g = param_store().unconstrained("locs").grad().to_vector();
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(g[k], dmu[k], 1e-4) << "locs " << k;
  // The positive constraint's unconstrained coordinate is log(s).
  EXPECT_NEAR(param_store().unconstrained("sc").grad().item(), dlogs, 1e-4);
}

TEST(TraceEnumELBO, ConfigEnumerateMarksDiscreteSitesAndBernoulliEnumerates) {
  // A global switch s ~ Bernoulli(0.3) over a plate of data:
  // log p(x) = log sum_s p(s) prod_i N(x_i | mu_s, 1). config_enumerate
  // marks s (Bernoulli) and leaves the Normal site alone.
  fresh(2);
  const int64_t n = static_cast<int64_t>(kX.size());
  const Tensor x = tensor(kX, {n});
  auto model = P::config_enumerate([&] { switch_model(x, Infer{}); });
  EXPECT_NEAR(evaluate(model, [] {}).loss.item(), -switch_log_marginal(), 1e-4);
  // The enumerated value: the support along dim -(max_plate_nesting + 1).
  P::EnumMessenger em(-2);
  const Trace t = P::trace([&] {
                    HandlerScope s(&em);
                    model();
                  }).get_trace();
  EXPECT_EQ(t.site("s").enum_dim, -2);
  EXPECT_EQ(t.site("s").value.shape(), (Shape{2, 1}));
  EXPECT_EQ(t.site("s").value.to_vector(), (std::vector<float>{0.0f, 1.0f}));
  EXPECT_EQ(t.site("x").enum_dim, 0);
}

TEST(TraceEnumELBO, NestedGlobalAndLocalVariablesContractThroughThePlate) {
  // c ~ Categorical(pc) global; z_i | c ~ Categorical(T[c]) and
  // x_i | z_i ~ N(mu_z, 1) in the plate:
  // log p(x) = log sum_c pc_c prod_i sum_z T[c, z] N(x_i | mu_z, 1).
  fresh(3);
  const int64_t n = static_cast<int64_t>(kX.size());
  const Tensor x = tensor(kX, {n});
  auto model = [&] { nested_model(x); };
  EXPECT_NEAR(evaluate(model, [] {}).loss.item(), -lse(nested_exact().log_c), 1e-4);
}

TEST(TraceEnumELBO, SubsampledPlateScalesTheMinibatchMarginals) {
  // User indices pick the minibatch; the loss is -(N / B) times the sum of
  // its points' log-marginals.
  fresh(4);
  const int64_t n = static_cast<int64_t>(kX.size());
  const Tensor x = tensor(kX, {n});
  const std::vector<int64_t> idx = {5, 1, 3};
  auto model = [&] {
    auto p = Plate("data", n, tensor_i64(idx, {3}));
    Tensor z = sample("z", dist::Bernoulli(0.4f), Infer{"parallel"});
    sample("x", dist::Normal(pick(tensor({0.0f, 2.0f}), z), 1.0f), p.subsample(x));
  };
  double want = 0;
  for (int64_t i : idx)
    want -= lse({std::log(0.6) + normal_lp(kX[static_cast<size_t>(i)], 0.0, 1.0),
                 std::log(0.4) + normal_lp(kX[static_cast<size_t>(i)], 2.0, 1.0)});
  EXPECT_NEAR(evaluate(model, [] {}).loss.item(), want * static_cast<double>(n) / 3.0, 1e-4);
}

TEST(TraceEnumELBO, SitesWithoutEnumeratedParentsAreOrdinaryTerms) {
  // No enumerated site: TraceEnum_ELBO is Trace_ELBO (same draws, same loss).
  auto model = [] {
    Tensor m = sample("m", dist::Normal(0.0f, 1.0f));
    auto p = plate("data", 3);
    sample("x", dist::Normal(m, 1.0f), tensor({0.1f, -0.4f, 0.8f}));
  };
  auto guide = [] { sample("m", dist::Normal(param("q", 0.3f), 0.5f)); };
  fresh(5);
  const float a = infer::TraceEnum_ELBO().compute(model, guide).loss.item();
  fresh(5);
  const float b = infer::Trace_ELBO().compute(model, guide).loss.item();
  EXPECT_EQ(a, b);
}

TEST(TraceEnumELBO, GaussianMixtureTutorialByMap) {
  // Pyro's Gaussian mixture tutorial: data [0, 1, 10, 11, 12], K = 2,
  // weights ~ Dirichlet(0.5), scale ~ LogNormal(0, 2), locs ~ N(0, 10), each
  // point's assignment enumerated; a MAP guide (Delta at params). The MAP
  // weights are (n_k - 0.5) / (N - 1) = (0.375, 0.625) for the two
  // clusters; the locs, with nearly hard assignments at this separation,
  // are the cluster means 0.5 and 11 pulled toward 0 by the prior by
  // ~ mean / (1 + n_k * 100 / s^2) < 0.01. Deterministic (no draws).
  // The model and MAP guide of examples/gmm (cuvi gmm), locs from 0 and 10.
  fresh(6);
  const Tensor data = tensor({0.0f, 1.0f, 10.0f, 11.0f, 12.0f});
  const cuvi_examples::GMM gmm{2, tensor({0.0f, 10.0f})};
  auto model = [&] { gmm.model(data); };
  auto guide = [&] { gmm.guide(data); };
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.05f, .betas = {0.8f, 0.99f}}),
                 infer::TraceEnum_ELBO({.max_plate_nesting = 1}));
  for (int i = 0; i < 1500; ++i) svi.step();
  const std::vector<float> w = param_store().get("weights_map").to_vector();
  const std::vector<float> locs = param_store().get("locs_map").to_vector();
  EXPECT_NEAR(w[0], 0.375, 0.01);
  EXPECT_NEAR(w[1], 0.625, 0.01);
  EXPECT_NEAR(locs[0], 0.5, 0.05);
  EXPECT_NEAR(locs[1], 11.0, 0.05);
}

TEST(TraceEnumELBO, ErrorsNameTheSites) {
  fresh(7);
  const Tensor x = tensor(kX, {static_cast<int64_t>(kX.size())});
  // Enumerated in the guide: supported now (test_guide_enum.cpp); here
  // q = p, so the exact ELBO is 0.
  auto guide_enum = [] { sample("z", dist::Bernoulli(0.5f), Infer{"parallel"}); };
  auto model_z = [] { sample("z", dist::Bernoulli(0.5f)); };
  EXPECT_NEAR(infer::TraceEnum_ELBO().compute(model_z, guide_enum).loss.item(), 0.0f, 1e-6);
  // A continuous site marked for enumeration.
  auto model_normal = [] { sample("m", dist::Normal(0.0f, 1.0f), Infer{"parallel"}); };
  expect_error<ValueError>([&] { evaluate(model_normal, [] {}); }, {"'m'", "Normal", "finite support"});
  // A global enumerated variable over a subsampled plate: scales 1 and N/B.
  auto model_scales = [&] {
    Tensor s = sample("s", dist::Bernoulli(0.3f), Infer{"parallel"});
    auto p = plate("data", static_cast<int64_t>(kX.size()), 3);
    sample("x", dist::Normal(pick(tensor({0.0f, 1.0f}), s), 1.0f), p.subsample(x));
  };
  expect_error<ValueError>([&] { evaluate(model_scales, [] {}); }, {"share one scale", "'s'", "'x'"});
  expect_error<ValueError>([] { sample("q", dist::Bernoulli(0.5f), Infer{"sequential"}); }, {"'q'", "parallel"});
}

TEST(InferDiscrete, MapAssignmentsAreTheLargestResponsibilities) {
  fresh(8);
  const Tensor x = tensor(kX, {static_cast<int64_t>(kX.size())});
  const Trace tr = P::trace(infer::infer_discrete(mixture, -2, 0)).get_trace(x);
  const std::vector<int64_t> z = tr.site("z").value.to_vector_i64();
  ASSERT_EQ(z.size(), kX.size());
  EXPECT_EQ(tr.site("z").value.shape(), (Shape{static_cast<int64_t>(kX.size())}));
  for (size_t i = 0; i < kX.size(); ++i) {
    int best = 0;
    double best_lp = -INFINITY;
    for (int k = 0; k < 3; ++k) {
      const double lp = std::log(kW[k]) + normal_lp(kX[i], kMu[k], kSc);
      if (lp > best_lp) {
        best_lp = lp;
        best = k;
      }
    }
    EXPECT_EQ(z[i], best) << "point " << i;
  }
}

TEST(InferDiscrete, DrawsFollowTheExactPosteriorOfNestedVariables) {
  // The nested model of NestedGlobalAndLocalVariablesContractThroughThePlate:
  // over M = 3000 runs the frequency of c = 1 and of each value of z_0 must
  // match p(c | x) and p(z_0 | x) = sum_c p(c | x) p(z_0 | c, x_0). Each
  // frequency has standard error sqrt(p (1 - p) / M) <= 0.0092; the
  // tolerance is 4 standard errors of each (a draw from the prior instead,
  // or z_0 drawn ignoring c, is off by > 0.1 here).
  fresh(9);
  const int64_t n = static_cast<int64_t>(kX.size());
  const Tensor x = tensor(kX, {n});
  auto model = [&] { nested_model(x); };
  const NestedExact e = nested_exact();
  const auto& log_c = e.log_c;
  const auto& pz0 = e.pz0;
  const double p1 = std::exp(log_c[1] - lse(log_c));
  std::vector<double> want_z0(3);
  for (int z = 0; z < 3; ++z) want_z0[z] = (1 - p1) * pz0[0][z] + p1 * pz0[1][z];
  const int m = 3000;
  int c1 = 0;
  std::vector<int> z0(3, 0);
  auto sampler = infer::infer_discrete(model, -2, 1);
  for (int r = 0; r < m; ++r) {
    const Trace tr = P::trace(sampler).get_trace();
    c1 += static_cast<int>(tr.site("c").value.item_i64());
    ++z0[static_cast<size_t>(tr.site("z").value.to_vector_i64()[0])];
  }
  auto tol = [m](double p) { return 4.0 * std::sqrt(p * (1 - p) / m); };
  EXPECT_NEAR(c1 / double(m), p1, tol(p1));
  for (int z = 0; z < 3; ++z) EXPECT_NEAR(z0[z] / double(m), want_z0[z], tol(want_z0[z])) << "z_0 = " << z;
}

TEST(InferDiscrete, LatentSitesDownstreamOfEnumerationNeedValues) {
  fresh(10);
  auto model = [] {
    Tensor s = sample("s", dist::Bernoulli(0.5f), Infer{"parallel"});
    sample("y", dist::Normal(s, 1.0f));  // latent, depends on s
  };
  expect_error<ValueError>([&] { P::trace(infer::infer_discrete(model, -1, 0)).get_trace(); },
                           {"infer_discrete", "'y'", "not enumerated"});
}

TEST(TraceEnumELBO, SiblingPlatesUnderACrossedPlateContract) {
  // Users u (plate U, dim -2) with an enumerated type z_u, items i (plate
  // I, dim -1) with an enumerated kind y_i; ratings r_ui in U x I depend on
  // z_u only, item observations o_i on y_i:
  // log p = sum_u log sum_z p(z) prod_i N(r_ui | a_z, 1)
  //       + sum_i log sum_y p(y) N(o_i | b_y, 1).
  fresh(11);
  const int64_t nu = 3, ni = 4;
  const std::vector<float> r = {0.1f, 0.5f, -0.2f, 0.3f, 2.1f, 1.8f, 2.4f, 1.9f, 0.0f, 1.0f, 2.0f, 0.5f};
  const std::vector<float> o = {-1.0f, 1.2f, 0.7f, -0.3f};
  const std::vector<double> pz = {0.4, 0.6}, a = {0.0, 2.0}, py = {0.7, 0.3}, b = {-1.0, 1.0};
  auto model = [&] {
    auto users = plate("U", nu, 0, -2);
    auto items = plate("I", ni, 0, -1);
    users.exit();
    Tensor y = sample("y", dist::Bernoulli(0.3f), Infer{"parallel"});
    sample("o", dist::Normal(pick(tensor({-1.0f, 1.0f}), y), 1.0f), tensor(o, {ni}));
    items.exit();
    auto in_u = users.scope();
    Tensor z = sample("z", dist::Bernoulli(0.6f).expand({nu, 1}), Infer{"parallel"});
    auto in_i = items.scope();
    sample("r", dist::Normal(pick(tensor({0.0f, 2.0f}), z), 1.0f), tensor(r, {nu, ni}));
  };
  double want = 0;
  for (int64_t u = 0; u < nu; ++u) {
    std::vector<double> t;
    for (int z = 0; z < 2; ++z) {
      double acc = std::log(pz[z]);
      for (int64_t i = 0; i < ni; ++i) acc += normal_lp(r[u * ni + i], a[z], 1.0);
      t.push_back(acc);
    }
    want += lse(t);
  }
  for (int64_t i = 0; i < ni; ++i)
    want += lse({std::log(py[0]) + normal_lp(o[i], b[0], 1.0), std::log(py[1]) + normal_lp(o[i], b[1], 1.0)});
  EXPECT_NEAR(evaluate(model, [] {}, {.max_plate_nesting = 2}).loss.item(), -want, 1e-4);
}

TEST(TraceEnumELBO, VariablesFromCrossedPlatesInOneFactorAreAnError) {
  // z_u in U and y_i in I both reach r_ui: not tree-structured (Pyro
  // refuses it too); an error naming the sites, not a hang.
  fresh(12);
  auto model = [] {
    auto users = plate("U", 3, 0, -2);
    Tensor z = sample("z", dist::Bernoulli(0.5f).expand({3, 1}), Infer{"parallel"});
    users.exit();
    auto items = plate("I", 4, 0, -1);
    Tensor y = sample("y", dist::Bernoulli(0.5f), Infer{"parallel"});
    auto in_u = users.scope();
    sample("r", dist::Normal(z + y, 1.0f), zeros({3, 4}));
  };
  expect_error<ValueError>([&] { evaluate(model, [] {}, {.max_plate_nesting = 2}); },
                           {"'r'", "'z'", "'y'", "tree-structured"});
}

TEST(TraceEnumELBO, MaskedDatapointsDropOutExactly) {
  // poutine::mask on a datapoint's assignment and observation: the loss is
  // the marginal of the other points (the enumerated prior stays whole, so
  // the masked variable sums to 1), and a zero-probability component there
  // (log_prob -inf under the mask) stays finite.
  fresh(13);
  const int64_t n = static_cast<int64_t>(kX.size());
  const Tensor x = tensor(kX, {n});
  std::vector<float> keep(static_cast<size_t>(n), 1.0f);
  keep[2] = keep[5] = 0.0f;
  const Tensor mask = tensor(keep, {n});
  auto model = [&] { P::mask([&] { mixture(x); }, mask)(); };
  double want = 0;
  for (int64_t i = 0; i < n; ++i)
    if (keep[static_cast<size_t>(i)] != 0.0f) want -= mixture_point_lm(kX[static_cast<size_t>(i)]);
  EXPECT_NEAR(evaluate(model, [] {}).loss.item(), want, 1e-4);
  // Component 2 impossible for point 2 only (masked): a Bernoulli emission
  // with probability 0 there.
  auto model0 = [&] {
    auto p = plate("data", n);
    P::mask(
        [&] {
          Tensor z = sample("z", dist::Bernoulli(0.5f), Infer{"parallel"});
          sample("b", dist::Bernoulli(z * 0.0f + (1.0f - z) * 0.5f), full({n}, 1.0f));
        },
        mask)();
  };
  const float l0 = evaluate(model0, [] {}).loss.item();
  EXPECT_TRUE(std::isfinite(l0));
  EXPECT_NEAR(l0, -static_cast<double>(n - 2) * std::log(0.25), 1e-4);
}

TEST(TraceEnumELBO, BatchDimsReachingTheEnumerationDimsAreAnError) {
  // Three categorical rows without a plate: their batch dim would be the
  // enumeration dim (max_plate_nesting 0).
  fresh(14);
  auto model = [] { sample("z", dist::Categorical(full({3, 3}, 1.0f)), Infer{"parallel"}); };
  expect_error<ValueError>([&] { evaluate(model, [] {}, {.max_plate_nesting = 0}); },
                           {"'z'", "batch shape", "plate"});
}

TEST(TraceEnumELBO, AutoDeltaLeavesEnumeratedSitesToTheLoss) {
  // The tutorial's guide is AutoDelta over the model's globals: an
  // autoguide skips the sites marked for enumeration (Pyro's tutorial hides
  // them with block; both work), and the MAP fit is the same as the
  // hand-written guide's (GaussianMixtureTutorialByMap).
  fresh(15);
  const Tensor data = tensor({0.0f, 1.0f, 10.0f, 11.0f, 12.0f});
  const cuvi_examples::GMM gmm{2, Tensor()};  // its model only (AutoDelta is the guide)
  auto model = [&gmm](const Tensor& x) { gmm.model(x); };
  // Components start apart (the prior's median would put both at 0, a
  // symmetric point the fit cannot leave).
  infer::AutoDelta guide(model, {.init_loc_fn = infer::init_to_value({{"locs", tensor({0.0f, 12.0f})},
                                                                      {"scale", tensor(2.0f)}})});
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.05f, .betas = {0.8f, 0.99f}}),
                 infer::TraceEnum_ELBO({.max_plate_nesting = 1}));
  for (int i = 0; i < 1500; ++i) svi.step(data);
  const auto med = guide.median();
  EXPECT_FALSE(med.count("assignment"));
  const std::vector<float> w = med.at("weights").to_vector(), locs = med.at("locs").to_vector();
  EXPECT_NEAR(w[0], 0.375, 0.01);
  EXPECT_NEAR(locs[0], 0.5, 0.05);
  EXPECT_NEAR(locs[1], 11.0, 0.05);
  // An unmarked discrete site is refused by an autoguide, unless block hides
  // it from the guide (Pyro's tutorial's way).
  auto unmarked = [](const Tensor& x) {
    Tensor w = sample("weights", dist::Dirichlet(full({2}, 0.5f)));
    auto p = plate("data", x.size(0));
    Tensor a = sample("assignment", dist::Categorical(w));
    sample("obs", dist::Normal(a.to_float(), 1.0f), x);
  };
  infer::AutoDelta plain(unmarked, {.prefix = "plain"});
  expect_error<ValueError>([&] { P::trace(plain).get_trace(data); }, {"'assignment'", "discrete"});
  infer::AutoDelta blocked(P::block(unmarked, {"assignment"}), {.prefix = "blocked"});
  const Trace bt = P::trace(blocked).get_trace(data);
  EXPECT_TRUE(bt.contains("weights"));
  EXPECT_FALSE(bt.contains("assignment"));
}

TEST(TraceEnumELBO, VectorizedParticlesAverageTheExactMarginals) {
  // Without guide latents every particle's ELBO is the exact marginal: four
  // particles at once give it again (for the local mixture and the global
  // switch, whose variable is now per particle).
  fresh(16);
  const int64_t n = static_cast<int64_t>(kX.size());
  const Tensor x = tensor(kX, {n});
  auto model = [&] { mixture(x); };
  double want = 0;
  for (float xi : kX) want -= mixture_point_lm(xi);
  const infer::ELBOOptions vec{.num_particles = 4, .vectorize_particles = true, .max_plate_nesting = 1};
  EXPECT_NEAR(evaluate(model, [] {}, vec).loss.item(), want, 1e-4);
  auto model_switch = [&] { switch_model(x, Infer{"parallel"}); };
  EXPECT_NEAR(evaluate(model_switch, [] {}, vec).loss.item(), -switch_log_marginal(), 1e-4);
  // With a reparameterised guide latent m ~ q = N(0.2, 0.5), the estimate
  // is unbiased for the ELBO E_q[log N(m | 0, 1) + sum_i log sum_z p(z)
  // N(x_i | m + z, 1) - log q(m)], computed here by quadrature (trapezoid
  // over +-8 sd, 4001 points: error far below 1e-6). The mean of M = 300
  // vectorised 8-particle estimates must be within 4 standard errors of it
  // (SE = sample sd / sqrt(M), 0.022 on this seed).
  auto guide = [] { sample("m", dist::Normal(param("q", 0.2f), 0.5f)); };
  auto model_m = [&] {
    Tensor m = sample("m", dist::Normal(0.0f, 1.0f));
    auto p = plate("data", n);
    Tensor z = sample("z", dist::Bernoulli(0.4f), Infer{"parallel"});
    sample("x", dist::Normal(m + z, 1.0f), x);
  };
  double elbo = 0;
  {
    const int pts = 4001;
    const double lo = 0.2 - 8 * 0.5, hi = 0.2 + 8 * 0.5, h = (hi - lo) / (pts - 1);
    for (int j = 0; j < pts; ++j) {
      const double m = lo + j * h;
      const double lq = normal_lp(m, 0.2, 0.5);
      double f = normal_lp(m, 0.0, 1.0) - lq;
      for (float xi : kX) f += lse({std::log(0.6) + normal_lp(xi, m, 1.0), std::log(0.4) + normal_lp(xi, m + 1, 1.0)});
      elbo += (j == 0 || j == pts - 1 ? 0.5 : 1.0) * h * std::exp(lq) * f;
    }
  }
  const infer::ELBOOptions vec8{.num_particles = 8, .vectorize_particles = true, .max_plate_nesting = 1};
  const int m_runs = 300;
  double sum_l = 0, sum_l2 = 0;
  for (int r = 0; r < m_runs; ++r) {
    const double l = evaluate(model_m, guide, vec8).loss.item();
    sum_l += l;
    sum_l2 += l * l;
  }
  const double mean_l = sum_l / m_runs;
  const double se = std::sqrt((sum_l2 / m_runs - mean_l * mean_l) / (m_runs - 1));
  EXPECT_NEAR(mean_l, -elbo, 4 * se) << "SE " << se;
}
