// LKJCholesky and its support constraint corr_cholesky: the bijection (unit
// rows, round trip, log|det J| against the reverse-mode Jacobian in
// float64), the density against its closed form for D = 2 and normalised
// for D = 3 (a Monte Carlo integral), the sampler's marginal correlations
// against their Beta law, and a correlation matrix fitted through the
// constraint by AutoNormal. Statistical checks state their standard errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/autoguide.hpp"
#include "ppl/infer.hpp"
#include "ppl/lkj.hpp"

using namespace cuvi;
using namespace cuvi::testing;

namespace {

std::vector<float> vec(const Tensor& t) { return t.detach().to(Device::cpu()).to_vector(); }

// The strictly lower entries of [..., n, n], packed row by row.
Tensor strictly_lower(const Tensor& l, int64_t n) {
  std::vector<int64_t> idx;
  for (int64_t i = 1; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) idx.push_back(i * n + j);
  Shape flat(l.shape().begin(), l.shape().end() - 1);
  flat.back() = n * n;
  return index_select(l.reshape(flat), -1, tensor_i64(idx, {static_cast<int64_t>(idx.size())}, l.device()));
}

double log_beta_fn(double a, double b) { return std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b); }

}  // namespace

TEST(CorrCholesky, TransformRoundTripAndLogDet) {
  fresh(1);
  std::mt19937 gen(2);
  const auto& c = constraints::corr_cholesky;
  EXPECT_EQ(constraints::from_name("corr_cholesky"), c);
  EXPECT_EQ(c->unconstrained_shape({5, 4, 4}), Shape({5, 6}));
  EXPECT_EQ(c->constrained_shape({6}), Shape({4, 4}));
  const int64_t n = 4;
  const Tensor u = random_tensor({3, 6}, gen, -2.0f, 2.0f);
  const Tensor l = c->transform(u);
  ASSERT_EQ(l.shape(), Shape({3, n, n}));
  EXPECT_EQ(vec(c->check(l)), (std::vector<float>{1, 1, 1}));
  const auto lv = vec(l);
  for (int b = 0; b < 3; ++b)
    for (int64_t i = 0; i < n; ++i) {
      double norm = 0;
      for (int64_t j = 0; j < n; ++j) norm += lv[b * 16 + i * n + j] * lv[b * 16 + i * n + j];
      EXPECT_NEAR(norm, 1.0, 1e-5) << "row " << i;
    }
  const auto back = vec(c->inverse(l)), uv = vec(u);
  for (size_t k = 0; k < uv.size(); ++k) EXPECT_NEAR(back[k], uv[k], 1e-4 * (1 + std::fabs(uv[k]))) << k;
  // log|det| of u -> the strictly lower entries, against the Jacobian.
  // Tolerance: entries carry float32 rounding; 1e-4 on a log det of O(1-10).
  const auto ladj = vec(c->log_abs_det_jacobian(u, l));
  for (int b = 0; b < 3; ++b) {
    const Tensor ub = narrow(u, 0, b, 1).reshape({6});
    const auto J = jacobian([&](const Tensor& v) { return strictly_lower(c->transform(v), n); }, ub);
    EXPECT_NEAR(ladj[b], log_abs_det(J), 1e-4) << b;
  }
  // Far in the tails the map stays finite and its rows unit.
  const Tensor far = tensor({20.0f, -25.0f, 30.0f});
  const Tensor lf = c->transform(far);
  for (float v : vec(lf)) EXPECT_TRUE(std::isfinite(v));
  EXPECT_TRUE(std::isfinite(c->log_abs_det_jacobian(far, lf).item()));
  EXPECT_EQ(c->check(lf).item(), 1.0f);
  // Not a correlation factor: a row of norm 2.
  EXPECT_EQ(c->check(tensor({1.0f, 0.0f, 0.0f, 2.0f}, {2, 2})).item(), 0.0f);
}

