// Tests of the per-element distribution math in kernels/dist/ (plain C++, no
// tensors): log_prob and its gradients against tests/data/*.csv, the
// implicit-reparameterisation gradients against gamma_rsample_grad.csv and
// beta_rsample_grad.csv, KL(Normal || Normal), Dirichlet and Categorical rows,
// and statistical tests of every sampler (moments, Kolmogorov-Smirnov,
// chi-square) and of every pathwise gradient.
//
// Tolerance model for the reference files. Every check is
//     |got - ref| <= atol + rtol |ref| + cond,
// where atol/rtol budget the float32 evaluation inside the kernel and cond is
// the first-order effect of rounding the file's double inputs to the float
// arguments of the kernel: cond = sum_i |d ref / d in_i| |fl(in_i) - in_i|.
// That term is not a kernel error: e.g. normal.csv has x - loc = 0.003 with
// |x| = 2.3, so rounding x and loc to float moves d logp/dx by 8e-5 relative
// in any float implementation, and beta.csv has x = 0.99874, where rounding x
// moves 1 - x by 2.4e-5 relative.
//  * For log_prob columns the partial derivatives are columns of the file
//    itself (exact).
//  * For gradient columns they are estimated by a central difference of the
//    kernel under test with a step 1e-4 of the input (1e3 times the rounding;
//    noise in the estimate is ~1e-2 relative and irrelevant at this scale).
//    So that this estimate can never excuse a wrong value, it is capped at
//    1e-3 |ref| (the largest genuine value in these files is ~1e-4 |ref|).
// The worst err/tol ratio of every column is printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/dist/bernoulli.hpp"
#include "kernels/dist/beta.hpp"
#include "kernels/dist/categorical.hpp"
#include "kernels/dist/counts.hpp"
#include "kernels/dist/dirichlet.hpp"
#include "kernels/dist/exponential.hpp"
#include "kernels/dist/gamma.hpp"
#include "kernels/dist/gumbel.hpp"
#include "kernels/dist/kl.hpp"
#include "kernels/dist/laplace.hpp"
#include "kernels/dist/lognormal.hpp"
#include "kernels/dist/normal.hpp"
#include "kernels/dist/pareto.hpp"
#include "kernels/dist/poisson.hpp"
#include "kernels/dist/positive.hpp"
#include "kernels/dist/studentt.hpp"
#include "kernels/dist/uniform.hpp"
#include "kernels/dist/unit_interval.hpp"
#include "kernels/dist/vonmises.hpp"
#include "csv.hpp"
#include "sampler_checks.hpp"
#include "kernels/philox.hpp"

using namespace cuvi::kern;
using namespace cuvi::testing;

namespace {

using cuvi::testing::Csv;
using cuvi::testing::read_csv;

struct Tol {
  double atol, rtol;
};

// Worst err/tol ratio of a column; rows above 1 fail.
struct ColCheck {
  std::string name;
  double worst = 0.0;
  explicit ColCheck(std::string n) : name(std::move(n)) {}
  ColCheck(const ColCheck&) = delete;
  void check(double got, double ref, Tol t, double cond, const std::string& where) {
    const double tol = t.atol + t.rtol * std::fabs(ref) + cond;
    const double err = std::fabs(got - ref);
    if (!(err <= tol))
      ADD_FAILURE() << name << " " << where << ": got " << got << " ref " << ref << " err " << err << " tol " << tol;
    if (tol > 0 && err / tol > worst) worst = err / tol;
  }
  ~ColCheck() { std::printf("  [%s] worst err/tol = %.3f\n", name.c_str(), worst); }
};

double rounding(double v) { return std::fabs(static_cast<double>(static_cast<float>(v)) - v); }

// Cap of the finite-difference condition term (see the header comment).
double capped(double cond, double ref) { return std::min(cond, 1e-3 * std::fabs(ref)); }

std::string row_name(const Csv& c, size_t r) { return c.file + " row " + std::to_string(r + 2); }

// ---------------------------------------------------------------------------
// Scalar families against their CSV. Inputs: in[0] = x, in[1..] = params.
template <class D>
struct ScalarEval {
  // outputs: out[0] = log_prob, out[1] = dlogp/dx, out[2+i] = dlogp/dp_i
  static void eval(const float* in, float* out) {
    float dx = 0.0f, dp[4] = {0, 0, 0, 0};
    out[0] = D::log_prob_grad(in[0], in + 1, &dx, dp);
    out[1] = dx;
    for (int i = 0; i < D::kNumParams; ++i) out[2 + i] = dp[i];
  }
  static bool valid(const float* in) { return D::param_ok(in + 1) && D::support_ok(in[0], in + 1); }
};

// |d out_k / d in_j| by a central difference of the kernel, step 1e-4 of the
// input, shrunk while the perturbed point leaves the support/constraints.
template <class D>
void kernel_sensitivity(const float* in, int nin, int nout, double* sens /*[nin * nout]*/) {
  for (int j = 0; j < nin; ++j) {
    float h = 1e-4f * std::max(std::fabs(in[j]), 1e-3f);
    float a[8], b[8];
    for (int it = 0; it < 40; ++it) {
      std::copy(in, in + nin, a);
      std::copy(in, in + nin, b);
      a[j] += h;
      b[j] -= h;
      if (ScalarEval<D>::valid(a) && ScalarEval<D>::valid(b)) break;
      h *= 0.25f;
    }
    float oa[8], ob[8];
    ScalarEval<D>::eval(a, oa);
    ScalarEval<D>::eval(b, ob);
    const double step = static_cast<double>(a[j]) - static_cast<double>(b[j]);
    for (int k = 0; k < nout; ++k) sens[j * nout + k] = step > 0 ? std::fabs((oa[k] - ob[k]) / step) : 0.0;
  }
}

template <class D>
void check_family_csv(const char* file, Tol t_lp, Tol t_dx, const Tol* t_dp) {
  const Csv c = read_csv(file);
  constexpr int np = D::kNumParams;
  const int cx = c.need("x"), clp = c.need("log_prob");
  const int cdx = c.col("dlogp_dx");  // absent for discrete families
  int cp[np], cdp[np];
  for (int i = 0; i < np; ++i) {
    cp[i] = c.need(D::param_name(i));
    cdp[i] = c.need(std::string("dlogp_d") + D::param_name(i));
  }
  const std::string fam = D::kName;
  ColCheck lp(fam + " log_prob"), dxc(fam + " dlogp_dx");
  std::vector<std::unique_ptr<ColCheck>> dpc;
  for (int i = 0; i < np; ++i) dpc.emplace_back(new ColCheck(fam + " dlogp_d" + D::param_name(i)));
  for (size_t r = 0; r < c.rows.size(); ++r) {
    const auto& row = c.rows[r];
    const std::string where = row_name(c, r);
    double ex[8];
    float in[8];
    ex[0] = row[cx];
    for (int i = 0; i < np; ++i) ex[1 + i] = row[cp[i]];
    for (int j = 0; j <= np; ++j) in[j] = static_cast<float>(ex[j]);
    ASSERT_TRUE(D::param_ok(in + 1)) << where;
    ASSERT_TRUE(D::support_ok(in[0], in + 1)) << where;
    float out[8];
    ScalarEval<D>::eval(in, out);
    // log_prob() and the log_prob returned by log_prob_grad() agree.
    const float lp_only = D::log_prob(in[0], in + 1);
    EXPECT_NEAR(lp_only, out[0], 1e-6 * std::fabs(out[0]) + 1e-7) << where;
    // log_prob: cond from the file's own derivative columns.
    double cond_lp = (cdx >= 0 ? std::fabs(row[cdx]) : 0.0) * rounding(ex[0]);
    for (int i = 0; i < np; ++i) cond_lp += std::fabs(row[cdp[i]]) * rounding(ex[1 + i]);
    lp.check(out[0], row[clp], t_lp, cond_lp, where);
    // gradients: cond from the kernel's own sensitivity (capped).
    const int nin = np + 1, nout = np + 2;
    double sens[64];
    kernel_sensitivity<D>(in, nin, nout, sens);
    auto cond_of = [&](int k) {
      double s = 0.0;
      for (int j = 0; j < nin; ++j) s += sens[j * nout + k] * rounding(ex[j]);
      return s;
    };
    if (cdx >= 0) {
      dxc.check(out[1], row[cdx], t_dx, capped(cond_of(1), row[cdx]), where);
    } else {
      EXPECT_EQ(out[1], 0.0f) << where << ": discrete families have a zero value gradient";
    }
    for (int i = 0; i < np; ++i) dpc[i]->check(out[2 + i], row[cdp[i]], t_dp[i], capped(cond_of(2 + i), row[cdp[i]]), where);
  }
}

// Budget of the float32 evaluation. A column is a short formula (<= ~10
// roundings) whose intermediate terms can exceed the result by ~10x where
// they cancel (z^2 - 1 in d/dscale, log(rate x) - psi(a), the log-normaliser
// sums lgamma(a+b) - lgamma(a) - lgamma(b)): 1e-5 relative, the README's
// figure for log_prob in ordinary ranges. atol 1e-6 for results that cross
// zero, where the error is relative to the O(1) terms rather than the result.
// Observed (after cond): <= 4.2e-6 relative, see the printed err/tol ratios.
constexpr Tol kFloatTol{1e-6, 1e-5};

}  // namespace

