// Closed-form cdf, icdf and entropy of the distributions, and the
// autoguides' quantiles. Device-generic: every tensor is made on the default
// device, so cuvi_test_gpu_ppl runs these on cuda:0 as well.
//
// References: tests/refdata/torch_cdf_entropy.csv, made by PyTorch / Pyro in
// float64 autograd at float32 inputs (gen_torch_cdf_entropy.py), and double
// evaluations of the formulas in the tests.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "bisect.hpp"
#include "csv.hpp"
#include "cuvi.hpp"
#include "gradcheck.hpp"

using namespace cuvi;
using cuvi::testing::Csv;
using cuvi::testing::expect_error;
using cuvi::testing::read_csv;

namespace {

double phi_inv(double q) {
  return cuvi::testing::invert_increasing([](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }, q, -40, 40);
}

constexpr int kFamilies = 25;
constexpr int kNp = 4;

// The distribution of a CSV row's family code over parameter leaves (as in
// gen_torch_cdf_entropy.py); `grad_of(k)` then gives d/dp_k after backward().
struct RowDist {
  dist::DistPtr d;
  std::vector<Tensor> leaves;                         // what requires grad
  std::vector<std::pair<int, int64_t>> param_entry;   // p_k -> (leaf, flat index)
  double grad_of(int k) const {
    if (k >= static_cast<int>(param_entry.size())) return 0.0;
    const auto [leaf, idx] = param_entry[static_cast<size_t>(k)];
    const Tensor g = leaves[static_cast<size_t>(leaf)].grad();
    return g.defined() ? g.to_vector()[static_cast<size_t>(idx)] : 0.0;
  }
};

RowDist make_row_dist(int code, const std::vector<float>& p) {
  RowDist r;
  auto scalars = [&](int n) {
    std::vector<Tensor> t;
    for (int k = 0; k < n; ++k) {
      t.push_back(tensor(p[static_cast<size_t>(k)]).requires_grad_());
      r.leaves.push_back(t.back());
      r.param_entry.push_back({k, 0});
    }
    return t;
  };
  auto vec = [&](std::vector<float> v, const Shape& shape) {
    r.leaves.push_back(tensor(v, shape).requires_grad_());
    return r.leaves.back();
  };
  switch (code) {
    case 0: { auto t = scalars(2); r.d = std::make_shared<dist::Normal>(t[0], t[1]); break; }
    case 1: { auto t = scalars(2); r.d = std::make_shared<dist::LogNormal>(t[0], t[1]); break; }
    case 2: { auto t = scalars(1); r.d = std::make_shared<dist::HalfNormal>(t[0]); break; }
    case 3: { auto t = scalars(2); r.d = std::make_shared<dist::Laplace>(t[0], t[1]); break; }
    case 4: { auto t = scalars(2); r.d = std::make_shared<dist::Cauchy>(t[0], t[1]); break; }
    case 5: { auto t = scalars(1); r.d = std::make_shared<dist::HalfCauchy>(t[0]); break; }
    case 6: { auto t = scalars(2); r.d = std::make_shared<dist::Uniform>(t[0], t[1]); break; }
    case 7: { auto t = scalars(1); r.d = std::make_shared<dist::Exponential>(t[0]); break; }
    case 8: { auto t = scalars(2); r.d = std::make_shared<dist::Gumbel>(t[0], t[1]); break; }
    case 9: { auto t = scalars(2); r.d = std::make_shared<dist::Logistic>(t[0], t[1]); break; }
    case 10: { auto t = scalars(2); r.d = std::make_shared<dist::Pareto>(t[0], t[1]); break; }
    case 11: { auto t = scalars(2); r.d = std::make_shared<dist::Weibull>(t[0], t[1]); break; }
    case 12: { auto t = scalars(2); r.d = std::make_shared<dist::Gamma>(t[0], t[1]); break; }
    case 13: { auto t = scalars(1); r.d = std::make_shared<dist::Chi2>(t[0]); break; }
    case 14: { auto t = scalars(2); r.d = std::make_shared<dist::InverseGamma>(t[0], t[1]); break; }
    case 15: { auto t = scalars(2); r.d = std::make_shared<dist::Beta>(t[0], t[1]); break; }
    case 16: { auto t = scalars(3); r.d = std::make_shared<dist::StudentT>(t[0], t[1], t[2]); break; }
    case 17: { auto t = scalars(1); r.d = dist::Bernoulli(t[0]).ptr(); break; }
    case 18: { auto t = scalars(1); r.d = dist::Bernoulli::from_logits(t[0]).ptr(); break; }
    case 19: { auto t = scalars(1); r.d = std::make_shared<dist::Geometric>(t[0]); break; }
    case 20: case 21: case 22: {
      const Tensor v = vec({p[0], p[1], p[2]}, {3});
      for (int k = 0; k < 3; ++k) r.param_entry.push_back({0, k});
      if (code == 20) r.d = std::make_shared<dist::Dirichlet>(v);
      else if (code == 21) r.d = std::make_shared<dist::Categorical>(v);
      else r.d = std::make_shared<dist::Categorical>(dist::Categorical::from_logits(v));
      break;
    }
    case 23: {
      const Tensor L = vec({p[0], 0.0f, p[1], p[2]}, {2, 2});
      r.param_entry = {{0, 0}, {0, 2}, {0, 3}};
      r.d = std::make_shared<dist::MultivariateNormal>(zeros({2}), L);
      break;
    }
    default: {
      const Tensor W = vec({p[0], p[1]}, {2, 1});
      const Tensor d = vec({p[2], p[3]}, {2});
      r.param_entry = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
      r.d = std::make_shared<dist::LowRankMultivariateNormal>(zeros({2}), W, d);
      break;
    }
  }
  return r;
}

}  // namespace