// D = 2: L = [[1, 0], [r, sqrt(1 - r^2)]] and p(r) = (1 - r^2)^(eta - 1) / B(1/2, eta).
TEST(LKJCholesky, TwoDimsIsTheBetaLawOfTheCorrelation) {
  for (float eta : {0.5f, 1.0f, 2.5f}) {
    dist::LKJCholesky d(2, eta);
    for (float r : {-0.9f, -0.2f, 0.0f, 0.6f}) {
      const Tensor l = tensor({1.0f, 0.0f, r, std::sqrt(1.0f - r * r)}, {2, 2});
      const double want = (eta - 1.0) * std::log(1.0 - static_cast<double>(r) * r) - log_beta_fn(0.5, eta);
      EXPECT_NEAR(d.log_prob(l).item(), want, 1e-5 * (1 + std::fabs(want))) << "eta " << eta << " r " << r;
    }
  }
}

// D = 3: the density over (L10, L20, L21) integrates to 1. Monte Carlo over
// the box [-1, 1]^3 (volume 8; outside the support, L20^2 + L21^2 >= 1, the
// density is 0): n = 400000, the estimate within 4 standard errors of 1.
// A wrong normaliser or Jacobian exponent moves it by > 10 %.
TEST(LKJCholesky, ThreeDimsIntegratesToOne) {
  fresh(3);
  const int64_t n = 400000;
  for (float eta : {0.7f, 1.7f}) {
    const Tensor abc = rand({n, 3}) * 2.0f - 1.0f;
    const auto v = vec(abc);
    std::vector<float> lm(static_cast<size_t>(n * 9), 0.0f);
    std::vector<char> inside(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const float a = v[3 * i], b = v[3 * i + 1], c = v[3 * i + 2];
      inside[i] = b * b + c * c < 1.0f;
      float* m = &lm[static_cast<size_t>(9 * i)];
      if (!inside[i]) {  // the identity, scored and then dropped
        m[0] = m[4] = m[8] = 1.0f;
        continue;
      }
      m[0] = 1.0f;
      m[3] = a;
      m[4] = std::sqrt(1.0f - a * a);
      m[6] = b;
      m[7] = c;
      m[8] = std::sqrt(1.0f - b * b - c * c);
    }
    const auto lp = vec(dist::LKJCholesky(3, eta).log_prob(tensor(lm, {n, 3, 3})));
    std::vector<double> w(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) w[i] = inside[i] ? 8.0 * std::exp(static_cast<double>(lp[i])) : 0.0;
    const McEstimate e = mc_estimate(w);
    EXPECT_NEAR(e.mean, 1.0, 4 * e.se) << "eta " << eta << " se " << e.se;
    EXPECT_LT(e.se, 0.02);
  }
}

// Samples: rows of unit norm, and every correlation of L L^T is marginally
// 2 Beta(a, a) - 1, a = eta - 1 + D/2: mean 0, variance 1 / (2a + 1),
// fourth moment 3 / ((2a + 1)(2a + 3)). n = 40000 draws of a batch of two
// concentrations; each moment within 4 standard errors (from the draws'
// sample variance of r, r^2, r^4).
TEST(LKJCholesky, SamplerMarginals) {
  fresh(4);
  const int64_t d = 4, n = 40000;
  dist::LKJCholesky lkj(d, tensor({1.0f, 3.0f}));
  const Tensor l = lkj.sample({n});
  ASSERT_EQ(l.shape(), Shape({n, 2, d, d}));
  EXPECT_EQ(sum(constraints::corr_cholesky->check(l)).item(), static_cast<float>(2 * n));
  const Tensor omega = matmul(l, transpose(l, -1, -2));
  const auto ov = vec(omega);
  for (int b = 0; b < 2; ++b) {
    const double eta = b == 0 ? 1.0 : 3.0, a = eta - 1.0 + d / 2.0;
    for (auto [i, j] : {std::pair<int, int>{1, 0}, {3, 2}, {3, 0}}) {
      std::vector<double> r1, r2, r4;
      for (int64_t s = 0; s < n; ++s) {
        const double r = ov[static_cast<size_t>(((s * 2 + b) * d + i) * d + j)];
        r1.push_back(r);
        r2.push_back(r * r);
        r4.push_back(r * r * r * r);
      }
      const auto m1 = mc_estimate(r1), m2 = mc_estimate(r2), m4 = mc_estimate(r4);
      EXPECT_NEAR(m1.mean, 0.0, 4 * m1.se) << "eta " << eta << " (" << i << "," << j << ")";
      EXPECT_NEAR(m2.mean, 1.0 / (2 * a + 1), 4 * m2.se) << "eta " << eta << " (" << i << "," << j << ")";
      EXPECT_NEAR(m4.mean, 3.0 / ((2 * a + 1) * (2 * a + 3)), 4 * m4.se) << "eta " << eta;
    }
  }
}

