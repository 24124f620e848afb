#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <random>

#include "gradcheck.hpp"
#include "ppl/constraints.hpp"

using namespace cuvi;
using namespace cuvi::testing;
namespace C = cuvi::constraints;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Case {
  std::string label;
  C::ConstraintPtr c;
  Shape x_shape;                                            // constrained shape used in the tests
  std::function<Tensor(std::mt19937&, Device)> sample_x;    // valid constrained values
  std::vector<Tensor> outside;                              // values whose check() must be 0 everywhere
  // The widest unconstrained spread whose transform float32 still holds
  // inside the constraint (ordered_vector: steps of e^-12 vanish next to
  // values of e^12, giving ties, as in torch).
  float max_spread = 12.0f;
};

Tensor uniform(const Shape& s, float lo, float hi, std::mt19937& g, Device d) { return random_tensor(s, g, lo, hi, d); }

// Rows of positive numbers normalised on the host.
Tensor random_simplex(const Shape& s, std::mt19937& g, Device d) {
  auto v = random_values(shape_numel(s), g, 0.1f, 1.0f);
  const int64_t k = s.back();
  for (size_t r = 0; r < v.size(); r += static_cast<size_t>(k)) {
    double tot = 0;
    for (int64_t i = 0; i < k; ++i) tot += v[r + static_cast<size_t>(i)];
    for (int64_t i = 0; i < k; ++i)
      v[r + static_cast<size_t>(i)] = static_cast<float>(v[r + static_cast<size_t>(i)] / tot);
  }
  return tensor(v, s, d);
}

Tensor random_cholesky(const Shape& s, std::mt19937& g, Device d) {
  const int64_t n = s.back();
  auto v = random_values(shape_numel(s), g, -1.0f, 1.0f);
  auto diag = random_values(shape_numel(s), g, 0.3f, 2.0f);
  for (size_t e = 0; e < v.size(); ++e) {
    const int64_t i = (static_cast<int64_t>(e) / n) % n, j = static_cast<int64_t>(e) % n;
    if (j > i) v[e] = 0.0f;
    if (j == i) v[e] = diag[e];
  }
  return tensor(v, s, d);
}

std::vector<Case> cases() {
  std::vector<Case> cs;
  auto scalar_case = [&](const std::string& label, C::ConstraintPtr c, float lo, float hi, std::vector<float> bad) {
    cs.push_back({label, c, {4, 3}, [lo, hi](std::mt19937& g, Device d) { return uniform({4, 3}, lo, hi, g, d); },
                  {tensor(bad)}});
  };
  scalar_case("real", C::real, -3.0f, 3.0f, {kNaN});
  scalar_case("positive", C::positive, 0.1f, 5.0f, {0.0f, -1.0f, -kInf, kNaN});
  scalar_case("softplus_positive", C::softplus_positive, 0.1f, 5.0f, {0.0f, -1e-3f, kNaN});
  scalar_case("unit_interval", C::unit_interval, 0.05f, 0.95f, {-0.1f, 1.1f, -1e-6f, kNaN});
  scalar_case("interval", C::interval(-1.0f, 2.5f), -0.9f, 2.4f, {-1.5f, 2.6f, 100.0f, kNaN});
  scalar_case("greater_than", C::greater_than(0.5f), 0.6f, 5.0f, {0.5f, 0.0f, -3.0f, kNaN});
  cs.push_back({"simplex", C::simplex, {3, 5}, [](std::mt19937& g, Device d) { return random_simplex({3, 5}, g, d); },
                {tensor({0.5f, 0.6f, -0.1f}), tensor({0.3f, 0.3f, 0.3f}), tensor({0.5f, kNaN, 0.5f}),
                 tensor({0.7f, 0.7f, 0.1f, -0.5f}, default_device()).reshape({2, 2})}});
  // Sorted random vectors; outsiders: a tie, a decrease, NaN, inf.
  cs.push_back({"ordered_vector", C::ordered_vector, {3, 4},
                [](std::mt19937& g, Device d) {
                  auto v = random_values(12, g, -3.0f, 3.0f);
                  for (size_t r = 0; r < 3; ++r) std::sort(v.begin() + 4 * r, v.begin() + 4 * (r + 1));
                  return tensor(v, {3, 4}, d);
                },
                {tensor({0.5f, 0.5f}), tensor({1.0f, 0.0f, 2.0f}), tensor({0.0f, kNaN, 2.0f}),
                 tensor({0.0f, 1.0f, kInf})},
                4.0f});
  cs.push_back({"lower_cholesky", C::lower_cholesky, {2, 3, 3},
                [](std::mt19937& g, Device d) { return random_cholesky({2, 3, 3}, g, d); },
                {tensor({1.0f, 0.5f, 0.0f, 1.0f}).reshape({2, 2}),     // upper entry
                 tensor({1.0f, 0.0f, 0.5f, 0.0f}).reshape({2, 2}),     // zero diagonal
                 tensor({-1.0f, 0.0f, 0.5f, 1.0f}).reshape({2, 2}),    // negative diagonal
                 tensor({1.0f, 0.0f, kNaN, 1.0f}).reshape({2, 2})}});  // NaN
  return cs;
}

