// Distributions and SVI on CUDA against the CPU backend on the same seeds.
#include <gtest/gtest.h>

#include <cmath>

#include "gpu_test.hpp"
#include "../../examples/gmm/gmm.hpp"
#include "gradcheck.hpp"

using namespace cuvi;
using namespace cuvi::testing;

namespace {

struct FamilyCase {
  const char* name;
  std::vector<std::pair<float, float>> param_ranges;
  std::pair<float, float> value_range;
  bool continuous;
};

std::vector<FamilyCase> families() {
  return {{"Normal", {{-1, 1}, {0.5f, 2}}, {-2, 2}, true},
          {"LogNormal", {{-1, 1}, {0.5f, 1.5f}}, {0.2f, 3}, true},
          {"Laplace", {{-1, 1}, {0.5f, 2}}, {-2, 2}, true},
          {"Exponential", {{0.5f, 2}}, {0.1f, 3}, true},
          {"Gamma", {{0.3f, 4}, {0.5f, 2}}, {0.1f, 3}, true},
          {"Beta", {{0.3f, 4}, {0.3f, 4}}, {0.05f, 0.95f}, true},
          {"StudentT", {{1.5f, 10}, {-1, 1}, {0.5f, 2}}, {-2, 2}, true},
          {"Uniform", {{-2, -1}, {1, 2}}, {-0.9f, 0.9f}, true},
          {"Cauchy", {{-1, 1}, {0.5f, 2}}, {-3, 3}, true},
          {"HalfCauchy", {{0.5f, 2}}, {0.1f, 4}, true},
          {"HalfNormal", {{0.5f, 2}}, {0.1f, 3}, true},
          {"InverseGamma", {{0.5f, 6}, {0.5f, 2}}, {0.1f, 3}, true},
          {"Weibull", {{0.5f, 2}, {0.5f, 3}}, {0.1f, 3}, true},
          {"Gumbel", {{-1, 1}, {0.5f, 2}}, {-2, 3}, true},
          {"Logistic", {{-1, 1}, {0.5f, 2}}, {-3, 3}, true},
          {"Pareto", {{0.5f, 1}, {1.5f, 4}}, {1.05f, 3}, true},
          {"Chi2", {{0.5f, 6}}, {0.1f, 3}, true},
          {"VonMises", {{-1, 1}, {0.3f, 20}}, {-3, 3}, true},
          {"ContinuousBernoulliProbs", {{0.05f, 0.95f}}, {0.02f, 0.98f}, true},
          {"ContinuousBernoulliLogits", {{-4, 4}}, {0.02f, 0.98f}, true},
          {"RelaxedBernoulliProbs", {{0.3f, 2}, {0.1f, 0.9f}}, {0.02f, 0.98f}, true},
          {"RelaxedBernoulliLogits", {{0.3f, 2}, {-3, 3}}, {0.02f, 0.98f}, true},
          {"Poisson", {{0.5f, 20}}, {0, 10}, false},
          {"BernoulliLogits", {{-3, 3}}, {0, 1}, false},
          // counts; a total_count range {5, 5} draws exactly 5 (values 0..4)
          {"Binomial", {{5, 5}, {0.1f, 0.9f}}, {0, 5}, false},
          {"BinomialLogits", {{5, 5}, {-3, 3}}, {0, 5}, false},
          {"Geometric", {{0.1f, 0.9f}}, {0, 10}, false},
          {"NegativeBinomial", {{0.5f, 6}, {0.1f, 0.8f}}, {0, 10}, false},
          {"NegativeBinomialLogits", {{0.5f, 6}, {-3, 2}}, {0, 10}, false},
          {"BetaBinomial", {{0.3f, 4}, {0.3f, 4}, {5, 5}}, {0, 5}, false},
          {"GammaPoisson", {{0.5f, 6}, {0.2f, 3}}, {0, 10}, false},
          {"ZeroInflatedPoisson", {{0.5f, 8}, {0.05f, 0.9f}}, {0, 3}, false},
          {"ZeroInflatedPoissonLogits", {{0.5f, 8}, {-3, 3}}, {0, 3}, false},
          {"ZeroInflatedNegativeBinomial", {{0.5f, 6}, {0.1f, 0.8f}, {0.05f, 0.9f}}, {0, 3}, false},
          {"ZeroInflatedNegativeBinomialLogits", {{0.5f, 6}, {-3, 2}, {-3, 3}}, {0, 3}, false},
          {"AsymmetricLaplace", {{-1, 1}, {0.5f, 2}, {0.4f, 2.5f}}, {-3, 3}, true}};
}

std::shared_ptr<const dist::Distribution> build(const std::string& f, const std::vector<Tensor>& p) {
  using namespace dist;
  if (f == "Normal") return std::make_shared<Normal>(p[0], p[1]);
  if (f == "LogNormal") return std::make_shared<LogNormal>(p[0], p[1]);
  if (f == "Laplace") return std::make_shared<Laplace>(p[0], p[1]);
  if (f == "Exponential") return std::make_shared<Exponential>(p[0]);
  if (f == "Gamma") return std::make_shared<Gamma>(p[0], p[1]);
  if (f == "Beta") return std::make_shared<Beta>(p[0], p[1]);
  if (f == "StudentT") return std::make_shared<StudentT>(p[0], p[1], p[2]);
  if (f == "Uniform") return std::make_shared<Uniform>(p[0], p[1]);
  if (f == "Cauchy") return std::make_shared<Cauchy>(p[0], p[1]);
  if (f == "HalfCauchy") return std::make_shared<HalfCauchy>(p[0]);
  if (f == "HalfNormal") return std::make_shared<HalfNormal>(p[0]);
  if (f == "InverseGamma") return std::make_shared<InverseGamma>(p[0], p[1]);
  if (f == "Weibull") return std::make_shared<Weibull>(p[0], p[1]);
  if (f == "Gumbel") return std::make_shared<Gumbel>(p[0], p[1]);
  if (f == "Logistic") return std::make_shared<Logistic>(p[0], p[1]);
  if (f == "Pareto") return std::make_shared<Pareto>(p[0], p[1]);
  if (f == "Chi2") return std::make_shared<Chi2>(p[0]);
  if (f == "VonMises") return std::make_shared<VonMises>(p[0], p[1]);
  if (f == "ContinuousBernoulliProbs") return std::make_shared<ContinuousBernoulliProbs>(p[0]);
  if (f == "ContinuousBernoulliLogits") return std::make_shared<ContinuousBernoulliLogits>(p[0]);
  if (f == "RelaxedBernoulliProbs") return std::make_shared<RelaxedBernoulliProbs>(p[0], p[1]);
  if (f == "RelaxedBernoulliLogits") return std::make_shared<RelaxedBernoulliLogits>(p[0], p[1]);
  if (f == "Poisson") return std::make_shared<Poisson>(p[0]);
  if (f == "Binomial") return std::make_shared<Binomial>(p[0], p[1]);
  if (f == "BinomialLogits") return std::make_shared<BinomialLogits>(p[0], p[1]);
  if (f == "Geometric") return std::make_shared<Geometric>(p[0]);
  if (f == "NegativeBinomial") return std::make_shared<NegativeBinomial>(p[0], p[1]);
  if (f == "NegativeBinomialLogits") return std::make_shared<NegativeBinomialLogits>(p[0], p[1]);
  if (f == "BetaBinomial") return std::make_shared<BetaBinomial>(p[0], p[1], p[2]);
  if (f == "GammaPoisson") return std::make_shared<GammaPoisson>(p[0], p[1]);
  if (f == "ZeroInflatedPoisson") return std::make_shared<ZeroInflatedPoisson>(p[0], p[1]);
  if (f == "ZeroInflatedPoissonLogits") return std::make_shared<ZeroInflatedPoissonLogits>(p[0], p[1]);
  if (f == "ZeroInflatedNegativeBinomial") return std::make_shared<ZeroInflatedNegativeBinomial>(p[0], p[1], p[2]);
  if (f == "ZeroInflatedNegativeBinomialLogits")
    return std::make_shared<ZeroInflatedNegativeBinomialLogits>(p[0], p[1], p[2]);
  if (f == "AsymmetricLaplace") return std::make_shared<AsymmetricLaplace>(p[0], p[1], p[2]);
  CUVI_CHECK(f == "BernoulliLogits", ValueError, "no family " << f);
  return std::make_shared<BernoulliLogits>(p[0]);
}

class GpuFamily : public ::testing::TestWithParam<size_t> {};

// Samples: the same seed draws the same Philox stream on both backends; the
// per-element transforms differ only by libdevice-vs-glibc rounding, except
// that a rejection sampler (Gamma, Beta, StudentT, Poisson, Chi2, VonMises, and
// the counts drawn through them) can accept a
// different proposal when a comparison is decided by that rounding: allow a
// handful of such elements out of 4096 and require the rest to match.
TEST_P(GpuFamily, SamplesLogProbAndGradientsMatchCpu) {
  CUVI_REQUIRE_CUDA();
  const FamilyCase c = families()[GetParam()];
  std::mt19937 gen(100 + static_cast<unsigned>(GetParam()));
  const Shape batch{64, 64};
  std::vector<Tensor> pc, pg;
  for (auto [lo, hi] : c.param_ranges) {
    Tensor t = random_tensor({64}, gen, lo, hi);
    pc.push_back(t.detach().requires_grad_());
    pg.push_back(t.to(Device::cuda()).detach().requires_grad_());
  }
  auto dc = build(c.name, pc)->expand_ptr(batch);
  auto dg = build(c.name, pg)->expand_ptr(batch);
  set_seed(9);
  const auto sc = dc->sample().to_vector();
  set_seed(9);
  const auto sg = dg->sample().to_vector();
  int mismatched = 0;
  for (size_t i = 0; i < sc.size(); ++i)
    if (std::fabs(sc[i] - sg[i]) > 1e-4f * (1 + std::fabs(sc[i]))) ++mismatched;
  EXPECT_LE(mismatched, 4) << c.name << ": samples differ in " << mismatched << " of " << sc.size();

  Tensor x = random_tensor(batch, gen, c.value_range.first, c.value_range.second);
  if (!c.continuous) x = x.to_int64().to_float();
  Tensor xc = x.detach(), xg = x.to(Device::cuda()).detach();
  if (c.continuous) {
    xc.requires_grad_();
    xg.requires_grad_();
  }
  // log_prob and its backward: rtol 1e-5 (a few float roundings, libdevice
  // transcendentals within 2 ulp).
  Tensor lc = dc->log_prob(xc), lg = dg->log_prob(xg);
  const auto lcv = lc.to_vector();
  expect_close(lg.to_vector(), std::vector<double>(lcv.begin(), lcv.end()), 1e-5, 1e-5, c.name);
  sum(lc).backward();
  sum(lg).backward();
  for (size_t k = 0; k < pc.size(); ++k) {
    const auto g = pc[k].grad().to_vector();
    // Param grads sum 64 terms each: the order differs between backends.
    expect_close(pg[k].grad().to_vector(), std::vector<double>(g.begin(), g.end()), 1e-4, 1e-4, c.name);
  }
  // The fused log-prob-sum agrees with the CPU one.
  const float fc = dc->log_prob_sum(xc.detach(), -0.5f).item();
  const float fg = dg->log_prob_sum(xg.detach(), -0.5f).item();
  EXPECT_NEAR(fg, fc, 1e-4 * (1 + std::fabs(fc))) << c.name;
  // Sites of one chunk (<= 2048 elements) take the single-launch path:
  // value and parameters of one shape (the flat kernel) and a value of 10
  // rows against the parameters' row (broadcast); sum and gradients.
  for (int64_t rows : {0, 10}) {
    SCOPED_TRACE(rows == 0 ? "one chunk, flat" : "one chunk, broadcast");
    std::vector<int64_t> ri(static_cast<size_t>(rows == 0 ? 1 : rows));
    for (size_t i = 0; i < ri.size(); ++i) ri[i] = static_cast<int64_t>(i);
    Tensor xs = index_select(x.detach(), 0, tensor_i64(ri, {static_cast<int64_t>(ri.size())}, Device::cpu()));
    if (rows == 0) xs = xs.reshape({64});
    std::vector<Tensor> qc, qg;
    for (const Tensor& t : pc) {
      qc.push_back(t.detach().requires_grad_());
      qg.push_back(t.detach().to(Device::cuda()).requires_grad_());
    }
    Tensor sc1 = build(c.name, qc)->log_prob_sum(xs, 0.75f);
    Tensor sg1 = build(c.name, qg)->log_prob_sum(xs.to(Device::cuda()), 0.75f);
    EXPECT_NEAR(sg1.item(), sc1.item(), 1e-4 * (1 + std::fabs(sc1.item()))) << c.name;
    sc1.backward();
    sg1.backward();
    for (size_t k = 0; k < qc.size(); ++k) {
      const auto g = qc[k].grad().to_vector();
      expect_close(qg[k].grad().to_vector(), std::vector<double>(g.begin(), g.end()), 1e-4, 1e-4, c.name);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, GpuFamily, ::testing::Range<size_t>(0, families().size()),
                         [](const ::testing::TestParamInfo<size_t>& i) { return families()[i.param].name; });

TEST(GpuDist, DeferredValidationNamesDistributionAndSite) {
  CUVI_REQUIRE_CUDA();
  Tensor scale = tensor({1.f, -2.f, 1.f}, Device::cuda());
  {
    dist::detail::SiteScope site("z");
    dist::Normal d(0.0f, scale);  // queued check, no wait
    (void)d;
  }
  expect_error<ValueError>([] { synchronize(Device::cuda()); }, {"Normal", "scale", "site 'z'", "-2"});
  EXPECT_EQ(zeros({1}, Device::cuda()).to_vector()[0], 0.0f);  // flag cleared
}

// Reads of an empty CUDA tensor wait like any other read: a queued check
// that failed is raised there, not lost or left for a later read.
TEST(GpuDist, EmptyReadsStillRaiseQueuedChecks) {
  CUVI_REQUIRE_CUDA();
  const Tensor bad = tensor({1.f, -2.f}, Device::cuda());
  const Tensor empty = zeros({0}, Device::cuda());
  const long long before = sync_count();
  { dist::Normal d(0.0f, bad); }
  expect_error<ValueError>([&] { (void)empty.to_vector(); }, {"Normal", "scale", "-2"});
  { dist::Normal d(0.0f, bad); }
  expect_error<ValueError>([&] { (void)empty.to(Device::cpu()); }, {"Normal", "scale", "-2"});
  EXPECT_EQ(sync_count() - before, 2);
}

// The design's launch budget, held to account by launch_count(): a
// validated log_prob is one launch (the check rides in its pass), so is its
// backward when nothing broadcasts, and a fused log-prob-sum is one launch
// for a site of one chunk (<= 2048 elements) and two above (the chunk
// partials, then their ordered sum). Row families the same.
TEST(GpuDist, OneLaunchPerPass) {
  CUVI_REQUIRE_CUDA();
  const Device gpu = Device::cuda();
  set_seed(5);
  for (int64_t n : {int64_t{1000}, int64_t{100000}}) {
    SCOPED_TRACE(n);
    Tensor loc = randn({n}, gpu).requires_grad_();
    const Tensor x = randn({n}, gpu), up = randn({n}, gpu);
    dist::Normal d(loc, 1.5f);
    long long before = launch_count();
    Tensor lp = d.log_prob(x);
    EXPECT_EQ(launch_count() - before, 1) << "validated log_prob";
    before = launch_count();
    lp.backward(up);  // the first gradient of a leaf is stored as it is
    EXPECT_EQ(launch_count() - before, 1) << "log_prob backward";
    before = launch_count();
    Tensor s = d.log_prob_sum(x, -1.0f);
    EXPECT_EQ(launch_count() - before, n <= 2048 ? 1 : 2) << "fused log-prob-sum with gradients";
    (void)s.item();

    Tensor conc = (rand({n, 3}, gpu) + 0.5f).requires_grad_();
    dist::Dirichlet dir(conc);
    const Tensor v = dir.sample();
    before = launch_count();
    Tensor dl = dir.log_prob(v);
    EXPECT_EQ(launch_count() - before, 1) << "Dirichlet log_prob";
    // A parameter row per value: the row kernel's one pass.
    dist::Categorical cat(rand({n, 3}, gpu) + 0.1f);
    const Tensor idx = cat.sample();
    before = launch_count();
    Tensor cl = cat.log_prob(idx);
    EXPECT_EQ(launch_count() - before, 1) << "Categorical log_prob of int64 values";
    // One parameter row shared by many values (a mixture's weights in a
    // data plate): small sites keep the one pass; large ones normalise the
    // K log-probabilities once and gather (Categorical::gathered_log_prob:
    // the values' check, log(p / sum p) in three small launches, the gather;
    // 7 before int64 values went to the gather as they are), so the
    // gradient is K entries, not K per value.
    dist::Categorical shared(full({3}, 1.0f / 3.0f, gpu));
    const Tensor sidx = shared.sample({n});
    before = launch_count();
    Tensor sl = shared.log_prob(sidx);
    if (n * 3 < (int64_t{1} << 16)) {
      EXPECT_EQ(launch_count() - before, 1) << "shared Categorical, small site";
    } else {
      EXPECT_LE(launch_count() - before, 5) << "shared Categorical, gathered";
    }
    (void)sum(dl).item();
    (void)sum(cl).item();
    (void)sum(sl).item();
  }
}

TEST(GpuDist, FusedSumIsBitwiseReproducible) {
  CUVI_REQUIRE_CUDA();
  set_seed(4);
  const int64_t n = (1 << 22) + 5;
  Tensor x = randn({n}, Device::cuda()), loc = randn({n}, Device::cuda());
  dist::Normal d(loc, 1.5f);
  const float a = d.log_prob_sum(x, 1.0f).item();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(d.log_prob_sum(x, 1.0f).item(), a);
}

void coin_model(const Tensor& data) {
  Tensor f = sample("latent_fairness", dist::Beta(10.0f, 10.0f));
  auto p = plate("data", data.size(0));
  sample("obs", dist::Bernoulli(f), data);
}
void coin_guide(const Tensor&) {
  Tensor a = param("alpha_q", 15.0f, constraints::positive);
  Tensor b = param("beta_q", 15.0f, constraints::positive);
  sample("latent_fairness", dist::Beta(a, b));
}

TEST(GpuSvi, StepDoesNotSynchronizeAndMatchesCpu) {
  CUVI_REQUIRE_CUDA();
  std::vector<float> flips(10, 0.0f);
  for (int i = 0; i < 6; ++i) flips[static_cast<size_t>(i)] = 1.0f;
  auto run = [&](Device dev, int steps, long long* syncs) {
    set_default_device(dev);
    set_seed(0);
    param_store().clear();
    Tensor data = tensor(flips, dev);
    infer::SVI svi(coin_model, coin_guide, optim::Adam({.lr = 5e-4f}), infer::Trace_ELBO());
    svi.step(data);  // first step creates the params
    const long long before = sync_count();
    for (int i = 1; i < steps; ++i) svi.step(data);
    if (syncs) *syncs = sync_count() - before;
    const float a = param_store().get("alpha_q").item(), b = param_store().get("beta_q").item();
    set_default_device(Device::cpu());
    return std::make_pair(a, b);
  };
  long long syncs = -1;
  const auto g = run(Device::cuda(), 500, &syncs);
  EXPECT_EQ(syncs, 0) << "an SVI step waited for the device";
  const auto c = run(Device::cpu(), 500, nullptr);
  // Same seeds, same draws up to rounding; Beta's rejection sampler may
  // take another branch on rare draws, so compare the learned parameters
  // loosely (500 Adam steps of lr 5e-4 move them by ~0.25 in total).
  EXPECT_NEAR(g.first, c.first, 0.05);
  EXPECT_NEAR(g.second, c.second, 0.05);
}

// With check_finite a step waits twice, however many parameters: once for
// the queued work (raising deferred checks) and once for one batched
// finiteness check of the loss and every gradient.
TEST(GpuSvi, CheckFiniteStepWaitsTwice) {
  CUVI_REQUIRE_CUDA();
  std::vector<float> flips(10, 0.0f);
  for (int i = 0; i < 6; ++i) flips[static_cast<size_t>(i)] = 1.0f;
  set_default_device(Device::cuda());
  set_seed(0);
  param_store().clear();
  Tensor data = tensor(flips);
  infer::SVI svi(coin_model, coin_guide, optim::Adam({.lr = 5e-4f}), infer::Trace_ELBO(), {.check_finite = true});
  svi.step(data);
  const long long before = sync_count();
  for (int i = 0; i < 10; ++i) svi.step(data);
  set_default_device(Device::cpu());
  EXPECT_EQ(sync_count() - before, 20);
}

// The local-latent model (N = 2^16 latents, minibatch 2^10) for 50 SVI
// steps on `dev` with the guide guide_on(dev) and `opt`; returns the store's
// "loc" and, in *syncs, how often steps 2..50 waited for the device.
template <class GuideOn, class Opt>
std::vector<float> local_latents(Device dev, uint64_t seed, GuideOn guide_on, const Opt& opt, long long* syncs) {
  const int64_t n = 1 << 16, b = 1 << 10;
  set_default_device(dev);
  set_seed(seed);
  param_store().clear();
  Tensor data = randn({n}, dev) + 2.0f;
  auto model = [n, b](const Tensor& x) {
    auto p = plate("data", n, b);
    Tensor z = sample("z", dist::Normal(0.0f, 1.0f));
    sample("x", dist::Normal(z, 1.0f), p.subsample(x));
  };
  infer::SVI svi(model, guide_on(dev, n, b), opt, infer::Trace_ELBO());
  svi.step(data);
  const long long before = sync_count();
  for (int i = 1; i < 50; ++i) svi.step(data);
  if (syncs) *syncs = sync_count() - before;
  set_default_device(Device::cpu());
  return param_store().get("loc").to_vector();
}

// Same minibatches (integer index draws) on both; normals and updates
// within a few ulp, far below 1e-3 after 50 steps of lr 0.05.
void expect_same_locs(const std::vector<float>& g, const std::vector<float>& c) {
  ASSERT_EQ(g.size(), c.size());
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, double(std::fabs(g[i] - c[i])));
  EXPECT_LT(worst, 1e-3);
}

TEST(GpuSvi, SubsampledLocalLatentsOnDeviceMatchCpu) {
  CUVI_REQUIRE_CUDA();
  // Pyro's usual style: rows of the whole param taken by hand (dense gradients, Adam).
  auto guide_on = [](Device dev, int64_t n, int64_t b) {
    return [n, b, dev](const Tensor&) {
      Tensor loc = param("loc", [n, dev] { return zeros({n}, dev); });
      auto p = plate("data", n, b);
      EXPECT_EQ(p.indices().device(), dev);
      sample("z", dist::Normal(p.subsample(loc), 0.7071f));
    };
  };
  long long syncs = -1;
  const auto g = local_latents(Device::cuda(), 1, guide_on, optim::Adam({.lr = 5e-2f}), &syncs);
  EXPECT_EQ(syncs, 0) << "a subsampled SVI step waited for the device";
  expect_same_locs(g, local_latents(Device::cpu(), 1, guide_on, optim::Adam({.lr = 5e-2f}), nullptr));
}

// Per-datapoint params declared with event_dim and trained by SparseAdam:
// the row-sparse gradients, their update and the rest of a step stay on the
// device (no wait), and the result matches the CPU's.
auto event_dim_guide_on(Device dev, int64_t n, int64_t b) {
  return [n, b, dev](const Tensor&) {
    auto p = plate("data", n, b);
    Tensor loc = param("loc", [n, dev] { return zeros({n}, dev); }, constraints::real, 0);
    Tensor scale = param("scale", [n, dev] { return full({n}, 0.7f, dev); }, constraints::positive, 0);
    sample("z", dist::Normal(loc, scale));
  };
}

TEST(GpuSvi, SparseAdamLocalLatentsDoNotSynchronizeAndMatchCpu) {
  CUVI_REQUIRE_CUDA();
  const auto guide_on = event_dim_guide_on;
  long long syncs = -1;
  const auto g = local_latents(Device::cuda(), 2, guide_on, optim::SparseAdam({.lr = 5e-2f}), &syncs);
  EXPECT_EQ(syncs, 0) << "a SparseAdam step waited for the device";
  expect_same_locs(g, local_latents(Device::cpu(), 2, guide_on, optim::SparseAdam({.lr = 5e-2f}), nullptr));
}

// Data parallelism over NCCL on one GPU (bootstrapped by self()): the
// collectives are queued on the device's stream, and a DistributedOptimizer
// step (the dense flat sum, the row gather) neither waits for the device
// nor changes what the wrapped SparseAdam does (the exchange over one rank
// is the identity).
TEST(GpuParallel, NcclOverOneGpuDoesNotSynchronizeAndIsTheIdentity) {
  CUVI_REQUIRE_CUDA();
  if (!parallel::nccl_available()) GTEST_SKIP() << "cuvi was built without NCCL";
  const auto comm = parallel::nccl(parallel::self(), Device::cuda());
  EXPECT_EQ(comm->size(), 1);
  const Tensor t = tensor({1.0f, -2.0f, 3.5f}, Device::cuda());
  const long long before = sync_count();
  const Tensor s = parallel::all_reduce_sum(t, *comm);
  parallel::broadcast_(t, *comm);
  comm->all_gather_v(t.data<float>(), s.data<float>(), {12}, Device::cuda());
  EXPECT_EQ(sync_count() - before, 0);
  EXPECT_EQ(s.to_vector(), (std::vector<float>{1.0f, -2.0f, 3.5f}));
  long long syncs = -1;
  const auto g = local_latents(Device::cuda(), 2, event_dim_guide_on,
                               optim::DistributedOptimizer(optim::SparseAdam({.lr = 5e-2f}), comm), &syncs);
  EXPECT_EQ(syncs, 0) << "a data-parallel step waited for the device";
  expect_same_locs(g, local_latents(Device::cpu(), 2, event_dim_guide_on, optim::SparseAdam({.lr = 5e-2f}), nullptr));
}

// TraceEnum_ELBO on the Gaussian-mixture tutorial: the enumeration, the
// contraction over the plate and the MAP update never wait for the device,
// and the fit matches the CPU's.
TEST(GpuSvi, TraceEnumStepDoesNotSynchronizeAndMatchesCpu) {
  CUVI_REQUIRE_CUDA();
  auto run = [&](Device dev, long long* syncs) {
    set_default_device(dev);
    set_seed(3);
    param_store().clear();
    const Tensor data = tensor({0.0f, 1.0f, 10.0f, 11.0f, 12.0f}, dev);
    // The model and MAP guide of examples/gmm (cuvi gmm).
    const cuvi_examples::GMM gmm{2, tensor({0.0f, 12.0f}, dev)};
    auto model = [&gmm](const Tensor& x) { gmm.model(x); };
    auto guide = [&gmm](const Tensor& x) { gmm.guide(x); };
    infer::SVI svi(model, guide, optim::Adam({.lr = 0.1f, .betas = {0.8f, 0.99f}}),
                   infer::TraceEnum_ELBO({.max_plate_nesting = 1}));
    svi.step(data);
    const long long before = sync_count();
    for (int i = 1; i < 200; ++i) svi.step(data);
    if (syncs) *syncs = sync_count() - before;
    set_default_device(Device::cpu());
    return param_store().get("locs_map").to_vector();
  };
  long long syncs = -1;
  const auto g = run(Device::cuda(), &syncs);
  EXPECT_EQ(syncs, 0) << "a TraceEnum_ELBO step waited for the device";
  const auto c = run(Device::cpu(), nullptr);
  // Deterministic (Delta guide, exact enumeration): the GPU's rounding only.
  EXPECT_NEAR(g[0], c[0], 1e-3);
  EXPECT_NEAR(g[1], c[1], 1e-3);
}

}  // namespace

// The row kernels (Dirichlet, Categorical by probs and by logits) on CUDA
// against the CPU on the same seed: samples (a Dirichlet row runs K Gamma
// rejection samplers, so a rounding-decided acceptance may change a handful
// of rows), log_prob, its gradients, the fused sum, the pathwise gradient,
// and deferred validation.
TEST(GpuRowFamilies, DirichletAndCategoricalMatchCpu) {
  CUVI_REQUIRE_CUDA();
  std::mt19937 gen(61);
  const int64_t B = 512, K = 5;
  Tensor conc = random_tensor({B, K}, gen, 0.3f, 4.0f);
  Tensor cc = conc.detach().requires_grad_(), cg = conc.to(Device::cuda()).detach().requires_grad_();
  set_seed(3);
  Tensor sc = dist::Dirichlet(cc).rsample({2});
  set_seed(3);
  Tensor sg = dist::Dirichlet(cg).rsample({2});
  const auto svc = sc.to_vector(), svg = sg.to_vector();
  int bad_rows = 0;
  for (int64_t r = 0; r < 2 * B; ++r) {
    bool same = true;
    for (int64_t k = 0; k < K; ++k) {
      const float a = svc[static_cast<size_t>(r * K + k)], b = svg[static_cast<size_t>(r * K + k)];
      if (std::fabs(a - b) > 1e-4f * (1 + std::fabs(a))) same = false;
    }
    bad_rows += same ? 0 : 1;
  }
  EXPECT_LE(bad_rows, 4) << "Dirichlet rows differ: " << bad_rows << " of " << 2 * B;
  // Pathwise gradients of one fixed weighting of the draws.
  Tensor w = random_tensor({2, B, K}, gen, -1.0f, 1.0f);
  sum(sc * w).backward();
  sum(sg * w.to(Device::cuda())).backward();
  int bad_grads = 0;
  const auto gcv = cc.grad().to_vector(), ggv = cg.grad().to_vector();
  for (size_t i = 0; i < gcv.size(); ++i)
    if (std::fabs(gcv[i] - ggv[i]) > 1e-3f * (1 + std::fabs(gcv[i]))) ++bad_grads;
  EXPECT_LE(bad_grads, 4 * K) << "Dirichlet pathwise gradients differ in " << bad_grads;

  // log_prob and its gradients at the CPU's draws (both backends, same x).
  Tensor x = sc.detach();
  auto lp_and_grads = [&](Device d) {
    Tensor c = conc.to(d).detach().requires_grad_();
    Tensor xv = x.to(d).detach().requires_grad_();
    Tensor lp = dist::Dirichlet(c).log_prob(xv);
    sum(lp * w.narrow(-1, 0, 1).reshape({2, B}).to(d)).backward();
    Tensor fused = dist::Dirichlet(c.detach()).log_prob_sum(xv.detach(), -0.5f);
    return std::vector<std::vector<float>>{lp.to_vector(), c.grad().to_vector(), xv.grad().to_vector(),
                                           fused.to_vector()};
  };
  const auto rc = lp_and_grads(Device::cpu()), rg = lp_and_grads(Device::cuda());
  const char* what[4] = {"log_prob", "d/dconc", "d/dx", "fused sum"};
  for (int k = 0; k < 4; ++k) {
    // float32 lgamma/digamma: libdevice vs glibc, a few ulp of terms up to
    // ~50 (the fused sum adds 1024 rows): 1e-4 relative + 1e-3 absolute.
    expect_close(rg[static_cast<size_t>(k)], std::vector<double>(rc[k].begin(), rc[k].end()),
                 k == 3 ? 1e-2 : 1e-3, 1e-4, what[k]);
  }

  for (bool logits : {false, true}) {
    SCOPED_TRACE(logits ? "Categorical logits" : "Categorical probs");
    Tensor p = logits ? random_tensor({B, K}, gen, -2.0f, 2.0f) : random_tensor({B, K}, gen, 0.05f, 1.0f);
    auto make = [logits](const Tensor& t) { return logits ? dist::Categorical::from_logits(t) : dist::Categorical(t); };
    set_seed(4);
    const auto kc = make(p).sample({3}).to_vector_i64();
    set_seed(4);
    const auto kg = make(p.to(Device::cuda())).sample({3}).to_vector_i64();
    int differ = 0;
    for (size_t i = 0; i < kc.size(); ++i) differ += kc[i] != kg[i];
    // Inversion of one uniform: only a uniform within rounding of a bin
    // edge can land differently.
    EXPECT_LE(differ, 3) << differ << " of " << kc.size();
    Tensor xk = tensor_i64(kc, {3, B}).to_float();
    auto run = [&](Device d) {
      Tensor t = p.to(d).detach().requires_grad_();
      Tensor lp = make(t).log_prob(xk.to(d));
      sum(lp).backward();
      Tensor fused = make(t.detach()).log_prob_sum(xk.to(d), 2.0f);
      return std::vector<std::vector<float>>{lp.to_vector(), t.grad().to_vector(), fused.to_vector()};
    };
    const auto a = run(Device::cpu()), b = run(Device::cuda());
    for (int k = 0; k < 3; ++k)
      expect_close(b[static_cast<size_t>(k)], std::vector<double>(a[k].begin(), a[k].end()), k == 2 ? 1e-2 : 1e-4,
                   1e-4, k == 0 ? "log_prob" : (k == 1 ? "grad" : "fused"));
  }

  // Validation is queued on the device and raised at the next sync.
  Tensor bad = tensor({1.0f, -2.0f, 3.0f}, Device::cuda());
  expect_error<ValueError>([&] { dist::Dirichlet(bad).log_prob(tensor({0.2f, 0.3f, 0.5f}, Device::cuda())).item(); },
                           {"Dirichlet", "concentration", "-2"});
  dist::Categorical cat(tensor({0.2f, 0.3f, 0.5f}, Device::cuda()));
  expect_error<ValueError>([&] { cat.log_prob(tensor(7.0f, Device::cuda())).item(); }, {"Categorical", "value", "7"});
}

// MultivariateNormal on CUDA against the CPU: the row kernel (D = 6) and the
// triangular-solve path (D = 40) for log_prob, its gradients and the fused
// sum; rsample on the same seed; deferred validation of scale_tril.
TEST(GpuMultivariateNormal, MatchesCpu) {
  CUVI_REQUIRE_CUDA();
  std::mt19937 gen(71);
  for (int64_t D : {6, 40}) {
    SCOPED_TRACE(D);
    std::vector<float> Lv(static_cast<size_t>(2 * D * D), 0.0f);
    std::uniform_real_distribution<float> off(-0.3f, 0.3f), diag(1.0f, 2.0f);
    for (int64_t m = 0; m < 2; ++m)
      for (int64_t i = 0; i < D; ++i)
        for (int64_t j = 0; j <= i; ++j) Lv[static_cast<size_t>((m * D + i) * D + j)] = i == j ? diag(gen) : off(gen);
    Tensor L = tensor(Lv, {2, 1, D, D});
    Tensor loc = random_tensor({3, D}, gen, -1, 1);
    Tensor x = random_tensor({4, 1, 1, D}, gen, -2, 2);
    auto run = [&](Device d) {
      Tensor xv = x.to(d).detach().requires_grad_(), lv = loc.to(d).detach().requires_grad_();
      Tensor Lt = L.to(d).detach().requires_grad_();
      dist::MultivariateNormal m(lv, Lt);
      Tensor lp = m.log_prob(xv);
      sum(lp).backward();
      Tensor fused = dist::MultivariateNormal(lv.detach(), Lt.detach()).log_prob_sum(xv.detach(), 0.5f);
      set_seed(12);
      Tensor s = m.rsample({2});
      return std::vector<std::vector<float>>{lp.to_vector(),        xv.grad().to_vector(), lv.grad().to_vector(),
                                             Lt.grad().to_vector(), fused.to_vector(),     s.to_vector()};
    };
    const auto c = run(Device::cpu()), g = run(Device::cuda());
    const char* what[6] = {"log_prob", "d/dx", "d/dloc", "d/dL", "fused", "rsample"};
    for (int k = 0; k < 6; ++k)
      // float32 substitutions of D terms, libdevice vs glibc logf: 1e-3
      // absolute + 1e-4 relative (the fused sum adds 24 rows).
      expect_close(g[static_cast<size_t>(k)], std::vector<double>(c[k].begin(), c[k].end()), 1e-3, 1e-4, what[k]);
  }
  Tensor bad = tensor({1.0f, 0.0f, 0.2f, -3.0f}, {2, 2}, Device::cuda());
  expect_error<ValueError>(
      [&] { dist::MultivariateNormal(zeros({2}, Device::cuda()), bad).log_prob(zeros({2}, Device::cuda())).item(); },
      {"MultivariateNormal", "scale_tril", "positive diagonal", "-3"});
}

// OneHotCategorical and Multinomial (row kernels, kern::CountRowsBody),
// RelaxedOneHotCategorical and LowRankMultivariateNormal (runtime ops) on
// CUDA against the CPU on the same seed: draws (categorical inversion: only
// a uniform within rounding of a bin edge may land differently), log_prob,
// the parameter's gradient and the fused sum at the CPU's draws, and the
// deferred validation of the count rows.
TEST(GpuRowFamilies, OneHotMultinomialRelaxedAndLowRankMatchCpu) {
  CUVI_REQUIRE_CUDA();
  std::mt19937 gen(71);
  const int64_t B = 256, K = 4;
  for (bool logits : {false, true}) {
    SCOPED_TRACE(logits ? "logits" : "probs");
    Tensor p = logits ? random_tensor({B, K}, gen, -2.0f, 2.0f) : random_tensor({B, K}, gen, 0.05f, 1.0f);
    for (int n : {1, 5}) {
      SCOPED_TRACE(n == 1 ? "OneHotCategorical" : "Multinomial(5)");
      auto sample = [&](const Tensor& t) {
        if (n == 1)
          return logits ? dist::OneHotCategorical::from_logits(t).sample({2}) : dist::OneHotCategorical(t).sample({2});
        return logits ? dist::Multinomial::from_logits(n, t).sample({2}) : dist::Multinomial(n, t).sample({2});
      };
      auto lp_of = [&](const Tensor& t, const Tensor& x, bool fused) {
        if (n == 1) {
          const dist::OneHotCategorical d =
              logits ? dist::OneHotCategorical::from_logits(t) : dist::OneHotCategorical(t);
          return fused ? d.log_prob_sum(x, 0.5f) : d.log_prob(x);
        }
        const dist::Multinomial d = logits ? dist::Multinomial::from_logits(n, t) : dist::Multinomial(n, t);
        return fused ? d.log_prob_sum(x, 0.5f) : d.log_prob(x);
      };
      set_seed(5);
      const auto sc = sample(p).to_vector();
      set_seed(5);
      const auto sg = sample(p.to(Device::cuda())).to_vector();
      int differ = 0;
      for (size_t i = 0; i < sc.size(); ++i) differ += sc[i] != sg[i];
      EXPECT_LE(differ, 4 * n) << differ << " of " << sc.size();
      const Tensor x = tensor(sc, {2, B, K});
      auto run = [&](Device d) {
        Tensor t = p.to(d).detach().requires_grad_();
        Tensor lp = lp_of(t, x.to(d), false);
        sum(lp).backward();
        Tensor fused = lp_of(t.detach(), x.to(d), true);
        return std::vector<std::vector<float>>{lp.to_vector(), t.grad().to_vector(), fused.to_vector()};
      };
      const auto a = run(Device::cpu()), b = run(Device::cuda());
      for (int k = 0; k < 3; ++k)
        expect_close(b[static_cast<size_t>(k)], std::vector<double>(a[k].begin(), a[k].end()), k == 2 ? 1e-2 : 1e-4,
                     1e-4, k == 0 ? "log_prob" : (k == 1 ? "grad" : "fused"));
    }
    // Relaxed: rsample (the same Gumbel noise) and log_prob at the CPU's draws.
    auto relaxed = [&](const Tensor& t) {
      return logits ? dist::RelaxedOneHotCategorical::from_logits(0.7f, t) : dist::RelaxedOneHotCategorical(0.7f, t);
    };
    set_seed(6);
    const Tensor yc = relaxed(p).rsample({2});
    set_seed(6);
    const Tensor yg = relaxed(p.to(Device::cuda())).rsample({2});
    const auto ycv = yc.to_vector();
    expect_close(yg.to_vector(), std::vector<double>(ycv.begin(), ycv.end()), 1e-5, 1e-4, "relaxed rsample");
    const auto lc = relaxed(p).log_prob(yc).to_vector();
    expect_close(relaxed(p.to(Device::cuda())).log_prob(yc.to(Device::cuda())).to_vector(),
                 std::vector<double>(lc.begin(), lc.end()), 1e-3, 1e-4, "relaxed log_prob");
  }
  // LowRankMultivariateNormal: log_prob, rsample on one seed.
  const int64_t D = 6, R = 2;
  const Tensor loc = random_tensor({3, D}, gen, -1, 1), W = random_tensor({3, D, R}, gen, -0.8f, 0.8f);
  const Tensor dg = random_tensor({D}, gen, 0.3f, 1.5f), xl = random_tensor({4, 1, D}, gen, -2, 2);
  auto low = [&](Device d) {
    const dist::LowRankMultivariateNormal m(loc.to(d), W.to(d), dg.to(d));
    set_seed(7);
    return std::vector<std::vector<float>>{m.log_prob(xl.to(d)).to_vector(), m.rsample({2}).to_vector()};
  };
  const auto lc = low(Device::cpu()), lg = low(Device::cuda());
  for (int k = 0; k < 2; ++k)
    expect_close(lg[static_cast<size_t>(k)], std::vector<double>(lc[k].begin(), lc[k].end()), 1e-3, 1e-4,
                 k == 0 ? "low-rank log_prob" : "low-rank rsample");
  // Deferred validation names the distribution and the offending number.
  const dist::Multinomial m(3, tensor({0.2f, 0.3f, 0.5f}, Device::cuda()));
  expect_error<ValueError>(
      [&] {
        m.log_prob(tensor({1.0f, 1.0f, 2.0f}, Device::cuda())).item();
      },
      {"Multinomial", "total_count", "4"});
  const dist::OneHotCategorical o(tensor({0.2f, 0.3f, 0.5f}, Device::cuda()));
  expect_error<ValueError>(
      [&] {
        o.log_prob_sum(tensor({0.5f, 0.5f, 0.0f}, Device::cuda()), 1.0f).item();
      },
      {"OneHotCategorical", "one-hot", "0.5"});
  expect_error<ValueError>(
      [&] {
        dist::OneHotCategorical(tensor({0.2f, -0.3f, 0.5f}, Device::cuda()))
            .log_prob(tensor({1.0f, 0.0f, 0.0f}, Device::cuda()))
            .item();
      },
      {"OneHotCategorical", "probs", "-0.3"});
}
