// Distributions (dist::), in PyTorch's parameterisations. Elementwise
// families run their own batched kernels (ppl/family_ops.hpp); event-shaped
// ones (Delta, MultivariateNormal, RelaxedOneHotCategorical,
// LowRankMultivariateNormal) are compositions of runtime ops; Categorical
// and Dirichlet run row kernels (kernels/dist/row_family.hpp),
// OneHotCategorical and Multinomial row bodies (kernels/dist/multinomial.hpp).
#pragma once

#include <array>
#include <memory>
#include <string>

#include "../kernels/dist/asymmetric_laplace.hpp"
#include "../kernels/dist/bernoulli.hpp"
#include "../kernels/dist/beta.hpp"
#include "../kernels/dist/cauchy.hpp"
#include "../kernels/dist/compound.hpp"
#include "../kernels/dist/counts.hpp"
#include "../kernels/dist/exponential.hpp"
#include "../kernels/dist/gamma.hpp"
#include "../kernels/dist/gumbel.hpp"
#include "../kernels/dist/laplace.hpp"
#include "../kernels/dist/lognormal.hpp"
#include "../kernels/dist/normal.hpp"
#include "../kernels/dist/pareto.hpp"
#include "../kernels/dist/poisson.hpp"
#include "../kernels/dist/positive.hpp"
#include "../kernels/dist/studentt.hpp"
#include "../kernels/dist/uniform.hpp"
#include "../kernels/dist/unit_interval.hpp"
#include "../kernels/dist/vonmises.hpp"
#include "constraints.hpp"
#include "family_ops.hpp"

namespace cuvi::dist {

class Dist;

class Distribution {
 public:
  virtual ~Distribution() = default;
  virtual std::string name() const = 0;
  virtual std::shared_ptr<const Distribution> clone() const = 0;
  virtual Shape batch_shape() const = 0;
  virtual Shape event_shape() const { return {}; }
  virtual bool has_rsample() const { return false; }
  virtual bool is_discrete() const { return false; }
  virtual constraints::ConstraintPtr support() const = 0;
  // Log-density of x; shape: x's batch dims broadcast with batch_shape().
  virtual Tensor log_prob(const Tensor& x) const = 0;
  // A reparameterised draw of shape sample_shape + batch + event.
  virtual Tensor rsample(const Shape& sample_shape = {}) const;
  // A draw without gradient.
  virtual Tensor sample(const Shape& sample_shape = {}) const;
  virtual Tensor mean() const;
  virtual Tensor variance() const;
  // P(X <= x) (shape broadcast(x, batch_shape())), its inverse at
  // probabilities q in [0, 1], and the (differential) entropy -E[log p(X)]
  // (batch_shape()), in closed form, differentiable in the parameters and
  // in x / q, as PyTorch's cdf / icdf / entropy. x is validated against the
  // support and q against [0, 1] like log_prob's values (deferred on a GPU).
  // ValueError naming the distribution where there is no closed form.
  virtual Tensor cdf(const Tensor& x) const;
  virtual Tensor icdf(const Tensor& q) const;
  virtual Tensor entropy() const;
  // coef * sum(log_prob(x)) as a 0-d tensor: the ELBO's term for a site.
  // Families override it with the fused one-pass kernel.
  virtual Tensor log_prob_sum(const Tensor& x, float coef) const;
  // Finite discrete supports (Pyro's has_enumerate_support): Bernoulli,
  // Categorical, and wrappers of them (not Independent with reinterpreted
  // dims, whose support is a product).
  virtual bool has_enumerate_support() const { return false; }
  // Every value of the support once, [K] + event_shape(), in order (0, 1,
  // ..., K-1), on device(); ValueError naming the distribution without one.
  virtual Tensor support_values() const;
  // Pyro's enumerate_support(expand=False): support_values() with a 1 for
  // every batch dim, [K] + [1] * batch_shape().size() + event_shape(), so
  // it broadcasts against the batch.
  Tensor enumerate_support() const;
  // A copy with batch_shape `batch` (parameters broadcast to it).
  virtual std::shared_ptr<const Distribution> expand_ptr(const Shape& batch) const = 0;
  // The device parameters live on (default_device() for all-constant ones).
  virtual Device device() const = 0;

  Dist expand(const Shape& batch) const;
  Dist to_event(int n) const;
  // Pyro's fn.mask(mask): log_prob is 0 where mask is 0 (float32 or int64
  // 0/1, broadcast with batch_shape(), which becomes their broadcast), and
  // the base's where it is 1; mask(false) drops every term, mask(true) none.
  Dist mask(const Tensor& mask) const;
  Dist mask(bool keep) const;
  int event_dim() const { return static_cast<int>(event_shape().size()); }
  Shape shape(const Shape& sample_shape = {}) const;
};
using DistPtr = std::shared_ptr<const Distribution>;

// A distribution by value, holding any other (what expand/to_event return).
class Dist : public Distribution {
 public:
  explicit Dist(DistPtr d);
  const DistPtr& ptr() const { return d_; }
  std::string name() const override { return d_->name(); }
  DistPtr clone() const override { return d_; }
  Shape batch_shape() const override { return d_->batch_shape(); }
  Shape event_shape() const override { return d_->event_shape(); }
  bool has_rsample() const override { return d_->has_rsample(); }
  bool is_discrete() const override { return d_->is_discrete(); }
  constraints::ConstraintPtr support() const override { return d_->support(); }
  bool has_enumerate_support() const override { return d_->has_enumerate_support(); }
  Tensor support_values() const override { return d_->support_values(); }
  Tensor log_prob(const Tensor& x) const override { return d_->log_prob(x); }
  Tensor rsample(const Shape& s = {}) const override { return d_->rsample(s); }
  Tensor sample(const Shape& s = {}) const override { return d_->sample(s); }
  Tensor mean() const override { return d_->mean(); }
  Tensor variance() const override { return d_->variance(); }
  Tensor cdf(const Tensor& x) const override { return d_->cdf(x); }
  Tensor icdf(const Tensor& q) const override { return d_->icdf(q); }
  Tensor entropy() const override { return d_->entropy(); }
  Tensor log_prob_sum(const Tensor& x, float coef) const override { return d_->log_prob_sum(x, coef); }
  DistPtr expand_ptr(const Shape& b) const override { return d_->expand_ptr(b); }
  Device device() const override { return d_->device(); }

