// The incomplete gamma / beta and Student t ops (gammainc, gammaincc,
// betainc, stdtr), the cdfs built on them (Gamma, Chi2, InverseGamma, Beta,
// StudentT), ContinuousBernoulli's cdf / icdf / entropy, and cdf / icdf of a
// TransformedDistribution. Device-generic: cuvi_test_gpu_ppl runs these on
// cuda:0 as well.
//
// Reference: tests/refdata/mpmath_cdf.csv (gen_mpmath_cdf.py, mpmath at 150
// digits, at float32 inputs), which also gives each output's conditioning.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "csv.hpp"
#include "cuvi.hpp"
#include "gradcheck.hpp"

using namespace cuvi;
using cuvi::testing::Csv;
using cuvi::testing::expect_error;
using cuvi::testing::read_csv;

namespace {

constexpr double kEps = 5.9604644775390625e-8;  // 2^-24, float32's unit roundoff
constexpr int kSlots = 4;

enum Case : int {
  kGammainc, kGammaincc, kBetainc, kStdtr, kGammaCdf, kChi2Cdf, kInvGammaCdf, kBetaCdf, kStudentTCdf,
  kCbCdf, kCbIcdf, kCbEntropy, kCbpCdf, kCbpIcdf, kCbpEntropy, kCases
};
constexpr int kArity[kCases] = {2, 2, 3, 2, 3, 2, 3, 3, 4, 2, 2, 1, 2, 2, 1};
const char* const kCaseName[kCases] = {"gammainc", "gammaincc", "betainc", "stdtr", "Gamma.cdf", "Chi2.cdf",
                                       "InverseGamma.cdf", "Beta.cdf", "StudentT.cdf",
                                       "ContinuousBernoulli(logits).cdf", "ContinuousBernoulli(logits).icdf",
                                       "ContinuousBernoulli(logits).entropy", "ContinuousBernoulli(probs).cdf",
                                       "ContinuousBernoulli(probs).icdf", "ContinuousBernoulli(probs).entropy"};

Tensor eval_case(int c, const std::vector<Tensor>& a) {
  switch (c) {
    case kGammainc: return gammainc(a[0], a[1]);
    case kGammaincc: return gammaincc(a[0], a[1]);
    case kBetainc: return betainc(a[0], a[1], a[2]);
    case kStdtr: return stdtr(a[0], a[1]);
    case kGammaCdf: return dist::Gamma(a[0], a[1]).cdf(a[2]);
    case kChi2Cdf: return dist::Chi2(a[0]).cdf(a[1]);
    case kInvGammaCdf: return dist::InverseGamma(a[0], a[1]).cdf(a[2]);
    case kBetaCdf: return dist::Beta(a[0], a[1]).cdf(a[2]);
    case kStudentTCdf: return dist::StudentT(a[0], a[1], a[2]).cdf(a[3]);
    case kCbCdf: return dist::ContinuousBernoulli::from_logits(a[0]).cdf(a[1]);
    case kCbIcdf: return dist::ContinuousBernoulli::from_logits(a[0]).icdf(a[1]);
    case kCbEntropy: return dist::ContinuousBernoulli::from_logits(a[0]).entropy();
    case kCbpCdf: return dist::ContinuousBernoulli(a[0]).cdf(a[1]);
    case kCbpIcdf: return dist::ContinuousBernoulli(a[0]).icdf(a[1]);
    default: return dist::ContinuousBernoulli(a[0]).entropy();
  }
}

// Rounding allowance, in units of |y| eps, for what the evaluation itself
// adds beyond its inputs' conditioning (which the file's cond columns give):
// the special functions are computed in double and rounded once, then pass
// through at most a few float ops (the chain rule's products, rate * x):
// 8. ContinuousBernoulli's cdf / icdf forms are ~10 float ops each (expm1,
// log1p, the series), and their gradients come from the sampler's dx/dl
// kernel (a 10-term series over a ratio, or expm1 forms, ~20 float ops):
// 32; its entropy's direct form cancels up to ~7x just above
// |l| = 2 (1 + log(-expm1(-m)) - log m - m / expm1(m) = -0.15 from terms of
// ~1): 64.
double own_rounding(int c) {
  if (c == kCbEntropy || c == kCbpEntropy) return 64.0;
  if (c >= kCbCdf) return 32.0;
  return 8.0;
}

}  // namespace

