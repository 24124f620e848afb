// Tests for the ELBO extensions in ppl/infer.hpp and the schedules in
// ppl/optim.hpp: Trace_ELBO's partial Rao-Blackwellisation of score-function
// terms, TraceGraph_ELBO with decaying-average baselines, vectorised
// particles, StepLR / ExponentialLR, and exact resume from a saved store.
// Every statistical tolerance below states the standard error it is a
// multiple of.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <unistd.h>
#include <vector>

#include "fakes.hpp"
#include "gradcheck.hpp"
#include "ppl/infer.hpp"

using namespace cuvi;
using cuvi::testing::NonReparamNormal;
using cuvi::testing::sq_err;
using cuvi::testing::NormalNormal;

namespace {

void reset(uint64_t seed) {
  param_store().clear();
  set_seed(seed);
}

struct Moments {
  std::vector<double> mean, var;  // per element; var: sample variance of one draw
};

// ---------------------------------------------------------------------------
// (a) Rao-Blackwellisation. Plate of K = 20 independent latents,
// z_i ~ N(0, 1), x_i ~ N(z_i, 1); guide z_i ~ N(loc_i, 1) without rsample.
// Per draw, the gradient of loc_i is (z_i - loc_i) * cost_i, where cost_i is
// either element i's own terms (Rao-Blackwellised) or the whole particle
// loss (all K elements' noise). Exact expected gradient: 2 loc_i - x_i.

constexpr int kK = 20;

Moments loc_grad_moments(const infer::ELBO& elbo, const Tensor& data, int draws) {
  auto model = [&] {
    auto p = plate("data", kK);
    Tensor z = sample("z", dist::Normal(0.0f, 1.0f));
    sample("x", dist::Normal(z, 1.0f), data);
  };
  auto guide = [&] {
    Tensor loc = param("loc", zeros({kK}));
    auto p = plate("data", kK);
    sample("z", NonReparamNormal(loc, 1.0f));
  };
  std::vector<double> s1(kK, 0.0), s2(kK, 0.0);
  for (int k = 0; k < draws; ++k) {
    infer::ELBOResult r = elbo.compute(model, guide);
    r.surrogate.backward();
    const auto g = param_store().unconstrained("loc").grad().to_vector();
    param_store().unconstrained("loc").zero_grad();
    for (int i = 0; i < kK; ++i) {
      s1[i] += g[i];
      s2[i] += double(g[i]) * g[i];
    }
  }
  Moments m;
  for (int i = 0; i < kK; ++i) {
    const double mu = s1[i] / draws;
    m.mean.push_back(mu);
    m.var.push_back((s2[i] - draws * mu * mu) / (draws - 1));
  }
  return m;
}

TEST(RaoBlackwellTraceELBO, LowerVarianceSameMean) {
  reset(100);
  std::vector<float> xs;
  for (int i = 0; i < kK; ++i) xs.push_back(-1.0f + 0.1f * static_cast<float>(i));
  const Tensor data = tensor(xs);
  const int draws = 2000;
  const Moments rb = loc_grad_moments(infer::Trace_ELBO(), data, draws);
  const Moments whole = loc_grad_moments(infer::Trace_ELBO({.rao_blackwellize = false}), data, draws);
  double var_rb = 0, var_whole = 0;
  for (int i = 0; i < kK; ++i) {
    var_rb += rb.var[i] / kK;
    var_whole += whole.var[i] / kK;
    // Both unbiased: each mean within 5 SE of the other and of the exact
    // gradient 2 * 0 - x_i (SE = sqrt(var / draws), per estimator).
    const double se_rb = std::sqrt(rb.var[i] / draws), se_whole = std::sqrt(whole.var[i] / draws);
    const double se_diff = std::sqrt(se_rb * se_rb + se_whole * se_whole);
    EXPECT_NEAR(rb.mean[i], whole.mean[i], 5 * se_diff) << "element " << i;
    EXPECT_NEAR(rb.mean[i], -xs[i], 5 * se_rb) << "element " << i;
    EXPECT_NEAR(whole.mean[i], -xs[i], 5 * se_whole) << "element " << i;
  }
  // The whole-loss cost carries the other 19 elements' costs (each ~1.9,
  // so the whole cost is ~38 against element i's own ~1.9): the variance of
  // (z_i - loc_i) * cost is ~75x larger (observed: ~15 vs ~1150). Sample
  // variances of these heavy-ish tailed draws over 2000 draws are good to
  // ~10-20%, so a factor 4 is a wide margin.
  EXPECT_LT(4 * var_rb, var_whole) << "RB " << var_rb << " whole " << var_whole;
  // TraceGraph_ELBO: the same downstream cost here (element i's own terms)
  // minus the decaying-average baseline: still unbiased (the baseline used
  // is the one from before the draw), and lower in variance.
  const Moments tg = loc_grad_moments(infer::TraceGraph_ELBO(), data, draws);
  double var_tg = 0;
  for (int i = 0; i < kK; ++i) {
    var_tg += tg.var[i] / kK;
    EXPECT_NEAR(tg.mean[i], -xs[i], 5 * std::sqrt(tg.var[i] / draws)) << "element " << i;
  }
  EXPECT_LT(var_tg, var_rb) << "TraceGraph " << var_tg << " RB " << var_rb;
}

// The RB cost of a global site (no plates) is the whole loss, so both modes
// give bit-identical surrogates for it.
TEST(RaoBlackwellTraceELBO, GlobalSiteMatchesWholeCost) {
  auto model = [] {
    Tensor mu = sample("mu", dist::Normal(0.0f, 1.0f));
    auto p = plate("data", 3);
    sample("x", dist::Normal(mu, 1.0f), tensor({0.1f, 0.4f, -0.2f}));
  };
  auto guide = [] { sample("mu", NonReparamNormal(param("m", 0.3f), 1.0f)); };
  reset(101);
  const float a = infer::Trace_ELBO().compute(model, guide).surrogate.item();
  reset(101);
  const float b = infer::Trace_ELBO({.rao_blackwellize = false}).compute(model, guide).surrogate.item();
  EXPECT_EQ(a, b);
}

// ---------------------------------------------------------------------------
// (b) TraceGraph_ELBO on Pyro's non-reparameterised Normal-Normal test
// (same model, guide, initialisation, optimizer, steps and tolerance 0.05
// as InferenceNormalNormal.ScoreFunctionNonReparameterized).


TEST(TraceGraphELBO, NormalNormalNonReparameterizedConverges) {
  reset(102);
  NormalNormal nn;
  auto model = nn.model();
  auto guide = nn.guide<NonReparamNormal>();
  infer::TraceGraph_ELBO elbo;
  EXPECT_FLOAT_EQ(elbo.graph_options().baseline_beta, 0.9f);
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.0015f, .betas = {0.97f, 0.999f}}), elbo);
  for (int k = 0; k < 15000; ++k) svi.step();
  const float mu_err = sq_err(param_store().get("mu_q"), nn.post_mu);
  const float sig_err = sq_err(param_store().get("log_sig_q"), nn.post_log_sig);
  EXPECT_LE(mu_err, 0.05f) << param_store().get("mu_q").str();
  EXPECT_LE(sig_err, 0.05f) << param_store().get("log_sig_q").str();
  // And moved toward the posterior (initial errors 0.036 and 0.039).
  EXPECT_LT(mu_err, 0.5f * 2 * 0.134f * 0.134f);
  EXPECT_LT(sig_err, 0.5f * 2 * 0.14f * 0.14f);
}