 private:
  DistPtr d_;
};

// Reinterprets the rightmost n batch dims as event dims (log_prob sums them).
class Independent final : public Distribution {
 public:
  Independent(DistPtr base, int n);
  const DistPtr& base() const { return base_; }
  int reinterpreted() const { return n_; }
  std::string name() const override { return "Independent(" + base_->name() + ")"; }
  DistPtr clone() const override { return std::make_shared<Independent>(*this); }
  Shape batch_shape() const override;
  Shape event_shape() const override;
  bool has_rsample() const override { return base_->has_rsample(); }
  bool is_discrete() const override { return base_->is_discrete(); }
  constraints::ConstraintPtr support() const override { return base_->support(); }
  bool has_enumerate_support() const override { return n_ == 0 && base_->has_enumerate_support(); }
  Tensor support_values() const override;
  Tensor log_prob(const Tensor& x) const override;
  Tensor rsample(const Shape& s = {}) const override { return base_->rsample(s); }
  Tensor sample(const Shape& s = {}) const override { return base_->sample(s); }
  Tensor mean() const override { return base_->mean(); }
  Tensor variance() const override { return base_->variance(); }
  // The base's entropy summed over the reinterpreted dims (a joint cdf has
  // no closed form here, as in PyTorch).
  Tensor entropy() const override;
  Tensor log_prob_sum(const Tensor& x, float coef) const override { return base_->log_prob_sum(x, coef); }
  DistPtr expand_ptr(const Shape& b) const override;
  Device device() const override { return base_->device(); }

 private:
  DistPtr base_;
  int n_;
};

// Pyro's MaskedDistribution (what Distribution::mask returns): draws,
// moments and support are the base's (expanded to the broadcast batch
// shape); log_prob(x) is where(mask, base.log_prob(x), 0), so a masked term
// contributes nothing to the value or the gradient of an ELBO. The values
// are still validated against the support everywhere, as Pyro does.
class Masked final : public Distribution {
 public:
  Masked(DistPtr base, Tensor mask);  // mask: 0/1, float32 or int64, on the base's device
  Masked(DistPtr base, bool keep);
  const DistPtr& base() const { return base_; }
  std::string name() const override { return "Masked(" + base_->name() + ")"; }
  DistPtr clone() const override { return std::make_shared<Masked>(*this); }
  Shape batch_shape() const override { return base_->batch_shape(); }
  Shape event_shape() const override { return base_->event_shape(); }
  bool has_rsample() const override { return base_->has_rsample(); }
  bool is_discrete() const override { return base_->is_discrete(); }
  constraints::ConstraintPtr support() const override { return base_->support(); }
  bool has_enumerate_support() const override { return base_->has_enumerate_support(); }
  Tensor support_values() const override { return base_->support_values(); }
  Tensor log_prob(const Tensor& x) const override;
  Tensor rsample(const Shape& s = {}) const override { return base_->rsample(s); }
  Tensor sample(const Shape& s = {}) const override { return base_->sample(s); }
  Tensor mean() const override { return base_->mean(); }
  Tensor variance() const override { return base_->variance(); }
  // The base's (the mask only weighs log_prob terms).
  Tensor cdf(const Tensor& x) const override { return base_->cdf(x); }
  Tensor icdf(const Tensor& q) const override { return base_->icdf(q); }
  Tensor entropy() const override { return base_->entropy(); }
  // mask(true): the base's fused term; mask(false): 0; a tensor mask:
  // coef * sum(log_prob(x)).
  Tensor log_prob_sum(const Tensor& x, float coef) const override;
  DistPtr expand_ptr(const Shape& b) const override;
  Device device() const override { return base_->device(); }

