// Row-sparse gradients of leaves (index_select with sparse_grad, which a
// subsampled plate uses for the rows of an event_dim param) and the
// optimizers that update only those rows: SGD without momentum and weight
// decay and Adagrad without weight decay (bit for bit the dense update), and
// SparseAdam (torch.optim.SparseAdam's lazy semantics, against a float64
// reference). Runs on the default device (cpu, and cuda:0 in the gpu suite).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/autoguide.hpp"
#include "ppl/infer.hpp"
#include "ppl/optim.hpp"
#include "ppl/poutine.hpp"

using namespace cuvi;
using namespace cuvi::testing;
namespace P = cuvi::poutine;

namespace {

std::vector<float> normals(std::mt19937_64& gen, int64_t n) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(gen);
  return v;
}

std::vector<int64_t> random_rows(std::mt19937_64& gen, int64_t n, int64_t k, bool repeats) {
  std::vector<int64_t> rows;
  if (repeats) {
    std::uniform_int_distribution<int64_t> u(0, n - 1);
    for (int64_t i = 0; i < k; ++i) rows.push_back(u(gen));
    rows.push_back(rows.front());  // at least one repeat
    return rows;
  }
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = i;
  std::shuffle(perm.begin(), perm.end(), gen);
  return {perm.begin(), perm.begin() + k};
}

// A leaf of `shape` and a gradient through k rows of dim d (sum(w * rows)).
struct Case {
  Shape shape;
  int64_t dim;
  std::vector<float> init;
  std::vector<std::vector<int64_t>> takes;  // one index list per index_select
  std::vector<std::vector<float>> weights;
};

Case make_case(std::mt19937_64& gen, const Shape& shape, int64_t dim, int ntakes, int64_t k, bool repeats) {
  Case c{shape, dim, normals(gen, shape_numel(shape)), {}, {}};
  for (int t = 0; t < ntakes; ++t) {
    c.takes.push_back(random_rows(gen, shape[static_cast<size_t>(dim)], k, repeats));
    Shape ws = shape;
    ws[static_cast<size_t>(dim)] = static_cast<int64_t>(c.takes.back().size());
    c.weights.push_back(normals(gen, shape_numel(ws)));
  }
  return c;
}

// Runs backward of sum_t sum(w_t * index_select(leaf, dim, idx_t, sparse)).
void backprop(const Case& c, const Tensor& leaf, bool sparse, bool distinct_flag = false) {
  Tensor loss = scalar_tensor(0.0f);
  for (size_t t = 0; t < c.takes.size(); ++t) {
    Tensor idx = tensor_i64(c.takes[t], {static_cast<int64_t>(c.takes[t].size())});
    idx.impl()->distinct_indices = distinct_flag;
    Shape ws = c.shape;
    ws[static_cast<size_t>(c.dim)] = idx.numel();
    loss = loss + sum(index_select(leaf, c.dim, idx, sparse) * tensor(c.weights[t], ws));
  }
  loss.backward();
}

Tensor leaf_of(const Case& c) {
  Tensor p = tensor(c.init, c.shape);
  p.requires_grad_();
  return p;
}

}  // namespace

TEST(RowGrads, LeafGetsPartsAndGradIsTheDenseSumBitForBit) {
  std::mt19937_64 gen(11);
  for (int64_t dim : {0, 1}) {
    for (bool repeats : {false, true}) {
      const Case c = make_case(gen, {37, 5, 3}, dim, 2, dim == 0 ? 9 : 3, repeats);
      Tensor sp = leaf_of(c), de = leaf_of(c);
      backprop(c, sp, true);
      backprop(c, de, false);
      ASSERT_EQ(sp.row_grads().size(), 2u) << "dim " << dim;
      EXPECT_EQ(sp.row_grads()[0].dim, dim);
      EXPECT_TRUE(de.row_grads().empty());
      EXPECT_EQ(sp.grad().to_vector(), de.grad().to_vector()) << "dim " << dim << " repeats " << repeats;
      EXPECT_TRUE(sp.row_grads().empty());  // grad() summed them in
    }
  }
}

