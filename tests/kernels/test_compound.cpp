// Kernel-level tests of the compound and zero-inflated count families and
// AsymmetricLaplace (kernels/dist/compound.hpp, asymmetric_laplace.hpp):
// log-densities and gradients against Pyro's own implementations
// (tests/refdata/pyro_compound.csv, float64 autograd), the samplers against
// their pmfs / CDF (sampler_checks.hpp), and the edges.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "csv.hpp"
#include "kernels/dist/asymmetric_laplace.hpp"
#include "kernels/dist/compound.hpp"
#include "sampler_checks.hpp"

using namespace cuvi::kern;
using namespace cuvi::testing;

namespace {

// One row of the reference file against family F. The kernel sees the
// parameters and the value rounded to float, so its log_prob may differ from
// the float64 one by sum_i |dlogp/dp_i| |p_i| 2^-24 (and the same for x) on
// top of its own float32 rounding (1e-5 relative, as the shared reference
// data's README suggests for log_prob in ordinary ranges). Gradients: 1e-4
// absolute plus 1e-4 relative (float32 quotients and sigmoids, the double
// digammas rounded to float, and the same parameter rounding through second
// derivatives of moderate size).
template <class F>
void check_row(const Csv& c, const std::vector<double>& r, int row) {
  const int np = F::kNumParams;
  float p[3];
  for (int i = 0; i < np; ++i) p[i] = static_cast<float>(r[static_cast<size_t>(c.need("p" + std::to_string(i)))]);
  const double x = r[static_cast<size_t>(c.need("x"))];
  const double lp = r[static_cast<size_t>(c.need("log_prob"))];
  const double gx = r[static_cast<size_t>(c.need("dlogp_dx"))];
  std::vector<double> gp(3);
  double cond = std::fabs(gx * x);
  for (int i = 0; i < np; ++i) {
    gp[static_cast<size_t>(i)] = r[static_cast<size_t>(c.need("dlogp_dp" + std::to_string(i)))];
    cond += std::fabs(gp[static_cast<size_t>(i)] * p[i]);
  }
  const std::string where = std::string(F::kName) + " row " + std::to_string(row) + " x=" + std::to_string(x);
  const double tol_lp = 1e-5 * (1.0 + std::fabs(lp)) + cond * 6e-8 * 2.0;
  EXPECT_NEAR(F::log_prob(static_cast<float>(x), p), lp, tol_lp) << where;
  float dx = 0.0f, dp[3] = {0, 0, 0};
  const float lp2 = F::log_prob_grad(static_cast<float>(x), p, &dx, dp);
  EXPECT_NEAR(lp2, lp, tol_lp) << where << " (log_prob_grad)";
  EXPECT_NEAR(dx, gx, 1e-4 * (1.0 + std::fabs(gx))) << where << " d/dx";
  if constexpr (std::is_same_v<F, BetaBinomial> || std::is_same_v<F, BinomialLogits>) {
    // Pyro (BetaBinomial: log C(n, k) under torch.no_grad()) and torch
    // (Binomial) treat total_count as an integer constant in log C(n, k),
    // so their total_count gradients omit d/dn log C(n, k) = digamma(n + 1)
    // - digamma(n - k + 1); cuvi differentiates the whole log-pmf in n, as
    // its Binomial always has. Added back here, the digammas as central
    // differences of std::lgamma in double (step 1e-4: error ~1e-8).
    const int in = std::is_same_v<F, BetaBinomial> ? 2 : 0;
    const double n = p[in], h = 1e-4;
    auto dig = [h](double v) { return (std::lgamma(v + h) - std::lgamma(v - h)) / (2 * h); };
    gp[static_cast<size_t>(in)] += dig(n + 1) - dig(n - x + 1);
  }
  for (int i = 0; i < np; ++i)
    EXPECT_NEAR(dp[i], gp[static_cast<size_t>(i)], 1e-4 * (1.0 + std::fabs(gp[static_cast<size_t>(i)])))
        << where << " d/d" << F::param_name(i);
}

}  // namespace