 private:
  DistPtr base_;
  Tensor mask_;  // undefined for a bool mask
  bool keep_ = true;
};

namespace detail {
// Closed-form cdf, icdf and entropy of an elementwise family, composed of
// runtime ops (so both backends and autodiff come with them) over the
// parameters as tensors, in the family's order (ppl/closed_forms.cpp).
// kCdf / kIcdf / kEntropy say which a family has; a user's family may
// specialise it too, or its Derived class may override cdf / icdf / entropy.
template <class F>
struct ClosedForm {
  static constexpr bool kCdf = false, kIcdf = false, kEntropy = false;
};
#define CUVI_CLOSED_FORM(Fam, has_cdf, has_icdf)                              \
  template <>                                                                  \
  struct ClosedForm<kern::Fam> {                                               \
    static constexpr bool kCdf = has_cdf, kIcdf = has_icdf, kEntropy = true;   \
    static Tensor cdf(const std::vector<Tensor>& p, const Tensor& x);          \
    static Tensor icdf(const std::vector<Tensor>& p, const Tensor& q);         \
    static Tensor entropy(const std::vector<Tensor>& p);                       \
  };
CUVI_CLOSED_FORM(Normal, true, true)
CUVI_CLOSED_FORM(LogNormal, true, true)
CUVI_CLOSED_FORM(HalfNormal, true, true)
CUVI_CLOSED_FORM(Laplace, true, true)
CUVI_CLOSED_FORM(Cauchy, true, true)
CUVI_CLOSED_FORM(HalfCauchy, true, true)
CUVI_CLOSED_FORM(Uniform, true, true)
CUVI_CLOSED_FORM(Exponential, true, true)
CUVI_CLOSED_FORM(Gumbel, true, true)
CUVI_CLOSED_FORM(Logistic, true, true)
CUVI_CLOSED_FORM(Pareto, true, true)
CUVI_CLOSED_FORM(Weibull, true, true)
CUVI_CLOSED_FORM(ContinuousBernoulliProbs, true, true)
CUVI_CLOSED_FORM(ContinuousBernoulliLogits, true, true)
CUVI_CLOSED_FORM(Gamma, true, false)
CUVI_CLOSED_FORM(Chi2, true, false)
CUVI_CLOSED_FORM(InverseGamma, true, false)
CUVI_CLOSED_FORM(Beta, true, false)
CUVI_CLOSED_FORM(StudentT, true, false)
CUVI_CLOSED_FORM(BernoulliProbs, false, false)
CUVI_CLOSED_FORM(BernoulliLogits, false, false)
CUVI_CLOSED_FORM(Geometric, false, false)
#undef CUVI_CLOSED_FORM
// q must lie in [0, 1] (validation; deferred on a GPU), naming `who`.
void check_probabilities(const Tensor& q, const char* who);
// t expanded to `shape` (t itself when it has it).
Tensor expand_to(const Tensor& t, const Shape& shape);
}  // namespace detail

// Any elementwise family F (a struct of CUVI_HD functions) as a
// distribution: batched kernels on every backend, broadcasting, autodiff,
// the fused ELBO term. Derived is the concrete class (for clone/expand).
template <class F, class Derived>
class Elementwise : public Distribution {
 public:
  static constexpr int NP = F::kNumParams;
  explicit Elementwise(std::array<Arg, NP> p) : p_(std::move(p)) {
    batch_shape_ = {};
    for (const Arg& a : p_) batch_shape_ = broadcast_shapes(batch_shape_, a.shape(), F::kName);
    detail::validate<F>(p_, nullptr, batch_shape_, device());
  }
  std::string name() const override { return F::kName; }
  DistPtr clone() const override { return std::make_shared<Derived>(static_cast<const Derived&>(*this)); }
  Shape batch_shape() const override { return batch_shape_; }
  bool has_rsample() const override { return F::kHasRsample; }
  bool is_discrete() const override { return F::kDiscrete; }
  constraints::ConstraintPtr support() const override { return support_of(F::kSupport); }
  // A boolean support (Bernoulli) enumerates as {0, 1}.
  bool has_enumerate_support() const override { return F::kSupport == kern::support::kBoolean; }
  Tensor support_values() const override {
    if (F::kSupport == kern::support::kBoolean) return arange(2, device());  // made on the device: no copy
    return Distribution::support_values();
  }
  Tensor log_prob(const Tensor& x) const override { return family_log_prob<F>(x, p_, batch_shape_); }
  Tensor log_prob_sum(const Tensor& x, float coef) const override {
    return family_log_prob_sum<F>(x, p_, batch_shape_, coef);
  }
  Tensor rsample(const Shape& s = {}) const override {
    CUVI_CHECK(F::kHasRsample, ValueError,
               F::kName << " has no reparameterised sampler; use sample()" << detail::site_suffix());
    return family_sample<F>(p_, concat(s), true);
  }
  Tensor sample(const Shape& s = {}) const override {
    NoGradGuard ng;
    return family_sample<F>(p_, concat(s), false);
  }
  Tensor mean() const override { return family_moment<F>(p_, batch_shape_, false); }
  Tensor variance() const override { return family_moment<F>(p_, batch_shape_, true); }
  Tensor cdf(const Tensor& x) const override {
    if constexpr (detail::ClosedForm<F>::kCdf) {
      CUVI_CHECK(x.defined(), ValueError, F::kName << ".cdf: undefined value" << detail::site_suffix());
      // Constant parameters follow x's device (as in log_prob).
      const Device dev = detail::params_device<NP>(p_, &x, F::kName);
      const Shape out = broadcast_shapes(x.shape(), batch_shape_, F::kName);
      detail::validate<F>(p_, &x, out, dev);
      return detail::expand_to(detail::ClosedForm<F>::cdf(params(dev), x), out);
    } else {
      return Distribution::cdf(x);
    }
  }
  Tensor icdf(const Tensor& q) const override {
    if constexpr (detail::ClosedForm<F>::kIcdf) {
      CUVI_CHECK(q.defined(), ValueError, F::kName << ".icdf: undefined value" << detail::site_suffix());
      const Device dev = detail::params_device<NP>(p_, &q, F::kName);
      const Shape out = broadcast_shapes(q.shape(), batch_shape_, F::kName);
      detail::check_probabilities(q, F::kName);
      return detail::expand_to(detail::ClosedForm<F>::icdf(params(dev), q), out);
    } else {
      return Distribution::icdf(q);
    }
  }
  Tensor entropy() const override {
    if constexpr (detail::ClosedForm<F>::kEntropy) {
      return detail::expand_to(detail::ClosedForm<F>::entropy(params(device())), batch_shape_);
    } else {
      return Distribution::entropy();
    }
  }
  DistPtr expand_ptr(const Shape& b) const override {
    bool fits = b.size() >= batch_shape_.size();
    for (size_t i = 0; fits && i < batch_shape_.size(); ++i) {
      const int64_t have = batch_shape_[batch_shape_.size() - 1 - i], want = b[b.size() - 1 - i];
      fits = have == want || have == 1;
    }
    CUVI_CHECK(fits, ShapeError,
               F::kName << ".expand: cannot expand batch shape " << shape_str(batch_shape_) << " to " << shape_str(b));
    auto d = std::make_shared<Derived>(static_cast<const Derived&>(*this));
    d->batch_shape_ = b;
    return d;
  }
  Device device() const override { return detail::params_device<NP>(p_, nullptr, F::kName); }
  // Parameter k as a tensor (a 0-d tensor for a float constant).
  Tensor param(int k) const { return p_[static_cast<size_t>(k)].as_tensor(device()); }
  // Every parameter as a tensor on dev (float constants made there).
  std::vector<Tensor> params(Device dev) const {
    std::vector<Tensor> out;
    for (const Arg& a : p_) out.push_back(a.as_tensor(dev));
    return out;
  }
  const std::array<Arg, NP>& args() const { return p_; }