// ---------------------------------------------------------------------------
TEST(DistCsv, Normal) {
  // log_prob = -z^2/2 - log s - c: 3 terms; d/dx, d/dloc = -+z/s: 2 roundings;
  // d/dscale = (z^2 - 1)/s cancels when |z| ~ 1 -> kFloatTol for all.
  const Tol dp[2] = {kFloatTol, kFloatTol};
  check_family_csv<Normal>("normal.csv", kFloatTol, kFloatTol, dp);
}
TEST(DistCsv, LogNormal) {
  // as Normal with z = (log x - loc)/s and an extra -log x term.
  const Tol dp[2] = {kFloatTol, kFloatTol};
  check_family_csv<LogNormal>("lognormal.csv", kFloatTol, kFloatTol, dp);
}
TEST(DistCsv, Laplace) {
  // -log 2 - log s - |x - loc|/s; d/dscale = (|x-loc|/s - 1)/s cancels near 1.
  const Tol dp[2] = {kFloatTol, kFloatTol};
  check_family_csv<Laplace>("laplace.csv", kFloatTol, kFloatTol, dp);
}
TEST(DistCsv, Exponential) {
  // log rate - rate x cancels for rate x ~ log rate; 1/rate - x likewise.
  const Tol dp[1] = {kFloatTol};
  check_family_csv<Exponential>("exponential.csv", kFloatTol, kFloatTol, dp);
}
TEST(DistCsv, Gamma) {
  // a log(rate x) - log x - rate x - lgamma(a): terms up to ~80 for a
  // result of ~5 (the 1e-5 budget covers 16x cancellation at 6e-8);
  // d/da = log(rate x) - psi(a) cancels near the mode.
  const Tol dp[2] = {kFloatTol, kFloatTol};
  check_family_csv<Gamma>("gamma.csv", kFloatTol, kFloatTol, dp);
}
TEST(DistCsv, Beta) {
  // lbeta is formed with Stirling cancellation for large shapes; the shape
  // gradients use psi differences without cancellation (digamma_diff).
  const Tol dp[2] = {kFloatTol, kFloatTol};
  check_family_csv<Beta>("beta.csv", kFloatTol, kFloatTol, dp);
}
TEST(DistCsv, StudentT) {
  // d/ddf is a sum of ~1e-2 terms cancelling to ~1e-4; it is evaluated in
  // double inside the kernel, so only the final float rounding remains: the
  // same budget holds comfortably.
  const Tol dp[3] = {kFloatTol, kFloatTol, kFloatTol};
  check_family_csv<StudentT>("studentt.csv", kFloatTol, kFloatTol, dp);
}
TEST(DistCsv, BernoulliLogits) {
  // -softplus(-+l) and sigmoid(-+l): a handful of roundings, no cancellation
  // (the stable forms), so a tighter budget: 1e-6 relative; atol 1e-7.
  const Tol t{1e-7, 1e-6};
  const Tol dp[1] = {t};
  check_family_csv<BernoulliLogits>("bernoulli_logits.csv", t, t, dp);
}
TEST(DistCsv, Poisson) {
  // For x >= 10, x (log1p(d) - d) - log(2 pi x)/2 - s(x): no large
  // cancellation; below, x log(rate) - rate - lgamma(x+1) with small terms.
  // d/drate = (x - rate)/rate: 2 roundings.
  const Tol dp[1] = {kFloatTol};
  check_family_csv<Poisson>("poisson.csv", kFloatTol, kFloatTol, dp);
}

// Extreme logits: the file's rows stay within |logits| < 7, so the tails are
// checked here against the stable double expressions
//   log p(1 | l) = -log1p(e^-l), log p(0 | l) = -log1p(e^l) (for l < 0; else -l - log1p(e^-l)),
//   d/dl = 1 - sigmoid(l) = sigmoid(-l) (x = 1), -sigmoid(l) (x = 0).
// Relative tolerance 1e-6: a few roundings, no cancellation.
TEST(DistCsv, BernoulliLogitsExtreme) {
  auto sp = [](double l) { return l > 0 ? l + std::log1p(std::exp(-l)) : std::log1p(std::exp(l)); };
  auto sg = [](double l) { return l >= 0 ? 1.0 / (1.0 + std::exp(-l)) : std::exp(l) / (1.0 + std::exp(l)); };
  for (float l : {-40.0f, -25.0f, -8.0f, 8.0f, 25.0f, 40.0f}) {
    for (float x : {0.0f, 1.0f}) {
      const double ref = x == 1.0f ? -sp(-l) : -sp(l);
      const double dref = x == 1.0f ? sg(-l) : -sg(l);
      float dx, dl;
      const float got = BernoulliLogits::log_prob_grad(x, &l, &dx, &dl);
      EXPECT_NEAR(got, ref, 1e-6 * std::fabs(ref)) << "l=" << l << " x=" << x;
      EXPECT_NEAR(dl, dref, 1e-6 * std::fabs(dref)) << "l=" << l << " x=" << x;
      EXPECT_EQ(BernoulliLogits::log_prob(x, &l), got);
      // probs form at the same point (p = sigmoid(l) rounded to float)
      const float p = static_cast<float>(sg(l));
      if (p > 0.0f && p < 1.0f) {
        const double refp = x == 1.0f ? std::log(static_cast<double>(p)) : std::log1p(-static_cast<double>(p));
        EXPECT_NEAR(BernoulliProbs::log_prob(x, &p), refp, 1e-6 * std::fabs(refp)) << "p=" << p;
      }
    }
  }
}

// Bernoulli by probabilities against bernoulli_logits.csv with p = sigmoid(l):
// log p is the file's; d/dp = (d/dl) / (p (1-p)). cond for log_prob:
// |d logp/dp| |fl(p) - p| (exact, from the file); for d/dp: kernel
// sensitivity (capped).
TEST(DistCsv, BernoulliProbs) {
  const Csv c = read_csv("bernoulli_logits.csv");
  const int cx = c.need("x"), cl = c.need("logits"), clp = c.need("log_prob"), cdl = c.need("dlogp_dlogits");
  ColCheck lp("BernoulliProbs log_prob"), dpc("BernoulliProbs dlogp_dprobs");
  for (size_t r = 0; r < c.rows.size(); ++r) {
    const auto& row = c.rows[r];
    const double l = row[cl];
    const double p = l >= 0 ? 1.0 / (1.0 + std::exp(-l)) : std::exp(l) / (1.0 + std::exp(l));
    const double dref = row[cdl] / (p * (1.0 - p));
    float in[2] = {static_cast<float>(row[cx]), static_cast<float>(p)};
    float out[3];
    ScalarEval<BernoulliProbs>::eval(in, out);
    double sens[6];
    kernel_sensitivity<BernoulliProbs>(in, 2, 3, sens);
    lp.check(out[0], row[clp], kFloatTol, std::fabs(dref) * rounding(p), row_name(c, r));
    dpc.check(out[2], dref, kFloatTol, capped(sens[1 * 3 + 2] * rounding(p), dref), row_name(c, r));
  }
}

// ---------------------------------------------------------------------------
// Implicit reparameterisation gradients. The kernel computes them in double
// (finite-difference error ~1e-10) and rounds to float: rtol 2e-7 (about 3
// float ulps). cond: kernel sensitivity to the rounded inputs (capped).
TEST(DistCsv, GammaRsampleGrad) {
  const Csv c = read_csv("gamma_rsample_grad.csv");
  const int ca = c.need("concentration"), cx = c.need("x"), cg = c.need("dx_dconcentration");
  ColCheck g1("Gamma rsample dx/da (rate 1)"), g2("Gamma rsample dx/da (rate 2.5)"), g3("Gamma rsample dx/drate");
  const Tol t{0.0, 2e-7};
  for (size_t r = 0; r < c.rows.size(); ++r) {
    const auto& row = c.rows[r];
    const double a = row[ca], x = row[cx], ref = row[cg];
    const float af = static_cast<float>(a), xf = static_cast<float>(x);
    const float p1[2] = {af, 1.0f};
    float g[2];
    Gamma::sample_grad(xf, p1, g);
    // sensitivity of dx/da to a and x, by central differences of the kernel
    auto G = [&](float aa, float xx) {
      const float pp[2] = {aa, 1.0f};
      float gg[2];
      Gamma::sample_grad(xx, pp, gg);
      return static_cast<double>(gg[0]);
    };
    const float ha = 1e-4f * af, hx = 1e-4f * xf;
    const double sa = std::fabs((G(af + ha, xf) - G(af - ha, xf)) / (2.0 * ha));
    const double sx = std::fabs((G(af, xf + hx) - G(af, xf - hx)) / (2.0 * hx));
    g1.check(g[0], ref, t, capped(sa * rounding(a) + sx * rounding(x), ref), row_name(c, r));
    // Scaling: for Gamma(a, rate) the sample is x / rate and dx/da scales by 1/rate.
    const float rate = 2.5f;
    const float pr[2] = {af, rate};
    const float xr = static_cast<float>(x / rate);
    Gamma::sample_grad(xr, pr, g);
    // out = G(a, rate xr)/rate: d out/d xr = dG/dx, d out/da = (dG/da)/rate
    g2.check(g[0], ref / rate, t, capped(sa * rounding(a) / rate + sx * rounding(x / rate), ref / rate), row_name(c, r));
    g3.check(g[1], -xr / rate, Tol{0.0, 1e-7}, 0.0, row_name(c, r));
  }
}

TEST(DistCsv, BetaRsampleGrad) {
  const Csv c = read_csv("beta_rsample_grad.csv");
  const int ca = c.need("concentration1"), cb = c.need("concentration0"), cx = c.need("x");
  const int cga = c.need("dx_dconcentration1"), cgb = c.need("dx_dconcentration0");
  ColCheck ga("Beta rsample dx/da"), gb("Beta rsample dx/db");
  const Tol t{0.0, 2e-7};
  for (size_t r = 0; r < c.rows.size(); ++r) {
    const auto& row = c.rows[r];
    const double ex[3] = {row[ca], row[cb], row[cx]};
    const float in[3] = {static_cast<float>(ex[0]), static_cast<float>(ex[1]), static_cast<float>(ex[2])};
    auto G = [](const float* v, float* g) { Beta::sample_grad(v[2], v, g); };
    float g[2];
    G(in, g);
    double cond[2] = {0, 0};
    for (int j = 0; j < 3; ++j) {
      float a[3] = {in[0], in[1], in[2]}, b[3] = {in[0], in[1], in[2]};
      const float h = 1e-4f * std::min(in[j], j == 2 ? 1.0f - in[2] : in[j]);
      a[j] += h;
      b[j] -= h;
      float gp[2], gm[2];
      G(a, gp);
      G(b, gm);
      const double step = static_cast<double>(a[j]) - b[j];
      for (int k = 0; k < 2; ++k) cond[k] += std::fabs((gp[k] - gm[k]) / step) * rounding(ex[j]);
    }
    ga.check(g[0], row[cga], t, capped(cond[0], row[cga]), row_name(c, r));
    gb.check(g[1], row[cgb], t, capped(cond[1], row[cgb]), row_name(c, r));
  }
}