// A chain a -> b -> x of non-reparameterised sites: b's downstream cost
// leaves out a's terms (they come before b in both programs), and the
// gradient stays unbiased, whichever order the guide samples in.
// loss(m_a, m_b) = E[a^2/2 + (b - a)^2/2 + (x - b)^2/2] + c with a ~ N(m_a, 1),
// b ~ N(m_b, 1), x = 1: d/dm_a = 2 m_a - m_b, d/dm_b = 2 m_b - m_a - x.
TEST(TraceGraphELBO, ChainGradientUnbiased) {
  for (bool guide_b_first : {false, true}) {
    reset(108);
    auto model = [] {
      Tensor a = sample("a", dist::Normal(0.0f, 1.0f));
      Tensor b = sample("b", dist::Normal(a, 1.0f));
      sample("x", dist::Normal(b, 1.0f), tensor(1.0f));
    };
    auto guide = [guide_b_first] {
      Tensor ma = param("m_a", 0.3f), mb = param("m_b", -0.2f);
      if (guide_b_first) sample("b", NonReparamNormal(mb, 1.0f));
      sample("a", NonReparamNormal(ma, 1.0f));
      if (!guide_b_first) sample("b", NonReparamNormal(mb, 1.0f));
    };
    infer::TraceGraph_ELBO elbo;
    const int n = 2000;
    double s[2] = {0, 0}, s2[2] = {0, 0};
    for (int k = 0; k < n; ++k) {
      infer::ELBOResult r = elbo.compute(model, guide);
      r.surrogate.backward();
      const char* names[2] = {"m_a", "m_b"};
      for (int j = 0; j < 2; ++j) {
        const double g = param_store().unconstrained(names[j]).grad().item();
        param_store().unconstrained(names[j]).zero_grad();
        s[j] += g;
        s2[j] += g * g;
      }
    }
    const double want[2] = {2 * 0.3 + 0.2, 2 * -0.2 - 0.3 - 1.0};
    for (int j = 0; j < 2; ++j) {
      const double m = s[j] / n, se = std::sqrt((s2[j] - n * m * m) / (n - 1) / n);
      EXPECT_NEAR(m, want[j], 5 * se) << "param " << j << ", guide_b_first " << guide_b_first << ", SE " << se;
    }
  }
}

