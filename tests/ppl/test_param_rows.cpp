// param(name, init, constraint, event_dim) under subsampled plates (Pyro's
// event_dim): the plate takes its rows of a full-size param, from the
// unconstrained leaf before the transform where the dims allow; the values
// and gradients equal those of taking the rows of the whole constrained
// param (the explicit plate.subsample path), which the tests use as the
// reference. Also: repeated param sites in one trace, as Pyro allows them.
// Runs on the default device (cpu, and cuda:0 in the gpu suite).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/infer.hpp"
#include "ppl/optim.hpp"
#include "ppl/poutine.hpp"

using namespace cuvi;
using namespace cuvi::testing;
namespace P = cuvi::poutine;

namespace {

// Distinct, non-trivial full-size initial values.
Tensor ramp(const Shape& shape, float lo, float step) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = lo + step * static_cast<float>((i * 7) % n);
  return tensor(v, shape);
}

// Leaf gradient of sum(w * v) where v is what `get` returns (inside a plate
// that `get` opens); the plate's indices through idx.
std::vector<float> leaf_grad(const std::string& name, const std::function<Tensor(std::vector<int64_t>*)>& get) {
  std::vector<int64_t> idx;
  Tensor v = get(&idx);
  Tensor w = ramp(v.shape(), -1.0f, 0.37f);
  sum(v * w).backward();
  Tensor g = param_store().unconstrained(name).grad();
  EXPECT_TRUE(g.defined());
  return g.defined() ? g.to_vector() : std::vector<float>();
}

}  // namespace

TEST(ParamEventDim, SubsampledPlateTakesTheRowsOfTheParam) {
  fresh(1);
  const Tensor init = ramp({10}, 0.1f, 0.2f);
  auto p = plate("data", 10, 4);
  const auto idx = p.indices().to_vector_i64();
  Trace tr = P::trace([&] { param("loc", init, constraints::positive, 0); }).get_trace();
  const Site& s = tr.site("loc");
  ASSERT_EQ(s.value.shape(), (Shape{4}));
  ASSERT_EQ(s.frames.size(), 1u);
  EXPECT_EQ(s.frames[0].name, "data");
  EXPECT_EQ(s.unconstrained.shape(), (Shape{10}));  // the store keeps all N
  const auto full = param_store().get("loc").to_vector();
  const auto v = s.value.to_vector();
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(v[i], full[static_cast<size_t>(idx[i])]) << i;
}

TEST(ParamEventDim, WithoutEventDimNothingIsSubsampled) {
  fresh(2);
  auto p = plate("data", 10, 4);
  Trace tr = P::trace([&] { param("loc", ramp({10}, 0.1f, 0.2f), constraints::positive); }).get_trace();
  EXPECT_EQ(tr.site("loc").value.shape(), (Shape{10}));
  EXPECT_TRUE(tr.site("loc").frames.empty());
}

TEST(ParamEventDim, GradientsMatchTakingRowsOfTheConstrainedParam) {
  // Same values and leaf gradient bits as plate.subsample(param(...)): the
  // elementwise transform commutes with taking rows, and the backward
  // scatters the same products into the same rows (zero elsewhere).
  for (const auto& c : {constraints::positive, constraints::softplus_positive, constraints::unit_interval,
                        constraints::interval(-1.0f, 3.0f), constraints::real}) {
    SCOPED_TRACE(c->name());
    const Tensor init = ramp({50}, 0.05f, 0.019f);  // inside every support above
    fresh(3);
    const auto fast = leaf_grad("u", [&](std::vector<int64_t>* idx) {
      auto p = plate("data", 50, 8);
      *idx = p.indices().to_vector_i64();
      return param("u", init, c, 0);
    });
    fresh(3);
    const auto ref = leaf_grad("u", [&](std::vector<int64_t>* idx) {
      auto p = plate("data", 50, 8);
      *idx = p.indices().to_vector_i64();
      return p.subsample(param("u", init, c));
    });
    ASSERT_EQ(fast.size(), 50u);
    EXPECT_EQ(fast, ref);
    int nonzero = 0;
    for (float g : fast) nonzero += g != 0.0f;
    EXPECT_EQ(nonzero, 8);  // only the minibatch's rows
  }
}

