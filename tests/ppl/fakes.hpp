// Test doubles shared by the inference tests (as Pyro's tests/fakes).
#pragma once

#include <gtest/gtest.h>

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

}  // namespace cuvi::testing
