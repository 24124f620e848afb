// Sequential plates (irange: Pyro's `for i in pyro.plate(name, N)`), default device:
// iteration order and values; per-iteration frames (counter, no dim) and
// the dims of vectorized plates around and inside them; subsampling (scale,
// indices, replay into the model, user indices); a clean handler stack after
// break and exceptions; equivalence with the vectorized plate (log_prob_sum,
// Trace_ELBO); TraceGraph_ELBO's dependency structure (exact surrogate
// gradients, SVI to the exact posterior); autoguides.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "fakes.hpp"
#include "gradcheck.hpp"
#include "ppl/autoguide.hpp"
#include "ppl/infer.hpp"

using namespace cuvi;
using namespace cuvi::testing;
namespace P = cuvi::poutine;

namespace {

void reset(uint64_t seed) {
  param_store().clear();
  set_seed(seed);
}

std::string nm(const char* prefix, int64_t i) { return std::string(prefix) + "_" + std::to_string(i); }

double grad_of(const std::string& param_name, size_t k = 0) {
  return param_store().unconstrained(param_name).grad().to_vector().at(k);
}

// A site outside every plate has no frames and scale 1, and a plate may take
// the name "locals" and dim -1 again: what a leaked sequential frame (its
// messenger left on the handler stack) would break.
void expect_clean_stack() {
  const Trace t = P::trace([] {
                    sample("free", dist::Normal(0.0f, 1.0f));
                    auto p = plate("locals", 2);
                    sample("in_plate", dist::Normal(0.0f, 1.0f));
                  }).get_trace();
  EXPECT_TRUE(t.site("free").frames.empty());
  EXPECT_FLOAT_EQ(t.site("free").scale, 1.0f);
  EXPECT_EQ(t.site("free").value.shape(), (Shape{}));
  ASSERT_EQ(t.site("in_plate").frames.size(), 1u);
  EXPECT_EQ(t.site("in_plate").frames[0].dim, -1);
  EXPECT_FLOAT_EQ(t.site("in_plate").scale, 1.0f);
  EXPECT_EQ(t.site("in_plate").value.shape(), (Shape{2}));
}

}  // namespace

// ---------------------------------------------------------------------------
// Frames, order, dims

TEST(SequentialPlate, IteratesInOrderWithPerIterationFrames) {
  reset(1);
  std::vector<int64_t> seen;
  auto model = [&] {
    for (int64_t i : irange("locals", 4)) {
      seen.push_back(i);
      sample(nm("x", i), dist::Normal(0.0f, 1.0f));
      auto inner = plate("inner", 3);  // the sequential plate takes no dim: this one gets -1
      sample(nm("y", i), dist::Normal(0.0f, 1.0f));
    }
    sample("after", dist::Normal(0.0f, 1.0f));
  };
  const Trace tr = P::trace(model).get_trace();
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3}));
  // Not subsampled: no index site, as Plate.
  EXPECT_EQ(tr.site_names(), (std::vector<std::string>{"x_0", "y_0", "x_1", "y_1", "x_2", "y_2", "x_3", "y_3",
                                                       "after"}));
  for (int64_t i = 0; i < 4; ++i) {
    const Site& x = tr.site(nm("x", i));
    ASSERT_EQ(x.frames.size(), 1u);
    const Frame& f = x.frames[0];
    EXPECT_EQ(f.name, "locals");
    EXPECT_FALSE(f.vectorized);
    EXPECT_EQ(f.counter, i);
    EXPECT_EQ(f.dim, 0);
    EXPECT_EQ(f.size, 4);
    EXPECT_EQ(f.subsample_size, 4);
    EXPECT_FLOAT_EQ(x.scale, 1.0f);
    EXPECT_EQ(x.fn->batch_shape(), (Shape{}));  // not broadcast along any dim
    EXPECT_EQ(x.value.shape(), (Shape{}));
    const Site& y = tr.site(nm("y", i));
    ASSERT_EQ(y.frames.size(), 2u);
    EXPECT_EQ(y.frames[0].name, "locals");  // outermost first
    EXPECT_EQ(y.frames[0].counter, i);
    EXPECT_EQ(y.frames[1].name, "inner");
    EXPECT_TRUE(y.frames[1].vectorized);
    EXPECT_EQ(y.frames[1].dim, -1);
    EXPECT_EQ(y.value.shape(), (Shape{3}));
  }
  EXPECT_TRUE(tr.site("after").frames.empty());
}

