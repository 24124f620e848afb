#include <gtest/gtest.h>
#include <random>

#include "gradcheck.hpp"
#include "op_cases.hpp"

using namespace cuvi;
using namespace cuvi::testing;

namespace {

class OpTable : public ::testing::TestWithParam<size_t> {};

// Forward: float32 against float64 on the host. Every op here is a few
// float32 roundings deep (sums of <= 60 terms, products of 5), so the error
// is bounded by ~1e-6 relative; lgamma/digamma use our own float series
// (~1e-6 relative). atol 1e-5 + rtol 2e-5 leaves a factor of ~10.
TEST_P(OpTable, ForwardMatchesFloat64) {
  const OpCase c = op_cases()[GetParam()];
  std::mt19937 gen(42 + static_cast<unsigned>(GetParam()));
  std::vector<Tensor> xs;
  HostArrays host;
  std::vector<Shape> shapes;
  for (const auto& in : c.inputs) {
    xs.push_back(random_tensor(in.shape, gen, in.lo, in.hi));
    const auto v = xs.back().to_vector();
    host.emplace_back(v.begin(), v.end());
    shapes.push_back(in.shape);
  }
  Tensor y = c.fn(xs);
  expect_close(y.to_vector(), c.ref(host, shapes), 1e-5, 2e-5, c.name.c_str());
}

TEST_P(OpTable, BackwardMatchesFiniteDifferences) {
  const OpCase c = op_cases()[GetParam()];
  if (!c.differentiable) GTEST_SKIP() << c.name << " has a kink at the clamp bounds";
  std::mt19937 gen(7 + static_cast<unsigned>(GetParam()));
  std::vector<Tensor> xs;
  for (const auto& in : c.inputs) xs.push_back(random_tensor(in.shape, gen, in.lo, in.hi));
  if (c.name == "where") xs.erase(xs.begin());  // the condition is not differentiable
  auto fn = c.fn;
  std::vector<Tensor> cond;
  if (c.name == "where") {
    std::mt19937 g2(7 + static_cast<unsigned>(GetParam()));
    cond.push_back(random_tensor(c.inputs[0].shape, g2, c.inputs[0].lo, c.inputs[0].hi));
    fn = [c, cond](const std::vector<Tensor>& x) { return c.fn({cond[0], x[0], x[1]}); };
  }
  gradcheck(fn, xs);
}

INSTANTIATE_TEST_SUITE_P(All, OpTable, ::testing::Range<size_t>(0, op_cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           std::string n = op_cases()[info.param].name;
                           for (auto& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

TEST(Ops, CompositionGradcheck) {
  std::mt19937 gen(3);
  gradcheck(
      [](const std::vector<Tensor>& x) {
        Tensor h = tanh(matmul(x[0], x[1]) + x[2]);
        return logsumexp(h * h, {1}) + mean(softplus(h), {1});
      },
      {random_tensor({4, 3}, gen, -1, 1), random_tensor({3, 5}, gen, -1, 1), random_tensor({5}, gen, -1, 1)});
}

TEST(Ops, ScalarOperatorsBroadcast) {
  Tensor x = tensor({1.f, 2.f, 3.f});
  EXPECT_EQ((x * 2.0f + 1.0f).to_vector(), (std::vector<float>{3, 5, 7}));
  EXPECT_EQ((1.0f - x).to_vector(), (std::vector<float>{0, -1, -2}));
  EXPECT_EQ((6.0f / x).to_vector(), (std::vector<float>{6, 3, 2}));
}

TEST(Ops, ScatterAddAndIndexAddAccumulateRepeats) {
  Tensor x = zeros({4});
  Tensor r = index_add(x, 0, tensor_i64({1, 1, 3}), tensor({1.f, 2.f, 5.f}));
  EXPECT_EQ(r.to_vector(), (std::vector<float>{0, 3, 0, 5}));
  Tensor s = scatter_add(zeros({2, 3}), 1, tensor_i64({0, 0, 2, 1}, {2, 2}), tensor({1.f, 1.f, 4.f, 2.f}, {2, 2}));
  EXPECT_EQ(s.to_vector(), (std::vector<float>{2, 0, 0, 0, 2, 4}));
}

TEST(Ops, SumIsDeterministicAcrossRuns) {
  std::mt19937 gen(11);
  Tensor x = random_tensor({1 << 18}, gen, -1, 1);
  const float a = sum(x).item();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(sum(x).item(), a);
}

TEST(Ops, LargeSumAccurate) {
  // 2^20 ones in float32 sequentially would still be exact; use 0.1s, where
  // a naive float loop drifts by ~1e-3 relative: ours stays near 1e-7.
  Tensor x = full({1 << 20}, 0.1f);
  EXPECT_NEAR(sum(x).item(), 0.1 * (1 << 20), 0.1 * (1 << 20) * 1e-6);
}

}  // namespace

TEST(Ops, LinearEdgeShapesAndErrors) {
  // Empty input rows, an empty inner dim (k = 0: zeros, and zero weight
  // gradients), and the errors name the shapes.
  Tensor x0 = zeros({0, 3}).requires_grad_();
  Tensor w = ones({2, 3}).requires_grad_();
  Tensor y0 = linear(x0, w);
  EXPECT_EQ(y0.shape(), (Shape{0, 2}));
  sum(y0).backward();
  EXPECT_EQ(w.grad().to_vector(), std::vector<float>(6, 0.0f));
  Tensor xk = zeros({4, 0});
  Tensor yk = linear(xk, zeros({2, 0}), tensor({1.0f, 2.0f}));
  EXPECT_EQ(yk.to_vector(), (std::vector<float>{1, 2, 1, 2, 1, 2, 1, 2}));
  // Against matmul with the materialised transpose, bit for bit on the cpu
  // is not promised (BLAS may block differently), so within float rounding.
  Tensor a = randn({7, 5}), b = randn({3, 5});
  const auto l = linear(a, b).to_vector(), m = matmul(a, b.t()).to_vector();
  for (size_t i = 0; i < l.size(); ++i) EXPECT_NEAR(l[i], m[i], 1e-5f * (1.0f + std::fabs(m[i])));
  expect_error<ShapeError>([] { linear(ones({2, 3}), ones({3})); }, {"linear", "2-D", "[3]"});
  expect_error<ShapeError>([] { linear(ones({2, 3}), ones({4, 5})); }, {"linear", "[2, 3]", "5", "[4, 5]"});
  expect_error<ShapeError>([] { linear(ones({2, 3}), ones({4, 3}), ones({3})); }, {"linear", "bias", "[3]", "[4]"});
}

TEST(Ops, LargeIndexAddAndScatterAddAddInSourceOrder) {
  // Sizes that take the CPU's parallel paths (owned destination ranges,
  // owned column blocks): every destination gets its terms in source order,
  // so the result equals a sequential float accumulation bit for bit, with
  // many repeated indices.
  std::mt19937_64 gen(17);
  auto rnd = [&](int64_t n) {
    std::normal_distribution<float> nd;
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = nd(gen);
    return v;
  };
  struct Case {
    int64_t outer, src_dim, idx_dim, inner;
  };
  for (const Case c : {Case{1, 1000, 200000, 1}, Case{3, 50, 400, 300}, Case{2, 7, 30000, 3}}) {
    SCOPED_TRACE(::testing::Message() << c.outer << "x" << c.src_dim << "x" << c.idx_dim << "x" << c.inner);
    std::uniform_int_distribution<int64_t> ui(0, c.src_dim - 1);
    std::vector<int64_t> idx(static_cast<size_t>(c.idx_dim));
    for (auto& i : idx) i = ui(gen);
    const auto x0 = rnd(c.outer * c.src_dim * c.inner), src = rnd(c.outer * c.idx_dim * c.inner);
    std::vector<float> want = x0;
    for (int64_t o = 0; o < c.outer; ++o)
      for (int64_t j = 0; j < c.idx_dim; ++j)
        for (int64_t i = 0; i < c.inner; ++i)
          want[static_cast<size_t>((o * c.src_dim + idx[static_cast<size_t>(j)]) * c.inner + i)] +=
              src[static_cast<size_t>((o * c.idx_dim + j) * c.inner + i)];
    const Tensor got = index_add(tensor(x0, {c.outer, c.src_dim, c.inner}), 1, tensor_i64(idx, {c.idx_dim}),
                                 tensor(src, {c.outer, c.idx_dim, c.inner}));
    EXPECT_EQ(got.to_vector(), want);
  }
  // scatter_add: per-element indices along dim 1 of [outer, idx_dim, inner].
  const int64_t outer = 2, src_dim = 300, idx_dim = 20000, inner = 2;
  std::uniform_int_distribution<int64_t> ui(0, src_dim - 1);
  std::vector<int64_t> idx(static_cast<size_t>(outer * idx_dim * inner));
  for (auto& i : idx) i = ui(gen);
  const auto x0 = rnd(outer * src_dim * inner), src = rnd(outer * idx_dim * inner);
  std::vector<float> want = x0;
  for (int64_t t = 0; t < outer * idx_dim * inner; ++t) {
    const int64_t i = t % inner, o = t / (idx_dim * inner);
    want[static_cast<size_t>((o * src_dim + idx[static_cast<size_t>(t)]) * inner + i)] += src[static_cast<size_t>(t)];
  }
  const Tensor got = scatter_add(tensor(x0, {outer, src_dim, inner}), 1, tensor_i64(idx, {outer, idx_dim, inner}),
                                 tensor(src, {outer, idx_dim, inner}));
  EXPECT_EQ(got.to_vector(), want);
}

TEST(Ops, CholeskyReconstructsAndRejectsMatricesThatAreNotPositiveDefinite) {
  // Random SPD matrices up to D = 24 (condition number ~ 10-100): L L^T
  // gives A back to float rounding of its entries (each dot product is
  // accumulated in double, so the error is ~ D ulp of |A|), L is lower
  // triangular with a positive diagonal.
  std::mt19937 gen(5);
  for (int64_t D : {1, 2, 7, 24}) {
    const Tensor B = random_tensor({3, D, D}, gen, -1.0f, 1.0f);
    const Tensor A = matmul(B, transpose(B, -1, -2)) + diag_embed(full({D}, 0.5f));
    const Tensor L = cholesky(A);
    const auto l = L.to_vector(), a = A.to_vector(), back = matmul(L, transpose(L, -1, -2)).to_vector();
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t i = 0; i < D; ++i)
        for (int64_t j = 0; j < D; ++j) {
          const size_t k = static_cast<size_t>((b * D + i) * D + j);
          if (j > i) EXPECT_EQ(l[k], 0.0f);
          if (j == i) EXPECT_GT(l[k], 0.0f);
          EXPECT_NEAR(back[k], a[k], 4e-6 * static_cast<double>(D) * (1.0 + std::fabs(a[k]))) << D << " " << k;
        }
  }
  // Only the lower triangle is read.
  const Tensor sym = tensor({4.0f, 2.0f, 2.0f, 3.0f}, {2, 2});
  const Tensor low = tensor({4.0f, 99.0f, 2.0f, 3.0f}, {2, 2});
  EXPECT_EQ(cholesky(sym).to_vector(), cholesky(low).to_vector());
  // Not positive definite: the error names the op, the shape and the pivot.
  expect_error<ValueError>([] { cholesky(tensor({1.0f, 2.0f, 2.0f, 1.0f}, {1, 2, 2})).to_vector(); },
                           {"cholesky", "[1, 2, 2]", "not positive definite", "-3"});
  expect_error<ShapeError>([] { cholesky(ones({2, 3})); }, {"cholesky", "[2, 3]"});
}
