// infer::Importance (Pyro's Importance with EmpiricalMarginal's weighted
// summaries) on the Normal-Normal model, whose evidence and posterior are
// known exactly: z ~ N(0, 1), x_i ~ N(z, 1) for five observations.
//   log p(x) = -n/2 log(2 pi) - 1/2 log(1 + n) - 1/2 (sum x^2 - (sum x)^2 / (1 + n)),
//   z | x ~ N(sum x / (1 + n), 1 / (1 + n)).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/infer.hpp"

using namespace cuvi;
using namespace cuvi::testing;

namespace {

const std::vector<float> kObs = {0.9f, 1.6f, 0.3f, 1.2f, 2.1f};

void model() {
  Tensor z = sample("z", dist::Normal(0.0f, 1.0f));
  auto p = plate("data", static_cast<int64_t>(kObs.size()));
  sample("x", dist::Normal(z, 1.0f), tensor(kObs));
}

double log_evidence() {
  const double n = static_cast<double>(kObs.size());
  double s = 0, s2 = 0;
  for (float x : kObs) {
    s += x;
    s2 += static_cast<double>(x) * x;
  }
  return -0.5 * n * std::log(2 * M_PI) - 0.5 * std::log(1 + n) - 0.5 * (s2 - s * s / (1 + n));
}

double post_mean() {
  double s = 0;
  for (float x : kObs) s += x;
  return s / (1.0 + static_cast<double>(kObs.size()));
}

}  // namespace

// Proposals from the prior, n = 20000. log_normalizer is log of the mean
// weight; by the delta method its standard error is sqrt(1/ESS - 1/n),
// and the self-normalised mean's is sqrt(sum wbar_k^2 (z_k - mean)^2):
// each estimate within 4 of them of the exact values.
TEST(Importance, PriorProposalsEstimateEvidenceAndPosterior) {
  fresh(1);
  const int n = 20000;
  const infer::ImportanceResult r = infer::make_importance(model, n)();
  ASSERT_EQ(r.log_weights.size(), static_cast<size_t>(n));
  ASSERT_EQ(r.samples.at("z").shape(), Shape({n}));
  const double ess = r.ess();
  EXPECT_GT(ess, 1.0);
  EXPECT_LT(ess, n);
  const double se_logz = std::sqrt(1.0 / ess - 1.0 / n);
  EXPECT_NEAR(r.log_normalizer(), log_evidence(), 4 * se_logz) << "se " << se_logz;
  const double m = r.weighted_mean("z")[0];
  const auto w = r.normalized_weights();
  const auto z = r.samples.at("z").to(Device::cpu()).to_vector();
  double v = 0;
  for (int k = 0; k < n; ++k) v += w[k] * w[k] * (z[k] - m) * (z[k] - m);
  EXPECT_NEAR(m, post_mean(), 4 * std::sqrt(v)) << "se " << std::sqrt(v);
  EXPECT_LT(std::sqrt(v), 0.02);  // the checks have power
}

// With the exact posterior as the guide every weight is p(x) itself:
// log w_k = log p(x) up to float32 rounding (1e-4), and ESS = n.
TEST(Importance, ExactGuideGivesConstantWeights) {
  fresh(2);
  const float m = static_cast<float>(post_mean()), s = static_cast<float>(1.0 / std::sqrt(1.0 + kObs.size()));
  auto guide = [m, s] { sample("z", dist::Normal(m, s)); };
  const infer::ImportanceResult r = infer::Importance(model, guide, 200)();
  for (double lw : r.log_weights) EXPECT_NEAR(lw, log_evidence(), 1e-4);
  EXPECT_NEAR(r.ess(), 200.0, 1e-2);
  EXPECT_NEAR(r.log_normalizer(), log_evidence(), 1e-4);
  expect_error<ValueError>([&] { r.weighted_mean("w"); }, {"Importance", "'w'"});
  expect_error<ValueError>([] { infer::make_importance(model, 0)(); }, {"Importance", "num_samples"});
}
