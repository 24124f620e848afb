// MultivariateNormal (default device): log_prob against a float64 host formula with
// broadcasting, finite-difference gradients, moments of rsample, the closed
// form KL against Monte Carlo, expand, and parameter validation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/distributions.hpp"

using namespace cuvi;
using namespace cuvi::testing;

namespace {

constexpr double kLog2Pi = 1.8378770664093453;

// `count` lower-triangular D x D matrices: strictly-lower entries in
// [-0.5, 0.5], diagonal in [1, 2], exact zeros above (well conditioned).
std::vector<float> random_tril(int64_t count, int64_t D, std::mt19937& gen) {
  std::uniform_real_distribution<float> off(-0.5f, 0.5f), diag(1.0f, 2.0f);
  std::vector<float> v(static_cast<size_t>(count * D * D), 0.0f);
  for (int64_t m = 0; m < count; ++m)
    for (int64_t i = 0; i < D; ++i)
      for (int64_t j = 0; j <= i; ++j) v[static_cast<size_t>((m * D + i) * D + j)] = i == j ? diag(gen) : off(gen);
  return v;
}

// log N(x; loc, L L^T) in float64 for one vector.
double mvn_log_prob_host(const float* x, const float* loc, const float* L, int64_t D) {
  std::vector<double> z(static_cast<size_t>(D));
  double maha = 0, half_log_det = 0;
  for (int64_t i = 0; i < D; ++i) {
    double acc = static_cast<double>(x[i]) - loc[i];
    for (int64_t j = 0; j < i; ++j) acc -= static_cast<double>(L[i * D + j]) * z[static_cast<size_t>(j)];
    z[static_cast<size_t>(i)] = acc / L[i * D + i];
    maha += z[static_cast<size_t>(i)] * z[static_cast<size_t>(i)];
    half_log_det += std::log(static_cast<double>(L[i * D + i]));
  }
  return -0.5 * maha - half_log_det - 0.5 * static_cast<double>(D) * kLog2Pi;
}

dist::MultivariateNormal example_mvn(Device dev = default_device()) {
  const float L[9] = {1.2f, 0.0f, 0.0f, 0.4f, 0.8f, 0.0f, -0.3f, 0.5f, 1.5f};
  return dist::MultivariateNormal(tensor({0.5f, -1.0f, 2.0f}, dev), tensor(std::vector<float>(L, L + 9), {3, 3}, dev));
}

}  // namespace

TEST(MultivariateNormal, ShapesMeanVariance) {
  std::mt19937 gen(1);
  const int64_t D = 3;
  dist::MultivariateNormal d(random_tensor({4, 1, D}, gen, -1, 1), tensor(random_tril(2, D, gen), {2, D, D}));
  EXPECT_EQ(d.batch_shape(), (Shape{4, 2}));
  EXPECT_EQ(d.event_shape(), (Shape{D}));
  EXPECT_TRUE(d.has_rsample());
  EXPECT_EQ(d.rsample({5}).shape(), (Shape{5, 4, 2, D}));
  EXPECT_EQ(d.mean().shape(), (Shape{4, 2, D}));
  // variance = row sums of L * L.
  const auto var = d.variance().to_vector();
  const auto L = d.scale_tril().to_vector();
  ASSERT_EQ(var.size(), static_cast<size_t>(4 * 2 * D));
  for (int64_t b = 0; b < 4 * 2; ++b)
    for (int64_t i = 0; i < D; ++i) {
      double s = 0;
      for (int64_t j = 0; j < D; ++j) s += static_cast<double>(L[static_cast<size_t>(((b % 2) * D + i) * D + j)]) *
                                          L[static_cast<size_t>(((b % 2) * D + i) * D + j)];
      EXPECT_NEAR(var[static_cast<size_t>(b * D + i)], s, 1e-6 + 1e-6 * s);
    }
  dist::Dist e = d.expand({3, 4, 2});
  EXPECT_EQ(e.batch_shape(), (Shape{3, 4, 2}));
  EXPECT_EQ(e.log_prob(zeros({D})).shape(), (Shape{3, 4, 2}));
  expect_error<ShapeError>([&] { d.expand({3}); }, {"MultivariateNormal", "expand"});
}