TEST(RowGrads, OnlyLeavesGetParts) {
  Tensor leaf = tensor({1.0f, 2.0f, 3.0f, 4.0f}, {4});
  leaf.requires_grad_();
  Tensor y = leaf * 2.0f;  // not a leaf: the ordinary dense path
  sum(index_select(y, 0, tensor_i64({1, 3}), true)).backward();
  EXPECT_TRUE(leaf.row_grads().empty());
  EXPECT_EQ(leaf.grad().to_vector(), (std::vector<float>{0.0f, 2.0f, 0.0f, 2.0f}));
  leaf.zero_grad();
  sum(index_select(leaf, 0, tensor_i64({1, 3}), true)).backward();
  EXPECT_EQ(leaf.row_grads().size(), 1u);
  leaf.zero_grad();
  EXPECT_TRUE(leaf.row_grads().empty());
  EXPECT_FALSE(leaf.grad().defined());
}

TEST(RowGrads, CoalesceSumsRepeatedRowsInOrderAtTheirFirstPosition) {
  std::mt19937_64 gen(12);
  for (int64_t dim : {0, 1}) {
    // Many repeats: 300 terms over 7 rows, in two parts.
    const int64_t rows = 7, outer = dim == 0 ? 1 : 3, inner = 4;
    const Shape shape = dim == 0 ? Shape{rows, inner} : Shape{outer, rows, inner};
    std::vector<RowGrad> parts;
    std::vector<int64_t> all_idx;
    std::vector<std::vector<float>> vals;
    for (int t = 0; t < 2; ++t) {
      std::uniform_int_distribution<int64_t> u(0, rows - 1);
      std::vector<int64_t> idx;
      for (int i = 0; i < 150; ++i) idx.push_back(u(gen));
      Shape vs = shape;
      vs[static_cast<size_t>(dim)] = 150;
      vals.push_back(normals(gen, shape_numel(vs)));
      parts.push_back(RowGrad{dim, tensor_i64(idx, {150}), tensor(vals.back(), vs), false});
      all_idx.insert(all_idx.end(), idx.begin(), idx.end());
    }
    const RowGrad out = coalesce_row_grads(parts, rows);
    const std::vector<int64_t> got_rows = out.indices.to_vector_i64();
    const std::vector<float> got = out.values.to_vector();
    const int64_t m = static_cast<int64_t>(all_idx.size());
    ASSERT_EQ(static_cast<int64_t>(got_rows.size()), m);
    auto term = [&](int64_t o, int64_t pos, int64_t i) {  // value of position pos in the concatenation
      const int t = pos < 150 ? 0 : 1;
      const int64_t p = pos % 150;
      return vals[static_cast<size_t>(t)][static_cast<size_t>((o * 150 + p) * inner + i)];
    };
    std::map<int64_t, int64_t> first;
    for (int64_t j = 0; j < m; ++j) first.emplace(all_idx[static_cast<size_t>(j)], j);
    for (int64_t j = 0; j < m; ++j) {
      const int64_t r = all_idx[static_cast<size_t>(j)];
      const bool head = first[r] == j;
      EXPECT_EQ(got_rows[static_cast<size_t>(j)], head ? r : -1) << "position " << j;
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          float want = 0.0f;  // the run's terms in order of position, in float
          if (head)
            for (int64_t u = 0; u < m; ++u)
              if (all_idx[static_cast<size_t>(u)] == r) want += term(o, u, i);
          EXPECT_EQ(got[static_cast<size_t>((o * m + j) * inner + i)], want) << "dim " << dim << " position " << j;
        }
    }
  }
  // A single part marked distinct comes back as it is.
  RowGrad one{0, tensor_i64({2, 0}), tensor({1.0f, 2.0f}, {2}), true};
  const RowGrad same = coalesce_row_grads({one}, 3);
  EXPECT_EQ(same.indices.impl(), one.indices.impl());
}

