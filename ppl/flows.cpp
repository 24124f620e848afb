#include "flows.hpp"

#include <cmath>

#include "runtime/error.hpp"

namespace cuvi::dist::transforms {

namespace {

std::string shape_of(const Tensor& t) { return t.defined() ? shape_str(t.shape()) : std::string("<undefined>"); }

void check_last_dim(const char* who, const Tensor& x, int64_t d) {
  CUVI_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == d, ShapeError,
             who << ": input of shape " << shape_of(x) << " does not end in " << d);
}

// A constraint's bijection as a Transform. Its domain is the unconstrained
// space, whose event may have one dim fewer than the codomain's
// (lower_cholesky: a packed vector onto a matrix).
class ConstraintTransform final : public Transform {
 public:
  explicit ConstraintTransform(constraints::ConstraintPtr c) : c_(std::move(c)) {
    CUVI_CHECK(c_ != nullptr, ValueError, "biject_to: null constraint");
    CUVI_CHECK(!c_->is_discrete(), ValueError,
               "biject_to: constraint " << c_->name() << " is discrete and has no bijection");
    // How many dims the map adds: probe with the smallest event it accepts
    // (a one-element vector fits every constraint with an event).
    const int added = c_->event_dim() == 0 ? 0 : static_cast<int>(c_->constrained_shape({1}).size()) - 1;
    domain_event_dim_ = c_->event_dim() - added;
  }
  std::string name() const override { return "biject_to(" + c_->name() + ")"; }
  int event_dim() const override { return domain_event_dim_; }
  int codomain_event_dim() const override { return c_->event_dim(); }
  constraints::ConstraintPtr codomain() const override { return c_; }
  Tensor forward(const Tensor& x) const override { return c_->transform(x); }
  Tensor inverse(const Tensor& y) const override { return c_->inverse(y); }
  Tensor log_abs_det_jacobian(const Tensor& x, const Tensor& y) const override {
    return c_->log_abs_det_jacobian(x, y);
  }
  Shape forward_shape(const Shape& s) const override { return c_->constrained_shape(s); }
  Shape inverse_shape(const Shape& s) const override { return c_->unconstrained_shape(s); }
  int sign() const override { return c_->transform_sign(); }

 private:
  constraints::ConstraintPtr c_;
  int domain_event_dim_ = 0;
};

}  // namespace

TransformPtr biject_to(const constraints::ConstraintPtr& c) { return std::make_shared<ConstraintTransform>(c); }

// ---- Permute -----------------------------------------------------------------------

Permute::Permute(std::vector<int64_t> perm, Device dev) : perm_(std::move(perm)) {
  const int64_t n = static_cast<int64_t>(perm_.size());
  CUVI_CHECK(n > 0, ValueError, "Permute: empty permutation");
  std::vector<int64_t> inv(perm_.size(), -1);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t p = perm_[i];
    CUVI_CHECK(p >= 0 && p < n && inv[p] < 0, ValueError,
               "Permute: not a permutation of 0.." << n - 1 << " (entry " << i << " is " << p << ")");
    inv[p] = i;
  }
  fwd_ = tensor_i64(perm_, {n}, dev);
  inv_ = tensor_i64(inv, {n}, dev);
}

Tensor Permute::gather(const Tensor& x, const Tensor& idx) const {
  check_last_dim("Permute", x, static_cast<int64_t>(perm_.size()));
  return index_select(x, -1, idx.device() == x.device() ? idx : idx.to(x.device()));
}

Tensor Permute::forward(const Tensor& x) const { return gather(x, fwd_); }
Tensor Permute::inverse(const Tensor& y) const { return gather(y, inv_); }

Tensor Permute::log_abs_det_jacobian(const Tensor& x, const Tensor&) const {
  Shape b = x.shape();
  b.pop_back();
  return zeros(b, x.device());
}

// ---- AffineAutoregressive ------------------------------------------------------------

AffineAutoregressive::AffineAutoregressive(std::shared_ptr<nn::AutoRegressiveNN> arn, AffineAutoregressiveOptions o)
    : arn_(std::move(arn)), o_(o) {
  CUVI_CHECK(arn_ != nullptr, ValueError, "AffineAutoregressive: null AutoRegressiveNN");
  CUVI_CHECK(o_.log_scale_min_clip <= o_.log_scale_max_clip, ValueError,
             "AffineAutoregressive: log_scale_min_clip " << o_.log_scale_min_clip << " exceeds log_scale_max_clip "
                                                         << o_.log_scale_max_clip);
}