// Every row of the torch reference: the value and its derivatives with
// respect to the argument (x or q) and each parameter.
// Tolerances: cuvi evaluates in float32 at exactly the reference's inputs.
// Each formula is a chain of at most ~12 float32 ops (each rounding once,
// 6e-8 relative; the lgamma / digamma series ~2e-7), at points whose
// condition numbers stay below ~20 (|z| <= 3.3 for the Normal family's
// tails, q in [0.001, 0.999]), so values are within ~3e-6 (1 + |ref|):
// tolerance 2e-5 (1 + |ref|). The derivatives add the exp(z^2 / 2) and
// 1 / sin^2 factors of the inverse functions at those points (another factor
// of ~10): 2e-4 (1 + |ref|).
TEST(ClosedFormCsv, CdfIcdfEntropyAndGradientsMatchTorch) {
  const Csv c = read_csv("../refdata/torch_cdf_entropy.csv");
  std::vector<int> seen(3 * kFamilies, 0);
  const int cf = c.need("family"), cw = c.need("what"), ca = c.need("arg"), cv = c.need("value"),
            cda = c.need("d_arg");
  for (size_t i = 0; i < c.rows.size(); ++i) {
    const auto& r = c.rows[i];
    const int code = static_cast<int>(r[static_cast<size_t>(cf)]), what = static_cast<int>(r[static_cast<size_t>(cw)]);
    ASSERT_TRUE(code >= 0 && code < kFamilies && what >= 0 && what < 3) << "row " << i;
    seen[static_cast<size_t>(3 * code + what)]++;
    std::vector<float> p;
    for (int k = 0; k < kNp; ++k) p.push_back(static_cast<float>(r[static_cast<size_t>(c.need("p" + std::to_string(k)))]));
    RowDist rd = make_row_dist(code, p);
    Tensor arg = tensor(static_cast<float>(r[static_cast<size_t>(ca)])).requires_grad_();
    Tensor out = what == 0 ? rd.d->cdf(arg) : what == 1 ? rd.d->icdf(arg) : rd.d->entropy();
    const std::string where = rd.d->name() + (what == 0 ? ".cdf" : what == 1 ? ".icdf" : ".entropy") + " row " +
                              std::to_string(i + 2);
    ASSERT_EQ(out.dim(), 0) << where;
    const double ref = r[static_cast<size_t>(cv)];
    EXPECT_NEAR(out.item(), ref, 2e-5 * (1.0 + std::fabs(ref))) << where;
    out.backward();
    double g_arg = r[static_cast<size_t>(cda)];
    std::vector<double> g_p;
    for (int k = 0; k < kNp; ++k) g_p.push_back(r[static_cast<size_t>(c.need("d_p" + std::to_string(k)))]);
    // torch's Laplace writes its cdf and icdf with sign(x - loc) and
    // sign(q - 1/2), whose derivative at 0 is 0: at the kink itself (x = loc,
    // q = 1/2; the file has such rows) its derivatives in x / q (and the cdf's
    // in loc) are 0 where the function's are the one-sided ones cuvi gives:
    // the density 1 / (2 scale) for the cdf, 2 scale for the icdf.
    const double arg_v = r[static_cast<size_t>(ca)];
    if (code == 3 && what == 0 && arg_v == p[0]) {
      g_arg = 0.5 / p[1];
      g_p[0] = -g_arg;
    } else if (code == 3 && what == 1 && arg_v == 0.5) {
      g_arg = 2.0 * p[1];
    }
    if (what < 2) EXPECT_NEAR(arg.grad().item(), g_arg, 2e-4 * (1.0 + std::fabs(g_arg))) << where << " d/darg";
    for (int k = 0; k < kNp; ++k) {
      const double g = g_p[static_cast<size_t>(k)];
      EXPECT_NEAR(rd.grad_of(k), g, 2e-4 * (1.0 + std::fabs(g))) << where << " d/dp" << k;
    }
  }
  for (int code = 0; code < kFamilies; ++code) {
    EXPECT_GE(seen[static_cast<size_t>(3 * code + 2)], 6) << "entropy rows of family " << code;
    if (code < 12) {
      EXPECT_GE(seen[static_cast<size_t>(3 * code)], 30) << "cdf rows of family " << code;
      EXPECT_GE(seen[static_cast<size_t>(3 * code + 1)], 30) << "icdf rows of family " << code;
    }
  }
}

