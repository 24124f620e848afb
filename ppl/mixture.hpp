// torch's (and Pyro's) MixtureSameFamily: K components of one family mixed
// by a Categorical,
//   p(x) = sum_k w_k p_k(x),   w = softmax of the mixture's logits.
// mixture_distribution: a Categorical over K, batch shape broadcasting with
// the component batch shape's leading dims. component_distribution: any
// distribution with batch shape [..., K] (the rightmost batch dim indexes
// the components) and event shape E. The mixture has batch shape the
// broadcast of the two (K dropped) and event shape E.
//   log_prob(x) = logsumexp_k(log w_k + log p_k(x)), differentiable with
//                 respect to x, the weights and the components' parameters;
//   sample()    = a component per element, then that component's draw (no
//                 rsample, as torch: the choice is discrete);
//   mean()      = sum_k w_k mean_k; variance() = sum_k w_k (var_k + mean_k^2)
//                 - mean^2 (the law of total variance), elementwise over E;
//   cdf(x)      = sum_k w_k cdf_k(x) for univariate components with a cdf
//                 (torch's).
// Typical use, a Gaussian mixture likelihood without enumeration:
//   sample("obs", dist::MixtureSameFamily(dist::Categorical(weights),
//                                         dist::Normal(locs, scale)), data);
#pragma once

#include "distributions.hpp"

namespace cuvi::dist {

class MixtureSameFamily final : public Distribution {
 public:
  MixtureSameFamily(const Categorical& mixture_distribution, const Distribution& component_distribution);
  const Categorical& mixture_distribution() const { return mix_; }
  const Distribution& component_distribution() const { return *comp_; }
  int64_t num_components() const { return k_; }

  std::string name() const override { return "MixtureSameFamily(" + comp_->name() + ")"; }
  DistPtr clone() const override { return std::make_shared<MixtureSameFamily>(*this); }
  Shape batch_shape() const override { return batch_; }
  Shape event_shape() const override { return comp_->event_shape(); }
  bool is_discrete() const override { return comp_->is_discrete(); }
  constraints::ConstraintPtr support() const override { return comp_->support(); }
  Tensor log_prob(const Tensor& x) const override;
  Tensor sample(const Shape& sample_shape = {}) const override;
  Tensor mean() const override;
  Tensor variance() const override;
  Tensor cdf(const Tensor& x) const override;
  DistPtr expand_ptr(const Shape& batch) const override;
  Device device() const override { return comp_->device(); }

 private:
  // The weights shaped [batch..., K, 1 (per event dim)], for the moments.
  Tensor weights_for_event() const;
  Categorical mix_;
  DistPtr comp_;
  int64_t k_ = 0;
  Shape batch_;
};

}  // namespace cuvi::dist