// ---------------------------------------------------------------------------
// KL(Normal || Normal): kl, dkl/dloc_q, dkl/dscale_q from the file. The file
// has no p-derivatives; they follow from invariances of the KL, so they are
// checked against the file's q-derivatives:
//   translation: dlq + dlp = 0;   scaling: lq dlq + sq dsq + lp dlp + sp dsp = 0.
// The same identities give the p-derivatives for the log_prob-style cond.
TEST(DistCsv, KlNormalNormal) {
  const Csv c = read_csv("kl_normal_normal.csv");
  const int c_lq = c.need("loc_q"), c_sq = c.need("scale_q"), c_lp = c.need("loc_p"), c_sp = c.need("scale_p");
  const int ckl = c.need("kl"), cdl = c.need("dkl_dloc_q"), cds = c.need("dkl_dscale_q");
  ColCheck kl("KL value"), dlq("KL dloc_q"), dsq("KL dscale_q"), dlp("KL dloc_p"), dsp("KL dscale_p");
  for (size_t r = 0; r < c.rows.size(); ++r) {
    const auto& row = c.rows[r];
    const double ex[4] = {row[c_lq], row[c_sq], row[c_lp], row[c_sp]};
    float in[4];
    for (int j = 0; j < 4; ++j) in[j] = static_cast<float>(ex[j]);
    float d[4];
    const float v = kl_normal_normal_grad(in[0], in[1], in[2], in[3], d);
    EXPECT_EQ(v, kl_normal_normal(in[0], in[1], in[2], in[3]));
    const double rdlq = row[cdl], rdsq = row[cds];
    const double rdlp = -rdlq;
    const double rdsp = -(ex[0] * rdlq + ex[1] * rdsq + ex[2] * rdlp) / ex[3];
    const double rd[4] = {rdlq, rdsq, rdlp, rdsp};
    double cond_kl = 0.0;
    for (int j = 0; j < 4; ++j) cond_kl += std::fabs(rd[j]) * rounding(ex[j]);
    // sensitivity of the four gradients to the four inputs (kernel)
    double cond[4] = {0, 0, 0, 0};
    for (int j = 0; j < 4; ++j) {
      float a[4], b[4];
      std::copy(in, in + 4, a);
      std::copy(in, in + 4, b);
      const float h = 1e-4f * std::max(std::fabs(in[j]), 1e-3f);
      a[j] += h;
      b[j] -= h;
      float da[4], db[4];
      kl_normal_normal_grad(a[0], a[1], a[2], a[3], da);
      kl_normal_normal_grad(b[0], b[1], b[2], b[3], db);
      const double step = static_cast<double>(a[j]) - b[j];
      for (int k = 0; k < 4; ++k) cond[k] += std::fabs((da[k] - db[k]) / step) * rounding(ex[j]);
    }
    // Budget as kFloatTol: (r^2 - 1)/2 - log r + m^2/2 cancels for r ~ 1.
    const std::string where = row_name(c, r);
    kl.check(v, row[ckl], kFloatTol, cond_kl, where);
    dlq.check(d[0], rdlq, kFloatTol, capped(cond[0], rdlq), where);
    dsq.check(d[1], rdsq, kFloatTol, capped(cond[1], rdsq), where);
    dlp.check(d[2], rdlp, kFloatTol, capped(cond[2], rdlp), where);
    // rdsp is itself a combination of columns with cancellation (the sum of
    // four products); its own double error is negligible, but the float
    // kernel's (1 - r^2 - m^2)/sp cancels like d/dscale of Normal.
    dsp.check(d[3], rdsp, kFloatTol, capped(cond[3], rdsp), where);
  }
}

// ---------------------------------------------------------------------------
// Dirichlet rows: log_prob and dlogp/dconcentration_i.
// cond for log_prob: the file's d/dalpha and d/dx_i = (alpha_i - 1)/x_i.
void check_dirichlet_csv(const char* file, int K) {
  const Csv c = read_csv(file);
  std::vector<int> ca(K), cx(K), cd(K);
  for (int i = 0; i < K; ++i) {
    ca[i] = c.need("concentration" + std::to_string(i));
    cx[i] = c.need("x" + std::to_string(i));
    cd[i] = c.need("dlogp_dconcentration" + std::to_string(i));
  }
  const int clp = c.need("log_prob");
  const std::string tag = "Dirichlet" + std::to_string(K);
  ColCheck lp(tag + " log_prob"), da(tag + " dlogp_dconcentration"), dxc(tag + " dlogp_dx");
  for (size_t r = 0; r < c.rows.size(); ++r) {
    const auto& row = c.rows[r];
    const std::string where = row_name(c, r);
    float a[8], x[8], dx[8], dal[8];
    for (int i = 0; i < K; ++i) {
      a[i] = static_cast<float>(row[ca[i]]);
      x[i] = static_cast<float>(row[cx[i]]);
    }
    ASSERT_TRUE(Dirichlet::param_ok(a, K)) << where;
    ASSERT_TRUE(Dirichlet::support_ok(x, K)) << where;
    const float v = Dirichlet::log_prob_grad(x, a, K, dx, dal);
    EXPECT_EQ(v, Dirichlet::log_prob(x, a, K)) << where;
    double cond_lp = 0.0;
    for (int i = 0; i < K; ++i) {
      cond_lp += std::fabs(row[cd[i]]) * rounding(row[ca[i]]);
      cond_lp += std::fabs((row[ca[i]] - 1.0) / row[cx[i]]) * rounding(row[cx[i]]);
    }
    // The normaliser is summed in double; the float part is sum (a_i - 1) log x_i.
    lp.check(v, row[clp], kFloatTol, cond_lp, where);
    for (int i = 0; i < K; ++i) {
      // d/dalpha_i = log x_i + psi(a0) - psi(a_i): kernel sensitivity to
      // alpha_j (trigamma-sized) and x_i (1/x_i).
      double cond = std::fabs(1.0 / row[cx[i]]) * rounding(row[cx[i]]);
      for (int j = 0; j < K; ++j) {
        float ap[8], am[8], dxx[8], gp[8], gm[8];
        std::copy(a, a + K, ap);
        std::copy(a, a + K, am);
        const float h = 1e-4f * a[j];
        ap[j] += h;
        am[j] -= h;
        Dirichlet::log_prob_grad(x, ap, K, dxx, gp);
        Dirichlet::log_prob_grad(x, am, K, dxx, gm);
        cond += std::fabs((gp[i] - gm[i]) / (static_cast<double>(ap[j]) - am[j])) * rounding(row[ca[j]]);
      }
      da.check(dal[i], row[cd[i]], kFloatTol, capped(cond, row[cd[i]]), where);
      // d/dx_i against the formula at the float inputs (indexing check): 2 roundings.
      const double rdx = (static_cast<double>(a[i]) - 1.0) / x[i];
      dxc.check(dx[i], rdx, Tol{0.0, 2.5e-7}, 0.0, where);
    }
  }
}

TEST(DistCsv, Dirichlet3) { check_dirichlet_csv("dirichlet3.csv", 3); }
TEST(DistCsv, Dirichlet5) { check_dirichlet_csv("dirichlet5.csv", 5); }

// Categorical rows (K = 4). CategoricalLogits against the file; for
// CategoricalProbs the file's logits are turned into probs = softmax(logits)
// (double, then rounded): log p_x must match the file's log_prob, and the
// probs gradient mapped back through the softmax Jacobian,
//   dlogits_k = sum_j dprobs_j p_j (delta_jk - p_k),
// must match the file's dlogp/dlogits.
TEST(DistCsv, Categorical4) {
  const Csv c = read_csv("categorical4.csv");
  constexpr int K = 4;
  int cl[K], cd[K];
  for (int i = 0; i < K; ++i) {
    cl[i] = c.need("logits" + std::to_string(i));
    cd[i] = c.need("dlogp_dlogits" + std::to_string(i));
  }
  const int cx = c.need("x"), clp = c.need("log_prob");
  ColCheck lp("CategoricalLogits log_prob"), dl("CategoricalLogits dlogp_dlogits");
  ColCheck plp("CategoricalProbs log_prob"), pdl("CategoricalProbs grad through softmax");
  for (size_t r = 0; r < c.rows.size(); ++r) {
    const auto& row = c.rows[r];
    const std::string where = row_name(c, r);
    float l[K], g[K];
    double ld[K];
    for (int i = 0; i < K; ++i) {
      ld[i] = row[cl[i]];
      l[i] = static_cast<float>(ld[i]);
    }
    const float x = static_cast<float>(row[cx]);
    ASSERT_TRUE(CategoricalLogits::param_ok(l, K)) << where;
    ASSERT_TRUE(CategoricalLogits::support_ok(x, K)) << where;
    const float v = CategoricalLogits::log_prob_grad(x, l, K, g);
    EXPECT_EQ(v, CategoricalLogits::log_prob(x, l, K)) << where;
    double cond_lp = 0.0;
    for (int i = 0; i < K; ++i) cond_lp += std::fabs(row[cd[i]]) * rounding(ld[i]);
    // l_x - logsumexp(l): a max, K exps, a log: kFloatTol.
    lp.check(v, row[clp], kFloatTol, cond_lp, where);
    for (int k = 0; k < K; ++k) {
      // d/dl_k = [k == x] - softmax_k: sensitivity to l_j is |softmax'| <= 1/4.
      double cond = 0.0;
      for (int j = 0; j < K; ++j) cond += 0.25 * rounding(ld[j]);
      dl.check(g[k], row[cd[k]], kFloatTol, capped(cond, row[cd[k]]), where);
    }
    // probs form
    double m = ld[0];
    for (int i = 1; i < K; ++i) m = std::max(m, ld[i]);
    double s = 0.0, pd[K];
    for (int i = 0; i < K; ++i) s += std::exp(ld[i] - m);
    float p[K];
    for (int i = 0; i < K; ++i) {
      pd[i] = std::exp(ld[i] - m) / s;
      p[i] = static_cast<float>(pd[i]);
    }
    ASSERT_TRUE(CategoricalProbs::param_ok(p, K)) << where;
    float gp[K];
    const float vp = CategoricalProbs::log_prob_grad(x, p, K, gp);
    EXPECT_EQ(vp, CategoricalProbs::log_prob(x, p, K)) << where;
    const int ix = static_cast<int>(row[cx]);
    double cond_p = 0.0;  // d/dp_j of log p_x - log sum p at sum = 1: [j == x]/p_x - 1
    for (int j = 0; j < K; ++j) cond_p += std::fabs((j == ix ? 1.0 / pd[ix] : 0.0) - 1.0) * rounding(pd[j]);
    plp.check(vp, row[clp], kFloatTol, cond_p, where);
    for (int k = 0; k < K; ++k) {
      double back = 0.0;
      for (int j = 0; j < K; ++j) back += gp[j] * pd[j] * ((j == k ? 1.0 : 0.0) - pd[k]);
      // The float gradient [j == x]/p_x - 1/sum p, weighted by p_j, carries
      // ~1e-7 absolute error (and the float probs sum to 1 only within
      // ~2e-7): within kFloatTol's atol, no cond term needed.
      pdl.check(back, row[cd[k]], kFloatTol, 0.0, where);
    }
  }
}

// ---------------------------------------------------------------------------
// Samplers: the checks of sampler_checks.hpp.
namespace {

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

// Standard t CDF through the regularised incomplete beta.
double student_cdf(double t, double df) {
  const double tail = 0.5 * beta_inc_d(0.5 * df, 0.5, df / (df + t * t));
  return t < 0 ? tail : 1.0 - tail;
}

}  // namespace

TEST(Sampler, Normal) {
  const float p[2] = {1.5f, 2.0f};
  const auto xs = draw<Normal>(p, kN, 11);
  const double v = 4.0;
  check_moments(xs, Normal::mean(p), Normal::variance(p), 3.0 * v * v, "Normal");
  check_ks(xs, [&](double x) { return normal_cdf((x - 1.5) / 2.0); }, "Normal");
  // E x = loc, E x^2 = s^2 + loc^2
  const double dm[2] = {1.0, 0.0}, d2[2] = {2.0 * 1.5, 2.0 * 2.0};
  check_pathwise<Normal>(xs, p, dm, d2, "Normal");
}