// The baseline is a decaying average of the site's cost, updated by
// training steps only (not by evaluate_loss), starting from zero.
TEST(TraceGraphELBO, DecayingAverageBaseline) {
  reset(103);
  auto model = [] {
    Tensor mu = sample("mu", dist::Normal(0.0f, 1.0f));
    sample("x", dist::Normal(mu, 1.0f), tensor(0.5f));
  };
  auto guide = [] { sample("mu", NonReparamNormal(param("m", 0.0f), 1.0f)); };
  // Directly: two evaluations with grad on; the baseline after each is
  // 0.1 * cost_1 and then 0.9 * 0.1 * cost_1 + 0.1 * cost_2, where a cost
  // is the (global) site's whole particle loss.
  infer::TraceGraph_ELBO elbo;
  EXPECT_FALSE(elbo.baseline("mu").defined());
  const float c1 = elbo.compute(model, guide).loss.item();
  ASSERT_TRUE(elbo.baseline("mu").defined());
  EXPECT_NEAR(elbo.baseline("mu").item(), 0.1f * c1, 1e-5f * (1 + std::fabs(c1)));
  const float c2 = elbo.compute(model, guide).loss.item();
  EXPECT_NEAR(elbo.baseline("mu").item(), 0.09f * c1 + 0.1f * c2, 1e-5f * (1 + std::fabs(c1) + std::fabs(c2)));
  {
    NoGradGuard ng;
    const float before = elbo.baseline("mu").item();
    elbo.compute(model, guide);
    EXPECT_EQ(elbo.baseline("mu").item(), before);
  }
  // As in Pyro the baseline lives in the param store: a clone sees the same
  // one, and clearing the store starts it over.
  auto copy = elbo.clone();
  elbo.compute(model, guide);
  EXPECT_EQ(static_cast<const infer::TraceGraph_ELBO&>(*copy).baseline("mu").item(), elbo.baseline("mu").item());
  EXPECT_TRUE(param_store().contains(infer::TraceGraph_ELBO::baseline_param_name("mu")));
  param_store().clear();
  EXPECT_FALSE(elbo.baseline("mu").defined());
}

