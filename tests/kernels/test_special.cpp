// Tests of kernels/special.hpp and kernels/philox.hpp (plain C++, no tensors).
//
// Reference values come from tests/data/special.csv (40-digit mpmath), from
// exact identities of the special functions, and from the Philox4x32-10
// known-answer vectors of Random123 (Salmon et al., SC'11).
//
// Tolerances are mixed: |got - ref| <= atol + rtol |ref| + cond, where cond
// is the first-order effect of rounding the double inputs of the file to the
// float arguments of the kernel, sum_i |d ref / d in_i| |fl(in_i) - in_i|.
// The derivative comes from the file itself where it holds one (digamma is
// the derivative of lgamma) and from a rigorous bound otherwise.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bisect.hpp"
#include "csv.hpp"
#include "kernels/philox.hpp"
#include "kernels/special.hpp"

using namespace cuvi::kern;

namespace {

using cuvi::testing::Csv;
using cuvi::testing::read_csv;

// Records the worst ratio err / tol of a column and fails rows above 1.
struct ColCheck {
  const char* name;
  double worst = 0.0;
  void check(double got, double ref, double atol, double rtol, double cond, const std::string& where) {
    const double tol = atol + rtol * std::fabs(ref) + cond;
    const double err = std::fabs(got - ref);
    if (!(err <= tol)) ADD_FAILURE() << name << " " << where << ": got " << got << " ref " << ref << " err " << err << " tol " << tol;
    if (tol > 0 && err / tol > worst) worst = err / tol;
  }
  ~ColCheck() { std::printf("  [%s] worst err/tol = %.3f\n", name, worst); }
};

double rounding(double v) { return std::fabs(static_cast<double>(static_cast<float>(v)) - v); }

}  // namespace