namespace {
// The continuous families with a cdf, at batch parameters [3].
std::vector<dist::DistPtr> cdf_families() {
  const Tensor a = tensor({0.3f, -1.2f, 2.0f}), s = tensor({0.5f, 1.7f, 3.0f});
  return {std::make_shared<dist::Normal>(a, s),        std::make_shared<dist::LogNormal>(a, s),
          std::make_shared<dist::HalfNormal>(s),       std::make_shared<dist::Laplace>(a, s),
          std::make_shared<dist::Cauchy>(a, s),        std::make_shared<dist::HalfCauchy>(s),
          std::make_shared<dist::Uniform>(a, a + s),   std::make_shared<dist::Exponential>(s),
          std::make_shared<dist::Gumbel>(a, s),        std::make_shared<dist::Logistic>(a, s),
          std::make_shared<dist::Pareto>(s, s + 1.0f), std::make_shared<dist::Weibull>(s, s + 0.3f)};
}
}  // namespace

// cdf(icdf(q)) = q over the whole of (0, 1), tails included, with batch
// parameters, and icdf broadcasting q [5, 1] against the batch [3]. Each side
// is a few float32 ops with condition numbers below ~50 at these q (the
// relative slope of cdf o icdf is 1): 5e-6 + 1e-4 q(1 - q)-scaled slack.
TEST(ClosedForm, IcdfInvertsCdfAndBroadcasts) {
  const std::vector<float> qv = {1e-4f, 0.02f, 0.5f, 0.9f, 0.9999f};
  const Tensor q = tensor(qv, {5, 1});
  for (const auto& d : cdf_families()) {
    const Tensor x = d->icdf(q);
    ASSERT_EQ(x.shape(), (Shape{5, 3})) << d->name();
    const auto back = d->cdf(x).to_vector();
    for (size_t i = 0; i < back.size(); ++i) {
      const double want = qv[i / 3];
      EXPECT_NEAR(back[i], want, 5e-6 + 2e-5 * want) << d->name() << " entry " << i;
    }
    EXPECT_EQ(d->entropy().shape(), (Shape{3})) << d->name();
    EXPECT_EQ(d->expand({2, 3}).entropy().shape(), (Shape{2, 3})) << d->name();
  }
}