TEST(Sampler, LogNormal) {
  const float p[2] = {0.3f, 0.5f};
  const auto xs = draw<LogNormal>(p, kN, 12);
  const double m = 0.3, s = 0.5, s2 = s * s;
  const double var = LogNormal::variance(p);
  // kurtosis e^{4s^2} + 2 e^{3s^2} + 3 e^{2s^2} - 3
  const double kurt = std::exp(4 * s2) + 2 * std::exp(3 * s2) + 3 * std::exp(2 * s2) - 3;
  check_moments(xs, LogNormal::mean(p), var, kurt * var * var, "LogNormal");
  check_ks(xs, [&](double x) { return normal_cdf((std::log(x) - m) / s); }, "LogNormal");
  // E x = exp(m + s^2/2), E x^2 = exp(2m + 2s^2)
  const double e1 = std::exp(m + 0.5 * s2), e2 = std::exp(2 * m + 2 * s2);
  const double dm[2] = {e1, s * e1}, d2[2] = {2 * e2, 4 * s * e2};
  check_pathwise<LogNormal>(xs, p, dm, d2, "LogNormal");
}

TEST(Sampler, Laplace) {
  const float p[2] = {-1.0f, 0.7f};
  const auto xs = draw<Laplace>(p, kN, 13);
  const double var = Laplace::variance(p);
  check_moments(xs, Laplace::mean(p), var, 6.0 * var * var, "Laplace");
  check_ks(xs,
           [&](double x) {
             const double z = (x + 1.0) / 0.7;
             return z < 0 ? 0.5 * std::exp(z) : 1.0 - 0.5 * std::exp(-z);
           },
           "Laplace");
  // E x^2 = 2 s^2 + loc^2
  const double dm[2] = {1.0, 0.0}, d2[2] = {2.0 * -1.0, 4.0 * 0.7};
  check_pathwise<Laplace>(xs, p, dm, d2, "Laplace");
}

TEST(Sampler, Exponential) {
  const float p[1] = {2.5f};
  const auto xs = draw<Exponential>(p, kN, 14);
  const double var = Exponential::variance(p);
  check_moments(xs, Exponential::mean(p), var, 9.0 * var * var, "Exponential");
  check_ks(xs, [](double x) { return -std::expm1(-2.5 * x); }, "Exponential");
  // E x = 1/r, E x^2 = 2/r^2
  const double r = 2.5;
  const double dm[1] = {-1.0 / (r * r)}, d2[1] = {-4.0 / (r * r * r)};
  check_pathwise<Exponential>(xs, p, dm, d2, "Exponential");
}

TEST(Sampler, Uniform) {
  const float p[2] = {-2.0f, 3.0f};
  const auto xs = draw<Uniform>(p, kN, 15);
  const double var = Uniform::variance(p);
  check_moments(xs, Uniform::mean(p), var, 1.8 * var * var, "Uniform");
  check_ks(xs, [](double x) { return (x + 2.0) / 5.0; }, "Uniform");
  // E x = (l+h)/2, E x^2 = (h^2 + h l + l^2)/3
  const double l = -2.0, h = 3.0;
  const double dm[2] = {0.5, 0.5}, d2[2] = {(h + 2 * l) / 3.0, (2 * h + l) / 3.0};
  check_pathwise<Uniform>(xs, p, dm, d2, "Uniform");
}

void gamma_sampler_case(float a, float r, uint64_t seed, int n) {
  const float p[2] = {a, r};
  const auto xs = draw<Gamma>(p, n, seed);
  const std::string what = "Gamma(" + std::to_string(a) + "," + std::to_string(r) + ")";
  const double var = Gamma::variance(p);
  check_moments(xs, Gamma::mean(p), var, (3.0 + 6.0 / a) * var * var, what);
  check_ks(xs, [&](double x) { return gamma_p_d(a, r * x); }, what);
  // E x = a/r, E x^2 = a(a+1)/r^2
  const double ad = a, rd = r;
  const double dm[2] = {1.0 / rd, -ad / (rd * rd)};
  const double d2[2] = {(2 * ad + 1) / (rd * rd), -2 * ad * (ad + 1) / (rd * rd * rd)};
  check_pathwise<Gamma>(xs, p, dm, d2, what);
}

TEST(Sampler, InverseGamma) {
  // 1/x ~ Gamma(a, b): the CDF is Q(a, b / x). E x = b / (a - 1),
  // E x^2 = b^2 / ((a - 1)(a - 2)); a = 6.5 so the fourth moment exists.
  const float p[2] = {6.5f, 1.5f};
  const auto xs = draw<InverseGamma>(p, kN, 31);
  const double a = 6.5, b = 1.5, var = InverseGamma::variance(p);
  // Excess kurtosis (6 (5a - 11)) / ((a - 3)(a - 4)).
  const double kurt = 3.0 + 6.0 * (5 * a - 11) / ((a - 3) * (a - 4));
  check_moments(xs, InverseGamma::mean(p), var, kurt * var * var, "InverseGamma");
  check_ks(xs, [&](double x) { return gamma_q_d(a, b / x); }, "InverseGamma");
  const double am1 = a - 1, am2 = a - 2;
  const double dm[2] = {-b / (am1 * am1), 1.0 / am1};
  const double d2[2] = {-b * b * (2 * a - 3) / (am1 * am1 * am2 * am2), 2 * b / (am1 * am2)};
  check_pathwise<InverseGamma>(xs, p, dm, d2, "InverseGamma");
}

TEST(Sampler, Weibull) {
  // CDF 1 - exp(-(x/l)^k); E x^n = l^n Gamma(1 + n/k), so
  // d/dl E x = Gamma(1 + 1/k), d/dk E x = -l Gamma(1 + 1/k) psi(1 + 1/k) / k^2,
  // d/dl E x^2 = 2 l Gamma(1 + 2/k), d/dk E x^2 = -2 l^2 Gamma(1 + 2/k) psi(1 + 2/k) / k^2.
  const float p[2] = {1.3f, 1.7f};
  const auto xs = draw<Weibull>(p, kN, 32);
  const double l = 1.3, k = 1.7;
  const double g1 = std::tgamma(1 + 1 / k), g2 = std::tgamma(1 + 2 / k), g3 = std::tgamma(1 + 3 / k),
               g4 = std::tgamma(1 + 4 / k);
  const double m = l * g1, var = l * l * (g2 - g1 * g1);
  // Fourth central moment from the raw ones.
  const double mu4 = std::pow(l, 4) * (g4 - 4 * g3 * g1 + 6 * g2 * g1 * g1 - 3 * std::pow(g1, 4));
  check_moments(xs, Weibull::mean(p), Weibull::variance(p), mu4, "Weibull");
  EXPECT_NEAR(Weibull::mean(p), m, 1e-5 * m);
  EXPECT_NEAR(Weibull::variance(p), var, 1e-4 * var);
  check_ks(xs, [&](double x) { return -std::expm1(-std::pow(x / l, k)); }, "Weibull");
  const double dm[2] = {g1, -l * g1 * digamma_d(1 + 1 / k) / (k * k)};
  const double d2[2] = {2 * l * g2, -2 * l * l * g2 * digamma_d(1 + 2 / k) / (k * k)};
  check_pathwise<Weibull>(xs, p, dm, d2, "Weibull");
}

TEST(Sampler, GammaSmallShape) { gamma_sampler_case(0.3f, 2.0f, 16, kN); }    // boosted a < 1 path
TEST(Sampler, GammaMediumShape) { gamma_sampler_case(4.5f, 0.5f, 17, kN); }   // Marsaglia-Tsang
TEST(Sampler, GammaLargeShape) { gamma_sampler_case(150.0f, 3.0f, 18, 50000); }  // large d

void beta_sampler_case(float a, float b, uint64_t seed) {
  const float p[2] = {a, b};
  const auto xs = draw<Beta>(p, kN, seed);
  const std::string what = "Beta(" + std::to_string(a) + "," + std::to_string(b) + ")";
  const double var = Beta::variance(p);
  const double ad = a, bd = b, n = ad + bd;
  const double exkurt = 6.0 * ((ad - bd) * (ad - bd) * (n + 1) - ad * bd * (n + 2)) / (ad * bd * (n + 2) * (n + 3));
  check_moments(xs, Beta::mean(p), var, (3.0 + exkurt) * var * var, what);
  check_ks(xs, [&](double x) { return beta_inc_d(ad, bd, x); }, what);
  // E x = a/n; E x^2 = a(a+1)/(n(n+1))
  const double nn1 = n * (n + 1);
  const double dm[2] = {bd / (n * n), -ad / (n * n)};
  const double d2[2] = {((2 * ad + 1) * nn1 - ad * (ad + 1) * (2 * n + 1)) / (nn1 * nn1),
                        -ad * (ad + 1) * (2 * n + 1) / (nn1 * nn1)};
  check_pathwise<Beta>(xs, p, dm, d2, what);
}

TEST(Sampler, BetaSmallShapes) { beta_sampler_case(0.5f, 0.7f, 19); }
TEST(Sampler, BetaLargerShapes) { beta_sampler_case(3.0f, 2.0f, 20); }

TEST(Sampler, StudentTHeavyTail) {
  // df = 2.5: KS only (the fourth moment is infinite).
  const float p[3] = {2.5f, 1.0f, 2.0f};
  const auto xs = draw<StudentT>(p, kN, 21);
  check_ks(xs, [](double x) { return student_cdf((x - 1.0) / 2.0, 2.5); }, "StudentT(2.5)");
}

TEST(Sampler, StudentT) {
  const float p[3] = {7.0f, 1.0f, 2.0f};
  const double df = 7.0, loc = 1.0, s = 2.0;
  const auto xs = draw<StudentT>(p, kN, 22);
  const double var = StudentT::variance(p);
  check_moments(xs, StudentT::mean(p), var, (3.0 + 6.0 / (df - 4.0)) * var * var, "StudentT(7)");
  check_ks(xs, [&](double x) { return student_cdf((x - loc) / s, df); }, "StudentT(7)");
  // E x = loc; E x^2 = s^2 df/(df-2) + loc^2
  const double dm[3] = {0.0, 1.0, 0.0};
  const double d2[3] = {-2.0 * s * s / ((df - 2) * (df - 2)), 2.0 * loc, 2.0 * s * df / (df - 2)};
  check_pathwise<StudentT>(xs, p, dm, d2, "StudentT(7)");
}

TEST(Sampler, Bernoulli) {
  const float pp[1] = {0.3f};
  const float pl[1] = {-1.2f};
  const auto xp = draw<BernoulliProbs>(pp, kN, 23);
  const auto xl = draw<BernoulliLogits>(pl, kN, 24);
  const double q = 1.0 / (1.0 + std::exp(1.2));
  EXPECT_NEAR(BernoulliLogits::mean(pl), q, 1e-7);
  for (int which = 0; which < 2; ++which) {
    const auto& xs = which == 0 ? xp : xl;
    const double pr = which == 0 ? static_cast<double>(pp[0]) : q;
    std::vector<long> counts(2, 0);
    for (double x : xs) {
      ASSERT_TRUE(x == 0.0 || x == 1.0);
      counts[static_cast<int>(x)]++;
    }
    check_chi2(counts, {1.0 - pr, pr}, which == 0 ? "BernoulliProbs" : "BernoulliLogits");
    const double var = pr * (1 - pr);
    check_moments(xs, pr, var, var * (1 - 3 * var), which == 0 ? "BernoulliProbs" : "BernoulliLogits");
  }
}