TEST(SequentialPlate, NestsWithVectorizedAndSequentialPlates) {
  reset(2);
  auto model = [] {
    auto outer = plate("outer", 2);  // dim -1
    for (int64_t i : irange("seq", 3)) {
      sample(nm("w", i), dist::Normal(0.0f, 1.0f));
      auto inner = plate("inner", 5);  // -1 is outer's; seq holds none: -2
      sample(nm("v", i), dist::Normal(0.0f, 1.0f));
      for (int64_t j : irange("seq2", 2)) sample(nm(nm("u", i).c_str(), j), dist::Normal(0.0f, 1.0f));
    }
  };
  const Trace tr = P::trace(model).get_trace();
  for (int64_t i = 0; i < 3; ++i) {
    const Site& w = tr.site(nm("w", i));
    ASSERT_EQ(w.frames.size(), 2u);
    EXPECT_EQ(w.frames[0].name, "outer");
    EXPECT_EQ(w.frames[0].dim, -1);
    EXPECT_EQ(w.frames[1].name, "seq");
    EXPECT_EQ(w.frames[1].counter, i);
    EXPECT_EQ(w.value.shape(), (Shape{2}));
    const Site& v = tr.site(nm("v", i));
    ASSERT_EQ(v.frames.size(), 3u);
    EXPECT_EQ(v.frames[2].name, "inner");
    EXPECT_EQ(v.frames[2].dim, -2);
    EXPECT_EQ(v.value.shape(), (Shape{5, 2}));
    for (int64_t j = 0; j < 2; ++j) {
      const Site& u = tr.site(nm(nm("u", i).c_str(), j));
      ASSERT_EQ(u.frames.size(), 4u);
      EXPECT_EQ(u.frames[1].name, "seq");
      EXPECT_EQ(u.frames[1].counter, i);
      EXPECT_EQ(u.frames[3].name, "seq2");
      EXPECT_FALSE(u.frames[3].vectorized);
      EXPECT_EQ(u.frames[3].counter, j);
      EXPECT_EQ(u.value.shape(), (Shape{5, 2}));
    }
  }
  // A user dim -1 inside a sequential plate collides with nothing.
  const Trace t2 = P::trace([] {
                     for (int64_t i : irange("seq", 2)) {
                       auto p = plate("pinned", 4, 0, -1);
                       sample(nm("a", i), dist::Normal(0.0f, 1.0f));
                     }
                   }).get_trace();
  EXPECT_EQ(t2.site("a_1").value.shape(), (Shape{4}));
}

// ---------------------------------------------------------------------------
// Subsampling and user indices

TEST(SequentialPlate, SubsampleScaleIndicesAndReplay) {
  reset(3);
  const int64_t N = 10, B = 4;
  std::vector<int64_t> guide_idx, model_idx;
  auto guide = [&] {
    guide_idx.clear();
    for (int64_t i : irange("locals", N, B)) {
      guide_idx.push_back(i);
      sample(nm("z", i), dist::Normal(0.0f, 1.0f));
    }
  };
  auto model = [&] {
    model_idx.clear();
    for (int64_t i : irange("locals", N, B)) {
      model_idx.push_back(i);
      Tensor z = sample(nm("z", i), dist::Normal(0.0f, 1.0f));
      sample(nm("x", i), dist::Normal(z, 1.0f), tensor(0.5f));
    }
  };
  std::set<std::vector<int64_t>> distinct;
  for (int rep = 0; rep < 5; ++rep) {
    const Trace gt = P::trace(guide).get_trace();
    ASSERT_EQ(guide_idx.size(), static_cast<size_t>(B));
    const std::set<int64_t> uniq(guide_idx.begin(), guide_idx.end());
    EXPECT_EQ(uniq.size(), static_cast<size_t>(B)) << "indices repeat";
    for (int64_t i : guide_idx) EXPECT_TRUE(i >= 0 && i < N) << i;
    // The index site, recorded once, before the iterations.
    EXPECT_EQ(gt.site_names().front(), "locals");
    EXPECT_TRUE(gt.site("locals").is_subsample);
    EXPECT_EQ(gt.site("locals").value.to_vector_i64(), guide_idx);
    for (size_t k = 0; k < guide_idx.size(); ++k) {
      const Site& z = gt.site(nm("z", guide_idx[k]));
      EXPECT_FLOAT_EQ(z.scale, 2.5f);  // N / B
      ASSERT_EQ(z.frames.size(), 1u);
      EXPECT_EQ(z.frames[0].counter, static_cast<int64_t>(k));
      EXPECT_EQ(z.frames[0].size, N);
      EXPECT_EQ(z.frames[0].subsample_size, B);
    }
    // Replayed into the model: the same indices, in the same order.
    const Trace mt = P::trace(P::replay(model, gt)).get_trace();
    EXPECT_EQ(model_idx, guide_idx);
    EXPECT_EQ(mt.site("locals").value.to_vector_i64(), guide_idx);
    for (int64_t i : guide_idx) {
      EXPECT_FLOAT_EQ(mt.site(nm("x", i)).scale, 2.5f);
      EXPECT_EQ(mt.site(nm("z", i)).value.item(), gt.site(nm("z", i)).value.item());
    }
    distinct.insert(guide_idx);
  }
  // Fresh draws each run (210 subsets, 5040 ordered draws).
  EXPECT_GT(distinct.size(), 1u);
  // Each index is drawn with probability B / N = 0.4: over 2000 runs the
  // frequency has SE sqrt(0.4 * 0.6 / 2000) = 0.011; 5 SE = 0.055.
  std::vector<int> count(static_cast<size_t>(N), 0);
  const int runs = 2000;
  for (int r = 0; r < runs; ++r)
    for (int64_t i : irange("locals", N, B)) ++count[static_cast<size_t>(i)];
  for (int64_t i = 0; i < N; ++i) EXPECT_NEAR(count[static_cast<size_t>(i)] / double(runs), 0.4, 0.055) << i;
}