// Baselines are saved and loaded with the params and the optimizer state,
// so an interrupted TraceGraph run resumes exactly: the losses after a
// save/load round trip equal those of the uninterrupted run, bit for bit.
TEST(TraceGraphELBO, BaselineResumesExactlyThroughParamStore) {
  auto model = [] {
    Tensor mu = sample("mu", dist::Normal(0.0f, 1.0f));
    auto p = plate("data", 3);
    sample("x", dist::Normal(mu, 1.0f), tensor({0.5f, 1.0f, -0.2f}));
  };
  auto guide = [] { sample("mu", NonReparamNormal(param("m", 0.0f), param("s", 1.0f, constraints::positive))); };
  const std::string path = ::testing::TempDir() + "cuvi_tracegraph_resume_" + std::to_string(::getpid()) + ".bin";
  auto run = [&](bool interrupt) {
    reset(104);
    infer::SVI svi(model, guide, optim::Adam({.lr = 0.05f}), infer::TraceGraph_ELBO());
    std::vector<float> losses;
    for (int i = 0; i < 10; ++i) losses.push_back(svi.step().item());
    if (interrupt) {
      const OptimizerState state = svi.optimizer().state();
      param_store().save(path, &state);
      const RngState rng = get_rng_state();
      param_store().clear();
      set_seed(999);
      infer::SVI fresh_svi(model, guide, optim::Adam({.lr = 0.05f}), infer::TraceGraph_ELBO());
      OptimizerState st;
      param_store().load(path, &st);
      fresh_svi.optimizer().load_state(st);
      EXPECT_TRUE(infer::TraceGraph_ELBO().baseline("mu").defined());
      set_rng_state(rng);
      for (int i = 0; i < 10; ++i) losses.push_back(fresh_svi.step().item());
    } else {
      for (int i = 0; i < 10; ++i) losses.push_back(svi.step().item());
    }
    return losses;
  };
  const std::vector<float> straight = run(false);
  const std::vector<float> resumed = run(true);
  EXPECT_EQ(straight, resumed);
  std::remove(path.c_str());
}

// A step that fails after the baseline was updated puts the old one back.
TEST(TraceGraphELBO, FailedStepRestoresBaseline) {
  reset(105);
  Tensor obs = tensor(0.5f);
  auto model = [&] {
    Tensor mu = sample("mu", dist::Normal(0.0f, 1.0f));
    sample("x", dist::Normal(mu, 1.0f), obs);
  };
  auto guide = [] { sample("mu", NonReparamNormal(param("m", 0.0f), 1.0f)); };
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.05f}), infer::TraceGraph_ELBO(), {.check_finite = true});
  for (int i = 0; i < 3; ++i) svi.step();
  const float before = infer::TraceGraph_ELBO().baseline("mu").item();
  const float m_before = param_store().get("m").item();
  obs = tensor(std::numeric_limits<float>::infinity());
  EXPECT_THROW(svi.step(), ValueError);
  EXPECT_EQ(infer::TraceGraph_ELBO().baseline("mu").item(), before);
  EXPECT_EQ(param_store().get("m").item(), m_before);
}

// ---------------------------------------------------------------------------
// (c) Vectorised particles on Bernoulli-Beta (as InferenceBernoulliBeta):
// Beta(1, 1) prior, data [0, 1, 1, 1], posterior Beta(4, 2); guide Beta
// with log-parameters started at the posterior + 0.17 / - 0.143; tolerance
// 0.08 on each log parameter (Pyro's prec).

void bernoulli_beta(int num_particles, bool vectorize) {
  const Tensor data = tensor({0.0f, 1.0f, 1.0f, 1.0f});
  const float log_a_n = std::log(4.0f), log_b_n = std::log(2.0f);
  auto model = [&] {
    Tensor p_lat = sample("p_latent", dist::Beta(1.0f, 1.0f));
    auto p = plate("data", 4);
    sample("obs", dist::Bernoulli(p_lat), data);
  };
  auto guide = [&] {
    Tensor a = param("alpha_q_log", tensor(log_a_n + 0.17f));
    Tensor b = param("beta_q_log", tensor(log_b_n - 0.143f));
    sample("p_latent", dist::Beta(exp(a), exp(b)));
  };
  infer::Trace_ELBO elbo({.num_particles = num_particles, .vectorize_particles = vectorize});
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.001f, .betas = {0.97f, 0.999f}}), elbo);
  for (int k = 0; k < 10000; ++k) svi.step();
  const float ea = std::fabs(param_store().get("alpha_q_log").item() - log_a_n);
  const float eb = std::fabs(param_store().get("beta_q_log").item() - log_b_n);
  EXPECT_LE(ea, 0.08f) << num_particles << " particles, vectorize " << vectorize;
  EXPECT_LE(eb, 0.08f) << num_particles << " particles, vectorize " << vectorize;
}

TEST(VectorizedParticles, BernoulliBetaTwoParticles) {
  reset(104);
  bernoulli_beta(2, true);
}