// icdf at the ends of [0, 1]: the ends of the support.
TEST(ClosedForm, IcdfEndsAreTheSupportsEnds) {
  const Tensor q = tensor({0.0f, 1.0f});
  auto ends = [&](const dist::Distribution& d) { return d.icdf(q).to_vector(); };
  EXPECT_EQ(ends(dist::Normal(1.0f, 2.0f)), (std::vector<float>{-INFINITY, INFINITY}));
  EXPECT_EQ(ends(dist::Cauchy(1.0f, 2.0f)), (std::vector<float>{-INFINITY, INFINITY}));
  EXPECT_EQ(ends(dist::Laplace(1.0f, 2.0f)), (std::vector<float>{-INFINITY, INFINITY}));
  EXPECT_EQ(ends(dist::Logistic(1.0f, 2.0f)), (std::vector<float>{-INFINITY, INFINITY}));
  EXPECT_EQ(ends(dist::Gumbel(1.0f, 2.0f)), (std::vector<float>{-INFINITY, INFINITY}));
  EXPECT_EQ(ends(dist::LogNormal(1.0f, 2.0f)), (std::vector<float>{0.0f, INFINITY}));
  EXPECT_EQ(ends(dist::HalfNormal(2.0f)), (std::vector<float>{0.0f, INFINITY}));
  EXPECT_EQ(ends(dist::HalfCauchy(2.0f)), (std::vector<float>{0.0f, INFINITY}));
  EXPECT_EQ(ends(dist::Exponential(2.0f)), (std::vector<float>{0.0f, INFINITY}));
  EXPECT_EQ(ends(dist::Weibull(2.0f, 1.5f)), (std::vector<float>{0.0f, INFINITY}));
  EXPECT_EQ(ends(dist::Pareto(2.0f, 1.5f)), (std::vector<float>{2.0f, INFINITY}));
  EXPECT_EQ(ends(dist::Uniform(-1.0f, 3.0f)), (std::vector<float>{-1.0f, 3.0f}));
  // The median of the symmetric families is loc exactly.
  EXPECT_EQ(dist::Normal(1.5f, 2.0f).icdf(tensor(0.5f)).item(), 1.5f);
  EXPECT_EQ(dist::Laplace(1.5f, 2.0f).icdf(tensor(0.5f)).item(), 1.5f);
  EXPECT_EQ(dist::Logistic(1.5f, 2.0f).icdf(tensor(0.5f)).item(), 1.5f);
  EXPECT_NEAR(dist::Cauchy(1.5f, 2.0f).icdf(tensor(0.5f)).item(), 1.5f, 1e-6f);
}

// Far tails keep their relative accuracy: Normal's cdf at -9 sigma is
// 1.1e-19 (2 Phi - 1 or 1 - Q forms would give 0), and icdf of 1e-30 is
// -11.46 sigma. References: erfc and bisection on it in double.
TEST(ClosedForm, NormalTailsKeepRelativeAccuracy) {
  const dist::Normal n(0.0f, 1.0f);
  const double phi9 = 0.5 * std::erfc(9.0 / std::sqrt(2.0));
  EXPECT_NEAR(n.cdf(tensor(-9.0f)).item(), phi9, 1e-6 * phi9);
  const double lo = phi_inv(static_cast<double>(1e-30f));
  EXPECT_NEAR(n.icdf(tensor(1e-30f)).item(), lo, 1e-5 * std::fabs(lo));
  // Exponential's cdf near 0 through expm1: rate x = 1e-9 gives 1e-9, not 0.
  EXPECT_NEAR(dist::Exponential(1.0f).cdf(tensor(1e-9f)).item(), 1e-9, 1e-15);
  // HalfNormal's cdf near 0 through erf: 2 Phi(x) - 1 would cancel.
  EXPECT_NEAR(dist::HalfNormal(1.0f).cdf(tensor(1e-8f)).item(), 1e-8 * std::sqrt(2.0 / M_PI), 1e-14);
}