// Every row: the value and its derivative in every argument, against mpmath.
// Tolerance eps (C |y| + cond(y) + A) + 1e-44:
//  * cond(y) = sum_k |arg_k dy/darg_k|, from the file: what rounding the
//    arguments' float intermediates (rate * x, (x - loc) / scale) to
//    relative eps can change y by (for the icdf's gradients, which are
//    evaluated at the float value x the icdf returns, through x or 1 - x as
//    the sampler's are, a value ~4 roundings deep: also 4 |dg/dx|);
//  * C |y|: the evaluation's own roundings (own_rounding above);
//  * A: the derivatives in a shape parameter are central differences in
//    double (relative error ~1e-10 of the function, see fd_step_d in
//    kernels/special.hpp), far below eps: A = 0 there. ContinuousBernoulli's
//    icdf for l < 0 is 1 - icdf_{-l}(1 - q), as its sampler: absolute error
//    ~eps where the value is small: A = 4 for its value;
//  * 1e-44: float32's denormal spacing (values deep in the tails).
TEST(SpecialCdfCsv, ValuesAndGradientsMatchMpmath) {
  const Csv csv = read_csv("../refdata/mpmath_cdf.csv");
  std::vector<int> seen(kCases, 0);
  const int cc = csv.need("case"), cv = csv.need("value"), ccv = csv.need("cond_value");
  for (size_t i = 0; i < csv.rows.size(); ++i) {
    const auto& r = csv.rows[i];
    const int c = static_cast<int>(r[static_cast<size_t>(cc)]);
    ASSERT_TRUE(c >= 0 && c < kCases) << "row " << i + 2;
    seen[static_cast<size_t>(c)]++;
    const int n = kArity[c];
    std::vector<Tensor> args;
    for (int k = 0; k < n; ++k)
      args.push_back(tensor(static_cast<float>(r[static_cast<size_t>(csv.need("a" + std::to_string(k)))])).requires_grad_());
    const std::string where = std::string(kCaseName[c]) + " row " + std::to_string(i + 2);
    Tensor y = eval_case(c, args);
    ASSERT_EQ(y.dim(), 0) << where;
    const double C = own_rounding(c);
    const double ref = r[static_cast<size_t>(cv)];
    const double A = (c == kCbIcdf || c == kCbpIcdf) ? 4.0 : 0.0;
    EXPECT_NEAR(y.item(), ref, kEps * (C * std::fabs(ref) + r[static_cast<size_t>(ccv)] + A) + 1e-44) << where;
    y.backward();
    for (int k = 0; k < n; ++k) {
      const double d = r[static_cast<size_t>(csv.need("d" + std::to_string(k)))];
      const double cd = r[static_cast<size_t>(csv.need("cond_d" + std::to_string(k)))];
      const Tensor g = args[static_cast<size_t>(k)].grad();
      ASSERT_TRUE(g.defined()) << where << " d/darg" << k;
      EXPECT_NEAR(g.item(), d, kEps * (C * std::fabs(d) + cd) + 1e-44) << where << " d/darg" << k;
    }
  }
  for (int c = 0; c < kCases; ++c) EXPECT_GE(seen[static_cast<size_t>(c)], 5) << kCaseName[c];
}

