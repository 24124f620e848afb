// infer::AutoGuideList (Pyro's): parts for disjoint sets of sites, their
// union as the guide, trained by SVI to known optima (a conjugate Normal
// posterior for z by AutoNormal, the MAP of a scale by AutoDelta, found by
// bisection in float64), a hand-written part, medians, and the error for a
// site two parts both claim. Runs on the default device.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/autoguide.hpp"
#include "ppl/infer.hpp"

using namespace cuvi;
using namespace cuvi::testing;
namespace P = cuvi::poutine;

namespace {

const std::vector<float> kX = {0.9f, 1.6f, 0.2f, 1.3f, 2.0f, 0.7f};   // x_i ~ N(z, 1), z [2] shared
const std::vector<float> kY = {1.5f, -2.2f, 0.4f, 3.1f, -1.0f};       // y_j ~ N(0, s)

// z ~ N(0, 1) [2] (to_event), s ~ LogNormal(0, 1); each x_i observed by
// both coordinates (x_i ~ N(z_k, 1), k = 0, 1), each y_j ~ N(0, s).
void model(const Tensor& x, const Tensor& y) {
  Tensor z = sample("z", dist::Normal(zeros({2}), ones({2})).to_event(1));
  Tensor s = sample("s", dist::LogNormal(0.0f, 1.0f));
  {
    auto p = plate("xs", x.size(0));
    sample("x", dist::Normal(z, 1.0f).to_event(1), x.unsqueeze(-1).expand({x.size(0), 2}));
  }
  auto q = plate("ys", y.size(0));
  sample("y", dist::Normal(0.0f, s), y);
}

// The MAP of s in constrained space (AutoDelta: the prior's density at s,
// no Jacobian): d/ds [sum_j log N(y_j; 0, s) + log LogNormal(s; 0, 1)] = 0,
// i.e. -(n + 1) + S / s^2 - log s = 0 with S = sum y^2; decreasing in s.
double map_s() {
  double sy = 0;
  for (float v : kY) sy += static_cast<double>(v) * v;
  const double n = static_cast<double>(kY.size());
  double lo = 1e-3, hi = 100;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (-(n + 1) + sy / (mid * mid) - std::log(mid) > 0 ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

TEST(AutoGuideList, DeltaAndNormalPartsReachTheirOptima) {
  fresh(1);
  auto m = [](const Tensor& x, const Tensor& y) { model(x, y); };
  infer::AutoGuideList<Tensor, Tensor> guide;
  guide.append(infer::AutoDelta(P::block(m, {}, {"s"})));
  guide.append(infer::AutoNormal(P::block(m, {"s"})));
  EXPECT_EQ(guide.size(), 2u);
  const Tensor x = tensor(kX), y = tensor(kY);
  infer::SVI svi(m, guide, optim::Adam({.lr = 0.02f}), infer::Trace_ELBO());
  double s_avg = 0, z_avg[2] = {0, 0}, sd_avg[2] = {0, 0};
  int n = 0;
  for (int k = 0; k < 3000; ++k) {
    svi.step(x, y);
    if (k < 2000) continue;
    s_avg += param_store().get("AutoDelta.s").item();
    const auto loc = param_store().get("AutoNormal.locs.z").to_vector();
    const auto sc = param_store().get("AutoNormal.scales.z").to_vector();
    for (int i = 0; i < 2; ++i) z_avg[i] += loc[static_cast<size_t>(i)], sd_avg[i] += sc[static_cast<size_t>(i)];
    ++n;
  }
  EXPECT_FALSE(param_store().contains("AutoNormal.locs.s"));
  EXPECT_FALSE(param_store().contains("AutoDelta.z"));
  // Polyak averages of 1000 steps at lr 0.02 with one-particle gradients:
  // on three seeds s was exact to 5 digits (a Delta part has no noise), z's
  // mean within 0.021 (0.06 posterior sd) and its sd within 4 %; the
  // tolerances leave about 3x that. A wrong target (a likelihood term
  // missing or counted twice) moves the mean by > 0.1 and the sd by > 25 %.
  EXPECT_NEAR(s_avg / n, map_s(), 0.02 * map_s());
  const double sx = std::accumulate(kX.begin(), kX.end(), 0.0);
  const double post_mean = sx / (kX.size() + 1.0), post_sd = 1.0 / std::sqrt(kX.size() + 1.0);
  for (int i = 0; i < 2; ++i) {
    EXPECT_NEAR(z_avg[i] / n, post_mean, 0.06) << i;
    EXPECT_NEAR(sd_avg[i] / n, post_sd, 0.1 * post_sd) << i;
  }
  const auto med = guide.median(x, y);
  EXPECT_EQ(med.size(), 2u);
  EXPECT_TRUE(med.count("z") && med.count("s"));
  // A call returns both parts' values; its trace holds both sites.
  const Trace t = P::trace(guide).get_trace(x, y);
  EXPECT_TRUE(t.contains("z") && t.contains("s"));
}

TEST(AutoGuideList, HandWrittenPart) {
  fresh(2);
  auto m = [](const Tensor& x, const Tensor& y) { model(x, y); };
  infer::AutoGuideList<Tensor, Tensor> guide;
  guide.append([](const Tensor&, const Tensor&) {
    Tensor s = param("s_q", 1.0f, constraints::positive);
    sample("s", dist::Delta(s));
  });
  guide.append(infer::AutoNormal(P::block(m, {"s"})));
  const Tensor x = tensor(kX), y = tensor(kY);
  const auto v = guide(x, y);
  EXPECT_EQ(v.size(), 1u) << "the hand-written part returns nothing";
  EXPECT_TRUE(v.count("z"));
  infer::SVI svi(m, guide, optim::Adam({.lr = 0.02f}), infer::Trace_ELBO());
  for (int k = 0; k < 10; ++k) svi.step(x, y);
  EXPECT_TRUE(param_store().contains("s_q"));
  EXPECT_EQ(guide.median(x, y).count("s"), 0u);
}

TEST(AutoGuideList, TwoPartsClaimingASiteIsAnError) {
  fresh(3);
  auto m = [](const Tensor& x, const Tensor& y) { model(x, y); };
  infer::AutoGuideList<Tensor, Tensor> guide;
  guide.append(infer::AutoDelta(P::block(m, {}, {"s"})));
  guide.append(infer::AutoNormal(m));  // also takes s
  try {
    guide(tensor(kX), tensor(kY));
    FAIL() << "expected a ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("'s'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("parts 0 and 1"), std::string::npos) << e.what();
  }
}

}  // namespace