 protected:
  virtual constraints::ConstraintPtr support_of(int code) const {
    switch (code) {
      case kern::support::kPositive: return constraints::positive;
      case kern::support::kUnitInterval: return constraints::unit_interval;
      case kern::support::kBoolean: return constraints::boolean;
      case kern::support::kNonNegInteger: return constraints::nonnegative_integer;
      default: return constraints::real;
    }
  }
  Shape concat(const Shape& s) const {
    Shape out = s;
    out.insert(out.end(), batch_shape_.begin(), batch_shape_.end());
    return out;
  }
  std::array<Arg, NP> p_;
  Shape batch_shape_;
};

#define CUVI_ELEMENTWISE_DIST(Cls, Fam)                    \
  class Cls : public Elementwise<kern::Fam, Cls> {         \
   public:                                                 \
    using Elementwise<kern::Fam, Cls>::Elementwise;

CUVI_ELEMENTWISE_DIST(Normal, Normal)
  Normal(Arg loc, Arg scale) : Elementwise({loc, scale}) {}
  Tensor loc() const { return param(0); }
  Tensor scale() const { return param(1); }
};
CUVI_ELEMENTWISE_DIST(LogNormal, LogNormal)
  LogNormal(Arg loc, Arg scale) : Elementwise({loc, scale}) {}
  Tensor loc() const { return param(0); }
  Tensor scale() const { return param(1); }
};
CUVI_ELEMENTWISE_DIST(Laplace, Laplace)
  Laplace(Arg loc, Arg scale) : Elementwise({loc, scale}) {}
  Tensor loc() const { return param(0); }
  Tensor scale() const { return param(1); }
};
// Pyro's AsymmetricLaplace: scale s asymmetry left of loc, s / asymmetry
// right of it (mode loc, mean loc + s (1/asymmetry - asymmetry)).
CUVI_ELEMENTWISE_DIST(AsymmetricLaplace, AsymmetricLaplace)
  AsymmetricLaplace(Arg loc, Arg scale, Arg asymmetry) : Elementwise({loc, scale, asymmetry}) {}
  Tensor loc() const { return param(0); }
  Tensor scale() const { return param(1); }
  Tensor asymmetry() const { return param(2); }
};
CUVI_ELEMENTWISE_DIST(Exponential, Exponential)
  explicit Exponential(Arg rate) : Elementwise({rate}) {}
  Tensor rate() const { return param(0); }
};
CUVI_ELEMENTWISE_DIST(Gamma, Gamma)
  Gamma(Arg concentration, Arg rate) : Elementwise({concentration, rate}) {}
  Tensor concentration() const { return param(0); }
  Tensor rate() const { return param(1); }
};
CUVI_ELEMENTWISE_DIST(Beta, Beta)
  Beta(Arg concentration1, Arg concentration0) : Elementwise({concentration1, concentration0}) {}
  Tensor concentration1() const { return param(0); }
  Tensor concentration0() const { return param(1); }
};
CUVI_ELEMENTWISE_DIST(StudentT, StudentT)
  StudentT(Arg df, Arg loc = 0.0f, Arg scale = 1.0f) : Elementwise({df, loc, scale}) {}
  Tensor df() const { return param(0); }
  Tensor loc() const { return param(1); }
  Tensor scale() const { return param(2); }
};
CUVI_ELEMENTWISE_DIST(Cauchy, Cauchy)
  Cauchy(Arg loc, Arg scale) : Elementwise({loc, scale}) {}
  Tensor loc() const { return param(0); }
  Tensor scale() const { return param(1); }
};
CUVI_ELEMENTWISE_DIST(HalfCauchy, HalfCauchy)
  explicit HalfCauchy(Arg scale) : Elementwise({scale}) {}
  Tensor scale() const { return param(0); }
};
CUVI_ELEMENTWISE_DIST(HalfNormal, HalfNormal)
  explicit HalfNormal(Arg scale) : Elementwise({scale}) {}
  Tensor scale() const { return param(0); }
};
CUVI_ELEMENTWISE_DIST(InverseGamma, InverseGamma)
  InverseGamma(Arg concentration, Arg rate) : Elementwise({concentration, rate}) {}
  Tensor concentration() const { return param(0); }
  Tensor rate() const { return param(1); }
};
CUVI_ELEMENTWISE_DIST(Weibull, Weibull)
  Weibull(Arg scale, Arg concentration) : Elementwise({scale, concentration}) {}
  Tensor scale() const { return param(0); }
  Tensor concentration() const { return param(1); }
};
CUVI_ELEMENTWISE_DIST(Poisson, Poisson)
  explicit Poisson(Arg rate) : Elementwise({rate}) {}
  Tensor rate() const { return param(0); }
};
// Count families (PyTorch's parameterisations): Binomial(total_count,
// probs) on {0, ..., total_count} (or ::from_logits); Geometric(probs): failures before the
// first success; NegativeBinomial(total_count, probs): successes before
// total_count failures (mean total_count probs / (1 - probs)).
CUVI_ELEMENTWISE_DIST(BinomialLogits, BinomialLogits)
  BinomialLogits(Arg total_count, Arg logits) : Elementwise({total_count, logits}) {}
  Tensor total_count() const { return param(0); }
  Tensor logits() const { return param(1); }
};
CUVI_ELEMENTWISE_DIST(Binomial, Binomial)
  Binomial(Arg total_count, Arg probs) : Elementwise({total_count, probs}) {}
  // probs = sigmoid(logits), evaluated from the logits (exact in both tails).
  static Dist from_logits(Arg total_count, Arg logits) {
    return Dist(std::make_shared<BinomialLogits>(total_count, logits));
  }
  Tensor total_count() const { return param(0); }
  Tensor probs() const { return param(1); }
};
CUVI_ELEMENTWISE_DIST(Geometric, Geometric)
  explicit Geometric(Arg probs) : Elementwise({probs}) {}
  Tensor probs() const { return param(0); }
};
CUVI_ELEMENTWISE_DIST(NegativeBinomialLogits, NegativeBinomialLogits)
  NegativeBinomialLogits(Arg total_count, Arg logits) : Elementwise({total_count, logits}) {}
  Tensor total_count() const { return param(0); }
  Tensor logits() const { return param(1); }
};
CUVI_ELEMENTWISE_DIST(NegativeBinomial, NegativeBinomial)
  NegativeBinomial(Arg total_count, Arg probs) : Elementwise({total_count, probs}) {}
  // probs = sigmoid(logits), evaluated from the logits (exact in both tails).
  static Dist from_logits(Arg total_count, Arg logits) {
    return Dist(std::make_shared<NegativeBinomialLogits>(total_count, logits));
  }
  Tensor total_count() const { return param(0); }
  Tensor probs() const { return param(1); }
};
// Pyro's compound and zero-inflated counts (kernels/dist/compound.hpp):
// BetaBinomial(concentration1, concentration0, total_count): Binomial whose
// probs ~ Beta, summed out; GammaPoisson(concentration, rate): Poisson whose
// rate ~ Gamma, summed out; ZeroInflatedPoisson(rate, gate) and
// ZeroInflatedNegativeBinomial(total_count, probs, gate): 0 with probability
// gate, else a draw of the base. Gates as logits: ::from_gate_logits, and
// ZeroInflatedNegativeBinomial::from_logits(total_count, logits,
// gate_logits) (the base's probs as logits too), both exact in the tails.
CUVI_ELEMENTWISE_DIST(BetaBinomial, BetaBinomial)
  BetaBinomial(Arg concentration1, Arg concentration0, Arg total_count = 1.0f)
      : Elementwise({concentration1, concentration0, total_count}) {}
  Tensor concentration1() const { return param(0); }
  Tensor concentration0() const { return param(1); }
  Tensor total_count() const { return param(2); }
};
CUVI_ELEMENTWISE_DIST(GammaPoisson, GammaPoisson)
  GammaPoisson(Arg concentration, Arg rate) : Elementwise({concentration, rate}) {}
  Tensor concentration() const { return param(0); }
  Tensor rate() const { return param(1); }
};
CUVI_ELEMENTWISE_DIST(ZeroInflatedPoissonLogits, ZeroInflatedPoissonLogits)
  ZeroInflatedPoissonLogits(Arg rate, Arg gate_logits) : Elementwise({rate, gate_logits}) {}
  Tensor rate() const { return param(0); }
  Tensor gate_logits() const { return param(1); }
};
CUVI_ELEMENTWISE_DIST(ZeroInflatedPoisson, ZeroInflatedPoisson)
  ZeroInflatedPoisson(Arg rate, Arg gate) : Elementwise({rate, gate}) {}
  static Dist from_gate_logits(Arg rate, Arg gate_logits) {
    return Dist(std::make_shared<ZeroInflatedPoissonLogits>(rate, gate_logits));
  }
  Tensor rate() const { return param(0); }
  Tensor gate() const { return param(1); }
};
CUVI_ELEMENTWISE_DIST(ZeroInflatedNegativeBinomialLogits, ZeroInflatedNegativeBinomialLogits)
  ZeroInflatedNegativeBinomialLogits(Arg total_count, Arg logits, Arg gate_logits)
      : Elementwise({total_count, logits, gate_logits}) {}
  Tensor total_count() const { return param(0); }
  Tensor logits() const { return param(1); }
  Tensor gate_logits() const { return param(2); }
};
CUVI_ELEMENTWISE_DIST(ZeroInflatedNegativeBinomial, ZeroInflatedNegativeBinomial)
  ZeroInflatedNegativeBinomial(Arg total_count, Arg probs, Arg gate) : Elementwise({total_count, probs, gate}) {}
  static Dist from_logits(Arg total_count, Arg logits, Arg gate_logits) {
    return Dist(std::make_shared<ZeroInflatedNegativeBinomialLogits>(total_count, logits, gate_logits));
  }
  Tensor total_count() const { return param(0); }
  Tensor probs() const { return param(1); }
  Tensor gate() const { return param(2); }
};
CUVI_ELEMENTWISE_DIST(BernoulliProbs, BernoulliProbs)
  explicit BernoulliProbs(Arg probs) : Elementwise({probs}) {}
};
CUVI_ELEMENTWISE_DIST(BernoulliLogits, BernoulliLogits)
  explicit BernoulliLogits(Arg logits) : Elementwise({logits}) {}
};
CUVI_ELEMENTWISE_DIST(Uniform, Uniform)
  Uniform(Arg low, Arg high) : Elementwise({low, high}) {}
  Tensor low() const { return param(0); }
  Tensor high() const { return param(1); }

 protected:
  constraints::ConstraintPtr support_of(int) const override {
    const auto& a = args();
    if (a[0].is_const() && a[1].is_const()) return constraints::interval(a[0].v, a[1].v);
    return constraints::real;
  }
};
// Gumbel(loc, scale) and Logistic(loc, scale) on the reals.
CUVI_ELEMENTWISE_DIST(Gumbel, Gumbel)
  Gumbel(Arg loc, Arg scale) : Elementwise({loc, scale}) {}
  Tensor loc() const { return param(0); }
  Tensor scale() const { return param(1); }
};
CUVI_ELEMENTWISE_DIST(Logistic, Logistic)
  Logistic(Arg loc, Arg scale) : Elementwise({loc, scale}) {}
  Tensor loc() const { return param(0); }
  Tensor scale() const { return param(1); }
};
// Pareto(scale, alpha) on x >= scale (torch's). Its support for autoguides:
// greater_than(scale) when scale is a float constant; with a tensor scale
// (one bound per element, which no constraint here holds) the wider
// `positive`, so an autoguide's draw may then fall below scale, where
// log_prob's validation rejects it.
CUVI_ELEMENTWISE_DIST(Pareto, Pareto)
  Pareto(Arg scale, Arg alpha) : Elementwise({scale, alpha}) {}
  Tensor scale() const { return param(0); }
  Tensor alpha() const { return param(1); }

 protected:
  constraints::ConstraintPtr support_of(int) const override {
    const auto& a = args();
    if (a[0].is_const()) return constraints::greater_than(a[0].v);
    return constraints::positive;
  }
};
// Chi2(df) = Gamma(df/2, rate 1/2); rsample through the Gamma sampler.
CUVI_ELEMENTWISE_DIST(Chi2, Chi2)
  explicit Chi2(Arg df) : Elementwise({df}) {}
  Tensor df() const { return param(0); }
};
// VonMises(loc, concentration): support the real line (torch's
// constraints.real; the density is periodic), draws in [-pi, pi), no
// rsample; mean loc, variance the circular variance 1 - I1/I0.
CUVI_ELEMENTWISE_DIST(VonMises, VonMises)
  VonMises(Arg loc, Arg concentration) : Elementwise({loc, concentration}) {}
  Tensor loc() const { return param(0); }
  Tensor concentration() const { return param(1); }
};
// The two forms behind ContinuousBernoulli and RelaxedBernoulli (below).
CUVI_ELEMENTWISE_DIST(ContinuousBernoulliProbs, ContinuousBernoulliProbs)
  explicit ContinuousBernoulliProbs(Arg probs) : Elementwise({probs}) {}
};
CUVI_ELEMENTWISE_DIST(ContinuousBernoulliLogits, ContinuousBernoulliLogits)
  explicit ContinuousBernoulliLogits(Arg logits) : Elementwise({logits}) {}
};
CUVI_ELEMENTWISE_DIST(RelaxedBernoulliProbs, RelaxedBernoulliProbs)
  RelaxedBernoulliProbs(Arg temperature, Arg probs) : Elementwise({temperature, probs}) {}
};
CUVI_ELEMENTWISE_DIST(RelaxedBernoulliLogits, RelaxedBernoulliLogits)
  RelaxedBernoulliLogits(Arg temperature, Arg logits) : Elementwise({temperature, logits}) {}
};
#undef CUVI_ELEMENTWISE_DIST