// Identities and shapes: P + Q = 1; I_x(a, b) = 1 - I_{1-x}(b, a); F(-t) =
// 1 - F(t); betainc broadcasting three shapes, its gradients summed back to
// each (against the elementwise evaluation at the broadcast points). Float
// results of double evaluations: within a few eps of each other.
TEST(SpecialOps, IdentitiesAndBroadcasting) {
  const Tensor a = tensor({0.3f, 1.0f, 4.5f, 60.0f}), x = tensor({0.01f, 0.9f, 5.0f, 70.0f});
  const auto p = gammainc(a, x).to_vector(), q = gammaincc(a, x).to_vector();
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(p[i] + q[i], 1.0, 3 * kEps) << i;

  const Tensor ba = tensor({0.5f, 2.0f, 30.0f}), bb = tensor({3.0f, 0.7f, 30.0f}), bx = tensor({0.2f, 0.75f, 0.5f});
  const auto i1 = betainc(ba, bb, bx).to_vector(), i2 = betainc(bb, ba, 1.0f - bx).to_vector();
  for (size_t i = 0; i < i1.size(); ++i) EXPECT_NEAR(i1[i], 1.0 - i2[i], 4 * kEps) << i;

  const Tensor df = tensor({0.5f, 3.0f, 1000.0f}), t = tensor({0.7f, 2.5f, 40.0f});
  const auto fp = stdtr(df, t).to_vector(), fm = stdtr(df, -t).to_vector();
  for (size_t i = 0; i < fp.size(); ++i) {
    EXPECT_NEAR(fp[i], 1.0 - fm[i], 3 * kEps) << i;
    EXPECT_EQ(stdtr(df, zeros({3})).to_vector()[i], 0.5f);
  }

  // Broadcasting: a [3, 1], b [4], x [] -> [3, 4].
  const Tensor A = tensor({0.5f, 1.5f, 6.0f}, {3, 1}).requires_grad_();
  const Tensor B = tensor({0.8f, 2.0f, 3.0f, 9.0f}).requires_grad_();
  const Tensor X = tensor(0.35f).requires_grad_();
  const Tensor out = betainc(A, B, X);
  ASSERT_EQ(out.shape(), (Shape{3, 4}));
  sum(out).backward();
  const auto ov = out.to_vector();
  const auto ga = A.grad().to_vector(), gb = B.grad().to_vector();
  const float gx = X.grad().item();
  std::vector<double> wa(3, 0.0), wb(4, 0.0);
  double wx = 0.0;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) {
      const Tensor ai = tensor(A.to_vector()[static_cast<size_t>(i)]).requires_grad_();
      const Tensor bj = tensor(B.to_vector()[static_cast<size_t>(j)]).requires_grad_();
      const Tensor xi = tensor(0.35f).requires_grad_();
      const Tensor e = betainc(ai, bj, xi);
      EXPECT_EQ(e.item(), ov[static_cast<size_t>(4 * i + j)]);
      e.backward();
      wa[static_cast<size_t>(i)] += ai.grad().item();
      wb[static_cast<size_t>(j)] += bj.grad().item();
      wx += xi.grad().item();
    }
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(ga[static_cast<size_t>(i)], wa[static_cast<size_t>(i)], 1e-6 * (1 + std::fabs(wa[static_cast<size_t>(i)])));
  for (int j = 0; j < 4; ++j) EXPECT_NEAR(gb[static_cast<size_t>(j)], wb[static_cast<size_t>(j)], 1e-6 * (1 + std::fabs(wb[static_cast<size_t>(j)])));
  EXPECT_NEAR(gx, wx, 1e-6 * (1 + std::fabs(wx)));
}