void poisson_case(float rate, uint64_t seed) {
  const float p[1] = {rate};
  const auto xs = draw<Poisson>(p, kN, seed);
  const std::string what = "Poisson(" + std::to_string(rate) + ")";
  std::vector<long> counts;
  for (double x : xs) {
    ASSERT_TRUE(x >= 0 && x == std::floor(x)) << what;
    const size_t k = static_cast<size_t>(x);
    if (k >= counts.size()) counts.resize(k + 1, 0);
    counts[k]++;
  }
  // pmf with std::lgamma (host-only test code: independent of the kernel's lgamma)
  std::vector<double> prob;
  const double lam = rate;
  const size_t kmax = static_cast<size_t>(lam + 12.0 * std::sqrt(lam) + 20.0);
  for (size_t k = 0; k <= kmax; ++k) prob.push_back(std::exp(k * std::log(lam) - lam - std::lgamma(k + 1.0)));
  check_chi2(counts, prob, what);
  check_moments(xs, lam, lam, lam * (1 + 3 * lam), what);
}

TEST(Sampler, PoissonInversion) { poisson_case(3.5f, 25); }
TEST(Sampler, PoissonPtrs) { poisson_case(25.0f, 26); }
TEST(Sampler, PoissonPtrsLarge) { poisson_case(1000.0f, 27); }
TEST(Sampler, PoissonZeroRate) {
  const float p[1] = {0.0f};
  ElemRng rng(1, 2, 3);
  EXPECT_EQ(Poisson::sample(p, rng), 0.0f);
  EXPECT_EQ(Poisson::log_prob(0.0f, p), 0.0f);
  EXPECT_EQ(Poisson::log_prob(1.0f, p), -kInfF);
}

double binomial_lpmf(double k, double n, double q) {
  if (k > n) return -INFINITY;
  return std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1) + k * std::log(q) +
         (n - k) * std::log1p(-q);
}

void binomial_case(float n, float q, uint64_t seed) {
  const float p[2] = {n, q};
  const std::string what = "Binomial(" + std::to_string(n) + ", " + std::to_string(q) + ")";
  const double m = n * q, v = n * q * (1.0 - q);
  // 4th central moment: n p q (1 + 3 (n - 2) p q)
  const double mu4 = n * q * (1.0 - q) * (1.0 + 3.0 * (n - 2.0) * q * (1.0 - q));
  count_case(draw<Binomial>(p, kN, seed), [&](double k) { return binomial_lpmf(k, n, q); }, m, v, mu4, n, what);
}

TEST(Sampler, BinomialInversion) {
  binomial_case(20.0f, 0.2f, 31);   // n q = 4: inversion
  binomial_case(12.0f, 0.85f, 32);  // mirrored: n (1 - q) = 1.8
}
TEST(Sampler, BinomialBtrs) {
  binomial_case(200.0f, 0.3f, 33);   // n q = 60: BTRS
  binomial_case(1000.0f, 0.9f, 34);  // mirrored BTRS: n (1 - q) = 100
}
TEST(Sampler, BinomialEdges) {
  ElemRng rng(1, 2, 3);
  const float none[2] = {0.0f, 0.4f}, zero[2] = {7.0f, 0.0f}, one[2] = {7.0f, 1.0f};
  EXPECT_EQ(Binomial::sample(none, rng), 0.0f);
  EXPECT_EQ(Binomial::sample(zero, rng), 0.0f);
  EXPECT_EQ(Binomial::sample(one, rng), 7.0f);
  // 0 log 0 terms are 0: the point masses have log-probability 0.
  EXPECT_EQ(Binomial::log_prob(0.0f, zero), 0.0f);
  EXPECT_EQ(Binomial::log_prob(7.0f, one), 0.0f);
  EXPECT_EQ(Binomial::log_prob(8.0f, one), -kInfF);  // beyond total_count
}

TEST(Sampler, Geometric) {
  const float p[1] = {0.3f};
  const double q = 0.3, m = (1 - q) / q, v = (1 - q) / (q * q);
  // 4th central moment of the geometric: (1 - q)(q^2 - 9q + 9) / q^4
  const double mu4 = (1 - q) * (q * q - 9 * q + 9) / (q * q * q * q);
  count_case(draw<Geometric>(p, kN, 35), [&](double k) { return k * std::log1p(-q) + std::log(q); }, m, v, mu4, 80,
             "Geometric(0.3)");
  const float certain[1] = {1.0f};
  ElemRng rng(1, 2, 3);
  EXPECT_EQ(Geometric::sample(certain, rng), 0.0f);
  EXPECT_EQ(Geometric::log_prob(0.0f, certain), 0.0f);
}

void negative_binomial_case(float r, float q, uint64_t seed) {
  const float p[2] = {r, q};
  const std::string what = "NegativeBinomial(" + std::to_string(r) + ", " + std::to_string(q) + ")";
  const double m = r * q / (1 - q), v = r * q / ((1 - q) * (1 - q));
  // 4th central moment from the cumulants (of K(t) = r log(1 - q) - r log(1 - q e^t)):
  // k2 = v, k4 = r q (1 + 4q + q^2) / (1 - q)^4; mu4 = k4 + 3 k2^2.
  const double k4 = r * q * (1 + 4 * q + q * q) / std::pow(1 - q, 4);
  const double mu4 = k4 + 3 * v * v;
  auto lpmf = [&](double k) {
    return std::lgamma(k + r) - std::lgamma(k + 1) - std::lgamma(r) + r * std::log1p(-q) + k * std::log(q);
  };
  count_case(draw<NegativeBinomial>(p, kN, seed), lpmf, m, v, mu4, m + 20 * std::sqrt(v) + 30, what);
}

TEST(Sampler, NegativeBinomial) {
  negative_binomial_case(3.5f, 0.4f, 36);
  negative_binomial_case(0.7f, 0.8f, 37);  // small total_count: Gamma below 1, long tail
}

TEST(Sampler, Categorical) {
  constexpr int K = 4;
  const float l[K] = {0.2f, -1.0f, 1.3f, 0.0f};
  const float pr[K] = {2.0f, 0.5f, 0.0f, 1.5f};  // unnormalised, one zero
  double ql[K], qp[K], sl = 0, sp = 0;
  for (int i = 0; i < K; ++i) {
    sl += std::exp(static_cast<double>(l[i]));
    sp += pr[i];
  }
  for (int i = 0; i < K; ++i) {
    ql[i] = std::exp(static_cast<double>(l[i])) / sl;
    qp[i] = pr[i] / sp;
  }
  std::vector<long> cl(K, 0), cp(K, 0);
  for (int i = 0; i < kN; ++i) {
    ElemRng r1(28, i, 0), r2(29, i, 0);
    const float a = CategoricalLogits::sample(l, K, r1);
    const float b = CategoricalProbs::sample(pr, K, r2);
    ASSERT_TRUE(CategoricalLogits::support_ok(a, K));
    ASSERT_TRUE(CategoricalProbs::support_ok(b, K));
    ASSERT_NE(b, 2.0f) << "zero-probability category drawn";
    cl[static_cast<int>(a)]++;
    cp[static_cast<int>(b)]++;
  }
  check_chi2(cl, std::vector<double>(ql, ql + K), "CategoricalLogits");
  // drop the zero cell (checked above) from the chi-square
  check_chi2({cp[0], cp[1], cp[3]}, {qp[0], qp[1], qp[3]}, "CategoricalProbs");
  // log_prob consistency between the forms
  for (int k = 0; k < K; ++k) {
    EXPECT_NEAR(CategoricalLogits::log_prob(static_cast<float>(k), l, K), std::log(ql[k]), 1e-6);
    if (pr[k] > 0) {
      EXPECT_NEAR(CategoricalProbs::log_prob(static_cast<float>(k), pr, K), std::log(qp[k]), 1e-6);
    }
  }
  EXPECT_EQ(CategoricalProbs::log_prob(2.0f, pr, K), -kInfF);
  EXPECT_FALSE(CategoricalLogits::support_ok(4.0f, K));
  EXPECT_FALSE(CategoricalLogits::support_ok(1.5f, K));
}

// Dirichlet: moments and KS of the marginals (x_i ~ Beta(a_i, a0 - a_i)),
// S ~ Gamma(a0), and the pathwise gradient through the Gamma path:
//   d E[x_i]/d a_j = (delta_ij a0 - a_i)/a0^2,
//   d E[x_i^2]/d a_j = [delta_ij (2 a_i + 1) a0 (a0 + 1) - a_i (a_i + 1)(2 a0 + 1)] / (a0 (a0 + 1))^2,
// estimated with upstream gradients gx = e_i and gx = 2 x_i e_i.
TEST(Sampler, Dirichlet) {
  constexpr int K = 3;
  const float a[K] = {0.5f, 2.0f, 3.5f};
  const double a0 = 6.0;
  const int n = 100000;
  std::vector<double> xs[K], ss(n);
  std::vector<double> g1[K][K], g2[K][K];
  for (int i = 0; i < n; ++i) {
    ElemRng rng(30, i, 0);
    float x[K];
    const float S = Dirichlet::sample(a, K, rng, x);
    ss[i] = S;
    double sum = 0;
    for (int k = 0; k < K; ++k) {
      xs[k].push_back(x[k]);
      sum += x[k];
    }
    ASSERT_NEAR(sum, 1.0, 1e-6);
    for (int k = 0; k < K; ++k) {
      float gx[K] = {0, 0, 0}, ga[K];
      gx[k] = 1.0f;
      Dirichlet::sample_grad(x, a, S, K, gx, ga);
      for (int j = 0; j < K; ++j) g1[k][j].push_back(ga[j]);
      gx[k] = 2.0f * x[k];
      Dirichlet::sample_grad(x, a, S, K, gx, ga);
      for (int j = 0; j < K; ++j) g2[k][j].push_back(ga[j]);
    }
  }
  float mean[K], var[K];
  Dirichlet::mean(a, K, mean);
  Dirichlet::variance(a, K, var);
  for (int k = 0; k < K; ++k) {
    const double ak = a[k], bk = a0 - ak, nn = a0;
    const double exkurt = 6.0 * ((ak - bk) * (ak - bk) * (nn + 1) - ak * bk * (nn + 2)) / (ak * bk * (nn + 2) * (nn + 3));
    check_moments(xs[k], mean[k], var[k], (3.0 + exkurt) * var[k] * var[k], "Dirichlet x" + std::to_string(k));
    check_ks(xs[k], [&](double x) { return beta_inc_d(ak, bk, x); }, "Dirichlet x" + std::to_string(k));
  }
  check_moments(ss, a0, a0, (3.0 + 6.0 / a0) * a0 * a0, "Dirichlet S");
  auto mean_se = [](const std::vector<double>& v, double* m, double* se) {
    double s = 0, q = 0;
    for (double x : v) {
      s += x;
      q += x * x;
    }
    const double nn = static_cast<double>(v.size());
    *m = s / nn;
    *se = std::sqrt(std::max(q / nn - (*m) * (*m), 0.0) / nn);
  };
  for (int i = 0; i < K; ++i) {
    for (int j = 0; j < K; ++j) {
      const double ai = a[i], dij = i == j ? 1.0 : 0.0;
      const double ref1 = (dij * a0 - ai) / (a0 * a0);
      const double nn1 = a0 * (a0 + 1);
      const double ref2 = (dij * (2 * ai + 1) * nn1 - ai * (ai + 1) * (2 * a0 + 1)) / (nn1 * nn1);
      double m, se;
      mean_se(g1[i][j], &m, &se);
      EXPECT_NEAR(m, ref1, 5 * se + 1e-7) << "dE[x" << i << "]/da" << j;
      mean_se(g2[i][j], &m, &se);
      EXPECT_NEAR(m, ref2, 5 * se + 1e-7) << "dE[x" << i << "^2]/da" << j;
    }
  }
}