class ConstraintCase : public ::testing::TestWithParam<size_t> {
 protected:
  Case c_ = cases()[GetParam()];
};

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

TEST_P(ConstraintCase, TransformOfInverseIsIdentity) {
  std::mt19937 g(11 + static_cast<unsigned>(GetParam()));
  Tensor x = c_.sample_x(g, default_device());
  Tensor u = c_.c->inverse(x);
  EXPECT_EQ(u.shape(), c_.c->unconstrained_shape(x.shape()));
  // A few float32 roundings through maps of condition <= ~10: 1e-5 leaves a margin.
  expect_close(c_.c->transform(u).to_vector(), to_double(x.to_vector()), 1e-5, 1e-5, c_.label.c_str());
}

TEST_P(ConstraintCase, InverseOfTransformIsIdentity) {
  std::mt19937 g(23 + static_cast<unsigned>(GetParam()));
  const Shape us = c_.c->unconstrained_shape(c_.x_shape);
  Tensor u = random_tensor(us, g, -2.0f, 2.0f);
  Tensor x = c_.c->transform(u);
  EXPECT_EQ(x.shape(), c_.x_shape);
  EXPECT_EQ(c_.c->constrained_shape(us), c_.x_shape);
  expect_close(c_.c->inverse(x).to_vector(), to_double(u.to_vector()), 1e-5, 1e-5, c_.label.c_str());
}

TEST_P(ConstraintCase, CheckAcceptsTransformOutputsAndRejectsOutsiders) {
  std::mt19937 g(5 + static_cast<unsigned>(GetParam()));
  const Shape us = c_.c->unconstrained_shape(c_.x_shape);
  const int ed = c_.c->event_dim();
  const Shape batch(c_.x_shape.begin(), c_.x_shape.end() - ed);
  for (float spread : {1.0f, 4.0f, 12.0f}) {
    if (spread > c_.max_spread) continue;
    Tensor x = c_.c->transform(random_tensor(us, g, -spread, spread));
    Tensor ok = c_.c->check(x);
    EXPECT_EQ(ok.shape(), batch);
    for (float v : ok.to_vector()) EXPECT_EQ(v, 1.0f) << c_.label << " spread " << spread;
    for (float v : c_.c->check(c_.sample_x(g, default_device())).to_vector()) EXPECT_EQ(v, 1.0f) << c_.label;
  }
  for (const Tensor& bad : c_.outside) {
    Tensor r = c_.c->check(bad);
    EXPECT_EQ(r.shape(), Shape(bad.shape().begin(), bad.shape().end() - ed));
    for (float v : r.to_vector()) EXPECT_EQ(v, 0.0f) << c_.label << " accepted " << bad.str();
  }
  EXPECT_FALSE(c_.c->check(c_.c->transform(random_tensor(us, g, -1, 1))).requires_grad());
}

// log|det| of a square matrix (row-major, double) by LU with partial pivoting.
double log_abs_det(std::vector<double> a, size_t n) {
  double acc = 0;
  for (size_t k = 0; k < n; ++k) {
    size_t p = k;
    for (size_t i = k + 1; i < n; ++i)
      if (std::fabs(a[i * n + k]) > std::fabs(a[p * n + k])) p = i;
    if (a[p * n + k] == 0.0) return -std::numeric_limits<double>::infinity();
    if (p != k)
      for (size_t j = 0; j < n; ++j) std::swap(a[k * n + j], a[p * n + j]);
    acc += std::log(std::fabs(a[k * n + k]));
    for (size_t i = k + 1; i < n; ++i) {
      const double f = a[i * n + k] / a[k * n + k];
      for (size_t j = k; j < n; ++j) a[i * n + j] -= f * a[k * n + j];
    }
  }
  return acc;
}

