#include "lkj.hpp"

#include <cmath>
#include <limits>

#include "family_ops.hpp"

namespace cuvi::dist {

namespace {

void check_dim(int64_t d) {
  CUVI_CHECK(d >= 2, ValueError, "LKJCholesky: dim must be >= 2, got " << d);
}

}  // namespace

LKJCholesky::LKJCholesky(int64_t dim, const Tensor& concentration) : d_(dim), eta_(concentration) {
  check_dim(d_);
  CUVI_CHECK(eta_.defined(), ValueError, "LKJCholesky: concentration is an undefined tensor");
  eta_ = eta_.to_float();
  // On the device: no wait on a GPU.
  detail::check_in_range(eta_, 0.0f, true, std::numeric_limits<float>::infinity(),
                         "LKJCholesky: concentration must be > 0");
}

LKJCholesky::LKJCholesky(int64_t dim, float concentration, Device dev) : d_(dim) {
  check_dim(d_);
  CUVI_CHECK(concentration > 0.0f, ValueError,
             "LKJCholesky: concentration must be > 0, got " << concentration << detail::site_suffix());
  eta_ = full({}, concentration, dev);
}

Tensor LKJCholesky::log_prob(const Tensor& x) const {
  CUVI_CHECK(x.defined() && x.dim() >= 2 && x.size(-1) == d_ && x.size(-2) == d_, ShapeError,
             "LKJCholesky(" << d_ << "): value of shape " << (x.defined() ? shape_str(x.shape()) : "<undefined>")
                            << " does not end in [" << d_ << ", " << d_ << "]" << detail::site_suffix());
  if (validation_enabled()) {  // on the device: no wait on a GPU
    NoGradGuard ng;
    const Tensor ok = constraints::corr_cholesky->check(x);
    detail::check_values(ok, arange(ok.numel(), ok.device()).reshape(ok.shape()),
                         "LKJCholesky: a value is not the Cholesky factor of a correlation matrix (lower triangular, "
                         "positive diagonal, unit-norm rows); its flat batch index");
  }
  const Device dev = x.device();
  const int64_t d = d_;
  // Exponents 2 (eta - 1) + D - 1 - i of L_ii, i = 1..D-1 (D - 2 - arange:
  // made on the device, no host copy per call).
  const Tensor eta = eta_.unsqueeze(-1);  // [batch..., 1]
  const Tensor order = 2.0f * (eta - 1.0f) + (static_cast<float>(d - 2) - arange(d - 1, dev));
  const Tensor diag = narrow(diagonal(x), -1, 1, d - 1);
  const Tensor unnorm = sum(order * log(diag), {-1});
  const float dm1 = static_cast<float>(d - 1);
  const Tensor alpha = eta_ + 0.5f * dm1;
  const float log_pi = static_cast<float>(std::log(M_PI));
  Tensor mvlg = full({}, dm1 * (dm1 - 1.0f) / 4.0f * log_pi, dev);
  for (int64_t j = 0; j < d - 1; ++j) mvlg = mvlg + lgamma(alpha - 0.5f - 0.5f * static_cast<float>(j));
  const Tensor log_z = 0.5f * dm1 * log_pi + mvlg - dm1 * lgamma(alpha);
  return unnorm - log_z;
}

Tensor LKJCholesky::sample(const Shape& sample_shape) const {
  NoGradGuard ng;
  const Device dev = eta_.device();
  Shape lead = sample_shape;
  const Shape b = batch_shape();
  lead.insert(lead.end(), b.begin(), b.end());
  const Tensor eta = eta_.detach();
  std::vector<Tensor> rows;
  Shape first = lead;
  first.push_back(d_);
  std::vector<float> e0(static_cast<size_t>(d_), 0.0f);
  e0[0] = 1.0f;
  rows.push_back(tensor(e0, {d_}, dev).expand(first));
  for (int64_t k = 1; k < d_; ++k) {
    const Tensor beta = eta + 0.5f * static_cast<float>(d_ - 1 - k);
    const Tensor y = Beta(full(beta.shape(), 0.5f * static_cast<float>(k), dev), beta).sample(sample_shape);
    Shape us = lead;
    us.push_back(k);
    const Tensor n = randn(us, dev);
    const Tensor u = n / sqrt(sum(n * n, {-1}, true));
    std::vector<Tensor> parts{sqrt(y).unsqueeze(-1) * u, sqrt(clamp_min(1.0f - y, 0.0f)).unsqueeze(-1)};
    if (k + 1 < d_) {
      Shape zs = lead;
      zs.push_back(d_ - 1 - k);
      parts.push_back(zeros(zs, dev));
    }
    rows.push_back(cat(parts, -1));
  }
  return stack(rows, -2).detach();
}

DistPtr LKJCholesky::expand_ptr(const Shape& batch) const {
  return std::make_shared<LKJCholesky>(d_, eta_.expand(batch));
}

}  // namespace cuvi::dist