// Edge cases of the samplers: tiny shapes underflow the gammas but not their
// logs, so every draw stays finite and inside the support.
TEST(Sampler, TinyShapes) {
  const float pg[2] = {1e-3f, 1.0f};
  const float pb[2] = {1e-3f, 2e-3f};
  const float ad[3] = {1e-3f, 0.01f, 5.0f};
  for (int i = 0; i < 2000; ++i) {
    ElemRng r(31, i, 0);
    const float g = Gamma::sample(pg, r);
    ASSERT_TRUE(g >= kFltMin && std::isfinite(g)) << g;
    const float b = Beta::sample(pb, r);
    ASSERT_TRUE(b > 0.0f && b < 1.0f) << b;
    float x[3];
    const float S = Dirichlet::sample(ad, 3, r, x);
    ASSERT_TRUE(S > 0.0f && std::isfinite(S));
    ASSERT_TRUE(Dirichlet::support_ok(x, 3));
    float gd[2];
    Gamma::sample_grad(g, pg, gd);
    ASSERT_TRUE(std::isfinite(gd[0]) && std::isfinite(gd[1]));
    Beta::sample_grad(b, pb, gd);
    ASSERT_TRUE(std::isfinite(gd[0]) && std::isfinite(gd[1]));
  }
}

// ---------------------------------------------------------------------------
// The families added with Gumbel: samplers (moments, KS, pathwise gradients
// by check_pathwise above, with its 5-SE tolerances) and the Bessel helpers.
namespace {

// Simpson's rule on [a, b] with m (even) intervals, float64.
double simpson(const std::function<double(double)>& f, double a, double b, int m) {
  const double h = (b - a) / m;
  double acc = f(a) + f(b);
  for (int i = 1; i < m; ++i) acc += (i % 2 ? 4.0 : 2.0) * f(a + i * h);
  return acc * h / 3.0;
}

// E[x^n] of ContinuousBernoulli with natural parameter l (density
// l e^(l x) / expm1(l) on [0, 1]), by quadrature.
double cb_raw_moment(double l, int n) {
  return simpson([&](double x) { return std::pow(x, n) * (std::fabs(l) < 1e-12 ? 1.0 : l * std::exp(l * x) / std::expm1(l)); },
                 0.0, 1.0, 4000);
}

// E[y^n] of RelaxedBernoulli(T, l), y = sigmoid((l + z)/T), z standard
// logistic, by quadrature over z on [-40, 40] (the tails beyond weigh e^-40).
double rb_raw_moment(double t, double l, int n) {
  return simpson(
      [&](double z) {
        const double dens = 1.0 / ((1.0 + std::exp(-z)) * (1.0 + std::exp(z)));
        return dens * std::pow(1.0 / (1.0 + std::exp(-(l + z) / t)), n);
      },
      -40.0, 40.0, 40000);
}

// Central moments 2 and 4 from raw moments m1..m4.
double central4(double m1, double m2, double m3, double m4) {
  return m4 - 4 * m1 * m3 + 6 * m1 * m1 * m2 - 3 * m1 * m1 * m1 * m1;
}

// Reference Bessel quantities by the trapezoidal rule on the periodic
// integrals (exponentially convergent for these analytic integrands):
//   e^-x I_n(x) = (1/pi) int_0^pi e^(-2x sin^2(t/2)) cos(n t) dt,
//   e^-x (I0 - I1)(x) = (1/pi) int_0^pi e^(-2x sin^2(t/2)) 2 sin^2(t/2) dt.
// 2^15 panels resolve the peak of width ~1/sqrt(x) for x up to 1e4 and beyond.
struct BesselRef {
  double log_i0, ratio, one_minus;
};
BesselRef bessel_ref(double x) {
  const int m = 1 << 15;
  double i0 = 0, i1 = 0, d = 0;
  for (int j = 0; j <= m; ++j) {
    const double t = M_PI * j / m, w = (j == 0 || j == m) ? 0.5 : 1.0;
    const double s2 = std::sin(0.5 * t) * std::sin(0.5 * t);
    const double e = std::exp(-2.0 * x * s2);
    i0 += w * e;
    i1 += w * e * std::cos(t);
    d += w * e * 2.0 * s2;
  }
  return {x + std::log(i0 / m), i1 / i0, d / i0};
}

}  // namespace

// log I0, I1/I0 and 1 - I1/I0 over x in [1e-4, 1e4], 161 log-spaced points,
// against std::cyl_bessel_i in float64 for x <= 500 (its log I0 ~ x^2/4 is
// good to 1e-16 / (x^2/4) = 4e-8 relative at x = 1e-4, where I0 rounds near
// 1) and beyond, where it overflows soon after, against the quadrature
// reference (checked against cyl_bessel_i on [1, 500] to 1e-12; below 1 the
// quadrature's I1 ~ x/2 cancels). The kernels compute in double and round once to float, so the
// relative error is the rounding of the result (<= 2^-24) plus the double
// error; 2^-22 (4 float ulps) relative is what a float32 result can honestly
// be asked for. (log I0 ~ x^2/4 for small x is relative too: computed as
// log1p of the series' tail, it keeps full relative precision.)
TEST(Bessel, LogI0AndRatioAgainstFloat64) {
  const double tol = std::ldexp(1.0, -22);
  double worst[3] = {0, 0, 0};
  for (int i = 0; i <= 160; ++i) {
    const float xf = static_cast<float>(std::pow(10.0, -4.0 + 8.0 * i / 160.0));
    const double x = xf;
    BesselRef r = bessel_ref(x);
    if (x <= 500) {
      const double i0 = std::cyl_bessel_i(0.0, x), i1 = std::cyl_bessel_i(1.0, x);
      if (x >= 1) {  // the two references agree where both are accurate
        ASSERT_NEAR(r.log_i0, std::log(i0), 1e-12 * std::log(i0)) << x;
        ASSERT_NEAR(r.ratio, i1 / i0, 1e-12 * (i1 / i0)) << x;
        ASSERT_NEAR(r.one_minus, (i0 - i1) / i0, 1e-11 * ((i0 - i1) / i0)) << x;
      }
      r = {std::log(i0), i1 / i0, (i0 - i1) / i0};
    }
    const double e0 = std::fabs(log_bessel_i0_f(xf) - r.log_i0) / r.log_i0;
    const double e1 = std::fabs(bessel_i1_over_i0_f(xf) - r.ratio) / r.ratio;
    const double e2 = std::fabs(bessel_one_minus_i1_over_i0_f(xf) - r.one_minus) / r.one_minus;
    EXPECT_LE(e0, tol) << "log I0 at " << x;
    EXPECT_LE(e1, tol) << "I1/I0 at " << x;
    EXPECT_LE(e2, tol) << "1 - I1/I0 at " << x;
    worst[0] = std::max(worst[0], e0);
    worst[1] = std::max(worst[1], e1);
    worst[2] = std::max(worst[2], e2);
    // The scaled form agrees with the plain one.
    EXPECT_NEAR(log_bessel_i0e_f(xf), r.log_i0 - x, 1e-7 * std::max(1.0, std::fabs(r.log_i0 - x))) << x;
  }
  std::printf("[ worst   ] log I0 %.2e, I1/I0 %.2e, 1 - I1/I0 %.2e (tolerance %.2e)\n", worst[0], worst[1], worst[2],
              tol);
  // Across the switch from the power series to the asymptotic expansion (x = 15).
  for (float x : {14.999f, 15.0f, 15.001f}) {
    const double i0 = std::cyl_bessel_i(0.0, static_cast<double>(x)), i1 = std::cyl_bessel_i(1.0, static_cast<double>(x));
    const BesselRef r = {std::log(i0), i1 / i0, (i0 - i1) / i0};
    EXPECT_NEAR(bessel_i1_over_i0_f(x), r.ratio, tol * r.ratio);
    EXPECT_NEAR(bessel_one_minus_i1_over_i0_f(x), r.one_minus, tol * r.one_minus);
  }
}