// Bernoulli(probs), or Bernoulli::from_logits(logits).
class Bernoulli : public Dist {
 public:
  explicit Bernoulli(Arg probs) : Dist(std::make_shared<BernoulliProbs>(probs)) {}
  static Bernoulli from_logits(Arg logits) { return Bernoulli(std::make_shared<BernoulliLogits>(logits)); }

 private:
  explicit Bernoulli(DistPtr d) : Dist(std::move(d)) {}
};

// ContinuousBernoulli(probs) on [0, 1], or ContinuousBernoulli::from_logits(logits).
class ContinuousBernoulli : public Dist {
 public:
  explicit ContinuousBernoulli(Arg probs) : Dist(std::make_shared<ContinuousBernoulliProbs>(probs)) {}
  static ContinuousBernoulli from_logits(Arg logits) {
    return ContinuousBernoulli(std::make_shared<ContinuousBernoulliLogits>(logits));
  }

 private:
  explicit ContinuousBernoulli(DistPtr d) : Dist(std::move(d)) {}
};

// RelaxedBernoulli(temperature, probs) on (0, 1), or
// RelaxedBernoulli::from_logits(temperature, logits). As torch, values 0 and
// 1 are accepted and evaluated at the clamp [tiny, 1 - 2^-23]. mean() and
// variance() are NaN (no closed form; torch has none).
class RelaxedBernoulli : public Dist {
 public:
  RelaxedBernoulli(Arg temperature, Arg probs)
      : Dist(std::make_shared<RelaxedBernoulliProbs>(temperature, probs)) {}
  static RelaxedBernoulli from_logits(Arg temperature, Arg logits) {
    return RelaxedBernoulli(std::make_shared<RelaxedBernoulliLogits>(temperature, logits));
  }