// Float32 log_prob vs float64: a D = 4 solve is a few roundings per entry
// (~1e-6 relative on |z|^2 ~ 1..10) plus float logs: 1e-5 abs + 2e-5 rel.
TEST(MultivariateNormal, LogProbMatchesHostFormulaWithBroadcasting) {
  std::mt19937 gen(5);
  const int64_t D = 4;
  // x [5, 1, 1, D], loc [3, D], scale_tril [2, 1, D, D] -> log_prob [5, 2, 3].
  Tensor x = random_tensor({5, 1, 1, D}, gen, -2, 2);
  Tensor loc = random_tensor({3, D}, gen, -1, 1);
  Tensor L = tensor(random_tril(2, D, gen), {2, 1, D, D});
  dist::MultivariateNormal d(loc, L);
  EXPECT_EQ(d.batch_shape(), (Shape{2, 3}));
  Tensor lp = d.log_prob(x);
  ASSERT_EQ(lp.shape(), (Shape{5, 2, 3}));
  const auto xv = x.to_vector(), lv = loc.to_vector(), Lv = L.to_vector();
  std::vector<double> want;
  for (int64_t a = 0; a < 5; ++a)
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t c = 0; c < 3; ++c)
        want.push_back(mvn_log_prob_host(xv.data() + a * D, lv.data() + c * D, Lv.data() + b * D * D, D));
  expect_close(lp.to_vector(), want, 1e-5, 2e-5, "log_prob");
}

TEST(MultivariateNormal, GradcheckValueLocScaleTril) {
  std::mt19937 gen(9);
  const int64_t D = 3;
  Tensor x = random_tensor({4, 1, D}, gen, -2, 2);
  Tensor loc = random_tensor({2, D}, gen, -1, 1);
  Tensor L = tensor(random_tril(1, D, gen), {D, D});
  // tril() first: the finite differences also perturb the upper triangle,
  // which a scale_tril must not have (validation) and log_prob ignores.
  gradcheck(
      [](const std::vector<Tensor>& in) { return dist::MultivariateNormal(in[1], tril(in[2])).log_prob(in[0]); },
      {x, loc, L});
}

TEST(MultivariateNormal, KlGradcheck) {
  std::mt19937 gen(10);
  const int64_t D = 3;
  Tensor lq = random_tensor({2, D}, gen, -1, 1), lp = random_tensor({D}, gen, -1, 1);
  Tensor sq = tensor(random_tril(2, D, gen), {2, D, D}), sp = tensor(random_tril(1, D, gen), {D, D});
  gradcheck(
      [](const std::vector<Tensor>& in) {
        return dist::kl_divergence(dist::MultivariateNormal(in[0], tril(in[1])),
                                   dist::MultivariateNormal(in[2], tril(in[3])));
      },
      {lq, sq, lp, sp});
}

// Moments of 2e5 draws. For a Gaussian, SE(mean_i) = sqrt(S_ii / n) and the
// sample covariance's SE is sqrt((S_ii S_jj + S_ij^2) / n) (the variance of a
// product of two centred jointly Gaussian variables). Each within 5 SE.
TEST(MultivariateNormal, RsampleMeanAndCovariance) {
  set_seed(77);
  dist::MultivariateNormal d = example_mvn();
  const int64_t n = 200000, D = 3;
  const auto xs = d.rsample({n}).to_vector();
  const auto mu = d.loc().to_vector(), L = d.scale_tril().to_vector();
  double S[3][3];
  for (int i = 0; i < D; ++i)
    for (int j = 0; j < D; ++j) {
      S[i][j] = 0;
      for (int k = 0; k < D; ++k) S[i][j] += static_cast<double>(L[i * D + k]) * L[j * D + k];
    }
  double m[3] = {0, 0, 0};
  for (int64_t r = 0; r < n; ++r)
    for (int i = 0; i < D; ++i) m[i] += xs[static_cast<size_t>(r * D + i)];
  for (int i = 0; i < D; ++i) {
    m[i] /= n;
    EXPECT_NEAR(m[i], mu[i], 5 * std::sqrt(S[i][i] / n)) << "mean " << i;
  }
  for (int i = 0; i < D; ++i)
    for (int j = 0; j <= i; ++j) {
      double c = 0;
      for (int64_t r = 0; r < n; ++r)
        c += (xs[static_cast<size_t>(r * D + i)] - m[i]) * (xs[static_cast<size_t>(r * D + j)] - m[j]);
      c /= (n - 1);
      EXPECT_NEAR(c, S[i][j], 5 * std::sqrt((S[i][i] * S[j][j] + S[i][j] * S[i][j]) / n)) << "cov " << i << j;
    }
}