namespace {

// Steps `opt` on a row-sparse leaf and a copy given the dense gradient, over
// several steps of random rows (repeats, two parts, dims 0 and 1); the two
// must stay bit for bit equal, as must the optimizer state.
void expect_rows_update_equals_dense(optim::Optimizer& sparse_opt, optim::Optimizer& dense_opt, uint64_t seed) {
  ASSERT_TRUE(sparse_opt.accepts_row_grads()) << sparse_opt.name();
  std::mt19937_64 gen(seed);
  // {rows, inner} beyond the CPU backend's parallel grain, and a dim-1 case.
  const std::vector<std::pair<Shape, int64_t>> shapes = {{{3000, 8}, 0}, {{4, 50, 3}, 1}};
  for (const auto& [shape, dim] : shapes) {
    const Case c0 = make_case(gen, shape, dim, 1, 1, false);
    Tensor sp = leaf_of(c0), de = leaf_of(c0);
    for (int step = 0; step < 4; ++step) {
      const int64_t k = dim == 0 ? 2500 : 20;
      const Case c = [&] {
        Case x = make_case(gen, shape, dim, step == 2 ? 2 : 1, k, step >= 2);
        x.init = c0.init;
        return x;
      }();
      backprop(c, sp, true, step < 2);  // steps 0, 1: one distinct part
      backprop(c, de, false);
      ASSERT_FALSE(sp.row_grads().empty());
      const Tensor dg = de.grad();
      de.zero_grad();
      de.set_grad(dg);
      sparse_opt.step({{"w", sp}});
      dense_opt.step({{"w", de}});
      const std::vector<float> a = sp.detach().to_vector(), b = de.detach().to_vector();
      if (step < 2) {
        ASSERT_EQ(a, b) << sparse_opt.name() << " step " << step;  // rows once each: the same sums
      } else {
        // A row repeated within or across parts: the coalesced sum adds its
        // terms in another order than the dense gradient (per part, then
        // parts); a few O(1) terms per row differ by a few ulps (~1e-6),
        // times lr and 4 steps: within 1e-5.
        for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5) << sparse_opt.name() << " step " << step;
      }
      sp.zero_grad();
      de.zero_grad();
    }
    const OptimizerState a = sparse_opt.state(), b = dense_opt.state();
    for (const auto& [buf, t] : a.tensors.at("w")) {
      const std::vector<float> x = t.to_vector(), y = b.tensors.at("w").at(buf).to_vector();
      for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], y[i], 1e-5) << buf;
    }
    sparse_opt.load_state(OptimizerState{});
    dense_opt.load_state(OptimizerState{});
  }
}

}  // namespace

TEST(RowGradOptimizers, SgdWithoutMomentumUpdatesRowsExactlyAsDense) {
  optim::SGD a({.lr = 0.1f}), b({.lr = 0.1f});
  expect_rows_update_equals_dense(a, b, 21);
  EXPECT_FALSE(optim::SGD({.lr = 0.1f, .momentum = 0.9f}).accepts_row_grads());
  EXPECT_FALSE(optim::SGD({.lr = 0.1f, .weight_decay = 0.1f}).accepts_row_grads());
}

TEST(RowGradOptimizers, AdagradUpdatesRowsExactlyAsDense) {
  optim::Adagrad a({.lr = 0.1f}), b({.lr = 0.1f});
  expect_rows_update_equals_dense(a, b, 22);
  EXPECT_FALSE(optim::Adagrad({.lr = 0.1f, .weight_decay = 0.1f}).accepts_row_grads());
  EXPECT_FALSE(optim::Adam().accepts_row_grads());
  // A schedule passes its optimizer's answer on.
  EXPECT_TRUE(optim::ExponentialLR(optim::SGD({.lr = 0.1f}), {.gamma = 0.9f}).accepts_row_grads());
}

