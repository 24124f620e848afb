// Effect handlers and plates (default device): trace, replay, condition, substitute,
// block, scale, mask, seed, their compositions; plate dims, broadcasting,
// subsampling (scales, indices, replay of indices, unbiasedness).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/poutine.hpp"

using namespace cuvi;
using namespace cuvi::testing;
namespace P = cuvi::poutine;

namespace {

// Made at each use, on the default device of the run (cpu or cuda:0).
Tensor obs_data() { return tensor({1.0f, 2.0f, 3.0f}); }

// p (param) -> x (latent) -> y (observed, in plate "data" of size 3).
void model() {
  Tensor p = param("p", 0.5f);
  Tensor x = sample("x", dist::Normal(p, 1.0f));
  auto pl = plate("data", 3);
  sample("y", dist::Normal(x, 1.0f), obs_data());
}

void guide() { sample("x", dist::Normal(3.0f, 0.1f)); }

}  // namespace

TEST(PoutineTrace, SitesInOrderWithFields) {
  fresh(1);
  Trace tr = P::trace(model).get_trace();
  EXPECT_EQ(tr.site_names(), (std::vector<std::string>{"p", "x", "y"}));
  const Site& p = tr.site("p");
  EXPECT_EQ(p.type, SiteType::kParam);
  EXPECT_FLOAT_EQ(p.value.item(), 0.5f);
  const Site& x = tr.site("x");
  EXPECT_EQ(x.type, SiteType::kSample);
  EXPECT_FALSE(x.is_observed);
  EXPECT_EQ(x.value.shape(), (Shape{}));
  EXPECT_FLOAT_EQ(x.scale, 1.0f);
  EXPECT_TRUE(x.frames.empty());
  const Site& y = tr.site("y");
  EXPECT_TRUE(y.is_observed);
  EXPECT_EQ(y.value.to_vector(), obs_data().to_vector());
  EXPECT_FLOAT_EQ(y.scale, 1.0f);
  ASSERT_EQ(y.frames.size(), 1u);
  EXPECT_EQ(y.frames[0].name, "data");
  EXPECT_EQ(y.frames[0].dim, -1);
  EXPECT_EQ(y.frames[0].size, 3);
  EXPECT_EQ(y.fn->batch_shape(), (Shape{3}));
  // log_prob_sum equals the manual sum.
  const double want = dist::Normal(0.5f, 1.0f).log_prob(x.value).item() +
                      sum(dist::Normal(x.value, 1.0f).log_prob(obs_data())).item();
  EXPECT_NEAR(tr.log_prob_sum().item(), want, 1e-5 * std::max(1.0, std::fabs(want)));
}

TEST(PoutineTrace, DuplicateSiteNameThrows) {
  fresh(2);
  auto dup = [] {
    sample("z", dist::Normal(0.0f, 1.0f));
    sample("z", dist::Normal(0.0f, 1.0f));
  };
  expect_error<ValueError>([&] { P::trace(dup).get_trace(); }, {"'z'"});
}

TEST(PoutineReplay, ModelReusesGuideValues) {
  fresh(3);
  Trace gt = P::trace(guide).get_trace();
  Trace mt = P::trace(P::replay(model, gt)).get_trace();
  EXPECT_EQ(mt.site("x").value.item(), gt.site("x").value.item());
  EXPECT_FALSE(mt.site("x").is_observed);
  EXPECT_EQ(mt.site("y").value.to_vector(), obs_data().to_vector());  // observed sites keep their data
}

TEST(PoutineCondition, ObservesSiteAndStrictNamesUnused) {
  fresh(4);
  Trace tr = P::trace(P::condition(model, {{"x", tensor(2.0f)}})).get_trace();
  EXPECT_TRUE(tr.site("x").is_observed);
  EXPECT_FLOAT_EQ(tr.site("x").value.item(), 2.0f);
  expect_error<ValueError>([] { P::condition(model, {{"nosuch", tensor(1.0f)}}, true)(); }, {"condition", "nosuch"});
  EXPECT_NO_THROW(P::condition(model, {{"nosuch", tensor(1.0f)}}, false)());
}