TEST(CompoundCsv, LogProbAndGradientsMatchPyro) {
  const Csv c = read_csv("../refdata/pyro_compound.csv");
  std::vector<int> seen(9, 0);
  for (size_t i = 0; i < c.rows.size(); ++i) {
    const auto& r = c.rows[i];
    const int code = static_cast<int>(r[static_cast<size_t>(c.need("family"))]);
    ASSERT_TRUE(code >= 0 && code < 9) << code;
    seen[static_cast<size_t>(code)]++;
    const int row = static_cast<int>(i);
    switch (code) {
      case 0: check_row<BetaBinomial>(c, r, row); break;
      case 1: check_row<GammaPoisson>(c, r, row); break;
      case 2: check_row<NegativeBinomialLogits>(c, r, row); break;
      case 3: check_row<ZeroInflatedPoisson>(c, r, row); break;
      case 4: check_row<ZeroInflatedPoissonLogits>(c, r, row); break;
      case 5: check_row<ZeroInflatedNegativeBinomial>(c, r, row); break;
      case 6: check_row<ZeroInflatedNegativeBinomialLogits>(c, r, row); break;
      case 7: check_row<AsymmetricLaplace>(c, r, row); break;
      default: check_row<BinomialLogits>(c, r, row); break;
    }
  }
  for (int k = 0; k < 9; ++k) EXPECT_GE(seen[static_cast<size_t>(k)], 20) << "family " << k;
}

namespace {

// Mean, variance and fourth central moment of a pmf on {0, ..., kmax}
// (float64 sums; kmax far enough out that the tail is negligible).
struct PmfMoments {
  double mean = 0, var = 0, mu4 = 0;
};
PmfMoments pmf_moments(const std::function<double(double)>& lpmf, double kmax) {
  PmfMoments m;
  for (double k = 0; k <= kmax; k += 1) m.mean += k * std::exp(lpmf(k));
  for (double k = 0; k <= kmax; k += 1) {
    const double d = k - m.mean, w = std::exp(lpmf(k));
    m.var += d * d * w;
    m.mu4 += d * d * d * d * w;
  }
  return m;
}

// Draws of F at p: chi-square against lpmf, moments against the pmf's; the
// kernel's mean() and variance() against the pmf's to 1e-5 relative (float32
// formulas; the pmf sums are float64).
template <class F>
void count_family_case(const float* p, const std::function<double(double)>& lpmf, double kmax, uint64_t seed,
                       const std::string& what) {
  const PmfMoments m = pmf_moments(lpmf, kmax);
  double total = 0;
  for (double k = 0; k <= kmax; k += 1) total += std::exp(lpmf(k));
  ASSERT_NEAR(total, 1.0, 1e-9) << what << ": pmf mass within kmax";
  EXPECT_NEAR(F::mean(p), m.mean, 1e-5 * (1 + m.mean)) << what;
  EXPECT_NEAR(F::variance(p), m.var, 1e-5 * (1 + m.var)) << what;
  count_case(draw<F>(p, kN, seed), lpmf, m.mean, m.var, m.mu4, kmax, what);
}

double lbeta(double a, double b) { return std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b); }
double beta_binomial_lpmf(double k, double a, double b, double n) {
  if (k > n) return -INFINITY;
  return std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1) + lbeta(k + a, n - k + b) - lbeta(a, b);
}
double nb_lpmf(double k, double r, double q) {
  return std::lgamma(k + r) - std::lgamma(k + 1) - std::lgamma(r) + r * std::log1p(-q) + k * std::log(q);
}
double poisson_lpmf(double k, double rate) { return k * std::log(rate) - rate - std::lgamma(k + 1); }
// Zero inflation of a base pmf with gate g.
double zi_lpmf(double k, double g, double base) {
  return k == 0 ? std::log(g + (1 - g) * std::exp(base)) : std::log1p(-g) + base;
}
double sigmoid(double l) { return 1 / (1 + std::exp(-l)); }

}  // namespace

