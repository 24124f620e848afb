#include "mixture.hpp"

#include "../runtime/ops.hpp"

namespace cuvi::dist {

namespace {

Shape with(Shape a, const Shape& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

MixtureSameFamily::MixtureSameFamily(const Categorical& mixture_distribution,
                                     const Distribution& component_distribution)
    : mix_(mixture_distribution), comp_(component_distribution.clone()) {
  const Shape cb = comp_->batch_shape();
  const int64_t k = mix_.param().size(-1);
  CUVI_CHECK(!cb.empty() && cb.back() == k, ShapeError,
             "MixtureSameFamily: component_distribution " << comp_->name() << " has batch shape " << shape_str(cb)
                                                          << "; its rightmost batch dim must be the mixture's " << k
                                                          << " components" << detail::site_suffix());
  CUVI_CHECK(mix_.device() == comp_->device(), DeviceError,
             "MixtureSameFamily: mixture_distribution on " << mix_.device().str() << " but component_distribution on "
                                                           << comp_->device().str() << detail::site_suffix());
  k_ = k;
  batch_ = broadcast_shapes(mix_.batch_shape(), Shape(cb.begin(), cb.end() - 1), "MixtureSameFamily");
}

Tensor MixtureSameFamily::weights_for_event() const {
  Tensor w = mix_.probs();
  for (int i = 0; i < event_dim(); ++i) w = w.unsqueeze(-1);
  return w;
}

Tensor MixtureSameFamily::log_prob(const Tensor& x) const {
  const Shape ev = event_shape();
  const int64_t ne = static_cast<int64_t>(ev.size());
  CUVI_CHECK(x.defined() && x.dim() >= ne && Shape(x.shape().end() - ne, x.shape().end()) == ev, ShapeError,
             "MixtureSameFamily: value of shape " << (x.defined() ? shape_str(x.shape()) : std::string("(undefined)"))
                                                  << " for event shape " << shape_str(ev) << detail::site_suffix());
  // Every value against every component: a K dim right of the batch dims.
  const Tensor lp = comp_->log_prob(x.unsqueeze(x.dim() - ne));
  return logsumexp(lp + mix_.logits(), {-1});
}

Tensor MixtureSameFamily::sample(const Shape& sample_shape) const {
  NoGradGuard ng;
  const Shape full = with(sample_shape, batch_);
  const Shape ev = event_shape();
  const Tensor which = mix_.expand_ptr(full)->sample();                               // int64 [full]
  const Tensor all = comp_->expand_ptr(with(batch_, {k_}))->sample(sample_shape);     // [full, K, ev]
  Shape pick = with(full, {k_});
  pick.insert(pick.end(), ev.size(), 1);
  const Tensor onehot = eq(arange(k_, device()), which.to_float().unsqueeze(-1)).reshape(pick);
  const Tensor x = sum(all.to_float() * onehot, {static_cast<int64_t>(full.size())});
  return all.dtype() == DType::kInt64 ? x.to_int64() : x;
}

Tensor MixtureSameFamily::mean() const {
  const int64_t kdim = -1 - event_dim();
  return sum(weights_for_event() * comp_->mean(), {kdim});
}

Tensor MixtureSameFamily::variance() const {
  const int64_t kdim = -1 - event_dim();
  const Tensor w = weights_for_event(), m = comp_->mean();
  const Tensor mu = sum(w * m, {kdim}, true);
  return sum(w * (comp_->variance() + square(m - mu)), {kdim});
}

Tensor MixtureSameFamily::cdf(const Tensor& x) const {
  CUVI_CHECK(event_dim() == 0, ValueError,
             name() << ".cdf: defined for univariate components, not event shape " << shape_str(event_shape())
                    << detail::site_suffix());
  CUVI_CHECK(x.defined(), ValueError, name() << ".cdf: undefined value" << detail::site_suffix());
  return sum(comp_->cdf(x.unsqueeze(-1)) * mix_.probs(), {-1});
}

DistPtr MixtureSameFamily::expand_ptr(const Shape& batch) const {
  const Shape b = broadcast_shapes(batch_, batch, "MixtureSameFamily.expand");
  CUVI_CHECK(b == batch, ShapeError,
             "MixtureSameFamily.expand: batch shape " << shape_str(batch_) << " cannot expand to " << shape_str(batch));
  const auto mix = std::static_pointer_cast<const Categorical>(mix_.expand_ptr(batch));
  return std::make_shared<MixtureSameFamily>(*mix, *comp_->expand_ptr(with(batch, {k_})));
}

}  // namespace cuvi::dist