// Wrappers: Independent sums the base's entropy over the reinterpreted dims;
// Dist and Masked pass all three through; families and wrappers without a
// closed form name themselves.
TEST(ClosedForm, WrappersAndFamiliesWithoutAClosedForm) {
  const Tensor s = tensor({0.5f, 1.0f, 2.0f, 4.0f}, {2, 2});
  const dist::Normal n(zeros({2, 2}), s);
  const auto h = n.entropy().to_vector();
  const Tensor hi = n.to_event(1).entropy();
  ASSERT_EQ(hi.shape(), (Shape{2}));
  EXPECT_NEAR(hi.to_vector()[0], h[0] + h[1], 1e-6);
  EXPECT_NEAR(hi.to_vector()[1], h[2] + h[3], 1e-6);
  EXPECT_EQ(n.mask(false).entropy().to_vector(), h);
  EXPECT_EQ(dist::Dist(n.clone()).cdf(zeros({2, 2})).to_vector(), std::vector<float>(4, 0.5f));
  expect_error<ValueError>([] { dist::Poisson(2.0f).entropy(); }, {"Poisson", "entropy"});
  expect_error<ValueError>([] { dist::Poisson(2.0f).cdf(tensor(1.0f)); }, {"Poisson", "cdf"});
  expect_error<ValueError>([] { dist::Gamma(2.0f, 1.0f).icdf(tensor(0.5f)); }, {"Gamma", "icdf"});
  expect_error<ValueError>([] { dist::Beta(2.0f, 1.0f).icdf(tensor(0.5f)); }, {"Beta", "icdf"});
  expect_error<ValueError>([&] { n.to_event(1).cdf(zeros({2, 2})); }, {"Independent(Normal)", "cdf"});
  expect_error<ValueError>([] { dist::VonMises(0.0f, 1.0f).entropy(); }, {"VonMises", "entropy"});
}

// Validation: q outside [0, 1] and x outside the support are errors naming
// the distribution and the value (on a GPU at the next synchronisation,
// which item() is); with validation off, NaN and the formula's extension.
TEST(ClosedForm, ValidationNamesTheDistributionAndTheValue) {
  expect_error<ValueError>([] { dist::Normal(0.0f, 1.0f).icdf(tensor({0.5f, 1.5f})).to_vector(); },
                           {"Normal.icdf", "[0, 1]", "1.5"});
  expect_error<ValueError>([] { dist::Exponential(1.0f).icdf(tensor(-0.25f)).item(); },
                           {"Exponential.icdf", "-0.25"});
  expect_error<ValueError>([] { dist::Exponential(2.0f).cdf(tensor(-1.0f)).item(); }, {"Exponential", "-1"});
  expect_error<ValueError>([] { dist::Pareto(2.0f, 1.0f).cdf(tensor(1.0f)).item(); }, {"Pareto", "1"});
  expect_error<DTypeError>([] { dist::Normal(0.0f, 1.0f).icdf(tensor_i64({0})); }, {"Normal.icdf", "float32"});
  dist::set_validation(false);
  EXPECT_TRUE(std::isnan(dist::Normal(0.0f, 1.0f).icdf(tensor(1.5f)).item()));
  EXPECT_EQ(dist::Uniform(0.0f, 1.0f).cdf(tensor(-3.0f)).item(), 0.0f);
  dist::set_validation(true);
}

// Entropy by Monte Carlo: -mean(log_prob(draws)) over n = 2^16 draws has
// standard error sd(log p) / sqrt(n); the closed forms lie within 5 of them
// (a check of the formulas independent of torch, e.g. for InverseGamma,
// which torch computes through its transforms).
TEST(ClosedForm, EntropyMatchesMonteCarlo) {
  set_seed(2026);
  const std::vector<dist::DistPtr> ds = {
      std::make_shared<dist::InverseGamma>(3.0f, 2.0f), std::make_shared<dist::StudentT>(4.0f, 1.0f, 2.0f),
      std::make_shared<dist::Weibull>(1.5f, 0.8f),      std::make_shared<dist::Pareto>(1.5f, 3.0f),
      std::make_shared<dist::Gumbel>(0.5f, 2.0f),       std::make_shared<dist::Beta>(0.7f, 2.5f),
      std::make_shared<dist::Geometric>(0.3f)};
  const int64_t n = 1 << 16;
  for (const auto& d : ds) {
    const auto lp = d->log_prob(d->sample({n})).to_vector();
    double m = 0, m2 = 0;
    for (float v : lp) m += v;
    m /= static_cast<double>(n);
    for (float v : lp) m2 += (v - m) * (v - m);
    const double se = std::sqrt(m2 / static_cast<double>(n - 1) / static_cast<double>(n));
    EXPECT_NEAR(d->entropy().item(), -m, 5 * se) << d->name();
  }
}

