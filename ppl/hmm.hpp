// Pyro's DiscreteHMM: a hidden Markov model with S discrete states and any
// observation distribution, its states summed out by the forward
// algorithm. The T steps are combined as a balanced tree of log-space
// matrix products (a parallel scan: about log2(T) rounds of batched
// products, each one matmul), so a long sequence costs O(log T) launches on
// a GPU, not O(T); gradients flow to every parameter through autodiff.
#pragma once

#include <optional>

#include "distributions.hpp"

namespace cuvi::dist {

// Shapes (batch dims broadcast against each other):
//   initial_logits     [..., S]: the state z_{-1} before the first step.
//   transition_logits  [..., S, S] (the same every step) or [..., T, S, S]:
//                      row i holds log p(z_t = j | z_{t-1} = i) up to a
//                      constant (each row is normalised).
//   observation_dist   batch shape [..., S] or [..., T, S]: column s is
//                      p(x_t | z_t = s).
//   duration           T, required when neither has a time dim (else it
//                      must agree with them).
// The value is [batch..., T, obs event...]: time is the leftmost event dim.
//   log_prob(x) = log sum_z p(z_{-1}) prod_t p(z_t | z_{t-1}) p(x_t | z_t).
// sample() draws states and observations ancestrally (T steps); filter(x)
// gives the posterior of the last state z_{T-1}.
class DiscreteHMM final : public Distribution {
 public:
  DiscreteHMM(const Tensor& initial_logits, const Tensor& transition_logits, const Distribution& observation_dist,
              std::optional<int64_t> duration = std::nullopt);
  std::string name() const override { return "DiscreteHMM"; }
  DistPtr clone() const override { return std::make_shared<DiscreteHMM>(*this); }
  Shape batch_shape() const override { return batch_; }
  Shape event_shape() const override;
  bool is_discrete() const override { return obs_->is_discrete(); }
  constraints::ConstraintPtr support() const override { return obs_->support(); }
  Tensor log_prob(const Tensor& x) const override;
  Tensor sample(const Shape& sample_shape = {}) const override;
  DistPtr expand_ptr(const Shape& batch) const override;
  Device device() const override { return init_.device(); }

  // The posterior p(z_{T-1} | x) as a Categorical over the S states, batch
  // shape broadcast(batch_shape, x's batch dims).
  Categorical filter(const Tensor& x) const;

  int64_t duration() const { return T_; }
  int64_t num_states() const { return S_; }
  // Normalised logits: initial [..., S], transitions [..., T or 1, S, S].
  const Tensor& initial_logits() const { return init_; }
  const Tensor& transition_logits() const { return trans_; }
  const Distribution& observation_dist() const { return *obs_; }

 private:
  // [x batch..., T, S(from), S(to)]: log p(z_t | z_{t-1}) + log p(x_t | z_t).
  Tensor step_factors(const Tensor& x) const;
  Tensor init_, trans_;
  DistPtr obs_;  // batch [..., T or 1, S]
  int64_t S_ = 0, T_ = 0;
  Shape batch_;
};

// log(exp(a) @ exp(b)) over the last two dims, batched: one matrix product
// of exponentials shifted by a's row maxima and b's column maxima. A sum
// whose every term lies more than ~87 below those maxima (exp underflows
// in float) comes out -inf.
Tensor logmatmulexp(const Tensor& a, const Tensor& b);

}  // namespace cuvi::dist
