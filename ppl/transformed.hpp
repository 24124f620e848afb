// Distributions built from others by a constraint's bijection (Pyro's
// TransformedDistribution(base, biject_to(constraint))) and a point mass
// whose log-density is a tensor (Pyro's Delta(v, log_density=tensor)).
#pragma once

#include <memory>
#include <string>

#include "distributions.hpp"

namespace cuvi::dist {

// x = c->transform(u), u ~ base, where base lives in c's unconstrained space
// (base.shape() == c->unconstrained_shape(x.shape())).
//   log_prob(x) = base.log_prob(u) - log|det d transform/du|(u),  u = c->inverse(x)
// The Jacobian term is summed over every dim that is an event dim of the
// result, so base may be Independent over more dims than c's own event dims
// (e.g. Normal(loc [3], s).to_event(1) under positive: 3-dim event). The
// event shape is c->constrained_shape(base event shape), e.g. a simplex
// constraint maps a base event [K-1] to [K]. rsample/sample draw u from base
// and transform it; the last (x, u) pair drawn is cached (as Pyro's
// _cache_size=1), so log_prob of a value this object drew reuses its u and
// gradients flow to base's parameters without going through c->inverse.
class TransformedDistribution final : public Distribution {
 public:
  TransformedDistribution(DistPtr base, constraints::ConstraintPtr c);
  const DistPtr& base() const { return base_; }
  const constraints::ConstraintPtr& constraint() const { return c_; }
  std::string name() const override { return "TransformedDistribution(" + base_->name() + ", " + c_->name() + ")"; }
  DistPtr clone() const override { return std::make_shared<TransformedDistribution>(*this); }
  Shape batch_shape() const override { return base_->batch_shape(); }
  Shape event_shape() const override;
  bool has_rsample() const override { return base_->has_rsample(); }
  constraints::ConstraintPtr support() const override { return c_; }
  Tensor log_prob(const Tensor& x) const override;
  Tensor rsample(const Shape& s = {}) const override;
  Tensor sample(const Shape& s = {}) const override;
  DistPtr expand_ptr(const Shape& b) const override;
  Device device() const override { return base_->device(); }

 private:
  struct Cache {
    Tensor x, u;
  };
  DistPtr base_;
  constraints::ConstraintPtr c_;
  std::shared_ptr<Cache> cache_;  // shared by copies (clone() before a draw keeps it)
};

}  // namespace cuvi::dist