AffineAutoregressive::Affine AffineAutoregressive::affine(const Tensor& x) const {
  check_last_dim("AffineAutoregressive", x, arn_->input_dim());
  const std::vector<Tensor> p = arn_->params(x);
  CUVI_CHECK(p.size() == 2 && p[0].size(-1) == arn_->input_dim() && p[1].size(-1) == arn_->input_dim(), ValueError,
             "AffineAutoregressive: the AutoRegressiveNN must have param_dims {1, 1} (a shift and a log scale)");
  const Tensor& mu = p[0];
  const Tensor& s = p[1];
  Affine a;
  if (o_.stable) {
    const Tensor t = s + o_.sigmoid_bias;
    a.scale = sigmoid(t);
    a.log_scale = log_sigmoid(t);
    a.shift = (1.0f - a.scale) * mu;
  } else {
    // The value clamped, the gradient of s passed through unchanged.
    const Tensor clamped = clamp(s, o_.log_scale_min_clip, o_.log_scale_max_clip);
    a.log_scale = s + (clamped - s).detach();
    a.scale = exp(a.log_scale);
    a.shift = mu;
  }
  return a;
}

Tensor AffineAutoregressive::forward(const Tensor& x) const {
  const Affine a = affine(x);
  cache_->x = x;
  cache_->log_det = sum(a.log_scale, {-1});
  return a.shift + a.scale * x;
}

Tensor AffineAutoregressive::inverse(const Tensor& y) const {
  check_last_dim("AffineAutoregressive.inverse", y, arn_->input_dim());
  // After pass k every coordinate among the first k of the net's order is
  // exact (its shift and scale depend only on earlier ones), so D passes
  // recover x; the last pass's scales are those at the final x.
  Tensor x = zeros_like(y);
  Tensor log_scale;
  for (int64_t k = 0; k < arn_->input_dim(); ++k) {
    const Affine a = affine(x);
    x = (y - a.shift) / a.scale;
    log_scale = a.log_scale;
  }
  cache_->x = x;
  cache_->log_det = sum(log_scale, {-1});
  return x;
}

Tensor AffineAutoregressive::log_abs_det_jacobian(const Tensor& x, const Tensor&) const {
  if (cache_->x.defined() && cache_->x.impl() == x.impl()) return cache_->log_det;
  return sum(affine(x).log_scale, {-1});
}

std::shared_ptr<AffineAutoregressive> affine_autoregressive(int64_t input_dim, std::vector<int64_t> hidden_dims,
                                                            AffineAutoregressiveOptions o,
                                                            nn::AutoRegressiveNNOptions arn, Device dev) {
  arn.param_dims = {1, 1};
  return std::make_shared<AffineAutoregressive>(
      std::make_shared<nn::AutoRegressiveNN>(input_dim, std::move(hidden_dims), std::move(arn), dev), o);
}

// ---- Planar ----------------------------------------------------------------------------

class Planar::Params final : public nn::Module {
 public:
  Params(int64_t d, Device dev) : d_(d) {
    CUVI_CHECK(d > 0, ValueError, "Planar: input_dim must be positive, got " << d);
    const float bound = 1.0f / std::sqrt(static_cast<float>(d));
    NoGradGuard ng;
    register_parameter("bias", (rand({1}, dev) * 2.0f - 1.0f) * bound);
    register_parameter("u", (rand({d}, dev) * 2.0f - 1.0f) * bound);
    register_parameter("w", (rand({d}, dev) * 2.0f - 1.0f) * bound);
  }
  Tensor forward(const Tensor& x) override { return x; }
  std::string name() const override { return "Planar(" + std::to_string(d_) + ")"; }
  int64_t dim() const { return d_; }
  const Tensor& bias() const { return param(0); }
  const Tensor& w() const { return param(2); }
  // u' = u + (softplus(w.u) - 1 - w.u) w / |w|^2, so that w.u' = softplus(w.u) - 1 > -1.
  Tensor u_hat() const {
    const Tensor& u = param(1);
    const Tensor wu = sum(w() * u);
    return u + (softplus(wu) - 1.0f - wu) * w() / sum(w() * w());
  }

 private:
  int64_t d_;
};

Planar::Planar(int64_t input_dim, Device dev) : net_(std::make_shared<Params>(input_dim, dev)) {}
nn::Module* Planar::module() const { return net_.get(); }

Tensor Planar::forward(const Tensor& x) const {
  check_last_dim("Planar", x, net_->dim());
  const Tensor act = tanh(sum(x * net_->w(), {-1}, true) + net_->bias());
  return x + net_->u_hat() * act;
}

Tensor Planar::inverse(const Tensor&) const {
  CUVI_CHECK(false, ValueError,
             "Planar: the planar flow has no closed-form inverse; score only values the distribution drew");
  return {};
}

Tensor Planar::log_abs_det_jacobian(const Tensor& x, const Tensor&) const {
  check_last_dim("Planar", x, net_->dim());
  const Tensor act = tanh(sum(x * net_->w(), {-1}, true) + net_->bias());
  const Tensor psi = (1.0f - act * act) * net_->w();
  return log(abs(1.0f + sum(psi * net_->u_hat(), {-1})));
}

