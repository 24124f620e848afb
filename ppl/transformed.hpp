// Distributions built from others by a constraint's bijection (Pyro's
// TransformedDistribution(base, biject_to(constraint))) and a point mass
// whose log-density is a tensor (Pyro's Delta(v, log_density=tensor)).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "distributions.hpp"
#include "flows.hpp"

namespace cuvi::dist {

// x = T_n(... T_1(u)), u ~ base: Pyro's TransformedDistribution(base, [T_1,
// ..., T_n]). The constraint form TransformedDistribution(base, c) is
// TransformedDistribution(base, {biject_to(c)}), so base then lives in c's
// unconstrained space (base.shape() == c->unconstrained_shape(x.shape())).
//   log_prob(x) = base.log_prob(u) - sum_k log|det dT_k/dx_{k-1}|(x_{k-1}),
//   x_0 = u, x_k = T_k(x_{k-1}), recovered from x by the inverses.
// Each Jacobian term is summed over every dim that is an event dim of the
// result, so base may be Independent over more dims than a transform's own
// event dims (e.g. Normal(loc [3], s).to_event(1) under positive: 3-dim
// event). The event shape is base's mapped through each transform's
// forward_shape (a simplex maps [K-1] to [K]); the support is the last
// transform's codomain. rsample/sample draw u from base and transform it;
// the last draw's chain (x_0, ..., x_n) is cached (Pyro's _cache_size=1), so
// log_prob of a value this object drew reuses it: gradients flow to base's
// and the transforms' parameters without inverting, and transforms without
// an inverse (Planar) can be scored on their own draws.
class TransformedDistribution final : public Distribution {
 public:
  TransformedDistribution(DistPtr base, constraints::ConstraintPtr c);
  TransformedDistribution(DistPtr base, std::vector<transforms::TransformPtr> ts);
  const DistPtr& base() const { return base_; }
  const std::vector<transforms::TransformPtr>& transforms() const { return ts_; }
  // The support (the last transform's codomain; base's when there is none).
  constraints::ConstraintPtr constraint() const { return support(); }
  std::string name() const override;
  DistPtr clone() const override { return std::make_shared<TransformedDistribution>(*this); }
  Shape batch_shape() const override { return base_->batch_shape(); }
  Shape event_shape() const override;
  bool has_rsample() const override { return base_->has_rsample(); }
  constraints::ConstraintPtr support() const override;
  Tensor log_prob(const Tensor& x) const override;
  // Through elementwise monotone transforms (every transform's sign() must
  // be nonzero or its decreasing() defined, else ValueError naming it), as
  // torch does: cdf(x) = base.cdf(T^-1(x)), or 1 - that where the composed
  // map decreases; icdf(q) = T(base.icdf(q or 1 - q)).
  Tensor cdf(const Tensor& x) const override;
  Tensor icdf(const Tensor& q) const override;
  Tensor rsample(const Shape& s = {}) const override;
  Tensor sample(const Shape& s = {}) const override;
  DistPtr expand_ptr(const Shape& b) const override;
  Device device() const override { return base_->device(); }

 private:
  void check() const;
  std::vector<Tensor> chain(Tensor u) const;  // x_0 .. x_n
  // Where the composed map decreases: everywhere (all), or per element
  // (where, 0/1, from transforms with a tensor direction; exclusive or with all).
  struct Flip {
    bool all = false;
    Tensor where;
    Tensor apply(const Tensor& F) const;  // F, or 1 - F where the map decreases
  };
  Flip flip(const char* what) const;
  struct Cache {
    std::vector<Tensor> xs;
  };
  DistPtr base_;
  std::vector<transforms::TransformPtr> ts_;
  std::shared_ptr<Cache> cache_;  // shared by copies (clone() before a draw keeps it)
};

}  // namespace cuvi::dist