TEST(ParamEventDim, EventDimsOfTheConstraintStayWhole) {
  // A simplex param of shape [N, K] with event_dim 1: the plate at dim -1
  // indexes dim 0, left of the simplex's event dim, so the leaf's rows
  // ([N, K-1] unconstrained) are taken first. Values and gradients against
  // the rows of the whole constrained param, within float rounding of the
  // stick-breaking transform (1e-6 relative; same per-row arithmetic).
  std::vector<float> p0;
  for (int i = 0; i < 12; ++i)
    for (int k = 0; k < 3; ++k) p0.push_back(0.2f + 0.1f * static_cast<float>((i + 2 * k) % 5));
  Tensor init = tensor(p0, {12, 3});
  init = init / sum(init, {-1}, true);
  fresh(4);
  std::vector<int64_t> idx;
  Tensor fast_v;
  const auto fast = leaf_grad("w", [&](std::vector<int64_t>* ix) {
    auto p = plate("data", 12, 5);
    *ix = p.indices().to_vector_i64();
    fast_v = param("w", init, constraints::simplex, 1);
    return fast_v;
  });
  fresh(4);
  Tensor ref_v;
  const auto ref = leaf_grad("w", [&](std::vector<int64_t>* ix) {
    auto p = plate("data", 12, 5);
    *ix = p.indices().to_vector_i64();
    ref_v = p.subsample(param("w", init, constraints::simplex), 1);
    return ref_v;
  });
  ASSERT_EQ(fast_v.shape(), (Shape{5, 3}));
  const auto fv = fast_v.to_vector(), rv = ref_v.to_vector();
  for (size_t i = 0; i < fv.size(); ++i) EXPECT_NEAR(fv[i], rv[i], 1e-6f * std::fabs(rv[i]) + 1e-7f) << i;
  ASSERT_EQ(fast.size(), ref.size());
  for (size_t i = 0; i < fast.size(); ++i) EXPECT_NEAR(fast[i], ref[i], 1e-6f * std::fabs(ref[i]) + 1e-7f) << i;
}

TEST(ParamEventDim, NestedPlatesTakeBothDims) {
  fresh(5);
  const Tensor init = ramp({6, 9}, -2.0f, 0.1f);
  auto outer = plate("rows", 6, 2, -2);
  auto inner = plate("cols", 9, 4, -1);
  const auto i0 = outer.indices().to_vector_i64(), i1 = inner.indices().to_vector_i64();
  Trace tr = P::trace([&] { param("m", init, constraints::real, 0); }).get_trace();
  const Site& s = tr.site("m");
  ASSERT_EQ(s.value.shape(), (Shape{2, 4}));
  ASSERT_EQ(s.frames.size(), 2u);
  EXPECT_EQ(s.frames[0].name, "rows");  // outermost first, as for sample sites
  EXPECT_EQ(s.frames[1].name, "cols");
  const auto full = init.to_vector(), v = s.value.to_vector();
  for (size_t a = 0; a < 2; ++a)
    for (size_t b = 0; b < 4; ++b)
      EXPECT_EQ(v[a * 4 + b], full[static_cast<size_t>(i0[a] * 9 + i1[b])]) << a << "," << b;
}

TEST(ParamEventDim, SizeOneDimsBroadcastAndUnsubsampledPlatesLeaveTheParam) {
  fresh(6);
  auto p = plate("data", 10, 4, -2);
  auto q = plate("whole", 3);  // dim -1, not subsampled: nothing taken
  Trace tr = P::trace([&] {
               param("b", ramp({1, 3}, 0.5f, 0.1f), constraints::positive, 0);  // data's dim -2 has size 1
             }).get_trace();
  EXPECT_EQ(tr.site("b").value.shape(), (Shape{1, 3}));
}

TEST(ParamEventDim, WrongSizeAlongThePlateNamesParamShapeAndPlate) {
  fresh(7);
  auto p = plate("data", 10, 4);
  expect_error<ShapeError>([&] { param("loc", ramp({7}, 0.1f, 0.1f), constraints::real, 0); },
                           {"param 'loc'", "[7]", "plate 'data'", "10"});
  expect_error<ValueError>([&] { param("neg", ramp({10}, 0.1f, 0.1f), constraints::real, -1); },
                           {"param 'neg'", "event_dim", "-1"});
}