// ContinuousBernoulli's functions of the natural parameter l on both sides
// of each series/direct switch (|l| = 0.5 for log C and its derivative, 1
// for the mean and variance) and far out, against float64 direct forms
// (series in l below 1e-3, where the direct forms cancel in double too):
//   log C = log(l / tanh(l/2)), d log C/dl = 1/l - 1/sinh(l),
//   mean = 1/(1 - e^-l) - 1/l, variance = 1/l^2 - 1/(4 sinh^2(l/2)).
// float32 results: log C (magnitude <= 5) to 1e-6 absolute, the others to
// 2e-6 relative (a float32 evaluation whose direct forms cancel at most
// ~30x at the switches: ~30 ulp). The inverse CDF stays in [0, 1] and
// inverts the CDF (to 1e-6 in u) even where expm1(l) overflows float.
TEST(ContinuousBernoulliMath, BranchesAgainstFloat64) {
  const std::vector<float> ls = {0.0f,   1e-6f,  -1e-3f, 0.1f,  -0.4999f, 0.4999f, 0.5f,   -0.5f, 0.5001f,
                                 0.999f, -0.999f, 1.0f,  -1.0f, 1.001f,   3.0f,    -15.9f, 40.0f, -80.0f, 100.0f};
  for (float lf : ls) {
    const double l = lf;
    double logc, dlogc, mean, var;
    if (std::fabs(l) < 1e-3) {
      logc = std::log(2.0) + l * l / 12 - l * l * l * l / 1440;
      dlogc = l / 6 - 7 * l * l * l / 360;
      mean = 0.5 + l / 12 - l * l * l / 720;
      var = 1.0 / 12 - l * l / 240;
    } else {
      logc = std::log(l / std::tanh(0.5 * l));
      dlogc = 1 / l - 1 / std::sinh(l);
      mean = -1 / std::expm1(-l) - 1 / l;
      var = 1 / (l * l) - 0.25 / (std::sinh(0.5 * l) * std::sinh(0.5 * l));
    }
    EXPECT_NEAR(cb_log_norm_f(lf), logc, 1e-6) << "log C at " << l;
    EXPECT_NEAR(cb_log_norm_grad_f(lf), dlogc, 2e-6 * std::fabs(dlogc) + 1e-30) << "d log C at " << l;
    EXPECT_NEAR(cb_mean_f(lf), mean, 2e-6 * mean) << "mean at " << l;
    EXPECT_NEAR(cb_variance_f(lf), var, 2e-6 * var) << "variance at " << l;
    for (float u : {1e-6f, 0.01f, 0.5f, 0.99f, 0.9999f}) {
      const float x = cb_icdf_f(u, lf);
      ASSERT_TRUE(x >= 0.0f && x <= 1.0f) << l << " " << u;
      // CDF(x) in float64, in a form without overflow: for l > 0,
      // (e^(l x) - 1)/(e^l - 1) = e^(l (x - 1)) (1 - e^(-l x)) / (1 - e^-l).
      const double xd = x;
      double cdf;
      if (std::fabs(l) < 1e-12) cdf = xd;
      else if (l > 0) cdf = std::exp(l * (xd - 1)) * std::expm1(-l * xd) / std::expm1(-l);
      else cdf = std::expm1(l * xd) / std::expm1(l);
      // |dF/dx| <= max density = max(l, -l e^l ...) <= |l| + 1, times the
      // float rounding of x (6e-8): the CDF at the float x is within that of u.
      EXPECT_NEAR(cdf, u, 1e-6 + 1.2e-7 * (std::fabs(l) + 1)) << "icdf at l " << l << ", u " << u;
    }
  }
}

TEST(Sampler, Gumbel) {
  // Excess kurtosis 12/5; E x = loc + s g, E x^2 = (pi s)^2/6 + (loc + s g)^2 (g Euler's).
  const float p[2] = {0.5f, 1.5f};
  const auto xs = draw<Gumbel>(p, kN, 41);
  const double loc = 0.5, s = 1.5, g = 0.57721566490153286061, var = M_PI * M_PI * s * s / 6;
  check_moments(xs, loc + s * g, var, 5.4 * var * var, "Gumbel");
  EXPECT_NEAR(Gumbel::mean(p), loc + s * g, 1e-6);
  EXPECT_NEAR(Gumbel::variance(p), var, 1e-6 * var);
  check_ks(xs, [&](double x) { return std::exp(-std::exp(-(x - loc) / s)); }, "Gumbel");
  const double m = loc + s * g;
  const double dm[2] = {1.0, g}, d2[2] = {2 * m, M_PI * M_PI * s / 3 + 2 * g * m};
  check_pathwise<Gumbel>(xs, p, dm, d2, "Gumbel");
}

TEST(Sampler, Logistic) {
  // Excess kurtosis 6/5; E x^2 = (pi s)^2/3 + loc^2.
  const float p[2] = {-0.8f, 0.6f};
  const auto xs = draw<Logistic>(p, kN, 42);
  const double loc = p[0], s = p[1], var = M_PI * M_PI * s * s / 3;
  check_moments(xs, loc, var, 4.2 * var * var, "Logistic");
  EXPECT_NEAR(Logistic::variance(p), var, 1e-6 * var);
  check_ks(xs, [&](double x) { return 1 / (1 + std::exp(-(x - loc) / s)); }, "Logistic");
  const double dm[2] = {1.0, 0.0}, d2[2] = {2 * loc, 2 * M_PI * M_PI * s / 3};
  check_pathwise<Logistic>(xs, p, dm, d2, "Logistic");
}

TEST(Sampler, Pareto) {
  // E x^n = a s^n / (a - n) (a > n). alpha = 9: the 8th moment exists, so the
  // variance's SE and the x^2 pathwise estimator's SE are well defined.
  const float p[2] = {0.7f, 9.0f};
  const auto xs = draw<Pareto>(p, kN, 43);
  const double s = p[0], a = p[1];
  auto raw = [&](int n) { return a * std::pow(s, n) / (a - n); };
  const double m1 = raw(1), var = raw(2) - m1 * m1;
  check_moments(xs, m1, var, central4(m1, raw(2), raw(3), raw(4)), "Pareto");
  EXPECT_NEAR(Pareto::mean(p), m1, 1e-6 * m1);
  EXPECT_NEAR(Pareto::variance(p), var, 1e-5 * var);
  for (double x : xs) ASSERT_GE(x, s);
  check_ks(xs, [&](double x) { return 1 - std::pow(s / x, a); }, "Pareto(0.7, 9)");
  const double dm[2] = {a / (a - 1), -s / ((a - 1) * (a - 1))};
  const double d2[2] = {2 * a * s / (a - 2), -2 * s * s / ((a - 2) * (a - 2))};
  check_pathwise<Pareto>(xs, p, dm, d2, "Pareto");
  // Heavy tail (no variance): KS only.
  const float ph[2] = {2.0f, 1.2f};
  check_ks(draw<Pareto>(ph, kN, 44), [](double x) { return 1 - std::pow(2.0 / x, 1.2); }, "Pareto(2, 1.2)");
}

void chi2_case(float k, uint64_t seed) {
  // Gamma(k/2, 1/2): mean k, variance 2k, excess kurtosis 12/k; CDF P(k/2, x/2).
  const float p[1] = {k};
  const auto xs = draw<Chi2>(p, kN, seed);
  const std::string what = "Chi2(" + std::to_string(k) + ")";
  const double kd = k, var = 2 * kd;
  check_moments(xs, kd, var, (3 + 12 / kd) * var * var, what);
  check_ks(xs, [&](double x) { return gamma_p_d(0.5 * kd, 0.5 * x); }, what);
  // E x = k, E x^2 = 2k + k^2.
  const double dm[1] = {1.0}, d2[1] = {2 + 2 * kd};
  check_pathwise<Chi2>(xs, p, dm, d2, what);
}
TEST(Sampler, Chi2) {
  chi2_case(3.5f, 45);
  chi2_case(0.8f, 46);  // df/2 < 1: the Gamma sampler's boosted path
}

template <class D>
void cb_case(float param, double l, double dl_dparam, uint64_t seed, const std::string& what) {
  const float p[1] = {param};
  const auto xs = draw<D>(p, kN, seed);
  const double m1 = cb_raw_moment(l, 1), m2 = cb_raw_moment(l, 2);
  const double var = m2 - m1 * m1;
  check_moments(xs, m1, var, central4(m1, m2, cb_raw_moment(l, 3), cb_raw_moment(l, 4)), what);
  // Closed-form moments (series or direct branch) against quadrature: 2e-6
  // relative (float32 evaluation; the direct forms cancel up to ~30x).
  EXPECT_NEAR(D::mean(p), m1, 2e-6 * m1) << what;
  EXPECT_NEAR(D::variance(p), var, 2e-6 * var) << what;
  check_ks(xs, [&](double x) { return std::fabs(l) < 1e-12 ? x : std::expm1(l * x) / std::expm1(l); }, what);
  for (double x : xs) ASSERT_TRUE(x >= 0 && x <= 1) << what << " " << x;
  // d/dparam of E x and E x^2 by central differences of the quadrature in l.
  const double h = 1e-5;
  const double dm[1] = {(cb_raw_moment(l + h, 1) - cb_raw_moment(l - h, 1)) / (2 * h) * dl_dparam};
  const double d2[1] = {(cb_raw_moment(l + h, 2) - cb_raw_moment(l - h, 2)) / (2 * h) * dl_dparam};
  check_pathwise<D>(xs, p, dm, d2, what);
}
TEST(Sampler, ContinuousBernoulli) {
  // Natural parameter l = logit(lambda) (the float lambda's); dl/dlambda = 1/(lambda (1 - lambda)).
  for (float lam : {0.8f, 0.55f, 0.5f, 0.02f}) {
    const double ld = lam;
    cb_case<ContinuousBernoulliProbs>(lam, std::log(ld / (1 - ld)), 1 / (ld * (1 - ld)), 47,
                                      "ContinuousBernoulli(" + std::to_string(lam) + ")");
  }
  // Logits on both sides of the series bands (|l| < 0.5 and < 1) and far out.
  for (float l : {-3.0f, -0.7f, 0.3f, 0.0f, 1e-3f, 8.0f, 40.0f})
    cb_case<ContinuousBernoulliLogits>(l, l, 1.0, 48, "ContinuousBernoulli.from_logits(" + std::to_string(l) + ")");
}

template <class D>
void rb_case(float t, float param, double l, double dl_dparam, uint64_t seed, const std::string& what) {
  const float p[2] = {t, param};
  const auto xs = draw<D>(p, kN, seed);
  for (double y : xs) ASSERT_TRUE(y > 0 && y < 1) << what << " " << y;
  const double td = t;
  // Mean and variance by quadrature (the family reports NaN, as torch).
  const double m1 = rb_raw_moment(td, l, 1), m2 = rb_raw_moment(td, l, 2);
  check_moments(xs, m1, m2 - m1 * m1, central4(m1, m2, rb_raw_moment(td, l, 3), rb_raw_moment(td, l, 4)), what);
  check_ks(xs, [&](double y) { return 1 / (1 + std::exp(-(td * std::log(y / (1 - y)) - l))); }, what);
  const double h = 1e-5;
  auto d = [&](int n, int k) {
    return k == 0 ? (rb_raw_moment(td + h, l, n) - rb_raw_moment(td - h, l, n)) / (2 * h)
                  : (rb_raw_moment(td, l + h, n) - rb_raw_moment(td, l - h, n)) / (2 * h) * dl_dparam;
  };
  const double dm[2] = {d(1, 0), d(1, 1)}, d2[2] = {d(2, 0), d(2, 1)};
  check_pathwise<D>(xs, p, dm, d2, what);
  EXPECT_TRUE(std::isnan(D::mean(p)) && std::isnan(D::variance(p)));
}
TEST(Sampler, RelaxedBernoulli) {
  rb_case<RelaxedBernoulliLogits>(0.5f, 0.7f, 0.7f, 1.0, 49, "RelaxedBernoulli.from_logits(0.5, 0.7)");
  rb_case<RelaxedBernoulliLogits>(2.0f, -1.5f, -1.5f, 1.0, 50, "RelaxedBernoulli.from_logits(2, -1.5)");
  const double q = static_cast<double>(0.3f);
  rb_case<RelaxedBernoulliProbs>(0.8f, 0.3f, std::log(q / (1 - q)), 1 / (q * (1 - q)), 51, "RelaxedBernoulli(0.8, 0.3)");
}