TEST(VectorizedParticles, BernoulliBetaTenParticles) {
  reset(105);
  bernoulli_beta(10, true);
}

TEST(VectorizedParticles, LossMatchesSequentialInExpectation) {
  reset(106);
  const Tensor data = tensor({0.0f, 1.0f, 1.0f, 1.0f});
  Shape seen_shape;
  auto model = [&] {
    Tensor p_lat = sample("p_latent", dist::Beta(1.0f, 1.0f));
    auto p = plate("data", 4);
    sample("obs", dist::Bernoulli(p_lat), data);
  };
  auto guide = [&] {
    Tensor a = param("a", 3.0f, constraints::positive);
    Tensor b = param("b", 2.5f, constraints::positive);
    seen_shape = sample("p_latent", dist::Beta(a, b)).shape();
  };
  infer::Trace_ELBO vec({.num_particles = 10, .vectorize_particles = true});
  infer::Trace_ELBO seq({.num_particles = 10});
  // max_plate_nesting inferred from one run (the "data" plate: 1), so the
  // particle plate sits at dim -2: the latent is drawn with shape [10, 1].
  EXPECT_EQ(vec.inferred_max_plate_nesting(), -1);
  vec.compute(model, guide);
  EXPECT_EQ(vec.inferred_max_plate_nesting(), 1);
  EXPECT_EQ(seen_shape, (Shape{10, 1}));
  // Inferring it does not consume draws: the same seed gives the same loss
  // as with max_plate_nesting given.
  set_seed(7);
  const float l_inferred = infer::Trace_ELBO({.num_particles = 10, .vectorize_particles = true})
                               .compute(model, guide).loss.item();
  set_seed(7);
  const float l_given =
      infer::Trace_ELBO({.num_particles = 10, .vectorize_particles = true, .max_plate_nesting = 1})
          .compute(model, guide).loss.item();
  EXPECT_EQ(l_inferred, l_given);
  // Both estimate the same -ELBO: compare means over n evaluations; the
  // tolerance is 5 standard errors of the difference of the two means.
  const int n = 1000;
  double sv = 0, sv2 = 0, ss = 0, ss2 = 0;
  NoGradGuard ng;
  for (int k = 0; k < n; ++k) {
    const double v = vec.compute(model, guide).loss.item();
    const double s = seq.compute(model, guide).loss.item();
    sv += v;
    sv2 += v * v;
    ss += s;
    ss2 += s * s;
  }
  const double mv = sv / n, ms = ss / n;
  const double var_v = (sv2 - n * mv * mv) / (n - 1), var_s = (ss2 - n * ms * ms) / (n - 1);
  const double se = std::sqrt(var_v / n + var_s / n);
  EXPECT_GT(se, 0.0);
  EXPECT_NEAR(mv, ms, 5 * se) << "vectorised " << mv << " sequential " << ms << " SE " << se;
  // Averaging 10 particles divides the single-particle variance by ~10 in
  // both; the two variances agree within sampling error (a factor 1.5 is
  // ~6 SE of a variance estimated from 1000 draws).
  EXPECT_LT(var_v, 1.5 * var_s);
  EXPECT_LT(var_s, 1.5 * var_v);
}

// Vectorised score-function particles: each particle's cost stays its own.
TEST(VectorizedParticles, ScoreFunctionGradientMatchesSequential) {
  reset(107);
  auto model = [] {
    Tensor mu = sample("mu", dist::Normal(0.0f, 1.0f));
    auto p = plate("data", 2);
    sample("x", dist::Normal(mu, 1.0f), tensor({0.5f, 1.5f}));
  };
  auto guide = [] { sample("mu", NonReparamNormal(param("m", 0.0f), 1.0f)); };
  // Exact: loss(m) = E[log q - log p] = m^2/2 + sum_i (m - x_i)^2/2 + c,
  // so d/dm at 0 = -(0.5 + 1.5) = -2.
  auto grad_mean = [&](const infer::ELBO& e, int n, double& var) {
    double s = 0, s2 = 0;
    for (int k = 0; k < n; ++k) {
      infer::ELBOResult r = e.compute(model, guide);
      r.surrogate.backward();
      const double g = param_store().unconstrained("m").grad().item();
      param_store().unconstrained("m").zero_grad();
      s += g;
      s2 += g * g;
    }
    const double m = s / n;
    var = (s2 - n * m * m) / (n - 1);
    return m;
  };
  double vv = 0, vs = 0;
  const int n = 1000;
  const double gv = grad_mean(infer::Trace_ELBO({.num_particles = 10, .vectorize_particles = true}), n, vv);
  const double gs = grad_mean(infer::Trace_ELBO({.num_particles = 10}), n, vs);
  // 5 standard errors of each mean (SE = sqrt(var / n)).
  EXPECT_NEAR(gv, -2.0, 5 * std::sqrt(vv / n));
  EXPECT_NEAR(gs, -2.0, 5 * std::sqrt(vs / n));
  // Per-particle costs: the vectorised estimator's variance is that of the
  // mean of 10 independent single-particle estimators, like the sequential
  // one (a whole-batch cost would inflate it ~10x). Factor 1.5: ~6 SE.
  EXPECT_LT(vv, 1.5 * vs);
}