TEST(RowGradOptimizers, SparseAdamIsLazyAdamAgainstFloat64) {
  // torch.optim.SparseAdam: rows with gradient get Adam's update with the
  // parameter's step count in the bias corrections; every other row and its
  // moments stay as they are. Tolerance: as test_optim.cpp's (O(1) values,
  // a few float32 roundings per update amplified at most ~3x by
  // 1 / sqrt(v)): 2e-5 after 5 steps; a row moved that should not have been
  // is off by ~lr = 0.05.
  constexpr double kTol = 2e-5;
  const double lr = 0.05, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  optim::SparseAdam opt({.lr = 0.05f});
  std::mt19937_64 gen(23);
  const int64_t n = 200, inner = 3;
  const Case c0 = make_case(gen, {n, inner}, 0, 1, 1, false);
  Tensor w = leaf_of(c0);
  std::vector<double> p(c0.init.begin(), c0.init.end()), m(p.size(), 0.0), v(p.size(), 0.0);
  for (int step = 1; step <= 5; ++step) {
    Case c = make_case(gen, {n, inner}, 0, step == 4 ? 2 : 1, 30, step >= 3);
    backprop(c, w, true, step < 3);
    // Reference: the summed gradient per touched row.
    std::map<int64_t, std::vector<double>> g;
    for (size_t t = 0; t < c.takes.size(); ++t)
      for (size_t j = 0; j < c.takes[t].size(); ++j) {
        auto& row = g[c.takes[t][j]];
        row.resize(static_cast<size_t>(inner), 0.0);
        for (int64_t i = 0; i < inner; ++i) row[static_cast<size_t>(i)] += c.weights[t][j * inner + i];
      }
    const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
    for (const auto& [r, gr] : g)
      for (int64_t i = 0; i < inner; ++i) {
        const size_t e = static_cast<size_t>(r * inner + i);
        m[e] = b1 * m[e] + (1 - b1) * gr[static_cast<size_t>(i)];
        v[e] = b2 * v[e] + (1 - b2) * gr[static_cast<size_t>(i)] * gr[static_cast<size_t>(i)];
        // torch's SparseAdam form: lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps).
        p[e] -= lr * std::sqrt(bc2) / bc1 * m[e] / (std::sqrt(v[e]) + eps);
      }
    opt.step({{"w", w}});
    w.zero_grad();
    const std::vector<float> got = w.detach().to_vector();
    const OptimizerState st = opt.state();
    const std::vector<float> gm = st.tensors.at("w").at("exp_avg").to_vector();
    const std::vector<float> gv = st.tensors.at("w").at("exp_avg_sq").to_vector();
    for (size_t e = 0; e < p.size(); ++e) {
      ASSERT_NEAR(got[e], p[e], kTol) << "step " << step << " element " << e;
      ASSERT_NEAR(gm[e], m[e], kTol) << "step " << step << " element " << e;
      ASSERT_NEAR(gv[e], v[e], kTol) << "step " << step << " element " << e;
    }
    EXPECT_EQ(st.scalars.at("w").at("step"), step);
  }
}

TEST(RowGradOptimizers, SparseAdamWithDenseGradientsIsTorchsAdamStep) {
  // A dense gradient gets every row updated, in torch SparseAdam's form of
  // the step (lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps)): bit for bit
  // ClippedAdam's form without clipping or decay.
  std::mt19937_64 gen(24);
  const Case c = make_case(gen, {50, 2}, 0, 1, 10, false);
  Tensor a = leaf_of(c), b = leaf_of(c);
  optim::SparseAdam sa({.lr = 0.02f});
  optim::ClippedAdam ca({.lr = 0.02f, .clip_norm = 1e30f, .lrd = 1.0f});
  for (int step = 0; step < 3; ++step) {
    backprop(c, a, true);
    a.grad();  // made dense
    backprop(c, b, false);
    sa.step({{"w", a}});
    ca.step({{"w", b}});
    a.zero_grad();
    b.zero_grad();
  }
  EXPECT_EQ(a.detach().to_vector(), b.detach().to_vector());
}