// Outside the domain the ops give NaN (value and gradient), as scipy does;
// the ends of the integration variable give the limits (P(a, 0) = 0,
// P(a, inf) = 1, I_0 = 0, I_1 = 1, F(+-inf) = 1, 0) with the density's
// limits as the derivative; mixed devices and int64 inputs are errors
// naming the op.
TEST(SpecialOps, DomainEndsAndErrors) {
  EXPECT_TRUE(std::isnan(gammainc(tensor(0.0f), tensor(1.0f)).item()));
  EXPECT_TRUE(std::isnan(gammainc(tensor(1.0f), tensor(-1.0f)).item()));
  EXPECT_TRUE(std::isnan(gammaincc(tensor(-2.0f), tensor(1.0f)).item()));
  EXPECT_TRUE(std::isnan(betainc(tensor(1.0f), tensor(1.0f), tensor(1.5f)).item()));
  EXPECT_TRUE(std::isnan(betainc(tensor(1.0f), tensor(0.0f), tensor(0.5f)).item()));
  EXPECT_TRUE(std::isnan(stdtr(tensor(0.0f), tensor(1.0f)).item()));
  EXPECT_TRUE(std::isnan(stdtr(tensor(2.0f), tensor(NAN)).item()));

  const Tensor ends = tensor({0.0f, INFINITY});
  EXPECT_EQ(gammainc(tensor(2.5f), ends).to_vector(), (std::vector<float>{0.0f, 1.0f}));
  EXPECT_EQ(gammaincc(tensor(2.5f), ends).to_vector(), (std::vector<float>{1.0f, 0.0f}));
  EXPECT_EQ(betainc(tensor(2.0f), tensor(3.0f), tensor({0.0f, 1.0f})).to_vector(), (std::vector<float>{0.0f, 1.0f}));
  EXPECT_EQ(stdtr(tensor(3.0f), tensor({-INFINITY, INFINITY})).to_vector(), (std::vector<float>{0.0f, 1.0f}));

  // d/dx P(a, x) at x = 0: +inf for a < 1, 1 for a = 1, 0 above.
  const Tensor x0 = zeros({3}).requires_grad_();
  sum(gammainc(tensor({0.5f, 1.0f, 2.0f}), x0)).backward();
  EXPECT_EQ(x0.grad().to_vector(), (std::vector<float>{INFINITY, 1.0f, 0.0f}));
  // d/dx I_x(a, b) at the ends: at 0, b for a = 1; at 1, a for b = 1.
  const Tensor xe = tensor({0.0f, 1.0f}).requires_grad_();
  sum(betainc(tensor({1.0f, 3.0f}), tensor({4.0f, 1.0f}), xe)).backward();
  EXPECT_EQ(xe.grad().to_vector(), (std::vector<float>{4.0f, 3.0f}));

  expect_error<DTypeError>([] { gammainc(tensor_i64({1}), tensor(1.0f)); }, {"gammainc"});
  expect_error<DTypeError>([] { betainc(tensor(1.0f), tensor_i64({1}), tensor(0.5f)); }, {"betainc"});
  expect_error<ShapeError>([] { stdtr(ones({2}), ones({3})); }, {"stdtr"});
  expect_error<ShapeError>([] { betainc(ones({2}), ones({3}), ones({})); }, {"betainc"});
}

// The new cdfs against the samplers: u = F(X) for X drawn from the family is
// Uniform(0, 1), so the Kolmogorov-Smirnov distance of n = 20000 values of u
// from the uniform stays below 1.95 / sqrt(n) (the 0.1% critical value), and
// a batch of distributions with its own parameters per element works.
TEST(SpecialCdf, CdfOfDrawsIsUniform) {
  set_seed(7);
  const int64_t n = 20000;
  const std::vector<dist::DistPtr> ds = {
      std::make_shared<dist::Gamma>(0.4f, 2.0f),         std::make_shared<dist::Gamma>(30.0f, 0.5f),
      std::make_shared<dist::Chi2>(3.0f),                std::make_shared<dist::InverseGamma>(2.5f, 1.5f),
      std::make_shared<dist::Beta>(0.6f, 4.0f),          std::make_shared<dist::Beta>(12.0f, 12.0f),
      std::make_shared<dist::StudentT>(1.5f, -1.0f, 2.0f), std::make_shared<dist::StudentT>(200.0f, 0.0f, 1.0f),
      dist::ContinuousBernoulli(0.2f).ptr(),             dist::ContinuousBernoulli::from_logits(7.0f).ptr(),
      dist::ContinuousBernoulli(0.5f).ptr()};
  for (const auto& d : ds) {
    auto u = d->cdf(d->sample({n})).to_vector();
    std::sort(u.begin(), u.end());
    double ks = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double v = u[static_cast<size_t>(i)];
      ks = std::max({ks, std::fabs(v - static_cast<double>(i) / n), std::fabs(static_cast<double>(i + 1) / n - v)});
    }
    EXPECT_LT(ks, 1.95 / std::sqrt(static_cast<double>(n))) << d->name();
  }
  // Batched parameters: each element's own distribution function.
  const Tensor a = tensor({0.5f, 3.0f}), r = tensor({1.0f, 4.0f});
  const auto batched = dist::Gamma(a, r).cdf(tensor({0.7f, 0.7f})).to_vector();
  EXPECT_EQ(batched[0], dist::Gamma(0.5f, 1.0f).cdf(tensor(0.7f)).item());
  EXPECT_EQ(batched[1], dist::Gamma(3.0f, 4.0f).cdf(tensor(0.7f)).item());
}

