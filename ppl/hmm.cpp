#include "hmm.hpp"

#include <algorithm>

#include "../runtime/ops.hpp"

namespace cuvi::dist {

namespace {

Shape drop_right(const Shape& s, size_t n) { return Shape(s.begin(), s.end() - static_cast<std::ptrdiff_t>(std::min(n, s.size()))); }

Shape concat(Shape a, const Shape& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// f [..., T, S, S] -> the log-space product f[0] f[1] ... f[T-1], [..., S, S]:
// pairs of neighbours multiplied at once, round after round.
Tensor chain_product(Tensor t) {
  while (t.size(-3) > 1) {
    const int64_t n = t.size(-3), half = n / 2, S = t.size(-1);
    Shape pairs = drop_right(t.shape(), 3);
    pairs.insert(pairs.end(), {half, 2, S, S});
    const Tensor even = narrow(t, -3, 0, 2 * half).reshape(pairs);
    Tensor prod = logmatmulexp(narrow(even, -3, 0, 1).squeeze(-3), narrow(even, -3, 1, 1).squeeze(-3));
    if (n % 2) prod = cat({prod, narrow(t, -3, n - 1, 1)}, -3);
    t = prod;
  }
  return t.squeeze(-3);
}

}  // namespace

Tensor logmatmulexp(const Tensor& a, const Tensor& b) {
  // Shifts carry no gradient (the result does not depend on them); a row
  // or column of -inf keeps a finite shift.
  const Tensor sa = clamp_min(amax(a, {-1}, true), -1e30f);
  const Tensor sb = clamp_min(amax(b, {-2}, true), -1e30f);
  return log(matmul(exp(a - sa), exp(b - sb))) + sa + sb;
}

DiscreteHMM::DiscreteHMM(const Tensor& initial_logits, const Tensor& transition_logits,
                         const Distribution& observation_dist, std::optional<int64_t> duration) {
  CUVI_CHECK(initial_logits.defined() && initial_logits.dim() >= 1 && initial_logits.size(-1) >= 1, ShapeError,
             "DiscreteHMM: initial_logits must have a last dim of S >= 1 states");
  S_ = initial_logits.size(-1);
  CUVI_CHECK(transition_logits.defined() && transition_logits.dim() >= 2 && transition_logits.size(-1) == S_ &&
                 transition_logits.size(-2) == S_,
             ShapeError,
             "DiscreteHMM: transition_logits of shape "
                 << (transition_logits.defined() ? shape_str(transition_logits.shape()) : std::string("(undefined)"))
                 << " for " << S_ << " states (want [..., S, S] or [..., T, S, S])");
  Shape ob = observation_dist.batch_shape();
  CUVI_CHECK(!ob.empty() && ob.back() == S_, ShapeError,
             "DiscreteHMM: observation_dist " << observation_dist.name() << " has batch shape " << shape_str(ob)
                                              << "; want [..., S] or [..., T, S] with S = " << S_);
  const bool trans_time = transition_logits.dim() >= 3, obs_time = ob.size() >= 2;
  const int64_t tt = trans_time ? transition_logits.size(-3) : 1, to = obs_time ? ob[ob.size() - 2] : 1;
  if (duration) {
    T_ = *duration;
  } else {
    CUVI_CHECK(trans_time || obs_time, ValueError,
               "DiscreteHMM: give duration (neither transition_logits nor observation_dist has a time dim)");
    T_ = std::max(tt, to);
  }
  CUVI_CHECK(T_ >= 1, ValueError, "DiscreteHMM: duration must be >= 1, got " << T_);
  CUVI_CHECK((tt == 1 || tt == T_) && (to == 1 || to == T_), ShapeError,
             "DiscreteHMM: time dims " << tt << " (transition_logits) and " << to
                                       << " (observation_dist) do not fit duration " << T_);
  batch_ = broadcast_shapes(drop_right(initial_logits.shape(), 1), drop_right(transition_logits.shape(), 3),
                            "DiscreteHMM");
  batch_ = broadcast_shapes(batch_, drop_right(ob, 2), "DiscreteHMM");
  init_ = log_softmax(initial_logits, -1);
  trans_ = log_softmax(trans_time ? transition_logits : transition_logits.unsqueeze(0), -1);
  obs_ = obs_time ? observation_dist.clone() : observation_dist.expand_ptr({1, S_});
}

Shape DiscreteHMM::event_shape() const { return concat({T_}, obs_->event_shape()); }

Tensor DiscreteHMM::step_factors(const Tensor& x) const {
  const Shape ev = obs_->event_shape();
  const int64_t ne = static_cast<int64_t>(ev.size());
  CUVI_CHECK(x.defined() && x.dim() >= 1 + ne && x.size(-1 - ne) == T_ &&
                 Shape(x.shape().end() - ne, x.shape().end()) == ev,
             ShapeError,
             "DiscreteHMM: value of shape " << (x.defined() ? shape_str(x.shape()) : std::string("(undefined)"))
                                            << " for event shape " << shape_str(event_shape()));
  // Each step's value against every state: [..., T, S].
  const Tensor lp = obs_->log_prob(x.unsqueeze(x.dim() - ne));
  return trans_ + lp.unsqueeze(-2);
}

Tensor DiscreteHMM::log_prob(const Tensor& x) const {
  const Tensor r = chain_product(step_factors(x));  // [..., S(z_{-1}), S(z_{T-1})]
  return logsumexp(init_ + logsumexp(r, {-1}), {-1});
}

Categorical DiscreteHMM::filter(const Tensor& x) const {
  const Tensor r = chain_product(step_factors(x));
  return Categorical::from_logits(logsumexp(init_.unsqueeze(-1) + r, {-2}));
}

Tensor DiscreteHMM::sample(const Shape& sample_shape) const {
  NoGradGuard ng;
  const Shape full = concat(sample_shape, batch_);
  const Shape ev = obs_->event_shape();
  const Tensor states = arange(S_, device());
  // Every step's observation under every state, then each step's own.
  const Tensor all = obs_->expand_ptr(concat(batch_, {T_, S_}))->sample(sample_shape);  // [full, T, S, ev]
  Tensor z = Categorical::from_logits(init_.expand(concat(full, {S_}))).sample();      // z_{-1}
  std::vector<Tensor> zs;
  for (int64_t t = 0; t < T_; ++t) {
    const Tensor tr = narrow(trans_, -3, trans_.size(-3) == 1 ? 0 : t, 1).squeeze(-3);  // [..., S, S]
    const Tensor row = eq(states, z.to_float().unsqueeze(-1));                         // one-hot [full, S]
    z = Categorical::from_logits(sum(row.unsqueeze(-1) * tr, {-2})).sample();
    zs.push_back(z.to_float());
  }
  Shape pick = concat(concat(full, {T_, S_}), Shape(ev.size(), 1));
  const Tensor onehot = eq(states, stack(zs, -1).unsqueeze(-1)).reshape(pick);  // [full, T, S, 1...]
  const Tensor x = sum(all.to_float() * onehot, {-1 - static_cast<int64_t>(ev.size())});
  return all.dtype() == DType::kInt64 ? x.to_int64() : x;
}

DistPtr DiscreteHMM::expand_ptr(const Shape& batch) const {
  auto d = std::make_shared<DiscreteHMM>(*this);
  d->batch_ = broadcast_shapes(batch_, batch, "DiscreteHMM.expand");
  CUVI_CHECK(d->batch_ == batch, ShapeError,
             "DiscreteHMM.expand: batch shape " << shape_str(batch_) << " cannot expand to " << shape_str(batch));
  d->init_ = init_.expand(concat(batch, {S_}));
  d->trans_ = trans_.expand(concat(batch, {trans_.size(-3), S_, S_}));
  d->obs_ = obs_->expand_ptr(concat(batch, {obs_->batch_shape()[obs_->batch_shape().size() - 2], S_}));
  return d;
}

}  // namespace cuvi::dist
