#include "transformed.hpp"

#include <cmath>

namespace cuvi::dist {

// ---- TransformedDistribution ---------------------------------------------------

TransformedDistribution::TransformedDistribution(DistPtr base, constraints::ConstraintPtr c)
    : base_(std::move(base)), c_(std::move(c)), cache_(std::make_shared<Cache>()) {
  CUVI_CHECK(base_ != nullptr, ValueError, "TransformedDistribution: null base distribution");
  if (!c_) c_ = constraints::real;
  CUVI_CHECK(!c_->is_discrete(), ValueError,
             "TransformedDistribution: constraint " << c_->name() << " is discrete and has no bijection");
  // The base's event must hold at least one event of the constraint's
  // unconstrained space (a simplex needs a 1-dim base event of size K-1).
  const Shape e = base_->event_shape();
  const Shape ce = c_->constrained_shape(e);  // throws ShapeError when e cannot hold an event
  const int c_uncon_event = c_->event_dim() - static_cast<int>(ce.size() - e.size());
  CUVI_CHECK(static_cast<int>(e.size()) >= c_uncon_event, ShapeError,
             "TransformedDistribution: constraint " << c_->name() << " needs a base with " << c_uncon_event
                                                    << " event dim(s), but " << base_->name() << " has event shape "
                                                    << shape_str(e) << " (use .to_event(n))");
}

Shape TransformedDistribution::event_shape() const { return c_->constrained_shape(base_->event_shape()); }

Tensor TransformedDistribution::log_prob(const Tensor& x) const {
  const bool cached = cache_->x.defined() && cache_->x.impl() == x.impl();
  const Tensor u = cached ? cache_->u : c_->inverse(x);
  const Tensor lp = base_->log_prob(u);
  Tensor ladj = c_->log_abs_det_jacobian(u, x);  // shape: x less c's event dims
  // Sum the Jacobian over the event dims of this distribution that the
  // constraint does not already reduce.
  const int64_t result_batch_dims = x.dim() - static_cast<int64_t>(event_shape().size());
  ladj = sum_rightmost(ladj, ladj.dim() - result_batch_dims);
  return lp - ladj;
}

Tensor TransformedDistribution::rsample(const Shape& s) const {
  Tensor u = base_->rsample(s);
  Tensor x = c_->transform(u);
  cache_->x = x;
  cache_->u = u;
  return x;
}

Tensor TransformedDistribution::sample(const Shape& s) const {
  NoGradGuard ng;
  Tensor u = base_->sample(s).detach();
  Tensor x = c_->transform(u).detach();
  cache_->x = x;
  cache_->u = u;
  return x;
}

DistPtr TransformedDistribution::expand_ptr(const Shape& b) const {
  return std::make_shared<TransformedDistribution>(base_->expand_ptr(b), c_);
}

}  // namespace cuvi::dist