TEST(RowGradOptimizers, PartsAlongTwoDimsTakeTheDenseUpdate) {
  // Rows of one leaf taken along dim 0 and along dim 1 (two plates over a
  // [N, M] param): SparseAdam and SGD sum them into the dense gradient
  // (bit for bit the dense path), as a dense optimizer does.
  std::mt19937_64 gen(26);
  const Case c0 = make_case(gen, {12, 9}, 0, 1, 4, false);
  const Case c1 = make_case(gen, {12, 9}, 1, 1, 3, false);
  for (int which = 0; which < 2; ++which) {
    Tensor a = leaf_of(c0), b = leaf_of(c0);
    backprop(c0, a, true, true);
    backprop(c1, a, true, true);
    backprop(c0, b, false);
    backprop(c1, b, false);
    ASSERT_EQ(a.row_grads().size(), 2u);
    if (which == 0) {
      optim::SparseAdam x({.lr = 0.1f}), y({.lr = 0.1f});
      x.step({{"w", a}});
      y.step({{"w", b}});
    } else {
      optim::SGD x({.lr = 0.1f}), y({.lr = 0.1f});
      x.step({{"w", a}});
      y.step({{"w", b}});
    }
    EXPECT_EQ(a.detach().to_vector(), b.detach().to_vector()) << which;
  }
}

TEST(RowGradOptimizers, DenseOptimizersSumThePartsFirst) {
  // Adam given a leaf with row parts updates every row, as with the dense
  // gradient (bit for bit).
  std::mt19937_64 gen(25);
  const Case c = make_case(gen, {60, 2}, 0, 2, 10, true);
  Tensor a = leaf_of(c), b = leaf_of(c);
  optim::Adam oa({.lr = 0.02f}), ob({.lr = 0.02f});
  for (int step = 0; step < 3; ++step) {
    backprop(c, a, true);
    backprop(c, b, false);
    oa.step({{"w", a}});
    ob.step({{"w", b}});
    a.zero_grad();
    b.zero_grad();
  }
  EXPECT_EQ(a.detach().to_vector(), b.detach().to_vector());
}