// ContinuousBernoulli: icdf inverts cdf (both sides of l = 0, the series
// band |l| < 1e-3, and |l| beyond expm1's range), the ends map to the ends,
// and values outside [0, 1] are rejected.
TEST(SpecialCdf, ContinuousBernoulliIcdfInvertsCdf) {
  const std::vector<float> ls = {-60.0f, -3.0f, -2e-4f, 0.0f, 5e-4f, 0.8f, 25.0f};
  const std::vector<float> qs = {0.01f, 0.3f, 0.5f, 0.8f, 0.99f};
  for (float l : ls) {
    const auto d = dist::ContinuousBernoulli::from_logits(l);
    const auto back = d.cdf(d.icdf(tensor(qs))).to_vector();
    // cdf o icdf has slope 1; each side is ~10 float ops, and for l < 0 the
    // icdf is 1 - (a value near 1), absolute error ~eps, which the cdf's
    // slope (the density, <= |l| / (1 - e^-|l|) <= 61 here) carries over.
    for (size_t i = 0; i < qs.size(); ++i)
      EXPECT_NEAR(back[i], qs[i], 64 * kEps * (1 + std::fabs(l))) << "l " << l << " q " << qs[i];
    EXPECT_EQ(d.icdf(tensor({0.0f, 1.0f})).to_vector(), (std::vector<float>{0.0f, 1.0f})) << l;
    EXPECT_EQ(d.cdf(tensor({0.0f, 1.0f})).to_vector(), (std::vector<float>{0.0f, 1.0f})) << l;
  }
  expect_error<ValueError>([] { dist::ContinuousBernoulli(0.3f).cdf(tensor(1.5f)).item(); },
                           {"ContinuousBernoulli", "1.5"});
}

namespace {
// y = -x: a decreasing elementwise transform, as a user would write one.
class Negate final : public dist::transforms::Transform {
 public:
  std::string name() const override { return "Negate"; }
  int event_dim() const override { return 0; }
  Tensor forward(const Tensor& x) const override { return -x; }
  Tensor inverse(const Tensor& y) const override { return -y; }
  Tensor log_abs_det_jacobian(const Tensor& x, const Tensor&) const override { return zeros_like(x); }
  int sign() const override { return -1; }
};
}  // namespace