TEST(SequentialPlate, UserIndices) {
  reset(4);
  std::vector<int64_t> seen;
  const Trace tr = P::trace([&] {
                     for (int64_t i : irange("locals", 10, tensor_i64({7, 2, 5}))) {
                       seen.push_back(i);
                       sample(nm("x", i), dist::Normal(0.0f, 1.0f));
                     }
                   }).get_trace();
  EXPECT_EQ(seen, (std::vector<int64_t>{7, 2, 5}));
  EXPECT_EQ(tr.site("locals").value.to_vector_i64(), seen);
  EXPECT_FLOAT_EQ(tr.site("x_7").scale, 10.0f / 3.0f);
  EXPECT_EQ(tr.site("x_5").frames[0].counter, 2);
  expect_error<IndexError>([] { irange("locals", 10, tensor_i64({3, 12})); }, {"'locals'", "12"});
  expect_error<ValueError>([] { irange("locals", 10, tensor({1.0f})); }, {"'locals'", "int64"});
  expect_error<ValueError>([] { irange("locals", 5, 6); }, {"'locals'", "subsample_size"});
  expect_error<ValueError>([] { irange("locals", -1); }, {"'locals'", "negative"});
}

// ---------------------------------------------------------------------------
// RAII: break, exceptions, re-iteration, misuse