 private:
  explicit RelaxedBernoulli(DistPtr d) : Dist(std::move(d)) {}
};

// Categorical over {0..K-1} (values are float32 holding integers, or int64;
// sample() returns int64): Categorical(probs) with unnormalised probs over
// the last dim; Categorical::from_logits(logits) with unnormalised logits.
// expand() keeps the parameter as it is and reads it broadcast. Values over
// many more rows than the parameter has (a plate's worth of rows sharing a
// few parameter rows, enumerated values), at least 2^16 row entries in
// all, take the normalised log-probabilities once and gather them (Pyro's
// log_prob): O(1) work per row, and the parameter's gradient an index_add,
// instead of a normaliser and K gradient entries per row (smaller sites
// keep the row kernels' one fused pass).
// log_prob, its gradient and the fused log-prob-sum are one row kernel each
// (kern::CategoricalProbs / CategoricalLogits).
class Categorical final : public Distribution {
 public:
  explicit Categorical(const Tensor& probs);
  static Categorical from_logits(const Tensor& logits);
  Tensor logits() const;  // normalised: logsumexp over the last dim = 0
  Tensor probs() const;   // normalised: sums to 1 over the last dim
  bool is_logits() const { return logits_form_; }
  const Tensor& param() const { return param_; }  // as given: probs or logits
  std::string name() const override { return "Categorical"; }
  DistPtr clone() const override { return std::make_shared<Categorical>(*this); }
  Shape batch_shape() const override { return batch_shape_; }
  bool is_discrete() const override { return true; }
  constraints::ConstraintPtr support() const override { return constraints::nonnegative_integer; }
  bool has_enumerate_support() const override { return true; }
  Tensor support_values() const override;  // int64 0..K-1, as sample() draws
  Tensor log_prob(const Tensor& x) const override;
  Tensor log_prob_sum(const Tensor& x, float coef) const override;
  Tensor sample(const Shape& s = {}) const override;
  Tensor mean() const override;
  Tensor variance() const override;
  Tensor entropy() const override;  // -sum_k p_k log p_k (0 log 0 = 0)
  DistPtr expand_ptr(const Shape& b) const override;
  Device device() const override { return param_.device(); }

 private:
  Categorical(const Tensor& param, bool logits);
  // The gather path of log_prob (see above); undefined when it does not apply.
  Tensor gathered_log_prob(const Tensor& x) const;
  Tensor param_;
  bool logits_form_ = false;
  Shape batch_shape_;  // the parameter's batch dims, or an expand() of them
};

// Pyro's OrderedLogistic(predictor, cutpoints): a Categorical over the K =
// cutpoints.size(-1) + 1 ordered outcomes of an ordinal regression,
// P(y <= k) = sigmoid(c_k - predictor) for k < K - 1. cutpoints [..., K-1]
// must be strictly increasing (validated, deferred on a GPU; learn them
// with constraints::ordered_vector); predictor broadcasts against
// cutpoints' batch dims. The log-probabilities are formed from log-sigmoids
// (log(sigmoid(b) - sigmoid(a)) without the cancellation of the difference),
// so outcomes far in the tails keep finite log-probabilities and gradients.
// A Categorical (sample, enumeration, fused log-prob-sum all as one).
Categorical OrderedLogistic(const Tensor& predictor, const Tensor& cutpoints);

// Dirichlet(concentration [..., K]); log_prob, its gradient, the fused
// log-prob-sum and rsample are one row kernel each (kern::Dirichlet):
// rsample normalises K Gamma draws per row, differentiated by implicit
// reparameterisation of each Gamma.
class Dirichlet final : public Distribution {
 public:
  explicit Dirichlet(const Tensor& concentration);
  const Tensor& concentration() const { return conc_; }
  std::string name() const override { return "Dirichlet"; }
  DistPtr clone() const override { return std::make_shared<Dirichlet>(*this); }
  Shape batch_shape() const override { return batch_shape_; }
  Shape event_shape() const override { return {conc_.size(-1)}; }
  bool has_rsample() const override { return true; }
  constraints::ConstraintPtr support() const override { return constraints::simplex; }
  Tensor log_prob(const Tensor& x) const override;
  Tensor log_prob_sum(const Tensor& x, float coef) const override;
  Tensor rsample(const Shape& s = {}) const override;
  Tensor mean() const override;
  Tensor variance() const override;
  Tensor entropy() const override;
  DistPtr expand_ptr(const Shape& b) const override;
  Device device() const override { return conc_.device(); }

 private:
  Tensor conc_;
  Shape batch_shape_;
};

