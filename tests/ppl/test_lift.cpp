// poutine::lift (Pyro's): params named in the priors become latent sample
// sites; a lifted linear model's slope is inferred by AutoNormal to its
// conjugate posterior; a net registered with module() runs on the drawn
// weights; params inside plates are refused. Runs on the default device
// (cpu, and cuda:0 in the gpu suite).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/autoguide.hpp"
#include "ppl/infer.hpp"
#include "ppl/nn.hpp"
#include "ppl/optim.hpp"
#include "ppl/poutine.hpp"

using namespace cuvi;
using namespace cuvi::testing;
namespace P = cuvi::poutine;

namespace {

const std::vector<float> kX{-1.0f, -0.5f, 0.2f, 0.7f, 1.1f, 1.6f};
const std::vector<float> kY{-1.3f, -0.4f, 0.1f, 1.2f, 1.6f, 2.5f};
const float kSigma = 0.5f, kPriorSd = 2.0f;

// y_i ~ N(w x_i + b, sigma) with w and b params.
void regression() {
  Tensor w = param("w", 0.0f);
  Tensor b = param("b", 0.0f);
  auto p = plate("data", static_cast<int64_t>(kX.size()));
  sample("y", dist::Normal(w * tensor(kX) + b, kSigma), tensor(kY));
}

}  // namespace

TEST(Lift, NamedParamsBecomePriorDraws) {
  fresh(1);
  auto lifted = P::lift(regression, {{"w", std::make_shared<dist::Normal>(0.0f, kPriorSd)}});
  const Trace t = P::trace(lifted).get_trace();
  const Site& w = t.site("w");
  EXPECT_EQ(w.type, SiteType::kSample);
  EXPECT_FALSE(w.is_observed);
  EXPECT_EQ(w.fn->name(), "Normal");
  EXPECT_EQ(t.site("b").type, SiteType::kParam);
  EXPECT_FALSE(param_store().contains("w")) << "a lifted param makes no store entry";
  EXPECT_TRUE(param_store().contains("b"));
  // The draws follow the prior: over n runs, the mean within 4 standard errors.
  const int n = 2000;
  double s = 0;
  for (int i = 0; i < n; ++i) s += P::trace(lifted).get_trace().site("w").value.item();
  EXPECT_NEAR(s / n, 0.0, 4 * kPriorSd / std::sqrt(n));
  // The key "" lifts every param not named.
  fresh(2);
  const Trace all = P::trace(P::lift(regression, {{"", std::make_shared<dist::Normal>(0.0f, 1.0f)}})).get_trace();
  EXPECT_EQ(all.site("w").type, SiteType::kSample);
  EXPECT_EQ(all.site("b").type, SiteType::kSample);
  EXPECT_TRUE(param_store().names().empty());
}

TEST(Lift, AutoNormalInfersTheLiftedSlopeToItsPosterior) {
  // A slope alone, w ~ N(0, 2^2) lifted. Conjugate posterior: precision 1/4 + sum x^2 / sigma^2, mean
  // (sum x y / sigma^2) / precision. ClippedAdam with a decaying rate, as
  // the minibatch acceptance test; half a posterior sd for mean and sd.
  fresh(3);
  auto model = [] {
    Tensor w = param("w", 0.0f);
    auto p = plate("data", static_cast<int64_t>(kX.size()));
    sample("y", dist::Normal(w * tensor(kX), kSigma), tensor(kY));
  };
  auto lifted = P::lift(model, {{"w", std::make_shared<dist::Normal>(0.0f, kPriorSd)}});
  infer::AutoNormal guide(lifted);
  const int steps = 3000;
  infer::SVI svi(lifted, [&] { guide(); },
                 optim::ClippedAdam({.lr = 0.05f, .lrd = static_cast<float>(std::pow(0.02, 1.0 / steps))}),
                 infer::Trace_ELBO());
  for (int k = 0; k < steps; ++k) svi.step();
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < kX.size(); ++i) {
    sxx += double(kX[i]) * kX[i];
    sxy += double(kX[i]) * kY[i];
  }
  const double prec = 1.0 / (kPriorSd * kPriorSd) + sxx / (kSigma * kSigma);
  const double mean = sxy / (kSigma * kSigma) / prec, sd = 1.0 / std::sqrt(prec);
  EXPECT_NEAR(param_store().get("AutoNormal.locs.w").item(), mean, 0.5 * sd);
  EXPECT_NEAR(param_store().get("AutoNormal.scales.w").item(), sd, 0.5 * sd);
}

TEST(Lift, ModuleNetsRunOnTheDrawnWeights) {
  fresh(4);
  nn::Linear net(2, 1);
  const Tensor x = tensor({1.0f, 2.0f, -1.0f, 0.5f}, {2, 2});
  Tensor out;
  auto model = [&] {
    module("net", net);
    out = net(x);
  };
  const std::string w = std::string("net") + kModuleNameSeparator + "weight";
  const std::string b = std::string("net") + kModuleNameSeparator + "bias";
  auto lifted = P::lift(model, {{w, dist::Normal(0.0f, 1.0f).expand({1, 2}).to_event(2).ptr()},
                                {b, dist::Normal(0.0f, 1.0f).expand({1}).to_event(1).ptr()}});
  const Trace t = P::trace(lifted).get_trace();
  const auto wv = t.site(w).value.to_vector(), bv = t.site(b).value.to_vector();
  const auto ov = out.to_vector();
  ASSERT_EQ(ov.size(), 2u);
  EXPECT_NEAR(ov[0], wv[0] * 1.0f + wv[1] * 2.0f + bv[0], 1e-5);
  EXPECT_NEAR(ov[1], wv[0] * -1.0f + wv[1] * 0.5f + bv[0], 1e-5);
  EXPECT_EQ(t.site(w).fn->event_dim(), 2);
}

TEST(Lift, ParamsInsidePlatesAreRefused) {
  fresh(5);
  auto model = [] {
    auto p = plate("data", 3);
    param("w", 0.0f);
  };
  expect_error<ValueError>([&] { P::lift(model, {{"w", std::make_shared<dist::Normal>(0.0f, 1.0f)}})(); },
                           {"lift: param 'w' is declared inside a plate"});
}
