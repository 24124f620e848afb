// Constraints on parameter and sample values, each with the bijection from
// unconstrained real space onto it (what Pyro calls biject_to(constraint)).
//
// Parameters live unconstrained in the param store; `param` returns
// transform(leaf). Every transform is built from differentiable tensor ops,
// so gradients reach the unconstrained leaf on any device.
//
//   constraint            transform u -> x                 unconstrained shape
//   real                  x = u                            same
//   positive              x = exp(u)                       same
//   softplus_positive     x = softplus(u)                  same
//   unit_interval         x = sigmoid(u)                   same
//   interval(a, b)        x = a + (b - a) sigmoid(u)       same
//   greater_than(a)       x = a + exp(u)                   same
//   simplex               stick-breaking (below)           [..., K] <- [..., K-1]
//   ordered_vector        x = cumsum([u_0, exp(u_1..)])    same ([..., K])
//   lower_cholesky        packed lower triangle (below)    [..., n, n] <- [..., n(n+1)/2]
//   corr_cholesky         tanh, then stick-breaking rows   [..., n, n] <- [..., n(n-1)/2]
//                         (unit-norm rows; constraints.cpp)
//   boolean,              discrete: check() only; transform/inverse throw
//   nonnegative_integer   ValueError (there is no bijection from R^n)
//
// simplex (as torch's StickBreakingTransform): with u of size K-1,
//   z_i = sigmoid(u_i - log(K-1-i)),  x_i = z_i prod_{j<i} (1 - z_j)  (i < K-1),
//   x_{K-1} = prod_j (1 - z_j). u = 0 gives the uniform simplex. Computed in log
//   space (log_sigmoid and cumsum) so that tiny components stay accurate.
//   log|det J| (over the K-1 free coordinates x_0..x_{K-2}) = sum_i [log x_i + log(1 - z_i)].
//
// lower_cholesky: the unconstrained value packs the lower triangle row by row,
//   u = [L00, L10, L11, L20, L21, L22, ...], position of (i, j <= i) = i(i+1)/2 + j.
//   The diagonal goes through exp (L_ii = exp(u_ii), as torch's
//   LowerCholeskyTransform), the strictly lower part is copied as is and the
//   upper part is zero. So the map is a true bijection onto lower-triangular
//   matrices with positive diagonal, with no dead coordinates, and
//   log|det J| = sum_i u_ii.
//
// ordered_vector (Pyro's; OrderedLogistic's cutpoints): strictly increasing
//   finite vectors, x_0 = u_0, x_i = x_{i-1} + exp(u_i); log|det J| =
//   sum_{i >= 1} u_i; inverse u_i = log(x_i - x_{i-1}).
//
// Names (name() / from_name()): "real", "positive", "softplus_positive",
// "unit_interval", "interval(a, b)", "greater_than(a)", "simplex", "ordered_vector",
// "lower_cholesky", "corr_cholesky", "boolean", "nonnegative_integer", where a, b are printed
// in the shortest form that reads back to the same float ("interval(-1, 2.5)").
// Constraints compare equal when their names do.
#pragma once

#include <memory>
#include <string>

#include "runtime/tensor.hpp"

namespace cuvi::constraints {

class Constraint {
 public:
  virtual ~Constraint() = default;
  virtual std::string name() const = 0;
  // Number of rightmost dims that form one event: 0 elementwise, 1 simplex, 2 lower_cholesky.
  virtual int event_dim() const = 0;
  virtual bool is_discrete() const { return false; }
  // 0/1 float32 tensor of x's batch shape (x's shape less event_dim() dims):
  // 1 where the whole event satisfies the constraint. NaN never does. No autograd.
  virtual Tensor check(const Tensor& x) const = 0;
  // The bijection from unconstrained space and its inverse; differentiable.
  virtual Tensor transform(const Tensor& u) const = 0;
  virtual Tensor inverse(const Tensor& x) const = 0;
  // log|det d transform / du| at u, summed over the event dims (x = transform(u)
  // may be used to save work); its shape is the batch shape. Differentiable in u.
  virtual Tensor log_abs_det_jacobian(const Tensor& u, const Tensor& x) const = 0;
  // Shape maps between the two spaces (ShapeError where the shape cannot hold an event).
  virtual Shape unconstrained_shape(const Shape& constrained) const { return constrained; }
  virtual Shape constrained_shape(const Shape& unconstrained) const { return unconstrained; }
  // +1 when transform() is an elementwise increasing map, -1 when decreasing,
  // 0 otherwise (a map of whole events, or unknown): what cdf / icdf of a
  // TransformedDistribution need. The built-in elementwise bijections all
  // increase; a user's constraint says so by overriding this.
  virtual int transform_sign() const { return 0; }
};

using ConstraintPtr = std::shared_ptr<const Constraint>;

// Singletons (plain objects: creating them touches no device).
extern const ConstraintPtr real;
extern const ConstraintPtr positive;
extern const ConstraintPtr softplus_positive;
extern const ConstraintPtr unit_interval;
extern const ConstraintPtr simplex;
extern const ConstraintPtr ordered_vector;  // strictly increasing last dim
extern const ConstraintPtr lower_cholesky;
extern const ConstraintPtr corr_cholesky;  // Cholesky factors of correlation matrices (LKJCholesky's support)
extern const ConstraintPtr boolean;
extern const ConstraintPtr nonnegative_integer;

// [lo, hi] through lo + (hi - lo) sigmoid(u); ValueError unless lo < hi (both finite).
ConstraintPtr interval(float lo, float hi);
// (lo, inf) through lo + exp(u); ValueError unless lo is finite.
ConstraintPtr greater_than(float lo);
// The inverse of name(); ValueError naming the string when it is not a known name.
ConstraintPtr from_name(const std::string& name);

}  // namespace cuvi::constraints