TEST(PoutineSubstitute, ReplacesParamAndStrictNamesUnused) {
  fresh(5);
  Trace tr = P::trace(P::substitute(model, {{"p", tensor(7.0f)}})).get_trace();
  EXPECT_FLOAT_EQ(tr.site("p").value.item(), 7.0f);
  expect_error<ValueError>([] { P::substitute(model, {{"ghost", tensor(1.0f)}}, true)(); }, {"substitute", "ghost"});
}

TEST(PoutineBlock, HideAndExpose) {
  fresh(6);
  Trace h = P::trace(P::block(model, {"x"})).get_trace();
  EXPECT_EQ(h.site_names(), (std::vector<std::string>{"p", "y"}));
  Trace e = P::trace(P::block(model, {}, {"x"})).get_trace();
  EXPECT_EQ(e.site_names(), (std::vector<std::string>{"x"}));
  Trace all = P::trace(P::block(model)).get_trace();
  EXPECT_TRUE(all.site_names().empty());
}

TEST(PoutineScale, MultipliesSiteScale) {
  fresh(7);
  Trace tr = P::trace(P::scale(model, 2.5f)).get_trace();
  EXPECT_FLOAT_EQ(tr.site("x").scale, 2.5f);
  EXPECT_FLOAT_EQ(tr.site("y").scale, 2.5f);
  Trace t2 = P::trace(P::scale(P::scale(model, 2.0f), 3.0f)).get_trace();
  EXPECT_FLOAT_EQ(t2.site("y").scale, 6.0f);
  expect_error<ValueError>([] { P::ScaleMessenger m(-1.0f); }, {"scale"});
}

TEST(PoutineMask, SetsMaskAndLogProbSumRespectsIt) {
  fresh(8);
  auto m2 = [] {
    auto pl = plate("data", 3);
    sample("y", dist::Normal(0.0f, 1.0f), obs_data());
  };
  Trace tr = P::trace(P::mask(m2, tensor({1.0f, 0.0f, 1.0f}))).get_trace();
  ASSERT_TRUE(tr.site("y").mask.defined());
  const auto lp = dist::Normal(0.0f, 1.0f).log_prob(obs_data()).to_vector();
  EXPECT_NEAR(tr.log_prob_sum().item(), lp[0] + lp[2], 1e-5);
  Trace off = P::trace(P::mask(m2, false)).get_trace();
  EXPECT_FLOAT_EQ(off.log_prob_sum().item(), 0.0f);
}

TEST(PoutineSeed, ReproducibleAndRestoresOuterRng) {
  fresh(9);
  auto draw = [] { return sample("x", dist::Normal(0.0f, 1.0f)).item(); };
  const float a = P::seed(draw, 42)();
  const float b = P::seed(draw, 42)();
  EXPECT_EQ(a, b);
  EXPECT_NE(a, P::seed(draw, 43)());
  set_seed(1);
  const float r1 = randn({}).item();
  set_seed(1);
  P::seed(draw, 42)();
  const float r2 = randn({}).item();
  EXPECT_EQ(r1, r2);
}

TEST(PoutineCompose, TraceOfReplayOfCondition) {
  fresh(10);
  Trace gt = P::trace(guide).get_trace();
  Tensor ydata = tensor({4.0f, 5.0f, 6.0f});
  Trace tr = P::trace(P::replay(P::condition(model, {{"y", ydata}}), gt)).get_trace();
  EXPECT_EQ(tr.site("x").value.item(), gt.site("x").value.item());
  EXPECT_TRUE(tr.site("y").is_observed);
  EXPECT_EQ(tr.site("y").value.to_vector(), ydata.to_vector());
}