// The free coordinates of each event of x (row b of the result holds event b):
// elementwise: the value; event_dim 1: the first m entries of each event, m
// the unconstrained size (simplex: K-1; ordered_vector: all K);
// lower_cholesky: the lower triangle row by row.
std::vector<double> free_coords(const Case& c, const Tensor& x) {
  const auto v = x.to_vector();
  std::vector<double> out;
  if (c.c->event_dim() == 0) return {v.begin(), v.end()};
  if (c.c->event_dim() == 1) {
    const int64_t k = x.size(-1), m = c.c->unconstrained_shape(x.shape()).back();
    for (size_t i = 0; i < v.size(); ++i)
      if (static_cast<int64_t>(i) % k < m) out.push_back(v[i]);
    return out;
  }
  const int64_t n = x.size(-1);
  for (size_t e = 0; e < v.size(); ++e) {
    const int64_t i = (static_cast<int64_t>(e) / n) % n, j = static_cast<int64_t>(e) % n;
    if (j <= i) out.push_back(v[e]);
  }
  return out;
}

TEST_P(ConstraintCase, LogAbsDetJacobianMatchesFiniteDifferences) {
  std::mt19937 g(31 + static_cast<unsigned>(GetParam()));
  const Shape us = c_.c->unconstrained_shape(c_.x_shape);
  Tensor u = random_tensor(us, g, -1.5f, 1.5f);
  const auto uv = u.to_vector();
  const size_t d = c_.c->event_dim() == 0 ? 1 : static_cast<size_t>(us.back());  // coordinates per event
  const size_t nb = uv.size() / d;
  // Central differences with h = 2^-8 in float32: truncation ~h^2/6 ~ 3e-6 and
  // rounding ~ulp(x)/h ~ 1e-5 relative per entry, so log|det| is good to ~1e-4;
  // a wrong term (a missing log(b - a), a missing coordinate) is off by O(1).
  const float h = 1.0f / 256.0f;
  std::vector<double> jac(nb * d * d);
  for (size_t j = 0; j < d; ++j) {
    auto up = uv, um = uv;
    std::vector<double> step(nb);
    for (size_t b = 0; b < nb; ++b) {
      up[b * d + j] = uv[b * d + j] + h;
      um[b * d + j] = uv[b * d + j] - h;
      step[b] = static_cast<double>(up[b * d + j]) - static_cast<double>(um[b * d + j]);
    }
    const auto fp = free_coords(c_, c_.c->transform(tensor(up, us)));
    const auto fm = free_coords(c_, c_.c->transform(tensor(um, us)));
    ASSERT_EQ(fp.size(), nb * d);
    for (size_t b = 0; b < nb; ++b)
      for (size_t i = 0; i < d; ++i) jac[b * d * d + i * d + j] = (fp[b * d + i] - fm[b * d + i]) / step[b];
  }
  std::vector<double> want(nb);
  for (size_t b = 0; b < nb; ++b)
    want[b] = log_abs_det(std::vector<double>(jac.begin() + static_cast<long>(b * d * d),
                                              jac.begin() + static_cast<long>((b + 1) * d * d)),
                          d);
  Tensor ldj = c_.c->log_abs_det_jacobian(u, c_.c->transform(u));
  EXPECT_EQ(ldj.shape(), Shape(us.begin(), us.end() - (c_.c->event_dim() == 0 ? 0 : 1)));
  expect_close(ldj.to_vector(), want, 1e-3, 0.0, c_.label.c_str());
}

TEST_P(ConstraintCase, TransformGradcheck) {
  std::mt19937 g(41 + static_cast<unsigned>(GetParam()));
  auto c = c_.c;
  Tensor u = random_tensor(c->unconstrained_shape(c_.x_shape), g, -2.0f, 2.0f);
  gradcheck([c](const std::vector<Tensor>& xs) { return c->transform(xs[0]); }, {u});
}

TEST_P(ConstraintCase, LogAbsDetJacobianGradcheck) {
  std::mt19937 g(43 + static_cast<unsigned>(GetParam()));
  auto c = c_.c;
  Tensor u = random_tensor(c->unconstrained_shape(c_.x_shape), g, -2.0f, 2.0f);
  if (c->name() == "real") {  // constant zero: no graph to check
    EXPECT_EQ(sum(abs(c->log_abs_det_jacobian(u, u))).item(), 0.0f);
    return;
  }
  gradcheck([c](const std::vector<Tensor>& xs) { return c->log_abs_det_jacobian(xs[0], c->transform(xs[0])); }, {u});
}