// TransformedDistribution: through biject_to(positive) a Normal is a
// LogNormal, through biject_to(unit_interval) its cdf is Phi(logit x);
// through a decreasing transform the cdf is 1 - F(T^-1 x); icdf inverts
// cdf; gradients reach the base's parameters; transforms that are not
// elementwise monotone (Permute, flows) are an error naming the transform.
TEST(TransformedCdf, MonotoneTransformsCarryTheDistributionFunction) {
  const Tensor loc = tensor({0.3f, -1.0f}).requires_grad_(), scale = tensor({0.5f, 2.0f}).requires_grad_();
  const dist::DistPtr base = std::make_shared<dist::Normal>(loc, scale);
  const dist::TransformedDistribution ln(base, constraints::positive);
  const Tensor x = tensor({0.8f, 3.0f});
  const auto want = dist::LogNormal(loc.detach(), scale.detach()).cdf(x).to_vector();
  const Tensor F = ln.cdf(x);
  const auto got = F.to_vector();
  for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(got[i], want[i], 4 * kEps) << i;
  sum(F).backward();
  ASSERT_TRUE(loc.grad().defined());
  // dF/dloc = -phi(z) / scale at z = (log x - loc) / scale.
  for (size_t i = 0; i < 2; ++i) {
    const double z = (std::log(x.to_vector()[i]) - loc.to_vector()[i]) / scale.to_vector()[i];
    const double dloc = -std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI) / scale.to_vector()[i];
    EXPECT_NEAR(loc.grad().to_vector()[i], dloc, 1e-6) << i;
  }
  const Tensor q = tensor({0.1f, 0.75f});
  const auto xs = ln.icdf(q).to_vector(), wx = dist::LogNormal(loc.detach(), scale.detach()).icdf(q).to_vector();
  for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(xs[i], wx[i], 8 * kEps * wx[i]) << i;

  const dist::TransformedDistribution unit(std::make_shared<dist::Normal>(0.0f, 1.0f), constraints::unit_interval);
  const float u = 0.2f;
  EXPECT_NEAR(unit.cdf(tensor(u)).item(), 0.5 * std::erfc(-std::log(u / (1 - u)) / std::sqrt(2.0)), 4 * kEps);

  // Decreasing: X = -Y with Y ~ Exponential(2): P(X <= x) = exp(2 x) for x <= 0.
  const dist::TransformedDistribution neg(std::make_shared<dist::Exponential>(2.0f), {std::make_shared<Negate>()});
  EXPECT_NEAR(neg.cdf(tensor(-0.4f)).item(), std::exp(-0.8), 4 * kEps);
  EXPECT_NEAR(neg.icdf(tensor(std::exp(-0.8f))).item(), -0.4, 8 * kEps);
  // Two decreasing transforms make an increasing one.
  const dist::TransformedDistribution twice(std::make_shared<dist::Exponential>(2.0f),
                                            {std::make_shared<Negate>(), std::make_shared<Negate>()});
  EXPECT_NEAR(twice.cdf(tensor(0.4f)).item(), -std::expm1(-0.8), 4 * kEps);

  const dist::TransformedDistribution perm(dist::Normal(zeros({3}), ones({3})).to_event(1).ptr(),
                                           {std::make_shared<dist::transforms::Permute>(std::vector<int64_t>{2, 0, 1})});
  expect_error<ValueError>([&] { perm.cdf(zeros({3})); }, {"cdf", "Permute", "monotone"});
  expect_error<ValueError>([&] { perm.icdf(zeros({3})); }, {"icdf", "Permute"});
  const dist::TransformedDistribution simplex(dist::Normal(zeros({2}), ones({2})).to_event(1).ptr(),
                                              constraints::simplex);
  expect_error<ValueError>([&] { simplex.cdf(full({3}, 1.0f / 3)); }, {"cdf", "simplex"});
}

