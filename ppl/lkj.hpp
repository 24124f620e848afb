// Pyro's / torch's LKJCholesky(dim, concentration): a distribution over
// Cholesky factors L of D x D correlation matrices (D = dim >= 2), with
// density proportional to det(L L^T)^(concentration - 1) on the correlation
// matrices, i.e. over the D(D-1)/2 strictly lower entries of L
//   p(L) = prod_{i=1}^{D-1} L_ii^(2 (eta - 1) + D - 1 - i) / Z(eta, D)
// (rows i counted from 0; the factor L_ii^(D - 1 - i) is the Jacobian from
// L to L L^T), with
//   log Z = (D-1)/2 log(pi) + mvlgamma(alpha - 1/2, D-1) - (D-1) lgamma(alpha),
//   alpha = eta + (D-1)/2, mvlgamma(a, p) = p(p-1)/4 log(pi) + sum_{j<p} lgamma(a - j/2).
// eta = 1 is uniform over correlation matrices; larger eta concentrates
// them at the identity. Every off-diagonal correlation of L L^T is
// marginally 2 Beta(eta - 1 + D/2, eta - 1 + D/2) - 1.
//
// sample(): the onion method in Cholesky form: row 0 is e_0; row k (1 <= k
// < D) is [sqrt(y) u, sqrt(1 - y), 0...] with y ~ Beta(k/2, eta + (D-1-k)/2)
// and u uniform on the unit sphere of R^k (a normalised normal vector). Not
// reparameterised (as torch's). The support is constraints::corr_cholesky,
// whose bijection lets AutoNormal and friends fit LKJ sites.
//
// concentration: a float or a Tensor (the batch shape); it must be > 0
// (ValueError naming the distribution and the value; a Tensor is checked
// when it lives on the CPU, so that no call waits for a GPU).
#pragma once

#include "distributions.hpp"

namespace cuvi::dist {

class LKJCholesky final : public Distribution {
 public:
  LKJCholesky(int64_t dim, const Tensor& concentration);
  LKJCholesky(int64_t dim, float concentration = 1.0f, Device dev = default_device());
  int64_t dim() const { return d_; }
  const Tensor& concentration() const { return eta_; }

  std::string name() const override { return "LKJCholesky"; }
  DistPtr clone() const override { return std::make_shared<LKJCholesky>(*this); }
  Shape batch_shape() const override { return eta_.shape(); }
  Shape event_shape() const override { return {d_, d_}; }
  constraints::ConstraintPtr support() const override { return constraints::corr_cholesky; }
  Tensor log_prob(const Tensor& x) const override;
  Tensor sample(const Shape& sample_shape = {}) const override;
  DistPtr expand_ptr(const Shape& batch) const override;
  Device device() const override { return eta_.device(); }

 private:
  int64_t d_;
  Tensor eta_;
};

}  // namespace cuvi::dist
