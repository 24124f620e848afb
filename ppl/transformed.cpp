#include "transformed.hpp"

#include <cmath>

namespace cuvi::dist {

// ---- TransformedDistribution ---------------------------------------------------

TransformedDistribution::TransformedDistribution(DistPtr base, constraints::ConstraintPtr c)
    : TransformedDistribution(std::move(base),
                              std::vector<transforms::TransformPtr>{transforms::biject_to(c ? c : constraints::real)}) {}

TransformedDistribution::TransformedDistribution(DistPtr base, std::vector<transforms::TransformPtr> ts)
    : base_(std::move(base)), ts_(std::move(ts)), cache_(std::make_shared<Cache>()) {
  CUVI_CHECK(base_ != nullptr, ValueError, "TransformedDistribution: null base distribution");
  for (size_t k = 0; k < ts_.size(); ++k)
    CUVI_CHECK(ts_[k] != nullptr, ValueError, "TransformedDistribution: transform " << k << " is null");
  check();
}

// Every transform needs at least its own event dims in the event it gets
// (a simplex needs a 1-dim base event of size K-1, a flow a vector).
void TransformedDistribution::check() const {
  Shape e = base_->event_shape();
  for (const auto& t : ts_) {
    CUVI_CHECK(static_cast<int>(e.size()) >= t->event_dim(), ShapeError,
               "TransformedDistribution: " << t->name() << " needs an event with " << t->event_dim()
                                           << " dim(s), but it gets event shape " << shape_str(e) << " (from "
                                           << base_->name() << "; use .to_event(n))");
    e = t->forward_shape(e);  // throws ShapeError when e cannot hold an event
  }
}

std::string TransformedDistribution::name() const {
  std::string n = "TransformedDistribution(" + base_->name();
  for (const auto& t : ts_) n += ", " + t->name();
  return n + ")";
}

Shape TransformedDistribution::event_shape() const {
  Shape e = base_->event_shape();
  for (const auto& t : ts_) e = t->forward_shape(e);
  return e;
}

constraints::ConstraintPtr TransformedDistribution::support() const {
  return ts_.empty() ? base_->support() : ts_.back()->codomain();
}

std::vector<Tensor> TransformedDistribution::chain(Tensor u) const {
  std::vector<Tensor> xs{std::move(u)};
  for (const auto& t : ts_) xs.push_back(t->forward(xs.back()));
  return xs;
}

Tensor TransformedDistribution::log_prob(const Tensor& x) const {
  std::vector<Tensor> xs;
  if (!cache_->xs.empty() && cache_->xs.back().impl() == x.impl()) {
    xs = cache_->xs;
  } else {
    xs.assign(ts_.size() + 1, Tensor());
    xs.back() = x;
    for (size_t k = ts_.size(); k-- > 0;) xs[k] = ts_[k]->inverse(xs[k + 1]);
  }
  Tensor lp = base_->log_prob(xs[0]);
  // Sum each Jacobian term over the event dims of this distribution that
  // the transform does not already reduce.
  const int64_t result_batch_dims = x.dim() - static_cast<int64_t>(event_shape().size());
  for (size_t k = 0; k < ts_.size(); ++k) {
    Tensor ladj = ts_[k]->log_abs_det_jacobian(xs[k], xs[k + 1]);  // xs[k] less T_k's event dims
    lp = lp - sum_rightmost(ladj, ladj.dim() - result_batch_dims);
  }
  return lp;
}

Tensor TransformedDistribution::rsample(const Shape& s) const {
  cache_->xs = chain(base_->rsample(s));
  return cache_->xs.back();
}

Tensor TransformedDistribution::sample(const Shape& s) const {
  NoGradGuard ng;
  std::vector<Tensor> xs = chain(base_->sample(s).detach());
  for (Tensor& t : xs) t = t.detach();
  cache_->xs = xs;
  return xs.back();
}

TransformedDistribution::Flip TransformedDistribution::flip(const char* what) const {
  Flip f;
  for (const auto& t : ts_) {
    const int ts = t->sign();
    if (ts == 1 || ts == -1) {
      f.all = f.all != (ts < 0);
      continue;
    }
    const Tensor dec = t->decreasing();
    CUVI_CHECK(dec.defined(), ValueError,
               name() << "." << what << ": transform " << t->name()
                      << " is not an elementwise monotone map, so the distribution function does not carry through it"
                      << detail::site_suffix());
    f.where = f.where.defined() ? ne(f.where, dec) : dec;  // directions compose by exclusive or
  }
  return f;
}

// F, or 1 - F where the composed map decreases.
Tensor TransformedDistribution::Flip::apply(const Tensor& F) const {
  if (!where.defined()) return all ? 1.0f - F : F;
  const Tensor w = all ? 1.0f - where : where;
  return cuvi::where(w, 1.0f - F, F);
}

Tensor TransformedDistribution::cdf(const Tensor& x) const {
  const Flip f = flip("cdf");
  CUVI_CHECK(x.defined(), ValueError, name() << ".cdf: undefined value" << detail::site_suffix());
  Tensor u = x;
  for (size_t k = ts_.size(); k-- > 0;) u = ts_[k]->inverse(u);
  return f.apply(base_->cdf(u));
}

Tensor TransformedDistribution::icdf(const Tensor& q) const {
  const Flip f = flip("icdf");
  CUVI_CHECK(q.defined(), ValueError, name() << ".icdf: undefined value" << detail::site_suffix());
  Tensor x = base_->icdf(f.apply(q));
  for (const auto& t : ts_) x = t->forward(x);
  return x;
}

DistPtr TransformedDistribution::expand_ptr(const Shape& b) const {
  return std::make_shared<TransformedDistribution>(base_->expand_ptr(b), ts_);
}

}  // namespace cuvi::dist