TEST(PoutineCompose, BlockInsideScale) {
  fresh(11);
  Trace tr = P::trace(P::scale(P::block(model, {"x"}), 2.0f)).get_trace();
  EXPECT_EQ(tr.site_names(), (std::vector<std::string>{"p", "y"}));
  EXPECT_FLOAT_EQ(tr.site("y").scale, 2.0f);
}

TEST(Plate, AutomaticAndExplicitDims) {
  fresh(12);
  {
    auto a = plate("a", 3);
    EXPECT_EQ(a.dim(), -1);
    auto b = plate("b", 2);
    EXPECT_EQ(b.dim(), -2);
    auto c = plate("c", 4, 0, -4);
    EXPECT_EQ(c.dim(), -4);
    auto d = plate("d", 5);
    EXPECT_EQ(d.dim(), -3);
  }
  auto e = plate("e", 3);
  EXPECT_EQ(e.dim(), -1);  // freed again
}

TEST(Plate, DimCollisionNamesBothPlates) {
  fresh(13);
  auto a = plate("outer", 3);
  expect_error<ValueError>([] { auto b = plate("inner", 4, 0, -1); }, {"inner", "outer"});
}

TEST(Plate, BroadcastsSiteToPlateSizes) {
  fresh(14);
  auto m = [] {
    auto a = plate("a", 3);
    auto b = plate("b", 2);
    sample("z", dist::Normal(0.0f, 1.0f));
  };
  Trace tr = P::trace(m).get_trace();
  const Site& z = tr.site("z");
  EXPECT_EQ(z.value.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.fn->batch_shape(), (Shape{2, 3}));
  ASSERT_EQ(z.frames.size(), 2u);
  EXPECT_EQ(z.frames[0].name, "a");  // outermost first
  EXPECT_EQ(z.frames[1].name, "b");
}

TEST(Plate, BatchShapeMismatchNamesSiteAndPlate) {
  fresh(15);
  auto m = [] {
    auto a = plate("rows", 3);
    sample("w", dist::Normal(zeros({4}), 1.0f));
  };
  expect_error<ShapeError>([&] { P::trace(m).get_trace(); }, {"'w'", "'rows'"});
}

TEST(PlateSubsample, ScalesMultiply) {
  fresh(16);
  auto m = [] {
    auto a = plate("data", 100, 10);
    sample("u", dist::Normal(0.0f, 1.0f));
    auto b = plate("inner", 6, 3);
    sample("v", dist::Normal(0.0f, 1.0f));
  };
  Trace tr = P::trace(m).get_trace();
  EXPECT_FLOAT_EQ(tr.site("u").scale, 10.0f);
  EXPECT_FLOAT_EQ(tr.site("v").scale, 20.0f);
  EXPECT_EQ(tr.site("v").value.shape(), (Shape{3, 10}));
  Trace ts = P::trace(P::scale(m, 0.5f)).get_trace();
  EXPECT_FLOAT_EQ(ts.site("u").scale, 5.0f);
  EXPECT_FLOAT_EQ(ts.site("v").scale, 10.0f);
}

TEST(PlateSubsample, IndicesUniqueInRange) {
  fresh(17);
  std::vector<int64_t> idx;
  {
    auto a = plate("data", 100, 10);
    EXPECT_EQ(a.subsample_size(), 10);
    idx = a.indices().to_vector_i64();
  }
  ASSERT_EQ(idx.size(), 10u);
  std::set<int64_t> uniq(idx.begin(), idx.end());
  EXPECT_EQ(uniq.size(), 10u);
  for (int64_t i : idx) {
    EXPECT_GE(i, 0);
    EXPECT_LT(i, 100);
  }
}

