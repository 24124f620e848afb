// RenyiELBO (Pyro's): exact at the posterior, the ELBO at one particle, a
// bound that tightens with K, pathwise gradients against central
// differences at fixed noise, IWAE training to the posterior, errors.
// Model: z ~ N(0, 1), x_i ~ N(z, 1) for two observations; posterior
// N(sum x / 3, 1 / 3), log p(x) = log N(x; 0, I + 1 1^T).
// Runs on the default device (cpu, and cuda:0 in the gpu suite).
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

const float kX0 = 0.3f, kX1 = 1.5f;

void model() {
  Tensor z = sample("z", dist::Normal(0.0f, 1.0f));
  auto p = plate("data", 2);
  sample("x", dist::Normal(z, 1.0f), tensor({kX0, kX1}));
}

// q = N(loc, scale) with the params given as their starting values.
auto guide_at(float loc, float scale) {
  return [loc, scale] {
    Tensor l = param("loc", loc);
    Tensor s = param("scale", scale, constraints::positive);
    sample("z", dist::Normal(l, s));
  };
}

// log N(x; 0, I + 1 1^T) for the two observations, in double.
double log_evidence() {
  const double a = 2.0, b = 1.0;  // covariance [[a, b], [b, a]]
  const double det = a * a - b * b, x0 = kX0, x1 = kX1;
  const double quad = (a * x0 * x0 - 2 * b * x0 * x1 + a * x1 * x1) / det;
  return -0.5 * quad - 0.5 * std::log(det) - std::log(2 * M_PI);
}

const float kPostLoc = (kX0 + kX1) / 3.0f;
const float kPostScale = static_cast<float>(std::sqrt(1.0 / 3.0));

double loss_of(const infer::ELBO& elbo, float loc, float scale, uint64_t seed) {
  fresh(seed);
  return infer::detail::svi_evaluate(model, guide_at(loc, scale), elbo).item();
}

}  // namespace

TEST(RenyiELBO, ExactAtThePosteriorForEveryAlphaAndK) {
  // Under the exact posterior every w_k = log p(x): no variance at all.
  for (const float alpha : {0.0f, 0.5f, -1.0f, 2.0f})
    for (const bool vec : {false, true}) {
      const infer::RenyiELBO elbo({.alpha = alpha, .num_particles = 4, .vectorize_particles = vec});
      EXPECT_NEAR(loss_of(elbo, kPostLoc, kPostScale, 1), -log_evidence(), 2e-5)
          << "alpha " << alpha << " vectorised " << vec;
    }
}

TEST(RenyiELBO, OneParticleIsTheELBO) {
  const infer::RenyiELBO renyi({.alpha = 0.3f, .num_particles = 1});
  EXPECT_NEAR(loss_of(renyi, 0.2f, 0.9f, 2), loss_of(infer::Trace_ELBO(), 0.2f, 0.9f, 2), 1e-5);
}

TEST(RenyiELBO, TheImportanceWeightedBoundTightensWithK) {
  // A poor guide: E[-loss] for K = 1 (the ELBO) < K = 16 (IWAE) <= log p(x).
  // Means over n evaluations; their standard errors (from the draws) bound
  // the comparisons at 4 of them.
  const int n = 400;
  auto stats = [&](int K) {
    const infer::RenyiELBO elbo({.alpha = 0.0f, .num_particles = K, .vectorize_particles = true});
    double s = 0, s2 = 0;
    fresh(3 + static_cast<uint64_t>(K));
    for (int i = 0; i < n; ++i) {
      const double b = -infer::detail::svi_evaluate(model, guide_at(-0.5f, 2.0f), elbo).item();
      s += b;
      s2 += b * b;
    }
    const double m = s / n;
    return std::make_pair(m, std::sqrt(std::max(0.0, s2 / n - m * m) / n));
  };
  const auto [m1, se1] = stats(1);
  const auto [m16, se16] = stats(16);
  EXPECT_GT(m16 - m1, 4 * std::hypot(se1, se16)) << "K=1 " << m1 << " K=16 " << m16;
  EXPECT_LT(m16, log_evidence() + 4 * se16);
}

TEST(RenyiELBO, GradientsArePathwiseAtFixedNoise) {
  // The same seed gives the same eps draws, so the loss is a smooth
  // function of (loc, log scale); its central differences against the
  // surrogate's gradient.
  for (const bool vec : {false, true}) {
    const infer::RenyiELBO elbo({.alpha = 0.4f, .num_particles = 3, .vectorize_particles = vec});
    fresh(4);
    const auto guide = guide_at(0.1f, 0.8f);
    const infer::ELBOResult r = elbo.compute(model, guide);
    r.surrogate.backward();
    const double g_loc = param_store().unconstrained("loc").grad().item();
    const double g_log_scale = param_store().unconstrained("scale").grad().item();
    const double h = 1e-3;
    auto at = [&](float dl, float ds) { return loss_of(elbo, 0.1f + dl, 0.8f * std::exp(ds), 4); };
    EXPECT_NEAR(g_loc, (at(h, 0) - at(-h, 0)) / (2 * h), 2e-3 + 1e-2 * std::abs(g_loc)) << "vectorised " << vec;
    EXPECT_NEAR(g_log_scale, (at(0, h) - at(0, -h)) / (2 * h), 2e-3 + 1e-2 * std::abs(g_log_scale))
        << "vectorised " << vec;
  }
}

TEST(RenyiELBO, IWAETrainingReachesThePosterior) {
  // A guide of the posterior's family maximises the bound at the posterior
  // (where every weight is equal); near it the importance-weighted
  // gradient is small against its noise, so the rate decays (ClippedAdam,
  // 0.05 down to 0.001 over 3000 steps, as the minibatch acceptance test).
  // Over 12 seeds the final loc and scale spread with an sd of 0.033 about
  // the posterior's (means 0.588 and 0.573 against 0.600 and 0.577): the
  // tolerance is 4 of those sds, 0.13 (a quarter of the posterior sd).
  fresh(5);
  const int steps = 3000;
  infer::SVI svi(model, guide_at(0.0f, 1.0f),
                 optim::ClippedAdam({.lr = 0.05f, .lrd = static_cast<float>(std::pow(0.02, 1.0 / steps))}),
                 infer::RenyiELBO({.alpha = 0.0f, .num_particles = 8, .vectorize_particles = true}));
  for (int k = 0; k < steps; ++k) svi.step();
  EXPECT_NEAR(param_store().get("loc").item(), kPostLoc, 0.13);
  EXPECT_NEAR(param_store().get("scale").item(), kPostScale, 0.13);
}

TEST(RenyiELBO, ErrorsNameTheCause) {
  expect_error<ValueError>([] { infer::RenyiELBO({.alpha = 1.0f}); }, {"alpha = 1", "Trace_ELBO"});
  expect_error<ValueError>([] { infer::RenyiELBO({.num_particles = 0}); }, {"num_particles must be >= 1"});
  fresh(6);
  auto discrete_guide = [] {
    Tensor p = param("p", 0.5f, constraints::unit_interval);
    sample("b", dist::Bernoulli(p));
  };
  auto discrete_model = [] { sample("b", dist::Bernoulli(0.3f)); };
  expect_error<ValueError>(
      [&] { infer::detail::svi_evaluate(discrete_model, discrete_guide, infer::RenyiELBO()); },
      {"guide site 'b' (Bernoulli) has no reparameterised sampler"});
}