TEST(ParamEventDim, SubstitutedFullValueIsSubsampledToo) {
  fresh(8);
  const Tensor sub = ramp({10}, 3.0f, 1.0f);
  auto p = plate("data", 10, 4);
  const auto idx = p.indices().to_vector_i64();
  auto f = P::substitute([&] { return param("loc", ramp({10}, 0.1f, 0.1f), constraints::positive, 0); },
                         {{"loc", sub}});
  const auto v = f().to_vector();
  ASSERT_EQ(v.size(), 4u);
  const auto s = sub.to_vector();
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(v[i], s[static_cast<size_t>(idx[i])]);
}

TEST(ParamEventDim, SviWithEventDimParamsMatchesExplicitSubsampling) {
  // The local-latent model of the benchmarks: with Adam, five steps of the
  // guide that declares its per-datapoint params with event_dim 0 leave the
  // store bit for bit where the guide that subsamples them by hand does.
  const int64_t n = 40, b = 8;
  auto model = [n, b](const Tensor& x) {
    auto p = plate("data", n, b);
    Tensor z = sample("z", dist::Normal(0.0f, 1.0f));
    sample("x", dist::Normal(z, 1.0f), p.subsample(x));
  };
  auto run = [&](bool event_dim) {
    fresh(9);
    const Tensor data = ramp({n}, -1.0f, 0.05f);
    auto guide = [n, b, event_dim](const Tensor&) {
      auto p = plate("data", n, b);
      Tensor loc, scale;
      if (event_dim) {
        loc = param("loc", [n] { return zeros({n}); }, constraints::real, 0);
        scale = param("scale", [n] { return full({n}, 0.5f); }, constraints::positive, 0);
      } else {
        loc = p.subsample(param("loc", [n] { return zeros({n}); }));
        scale = p.subsample(param("scale", [n] { return full({n}, 0.5f); }, constraints::positive));
      }
      sample("z", dist::Normal(loc, scale));
    };
    infer::SVI svi(model, guide, optim::Adam({.lr = 0.05f}), infer::Trace_ELBO());
    std::vector<float> losses;
    for (int i = 0; i < 5; ++i) losses.push_back(svi.step(data).item());
    std::vector<float> out = param_store().unconstrained("loc").to_vector();
    const auto sc = param_store().unconstrained("scale").to_vector();
    out.insert(out.end(), sc.begin(), sc.end());
    out.insert(out.end(), losses.begin(), losses.end());
    return out;
  };
  const auto fast = run(true), ref = run(false);
  EXPECT_EQ(fast, ref);
  float moved = 0.0f;
  for (int64_t i = 0; i < n; ++i) moved += std::fabs(fast[static_cast<size_t>(i)]);
  EXPECT_GT(moved, 0.0f);  // the locs did move
}

TEST(TraceParams, RepeatedParamSitesReplaceAndSampleNamesStayUnique) {
  fresh(10);
  Trace tr = P::trace([] {
               param("a", 1.0f);
               sample("z", dist::Normal(0.0f, 1.0f));
               param("a", 1.0f);  // Pyro allows a param to be declared again
             }).get_trace();
  EXPECT_EQ(tr.site_names(), (std::vector<std::string>{"a", "z"}));
  expect_error<ValueError>([] { P::trace([] {
                                  sample("a", dist::Normal(0.0f, 1.0f));
                                  param("a", 1.0f);
                                }).get_trace(); },
                           {"'a'", "sample site, then as a param site"});
}

