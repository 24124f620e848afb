// poutine::do_ (Pyro's poutine.do) and poutine::uncondition: what the
// program sees, what the outer trace records, and how they differ from
// condition. Runs on the default device.
#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.hpp"
#include "ppl/poutine.hpp"

using namespace cuvi;
using namespace cuvi::testing;
namespace P = cuvi::poutine;

namespace {

// x ~ N(0, 1), y ~ N(x, 0.1) in a plate of 3; returns y.
Tensor chain() {
  Tensor x = sample("x", dist::Normal(0.0f, 1.0f));
  auto p = plate("data", 3);
  return sample("y", dist::Normal(x, 0.1f));
}

TEST(Do, ProgramSeesTheInterventionTraceSeesADraw) {
  fresh(3);
  Tensor ret;
  const Trace t = P::trace([&] { ret = P::do_(chain, {{"x", full({}, 5.0f)}})(); }).get_trace();
  // Downstream of x the program used 5: y ~ N(5, 0.1), so every y is
  // within 1 (10 sd) of 5.
  for (float v : ret.to_vector()) EXPECT_NEAR(v, 5.0f, 1.0f);
  ASSERT_TRUE(t.contains("x"));
  const Site& x = t.site("x");
  EXPECT_FALSE(x.is_observed);
  EXPECT_LT(std::fabs(x.value.item()), 4.5f) << "x is a draw of N(0, 1), not the intervention";
  EXPECT_FALSE(t.contains("x__CF"));
  EXPECT_EQ(t.site_names(), (std::vector<std::string>{"x", "y"}));
  // The trace's density: the draw of x under its prior and y given x = 5,
  // no term for the intervention.
  const double xv = x.value.item();
  double want = -0.5 * std::log(2 * M_PI) - 0.5 * xv * xv;
  for (float v : t.site("y").value.to_vector())
    want += -0.5 * std::log(2 * M_PI) - std::log(0.1) - 0.5 * (v - 5.0) * (v - 5.0) / 0.01;
  EXPECT_NEAR(t.log_prob_sum().item(), want, 1e-4 * std::fabs(want));
}

TEST(Do, DiffersFromCondition) {
  fresh(4);
  const Trace t = P::trace(P::condition(chain, {{"x", full({}, 5.0f)}})).get_trace();
  EXPECT_TRUE(t.site("x").is_observed);
  EXPECT_FLOAT_EQ(t.site("x").value.item(), 5.0f);
}

TEST(Do, InnerTraceSeesTheObservedCounterfactualSite) {
  fresh(5);
  Trace inner;
  auto traced = [&] { inner = P::trace(chain).get_trace(); };
  const Trace outer = P::trace(P::do_(traced, {{"x", full({}, -2.0f)}})).get_trace();
  ASSERT_TRUE(inner.contains("x__CF"));
  EXPECT_TRUE(inner.site("x__CF").is_observed);
  EXPECT_FLOAT_EQ(inner.site("x__CF").value.item(), -2.0f);
  EXPECT_TRUE(outer.contains("x"));
  EXPECT_FALSE(outer.contains("x__CF"));
}

TEST(Do, SiteInAPlateKeepsItsFrames) {
  fresh(6);
  auto model = [] {
    auto p = plate("data", 4);
    Tensor z = sample("z", dist::Normal(0.0f, 1.0f));
    return sample("w", dist::Normal(z, 0.01f));
  };
  Tensor ret;
  const Trace t = P::trace([&] { ret = P::do_(model, {{"z", full({4}, 3.0f)}})(); }).get_trace();
  EXPECT_EQ(t.site("z").value.shape(), (Shape{4}));
  ASSERT_EQ(t.site("z").frames.size(), 1u);
  EXPECT_EQ(t.site("z").frames[0].name, "data");
  for (float v : ret.to_vector()) EXPECT_NEAR(v, 3.0f, 0.1f);
}

TEST(Do, StrictNamesTheUnusedSites) {
  try {
    P::do_(chain, {{"nope", zeros({})}}, true)();
    FAIL() << "expected a ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("nope"), std::string::npos) << e.what();
  }
}

TEST(Uncondition, ObservedSitesAreDrawn) {
  fresh(7);
  const Tensor obs = tensor({100.0f, 100.0f, 100.0f});
  auto model = [&] {
    Tensor x = sample("x", dist::Normal(0.0f, 1.0f));
    auto p = plate("data", 3);
    return sample("y", dist::Normal(x, 0.1f), obs);
  };
  Tensor ret;
  const Trace t = P::trace([&] { ret = P::uncondition(model)(); }).get_trace();
  EXPECT_FALSE(t.site("y").is_observed);
  EXPECT_EQ(t.site("y").value.shape(), (Shape{3}));
  const double x = t.site("x").value.item();
  for (float v : ret.to_vector()) EXPECT_NEAR(v, x, 1.0) << "a draw of N(x, 0.1), not the observation";
  // A condition outside uncondition observes again.
  const Trace c = P::trace(P::condition(P::uncondition(model), {{"y", obs}})).get_trace();
  EXPECT_TRUE(c.site("y").is_observed);
  EXPECT_FLOAT_EQ(c.site("y").value.to_vector()[0], 100.0f);
}

}  // namespace
