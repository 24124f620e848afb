// Pyro's Gaussian mixture model tutorial: K components with weights ~
// Dirichlet(0.5), a shared scale ~ LogNormal(0, 2) and locs ~ N(0, 10); each
// datapoint's assignment is a discrete latent variable that TraceEnum_ELBO
// sums out exactly (it is marked for parallel enumeration), so the guide
// only holds the globals: a MAP guide (Delta at a param for each).
// infer_discrete then gives each point's most likely component.
#pragma once

#include <cuvi.hpp>

namespace cuvi_examples {

struct GMM {
  int64_t k = 2;
  cuvi::Tensor init_locs;  // [k], e.g. spread over the data

  void model(const cuvi::Tensor& data) const {
    using namespace cuvi;
    Tensor weights = sample("weights", dist::Dirichlet(full({k}, 0.5f, data.device())));
    Tensor scale = sample("scale", dist::LogNormal(0.0f, 2.0f));
    Tensor locs;
    {
      auto components = plate("components", k);
      locs = sample("locs", dist::Normal(0.0f, 10.0f));
    }
    auto points = plate("data", data.size(0));
    Tensor a = sample("assignment", dist::Categorical(weights), Infer{"parallel"});
    // The locs of each assignment value (a has the enumeration dim on its left).
    Tensor loc = index_select(locs, 0, a.reshape({a.numel()})).reshape(a.shape());
    sample("obs", dist::Normal(loc, scale), data);
  }

  void guide(const cuvi::Tensor& data) const {
    using namespace cuvi;
    Tensor w = param("weights_map", full({k}, 1.0f / static_cast<float>(k), data.device()), constraints::simplex);
    Tensor s = param("scale_map", 1.0f, constraints::positive);
    Tensor l = param("locs_map", init_locs);
    sample("weights", dist::Delta(w).to_event(1));
    sample("scale", dist::Delta(s));
    auto components = plate("components", k);
    sample("locs", dist::Delta(l));
  }
};

}  // namespace cuvi_examples