// ---------------------------------------------------------------------------
// (d) Schedules.

TEST(LRSchedule, StepLRSequence) {
  optim::StepLR s(optim::SGD({.lr = 0.1f}), {.step_size = 3, .gamma = 0.5f});
  EXPECT_EQ(s.name(), "StepLR(SGD)");
  const double want[] = {1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125};
  for (int e = 0; e < 10; ++e) {
    EXPECT_EQ(s.epoch(), e);
    EXPECT_DOUBLE_EQ(s.factor(), want[e]) << "epoch " << e;
    EXPECT_FLOAT_EQ(s.optimizer().lr_scale(), static_cast<float>(want[e])) << "epoch " << e;
    s.scheduler_step();
  }
  EXPECT_THROW(optim::StepLR(optim::SGD(), {.step_size = 0}), ValueError);
}

TEST(LRSchedule, ExponentialLRSequenceDrivesTheUpdate) {
  reset(110);
  optim::ExponentialLR s(optim::SGD({.lr = 0.1f}), {.gamma = 0.9f});
  EXPECT_EQ(s.name(), "ExponentialLR(SGD)");
  Tensor p = tensor({1.0f, 2.0f}).detach();
  p.requires_grad_(true);
  const optim::NamedParams ps{{"p", p}};
  for (int e = 0; e < 6; ++e) {
    EXPECT_DOUBLE_EQ(s.factor(), std::pow(double(0.9f), e));
    // Gradient 1 per element: SGD moves each element by lr * factor.
    const auto before = p.to_vector();
    sum(p).backward();
    s.step(ps);
    p.zero_grad();
    const auto after = p.to_vector();
    for (size_t i = 0; i < 2; ++i)
      EXPECT_NEAR(before[i] - after[i], 0.1 * std::pow(0.9, e), 1e-6) << "epoch " << e;
    s.scheduler_step();
  }
  // clone() is independent; state() carries the epoch and load_state restores it.
  auto c = s.clone();
  s.scheduler_step();
  EXPECT_EQ(static_cast<optim::LRScheduler&>(*c).epoch(), 6);
  EXPECT_EQ(s.epoch(), 7);
  const OptimizerState st = s.state();
  EXPECT_EQ(st.optimizer, "SGD");
  optim::ExponentialLR fresh(optim::SGD({.lr = 0.1f}), {.gamma = 0.9f});
  fresh.load_state(st);
  EXPECT_EQ(fresh.epoch(), 7);
  EXPECT_FLOAT_EQ(fresh.optimizer().lr_scale(), static_cast<float>(std::pow(0.9, 7)));
  EXPECT_THROW(optim::ExponentialLR(optim::SGD(), {.gamma = 0.0f}), ValueError);
}

TEST(LRSchedule, MultiStepLRSequence) {
  optim::MultiStepLR s(optim::Adam({.lr = 0.01f}), {.milestones = {2, 5}, .gamma = 0.1f});
  EXPECT_EQ(s.name(), "MultiStepLR(Adam)");
  const double g = 0.1f;  // gamma as the float it is stored as
  const double want[] = {1, 1, g, g, g, g * g, g * g};
  for (int e = 0; e < 7; ++e) {
    EXPECT_DOUBLE_EQ(s.factor(), want[e]) << "epoch " << e;
    EXPECT_FLOAT_EQ(s.optimizer().lr_scale(), static_cast<float>(want[e])) << "epoch " << e;
    s.scheduler_step();
  }
  EXPECT_THROW(optim::MultiStepLR(optim::SGD(), {.milestones = {3, 3}}), ValueError);
  EXPECT_THROW(optim::MultiStepLR(optim::SGD(), {.milestones = {0}}), ValueError);
  EXPECT_THROW(optim::MultiStepLR(optim::SGD(), {.milestones = {1}, .gamma = -1.0f}), ValueError);
}

