// The coin example of Pyro's SVI Part I: is a coin fair, given six heads and
// four tails and a Beta(10, 10) prior? The guide is a Beta with learnable,
// positive parameters; the exact posterior is Beta(16, 14).
#pragma once

#include <cuvi.hpp>

namespace cuvi_examples {

inline void coin_model(const cuvi::Tensor& data) {
  using namespace cuvi;
  Tensor f = sample("latent_fairness", dist::Beta(10.0f, 10.0f));
  auto p = plate("data", data.size(0));
  sample("obs", dist::Bernoulli(f), data);
}

inline void coin_guide(const cuvi::Tensor&) {
  using namespace cuvi;
  Tensor a = param("alpha_q", 15.0f, constraints::positive);
  Tensor b = param("beta_q", 15.0f, constraints::positive);
  sample("latent_fairness", dist::Beta(a, b));
}

}  // namespace cuvi_examples