// Diagnosed: Plate::enter runs apply_stack on the index site before drawing
// the indices, so TraceMessenger::postprocess records an undefined value.
TEST(PlateSubsample, IndexSiteRecordedInTrace) {
  fresh(17);
  std::vector<int64_t> idx;
  auto m = [&] {
    auto a = plate("data", 100, 10);
    idx = a.indices().to_vector_i64();
    sample("u", dist::Normal(0.0f, 1.0f));
  };
  Trace tr = P::trace(m).get_trace();
  ASSERT_EQ(idx.size(), 10u);
  std::set<int64_t> uniq(idx.begin(), idx.end());
  EXPECT_EQ(uniq.size(), 10u);
  for (int64_t i : idx) {
    EXPECT_GE(i, 0);
    EXPECT_LT(i, 100);
  }
  ASSERT_TRUE(tr.contains("data"));
  EXPECT_TRUE(tr.site("data").is_subsample);
  EXPECT_EQ(tr.site("data").value.to_vector_i64(), idx);
  // The index site carries no density.
  const double lp = sum(dist::Normal(0.0f, 1.0f).log_prob(tr.site("u").value)).item() * 10.0;
  EXPECT_NEAR(tr.log_prob_sum().item(), lp, 1e-4 * std::max(1.0, std::fabs(lp)));
}

TEST(PlateSubsample, SubsampleGathersRows) {
  fresh(18);
  Tensor data = arange(200).reshape({100, 2});
  auto a = plate("data", 100, 10, -1);
  const auto idx = a.indices().to_vector_i64();
  Tensor rows = a.subsample(data, 1);  // event dim 1: the plate indexes dim 0
  ASSERT_EQ(rows.shape(), (Shape{10, 2}));
  const auto rv = rows.to_vector();
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_FLOAT_EQ(rv[2 * i], 2.0f * idx[i]);
    EXPECT_FLOAT_EQ(rv[2 * i + 1], 2.0f * idx[i] + 1);
  }
}

TEST(PlateSubsample, ReplayGivesModelTheGuidesIndices) {
  fresh(18);
  Tensor data = arange(100).reshape({100, 1}) * 2.0f;
  std::vector<int64_t> gidx, midx;
  std::vector<float> rows;
  auto g = [&] {
    auto a = plate("data", 100, 10);
    gidx = a.indices().to_vector_i64();
    sample("z", dist::Normal(0.0f, 1.0f));
  };
  auto m = [&] {
    auto a = plate("data", 100, 10, -2);
    midx = a.indices().to_vector_i64();
    Tensor batch = a.subsample(data);
    rows = batch.to_vector();
    sample("z", dist::Normal(0.0f, 1.0f).expand({10, 1}));
  };
  Trace gt = P::trace(g).get_trace();
  // Draw something in between so that a fresh draw would differ.
  randn({5});
  P::trace(P::replay(m, gt)).get_trace();
  EXPECT_EQ(midx, gidx);
  ASSERT_EQ(rows.size(), 10u);
  for (size_t i = 0; i < 10; ++i) EXPECT_FLOAT_EQ(rows[i], 2.0f * static_cast<float>(midx[i]));
}

// Drawn subsample indices are marked pairwise distinct (a permutation's
// prefix), in the guide and, replayed, in the model, so index_select's
// backward may add without sorting; indices a user supplies are not marked
// (they may repeat). The gradient through a marked gather is the unmarked
// one's, bit for bit.
TEST(PlateSubsample, DrawnIndicesAreMarkedDistinct) {
  fresh(19);
  bool guide_marked = false, model_marked = false;
  auto g = [&] {
    auto a = plate("data", 1000, 50);
    guide_marked = a.indices().impl()->distinct_indices;
  };
  auto m = [&] {
    auto a = plate("data", 1000, 50);
    model_marked = a.indices().impl()->distinct_indices;
  };
  Trace gt = P::trace(g).get_trace();
  P::replay(m, gt)();
  EXPECT_TRUE(guide_marked);
  EXPECT_TRUE(model_marked);
  Plate user("user", 10, tensor_i64({3, 3, 1}));
  EXPECT_FALSE(user.indices().impl()->distinct_indices);

  auto a = plate("rows", 1000, 50);
  const Tensor marked = a.indices();
  const Tensor plain = marked.detach();  // the same values, unmarked
  ASSERT_FALSE(plain.impl()->distinct_indices);
  const Tensor w = randn({50, 3});
  auto grad_through = [&](const Tensor& idx) {
    Tensor x = zeros({1000, 3}).requires_grad_();
    sum(index_select(x, 0, idx) * w).backward();
    return x.grad().to_vector();
  };
  EXPECT_EQ(grad_through(marked), grad_through(plain));
}