// ---- elementwise bijections -----------------------------------------------------

namespace {
Tensor scalar_on(const Tensor& like, float v) { return full({}, v, like.device()); }
}  // namespace

Tensor Exp::forward(const Tensor& x) const { return exp(x); }
Tensor Exp::inverse(const Tensor& y) const { return log(y); }
Tensor Exp::log_abs_det_jacobian(const Tensor& x, const Tensor&) const { return x; }

Tensor Sigmoid::forward(const Tensor& x) const { return sigmoid(x); }
Tensor Sigmoid::inverse(const Tensor& y) const { return log(y) - log1p(-y); }
// log sigmoid'(x) = log sigmoid(x) + log sigmoid(-x).
Tensor Sigmoid::log_abs_det_jacobian(const Tensor& x, const Tensor&) const { return -softplus(-x) - softplus(x); }

constraints::ConstraintPtr Tanh::codomain() const { return constraints::interval(-1.0f, 1.0f); }
Tensor Tanh::forward(const Tensor& x) const { return tanh(x); }
// atanh(y) = (log1p(y) - log1p(-y)) / 2.
Tensor Tanh::inverse(const Tensor& y) const { return 0.5f * (log1p(y) - log1p(-y)); }
// log(1 - tanh^2 x) = 2 (log 2 - x - softplus(-2x)).
Tensor Tanh::log_abs_det_jacobian(const Tensor& x, const Tensor&) const {
  return 2.0f * (std::log(2.0f) - x - softplus(-2.0f * x));
}

Tensor Softplus::forward(const Tensor& x) const { return softplus(x); }
// softplus^-1(y) = y + log(-expm1(-y)).
Tensor Softplus::inverse(const Tensor& y) const { return y + log(-expm1(-y)); }
// log softplus'(x) = log sigmoid(x).
Tensor Softplus::log_abs_det_jacobian(const Tensor& x, const Tensor&) const { return -softplus(-x); }

int SignedElementwise::sign() const {
  if (!direction_.is_const()) return 0;
  return direction_.v > 0.0f ? 1 : -1;
}
Tensor SignedElementwise::decreasing() const {
  if (direction_.is_const()) return Tensor();
  NoGradGuard ng;
  return lt(direction_.t.detach(), scalar_on(direction_.t, 0.0f));
}

Affine::Affine(Arg loc, Arg scale_arg) : SignedElementwise(std::move(scale_arg)), loc_(std::move(loc)) {
  CUVI_CHECK(!scale().is_const() || scale().v != 0.0f, ValueError, "Affine: scale 0 is not invertible");
  for (const Arg* a : std::initializer_list<const Arg*>{&loc_, &scale()})
    CUVI_CHECK(a->is_const() || a->t.dtype() == DType::kFloat32, DTypeError,
               "Affine: loc and scale must be float32, got " << dtype_name(a->t.dtype()));
}
Tensor Affine::forward(const Tensor& x) const { return loc_.as_tensor(x.device()) + scale().as_tensor(x.device()) * x; }
Tensor Affine::inverse(const Tensor& y) const {
  return (y - loc_.as_tensor(y.device())) / scale().as_tensor(y.device());
}
// log|scale| in the broadcast shape of x and the parameters.
Tensor Affine::log_abs_det_jacobian(const Tensor& x, const Tensor&) const {
  const Tensor l = log(abs(scale().as_tensor(x.device())));
  const Shape s = broadcast_shapes(broadcast_shapes(x.shape(), l.shape(), "Affine"), loc_.shape(), "Affine");
  return l.shape() == s ? l : l.expand(s);
}

Power::Power(Arg exponent) : SignedElementwise(std::move(exponent)) {
  const Arg& e = direction();
  CUVI_CHECK(!e.is_const() || e.v != 0.0f, ValueError, "Power: exponent 0 is not invertible");
  CUVI_CHECK(e.is_const() || e.t.dtype() == DType::kFloat32, DTypeError,
             "Power: the exponent must be float32, got " << dtype_name(e.t.dtype()));
}
Tensor Power::forward(const Tensor& x) const { return pow(x, direction().as_tensor(x.device())); }
Tensor Power::inverse(const Tensor& y) const { return pow(y, 1.0f / direction().as_tensor(y.device())); }
// log|dy/dx| = log|e x^(e-1)| = log|e| + (e - 1) log x (x > 0), in the
// broadcast shape of x and the exponent.
Tensor Power::log_abs_det_jacobian(const Tensor& x, const Tensor&) const {
  const Tensor e = direction().as_tensor(x.device());
  return log(abs(e)) + (e - 1.0f) * log(x);
}

}  // namespace cuvi::dist::transforms