TEST(Subsample, TakesTheRowsOfEveryEnclosingSubsampledPlate) {
  fresh(11);
  const Tensor data = ramp({6, 9, 2}, 0.0f, 1.0f);
  EXPECT_EQ(subsample(data, 1).shape(), (Shape{6, 9, 2}));  // no plate: as it is
  auto outer = plate("rows", 6, 2, -2);
  auto whole = plate("whole", 5, 0, -3);  // not subsampled (and data has no dim for it): left alone
  auto inner = plate("cols", 9, 4, -1);
  const auto i0 = outer.indices().to_vector_i64(), i1 = inner.indices().to_vector_i64();
  const Tensor r = subsample(data, 1);
  ASSERT_EQ(r.shape(), (Shape{2, 4, 2}));
  const auto full = data.to_vector(), v = r.to_vector();
  for (size_t a = 0; a < 2; ++a)
    for (size_t b = 0; b < 4; ++b)
      for (size_t e = 0; e < 2; ++e)
        EXPECT_EQ(v[(a * 4 + b) * 2 + e], full[static_cast<size_t>((i0[a] * 9 + i1[b]) * 2) + e]);
  // The same rows as the plates' own subsample, one after the other.
  EXPECT_EQ(v, inner.subsample(outer.subsample(data, 1), 1).to_vector());
  // A size-1 dim broadcasts; a size that is neither N nor 1 is named.
  EXPECT_EQ(subsample(ramp({1, 9, 2}, 0.0f, 1.0f), 1).shape(), (Shape{1, 4, 2}));
  expect_error<ShapeError>([&] { subsample(ramp({2, 9, 2}, 0.0f, 1.0f), 1); },
                           {"subsample", "[2, 9, 2]", "plate 'rows'", "6"});
  expect_error<ValueError>([&] { subsample(data, -1); }, {"subsample", "event_dim", "-1"});
}

TEST(ParamEventDim, UserIndicesOfFullSizeAreTakenByEveryPath) {
  // A plate given a permutation of all N indices takes them everywhere:
  // plate.subsample, subsample() and event_dim params agree row for row.
  fresh(12);
  const Tensor data = tensor({10.0f, 11.0f, 12.0f, 13.0f});
  Plate p("data", 4, tensor_i64({3, 2, 1, 0}, {4}));
  const auto want = std::vector<float>{13.0f, 12.0f, 11.0f, 10.0f};
  EXPECT_EQ(p.subsample(data).to_vector(), want);
  EXPECT_EQ(subsample(data, 0).to_vector(), want);
  EXPECT_EQ(param("x", data, constraints::real, 0).to_vector(), want);
  const auto y = param("y", data, constraints::positive, 0).to_vector();  // the rows of the leaf, then exp
  const auto yfull = param_store().get("y").to_vector();                  // exp(log(x)): x to rounding
  EXPECT_EQ(y, (std::vector<float>{yfull[3], yfull[2], yfull[1], yfull[0]}));
  p.exit();
  expect_error<ValueError>([] { Plate q("big", 2, tensor_i64({0, 1, 0}, {3})); }, {"plate 'big'", "3", "size 2"});
}

TEST(ParamEventDim, SizesAreCheckedUnderPlatesThatAreNotSubsampled) {
  // As Pyro: inside any plate an event_dim param (or subsample's data) has
  // the plate's size or 1 at its dim, so a wrong size shows before
  // subsampling is turned on.
  fresh(13);
  auto p = plate("data", 10);
  expect_error<ShapeError>([] { param("loc", zeros({7}), constraints::real, 0); }, {"param 'loc'", "[7]", "10"});
  expect_error<ShapeError>([] { subsample(ones({7}), 0); }, {"subsample", "[7]", "plate 'data'"});
  EXPECT_EQ(param("ok", zeros({10}), constraints::real, 0).shape(), (Shape{10}));
  EXPECT_EQ(subsample(ones({1}), 0).shape(), (Shape{1}));
}

TEST(ParamEventDim, ErrorsNameTheDeclaredShape) {
  // A simplex param declared [7, 3] (its leaf is [7, 2]) under a plate of 10.
  fresh(14);
  auto p = plate("data", 10, 4);
  std::vector<float> v(21, 1.0f / 3.0f);
  expect_error<ShapeError>([&] { param("w", tensor(v, {7, 3}), constraints::simplex, 1); },
                           {"param 'w'", "[7, 3]", "plate 'data'"});
}

TEST(TraceParams, SubstitutedRedeclarationKeepsTheLeafForTheOptimizer) {
  fresh(15);
  const Tensor sub = tensor(5.0f);
  Trace tr = P::trace([&] {
               param("a", 1.0f);
               P::substitute([] { return param("a", 1.0f); }, {{"a", sub}})();
             }).get_trace();
  EXPECT_TRUE(tr.site("a").unconstrained.defined());
  EXPECT_EQ(tr.site("a").value.item(), 5.0f);
  // A plate index site and a param of one name: the kinds are named.
  expect_error<ValueError>([] { P::trace([] {
                                  auto p = plate("loc", 10, 4);
                                  param("loc", 1.0f);
                                }).get_trace(); },
                           {"'loc'", "plate index site, then as a param site"});
}