// ---- autoguide quantiles ---------------------------------------------------------------

namespace {
auto quantile_model = [](const Tensor& data) {
  const Tensor loc = sample("loc", dist::Normal(0.0f, 3.0f));
  const Tensor scale = sample("scale", dist::LogNormal(0.0f, 1.0f));
  const Tensor w = sample("w", dist::Normal(zeros({2}), 1.0f).to_event(1));
  auto p = plate("data", data.size(0));
  sample("obs", dist::Normal(loc + sum(w), scale), data);
};
const Tensor& quantile_data() {
  static const Tensor d = tensor({0.3f, 1.2f, -0.4f, 2.2f, 0.9f});
  return d;
}
// Trains a guide a few steps so its params are not at their initial values.
template <class G>
void train(G& guide) {
  param_store().clear();
  set_seed(5);
  infer::SVI svi(quantile_model, guide, optim::Adam({.lr = 0.05f}), infer::Trace_ELBO());
  for (int i = 0; i < 30; ++i) svi.step(quantile_data());
}
const std::vector<float> kQs = {0.05f, 0.5f, 0.9f};
}  // namespace

// AutoNormal: each site's quantiles are support-transform(loc + scale
// Phi^-1(q)) of its own params (exp for the positive site), in double here;
// the 0.5 quantile is the median exactly.
TEST(AutoGuideQuantiles, AutoNormalPerSiteFromLocAndScale) {
  infer::AutoNormal guide(quantile_model);
  train(guide);
  const auto qs = guide.quantiles(kQs);
  const auto med = guide.median();
  ASSERT_EQ(qs.size(), 3u);
  for (const std::string name : {"loc", "scale", "w"}) {
    const auto [loc, scale] = guide.loc_and_scale(name);
    const auto l = loc.to_vector(), s = scale.to_vector(), got = qs.at(name).to_vector();
    Shape want_shape = loc.shape();
    want_shape.insert(want_shape.begin(), 3);
    ASSERT_EQ(qs.at(name).shape(), want_shape) << name;
    for (size_t k = 0; k < kQs.size(); ++k)
      for (size_t j = 0; j < l.size(); ++j) {
        double u = l[j] + s[j] * phi_inv(kQs[k]);
        if (name == "scale") u = std::exp(u);
        EXPECT_NEAR(got[k * l.size() + j], u, 1e-5 * (1 + std::fabs(u))) << name << " q " << kQs[k];
      }
    const auto m = med.at(name).to_vector();
    for (size_t j = 0; j < l.size(); ++j) EXPECT_EQ(got[l.size() + j], m[j]) << name;
  }
}

// AutoDiagonalNormal / AutoMultivariateNormal / AutoLowRankMultivariateNormal:
// from the flat posterior's marginal mean and variance, unpacked per site.
TEST(AutoGuideQuantiles, AutoContinuousFromTheMarginals) {
  auto check = [](const auto& guide, const char* what) {
    const auto post = guide.get_posterior();
    const auto mean = post->mean().to_vector(), var = post->variance().to_vector();
    ASSERT_EQ(mean.size(), 4u) << what;  // loc, scale, w[2] in trace order
    const auto qs = guide.quantiles(kQs);
    for (size_t k = 0; k < kQs.size(); ++k) {
      const double z = phi_inv(kQs[k]);
      auto u = [&](size_t j) { return mean[j] + std::sqrt(var[j]) * z; };
      EXPECT_NEAR(qs.at("loc").to_vector()[k], u(0), 1e-5 * (1 + std::fabs(u(0)))) << what;
      EXPECT_NEAR(qs.at("scale").to_vector()[k], std::exp(u(1)), 1e-5 * (1 + std::exp(u(1)))) << what;
      EXPECT_NEAR(qs.at("w").to_vector()[2 * k + 1], u(3), 1e-5 * (1 + std::fabs(u(3)))) << what;
    }
    EXPECT_EQ(qs.at("w").shape(), (Shape{3, 2})) << what;
    EXPECT_EQ(qs.at("scale").shape(), (Shape{3})) << what;
  };
  infer::AutoDiagonalNormal diag(quantile_model);
  train(diag);
  check(diag, "AutoDiagonalNormal");
  infer::AutoMultivariateNormal mvn(quantile_model);
  train(mvn);
  check(mvn, "AutoMultivariateNormal");
  infer::AutoLowRankMultivariateNormal low(quantile_model, {.rank = 2});
  train(low);
  check(low, "AutoLowRankMultivariateNormal");
}