TEST(CompoundSampler, BetaBinomial) {
  const float p[3] = {2.5f, 1.5f, 30.0f};
  count_family_case<BetaBinomial>(p, [](double k) { return beta_binomial_lpmf(k, 2.5, 1.5, 30); }, 30, 51,
                                  "BetaBinomial(2.5, 1.5, 30)");
  const float q[3] = {0.4f, 0.6f, 8.0f};  // U-shaped: mass piled at both ends
  count_family_case<BetaBinomial>(q, [](double k) { return beta_binomial_lpmf(k, 0.4, 0.6, 8); }, 8, 52,
                                  "BetaBinomial(0.4, 0.6, 8)");
}

TEST(CompoundSampler, GammaPoisson) {
  // GammaPoisson(a, b) is NegativeBinomial(a, 1 / (1 + b)).
  const float p[2] = {3.0f, 0.7f};
  count_family_case<GammaPoisson>(p, [](double k) { return nb_lpmf(k, 3.0, 1 / 1.7); }, 150, 53, "GammaPoisson(3, 0.7)");
  const float q[2] = {0.5f, 0.2f};
  count_family_case<GammaPoisson>(q, [](double k) { return nb_lpmf(k, 0.5, 1 / 1.2); }, 400, 54,
                                  "GammaPoisson(0.5, 0.2)");
}

TEST(CompoundSampler, NegativeBinomialLogits) {
  const float p[2] = {2.0f, 0.8f};
  count_family_case<NegativeBinomialLogits>(p, [](double k) { return nb_lpmf(k, 2.0, sigmoid(0.8)); }, 200, 55,
                                            "NegativeBinomial(2, logits 0.8)");
}

TEST(CompoundSampler, BinomialLogits) {
  // Binomial's sampler at probs = sigmoid(logits): inversion and BTRS.
  for (auto [n, l, seed] : {std::tuple{20.0f, -1.0f, 61}, std::tuple{300.0f, 1.5f, 62}}) {
    const float p[2] = {n, l};
    const double q = sigmoid(l);
    count_family_case<BinomialLogits>(
        p,
        [&](double k) -> double {
          if (k > n) return -INFINITY;
          return std::lgamma(n + 1.0) - std::lgamma(k + 1) - std::lgamma(n - k + 1) + k * std::log(q) +
                 (n - k) * std::log1p(-q);
        },
        n, static_cast<uint64_t>(seed), "Binomial(" + std::to_string(n) + ", logits " + std::to_string(l) + ")");
  }
}

TEST(CompoundSampler, ZeroInflatedPoisson) {
  const float p[2] = {4.0f, 0.3f};
  count_family_case<ZeroInflatedPoisson>(p, [](double k) { return zi_lpmf(k, 0.3, poisson_lpmf(k, 4.0)); }, 60, 56,
                                         "ZeroInflatedPoisson(4, gate 0.3)");
  const float q[2] = {4.0f, -1.2f};
  count_family_case<ZeroInflatedPoissonLogits>(
      q, [](double k) { return zi_lpmf(k, sigmoid(-1.2), poisson_lpmf(k, 4.0)); }, 60, 57,
      "ZeroInflatedPoisson(4, gate_logits -1.2)");
}

TEST(CompoundSampler, ZeroInflatedNegativeBinomial) {
  const float p[3] = {3.0f, 0.6f, 0.25f};
  count_family_case<ZeroInflatedNegativeBinomial>(
      p, [](double k) { return zi_lpmf(k, 0.25, nb_lpmf(k, 3.0, 0.6)); }, 200, 58,
      "ZeroInflatedNegativeBinomial(3, 0.6, gate 0.25)");
  const float q[3] = {3.0f, 0.4f, 0.5f};
  count_family_case<ZeroInflatedNegativeBinomialLogits>(
      q, [](double k) { return zi_lpmf(k, sigmoid(0.5), nb_lpmf(k, 3.0, sigmoid(0.4))); }, 250, 59,
      "ZeroInflatedNegativeBinomial(3, logits 0.4, gate_logits 0.5)");
}

