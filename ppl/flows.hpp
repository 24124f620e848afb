// Transforms for TransformedDistribution and normalizing flows (Pyro's
// pyro.distributions.transforms): a Transform is a differentiable bijection
// y = T(x) with log|det dT/dx|, acting on the rightmost event_dim() dims.
//
//   biject_to(c)              a constraint's bijection from unconstrained space
//   Permute(perm)             y = x[..., perm] (log det 0)
//   AffineAutoregressive      Pyro's IAF: y = mu(x) + exp(s(x)) * x, with (mu, s)
//                             from a MADE (nn::AutoRegressiveNN) of x
//   Planar                    Pyro's planar flow: y = x + u tanh(w.x + b)
//   Exp, Sigmoid, Tanh,       Pyro's ExpTransform, SigmoidTransform,
//   Softplus, Affine, Power   TanhTransform, SoftplusTransform, AffineTransform,
//                             PowerTransform (elementwise; Affine's loc and
//                             scale, Power's exponent: tensors or floats)
//
// Transforms with parameters own an nn::Module (module()); register it with
// module(prefix, *t->module()) inside the guide, as pyro.module does, so SVI
// trains its weights:
//
//   auto iaf = dist::transforms::affine_autoregressive(2);
//   auto guide = [iaf] {
//     module("iaf", *iaf->module());
//     dist::TransformedDistribution q(dist::Normal(zeros({2}), ones({2})).to_event(1).ptr(), {iaf});
//     sample("z", q);
//   };
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "constraints.hpp"
#include "family_ops.hpp"
#include "nn.hpp"

namespace cuvi::dist::transforms {

class Transform {
 public:
  virtual ~Transform() = default;
  virtual std::string name() const = 0;
  // Rightmost dims that form one event of the domain (0 elementwise).
  virtual int event_dim() const = 0;
  // Event dims of the codomain (one more than event_dim() for
  // biject_to(lower_cholesky), which maps a packed vector onto a matrix).
  virtual int codomain_event_dim() const { return event_dim(); }
  // The codomain's constraint (real for flows; a constraint's own for biject_to).
  virtual constraints::ConstraintPtr codomain() const { return constraints::real; }
  virtual Tensor forward(const Tensor& x) const = 0;
  virtual Tensor inverse(const Tensor& y) const = 0;
  // log|det dT/dx| at x (y = forward(x) may be used to save work), summed
  // over the event dims: shape x's shape less event_dim() dims.
  virtual Tensor log_abs_det_jacobian(const Tensor& x, const Tensor& y) const = 0;
  // Shape maps between domain and codomain (only a simplex changes shape).
  virtual Shape forward_shape(const Shape& s) const { return s; }
  virtual Shape inverse_shape(const Shape& s) const { return s; }
  // The net holding this transform's parameters; null when it has none.
  virtual nn::Module* module() const { return nullptr; }
  // +1 for an elementwise increasing map, -1 for a decreasing one, 0 when it
  // is not elementwise monotone or its direction depends on a tensor (Pyro's
  // Transform.sign; cdf and icdf of a TransformedDistribution need every
  // transform's to be nonzero, or decreasing() to be defined).
  virtual int sign() const { return 0; }
  // For an elementwise monotone map whose direction is a tensor parameter's
  // (an Affine's tensor scale): a 0/1 float32 tensor broadcastable against
  // the values, 1 where the map decreases. Undefined otherwise.
  virtual Tensor decreasing() const { return Tensor(); }
  Tensor operator()(const Tensor& x) const { return forward(x); }
};

using TransformPtr = std::shared_ptr<const Transform>;

// A constraint's bijection from unconstrained space (Pyro's biject_to(c)).
// ValueError for a discrete constraint.
TransformPtr biject_to(const constraints::ConstraintPtr& c);

// y = x[..., perm] along the last dim (Pyro's Permute); perm must be a
// permutation of 0..n-1 and x's last dim n (ShapeError otherwise).
class Permute final : public Transform {
 public:
  explicit Permute(std::vector<int64_t> perm, Device dev = default_device());
  std::string name() const override { return "Permute"; }
  int event_dim() const override { return 1; }
  Tensor forward(const Tensor& x) const override;
  Tensor inverse(const Tensor& y) const override;
  Tensor log_abs_det_jacobian(const Tensor& x, const Tensor& y) const override;
  const std::vector<int64_t>& permutation() const { return perm_; }