TEST(MultivariateNormal, RsampleIsDifferentiable) {
  Tensor loc = tensor({0.1f, 0.2f}).requires_grad_();
  Tensor L = tensor({1.0f, 0.0f, 0.5f, 2.0f}, {2, 2}).requires_grad_();
  set_seed(3);
  Tensor x = dist::MultivariateNormal(loc, L).rsample({7});
  set_seed(3);
  Tensor eps = randn({7, 2});
  sum(x).backward();
  // d sum(loc + L eps) / d loc = n; / d L_ij = sum_r eps_rj.
  const auto gl = loc.grad().to_vector(), gL = L.grad().to_vector(), e = eps.to_vector();
  EXPECT_NEAR(gl[0], 7.0, 1e-6);
  EXPECT_NEAR(gl[1], 7.0, 1e-6);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      double s = 0;
      for (int r = 0; r < 7; ++r) s += e[static_cast<size_t>(r * 2 + j)];
      EXPECT_NEAR(gL[static_cast<size_t>(i * 2 + j)], s, 1e-5) << i << j;
    }
}

// KL(q || p) vs the Monte Carlo mean of log q(z) - log p(z), z ~ q, 2e5 draws,
// within 5 standard errors (SE = sample std / sqrt(n)).
TEST(MultivariateNormal, KlMatchesMonteCarlo) {
  dist::MultivariateNormal q = example_mvn();
  const float Lp[9] = {0.9f, 0.0f, 0.0f, -0.2f, 1.3f, 0.0f, 0.6f, 0.1f, 0.7f};
  dist::MultivariateNormal p(tensor({0.0f, -0.5f, 1.0f}), tensor(std::vector<float>(Lp, Lp + 9), {3, 3}));
  ASSERT_TRUE(dist::has_kl(q, p));
  set_seed(31);
  const int64_t n = 200000;
  Tensor z = q.sample({n});
  const auto f = (q.log_prob(z) - p.log_prob(z)).to_vector();
  ASSERT_EQ(static_cast<int64_t>(f.size()), n);
  const cuvi::testing::McEstimate e = cuvi::testing::mc_estimate(f);  // SE = sample std / sqrt(n)
  const Tensor kl = dist::kl_divergence(q, p);
  EXPECT_EQ(kl.dim(), 0);
  EXPECT_NEAR(kl.item(), e.mean, 5 * e.se);
  // KL(q || q) = 0 (float32 rounding of tr = D and the log dets cancel).
  EXPECT_NEAR(dist::kl_divergence(q, q).item(), 0.0, 1e-5);
}

TEST(MultivariateNormal, KlBroadcastsBatchDims) {
  std::mt19937 gen(4);
  const int64_t D = 3;
  Tensor lq = random_tensor({2, D}, gen, -1, 1), lp = random_tensor({D}, gen, -1, 1);
  Tensor sq = tensor(random_tril(2, D, gen), {2, D, D}), sp = tensor(random_tril(1, D, gen), {D, D});
  Tensor kl = dist::kl_divergence(dist::MultivariateNormal(lq, sq), dist::MultivariateNormal(lp, sp));
  ASSERT_EQ(kl.shape(), (Shape{2}));
  for (int64_t b = 0; b < 2; ++b) {
    dist::MultivariateNormal qb(lq.narrow(0, b, 1).squeeze(0), sq.narrow(0, b, 1).squeeze(0));
    Tensor one = dist::kl_divergence(qb, dist::MultivariateNormal(lp, sp));
    EXPECT_NEAR(kl.to_vector()[static_cast<size_t>(b)], one.item(), 1e-6 + 1e-6 * std::fabs(one.item()));
  }
}