TEST(PlateSubsample, MinibatchLogLikelihoodIsUnbiased) {
  fresh(19);
  const int N = 100, B = 10, R = 4000;
  std::mt19937 gen(77);
  Tensor data = random_tensor({N}, gen, -1.0f, 3.0f);
  auto m = [&] {
    Tensor mu = sample("mu", dist::Normal(0.0f, 1.0f));
    auto a = plate("data", N, B);
    sample("obs", dist::Normal(mu, 1.5f), a.subsample(data));
  };
  auto fixed = P::substitute(m, {{"mu", tensor(0.3f)}});
  const auto dv = data.to_vector();
  double full = -0.5 * 0.09 - 0.5 * std::log(2 * M_PI);  // the latent's prior term
  for (float x : dv) {
    const double z = (x - 0.3) / 1.5;
    full += -0.5 * z * z - std::log(1.5) - 0.5 * std::log(2 * M_PI);
  }
  std::vector<double> est;
  for (int r = 0; r < R; ++r) est.push_back(P::trace(fixed).get_trace().log_prob_sum().item());
  const cuvi::testing::McEstimate e = cuvi::testing::mc_estimate(est);  // SE = sample std / sqrt(4000)
  EXPECT_GT(e.se, 0.0);
  EXPECT_NEAR(e.mean, full, 5 * e.se);
}

TEST(PlateSubsample, UserSuppliedIndices) {
  fresh(20);
  Tensor data = arange(100) * 3.0f;
  Tensor ui = tensor_i64({3, 5, 7});
  std::vector<float> rows;
  auto m = [&] {
    Plate a("data", 100, ui);
    EXPECT_EQ(a.subsample_size(), 3);
    EXPECT_EQ(a.indices().to_vector_i64(), (std::vector<int64_t>{3, 5, 7}));
    rows = a.subsample(data).to_vector();
    sample("obs", dist::Normal(0.0f, 1.0f), a.subsample(data));
  };
  Trace tr = P::trace(m).get_trace();
  EXPECT_EQ(rows, (std::vector<float>{9.0f, 15.0f, 21.0f}));
  EXPECT_NEAR(tr.site("obs").scale, 100.0f / 3.0f, 1e-5);
  EXPECT_EQ(tr.site("data").value.to_vector_i64(), (std::vector<int64_t>{3, 5, 7}));
}