TEST_P(ConstraintCase, InverseGradcheck) {
  std::mt19937 g(47 + static_cast<unsigned>(GetParam()));
  auto c = c_.c;
  gradcheck([c](const std::vector<Tensor>& xs) { return c->inverse(xs[0]); }, {c_.sample_x(g, default_device())});
}

TEST_P(ConstraintCase, NameRoundTrips) {
  const auto back = C::from_name(c_.c->name());
  EXPECT_EQ(back->name(), c_.c->name());
  EXPECT_EQ(back->event_dim(), c_.c->event_dim());
  std::mt19937 g(3);
  Tensor u = random_tensor(c_.c->unconstrained_shape(c_.x_shape), g, -2.0f, 2.0f);
  EXPECT_EQ(back->transform(u).to_vector(), c_.c->transform(u).to_vector());
}

TEST_P(ConstraintCase, CudaMatchesCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 g(51 + static_cast<unsigned>(GetParam()));
  Tensor u = random_tensor(c_.c->unconstrained_shape(c_.x_shape), g, -2.0f, 2.0f);
  Tensor ud = u.to(Device::cuda());
  expect_close(c_.c->transform(ud).to_vector(), to_double(c_.c->transform(u).to_vector()), 1e-6, 1e-5, "transform");
  Tensor x = c_.c->transform(u);
  expect_close(c_.c->inverse(x.to(Device::cuda())).to_vector(), to_double(c_.c->inverse(x).to_vector()), 1e-5, 1e-5,
               "inverse");
  expect_close(c_.c->log_abs_det_jacobian(ud, c_.c->transform(ud)).to_vector(),
               to_double(c_.c->log_abs_det_jacobian(u, x).to_vector()), 1e-5, 1e-5, "ldj");
  EXPECT_EQ(c_.c->check(c_.c->transform(ud)).to_vector(), c_.c->check(x).to_vector());
  // Gradients reach the device leaf.
  Tensor leaf = ud.detach().requires_grad_();
  sum(c_.c->transform(leaf)).backward();
  Tensor hl = u.detach().requires_grad_();
  sum(c_.c->transform(hl)).backward();
  expect_close(leaf.grad().to_vector(), to_double(hl.grad().to_vector()), 1e-5, 1e-5, "grad");
}

INSTANTIATE_TEST_SUITE_P(All, ConstraintCase, ::testing::Range<size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) { return cases()[info.param].label; });

// ---- specific behaviour ------------------------------------------------------------

TEST(Constraints, NamesAndProperties) {
  EXPECT_EQ(C::real->name(), "real");
  EXPECT_EQ(C::positive->name(), "positive");
  EXPECT_EQ(C::softplus_positive->name(), "softplus_positive");
  EXPECT_EQ(C::unit_interval->name(), "unit_interval");
  EXPECT_EQ(C::interval(-1.0f, 2.5f)->name(), "interval(-1, 2.5)");
  EXPECT_EQ(C::interval(0.1f, 0.7f)->name(), "interval(0.1, 0.7)");
  EXPECT_EQ(C::greater_than(-3.25f)->name(), "greater_than(-3.25)");
  EXPECT_EQ(C::simplex->name(), "simplex");
  EXPECT_EQ(C::ordered_vector->name(), "ordered_vector");
  EXPECT_EQ(C::ordered_vector->event_dim(), 1);
  EXPECT_EQ(C::lower_cholesky->name(), "lower_cholesky");
  EXPECT_EQ(C::boolean->name(), "boolean");
  EXPECT_EQ(C::nonnegative_integer->name(), "nonnegative_integer");
  EXPECT_EQ(C::real->event_dim(), 0);
  EXPECT_EQ(C::simplex->event_dim(), 1);
  EXPECT_EQ(C::lower_cholesky->event_dim(), 2);
  EXPECT_TRUE(C::boolean->is_discrete());
  EXPECT_TRUE(C::nonnegative_integer->is_discrete());
  EXPECT_FALSE(C::positive->is_discrete());
  EXPECT_FALSE(C::simplex->is_discrete());
}