// Point mass at v, Pyro's Delta: log_prob(x) = log_density where the whole
// event of x equals v, -inf elsewhere; log_density (a float or a tensor
// broadcasting to the batch shape) counts once per batch element. rsample
// returns v, so gradients flow into v and into log_density (AutoDelta and
// the AutoContinuous guides).
class Delta final : public Distribution {
 public:
  explicit Delta(const Tensor& v, Arg log_density = 0.0f, int event_dim = 0);
  std::string name() const override { return "Delta"; }
  DistPtr clone() const override { return std::make_shared<Delta>(*this); }
  Shape batch_shape() const override;
  Shape event_shape() const override;
  bool has_rsample() const override { return true; }
  constraints::ConstraintPtr support() const override { return constraints::real; }
  Tensor log_prob(const Tensor& x) const override;
  Tensor rsample(const Shape& s = {}) const override;
  Tensor mean() const override { return v_; }
  Tensor variance() const override { return zeros_like(v_); }
  DistPtr expand_ptr(const Shape& b) const override;
  Device device() const override { return v_.device(); }

 private:
  Tensor v_;
  Arg log_density_;
  int event_dim_;
};

// MultivariateNormal(loc [..., D], scale_tril [..., D, D]): N(loc, L L^T)
// with L = scale_tril lower triangular with a positive diagonal (PyTorch's
// scale_tril parameterisation). batch_shape = broadcast(loc[:-1],
// scale_tril[:-2]); event_shape = [D]. log_prob solves L^{-1}(x - loc) with
// triangular_solve; rsample is loc + L eps. Implemented in ppl/mvn.cpp.
class MultivariateNormal final : public Distribution {
 public:
  MultivariateNormal(const Tensor& loc, const Tensor& scale_tril);
  // Pyro's MultivariateNormal(loc, covariance_matrix=...): scale_tril =
  // cholesky(covariance) (differentiable; only the covariance's lower
  // triangle is read; not positive definite: ValueError naming the pivot).
  static MultivariateNormal from_covariance(const Tensor& loc, const Tensor& covariance_matrix);
  // The parameters as given (not expanded to batch_shape).
  const Tensor& loc() const { return loc_; }
  const Tensor& scale_tril() const { return scale_tril_; }
  std::string name() const override { return "MultivariateNormal"; }
  DistPtr clone() const override { return std::make_shared<MultivariateNormal>(*this); }
  Shape batch_shape() const override { return batch_shape_; }
  Shape event_shape() const override { return {loc_.size(-1)}; }
  bool has_rsample() const override { return true; }
  constraints::ConstraintPtr support() const override { return constraints::real; }
  Tensor log_prob(const Tensor& x) const override;
  Tensor log_prob_sum(const Tensor& x, float coef) const override;
  Tensor rsample(const Shape& s = {}) const override;
  Tensor mean() const override;
  Tensor variance() const override;
  Tensor entropy() const override;  // D/2 (1 + log 2 pi) + sum log diag(L)
  DistPtr expand_ptr(const Shape& b) const override;
  Device device() const override { return loc_.device(); }

 private:
  Tensor loc_;
  Tensor scale_tril_;
  Shape batch_shape_;
};

// OneHotCategorical(probs [..., K]) or OneHotCategorical::from_logits(
// logits [..., K]) (unnormalised, as Categorical): values are float32
// one-hot rows, event_shape [K], log_prob(x) = sum_k x_k log pi_k. log_prob,
// its gradient and the fused log-prob-sum are one row kernel each
// (kern::CountRowsBody, kernels/dist/multinomial.hpp), the value's
// one-hotness checked in the same pass; sample() is Categorical's row
// sampler and a one-hot expansion. Enumerable: support_values() is the K
// one-hot rows [K, K] (identity), so TraceEnum_ELBO enumerates it as it
// does Categorical. expand() keeps the parameter, read broadcast.
class OneHotCategorical final : public Distribution {
 public:
  explicit OneHotCategorical(const Tensor& probs);
  static OneHotCategorical from_logits(const Tensor& logits);
  Tensor logits() const;  // normalised
  Tensor probs() const;   // normalised
  bool is_logits() const { return logits_form_; }
  const Tensor& param() const { return param_; }
  std::string name() const override { return "OneHotCategorical"; }
  DistPtr clone() const override { return std::make_shared<OneHotCategorical>(*this); }
  Shape batch_shape() const override { return batch_shape_; }
  Shape event_shape() const override { return {param_.size(-1)}; }
  bool is_discrete() const override { return true; }
  // Pyro's constraints.one_hot has no counterpart among cuvi's constraints:
  // nonnegative_integer (discrete), the one-hot rule is checked by validation.
  constraints::ConstraintPtr support() const override { return constraints::nonnegative_integer; }
  bool has_enumerate_support() const override { return true; }
  Tensor support_values() const override;  // float32 identity [K, K]
  Tensor log_prob(const Tensor& x) const override;
  Tensor log_prob_sum(const Tensor& x, float coef) const override;
  Tensor sample(const Shape& s = {}) const override;
  Tensor mean() const override;      // probs
  Tensor variance() const override;  // probs (1 - probs)
  Tensor entropy() const override;   // Categorical's
  DistPtr expand_ptr(const Shape& b) const override;
  Device device() const override { return param_.device(); }

 private:
  OneHotCategorical(const Tensor& param, bool logits);
  Tensor param_;
  bool logits_form_ = false;
  Shape batch_shape_;
};

// RelaxedOneHotCategorical(temperature, probs [..., K]) or ::from_logits(
// temperature, logits [..., K]): the Concrete / Gumbel-softmax distribution
// on the simplex (Maddison et al. 2017; torch's RelaxedOneHotCategorical).
// temperature: a positive float or a tensor broadcasting against the batch
// shape. rsample y = softmax((log pi + G) / T) with standard Gumbel G =
// -log(-log U) from the Philox stream (differentiable in the parameter and
// a tensor temperature); entries are kept >= FLT_MIN so log y stays finite.
// log_prob(y) = lgamma(K) + (K-1) log T + sum_k (log pi_k - (T+1) log y_k)
//               - K logsumexp_k(log pi_k - T log y_k)
// (the density over y's first K-1 coordinates). Both are runtime tensor ops
// with autodiff; the parameter row and simplex checks are one row pass.
class RelaxedOneHotCategorical final : public Distribution {
 public:
  RelaxedOneHotCategorical(Arg temperature, const Tensor& probs);
  static RelaxedOneHotCategorical from_logits(Arg temperature, const Tensor& logits);
  Tensor logits() const;  // normalised
  Tensor probs() const;   // normalised
  Tensor temperature() const { return temp_.as_tensor(device()); }
  std::string name() const override { return "RelaxedOneHotCategorical"; }
  DistPtr clone() const override { return std::make_shared<RelaxedOneHotCategorical>(*this); }
  Shape batch_shape() const override { return batch_shape_; }
  Shape event_shape() const override { return {param_.size(-1)}; }
  bool has_rsample() const override { return true; }
  constraints::ConstraintPtr support() const override { return constraints::simplex; }
  Tensor log_prob(const Tensor& x) const override;
  Tensor rsample(const Shape& s = {}) const override;
  DistPtr expand_ptr(const Shape& b) const override;
  Device device() const override { return param_.device(); }