// Power (Pyro's PowerTransform) on the positive reals: round trips, log|det
// J| against autodiff's dy/dx (float32 forms a few ops deep: 1e-5 (1 +
// |ref|)), finite where x^e underflows, and its gradient in a tensor
// exponent (d/de [log|e| + (e - 1) log x] = 1/e + log x). Through it a
// LogNormal(m, s) becomes LogNormal(e m, |e| s) (log y = e log x), the cdf
// flipping where e < 0: a float exponent of each sign and a tensor of mixed
// signs.
TEST(ElementwiseTransforms, PowerOnThePositiveReals) {
  namespace tr = dist::transforms;
  const Tensor x = tensor({0.05f, 0.7f, 1.0f, 2.5f, 9.0f});
  const Tensor mixed = tensor({2.0f, -0.5f, 3.0f, -1.5f, 0.25f});
  for (const auto& t : {std::make_shared<tr::Power>(2.0f), std::make_shared<tr::Power>(-0.5f),
                        std::make_shared<tr::Power>(mixed)}) {
    const Tensor xl = x.detach().requires_grad_();
    const Tensor y = t->forward(xl);
    sum(y).backward();
    const auto back = t->inverse(y.detach()).to_vector(), xv = x.to_vector(), dy = xl.grad().to_vector();
    const auto ladj = t->log_abs_det_jacobian(x, y.detach()).to_vector();
    ASSERT_EQ(ladj.size(), xv.size());
    for (size_t i = 0; i < xv.size(); ++i) {
      EXPECT_NEAR(back[i], xv[i], 1e-5 * (1 + std::fabs(xv[i]))) << xv[i];
      const double ref = std::log(std::fabs(static_cast<double>(dy[i])));
      EXPECT_NEAR(ladj[i], ref, 1e-5 * (1 + std::fabs(ref))) << xv[i];
    }
  }
  EXPECT_NEAR(tr::Power(3.0f).log_abs_det_jacobian(tensor(1e-30f), Tensor()).item(),
              std::log(3.0) + 2 * std::log(1e-30), 1e-4);
  const Tensor e = tensor({2.0f, -0.5f}).requires_grad_();
  const Tensor xe = tensor({0.3f, 4.0f});
  sum(tr::Power(e).log_abs_det_jacobian(xe, Tensor())).backward();
  for (size_t i = 0; i < 2; ++i)
    EXPECT_NEAR(e.grad().to_vector()[i], 1 / e.to_vector()[i] + std::log(xe.to_vector()[i]), 1e-5) << i;
  EXPECT_EQ(tr::Power(2.0f).sign(), 1);
  EXPECT_EQ(tr::Power(-0.5f).sign(), -1);
  EXPECT_EQ(tr::Power(mixed).sign(), 0);
  EXPECT_EQ(tr::Power(mixed).decreasing().to_vector(), (std::vector<float>{0, 1, 0, 1, 0}));
  EXPECT_EQ(tr::Power(2.0f).codomain()->name(), constraints::positive->name());
  expect_error<ValueError>([] { tr::Power(0.0f); }, {"Power", "exponent 0"});
  expect_error<DTypeError>([] { tr::Power(tensor_i64({2})); }, {"Power", "float32"});

  const float m = 0.3f, sd = 0.6f;
  const Tensor v = tensor({0.2f, 0.9f, 1.7f, 6.0f, 30.0f});
  const auto ev = mixed.to_vector();
  for (const auto& [t, es] : {std::pair{std::make_shared<tr::Power>(2.0f), std::vector<float>(5, 2.0f)},
                              std::pair{std::make_shared<tr::Power>(-0.5f), std::vector<float>(5, -0.5f)},
                              std::pair{std::make_shared<tr::Power>(mixed), ev}}) {
    const dist::TransformedDistribution d(std::make_shared<dist::LogNormal>(full({5}, m), full({5}, sd)), {t});
    const Tensor et = tensor(es);
    const dist::LogNormal want(et * m, abs(et) * sd);
    const auto lp = d.log_prob(v).to_vector(), want_lp = want.log_prob(v).to_vector();
    const auto F = d.cdf(v).to_vector(), want_F = want.cdf(v).to_vector();
    for (size_t i = 0; i < 5; ++i) {
      EXPECT_NEAR(lp[i], want_lp[i], 1e-5 * (1 + std::fabs(want_lp[i]))) << es[i] << " at " << i;
      EXPECT_NEAR(F[i], want_F[i], 8 * kEps) << es[i] << " at " << i;
    }
  }
}