TEST(Constraints, FromName) {
  for (const char* n : {"real", "positive", "softplus_positive", "unit_interval", "simplex", "ordered_vector",
                        "lower_cholesky", "boolean", "nonnegative_integer"})
    EXPECT_EQ(C::from_name(n)->name(), n);
  EXPECT_EQ(C::from_name("real"), C::real);  // the singleton itself
  EXPECT_EQ(C::from_name("interval(-1, 2.5)")->name(), "interval(-1, 2.5)");
  EXPECT_EQ(C::from_name("interval(-1,2.5)")->name(), "interval(-1, 2.5)");
  EXPECT_EQ(C::from_name("greater_than(1e-05)")->name(), C::greater_than(1e-5f)->name());
  // Shortest round-trip formatting: awkward floats come back bit for bit.
  const float lo = 0.1f + 0.2f, hi = 1.0f / 3.0f;
  const auto c = C::interval(lo, hi);
  Tensor u = tensor({-3.0f, 0.0f, 0.7f, 3.0f});
  EXPECT_EQ(C::from_name(c->name())->transform(u).to_vector(), c->transform(u).to_vector());
  for (const char* bad : {"", "Real", "foo", "interval(2, 1)", "interval(1)", "interval(a, b)", "interval(0, inf)",
                          "greater_than()", "greater_than(nan)", "interval(0, 1", "simplex "})
    expect_error<ValueError>([&] { C::from_name(bad); }, {"unknown constraint", bad});
}

TEST(Constraints, BadArguments) {
  expect_error<ValueError>([] { C::interval(1.0f, 1.0f); }, {"interval", "lo = 1", "hi = 1"});
  expect_error<ValueError>([] { C::interval(2.0f, -1.0f); }, {"interval"});
  expect_error<ValueError>([] { C::interval(0.0f, kInf); }, {"interval"});
  expect_error<ValueError>([] { C::greater_than(kNaN); }, {"greater_than"});
  expect_error<ValueError>([] { C::boolean->transform(tensor({0.0f})); }, {"boolean", "discrete"});
  expect_error<ValueError>([] { C::nonnegative_integer->inverse(tensor({1.0f})); }, {"nonnegative_integer"});
  expect_error<ShapeError>([] { C::simplex->transform(tensor(0.5f)); }, {"simplex"});
  expect_error<ShapeError>([] { C::lower_cholesky->inverse(zeros({3, 4})); }, {"lower_cholesky", "[3, 4]"});
  expect_error<ShapeError>([] { C::lower_cholesky->transform(zeros({2, 4})); }, {"lower_cholesky", "4"});
  expect_error<ShapeError>([] { C::lower_cholesky->check(zeros({3})); }, {"lower_cholesky"});
}

TEST(Constraints, Shapes) {
  EXPECT_EQ(C::simplex->unconstrained_shape({2, 5}), (Shape{2, 4}));
  EXPECT_EQ(C::simplex->constrained_shape({2, 4}), (Shape{2, 5}));
  EXPECT_EQ(C::lower_cholesky->unconstrained_shape({2, 4, 4}), (Shape{2, 10}));
  EXPECT_EQ(C::lower_cholesky->constrained_shape({2, 10}), (Shape{2, 4, 4}));
  EXPECT_EQ(C::lower_cholesky->unconstrained_shape({1, 1}), (Shape{1}));
  EXPECT_EQ(C::positive->unconstrained_shape({3, 2}), (Shape{3, 2}));
  expect_error<ShapeError>([] { C::lower_cholesky->constrained_shape({7}); }, {"7"});
  expect_error<ShapeError>([] { C::simplex->unconstrained_shape({}); }, {"simplex"});
}

TEST(Constraints, KnownValues) {
  // u = 0 maps to the uniform simplex.
  EXPECT_EQ(C::simplex->transform(zeros({4})).shape(), (Shape{5}));
  expect_close(C::simplex->transform(zeros({4})).to_vector(), {0.2, 0.2, 0.2, 0.2, 0.2}, 1e-7, 1e-6, "uniform");
  expect_close(C::simplex->inverse(tensor({0.25f, 0.25f, 0.25f, 0.25f})).to_vector(), {0, 0, 0}, 1e-6, 0, "inv");
  // K = 1: the only simplex is {1}.
  EXPECT_EQ(C::simplex->transform(zeros({2, 0})).to_vector(), (std::vector<float>{1.0f, 1.0f}));
  EXPECT_EQ(C::simplex->inverse(ones({2, 1})).shape(), (Shape{2, 0}));
  // Packed lower triangle, diagonal through exp.
  Tensor u = tensor({0.5f, -2.0f, 0.0f, 3.0f, 4.0f, -1.0f});
  const double e = std::exp(1.0);
  expect_close(C::lower_cholesky->transform(u).to_vector(),
               {std::exp(0.5), 0, 0, -2, 1, 0, 3, 4, 1 / e}, 1e-6, 1e-6, "cholesky");
  EXPECT_NEAR(C::lower_cholesky->log_abs_det_jacobian(u, Tensor()).item(), -0.5, 1e-6);
  expect_close(C::interval(-1.0f, 2.5f)->transform(tensor({0.0f})).to_vector(), {0.75}, 1e-7, 1e-6, "interval");
  expect_close(C::greater_than(0.5f)->transform(tensor({0.0f})).to_vector(), {1.5}, 1e-7, 1e-6, "greater_than");
  expect_close(C::softplus_positive->transform(tensor({0.0f})).to_vector(), {std::log(2.0)}, 1e-7, 1e-6, "softplus");
}