// ---------------------------------------------------------------------------
TEST(Philox, KnownAnswers) {
  struct Kat {
    uint32_t c[4], k[2], out[4];
  };
  const Kat kats[3] = {
      {{0u, 0u, 0u, 0u}, {0u, 0u}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& t : kats) {
    const Philox4 r = philox4x32_10(Philox4{{t.c[0], t.c[1], t.c[2], t.c[3]}}, t.k[0], t.k[1]);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(r.v[i], t.out[i]) << "word " << i;
  }
}

TEST(Philox, UniformIsOpenAndNormalIsFinite) {
  ElemRng rng(123, 7, 3);
  for (int i = 0; i < 10000; ++i) {
    const float u = rng.uniform();
    ASSERT_GT(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    ASSERT_TRUE(std::isfinite(rng.normal()));
  }
  EXPECT_GT(u01_open(0u), 0.0f);
  EXPECT_LT(u01_open(0xffffffffu), 1.0f);
}

// ---------------------------------------------------------------------------
// special.csv: x, lgamma, digamma, softplus_x_minus_3
TEST(Special, CsvFloat) {
  const Csv c = read_csv("special.csv");
  const int cx = c.need("x"), clg = c.need("lgamma"), cdg = c.need("digamma"), csp = c.need("softplus_x_minus_3");
  // lgamma_f: the implementation is accurate to ~1e-7 relative away from the
  // roots and to ~2e-7 of |lgamma| near them (series around 2 at an exact
  // argument); rtol 1e-6 leaves a margin for libm's logf (<= 1 ulp);
  // atol 1e-7 covers values that cross zero. cond: |digamma(x)| |dx|.
  ColCheck lg{"lgamma_f"};
  // digamma_f: ~1e-7 relative, ~1e-7 absolute near the root 1.4616 (the
  // sum psi(2+t) - 1/x cancels there); rtol 1e-6, atol 2e-7.
  // cond: |dx| psi'(x) with psi'(x) <= 1/x + 1/x^2 (rigorous bound).
  ColCheck dg{"digamma_f"};
  // softplus_f: a max, an exp and a log1p: rtol 1e-6 (a few ulp);
  // cond: the argument x - 3 is rounded to float, slope sigmoid <= 1.
  ColCheck sp{"softplus_f"};
  for (const auto& r : c.rows) {
    const double x = r[cx];
    const float xf = static_cast<float>(x);
    const std::string where = "x=" + std::to_string(x);
    lg.check(lgamma_f(xf), r[clg], 1e-7, 1e-6, std::fabs(r[cdg]) * rounding(x), where);
    dg.check(digamma_f(xf), r[cdg], 2e-7, 1e-6, (1.0 / x + 1.0 / (x * x)) * rounding(x), where);
    sp.check(softplus_f(static_cast<float>(x - 3.0)), r[csp], 0.0, 1e-6, rounding(x - 3.0), where);
  }
}

TEST(Special, CsvDouble) {
  const Csv c = read_csv("special.csv");
  const int cx = c.need("x"), clg = c.need("lgamma"), cdg = c.need("digamma");
  // Double versions: series with truncation < 1e-16 and at most ~10
  // accumulated roundings: rtol 1e-14; atol 1e-15 for values crossing zero
  // (digamma near its root 1.4616: sum of ~10 terms of size ~1).
  ColCheck lg{"lgamma_d"}, dg{"digamma_d"};
  for (const auto& r : c.rows) {
    const std::string where = "x=" + std::to_string(r[cx]);
    lg.check(lgamma_d(r[cx]), r[clg], 1e-15, 1e-14, 0.0, where);
    dg.check(digamma_d(r[cx]), r[cdg], 1e-15, 1e-14, 0.0, where);
  }
}

TEST(Special, LgammaIdentities) {
  const double pi = 3.14159265358979323846;
  // Exact values: lgamma(1) = lgamma(2) = 0, Gamma(1/2) = sqrt(pi), n!.
  EXPECT_EQ(lgamma_f(1.0f), 0.0f);
  EXPECT_EQ(lgamma_f(2.0f), 0.0f);
  EXPECT_EQ(lgamma_d(1.0), 0.0);
  EXPECT_EQ(lgamma_d(2.0), 0.0);
  EXPECT_NEAR(lgamma_d(0.5), 0.5 * std::log(pi), 2e-16);
  EXPECT_NEAR(lgamma_f(0.5f), 0.5 * std::log(pi), 1e-7);
  double logfact = 0.0;
  for (int n = 1; n < 40; ++n) {
    logfact += std::log(static_cast<double>(n));
    EXPECT_NEAR(lgamma_d(n + 1.0), logfact, 1e-14 * (1.0 + logfact)) << n;
    EXPECT_NEAR(lgamma_f(n + 1.0f), logfact, 2e-7 * (1.0 + logfact)) << n;
  }
  // Recurrence lgamma(x+1) = lgamma(x) + log x across every branch boundary
  // (0.5, 1.5, 2.5, 6, 10), in double.
  for (double x = 0.05; x < 14.0; x += 0.0731) {
    EXPECT_NEAR(lgamma_d(x + 1.0), lgamma_d(x) + std::log(x), 4e-15 * (1.0 + std::fabs(lgamma_d(x)))) << x;
  }
  // Reflection branch: |Gamma(-1/2)| = 2 sqrt(pi); poles give +inf.
  EXPECT_NEAR(lgamma_d(-0.5), std::log(2.0 * std::sqrt(pi)), 1e-14);
  EXPECT_NEAR(lgamma_f(-0.5f), std::log(2.0 * std::sqrt(pi)), 2e-7);
  EXPECT_TRUE(std::isinf(lgamma_f(0.0f)));
  EXPECT_TRUE(std::isinf(lgamma_d(-3.0)));
  // float vs double over a dense grid (the double version is validated above).
  for (float x = 1e-3f; x < 300.0f; x *= 1.013f) {
    const double ref = lgamma_d(x);
    EXPECT_NEAR(lgamma_f(x), ref, 2e-7 * std::fabs(ref) + 1e-7) << x;
  }
}

TEST(Special, DigammaTrigamma) {
  const double pi = 3.14159265358979323846, euler = 0.57721566490153286061;
  EXPECT_NEAR(digamma_d(1.0), -euler, 1e-15);
  EXPECT_NEAR(digamma_d(0.5), -euler - 2.0 * std::log(2.0), 1e-15);
  EXPECT_NEAR(digamma_f(1.0f), -euler, 1e-7);
  // Reflection: psi(1 - x) - psi(x) = pi cot(pi x).
  for (double x : {-0.3, -1.7, -4.2}) {
    EXPECT_NEAR(digamma_d(1.0 - x) - digamma_d(x), pi / std::tan(pi * x), 1e-12) << x;
  }
  // trigamma: exact values and agreement with a central difference of digamma_d
  // (step 1e-4 x: truncation ~1e-8 x^2 psi''' / 6, relative < 1e-8; rounding
  // 1e-16 / 1e-4 = 1e-12).
  EXPECT_NEAR(trigamma_d(1.0), pi * pi / 6.0, 1e-14);
  EXPECT_NEAR(trigamma_d(0.5), pi * pi / 2.0, 1e-14);
  EXPECT_NEAR(trigamma_f(1.0f), pi * pi / 6.0, 2e-7);
  for (double x = 0.03; x < 60.0; x *= 1.37) {
    const double h = 1e-4 * x;
    const double fd = (digamma_d(x + h) - digamma_d(x - h)) / (2.0 * h);
    EXPECT_NEAR(trigamma_d(x), fd, 1e-7 * fd) << x;
    EXPECT_NEAR(trigamma_f(static_cast<float>(x)), trigamma_d(static_cast<float>(x)), 3e-7 * fd) << x;
  }
  // digamma_f vs digamma_d on a dense grid: relative 3e-7 or absolute 2e-7.
  for (float x = 1e-3f; x < 300.0f; x *= 1.013f) {
    const double ref = digamma_d(x);
    EXPECT_NEAR(digamma_f(x), ref, 3e-7 * std::fabs(ref) + 2e-7) << x;
  }
}

TEST(Special, DigammaDiffAndLbeta) {
  // digamma_diff(a, b) = psi(a+b) - psi(a), computed without cancellation.
  // In double it must agree with the plain difference of digamma_d (whose
  // own cancellation is ~1e-15 absolute); in float to ~1e-7 relative of the
  // difference itself, which the plain float difference cannot reach.
  const double as[] = {0.01, 0.3, 1.0, 2.7, 6.0, 14.0, 80.0, 1e4};
  const double bs[] = {1e-3, 0.1, 0.5, 1.0, 3.3, 50.0};
  for (double a : as) {
    for (double b : bs) {
      const double ref = digamma_d(a + b) - digamma_d(a);
      // the plain difference carries ~1e-15 of each digamma's magnitude
      const double ref_err = 1e-15 * (std::fabs(digamma_d(a)) + std::fabs(digamma_d(a + b)) + 1.0);
      EXPECT_NEAR(digamma_diff<double>(a, b), ref, 1e-13 * std::fabs(ref) + ref_err) << a << " " << b;
      const float af = static_cast<float>(a), bf = static_cast<float>(b);
      const double reff = digamma_d(static_cast<double>(af) + bf) - digamma_d(af);
      EXPECT_NEAR(digamma_diff<float>(af, bf), reff, 1e-6 * std::fabs(reff) + 1e-12) << a << " " << b;
      // lbeta against the plain sum of double lgammas, whose own error is
      // ~1e-15 of the magnitude of its terms (up to ~1e5 here).
      const double lb = lgamma_d(a) + lgamma_d(b) - lgamma_d(a + b);
      const double lb_err = 1e-15 * (std::fabs(lgamma_d(a)) + std::fabs(lgamma_d(b)) + std::fabs(lgamma_d(a + b)) + 1.0);
      EXPECT_NEAR(lbeta<double>(a, b), lb, 1e-13 * std::fabs(lb) + lb_err) << a << " " << b;
      const double lbf = lgamma_d(af) + lgamma_d(bf) - lgamma_d(static_cast<double>(af) + bf);
      EXPECT_NEAR(lbeta<float>(af, bf), lbf, 1e-6 * std::fabs(lbf) + 1e-6) << a << " " << b;
    }
  }
}

TEST(Special, DigammaDiffOutsideItsDomainIsNanAndTerminates) {
  // a <= 0 is outside psi(a+b) - psi(a)'s domain here (the gradients that
  // use it get validated parameters, but not with validation off). Before
  // the guard, a = -inf or a <= -2^24 (float: a + 1 == a) never left the
  // shift loop; these calls would hang the test instead of failing it.
  const float bad_f[] = {0.0f, -0.0f, -1.5f, -16777216.0f, -3e30f, -std::numeric_limits<float>::infinity(),
                         std::numeric_limits<float>::quiet_NaN()};
  for (float a : bad_f) {
    EXPECT_TRUE(std::isnan(digamma_diff<float>(a, 0.5f))) << a;
  }
  const double bad_d[] = {0.0, -2.0, -9007199254740992.0, -1e300, -std::numeric_limits<double>::infinity(),
                          std::numeric_limits<double>::quiet_NaN()};
  for (double a : bad_d) {
    EXPECT_TRUE(std::isnan(digamma_diff<double>(a, 0.5))) << a;
  }
  // The smallest positive inputs are still inside: a finite difference.
  EXPECT_TRUE(std::isfinite(digamma_diff<float>(1e-30f, 1.0f)));
  EXPECT_TRUE(std::isfinite(digamma_diff<double>(1e-300, 1.0)));
}

TEST(Special, SoftplusSigmoid) {
  EXPECT_FLOAT_EQ(softplus_f(0.0f), static_cast<float>(std::log(2.0)));
  EXPECT_EQ(softplus_f(100.0f), 100.0f);
  // e^-100 = 3.7e-44 is subnormal in float: absolute resolution 1.4e-45.
  EXPECT_NEAR(softplus_f(-100.0f), std::exp(-100.0), 1.5e-45);
  EXPECT_GT(softplus_f(-100.0f), 0.0f);
  for (float y : {1e-6f, 1e-3f, 0.3f, 1.0f, 7.5f, 30.0f}) {
    EXPECT_NEAR(softplus_f(softplus_inv_f(y)), y, 4e-7 * y) << y;
  }
  EXPECT_NEAR(softplus_inv_f(1e-6f), std::log(std::expm1(1e-6)), 1e-6);
  EXPECT_EQ(sigmoid_f(100.0f), 1.0f);
  EXPECT_NEAR(sigmoid_f(-100.0f), std::exp(-100.0), 1.5e-45);
  EXPECT_NEAR(sigmoid_f(0.7f), 1.0 / (1.0 + std::exp(-0.7)), 1e-7);
  // log sigmoid: exact in both tails (log sigmoid(40) = -4.25e-18).
  EXPECT_NEAR(log_sigmoid_f(40.0f), -std::log1p(std::exp(-40.0)), 1e-24);
  EXPECT_FLOAT_EQ(log_sigmoid_f(-100.0f), -100.0f);
  for (float a : {1e-5f, 0.1f, 0.69f, 0.7f, 3.0f, 50.0f}) {
    const double ad = a;
    const double ref = ad < std::log(2.0) ? std::log(-std::expm1(-ad)) : std::log1p(-std::exp(-ad));
    EXPECT_NEAR(log1mexp_f(a), ref, 2e-7 * std::fabs(ref)) << a;
  }
}

// ---------------------------------------------------------------------------
// exp_f, log_f, log1p_f (the branch-free versions the CPU loops vectorise)
// against the float64 library functions, in units in the last place of the
// float result. Bounds: the worst errors over every one of the 2^32 floats,
// measured once (exp_f 1.221 ulp at 0x1.da1f2ep+5, log_f 0.995 at
// 0x1.969ce2p-93, log1p_f 1.437 at -0x1.8p-24), rounded up in the second
// decimal; here 4 million floats drawn uniformly over the bit patterns
// (every exponent equally often) plus the cases named below.
double ulps(float got, double ref) {
  if (std::isnan(ref)) return std::isnan(got) ? 0.0 : 1e30;
  const float rf = static_cast<float>(ref);
  if (std::isinf(rf)) return got == rf ? 0.0 : 1e30;  // overflow: must be inf of the right sign
  // One ulp of the float nearest ref (subnormal spacing below FLT_MIN).
  double ulp = std::fabs(static_cast<double>(std::nextafter(rf, std::numeric_limits<float>::infinity())) -
                         static_cast<double>(rf));
  if (std::fabs(ref) < static_cast<double>(std::numeric_limits<float>::min())) ulp = 0x1p-149;
  return std::fabs(static_cast<double>(got) - ref) / ulp;
}

TEST(Special, ExpLogLog1pWithinTheirUlpBounds) {
  uint64_t state = 0x9e3779b97f4a7c15ull;  // splitmix64: a fixed, portable stream
  auto next = [&] {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
  };
  double worst_exp = 0, worst_log = 0, worst_log1p = 0;
  float at_exp = 0, at_log = 0, at_log1p = 0;
  auto run = [&](float x) {
    const double e = ulps(exp_f(x), std::exp(static_cast<double>(x)));
    if (e > worst_exp) worst_exp = e, at_exp = x;
    const double l = ulps(log_f(x), std::log(static_cast<double>(x)));
    if (l > worst_log) worst_log = l, at_log = x;
    const double lp = ulps(log1p_f(x), std::log1p(static_cast<double>(x)));
    if (lp > worst_log1p) worst_log1p = lp, at_log1p = x;
  };
  for (int i = 0; i < 4000000; ++i) run(bits_float(static_cast<int32_t>(next())));
  // Dense near the places the formulas switch: exp_f's clamps and the
  // subnormal range, log's m = sqrt(1/2) boundary, log1p near 0 and -1.
  for (float x = -110.0f; x < 95.0f; x += 0.0137f) run(x);
  for (float x = 1e-7f; x < 1.0f; x *= 1.01f) run(x), run(-x), run(-1.0f + x);
  for (float x : {0.0f, -0.0f, 1.0f, -1.0f, 0.70710677f, 0.70710683f, 1.4142135f, 88.72283f, 88.72284f,
                  -87.33655f, -103.97208f, -103.97209f, 1e-45f, 1.1754942e-38f, 3.4028235e38f, -3.4028235e38f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::quiet_NaN()})
    run(x);
  EXPECT_LE(worst_exp, 1.23) << "exp_f at " << at_exp;
  EXPECT_LE(worst_log, 1.0) << "log_f at " << at_log;
  EXPECT_LE(worst_log1p, 1.44) << "log1p_f at " << at_log1p;
  // The cases the C library defines exactly.
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(exp_f(0.0f), 1.0f);
  EXPECT_EQ(exp_f(-inf), 0.0f);
  EXPECT_EQ(exp_f(inf), inf);
  EXPECT_EQ(exp_f(89.0f), inf);
  EXPECT_EQ(exp_f(-200.0f), 0.0f);
  EXPECT_GT(exp_f(-100.0f), 0.0f);  // subnormal, not flushed
  EXPECT_EQ(log_f(1.0f), 0.0f);
  EXPECT_EQ(log_f(0.0f), -inf);
  EXPECT_EQ(log_f(inf), inf);
  EXPECT_TRUE(std::isnan(log_f(-1.0f)));
  EXPECT_EQ(log1p_f(0.0f), 0.0f);
  EXPECT_EQ(log1p_f(-1.0f), -inf);
  EXPECT_EQ(log1p_f(inf), inf);
  EXPECT_EQ(log1p_f(1e-30f), 1e-30f);
  EXPECT_TRUE(std::isnan(log1p_f(-1.5f)));
  for (float x : {0.0f, 1.0f, -1.0f, 5.0f}) EXPECT_TRUE(std::isnan(exp_f(x * std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(log_f(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(log1p_f(std::numeric_limits<float>::quiet_NaN())));
}

// tanh_f against float64 tanh. Bound: its worst error over all 2^32 floats,
// measured once (1.343 ulp at 0x1.43dddcp-1, just above the switch at
// 0.625), rounded up; sampled here as the test above does, densely around
// the switch and the saturation near |x| = 9.
TEST(Special, TanhWithinItsUlpBound) {
  uint64_t state = 0x2545f4914f6cdd1dull;  // splitmix64
  auto next = [&] {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
  };
  double worst = 0;
  float at = 0;
  auto run = [&](float x) {
    const float t = tanh_f(x);
    const double e = ulps(t, std::tanh(static_cast<double>(x)));
    if (e > worst) worst = e, at = x;
    EXPECT_TRUE(std::isnan(x) || std::signbit(t) == std::signbit(x)) << x;  // odd, -0 included
  };
  for (int i = 0; i < 4000000; ++i) run(bits_float(static_cast<int32_t>(next())));
  for (float x = 0.55f; x < 0.7f; x = std::nextafter(x, 1.0f) + 1e-7f) run(x), run(-x);
  for (float x = 8.0f; x < 10.0f; x += 1e-4f) run(x), run(-x);
  for (float x = 1e-7f; x < 20.0f; x *= 1.001f) run(x), run(-x);
  EXPECT_LE(worst, 1.35) << "tanh_f at " << at;
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(tanh_f(inf), 1.0f);
  EXPECT_EQ(tanh_f(-inf), -1.0f);
  EXPECT_EQ(tanh_f(100.0f), 1.0f);
  EXPECT_EQ(tanh_f(1e-30f), 1e-30f);
  EXPECT_TRUE(std::signbit(tanh_f(-0.0f)) && tanh_f(-0.0f) == 0.0f);
  EXPECT_TRUE(std::isnan(tanh_f(std::numeric_limits<float>::quiet_NaN())));
}

// ---------------------------------------------------------------------------
// Incomplete gamma: identities with elementary functions.
TEST(Special, IncompleteGamma) {
  for (double x : {1e-6, 0.01, 0.3, 1.0, 2.5, 7.0, 20.0, 60.0}) {
    // P(1, x) = 1 - e^-x, Q(1, x) = e^-x.
    EXPECT_NEAR(gamma_p_d(1.0, x), -std::expm1(-x), 1e-14 * -std::expm1(-x)) << x;
    EXPECT_NEAR(gamma_q_d(1.0, x), std::exp(-x), 1e-13 * std::exp(-x)) << x;
    // P(1/2, x) = erf(sqrt x), Q(1/2, x) = erfc(sqrt x).
    EXPECT_NEAR(gamma_p_d(0.5, x), std::erf(std::sqrt(x)), 1e-14) << x;
    EXPECT_NEAR(gamma_q_d(0.5, x), std::erfc(std::sqrt(x)), 1e-13 * std::erfc(std::sqrt(x)) + 1e-300) << x;
    // Integer a: Q(n, x) = e^-x sum_{k<n} x^k / k!.
    for (int n : {2, 3, 7, 15}) {
      double term = 1.0, sum = 1.0;
      for (int k = 1; k < n; ++k) {
        term *= x / k;
        sum += term;
      }
      const double q = std::exp(-x) * sum;
      EXPECT_NEAR(gamma_q_d(n, x), q, 1e-13 * q + 1e-300) << n << " " << x;
      EXPECT_NEAR(gamma_p_d(n, x) + gamma_q_d(n, x), 1.0, 1e-14) << n << " " << x;
    }
  }
  // Large shape: P(a, a) -> 1/2 + 1/(3 sqrt(2 pi a)) (Ramanujan / Temme);
  // at a = 1e4 the next term is O(1/a): 2e-6 tolerance.
  const double a = 1e4;
  EXPECT_NEAR(gamma_p_d(a, a), 0.5 + 1.0 / (3.0 * std::sqrt(2.0 * 3.14159265358979323846 * a)), 2e-6);
}

// Incomplete beta: closed forms.
TEST(Special, IncompleteBeta) {
  const double pi = 3.14159265358979323846;
  for (double x0 : {1e-7, 0.003, 0.2, 0.5, 0.77, 0.999, 1.0 - 1e-9}) {
    // x and 1 - x both exact in double, so the symmetry check below sees no
    // rounding of its own.
    const double x = 1.0 - (1.0 - x0);
    for (double b : {0.3, 1.0, 2.5, 40.0}) {
      const double ref = -std::expm1(b * std::log1p(-x));  // I_x(1, b) = 1 - (1-x)^b
      EXPECT_NEAR(beta_inc_d(1.0, b, x), ref, 1e-13 * ref) << b << " " << x;
      const double ref2 = std::pow(x, b);  // I_x(b, 1) = x^b
      EXPECT_NEAR(beta_inc_d(b, 1.0, x), ref2, 1e-13 * ref2) << b << " " << x;
      // Symmetry I_x(a, b) = 1 - I_{1-x}(b, a).
      EXPECT_NEAR(beta_inc_d(0.7, b, x) + beta_inc_d(b, 0.7, 1.0 - x), 1.0, 1e-14) << b << " " << x;
    }
    // I_x(1/2, 1/2) = (2/pi) asin(sqrt x) = 1 - (2/pi) asin(sqrt(1-x))
    // (the second form is well conditioned near x = 1).
    const double ref_as = x < 0.5 ? 2.0 / pi * std::asin(std::sqrt(x)) : 1.0 - 2.0 / pi * std::asin(std::sqrt(1.0 - x));
    EXPECT_NEAR(beta_inc_d(0.5, 0.5, x), ref_as, 1e-14) << x;
    // Integer parameters: binomial tail, I_x(a, b) = sum_{j=a}^{n} C(n,j) x^j (1-x)^(n-j), n = a+b-1.
    const int ia = 3, ib = 5, n = ia + ib - 1;
    double s = 0.0;
    for (int j = ia; j <= n; ++j) {
      double c = 1.0;
      for (int k = 1; k <= j; ++k) c = c * (n - j + k) / k;
      s += c * std::pow(x, j) * std::pow(1.0 - x, n - j);
    }
    EXPECT_NEAR(beta_inc_d(ia, ib, x), s, 1e-13 * s + 1e-300) << x;
  }
}

// Shape derivatives: where I has a closed form, so does its derivative:
// d/da x^a = x^a log x (I_x(a, 1)), d/db [1 - (1-x)^b] = -(1-x)^b log(1-x) (I_x(1, b)),
// and d/da P(a, x) against a Richardson-extrapolated difference of P
// itself with a different step (1e-4 min(a, sqrt a), error O(h^4)).
// The finite-difference error budget (fd_step_d) is ~1e-10 relative; test
// at 1e-8 (the float gradients built on it resolve 6e-8).
TEST(Special, ShapeDerivatives) {
  for (double x : {1e-5, 0.01, 0.3, 0.5, 0.8, 0.99}) {
    for (double a : {0.05, 0.6, 1.7, 9.0, 120.0}) {
      const double ref = std::pow(x, a) * std::log(x);
      EXPECT_NEAR(beta_inc_da_d(a, 1.0, x), ref, 1e-8 * std::fabs(ref) + 1e-300) << a << " " << x;
      const double refb = -std::pow(1.0 - x, a) * std::log1p(-x);
      EXPECT_NEAR(beta_inc_db_d(1.0, a, x), refb, 1e-8 * std::fabs(refb) + 1e-300) << a << " " << x;
    }
  }
  for (double a : {0.05, 0.4, 1.0, 3.3, 25.0, 400.0}) {
    for (double q : {0.02, 0.3, 0.5, 0.8, 0.98}) {
      // x at a few quantile-like positions of Gamma(a): mean +- multiples of sd
      const double x = std::max(1e-3 * a, a + std::sqrt(a) * 2.0 * (q - 0.5) * 2.5);
      const double h = 1e-4 * std::min(a, std::sqrt(a));
      auto P = [&](double s) { return gamma_p_d(s, x); };
      const double d1 = (P(a + h) - P(a - h)) / (2 * h);
      const double d2 = (P(a + 2 * h) - P(a - 2 * h)) / (4 * h);
      const double rich = (4.0 * d1 - d2) / 3.0;  // O(h^4): ~1e-12 relative
      EXPECT_NEAR(gamma_p_da_d(a, x), rich, 1e-7 * std::fabs(rich) + 1e-300) << a << " " << x;
    }
  }
}

// Phi, Phi^-1 and erf^-1 over their whole float range, tails included,
// against double references that share no code with the kernels: erfc for
// Phi, bisection on erfc / erf for the inverses. The kernels evaluate in
// double and round once, so the float results must be within 2 ulp (a
// rounding of the result plus the reference's own error, far below it);
// the double forms within 1e-13 relative (Phi: see below). Ends: Phi^-1(0) = -inf,
// Phi^-1(1) = +inf, erf^-1(+-1) = +-inf, NaN outside.
TEST(Special, NdtrNdtriErfinvAccurateInTheTails) {
  auto ndtr_ref = [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); };
  auto bisect = [](auto f, double y, double lo, double hi) { return cuvi::testing::invert_increasing(f, y, lo, hi); };
  auto ulps = [](float got, double ref) {
    const double ulp = std::nextafter(std::fabs(static_cast<float>(ref)), INFINITY) - std::fabs(static_cast<float>(ref));
    return std::fabs(static_cast<double>(got) - ref) / ulp;
  };
  // Phi from -37 (Phi ~ 6e-300 in double; below float's range past -13.9) to 8.
  for (double x = -37.0; x <= 8.0; x += 0.173) {
    const double ref = ndtr_ref(x);
    // Scaling x by 1/sqrt 2 rounds once (1.1e-16 relative), which erfc's
    // relative slope 2 z^2 amplifies: 1e-14 + 2.5e-16 x^2 relative.
    EXPECT_NEAR(ndtr_d(x), ref, (1e-14 + 2.5e-16 * x * x) * ref) << "ndtr_d(" << x << ")";
    if (ref > 1e-37) EXPECT_LE(ulps(ndtr_f(static_cast<float>(x)), ndtr_ref(static_cast<float>(x))), 2.0) << x;
  }
  // Phi^-1 on probabilities from 1e-300 to 1 - 1e-16, both halves.
  for (double lp = -300.0; lp < 0.0; lp += 1.37) {
    const double p = std::pow(10.0, lp);
    const double ref = bisect(ndtr_ref, p, -40.0, 40.0);
    EXPECT_NEAR(ndtri_d(p), ref, 1e-13 * std::fabs(ref)) << "ndtri_d(" << p << ")";
    const double pu = 1.0 - p;  // the upper tail as double can hold it; 1 - pu is exact
    if (pu < 1.0) {
      const double refu = -bisect(ndtr_ref, 1.0 - pu, -40.0, 40.0);
      EXPECT_NEAR(ndtri_d(pu), refu, 1e-13 * std::fabs(refu) + 1e-15) << "ndtri_d(1 - " << p << ")";
    }
    if (p > 1e-44) {
      const float pf = static_cast<float>(p);
      EXPECT_LE(ulps(ndtri_f(pf), bisect(ndtr_ref, pf, -40.0, 40.0)), 2.0) << "ndtri_f(" << pf << ")";
      const float qf = 1.0f - pf;  // the upper tail as float can hold it
      if (qf < 1.0f)
        EXPECT_LE(ulps(ndtri_f(qf), bisect(ndtr_ref, qf, -40.0, 40.0)), 2.0) << "ndtri_f(" << qf << ")";
    }
  }
  EXPECT_EQ(ndtri_f(0.5f), 0.0f);
  // erf^-1 from tiny arguments (where it is y sqrt(pi)/2) to the ends. The
  // reference bisects erf below |y| = 1/2 and erfc(x) = 1 - |y| above (erf
  // itself near 1 has only ~1e-16 / (1 - |y|) relative accuracy left).
  auto erfinv_ref = [&](double y) {
    const double a = std::fabs(y);
    const double x = a < 0.5 ? bisect([](double v) { return std::erf(v); }, a, 0.0, 7.0)
                             : bisect([](double v) { return -std::erfc(v); }, -(1.0 - a), 0.0, 7.0);
    return y < 0 ? -x : x;
  };
  for (double y : {1e-30, 1e-8, 1e-3, 0.1, 0.3, 0.49, 0.5, 0.51, 0.9, 0.999, 1.0 - 1e-7}) {
    for (double s : {1.0, -1.0}) {
      const float yf = static_cast<float>(s * y);
      const double ref = erfinv_ref(yf);
      EXPECT_LE(ulps(erfinv_f(yf), ref), 2.0) << "erfinv_f(" << yf << ")";
      EXPECT_NEAR(erfinv_d(s * y), erfinv_ref(s * y), 1e-13 * std::fabs(ref)) << s * y;
    }
  }
  EXPECT_EQ(erfinv_f(0.0f), 0.0f);
  EXPECT_EQ(ndtri_f(0.0f), -INFINITY);
  EXPECT_EQ(ndtri_f(1.0f), INFINITY);
  EXPECT_EQ(erfinv_f(1.0f), INFINITY);
  EXPECT_EQ(erfinv_f(-1.0f), -INFINITY);
  EXPECT_TRUE(std::isnan(ndtri_f(-0.1f)));
  EXPECT_TRUE(std::isnan(ndtri_f(1.5f)));
  EXPECT_TRUE(std::isnan(erfinv_f(1.01f)));
  EXPECT_TRUE(std::isnan(ndtri_f(NAN)));
}
