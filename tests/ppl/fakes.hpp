// Test doubles shared by the inference tests (as Pyro's tests/fakes).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include <cuvi.hpp>

namespace cuvi::testing {

// dist::Normal without a reparameterised sampler (Pyro's
// fakes.NonreparameterizedNormal): SVI draws with sample() and the ELBO
// adds the score-function surrogate for the site.
class NonReparamNormal : public dist::Dist {
 public:
  NonReparamNormal(dist::Arg loc, dist::Arg scale) : dist::Dist(std::make_shared<dist::Normal>(loc, scale)) {}
  explicit NonReparamNormal(dist::DistPtr d) : dist::Dist(std::move(d)) {}
  bool has_rsample() const override { return false; }
  dist::DistPtr clone() const override { return std::make_shared<NonReparamNormal>(*this); }
  dist::DistPtr expand_ptr(const Shape& b) const override {
    return std::make_shared<NonReparamNormal>(ptr()->expand_ptr(b));
  }
};

// Squared distance between a tensor and expected values.
inline float sq_err(const Tensor& a, const std::vector<float>& b) {
  const auto v = a.to_vector();
  EXPECT_EQ(v.size(), b.size());
  float s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += (v[i] - b[i]) * (v[i] - b[i]);
  return s;
}

// Pyro's NormalNormalTests: 2-d latent with prior N(mu0, lam0^-1/2), four
// observations N(mu, lam^-1/2); the exact posterior from the conjugate
// formulas; the guide starts at the posterior shifted by +0.134 (mean) and
// -0.14 (log sd), as in Pyro's test.
struct NormalNormal {
  std::vector<float> lam0 = {0.1f, 0.1f}, mu0 = {0.0f, 0.5f}, lam = {6.0f, 4.0f};
  std::vector<float> data = {-0.1f, 0.3f, 0.0f, 0.4f, 0.2f, 0.5f, 0.1f, 0.7f};  // [4, 2]
  std::vector<float> post_mu, post_log_sig;
  NormalNormal() {
    for (int d = 0; d < 2; ++d) {
      float sum = 0;
      for (int i = 0; i < 4; ++i) sum += data[static_cast<size_t>(2 * i + d)];
      const float lam_n = lam0[d] + 4 * lam[d];
      post_mu.push_back(sum * lam[d] / lam_n + mu0[d] * lam0[d] / lam_n);
      post_log_sig.push_back(-0.5f * std::log(lam_n));
    }
  }
  Tensor prior_scale() const { return tensor({std::pow(lam0[0], -0.5f), std::pow(lam0[1], -0.5f)}); }
  Tensor obs_scale() const { return tensor({std::pow(lam[0], -0.5f), std::pow(lam[1], -0.5f)}); }
  // The model on this fixture's data (the fixture must outlive it).
  auto model() const {
    return [this] {
      Tensor mu = sample("mu_latent", dist::Normal(tensor(mu0), prior_scale()).to_event(1));
      auto p = plate("data", 4);
      sample("obs", dist::Normal(mu, obs_scale()).to_event(1), tensor(data, {4, 2}));
    };
  }
  // The guide with a normal family GuideNormal (reparameterised or not).
  template <class GuideNormal>
  auto guide() const {
    return [this] {
      Tensor mu_q = param("mu_q", tensor({post_mu[0] + 0.134f, post_mu[1] + 0.134f}));
      Tensor log_sig_q = param("log_sig_q", tensor({post_log_sig[0] - 0.14f, post_log_sig[1] - 0.14f}));
      sample("mu_latent", GuideNormal(mu_q, exp(log_sig_q)).to_event(1));
    };
  }
};

}  // namespace cuvi::testing