// The elementwise transforms: inverse(forward(x)) = x, log|det J| against
// log|dy/dx| from autodiff (each elementwise, float32 forms a few ops deep:
// within 1e-5 (1 + |ref|)), finite where the maps saturate, codomains and
// signs; through them a TransformedDistribution scores and has a cdf (a
// negative float scale and a tensor scale of mixed signs both give
// Normal(1, 2) from Normal(0, 1) under y = 1 +- 2 x).
TEST(ElementwiseTransforms, RoundTripsLogDetsSaturationAndCdf) {
  namespace tr = dist::transforms;
  const Tensor x = tensor({-3.0f, -0.7f, 0.0f, 0.4f, 2.5f});
  const Tensor loc = tensor({0.5f, -1.0f, 0.0f, 2.0f, 1.0f}), scale = tensor({2.0f, -0.5f, 1.5f, -3.0f, 0.25f});
  const std::vector<std::shared_ptr<tr::Transform>> ts = {
      std::make_shared<tr::Exp>(), std::make_shared<tr::Sigmoid>(), std::make_shared<tr::Tanh>(),
      std::make_shared<tr::Softplus>(), std::make_shared<tr::Affine>(loc, scale),
      std::make_shared<tr::Affine>(1.0f, -2.0f)};
  for (const auto& t : ts) {
    const Tensor xl = x.detach().requires_grad_();
    const Tensor y = t->forward(xl);
    sum(y).backward();
    const auto back = t->inverse(y.detach()).to_vector(), xv = x.to_vector();
    const auto ladj = t->log_abs_det_jacobian(x, y.detach()).to_vector();
    const auto dy = xl.grad().to_vector();
    ASSERT_EQ(ladj.size(), xv.size()) << t->name();
    for (size_t i = 0; i < xv.size(); ++i) {
      EXPECT_NEAR(back[i], xv[i], 1e-5 * (1 + std::fabs(xv[i]))) << t->name() << " " << xv[i];
      const double ref = std::log(std::fabs(static_cast<double>(dy[i])));
      EXPECT_NEAR(ladj[i], ref, 1e-5 * (1 + std::fabs(ref))) << t->name() << " " << xv[i];
    }
    EXPECT_TRUE(t->sign() != 0 || t->decreasing().defined()) << t->name();
  }
  // Saturation: the log-dets stay finite (and exact) where the maps are flat.
  EXPECT_NEAR(tr::Sigmoid().log_abs_det_jacobian(tensor(100.0f), Tensor()).item(), -100.0f, 1e-4f);
  EXPECT_NEAR(tr::Tanh().log_abs_det_jacobian(tensor(-50.0f), Tensor()).item(), 2 * (std::log(2.0) - 50), 1e-4);
  EXPECT_NEAR(tr::Softplus().log_abs_det_jacobian(tensor(-90.0f), Tensor()).item(), -90.0f, 1e-4f);
  EXPECT_EQ(tr::Exp().codomain()->name(), constraints::positive->name());
  EXPECT_EQ(tr::Affine(1.0f, -2.0f).sign(), -1);
  EXPECT_EQ(tr::Affine(loc, scale).sign(), 0);
  EXPECT_EQ(tr::Affine(loc, scale).decreasing().to_vector(), (std::vector<float>{0, 1, 0, 1, 0}));
  expect_error<ValueError>([] { tr::Affine(0.0f, 0.0f); }, {"Affine", "scale 0"});

  // Scoring and cdf through Affine: Normal(0, 1) under y = 1 +- 2 x is Normal(1, 2).
  const Tensor v = tensor({-1.5f, 0.3f, 2.0f, 4.0f});
  const dist::Normal want(1.0f, 2.0f);
  const auto want_lp = want.log_prob(v).to_vector(), want_F = want.cdf(v).to_vector();
  const Tensor mixed = tensor({2.0f, -2.0f, -2.0f, 2.0f});
  for (const dist::TransformedDistribution& d :
       {dist::TransformedDistribution(std::make_shared<dist::Normal>(zeros({4}), ones({4})),
                                      {std::make_shared<tr::Affine>(1.0f, -2.0f)}),
        dist::TransformedDistribution(std::make_shared<dist::Normal>(zeros({4}), ones({4})),
                                      {std::make_shared<tr::Affine>(1.0f, mixed)})}) {
    const auto lp = d.log_prob(v).to_vector(), F = d.cdf(v).to_vector();
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_NEAR(lp[i], want_lp[i], 4 * kEps * (1 + std::fabs(want_lp[i]))) << d.name() << " " << i;
      EXPECT_NEAR(F[i], want_F[i], 8 * kEps) << d.name() << " " << i;
    }
    const auto back = d.cdf(d.icdf(tensor({0.1f, 0.4f, 0.6f, 0.9f}))).to_vector();
    const std::vector<float> qs = {0.1f, 0.4f, 0.6f, 0.9f};
    for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(back[i], qs[i], 16 * kEps) << d.name() << " " << i;
  }
  // Exp: a LogNormal; Sigmoid after Affine: the logit-normal's cdf Phi((logit y - m) / s).
  const dist::TransformedDistribution ln(std::make_shared<dist::Normal>(0.2f, 0.7f), {std::make_shared<tr::Exp>()});
  EXPECT_NEAR(ln.cdf(tensor(1.5f)).item(), dist::LogNormal(0.2f, 0.7f).cdf(tensor(1.5f)).item(), 4 * kEps);
  const dist::TransformedDistribution logit_normal(std::make_shared<dist::Normal>(0.0f, 1.0f),
                                                   {std::make_shared<tr::Affine>(0.3f, 1.5f), std::make_shared<tr::Sigmoid>()});
  const double y = 0.8, z = (std::log(y / (1 - y)) - 0.3) / 1.5;
  EXPECT_NEAR(logit_normal.cdf(tensor(0.8f)).item(), 0.5 * std::erfc(-z / std::sqrt(2.0)), 8 * kEps);
}