 private:
  RelaxedOneHotCategorical(Arg temperature, const Tensor& param, bool logits);
  Tensor temp_event() const;  // a tensor temperature with a unit event dim (broadcasts against [..., K])
  Arg temp_;
  Tensor param_;
  bool logits_form_ = false;
  Shape batch_shape_;
};

// Multinomial(total_count, probs [..., K]) or ::from_logits(total_count,
// logits [..., K]) (torch's: an int total_count n >= 0 shared by the batch;
// probs or logits unnormalised over the last dim). Values are float32 rows
// of K non-negative integers summing to n. log_prob(x) = lgamma(n + 1) -
// sum_k lgamma(x_k + 1) + sum_k x_k log pi_k; it, its gradient and the fused
// log-prob-sum are one row kernel each (kern::CountRowsBody), validating
// the counts in the same pass. sample() draws n categorical indices per row
// (Categorical's row sampler, sample shape [n]) and counts them: O(n K)
// work and memory per row, meant for the small n of SVI models.
class Multinomial final : public Distribution {
 public:
  Multinomial(int total_count, const Tensor& probs);
  static Multinomial from_logits(int total_count, const Tensor& logits);
  int total_count() const { return n_; }
  Tensor logits() const;  // normalised
  Tensor probs() const;   // normalised
  std::string name() const override { return "Multinomial"; }
  DistPtr clone() const override { return std::make_shared<Multinomial>(*this); }
  Shape batch_shape() const override { return batch_shape_; }
  Shape event_shape() const override { return {param_.size(-1)}; }
  bool is_discrete() const override { return true; }
  // Pyro's constraints.multinomial(n) has no counterpart among cuvi's
  // constraints: nonnegative_integer, the row sum checked by validation.
  constraints::ConstraintPtr support() const override { return constraints::nonnegative_integer; }
  Tensor log_prob(const Tensor& x) const override;
  Tensor log_prob_sum(const Tensor& x, float coef) const override;
  Tensor sample(const Shape& s = {}) const override;
  Tensor mean() const override;      // n probs
  Tensor variance() const override;  // n probs (1 - probs)
  DistPtr expand_ptr(const Shape& b) const override;
  Device device() const override { return param_.device(); }

 private:
  Multinomial(int total_count, const Tensor& param, bool logits);
  int n_ = 1;
  Tensor param_;
  bool logits_form_ = false;
  Shape batch_shape_;
};

// LowRankMultivariateNormal(loc [..., D], cov_factor [..., D, R], cov_diag
// [..., D]): N(loc, W W^T + diag(d)) with W = cov_factor and d = cov_diag > 0
// (torch's parameterisation); batch_shape = broadcast(loc[:-1],
// cov_factor[:-2], cov_diag[:-1]), event_shape [D]. rsample = loc + W e_R +
// sqrt(d) e_D. log_prob uses the Woodbury identity and the matrix
// determinant lemma with the R x R capacitance C = I + W^T D^-1 W and its
// Cholesky factor Lc:
//   x^T S^-1 x = sum_i x_i^2 / d_i - |Lc^-1 W^T D^-1 x|^2,
//   log det S  = 2 sum_j log Lc_jj + sum_i log d_i,
// O(D R^2) per batch element, never a D x D matrix. Runtime tensor ops with
// autodiff (matmul, cholesky, triangular_solve); covariance_matrix() and
// scale_tril() form the D x D matrices only when asked. Validation (finite
// loc and cov_factor, positive cov_diag) reads the parameters on the host
// at construction, on the cpu only (as LKJCholesky); a GPU skips it.
class LowRankMultivariateNormal final : public Distribution {
 public:
  LowRankMultivariateNormal(const Tensor& loc, const Tensor& cov_factor, const Tensor& cov_diag);
  const Tensor& loc() const { return loc_; }
  const Tensor& cov_factor() const { return W_; }
  const Tensor& cov_diag() const { return d_; }
  Tensor covariance_matrix() const;  // W W^T + diag(d), [batch, D, D]
  Tensor scale_tril() const;         // cholesky(covariance_matrix())
  std::string name() const override { return "LowRankMultivariateNormal"; }
  DistPtr clone() const override { return std::make_shared<LowRankMultivariateNormal>(*this); }
  Shape batch_shape() const override { return batch_shape_; }
  Shape event_shape() const override { return {loc_.size(-1)}; }
  bool has_rsample() const override { return true; }
  constraints::ConstraintPtr support() const override { return constraints::real; }
  Tensor log_prob(const Tensor& x) const override;
  Tensor rsample(const Shape& s = {}) const override;
  Tensor mean() const override;
  Tensor variance() const override;  // sum_r W_ir^2 + d_i
  // D/2 (1 + log 2 pi) + log det(S) / 2, the determinant by the lemma above.
  Tensor entropy() const override;
  DistPtr expand_ptr(const Shape& b) const override;
  Device device() const override { return loc_.device(); }

 private:
  Tensor loc_, W_, d_;
  Shape batch_shape_;
};

// Closed-form KL(q || p) for the pairs of one family that have one (Normal,
// LogNormal, HalfNormal, Laplace, Cauchy, Gumbel, Uniform, Pareto, Gamma,
// Beta, Exponential, Poisson, Geometric, Bernoulli (probs or logits on
// either side), Binomial (probs or logits; equal total counts, +inf where
// q's exceeds p's, none where it is below, as torch), Categorical, OneHotCategorical, Dirichlet,
// MultivariateNormal, and Independent of those); +inf where q's support is
// not inside p's (Uniform, Pareto) or q puts mass where p has none; throws
// ValueError naming both families otherwise. Differentiable in both sides'
// parameters (a probability of exactly 0 in q has a NaN gradient, as log 0
// has).
Tensor kl_divergence(const Distribution& q, const Distribution& p);
bool has_kl(const Distribution& q, const Distribution& p);

}  // namespace cuvi::dist
