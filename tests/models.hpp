// Models that several test binaries share.
#pragma once

#include <cmath>
#include <cstdint>

#include <cuvi.hpp>

namespace cuvi::testing {

// Pyro's minibatched "map data" test: N draws x_i of N(mu, 1), prior
// mu ~ N(0, 10), a plate of N subsampled to `batch`, a Normal guide on mu
// (params "loc" and "scale"). The exact posterior is
// N(sum x / (N + 1/100), 1 / (N + 1/100)).
struct MapData {
  Tensor data;
  int64_t batch = 10;

  void model() const {
    Tensor mu = sample("mu", dist::Normal(0.0f, 10.0f));
    auto p = plate("data", data.size(0), batch);
    sample("obs", dist::Normal(mu, 1.0f), p.subsample(data));
  }
  static void guide() {
    Tensor loc = param("loc", 0.0f);
    Tensor sc = param("scale", 1.0f, constraints::positive);
    sample("mu", dist::Normal(loc, sc));
  }
  double precision() const { return static_cast<double>(data.size(0)) + 0.01; }
  double post_mean() const {
    double sx = 0;
    for (float x : data.to_vector()) sx += x;
    return sx / precision();
  }
  double post_sd() const { return 1.0 / std::sqrt(precision()); }
};

// Local latents: mu ~ N(0, 3); in a plate of n subsampled to b,
// z_i ~ N(mu, 1) and x_i ~ N(z_i, 1) observed.
inline auto local_latent_model(int64_t n, int64_t b) {
  return [n, b](const Tensor& x) {
    Tensor mu = sample("mu", dist::Normal(0.0f, 3.0f));
    auto p = plate("data", n, b);
    Tensor z = sample("z", dist::Normal(mu, 1.0f));
    sample("x", dist::Normal(z, 1.0f), p.subsample(x));
  };
}

}  // namespace cuvi::testing