namespace {

// Local-latent model: z_i ~ N(0, 1), x_i ~ N(z_i, 1) under a plate of n
// subsampled to b; the guide's per-datapoint loc and scale are event_dim
// params (row-sparse gradients) or the rows of the whole params taken by
// hand (dense gradients).
const int64_t kN = 60, kB = 8;
void local_model(const Tensor& x) {
  auto p = plate("data", kN, kB);
  Tensor z = sample("z", dist::Normal(0.0f, 1.0f));
  sample("x", dist::Normal(z, 1.0f), p.subsample(x));
}
void local_guide(const Tensor&, bool event_dim) {
  auto p = plate("data", kN, kB);
  Tensor loc, scale;
  if (event_dim) {
    loc = param("loc", [] { return zeros({kN}); }, constraints::real, 0);
    scale = param("scale", [] { return full({kN}, 0.5f); }, constraints::positive, 0);
  } else {
    loc = p.subsample(param("loc", [] { return zeros({kN}); }));
    scale = p.subsample(param("scale", [] { return full({kN}, 0.5f); }, constraints::positive));
  }
  sample("z", dist::Normal(loc, scale));
}

template <class Opt>
std::vector<float> run_local(const Opt& opt, bool event_dim, int steps) {
  fresh(31);
  std::vector<float> xs(static_cast<size_t>(kN));
  for (int64_t i = 0; i < kN; ++i) xs[static_cast<size_t>(i)] = -1.0f + 0.05f * static_cast<float>((i * 7) % kN);
  const Tensor data = tensor(xs, {kN});
  infer::SVI svi(local_model, [event_dim](const Tensor& x) { local_guide(x, event_dim); }, opt, infer::Trace_ELBO());
  std::vector<float> out;
  for (int i = 0; i < steps; ++i) out.push_back(svi.step(data).item());
  for (const char* name : {"loc", "scale"}) {
    const auto v = param_store().unconstrained(name).to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

}  // namespace

TEST(RowGradSVI, EventDimParamsGiveRowGradsToTheirLeaves) {
  fresh(32);
  const Tensor data = zeros({kN});
  Tensor loss;
  const Trace gt = P::trace([&] { local_guide(data, true); }).get_trace();
  const Trace mt = P::trace(P::replay([&] { local_model(data); }, gt)).get_trace();
  Tensor elbo = mt.log_prob_sum() - gt.log_prob_sum();
  (-elbo).backward();
  const Tensor loc = param_store().unconstrained("loc");
  ASSERT_EQ(loc.row_grads().size(), 1u);
  EXPECT_TRUE(loc.row_grads()[0].distinct);  // the plate's draw, without replacement
  EXPECT_EQ(loc.row_grads()[0].values.numel(), kB);
  EXPECT_EQ(loc.grad().numel(), kN);
}

TEST(RowGradSVI, SgdStepsOnEventDimParamsEqualTheDenseOnes) {
  // Row updates (event_dim params, O(b)) leave the store bit for bit where
  // the dense gradients of the hand-subsampled guide (O(n)) do.
  const auto fast = run_local(optim::SGD({.lr = 0.05f}), true, 6);
  const auto ref = run_local(optim::SGD({.lr = 0.05f}), false, 6);
  EXPECT_EQ(fast, ref);
  const auto fast_ag = run_local(optim::Adagrad({.lr = 0.1f}), true, 6);
  const auto ref_ag = run_local(optim::Adagrad({.lr = 0.1f}), false, 6);
  EXPECT_EQ(fast_ag, ref_ag);
}

TEST(RowGradSVI, SparseAdamLeavesRowsOutsideTheMinibatchAlone) {
  // After one step, exactly the b rows of the minibatch moved (loc starts
  // at 0); Adam moves none either on its first step (zero moments), but on
  // its second every row that was once in a minibatch keeps moving.
  const auto one = run_local(optim::SparseAdam({.lr = 0.05f}), true, 1);
  int moved = 0;
  for (int64_t i = 0; i < kN; ++i) moved += one[static_cast<size_t>(1 + i)] != 0.0f;
  EXPECT_EQ(moved, kB);
  // Over 3 steps, rows touched only at step 1 keep their step-1 value under
  // SparseAdam; with Adam they drift. Compare the number of rows whose
  // value differs between the two optimizers' runs: some, as the semantics
  // differ.
  const auto lazy = run_local(optim::SparseAdam({.lr = 0.05f}), true, 3);
  const auto dense = run_local(optim::Adam({.lr = 0.05f}), true, 3);
  int differ = 0;
  for (int64_t i = 0; i < kN; ++i) differ += lazy[static_cast<size_t>(3 + i)] != dense[static_cast<size_t>(3 + i)];
  EXPECT_GT(differ, 0);
}

TEST(RowGradSVI, NonFiniteRowGradientIsNamedAndNothingChanges) {
  // A finite loss whose row gradients are NaN: the model's factor(0 *
  // sqrt(z - z)) has value 0 and gradient 0 * inf with respect to z, hence
  // to the guide's loc and scale rows. The step names a param, and the
  // store, the optimizer state and the leaves' gradient parts are as before.
  fresh(33);
  const Tensor data = zeros({kN});
  bool poison = false;
  auto model = [&poison](const Tensor& x) {
    auto p = plate("data", kN, kB);
    Tensor z = sample("z", dist::Normal(0.0f, 1.0f));
    sample("x", dist::Normal(z, 1.0f), p.subsample(x));
    if (poison) factor("bad", sum(sqrt(z - z.detach()) * 0.0f));
  };
  auto guide = [](const Tensor& x) { local_guide(x, true); };
  infer::SVI svi(model, guide, optim::SparseAdam({.lr = 0.05f}), infer::Trace_ELBO(), {.check_finite = true});
  svi.step(data);
  const std::vector<float> loc0 = param_store().unconstrained("loc").to_vector();
  const std::vector<float> scale0 = param_store().unconstrained("scale").to_vector();
  const OptimizerState st0 = svi.optimizer().state();
  poison = true;
  expect_error<ValueError>([&] { svi.step(data); }, {"gradient of parameter '", "not finite"});
  EXPECT_EQ(param_store().unconstrained("loc").to_vector(), loc0);
  EXPECT_EQ(param_store().unconstrained("scale").to_vector(), scale0);
  EXPECT_TRUE(param_store().unconstrained("loc").row_grads().empty());
  const OptimizerState st1 = svi.optimizer().state();
  for (const char* name : {"loc", "scale"}) {
    EXPECT_EQ(st1.scalars.at(name).at("step"), st0.scalars.at(name).at("step"));
    EXPECT_EQ(st1.tensors.at(name).at("exp_avg").to_vector(), st0.tensors.at(name).at("exp_avg").to_vector());
  }
  poison = false;  // and the next good step goes on
  EXPECT_TRUE(std::isfinite(svi.step(data).item()));
}

TEST(RowGradSVI, SparseAdamStateSavesAndResumesExactly) {
  // 4 steps straight equal 2 steps, a save of store and optimizer state, a
  // load into a fresh optimizer, and 2 more steps.
  const auto straight = run_local(optim::SparseAdam({.lr = 0.05f}), true, 4);
  fresh(31);
  std::vector<float> xs(static_cast<size_t>(kN));
  for (int64_t i = 0; i < kN; ++i) xs[static_cast<size_t>(i)] = -1.0f + 0.05f * static_cast<float>((i * 7) % kN);
  const Tensor data = tensor(xs, {kN});
  auto guide = [](const Tensor& x) { local_guide(x, true); };
  std::vector<float> out;
  const std::string path = ::testing::TempDir() + "cuvi_sparse_adam_state.bin";
  {
    infer::SVI svi(local_model, guide, optim::SparseAdam({.lr = 0.05f}), infer::Trace_ELBO());
    for (int i = 0; i < 2; ++i) out.push_back(svi.step(data).item());
    const OptimizerState st = svi.optimizer().state();
    param_store().save(path, &st);
  }
  const RngState rng = get_rng_state();
  param_store().clear();
  OptimizerState st;
  param_store().load(path, &st);
  set_rng_state(rng);
  infer::SVI svi(local_model, guide, optim::SparseAdam({.lr = 0.05f}), infer::Trace_ELBO());
  svi.optimizer().load_state(st);
  for (int i = 0; i < 2; ++i) out.push_back(svi.step(data).item());
  for (const char* name : {"loc", "scale"}) {
    const auto v = param_store().unconstrained(name).to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  EXPECT_EQ(out, straight);
}

TEST(RowGradSVI, AutoNormalLocalLatentsTrainRowsOnly) {
  // AutoNormal declares its local params in the plate: with SparseAdam, a
  // step changes exactly the b rows of its minibatch (the second step, so
  // that every row has moments to decay under Adam's semantics).
  fresh(34);
  std::vector<float> xs(static_cast<size_t>(kN));
  for (int64_t i = 0; i < kN; ++i) xs[static_cast<size_t>(i)] = 0.1f * static_cast<float>(i % 7);
  const Tensor data = tensor(xs, {kN});
  infer::AutoNormal guide(local_model);
  infer::SVI svi(local_model, guide, optim::SparseAdam({.lr = 0.05f}), infer::Trace_ELBO());
  svi.step(data);
  const std::vector<float> before = param_store().unconstrained("AutoNormal.locs.z").to_vector();
  ASSERT_EQ(static_cast<int64_t>(before.size()), kN);
  svi.step(data);
  const std::vector<float> after = param_store().unconstrained("AutoNormal.locs.z").to_vector();
  int moved = 0;
  for (int64_t i = 0; i < kN; ++i) moved += after[static_cast<size_t>(i)] != before[static_cast<size_t>(i)];
  EXPECT_EQ(moved, kB);
}