TEST(SequentialPlate, BreakAndExceptionsLeaveTheStackClean) {
  reset(5);
  // Subsampled (scale 2) and with a vectorized plate open at the exit, so a
  // leaked frame would show in the scale, frames and dims of later sites.
  int n = 0;
  const Trace tr = P::trace([&] {
                     for (int64_t i : irange("locals", 6, 3)) {
                       auto inner = plate("inner", 2);
                       sample(nm("x", i), dist::Normal(0.0f, 1.0f));
                       if (++n == 2) break;
                     }
                     sample("after", dist::Normal(0.0f, 1.0f));
                   }).get_trace();
  EXPECT_EQ(n, 2);
  EXPECT_TRUE(tr.site("after").frames.empty());
  EXPECT_FLOAT_EQ(tr.site("after").scale, 1.0f);
  expect_clean_stack();

  // An exception thrown by the body.
  int k = 0;
  try {
    P::trace([&] {
      for (int64_t i : irange("locals", 6, 3)) {
        auto inner = plate("inner", 2);
        sample(nm("x", i), dist::Normal(0.0f, 1.0f));
        if (k++ == 1) throw std::runtime_error("boom");
      }
    }).get_trace();
    ADD_FAILURE() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
  EXPECT_EQ(k, 2);
  expect_clean_stack();

  // An exception from a site inside (a batch shape that does not fit).
  expect_error<ShapeError>(
      [] {
        for (int64_t i : irange("locals", 3)) {
          auto inner = plate("inner", 2);
          sample(nm("bad", i), dist::Normal(zeros({3}), 1.0f));
        }
      },
      {"'bad_0'", "'inner'"});
  expect_clean_stack();

  // One object iterated again after a break: the same indices, counters from 0.
  IRange r = irange("again", 6, 3);
  std::vector<int64_t> first, second;
  for (int64_t i : r) {
    first.push_back(i);
    break;
  }
  EXPECT_FALSE(r.active());
  const Trace t2 = P::trace([&] {
                     for (int64_t i : r) {
                       second.push_back(i);
                       sample(nm("y", i), dist::Normal(0.0f, 1.0f));
                     }
                   }).get_trace();
  ASSERT_EQ(second.size(), 3u);
  EXPECT_EQ(second, r.indices().to_vector_i64());
  EXPECT_EQ(second[0], first[0]);
  for (size_t j = 0; j < 3; ++j)
    EXPECT_EQ(t2.site(nm("y", second[j])).frames[0].counter, static_cast<int64_t>(j));

  // Misuse: the object inside its own loop, and a name already in use.
  expect_error<ValueError>(
      [&] {
        for (int64_t i : r)
          for (int64_t j : r) (void)(i + j);
      },
      {"'again'", "already"});
  expect_error<ValueError>(
      [] {
        auto p = plate("c", 2);
        for (int64_t i : irange("c", 3)) (void)i;
      },
      {"'c'", "already active"});
  expect_error<ValueError>(
      [] {
        for (int64_t i : irange("c", 3)) {
          auto p = plate("c", 2);
          (void)i;
        }
      },
      {"'c'", "already active"});
  expect_clean_stack();
  EXPECT_FALSE(r.active());
}

// ---------------------------------------------------------------------------
// Equivalence with the vectorized plate

// mu ~ N(0.5, 2); x_i ~ N(mu + off_i, 0.8) observed, i in a plate of N = 6,
// whole or at indices {4, 0, 3} (scale 6 / 3). The float64 reference is
// log N(mu; 0.5, 2) + scale * sum_i log N(x_i; mu + off_i, 0.8).
TEST(SequentialPlate, LogProbSumEqualsVectorizedPlate) {
  const std::vector<float> data = {0.3f, -1.2f, 2.0f, 0.7f, -0.4f, 1.5f};
  const std::vector<float> offs = {0.1f, -0.2f, 0.3f, 0.0f, 0.5f, -0.6f};
  const int64_t N = 6;
  for (const Tensor& sub : {Tensor(), tensor_i64({4, 0, 3})}) {
    reset(6);
    auto seq_model = [&] {
      Tensor mu = sample("mu", dist::Normal(0.5f, 2.0f));
      auto body = [&](int64_t i) {
        const size_t k = static_cast<size_t>(i);
        sample(nm("x", i), dist::Normal(mu + offs[k], 0.8f), tensor(data[k]));
      };
      if (sub.defined()) {
        for (int64_t i : irange("data", N, sub)) body(i);
      } else {
        for (int64_t i : irange("data", N)) body(i);
      }
    };
    auto vec_model = [&] {
      Tensor mu = sample("mu", dist::Normal(0.5f, 2.0f));
      auto obs = [&](const Plate& p) {
        sample("x", dist::Normal(mu + p.subsample(tensor(offs)), 0.8f), p.subsample(tensor(data)));
      };
      if (sub.defined()) {
        Plate p("data", N, sub);
        obs(p);
      } else {
        Plate p("data", N);
        obs(p);
      }
    };
    const Trace st = P::trace(seq_model).get_trace();
    const Trace vt = P::trace(P::replay(vec_model, st)).get_trace();  // the same mu
    const double mu = st.site("mu").value.item();
    ASSERT_EQ(vt.site("mu").value.item(), mu);
    std::vector<int64_t> idx;
    if (sub.defined()) idx = sub.to_vector_i64();
    else
      for (int64_t i = 0; i < N; ++i) idx.push_back(i);
    const double scale = double(N) / double(idx.size());
    double want = normal_lp(mu, 0.5, 2.0);
    for (int64_t i : idx)
      want += scale * normal_lp(data[static_cast<size_t>(i)], mu + offs[static_cast<size_t>(i)], 0.8);
    const double tol = 2e-5 * (1.0 + std::fabs(want));  // float32 sums of ~7 terms of size ~1
    EXPECT_NEAR(st.log_prob_sum().item(), want, tol) << "subsampled " << sub.defined();
    EXPECT_NEAR(vt.log_prob_sum().item(), want, tol) << "subsampled " << sub.defined();
  }
}

namespace {
// z_i ~ N(0, 1), x_i ~ N(z_i, 0.5) observed, for N = 4 pairs; the sequential
// and the vectorized form.
const std::vector<float> kPairData = {-1.5f, -0.5f, 0.5f, 2.0f};
constexpr int64_t kPairs = 4;

void pairs_model_seq() {
  for (int64_t i : irange("pairs", kPairs)) {
    Tensor z = sample(nm("z", i), dist::Normal(0.0f, 1.0f));
    sample(nm("x", i), dist::Normal(z, 0.5f), tensor(kPairData[static_cast<size_t>(i)]));
  }
}
void pairs_model_vec() {
  auto p = plate("pairs", kPairs);
  Tensor z = sample("z", dist::Normal(0.0f, 1.0f));
  sample("x", dist::Normal(z, 0.5f), tensor(kPairData));
}
const std::vector<float> kLocInit = {0.2f, -0.3f, 0.7f, 1.1f}, kScaleInit = {0.9f, 0.5f, 1.3f, 0.7f};
}  // namespace

// Trace_ELBO with reparameterised guides: the sequential and the vectorized
// program give the same loss and gradients where the values agree exactly:
// (a) a Delta guide (deterministic, reparameterised: the gradient flows
// through z into log p), (b) a Normal guide with both programs substituted
// with the same z. The difference is float32 summation order only.
TEST(SequentialPlateTraceELBO, SameLossAndGradsAsVectorizedPlate) {
  // (a) Delta guides.
  reset(7);
  auto delta_seq = [] {
    for (int64_t i : irange("pairs", kPairs))
      sample(nm("z", i), dist::Delta(param(nm("m", i), kLocInit[static_cast<size_t>(i)])));
  };
  auto delta_vec = [] {
    Tensor m = param("m", tensor(kLocInit));
    auto p = plate("pairs", kPairs);
    sample("z", dist::Delta(m));
  };
  infer::Trace_ELBO elbo;
  infer::ELBOResult rs = elbo.compute(pairs_model_seq, delta_seq);
  rs.surrogate.backward();
  infer::ELBOResult rv = elbo.compute(pairs_model_vec, delta_vec);
  rv.surrogate.backward();
  // Exact loss: -sum_i [log N(m_i; 0, 1) + log N(x_i; m_i, 0.5)].
  double want = 0;
  for (size_t i = 0; i < kPairs; ++i)
    want -= normal_lp(kLocInit[i], 0, 1) + normal_lp(kPairData[i], kLocInit[i], 0.5);
  EXPECT_NEAR(rs.loss.item(), want, 1e-5 * (1 + std::fabs(want)));
  EXPECT_NEAR(rv.loss.item(), rs.loss.item(), 1e-5 * (1 + std::fabs(want)));
  for (size_t i = 0; i < kPairs; ++i) {
    // d loss / d m_i = m_i + (m_i - x_i) / 0.25
    const double g = kLocInit[i] + (kLocInit[i] - kPairData[i]) / 0.25;
    EXPECT_NEAR(grad_of(nm("m", static_cast<int64_t>(i))), g, 1e-4 * (1 + std::fabs(g))) << i;
    EXPECT_NEAR(grad_of("m", i), g, 1e-4 * (1 + std::fabs(g))) << i;
  }

  // (b) Normal guides at the same substituted values.
  reset(8);
  auto normal_seq = [] {
    for (int64_t i : irange("pairs", kPairs)) {
      Tensor loc = param(nm("loc", i), kLocInit[static_cast<size_t>(i)]);
      Tensor sc = param(nm("scale", i), kScaleInit[static_cast<size_t>(i)], constraints::positive);
      sample(nm("z", i), dist::Normal(loc, sc));
    }
  };
  auto normal_vec = [] {
    Tensor loc = param("loc", tensor(kLocInit));
    Tensor sc = param("scale", tensor(kScaleInit), constraints::positive);
    auto p = plate("pairs", kPairs);
    sample("z", dist::Normal(loc, sc));
  };
  const std::vector<float> z = {-1.0f, 0.25f, 0.6f, 1.4f};
  std::map<std::string, Tensor> zs;
  for (size_t i = 0; i < kPairs; ++i) zs[nm("z", static_cast<int64_t>(i))] = tensor(z[i]);
  infer::ELBOResult ss = elbo.compute(pairs_model_seq, P::substitute(normal_seq, zs));
  ss.surrogate.backward();
  infer::ELBOResult sv = elbo.compute(pairs_model_vec, P::substitute(normal_vec, {{"z", tensor(z)}}));
  sv.surrogate.backward();
  want = 0;
  for (size_t i = 0; i < kPairs; ++i)
    want += normal_lp(z[i], kLocInit[i], kScaleInit[i]) - normal_lp(z[i], 0, 1) -
            normal_lp(kPairData[i], z[i], 0.5);
  EXPECT_NEAR(ss.loss.item(), want, 1e-5 * (1 + std::fabs(want)));
  EXPECT_NEAR(sv.loss.item(), ss.loss.item(), 1e-5 * (1 + std::fabs(want)));
  for (size_t i = 0; i < kPairs; ++i) {
    const std::string li = nm("loc", static_cast<int64_t>(i)), si = nm("scale", static_cast<int64_t>(i));
    EXPECT_NEAR(grad_of(li), grad_of("loc", i), 1e-5 * (1 + std::fabs(grad_of("loc", i)))) << i;
    EXPECT_NEAR(grad_of(si), grad_of("scale", i), 1e-5 * (1 + std::fabs(grad_of("scale", i)))) << i;
  }
}

// Vectorised particles: the particle plate goes left of the vectorized
// plates only (max_plate_nesting 1 here, the sequential plate counts for
// none), and sites in a sequential plate broadcast along it. With a Delta
// guide every particle is the same, so the loss equals one particle's.
TEST(SequentialPlateTraceELBO, VectorizedParticlesAndPlateNesting) {
  reset(9);
  auto model = [] {
    for (int64_t i : irange("groups", 2)) {
      Tensor z = sample(nm("z", i), dist::Normal(0.0f, 1.0f));
      auto p = plate("obs", 3);
      sample(nm("x", i), dist::Normal(z, 1.0f), tensor({0.1f * float(i), 0.5f, -0.3f}));
    }
  };
  auto guide = [] {
    for (int64_t i : irange("groups", 2)) sample(nm("z", i), dist::Delta(param(nm("m", i), 0.3f - float(i))));
  };
  const float one = infer::Trace_ELBO().compute(model, guide).loss.item();
  infer::Trace_ELBO vec({.num_particles = 4, .vectorize_particles = true});
  const float many = vec.compute(model, guide).loss.item();
  EXPECT_EQ(vec.inferred_max_plate_nesting(), 1);
  EXPECT_NEAR(many, one, 1e-5 * (1 + std::fabs(one)));
}

// ---------------------------------------------------------------------------
// TraceGraph_ELBO: iterations of a sequential plate are independent

namespace {
// pairs i = 0, 1 in irange "pairs", each with a vectorized plate "inner" of
// 2: z_i[j] ~ N(0, 1), x_i[j] ~ N(z_i[j], 1) observed; guide z_i ~
// NonReparamNormal(m_i, 1). Optionally a global site after the loop:
// g ~ N(0, 1), y ~ N(g, 1) observed at 0.8; guide g ~ NonReparamNormal(mg, 1).
const float kX[2][2] = {{1.5f, -0.2f}, {-0.7f, 0.9f}};
const float kM[2][2] = {{0.4f, -0.1f}, {-0.9f, 0.6f}};
constexpr float kMg = 0.25f, kY = 0.8f;

struct GraphCase {
  bool with_global;
  double z[2][2] = {}, g = 0;  // the guide's draws, recorded by the guide
  void model() const {
    for (int64_t i : irange("pairs", 2)) {
      auto p = plate("inner", 2);
      Tensor z_i = sample(nm("z", i), dist::Normal(0.0f, 1.0f));
      sample(nm("x", i), dist::Normal(z_i, 1.0f), tensor({kX[i][0], kX[i][1]}));
    }
    if (with_global) {
      Tensor gv = sample("g", dist::Normal(0.0f, 1.0f));
      sample("y", dist::Normal(gv, 1.0f), tensor(kY));
    }
  }
  void guide() {
    for (int64_t i : irange("pairs", 2)) {
      Tensor m = param(nm("m", i), tensor({kM[i][0], kM[i][1]}));
      auto p = plate("inner", 2);
      const auto v = sample(nm("z", i), NonReparamNormal(m, 1.0f)).to_vector();
      z[i][0] = v[0];
      z[i][1] = v[1];
    }
    if (with_global) g = sample("g", NonReparamNormal(param("mg", kMg), 1.0f)).item();
  }
  // Element (i, j)'s own cost log q - log p(z) - log p(x | z), and g's.
  double c(int i, int j) const {
    return normal_lp(z[i][j], kM[i][j], 1) - normal_lp(z[i][j], 0, 1) - normal_lp(kX[i][j], z[i][j], 1);
  }
  double cg() const {
    return with_global ? normal_lp(g, kMg, 1) - normal_lp(g, 0, 1) - normal_lp(kY, g, 1) : 0.0;
  }
};
}  // namespace

// The surrogate's gradient for m_i[j] is exactly (z - m) (1 + cost), where
// (z - m) = d log q / d m, the 1 from log q inside the loss (z is not
// reparameterised) and cost the score term's detached cost. TraceGraph_ELBO
// (Pyro's dense graph): cost of z_i[j] = c_ij (its own element of its own
// iteration; "inner" keeps elements apart) + c_g, g coming after the loop in
// the guide (a descendant of every z_i) with y its child in the model;
// iteration 1-i is left out. Trace_ELBO ignores sequential plates, as
// Pyro's: cost = c_0j + c_1j + c_g. The float64 reference uses the draws the
// guide recorded; the tolerance is float32 rounding of costs of size ~1-5.
// Each case also checks that leaving out the other iteration makes a
// difference far above the tolerance (the test has the power to fail).
TEST(SequentialPlateTraceGraph, ScoreCostLeavesOutOtherIterations) {
  for (bool with_global : {false, true}) {
    for (bool graph : {true, false}) {
      for (uint64_t seed : {11u, 12u, 13u}) {
        reset(seed);
        GraphCase gc{with_global};
        const infer::Program model = [&] { gc.model(); };
        const infer::Program guide = [&] { gc.guide(); };
        const infer::TraceGraph_ELBO tg({.use_decaying_avg_baseline = false});
        infer::ELBOResult r = graph ? tg.compute(model, guide) : infer::Trace_ELBO().compute(model, guide);
        r.surrogate.backward();
        const std::string what = std::string(graph ? "TraceGraph" : "Trace") + " global " +
                                 std::to_string(with_global) + " seed " + std::to_string(seed);
        double loss = gc.cg();
        for (int i = 0; i < 2; ++i)
          for (int j = 0; j < 2; ++j) loss += gc.c(i, j);
        EXPECT_NEAR(r.loss.item(), loss, 1e-5 * (1 + std::fabs(loss))) << what;
        for (int i = 0; i < 2; ++i)
          for (int j = 0; j < 2; ++j) {
            const double other = gc.c(1 - i, j);
            const double cost = gc.c(i, j) + gc.cg() + (graph ? 0.0 : other);
            const double dm = gc.z[i][j] - kM[i][j];
            const double want = dm * (1 + cost);
            const double tol = 2e-5 * (1 + std::fabs(dm) * (1 + std::fabs(cost)));
            EXPECT_NEAR(grad_of(nm("m", i), static_cast<size_t>(j)), want, tol)
                << what << " i " << i << " j " << j;
            // The two estimators differ by dm * other, which is large.
            EXPECT_GT(std::fabs(dm * other), 50 * tol) << what << " i " << i << " j " << j << " (test power)";
          }
        if (with_global) {
          // g's cost: its own terms and y (both graphs; Trace_ELBO: everything).
          double cost = gc.cg();
          if (!graph)
            for (int i = 0; i < 2; ++i)
              for (int j = 0; j < 2; ++j) cost += gc.c(i, j);
          const double want = (gc.g - kMg) * (1 + cost);
          const double tol = 2e-5 * (1 + std::fabs(gc.g - kMg) * (1 + std::fabs(cost)));
          EXPECT_NEAR(grad_of("mg"), want, tol) << what;
        }
      }
    }
  }
}

// SVI acceptance: N = 4 independent Normal-Normal pairs written with irange
// (z_i ~ N(0, 1), x_i ~ N(z_i, 0.5)), a non-reparameterised mean-field
// Normal guide, TraceGraph_ELBO with its decaying-average baseline. The
// exact posterior of each z_i: precision 1 + 1 / 0.25 = 5, so
// mean 4 x_i / 5 = 0.8 x_i and sd 1 / sqrt(5) (log sd -0.8047); the guide
// family contains it, so the optimum is exact. The guide starts at loc 0,
// log sd 0 (errors up to 1.6 and 0.8). Score-function gradients are noisy:
// the iterates jitter around the optimum with Adam at lr 0.01; averaged over
// the last 2000 of 6000 steps, the errors measured over seeds 14, 21, 33, 47
// (16 pairs) were at most 0.015 on means and 0.023 on log sds (spread
// ~0.01). The bound 0.05 on both (0.11 posterior sd on means) is ~5x that
// spread, and far below the starting errors (0.4 to 1.6 on means, 0.8 on
// log sds).
TEST(SequentialPlateTraceGraph, NormalNormalPairsConvergeToExactPosterior) {
  reset(14);
  auto guide = [] {
    for (int64_t i : irange("pairs", kPairs)) {
      Tensor loc = param(nm("loc", i), 0.0f);
      Tensor log_sd = param(nm("log_sd", i), 0.0f);
      sample(nm("z", i), NonReparamNormal(loc, exp(log_sd)));
    }
  };
  infer::SVI svi(pairs_model_seq, guide, optim::Adam({.lr = 0.01f}), infer::TraceGraph_ELBO());
  const int steps = 6000, avg = 2000;
  // The averages are summed where the params live and read once (on a GPU,
  // a read per step and param was 16000 waits). Float sums of 2000 terms of
  // size <= 2 are within ~3e-4 of the mean, far inside the 0.05 bounds.
  std::vector<Tensor> loc_sum(kPairs), log_sd_sum(kPairs);
  auto add = [](Tensor& acc, const Tensor& v) { acc = acc.defined() ? acc + v.detach() : v.detach().clone(); };
  for (int k = 0; k < steps; ++k) {
    svi.step();
    if (k >= steps - avg)
      for (size_t i = 0; i < kPairs; ++i) {
        add(loc_sum[i], param_store().get(nm("loc", static_cast<int64_t>(i))));
        add(log_sd_sum[i], param_store().get(nm("log_sd", static_cast<int64_t>(i))));
      }
  }
  std::vector<double> loc(kPairs), log_sd(kPairs);
  for (size_t i = 0; i < kPairs; ++i) {
    loc[i] = static_cast<double>(loc_sum[i].item()) / avg;
    log_sd[i] = static_cast<double>(log_sd_sum[i].item()) / avg;
  }
  const double post_log_sd = -0.5 * std::log(5.0);
  for (size_t i = 0; i < kPairs; ++i) {
    EXPECT_NEAR(loc[i], 0.8 * kPairData[i], 0.05) << "pair " << i;
    EXPECT_NEAR(log_sd[i], post_log_sd, 0.05) << "pair " << i;
  }
  // Each z_i has its own baseline.
  EXPECT_TRUE(param_store().contains(infer::TraceGraph_ELBO::baseline_param_name("z_3")));
}

// ---------------------------------------------------------------------------
// Autoguides

TEST(SequentialPlateAutoGuide, AutoNormalFollowsUnsubsampledIterations) {
  reset(15);
  infer::AutoNormal guide(pairs_model_seq);
  infer::SVI svi(pairs_model_seq, guide, optim::Adam({.lr = 0.02f}), infer::Trace_ELBO());
  svi.step();
  for (int64_t i = 0; i < kPairs; ++i) EXPECT_TRUE(param_store().contains("AutoNormal.locs." + nm("z", i)));
  // The guide's sites carry the model's frames (the counter included).
  const Trace gt = P::trace(guide).get_trace();
  ASSERT_EQ(gt.site("z_2").frames.size(), 1u);
  EXPECT_FALSE(gt.site("z_2").frames[0].vectorized);
  EXPECT_EQ(gt.site("z_2").frames[0].counter, 2);
  EXPECT_EQ(gt.site("z_2").value.shape(), (Shape{}));

  // Subsampled, the sites change from step to step: refused, naming both.
  auto sub_model = [] {
    for (int64_t i : irange("pairs", kPairs, 2)) sample(nm("w", i), dist::Normal(0.0f, 1.0f));
  };
  reset(16);
  infer::AutoNormal sub_guide(sub_model);
  expect_error<ValueError>([&] { sub_guide(); }, {"'pairs'", "sequential"});
}