TEST(MultivariateNormal, ValidationNamesParameterAndSite) {
  Tensor loc = zeros({2});
  expect_error<ValueError>([&] { dist::MultivariateNormal(loc, tensor({1.0f, 0.0f, 0.3f, -0.5f}, {2, 2})); },
                           {"MultivariateNormal", "scale_tril", "positive", "-0.5"});
  expect_error<ValueError>([&] { dist::MultivariateNormal(loc, tensor({1.0f, 0.0f, NAN, 1.0f}, {2, 2})); },
                           {"MultivariateNormal", "scale_tril", "finite"});
  expect_error<ValueError>([&] { dist::MultivariateNormal(loc, tensor({1.0f, 0.2f, 0.3f, 1.0f}, {2, 2})); },
                           {"MultivariateNormal", "scale_tril", "lower triangular"});
  {
    dist::detail::SiteScope site("z_latent");
    expect_error<ValueError>([&] { dist::MultivariateNormal(loc, tensor({0.0f, 0.0f, 0.0f, 1.0f}, {2, 2})); },
                             {"MultivariateNormal", "scale_tril", "site 'z_latent'"});
  }
  expect_error<ShapeError>([&] { dist::MultivariateNormal(zeros({3}), tensor({1.0f, 0.0f, 0.0f, 1.0f}, {2, 2})); },
                           {"MultivariateNormal", "scale_tril"});
  dist::MultivariateNormal ok(loc, tensor({1.0f, 0.0f, 0.0f, 1.0f}, {2, 2}));
  expect_error<ShapeError>([&] { ok.log_prob(zeros({3})); }, {"MultivariateNormal", "log_prob"});
  dist::set_validation(false);
  EXPECT_NO_THROW(dist::MultivariateNormal(loc, tensor({1.0f, 0.0f, 0.3f, -0.5f}, {2, 2})));
  // Built without validation, the bad factor is caught by the fused sum's
  // own pass (with and without gradients), inside a site.
  dist::MultivariateNormal bad(loc, tensor({1.0f, 0.0f, 0.3f, -0.5f}, {2, 2}));
  Tensor gl = zeros({2}).requires_grad_();
  dist::MultivariateNormal bad_g(gl, tensor({1.0f, 0.0f, 0.3f, -0.5f}, {2, 2}));
  dist::set_validation(true);
  dist::detail::SiteScope site("z_sum");
  expect_error<ValueError>([&] { bad.log_prob_sum(zeros({5, 2}), 1.0f); },
                           {"MultivariateNormal", "scale_tril", "-0.5", "site 'z_sum'"});
  expect_error<ValueError>([&] { bad_g.log_prob_sum(zeros({5, 2}), 1.0f); },
                           {"MultivariateNormal", "scale_tril", "-0.5", "site 'z_sum'"});
}

// The fused row pass (D <= kMvnMaxD) returns coef * sum(log_prob) and the
// same gradients for value, loc and scale_tril as the unfused log_prob.
TEST(MultivariateNormal, FusedLogProbSumMatchesUnfused) {
  std::mt19937 gen(21);
  const int64_t D = 5;
  Tensor x0 = random_tensor({6, 1, D}, gen, -2, 2);
  Tensor loc0 = random_tensor({2, D}, gen, -1, 1);
  Tensor L0 = tensor(random_tril(1, D, gen), {D, D});
  const float coef = -0.8f;
  auto run = [&](bool fused, std::vector<std::vector<float>>* g) {
    Tensor x = x0.detach().requires_grad_(), loc = loc0.detach().requires_grad_(), L = L0.detach().requires_grad_();
    dist::MultivariateNormal d(loc, L);
    Tensor y = fused ? d.log_prob_sum(x, coef) : sum(d.log_prob(x)) * coef;
    EXPECT_EQ(y.dim(), 0);
    (y * 2.0f).backward();
    g->push_back(x.grad().to_vector());
    g->push_back(loc.grad().to_vector());
    g->push_back(L.grad().to_vector());
    return static_cast<double>(y.item());
  };
  std::vector<std::vector<float>> ga, gb;
  const double a = run(true, &ga), b = run(false, &gb);
  // The same float32 row terms summed in another order: 1e-5 relative.
  EXPECT_NEAR(a, b, 1e-5 * std::max(1.0, std::fabs(b)));
  const char* what[3] = {"d/dx", "d/dloc", "d/dL"};
  for (int k = 0; k < 3; ++k) expect_close(ga[k], std::vector<double>(gb[k].begin(), gb[k].end()), 1e-6, 1e-5, what[k]);
  // Above the diagonal the gradient is zero (only the lower triangle is read).
  for (int64_t i = 0; i < D; ++i)
    for (int64_t j = i + 1; j < D; ++j) EXPECT_EQ(ga[2][static_cast<size_t>(i * D + j)], 0.0f);
}