TEST(LRSchedule, LambdaLRCosineAndBadFactors) {
  // Cosine annealing over 10 epochs down to a tenth, written as a lambda.
  auto cosine = [](int64_t e) { return 0.1 + 0.9 * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(std::min<int64_t>(e, 10)) / 10.0)); };
  optim::LambdaLR s(optim::SGD({.lr = 0.5f}), cosine);
  EXPECT_EQ(s.name(), "LambdaLR(SGD)");
  for (int e = 0; e < 12; ++e) {
    EXPECT_DOUBLE_EQ(s.factor(), cosine(e)) << e;
    EXPECT_FLOAT_EQ(s.optimizer().lr_scale(), static_cast<float>(cosine(e))) << e;
    s.scheduler_step();
  }
  // A factor that is not finite and positive is refused, naming the epoch,
  // and the schedule stays where it was.
  optim::LambdaLR bad(optim::SGD({.lr = 0.5f}), [](int64_t e) { return e < 2 ? 1.0 : 0.0; });
  bad.scheduler_step();
  try {
    bad.scheduler_step();
    ADD_FAILURE() << "expected ValueError";
  } catch (const ValueError& err) {
    EXPECT_NE(std::string(err.what()).find("epoch 2"), std::string::npos) << err.what();
  }
  EXPECT_EQ(bad.epoch(), 1);
  EXPECT_FLOAT_EQ(bad.optimizer().lr_scale(), 1.0f);
  // load_state checks the factor at the loaded epoch before changing anything.
  OptimizerState st = bad.state();
  st.scalars[optim::LRScheduler::kStateKey]["epoch"] = 3.0;
  EXPECT_THROW(bad.load_state(st), ValueError);
  EXPECT_EQ(bad.epoch(), 1);
}

// ---------------------------------------------------------------------------
// (e) Exact resume: N steps, save store + optimizer state, M more steps;
// a fresh SVI that loads the file and runs the same M steps from the same
// generator state ends bit-identical.