 private:
  Tensor gather(const Tensor& x, const Tensor& idx) const;
  std::vector<int64_t> perm_;
  Tensor fwd_, inv_;  // int64 index tensors
};

// Pyro's AffineAutoregressive (an inverse autoregressive flow, Kingma et al.
// 2016) over the last dim, of size D = arn->input_dim():
//   (mu, s) = arn(x)   (an AutoRegressiveNN with param_dims {1, 1})
//   default:  y = mu + exp(s') x,  s' = s clamped to [log_scale_min_clip,
//             log_scale_max_clip] in value with the gradient of s passed
//             through (Pyro's clamp_preserve_gradients); log det = sum s'
//   stable:   sigma = sigmoid(s + sigmoid_bias), y = sigma x + (1 - sigma) mu;
//             log det = sum log sigma
// Forward (sampling) is one pass of the net; inverse takes D passes, one
// per coordinate in the net's order. log_abs_det_jacobian(x, y) reuses the
// scales of the last forward(x) when x is that tensor (Pyro's cache).
struct AffineAutoregressiveOptions {
  float log_scale_min_clip = -5.0f;
  float log_scale_max_clip = 3.0f;
  float sigmoid_bias = 2.0f;
  bool stable = false;
};

class AffineAutoregressive final : public Transform {
 public:
  explicit AffineAutoregressive(std::shared_ptr<nn::AutoRegressiveNN> arn, AffineAutoregressiveOptions o = {});
  std::string name() const override { return o_.stable ? "AffineAutoregressive(stable)" : "AffineAutoregressive"; }
  int event_dim() const override { return 1; }
  Tensor forward(const Tensor& x) const override;
  Tensor inverse(const Tensor& y) const override;
  Tensor log_abs_det_jacobian(const Tensor& x, const Tensor& y) const override;
  nn::Module* module() const override { return arn_.get(); }
  const std::shared_ptr<nn::AutoRegressiveNN>& arn() const { return arn_; }
  const AffineAutoregressiveOptions& options() const { return o_; }

 private:
  struct Affine {
    Tensor shift, scale, log_scale;  // y = shift + scale * x
  };
  Affine affine(const Tensor& x) const;
  std::shared_ptr<nn::AutoRegressiveNN> arn_;
  AffineAutoregressiveOptions o_;
  struct Cache {
    Tensor x, log_det;
  };
  std::shared_ptr<Cache> cache_ = std::make_shared<Cache>();
};

// Pyro's affine_autoregressive(input_dim, hidden_dims): an AffineAutoregressive
// over an AutoRegressiveNN(input_dim, hidden_dims) (empty: [3 D + 1]) on dev.
std::shared_ptr<AffineAutoregressive> affine_autoregressive(int64_t input_dim, std::vector<int64_t> hidden_dims = {},
                                                            AffineAutoregressiveOptions o = {},
                                                            nn::AutoRegressiveNNOptions arn = {},
                                                            Device dev = default_device());

// Pyro's Planar flow (Rezende & Mohamed 2015) over the last dim of size D:
//   y = x + u' tanh(w.x + b),  u' = u + (softplus(w.u) - 1 - w.u) w / |w|^2
// (the reparameterisation that keeps w.u' >= -1, so T is invertible);
//   log det = log|1 + u'.w (1 - tanh^2(w.x + b))|.
// Parameters "bias" [1], "u" [D], "w" [D], initialised U(-1/sqrt(D), 1/sqrt(D))
// as Pyro's ConditionalPlanar/Planar reset_parameters. It has no closed-form
// inverse (inverse throws ValueError); use it where only samples drawn by
// the distribution are scored (a guide).
class Planar final : public Transform {
 public:
  explicit Planar(int64_t input_dim, Device dev = default_device());
  std::string name() const override { return "Planar"; }
  int event_dim() const override { return 1; }
  Tensor forward(const Tensor& x) const override;
  Tensor inverse(const Tensor& y) const override;
  Tensor log_abs_det_jacobian(const Tensor& x, const Tensor& y) const override;
  nn::Module* module() const override;