// AutoDelta: a point mass, the same value for every q; AutoGuideList: the
// union of its parts'; AutoIAFNormal and bad arguments: errors.
TEST(AutoGuideQuantiles, DeltaListAndErrors) {
  infer::AutoDelta delta(quantile_model);
  train(delta);
  const auto dq = delta.quantiles(kQs);
  const auto dm = delta.median();
  for (const auto& [name, v] : dq) {
    const auto m = dm.at(name).to_vector(), got = v.to_vector();
    ASSERT_EQ(got.size(), 3 * m.size()) << name;
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], m[i % m.size()]) << name;
  }
  param_store().clear();
  infer::AutoGuideList<Tensor> list;
  list.append(infer::AutoDelta(poutine::block(quantile_model, {}, {"scale"})));
  list.append(infer::AutoNormal(poutine::block(quantile_model, {"scale"})));
  list.append([](const Tensor&) {});
  list(quantile_data());
  const auto lq = list.quantiles({0.25f, 0.75f}, quantile_data());
  EXPECT_EQ(lq.size(), 3u);
  EXPECT_EQ(lq.at("scale").shape(), (Shape{2}));
  EXPECT_EQ(lq.at("w").shape(), (Shape{2, 2}));

  param_store().clear();
  infer::AutoNormal fresh(quantile_model);
  expect_error<ValueError>([&] { fresh.quantiles(kQs); }, {"AutoNormal.quantiles()", "not been run"});
  fresh(quantile_data());
  expect_error<ValueError>([&] { fresh.quantiles({0.5f, 1.5f}); }, {"AutoNormal.quantiles()", "[0, 1]", "1.5"});
  expect_error<ValueError>([&] { fresh.quantiles({}); }, {"AutoNormal.quantiles()", "no quantiles"});
  infer::AutoIAFNormal iaf(quantile_model);
  iaf(quantile_data());
  expect_error<ValueError>([&] { iaf.quantiles(kQs); }, {"AutoIAFNormal.quantiles()", "Predictive"});
  param_store().clear();
}

// MixtureSameFamily's cdf is the weighted sum of its components' (torch's),
// in double here; multivariate components have none.
TEST(ClosedForm, MixtureCdfIsTheWeightedSum) {
  const dist::MixtureSameFamily m(dist::Categorical(tensor({1.0f, 3.0f})),
                                  dist::Normal(tensor({-1.0f, 2.0f}), tensor({0.5f, 1.5f})));
  const std::vector<float> xs = {-2.0f, 0.0f, 1.0f, 4.0f};
  const auto got = m.cdf(tensor(xs)).to_vector();
  for (size_t i = 0; i < xs.size(); ++i) {
    auto phi = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
    const double want = 0.25 * phi((xs[i] + 1.0) / 0.5) + 0.75 * phi((xs[i] - 2.0) / 1.5);
    EXPECT_NEAR(got[i], want, 1e-6) << xs[i];
  }
  const dist::MixtureSameFamily mv(dist::Categorical(tensor({1.0f, 1.0f})),
                                   dist::Normal(zeros({2, 3}), 1.0f).to_event(1));
  expect_error<ValueError>([&] { mv.cdf(zeros({3})); }, {"MixtureSameFamily", "univariate"});
}