TEST(LKJCholesky, Errors) {
  expect_error<ValueError>([] { dist::LKJCholesky(1, 1.0f); }, {"LKJCholesky", "dim", "1"});
  expect_error<ValueError>([] { dist::LKJCholesky(3, -0.5f); }, {"LKJCholesky", "concentration", "-0.5"});
  dist::LKJCholesky d(2, 1.0f);
  expect_error<ShapeError>([&] { d.log_prob(zeros({3, 3})); }, {"LKJCholesky(2)", "[3, 3]"});
  // Checked on the device: at once on the cpu, at the next synchronisation
  // on a GPU. Matrix 1 of the batch is the bad one.
  const Tensor good = tensor({1.0f, 0.0f, 0.6f, 0.8f}, {2, 2});
  const Tensor bad = tensor({1.0f, 0.0f, 0.5f, 0.5f}, {2, 2});
  expect_error<ValueError>(
      [&] {
        d.log_prob(stack({good, bad}, 0));
        synchronize(default_device());
      },
      {"LKJCholesky", "correlation", "got 1"});
  expect_error<ValueError>(
      [&] {
        dist::LKJCholesky(2, tensor({1.0f, -2.0f}));
        synchronize(default_device());
      },
      {"LKJCholesky", "concentration", "-2"});
}

// A correlation matrix fitted through the constraint: an LKJ(3, 2) prior,
// 2000 draws of N(0, Omega) with correlations (0.6, -0.3, 0.2), AutoNormal.
// The posterior sd of each correlation is about (1 - rho^2) / sqrt(2000) <=
// 0.022, so the guide's median is checked within 0.06 of the data's sample
// correlations (about 3 posterior sd, the prior's pull included).
TEST(LKJCholesky, AutoNormalFitsACorrelationMatrix) {
  fresh(5);
  const int64_t n = 2000;
  // Omega's Cholesky factor, rows of unit norm.
  const double r10 = 0.6, r20 = -0.3, r21 = 0.2;
  const double l11 = std::sqrt(1 - r10 * r10), l21 = (r21 - r20 * r10) / l11;
  const double l22 = std::sqrt(1 - r20 * r20 - l21 * l21);
  const Tensor lt = tensor({1.0f, 0.0f, 0.0f, static_cast<float>(r10), static_cast<float>(l11), 0.0f,
                            static_cast<float>(r20), static_cast<float>(l21), static_cast<float>(l22)},
                           {3, 3});
  const Tensor y = matmul(randn({n, 3}), transpose(lt, 0, 1));
  // The data's sample correlations.
  const auto yv = vec(y);
  auto corr = [&](int a, int b) {
    double sab = 0, saa = 0, sbb = 0;
    for (int64_t k = 0; k < n; ++k) {
      sab += yv[3 * k + a] * yv[3 * k + b];
      saa += yv[3 * k + a] * yv[3 * k + a];
      sbb += yv[3 * k + b] * yv[3 * k + b];
    }
    return sab / std::sqrt(saa * sbb);
  };
  auto model = [y, n] {
    const Tensor l = sample("L", dist::LKJCholesky(3, 2.0f));
    auto p = plate("data", n);
    sample("y", dist::MultivariateNormal(zeros({3}), l), y);
  };
  infer::AutoNormal guide(model);
  infer::SVI svi(model, guide, optim::ClippedAdam({.lr = 0.02f, .lrd = std::pow(0.1f, 1.0f / 1500)}),
                 infer::Trace_ELBO());
  for (int i = 0; i < 1500; ++i) svi.step();
  const Tensor lh = guide.median().at("L");
  const auto om = vec(matmul(lh, transpose(lh, 0, 1)));
  for (auto [i, j] : {std::pair<int, int>{1, 0}, {2, 0}, {2, 1}}) {
    if (std::getenv("CUVI_TEST_VERBOSE"))
      std::printf("    corr(%d,%d) fitted %.4f data %.4f\n", i, j, om[i * 3 + j], corr(i, j));
    EXPECT_NEAR(om[i * 3 + j], corr(i, j), 0.06) << i << "," << j;
  }
}