 private:
  class Params;
  std::shared_ptr<Params> net_;
};

// ---- elementwise bijections (event_dim 0) -----------------------------------
// Pyro's ExpTransform, SigmoidTransform, TanhTransform, SoftplusTransform,
// AffineTransform and PowerTransform, for TransformedDistribution (whose
// cdf / icdf carry through them: each has a sign) and for flows. Each
// log|det J| is elementwise, written so that it stays finite where the map
// saturates (sigmoid: -softplus(-x) - softplus(x); tanh: 2 (log 2 - x -
// softplus(-2x)); power: log|e| + (e - 1) log x, finite where x^e underflows).
class Elementwise : public Transform {
 public:
  int event_dim() const final { return 0; }
};

// The increasing ones (Pyro's sign +1).
class IncreasingElementwise : public Elementwise {
 public:
  int sign() const final { return 1; }
};

class Exp final : public IncreasingElementwise {
 public:
  std::string name() const override { return "Exp"; }
  constraints::ConstraintPtr codomain() const override { return constraints::positive; }
  Tensor forward(const Tensor& x) const override;
  Tensor inverse(const Tensor& y) const override;
  Tensor log_abs_det_jacobian(const Tensor& x, const Tensor& y) const override;
};

class Sigmoid final : public IncreasingElementwise {
 public:
  std::string name() const override { return "Sigmoid"; }
  constraints::ConstraintPtr codomain() const override { return constraints::unit_interval; }
  Tensor forward(const Tensor& x) const override;
  Tensor inverse(const Tensor& y) const override;
  Tensor log_abs_det_jacobian(const Tensor& x, const Tensor& y) const override;
};

class Tanh final : public IncreasingElementwise {
 public:
  std::string name() const override { return "Tanh"; }
  constraints::ConstraintPtr codomain() const override;  // interval(-1, 1)
  Tensor forward(const Tensor& x) const override;
  Tensor inverse(const Tensor& y) const override;
  Tensor log_abs_det_jacobian(const Tensor& x, const Tensor& y) const override;
};

class Softplus final : public IncreasingElementwise {
 public:
  std::string name() const override { return "Softplus"; }
  constraints::ConstraintPtr codomain() const override { return constraints::positive; }
  Tensor forward(const Tensor& x) const override;
  Tensor inverse(const Tensor& y) const override;
  Tensor log_abs_det_jacobian(const Tensor& x, const Tensor& y) const override;
};

// Elementwise maps whose direction is one argument's sign (Affine's scale,
// Power's exponent): sign() is +-1 for a float; for a tensor it is 0 and
// decreasing() is 1 where the tensor is negative (no gradient, no read of
// the device).
class SignedElementwise : public Elementwise {
 public:
  int sign() const final;
  Tensor decreasing() const final;

 protected:
  explicit SignedElementwise(Arg direction) : direction_(std::move(direction)) {}
  const Arg& direction() const { return direction_; }

 private:
  Arg direction_;
};

// y = loc + scale * x (Pyro's AffineTransform with event_dim 0); loc and
// scale are tensors (broadcasting against x; trainable when they are params)
// or float constants. A zero float scale is a ValueError. Decreasing where
// the scale is negative.
class Affine final : public SignedElementwise {
 public:
  Affine(Arg loc, Arg scale);
  std::string name() const override { return "Affine"; }
  Tensor forward(const Tensor& x) const override;
  Tensor inverse(const Tensor& y) const override;
  Tensor log_abs_det_jacobian(const Tensor& x, const Tensor& y) const override;

 private:
  const Arg& scale() const { return direction(); }
  Arg loc_;
};

// y = x^exponent on the positive reals (Pyro's PowerTransform: domain and
// codomain positive); the exponent a tensor (broadcasting against x;
// trainable as a param) or a float. A zero float exponent is a ValueError.
// Decreasing where the exponent is negative.
class Power final : public SignedElementwise {
 public:
  explicit Power(Arg exponent);
  std::string name() const override { return "Power"; }
  constraints::ConstraintPtr codomain() const override { return constraints::positive; }
  Tensor forward(const Tensor& x) const override;
  Tensor inverse(const Tensor& y) const override;
  Tensor log_abs_det_jacobian(const Tensor& x, const Tensor& y) const override;
};

}  // namespace cuvi::dist::transforms