// Best-Fisher draws: KS of the angle from loc against the CDF series
// F(t) = (t + pi)/(2 pi) + sum_n (I_n/I_0) sin(n t)/(n pi) (float64
// std::cyl_bessel_i), where that is computable (k <= 100), and for all k
// the circular moment E[1 - cos(x - loc)] = 1 - I1/I0 (quadrature
// reference) within 5 SE, Var(cos) = (1 + I2/I0)/2 - (I1/I0)^2 with
// I2/I0 = 1 - 2 (I1/I0)/k (the recurrence), written
// 2 om - om^2 - (1 - om)/k, om = 1 - I1/I0, to stay exact for large k.
TEST(Sampler, VonMises) {
  const std::vector<std::pair<float, float>> cases = {
      {0.25f, 1e-3f}, {-2.9f, 0.3f}, {0.5f, 2.0f}, {3.0f, 30.0f}, {0.25f, 1e4f}, {-0.4f, 1e6f}};
  uint64_t seed = 52;
  for (auto [loc, k] : cases) {
    const std::string what = "VonMises(" + std::to_string(loc) + ", " + std::to_string(k) + ")";
    const float p[2] = {loc, k};
    const auto xs = draw<VonMises>(p, kN, seed++);
    std::vector<double> t(xs.size());
    double om_hat = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      ASSERT_TRUE(xs[i] >= -M_PI - 1e-6 && xs[i] <= M_PI + 1e-6) << what << " " << xs[i];
      double d = std::fmod(xs[i] - static_cast<double>(loc) + M_PI, 2 * M_PI);
      if (d < 0) d += 2 * M_PI;
      t[i] = d - M_PI;
      om_hat += 2 * std::sin(0.5 * t[i]) * std::sin(0.5 * t[i]);
    }
    om_hat /= static_cast<double>(xs.size());
    const double kd = k;
    const double om = bessel_ref(kd).one_minus;
    const double var_cos = 2 * om - om * om - (1 - om) / kd;
    const double se = std::sqrt(var_cos / static_cast<double>(xs.size()));
    EXPECT_NEAR(om_hat, om, 5 * se) << what << ": E[1 - cos] (SE " << se << ")";
    EXPECT_NEAR(VonMises::variance(p), om, 1e-6 * om) << what;
    if (kd <= 100) {
      std::vector<double> c;
      const double i0 = std::cyl_bessel_i(0.0, kd);
      for (int n = 1; n < 400; ++n) {
        const double r = std::cyl_bessel_i(static_cast<double>(n), kd) / i0;
        if (r < 1e-17) break;
        c.push_back(r);
      }
      check_ks(t,
               [&](double a) {
                 double f = (a + M_PI) / (2 * M_PI);
                 for (size_t n = 1; n <= c.size(); ++n) f += c[n - 1] * std::sin(n * a) / (n * M_PI);
                 return f;
               },
               what);
    }
  }
}

// Uniform draws stay below high even when low + (high - low) u rounds up
// (ulp(1e7) = 1, so most draws of Uniform(1e7, 1e7 + 1) would round to high),
// and a long Dirichlet row still sums to 1 within PyTorch's 1e-6.
TEST(Sampler, RoundingEdges) {
  const float pu[2] = {1e7f, 1e7f + 1.0f};
  for (int i = 0; i < 1000; ++i) {
    ElemRng r(32, i, 0);
    const float x = Uniform::sample(pu, r);
    ASSERT_TRUE(x >= pu[0] && x < pu[1]) << x;
    ASSERT_TRUE(std::isfinite(Uniform::log_prob(x, pu)));
  }
  constexpr int K = 500;
  std::vector<float> a(K, 0.7f), x(K);
  for (int i = 0; i < 200; ++i) {
    ElemRng r(33, i, 0);
    Dirichlet::sample(a.data(), K, r, x.data());
    ASSERT_TRUE(Dirichlet::support_ok(x.data(), K));
  }
}

// ---------------------------------------------------------------------------
// Constraint checks and metadata.
TEST(DistMeta, Constraints) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const float ok[2] = {0.0f, 1.0f}, bad_scale[2] = {0.0f, 0.0f}, bad_loc[2] = {nan, 1.0f}, inf_scale[2] = {0.f, inf};
  EXPECT_EQ(Normal::bad_param(ok), -1);
  EXPECT_EQ(Normal::bad_param(bad_scale), 1);
  EXPECT_EQ(Normal::bad_param(bad_loc), 0);
  EXPECT_EQ(Normal::bad_param(inf_scale), 1);
  EXPECT_TRUE(Normal::param_ok(ok));
  EXPECT_FALSE(Normal::support_ok(nan, ok));
  const float u[2] = {1.0f, 1.0f};
  EXPECT_EQ(Uniform::bad_param(u), 1);
  const float u2[2] = {1.0f, 2.0f};
  EXPECT_TRUE(Uniform::support_ok(1.5f, u2));
  EXPECT_FALSE(Uniform::support_ok(2.5f, u2));
  EXPECT_EQ(Uniform::log_prob(2.5f, u2), -kInfF);
  // Uniform has no reference file: log p = -log(high - low), d/dlow = 1/w,
  // d/dhigh = -1/w, d/dx = 0 (exact for w = 4, a power of two).
  {
    const float pu[2] = {-1.5f, 2.5f};
    float dx, dp[2];
    EXPECT_FLOAT_EQ(Uniform::log_prob_grad(0.3f, pu, &dx, dp), -std::log(4.0f));
    EXPECT_EQ(dx, 0.0f);
    EXPECT_EQ(dp[0], 0.25f);
    EXPECT_EQ(dp[1], -0.25f);
    EXPECT_EQ(Uniform::log_prob(2.5f, pu), -kInfF);  // high excluded, as PyTorch
    EXPECT_FLOAT_EQ(Uniform::log_prob(-1.5f, pu), -std::log(4.0f));
  }
  const float st[3] = {-1.0f, 0.0f, 1.0f};
  EXPECT_EQ(StudentT::bad_param(st), 0);
  const float bp[1] = {1.5f};
  EXPECT_EQ(BernoulliProbs::bad_param(bp), 0);
  EXPECT_FALSE(BernoulliProbs::support_ok(0.5f, bp));
  const float pr[1] = {2.0f};
  EXPECT_TRUE(Poisson::support_ok(3.0f, pr));
  EXPECT_FALSE(Poisson::support_ok(3.5f, pr));
  EXPECT_FALSE(Poisson::support_ok(-1.0f, pr));
  const float be[2] = {2.0f, 3.0f};
  EXPECT_FALSE(Beta::support_ok(1.5f, be));
  EXPECT_EQ(Beta::log_prob(0.0f, be), -kInfF);
  const float ga[2] = {0.5f, 1.0f};
  EXPECT_EQ(Gamma::log_prob(0.0f, ga), kInfF);
  EXPECT_EQ(Gamma::log_prob(-1.0f, ga), -kInfF);
  EXPECT_FALSE(LogNormal::support_ok(0.0f, ok));
  const float cl[3] = {-inf, -inf, -inf};
  EXPECT_EQ(CategoricalLogits::bad_param(cl, 3), 2);
  const float cl2[3] = {-inf, 0.0f, nan};
  EXPECT_EQ(CategoricalLogits::bad_param(cl2, 3), 2);
  const float cl3[3] = {-inf, 0.0f, 1.0f};
  EXPECT_EQ(CategoricalLogits::bad_param(cl3, 3), -1);
  EXPECT_EQ(CategoricalLogits::log_prob(0.0f, cl3, 3), -kInfF);
  const float da[3] = {1.0f, -2.0f, 1.0f};
  EXPECT_EQ(Dirichlet::bad_param(da, 3), 1);
  const float sx[3] = {0.2f, 0.3f, 0.6f};
  EXPECT_FALSE(Dirichlet::support_ok(sx, 3));
  EXPECT_STREQ(StudentT::param_name(0), "df");
  EXPECT_STREQ(Beta::param_name(1), "concentration0");
  EXPECT_STREQ(Gamma::param_name(1), "rate");
  EXPECT_TRUE(Normal::kHasRsample && Gamma::kHasRsample && StudentT::kHasRsample);
  EXPECT_FALSE(Poisson::kHasRsample || BernoulliProbs::kHasRsample);
  EXPECT_TRUE(Poisson::kDiscrete && BernoulliLogits::kDiscrete && !Beta::kDiscrete);
  EXPECT_EQ(Uniform::kSupport, support::kInterval);
  EXPECT_EQ(Dirichlet::kSupport, support::kSimplex);
}

// Metadata of the families added with Gumbel: names, parameter names,
// supports (Pareto's reads its scale), rsample flags.
TEST(DistMeta, AddedFamilies) {
  EXPECT_STREQ(Gumbel::kName, "Gumbel");
  EXPECT_STREQ(Logistic::param_name(1), "scale");
  EXPECT_STREQ(Pareto::param_name(0), "scale");
  EXPECT_STREQ(Pareto::param_name(1), "alpha");
  EXPECT_STREQ(Chi2::param_name(0), "df");
  EXPECT_STREQ(VonMises::param_name(1), "concentration");
  EXPECT_STREQ(ContinuousBernoulliLogits::kName, "ContinuousBernoulli");
  EXPECT_STREQ(RelaxedBernoulliProbs::param_name(0), "temperature");
  EXPECT_STREQ(RelaxedBernoulliLogits::param_name(1), "logits");
  EXPECT_EQ(Pareto::kSupport, support::kGreaterThan);
  const float pa[2] = {2.0f, 3.0f};
  EXPECT_TRUE(Pareto::support_ok(2.0f, pa));
  EXPECT_FALSE(Pareto::support_ok(1.999f, pa));
  EXPECT_EQ(Pareto::log_prob(1.5f, pa), -kInfF);
  EXPECT_EQ(VonMises::kSupport, support::kReal);
  EXPECT_FALSE(VonMises::kHasRsample);
  EXPECT_TRUE(Gumbel::kHasRsample && Logistic::kHasRsample && Pareto::kHasRsample && Chi2::kHasRsample &&
              ContinuousBernoulliProbs::kHasRsample && RelaxedBernoulliLogits::kHasRsample);
  const float cb[1] = {0.3f};
  EXPECT_TRUE(ContinuousBernoulliProbs::support_ok(0.0f, cb) && ContinuousBernoulliProbs::support_ok(1.0f, cb));
  EXPECT_FALSE(ContinuousBernoulliProbs::support_ok(1.01f, cb));
  const float bad_t[2] = {0.0f, 0.5f}, bad_p[2] = {1.0f, -0.1f};
  EXPECT_EQ(RelaxedBernoulliProbs::bad_param(bad_t), 0);
  EXPECT_EQ(RelaxedBernoulliProbs::bad_param(bad_p), 1);
  // Chi2(k) is Gamma(k/2, 1/2) value for value.
  const float c2[1] = {3.0f}, g[2] = {1.5f, 0.5f};
  EXPECT_EQ(Chi2::log_prob(2.5f, c2), Gamma::log_prob(2.5f, g));
}