TEST(Constraints, NumericallyStableInTheTails) {
  // Saturated stick-breaking: every piece finite, non-negative, summing to 1.
  Tensor u = tensor({-60.0f, 60.0f, 30.0f, -30.0f});
  Tensor x = C::simplex->transform(u);
  for (float v : x.to_vector()) EXPECT_TRUE(std::isfinite(v) && v >= 0.0f);
  EXPECT_EQ(C::simplex->check(x).item(), 1.0f);
  EXPECT_TRUE(std::isfinite(C::simplex->log_abs_det_jacobian(u, x).item()));
  // Tiny components keep their relative accuracy: x_0 = sigmoid(-60 - log 4).
  EXPECT_NEAR(x.to_vector()[0] / (std::exp(-60.0) / 4.0), 1.0, 1e-5);
  // Sigmoid tails: log|det| stays finite and right.
  const auto l = C::unit_interval->log_abs_det_jacobian(tensor({-100.0f, 100.0f}), Tensor()).to_vector();
  EXPECT_NEAR(l[0], -100.0, 1e-4);
  EXPECT_NEAR(l[1], -100.0, 1e-4);
  // The interval saturates at its bounds, never past them.
  const auto iv = C::interval(0.1f, 0.7f)->transform(tensor({-100.0f, 100.0f})).to_vector();
  EXPECT_EQ(iv[0], 0.1f);
  EXPECT_EQ(iv[1], 0.7f);
  EXPECT_EQ(C::interval(0.1f, 0.7f)->check(tensor(iv)).to_vector(), (std::vector<float>{1.0f, 1.0f}));
  // softplus^-1 of large and tiny values.
  const auto sp = C::softplus_positive->inverse(tensor({300.0f, 1e-30f, 30.0f})).to_vector();
  EXPECT_EQ(sp[0], 300.0f);
  EXPECT_NEAR(sp[1], std::log(1e-30), 1e-4);
  EXPECT_NEAR(sp[2], 30.0, 1e-5);
  // exp(u) for very negative u is still positive where representable.
  EXPECT_NEAR(C::positive->log_abs_det_jacobian(tensor({-80.0f}), Tensor()).item(), -80.0, 0.0);
}

TEST(Constraints, DiscreteChecks) {
  EXPECT_EQ(C::boolean->check(tensor({0.0f, 1.0f, 0.5f, 2.0f, -1.0f, kNaN})).to_vector(),
            (std::vector<float>{1, 1, 0, 0, 0, 0}));
  EXPECT_EQ(C::boolean->check(tensor_i64({0, 1, 2})).to_vector(), (std::vector<float>{1, 1, 0}));
  EXPECT_EQ(C::nonnegative_integer->check(tensor({0.0f, 3.0f, 1e8f, -1.0f, 2.5f, kNaN, kInf, 16777215.0f, 0.999f}))
                .to_vector(),
            (std::vector<float>{1, 1, 1, 0, 0, 0, 0, 1, 0}));
  EXPECT_EQ(C::nonnegative_integer->check(tensor_i64({0, 7, -2})).to_vector(), (std::vector<float>{1, 1, 0}));
}

TEST(Constraints, GradientsReachTheUnconstrainedValue) {
  // d/du sum(exp(u)) = exp(u).
  Tensor u = tensor({0.0f, 1.0f}).requires_grad_();
  sum(C::positive->transform(u)).backward();
  expect_close(u.grad().to_vector(), {1.0, std::exp(1.0)}, 1e-6, 1e-6, "positive");
  // Simplex: the sum of the transform is constant, so its gradient is zero.
  Tensor v = tensor({0.3f, -0.7f, 1.1f}).requires_grad_();
  sum(C::simplex->transform(v)).backward();
  expect_close(v.grad().to_vector(), {0, 0, 0}, 1e-6, 0, "simplex");
}

}  // namespace