TEST(CompoundSampler, AsymmetricLaplace) {
  const double loc = 0.5, s = 1.3, k = 1.8;
  const float p[3] = {0.5f, 1.3f, 1.8f};
  const auto xs = draw<AsymmetricLaplace>(p, kN, 60);
  // x - loc = r E2 - l E1 (l = s k, r = s / k): cumulants k_n = (n-1)! (r^n + (-l)^n).
  const double l = s * k, r = s / k;
  const double var = l * l + r * r, mu4 = 6 * (l * l * l * l + r * r * r * r) + 3 * var * var;
  EXPECT_NEAR(AsymmetricLaplace::mean(p), loc + r - l, 1e-6);
  EXPECT_NEAR(AsymmetricLaplace::variance(p), var, 1e-5 * var);
  check_moments(xs, loc + r - l, var, mu4, "AsymmetricLaplace");
  check_ks(xs,
           [&](double x) {
             const double z = (x - loc) / s;
             return z < 0 ? k * k / (1 + k * k) * std::exp(z / k) : 1 - std::exp(-k * z) / (1 + k * k);
           },
           "AsymmetricLaplace");
  // E x = loc + s (1/k - k); E x^2 = s^2 (k^2 + 1/k^2) + (E x)^2.
  const double m = loc + s * (1 / k - k);
  const double dm[3] = {1.0, 1 / k - k, s * (-1 / (k * k) - 1)};
  const double d2[3] = {2 * m, 2 * s * (k * k + 1 / (k * k)) + 2 * m * dm[1],
                        s * s * (2 * k - 2 / (k * k * k)) + 2 * m * dm[2]};
  check_pathwise<AsymmetricLaplace>(xs, p, dm, d2, "AsymmetricLaplace");
}