// Events above the row kernel's register limit (D > 32) go through the
// batched triangular solve; both paths agree with the host formula and
// validation still names the parameter.
TEST(MultivariateNormal, LargeEventMatchesHostFormula) {
  std::mt19937 gen(22);
  const int64_t D = 40;
  Tensor x = random_tensor({3, D}, gen, -2, 2);
  Tensor loc = random_tensor({D}, gen, -1, 1);
  Tensor L = tensor(random_tril(1, D, gen), {D, D}).requires_grad_();
  dist::MultivariateNormal d(loc, L);
  Tensor lp = d.log_prob(x);
  const auto xv = x.to_vector(), lv = loc.to_vector(), Lv = L.to_vector();
  std::vector<double> want;
  for (int64_t a = 0; a < 3; ++a) want.push_back(mvn_log_prob_host(xv.data() + a * D, lv.data(), Lv.data(), D));
  // 40-term substitutions in float32: 1e-4 absolute + 1e-4 relative.
  expect_close(lp.to_vector(), want, 1e-4, 1e-4, "log_prob D=40");
  double tot = 0;
  for (double w : want) tot += w;
  EXPECT_NEAR(d.log_prob_sum(x, 1.0f).item(), tot, 1e-4 * std::fabs(tot) + 1e-3);
  std::vector<float> bad = Lv;
  bad[static_cast<size_t>(7 * D + 7)] = -1.0f;
  expect_error<ValueError>([&] { dist::MultivariateNormal(loc, tensor(bad, {D, D})); },
                           {"MultivariateNormal", "scale_tril", "positive diagonal", "-1"});
}

TEST(MultivariateNormal, FromCovarianceMatchesTheDensityAndItsGradient) {
  // log N(x; loc, S) from S itself, in float64 on the host: -1/2 (x-m)^T
  // S^{-1} (x-m) - 1/2 log det S - D/2 log 2 pi, via a double Cholesky.
  std::mt19937 gen(21);
  const int64_t D = 4;
  const Tensor B = random_tensor({D, D}, gen, -1.0f, 1.0f);
  const Tensor S = matmul(B, B.t()) + diag_embed(full({D}, 0.7f));
  const Tensor loc = random_tensor({D}, gen, -1.0f, 1.0f), x = random_tensor({5, D}, gen, -2.0f, 2.0f);
  const auto d = dist::MultivariateNormal::from_covariance(loc, S);
  const auto lp = d.log_prob(x).to_vector();
  const auto s = S.to_vector(), xv = x.to_vector(), m = loc.to_vector();
  std::vector<double> L(static_cast<size_t>(D * D), 0.0);
  for (int64_t i = 0; i < D; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double v = s[static_cast<size_t>(i * D + j)];
      for (int64_t k = 0; k < j; ++k) v -= L[static_cast<size_t>(i * D + k)] * L[static_cast<size_t>(j * D + k)];
      L[static_cast<size_t>(i * D + j)] = i == j ? std::sqrt(v) : v / L[static_cast<size_t>(j * D + j)];
    }
  std::vector<float> Lf(L.begin(), L.end());
  for (int r = 0; r < 5; ++r) {
    const double want = mvn_log_prob_host(xv.data() + r * D, m.data(), Lf.data(), D);
    EXPECT_NEAR(lp[static_cast<size_t>(r)], want, 2e-5 * (1.0 + std::fabs(want))) << r;
  }
  // Gradients reach the covariance through cholesky (symmetric S = A A^T + c I
  // keeps every finite-difference step positive definite).
  gradcheck(
      [](const std::vector<Tensor>& in) {
        const Tensor cov = matmul(in[1], in[1].t()) + diag_embed(full({4}, 0.7f, in[1].device()));
        return dist::MultivariateNormal::from_covariance(in[2], cov).log_prob(in[0]);
      },
      {x, B, loc});
  expect_error<ValueError>(
      [] { dist::MultivariateNormal::from_covariance(zeros({2}), tensor({1.0f, 2.0f, 2.0f, 1.0f}, {2, 2})).log_prob(zeros({2})).item(); },
      {"cholesky", "not positive definite"});
}