TEST(Resume, SaveLoadContinuesBitIdentically) {
  reset(120);
  const Tensor data = tensor({0.5f, 1.0f, 1.5f, -0.3f});
  auto model = [&] {
    Tensor mu = sample("mu", dist::Normal(0.0f, 1.0f));
    Tensor s = sample("s", dist::Normal(0.0f, 1.0f));
    auto p = plate("data", 4);
    sample("obs", dist::Normal(mu, exp(s * 0.1f)), data);
  };
  auto guide = [&] {
    Tensor loc = param("loc", 0.3f);
    Tensor sc = param("scale", 0.8f, constraints::positive);
    Tensor m = param("m_s", 0.1f);
    sample("mu", dist::Normal(loc, sc));
    sample("s", NonReparamNormal(m, 0.5f));  // a score-function site as well
  };
  const auto make_opt = [] {
    return optim::StepLR(optim::ClippedAdam({.lr = 0.02f, .lrd = 0.999f}), {.step_size = 5, .gamma = 0.7f});
  };
  const int N = 12, M = 9;
  const std::string path = ::testing::TempDir() + "cuvi_resume_" + std::to_string(::getpid()) + ".bin";
  auto run_steps = [&](auto& svi, int first, int count) {
    for (int k = first; k < first + count; ++k) {
      svi.step();
      if ((k + 1) % 4 == 0) dynamic_cast<optim::LRScheduler&>(svi.optimizer()).scheduler_step();
    }
  };

  infer::SVI svi(model, guide, make_opt(), infer::Trace_ELBO());
  run_steps(svi, 0, N);
  const OptimizerState state = svi.optimizer().state();
  param_store().save(path, &state);
  const RngState rng = get_rng_state();
  run_steps(svi, N, M);
  std::map<std::string, std::vector<float>> want;
  for (const auto& n : param_store().names()) want[n] = param_store().unconstrained(n).to_vector();
  // Copies: state() hands out the live buffers.
  const OptimizerState want_st = svi.optimizer().state();
  std::map<std::string, std::map<std::string, std::vector<float>>> want_buf;
  for (const auto& [n, bufs] : want_st.tensors)
    for (const auto& [b, t] : bufs) want_buf[n][b] = t.to_vector();

  param_store().clear();
  set_seed(999);  // anything: the generator state is restored below
  infer::SVI svi2(model, guide, make_opt(), infer::Trace_ELBO());
  OptimizerState st;
  param_store().load(path, &st);
  svi2.optimizer().load_state(st);
  EXPECT_EQ(dynamic_cast<optim::LRScheduler&>(svi2.optimizer()).epoch(), N / 4);
  set_rng_state(rng);
  run_steps(svi2, N, M);

  auto check = [&](auto& s, const char* what) {
    ASSERT_EQ(param_store().names().size(), want.size()) << what;
    for (const auto& [n, v] : want) EXPECT_EQ(param_store().unconstrained(n).to_vector(), v) << what << ": " << n;
    const OptimizerState got_st = s.optimizer().state();
    EXPECT_EQ(got_st.scalars, want_st.scalars) << what;
    ASSERT_EQ(got_st.tensors.size(), want_buf.size()) << what;
    for (const auto& [n, bufs] : want_buf)
      for (const auto& [b, v] : bufs)
        EXPECT_EQ(got_st.tensors.at(n).at(b).to_vector(), v) << what << ": " << n << "." << b;
  };
  check(svi2, "fresh SVI");

  // The first SVI rewound in place from the same file: load replaces every
  // leaf by a new object while the optimizer's slots (keyed by name) are
  // reloaded. (`state` itself shares the live buffers, so only the file
  // holds the step-N snapshot.)
  OptimizerState st1;
  param_store().load(path, &st1);
  std::remove(path.c_str());
  svi.optimizer().load_state(st1);
  set_rng_state(rng);
  run_steps(svi, N, M);
  check(svi, "same SVI reloaded");
}

}  // namespace

namespace {

// A value outside a distribution's support in the middle of training: with
// check_finite the step throws (on a GPU at the step's synchronisation,
// before the update, not at some later one), naming the distribution and
// the site, and leaves the params and the optimizer state as they were.
TEST(SVI, CheckFiniteRaisesValidationBeforeTheUpdate) {
  reset(106);
  Tensor counts = tensor({3.0f, 1.0f, 4.0f});
  auto model = [&] {
    Tensor rate = sample("rate", dist::Gamma(2.0f, 1.0f));
    auto p = plate("data", 3);
    sample("obs", dist::Poisson(rate), counts);
  };
  auto guide = [] {
    sample("rate", dist::Gamma(param("a", 2.0f, constraints::positive), param("b", 1.0f, constraints::positive)));
  };
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.05f}), infer::Trace_ELBO(), {.check_finite = true});
  for (int i = 0; i < 3; ++i) svi.step();
  const auto a0 = param_store().unconstrained("a").to_vector(), b0 = param_store().unconstrained("b").to_vector();
  const OptimizerState st0 = svi.optimizer().state();
  counts = tensor({3.0f, -1.0f, 4.0f});  // a negative count
  cuvi::testing::expect_error<ValueError>([&] { svi.step(); }, {"Poisson", "site 'obs'", "-1"});
  EXPECT_EQ(param_store().unconstrained("a").to_vector(), a0);
  EXPECT_EQ(param_store().unconstrained("b").to_vector(), b0);
  const OptimizerState st1 = svi.optimizer().state();
  EXPECT_EQ(st1.scalars, st0.scalars);
  for (const auto& [name, bufs] : st0.tensors)
    for (const auto& [k, t] : bufs) EXPECT_EQ(st1.tensors.at(name).at(k).to_vector(), t.to_vector()) << name << k;
  // Training goes on from there.
  counts = tensor({3.0f, 1.0f, 4.0f});
  EXPECT_TRUE(std::isfinite(svi.step().item()));
  EXPECT_NE(param_store().unconstrained("a").to_vector(), a0);
}

}  // namespace