// The forms agree where both are exact, and the logits forms stay finite
// where a probability would round to 0 or 1.
TEST(CompoundEdges, ParameterisationsAndTails) {
  // Gate 0: the base family exactly; gate 1: the point mass at 0.
  const float zip0[2] = {3.0f, 0.0f}, pois[1] = {3.0f};
  for (float x : {0.0f, 1.0f, 5.0f}) EXPECT_FLOAT_EQ(ZeroInflatedPoisson::log_prob(x, zip0), Poisson::log_prob(x, pois));
  const float zip1[2] = {3.0f, 1.0f};
  EXPECT_EQ(ZeroInflatedPoisson::log_prob(0.0f, zip1), 0.0f);
  EXPECT_EQ(ZeroInflatedPoisson::log_prob(2.0f, zip1), -kInfF);
  // Probs and logits forms.
  const float g = 0.3f, lg = static_cast<float>(std::log(0.3 / 0.7));
  const float zp[2] = {2.5f, g}, zl[2] = {2.5f, lg};
  for (float x : {0.0f, 1.0f, 7.0f}) {
    EXPECT_NEAR(ZeroInflatedPoisson::log_prob(x, zp), ZeroInflatedPoissonLogits::log_prob(x, zl), 2e-6);
    float dx, dpp[2], dpl[2];
    ZeroInflatedPoisson::log_prob_grad(x, zp, &dx, dpp);
    ZeroInflatedPoissonLogits::log_prob_grad(x, zl, &dx, dpl);
    EXPECT_NEAR(dpp[0], dpl[0], 1e-5);
    EXPECT_NEAR(dpp[1] * g * (1 - g), dpl[1], 1e-5);  // chain rule through sigmoid
  }
  const float nbp[2] = {2.0f, 0.75f}, nbl[2] = {2.0f, static_cast<float>(std::log(3.0))};
  for (float x : {0.0f, 4.0f}) EXPECT_NEAR(NegativeBinomial::log_prob(x, nbp), NegativeBinomialLogits::log_prob(x, nbl), 2e-6);
  // logits 40: probs would round to 1 (an invalid NegativeBinomial); here
  // log p(0) = -r softplus(40) = -80, and the gradients are finite.
  const float big[2] = {2.0f, 40.0f};
  EXPECT_EQ(NegativeBinomialLogits::bad_param(big), -1);
  EXPECT_NEAR(NegativeBinomialLogits::log_prob(0.0f, big), -80.0f, 1e-4);
  float dx, dp[3];
  NegativeBinomialLogits::log_prob_grad(3.0f, big, &dx, dp);
  EXPECT_TRUE(std::isfinite(dp[0]) && std::isfinite(dp[1]));
  // gate_logits -40: log(1 - g) = -4e-18, not log1p(-0) = 0 only by luck of rounding.
  const float zinb[3] = {2.0f, -1.0f, -40.0f};
  float lp = ZeroInflatedNegativeBinomialLogits::log_prob_grad(5.0f, zinb, &dx, dp);
  EXPECT_TRUE(std::isfinite(lp) && std::isfinite(dp[0]) && std::isfinite(dp[1]) && std::isfinite(dp[2]));
  EXPECT_NEAR(dp[2], -std::exp(-40.0), 1e-20);
  // BetaBinomial with total_count 0 is the point mass at 0.
  const float bb0[3] = {2.0f, 3.0f, 0.0f};
  EXPECT_EQ(BetaBinomial::log_prob(0.0f, bb0), 0.0f);
  EXPECT_EQ(BetaBinomial::log_prob(1.0f, bb0), -kInfF);
  cuvi::kern::ElemRng rng(1, 2, 3);
  EXPECT_EQ(BetaBinomial::sample(bb0, rng), 0.0f);
}

TEST(CompoundMeta, NamesAndParameterChecks) {
  EXPECT_STREQ(ZeroInflatedPoisson::param_name(1), "gate");
  EXPECT_STREQ(ZeroInflatedPoissonLogits::param_name(1), "gate_logits");
  EXPECT_STREQ(ZeroInflatedNegativeBinomialLogits::param_name(1), "logits");
  EXPECT_STREQ(ZeroInflatedNegativeBinomialLogits::param_name(2), "gate_logits");
  EXPECT_STREQ(BetaBinomial::param_name(2), "total_count");
  EXPECT_STREQ(AsymmetricLaplace::param_name(2), "asymmetry");
  const float bad_gate[2] = {1.0f, 1.5f}, bad_rate[2] = {-1.0f, 0.5f};
  EXPECT_EQ(ZeroInflatedPoisson::bad_param(bad_gate), 1);
  EXPECT_EQ(ZeroInflatedPoisson::bad_param(bad_rate), 0);
  const float nan_gl[2] = {1.0f, NAN};
  EXPECT_EQ(ZeroInflatedPoissonLogits::bad_param(nan_gl), 1);
  const float bb_frac[3] = {1.0f, 1.0f, 2.5f};
  EXPECT_EQ(BetaBinomial::bad_param(bb_frac), 2);
  const float al[3] = {0.0f, 1.0f, 0.0f};
  EXPECT_EQ(AsymmetricLaplace::bad_param(al), 2);
  EXPECT_TRUE(AsymmetricLaplace::kHasRsample);
  EXPECT_FALSE(ZeroInflatedNegativeBinomial::kHasRsample);
  const float bb[3] = {1.0f, 1.0f, 4.0f};
  EXPECT_FALSE(BetaBinomial::support_ok(5.0f, bb));
  EXPECT_TRUE(BetaBinomial::support_ok(4.0f, bb));
}