// Pyro lets one plate object open several `with` blocks; here exit() leaves
// a Plate and scope() re-enters it with the same indices and one index site.
TEST(PlateSubsample, ReenteredPlateKeepsIndicesAndScale) {
  fresh(21);
  Tensor data = arange(50) * 2.0f;
  std::vector<int64_t> first, second;
  std::vector<float> rows;
  auto m = [&] {
    auto p = plate("data", 50, 5);
    first = p.indices().to_vector_i64();
    sample("local", dist::Normal(0.0f, 1.0f));
    p.exit();
    EXPECT_FALSE(p.active());
    sample("global", dist::Normal(0.0f, 1.0f));
    {
      auto in = p.scope();
      EXPECT_TRUE(p.active());
      second = p.indices().to_vector_i64();
      rows = p.subsample(data).to_vector();
      sample("obs", dist::Normal(0.0f, 1.0f), p.subsample(data));
    }
    EXPECT_FALSE(p.active());
    sample("after", dist::Normal(0.0f, 1.0f));
  };
  Trace tr = P::trace(m).get_trace();
  EXPECT_EQ(tr.site_names(), (std::vector<std::string>{"data", "local", "global", "obs", "after"}));
  EXPECT_EQ(first, second);
  ASSERT_EQ(rows.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_FLOAT_EQ(rows[i], 2.0f * static_cast<float>(first[i]));
  EXPECT_EQ(tr.site("local").value.shape(), (Shape{5}));
  EXPECT_EQ(tr.site("obs").value.shape(), (Shape{5}));
  EXPECT_EQ(tr.site("global").value.shape(), (Shape{}));
  EXPECT_EQ(tr.site("after").value.shape(), (Shape{}));
  EXPECT_NEAR(tr.site("local").scale, 10.0f, 1e-6);
  EXPECT_NEAR(tr.site("obs").scale, 10.0f, 1e-6);
  EXPECT_FLOAT_EQ(tr.site("global").scale, 1.0f);
  ASSERT_EQ(tr.site("obs").frames.size(), 1u);
  EXPECT_EQ(tr.site("obs").frames[0].indices.to_vector_i64(), first);
}

TEST(PlateSubsample, ReenteringAnActivePlateThrows) {
  fresh(22);
  auto p = plate("data", 10, 2);
  expect_error<ValueError>([&] { auto s = p.scope(); }, {"plate 'data'", "already active"});
  EXPECT_TRUE(p.active());  // the failed re-entry changed nothing
  p.exit();
  p.exit();  // idempotent
  { auto s = p.scope(); EXPECT_TRUE(p.active()); }
  EXPECT_FALSE(p.active());
}

// An unset dim is allocated at each entry: the rightmost dim free then.
TEST(Plate, ReentryAllocatesTheFreeDim) {
  fresh(23);
  auto a = plate("a", 3);
  EXPECT_EQ(a.dim(), -1);
  a.exit();
  auto b = plate("b", 4);
  EXPECT_EQ(b.dim(), -1);
  {
    auto s = a.scope();
    EXPECT_EQ(a.dim(), -2);
  }
  b.exit();
  auto s = a.scope();
  EXPECT_EQ(a.dim(), -1);
}

// A guide that draws the minibatch and a model that uses it in two blocks:
// both blocks see the guide's indices through replay.
TEST(PlateSubsample, ReenteredPlateReplaysGuideIndices) {
  fresh(24);
  std::vector<int64_t> gidx, m1, m2;
  auto g = [&] {
    auto a = plate("data", 100, 7);
    gidx = a.indices().to_vector_i64();
  };
  auto m = [&] {
    auto a = plate("data", 100, 7);
    m1 = a.indices().to_vector_i64();
    sample("z", dist::Normal(0.0f, 1.0f));
    a.exit();
    auto again = a.scope();
    m2 = a.indices().to_vector_i64();
    sample("x", dist::Normal(0.0f, 1.0f), zeros({7}));
  };
  Trace gt = P::trace(g).get_trace();
  randn({3});
  Trace mt = P::trace(P::replay(m, gt)).get_trace();
  EXPECT_EQ(m1, gidx);
  EXPECT_EQ(m2, gidx);
  EXPECT_EQ(mt.site("data").value.to_vector_i64(), gidx);
}

TEST(PoutineTrace, FormatShapesListsEverySiteWithItsShapes) {
  fresh(30);
  auto ok = [] {
    param("w", [] { return ones({3}); }, constraints::positive);
    Tensor z = sample("z", dist::Normal(0.0f, 1.0f));
    auto p = plate("data", 10, 4);
    Tensor loc = param("loc", [] { return zeros({10}); }, constraints::real, 0);
    sample("x", dist::Normal(loc + z, 1.0f), ones({4}));
    sample("v", dist::Normal(zeros({4, 2}), 1.0f).to_event(1));
  };
  const std::string t = P::trace(ok).get_trace().format_shapes(true);
  // Every site and line kind appears, with its shapes split batch | event.
  for (const char* want : {"Trace Shapes:", "Param Sites:", "Sample Sites:", "w", "loc", "data", "plate", "4 of 10",
                           "dist", "value", "log_prob", "Normal", "(observed)", "plates: data dim -1 size 4/10",
                           "4 | 2", "Independent(Normal)"})
    EXPECT_NE(t.find(want), std::string::npos) << want << " not in\n" << t;
  // z is a scalar site: an empty batch and event shape.
  EXPECT_NE(t.find(" | \n"), std::string::npos) << t;
  // The lines for x: its dist and value are [4] | [].
  EXPECT_NE(t.find("4 | "), std::string::npos) << t;
  // The per-datapoint param lists the plate that took its rows.
  EXPECT_NE(t.find("param"), std::string::npos) << t;
}

// Pyro's LocScaleReparam through poutine::reparam: the site becomes a
// deterministic function of a new "<name>_decentered" site, and the joint
// density of the new latents is the transformed one.
TEST(Reparam, LocScaleDecentersASite) {
  fresh(3);
  auto model = [] {
    Tensor y = sample("y", dist::Normal(0.0f, 3.0f));
    auto p = plate("data", 4);
    return sample("x", dist::Normal(y * 0.5f + 1.0f, exp(y * 0.5f)));  // Neal's funnel, shifted
  };
  // Non-centred: x_decentered ~ N(0, 1), x = loc + scale * x_decentered, bit for bit.
  const Tensor v = tensor({0.3f, -1.2f, 0.8f, 2.0f});
  auto m0 = P::substitute(P::reparam(model, {{"x", {.centered = 0.0f}}}), {{"y", tensor(0.7f)}, {"x_decentered", v}});
  const Trace t0 = P::trace(m0).get_trace();
  EXPECT_EQ(t0.site_names(), (std::vector<std::string>{"y", "x_decentered", "x"}));
  EXPECT_TRUE(t0.site("x").is_observed);
  EXPECT_FALSE(t0.site("x_decentered").is_observed);
  EXPECT_EQ(t0.site("x_decentered").frames.size(), 1u);
  const float loc = 0.7f * 0.5f + 1.0f, scale = std::exp(0.7f * 0.5f);
  const std::vector<float> xv = t0.site("x").value.to_vector(), vv = v.to_vector();
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(xv[i], loc + scale * vv[i], 1e-6);
  // The joint density: N(y | 0, 3) + sum N(x_decentered | 0, 1) (x's Delta adds 0).
  double want = -0.5 * std::log(2 * M_PI) - std::log(3.0) - 0.5 * 0.7 * 0.7 / 9.0;
  for (float u : vv) want += -0.5 * std::log(2 * M_PI) - 0.5 * u * u;
  EXPECT_NEAR(t0.log_prob_sum().item(), want, 1e-5);
  // Centred (c = 1): the new site is the old one.
  auto m1 = P::substitute(P::reparam(model, {{"x", {.centered = 1.0f}}}), {{"y", tensor(0.7f)}, {"x_decentered", v}});
  const Trace t1 = P::trace(m1).get_trace();
  const std::vector<float> x1 = t1.site("x").value.to_vector();
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(x1[i], vv[i], 1e-6);
  // Learned centeredness: a param in (0, 1) starting at 0.5.
  auto ml = P::substitute(P::reparam(model, {{"x", {}}}), {{"y", tensor(0.7f)}, {"x_decentered", v}});
  const Trace tl = P::trace(ml).get_trace();
  EXPECT_TRUE(param_store().contains("x_centered"));
  EXPECT_FLOAT_EQ(param_store().get("x_centered").item(), 0.5f);
  const std::vector<float> xl = tl.site("x").value.to_vector();
  for (size_t i = 0; i < 4; ++i)
    EXPECT_NEAR(xl[i], loc + std::sqrt(scale) * (vv[i] - 0.5f * loc), 1e-5);
  // Not a location-scale family, or observed: errors naming the site.
  auto bad = P::reparam([] { sample("g", dist::Gamma(2.0f, 1.0f)); }, {{"g", {.centered = 0.0f}}});
  expect_error<ValueError>([&] { bad(); }, {"'g'", "Gamma", "LocScaleReparam"});
  auto obs = P::reparam([] { sample("o", dist::Normal(0.0f, 1.0f), tensor(0.5f)); }, {{"o", {}}});
  expect_error<ValueError>([&] { obs(); }, {"'o'", "observed"});
}

// Gumbel and Logistic decenter as the others: x_decentered ~ F(0, 1) when
// non-centred, x = loc + scale x_decentered, the joint density F(0, 1)'s.
TEST(Reparam, LocScaleCoversGumbelAndLogistic) {
  const Tensor v = tensor({0.3f, -1.2f, 2.0f});
  const Tensor loc = tensor({0.5f, -1.0f, 2.0f}), scale = tensor({1.5f, 0.4f, 2.5f});
  auto check = [&](const dist::DistPtr& site, const dist::DistPtr& standard) {
    fresh(5);
    auto model = [&] { sample("x", dist::Dist(site)); };
    auto m = P::substitute(P::reparam(model, {{"x", {.centered = 0.0f}}}), {{"x_decentered", v}});
    const Trace t = P::trace(m).get_trace();
    SCOPED_TRACE(site->name());
    EXPECT_EQ(t.site("x_decentered").fn->name(), site->name());
    const std::vector<float> x = t.site("x").value.to_vector(), want = (loc + scale * v).to_vector();
    for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(x[i], want[i], 1e-6);
    EXPECT_NEAR(t.log_prob_sum().item(), sum(standard->log_prob(v)).item(), 1e-5);
  };
  check(std::make_shared<dist::Gumbel>(loc, scale), std::make_shared<dist::Gumbel>(0.0f, 1.0f));
  check(std::make_shared<dist::Logistic>(loc, scale), std::make_shared<dist::Logistic>(0.0f, 1.0f));
}

TEST(Reparam, NonCentredFunnelIsFitExactlyByAutoNormal) {
  // Neal's funnel without data: y ~ N(0, 3), x_i ~ N(0, exp(y / 2)). Its
  // posterior (the prior) is out of AutoNormal's reach in (y, x), but after
  // LocScaleReparam(0) it is N(0, 3) x N(0, 1) in (y, x_decentered), which
  // AutoNormal holds exactly: there log p - log q = 0 for every draw, so the
  // trained loss must be ~0. Threshold: the mean of 200 loss evaluations
  // below 0.02 nats (the centred fit stays above 0.1).
  fresh(4);
  auto funnel = [] {
    Tensor y = sample("y", dist::Normal(0.0f, 3.0f));
    auto p = plate("data", 3);
    sample("x", dist::Normal(0.0f, exp(y * 0.5f)));
  };
  auto run = [&](bool reparam) {
    param_store().clear();
    set_seed(5);
    std::function<void()> model = funnel;
    if (reparam) model = P::reparam(funnel, {{"x", {.centered = 0.0f}}});
    infer::AutoNormal guide(model);
    // 3000 steps at lr 0.02, then 3000 at 0.002 to settle (Adam's noise at
    // the larger rate alone leaves ~0.04 nats).
    infer::SVI fast(model, guide, optim::Adam({.lr = 0.02f}), infer::Trace_ELBO());
    for (int i = 0; i < 3000; ++i) fast.step();
    infer::SVI slow(model, guide, optim::Adam({.lr = 0.002f}), infer::Trace_ELBO());
    for (int i = 0; i < 3000; ++i) slow.step();
    double mean = 0;
    for (int i = 0; i < 200; ++i) mean += slow.evaluate_loss().item() / 200.0;
    return mean;
  };
  const double noncentred = run(true), centred = run(false);
  EXPECT_LT(std::fabs(noncentred), 0.02) << "centred: " << centred;
  EXPECT_GT(centred, 0.1);
}
