// MultivariateNormal(loc, scale_tril): a composition of runtime ops around the
// batched triangular solve. With Sigma = L L^T,
//   log p(x) = -0.5 |L^{-1}(x - loc)|^2 - sum_i log L_ii - D/2 log(2 pi),
// since log det Sigma = 2 sum_i log L_ii for a triangular L.
#include <cmath>

#include "distributions.hpp"

namespace cuvi::dist {

namespace {

Shape with_event(Shape s, std::initializer_list<int64_t> event) {
  s.insert(s.end(), event.begin(), event.end());
  return s;
}

// scale_tril on the CPU must be a lower Cholesky factor (PyTorch's
// lower_cholesky constraint): finite, zero above the diagonal, positive on it.
void validate_scale_tril(const Tensor& L) {
  const auto v = L.to_vector();
  const int64_t D = L.size(-1);
  for (size_t m = 0; m < v.size() / static_cast<size_t>(D * D); ++m)
    for (int64_t i = 0; i < D; ++i)
      for (int64_t j = 0; j < D; ++j) {
        const float x = v[m * static_cast<size_t>(D * D) + static_cast<size_t>(i * D + j)];
        CUVI_CHECK(std::isfinite(x), ValueError,
                   "MultivariateNormal: parameter scale_tril must be finite, got " << x << " at [" << i << ", " << j
                                                                                  << "]" << detail::site_suffix());
        if (i == j)
          CUVI_CHECK(x > 0.0f, ValueError,
                     "MultivariateNormal: parameter scale_tril must have a positive diagonal, got "
                         << x << " at [" << i << ", " << i << "]" << detail::site_suffix());
        if (j > i)
          CUVI_CHECK(x == 0.0f, ValueError,
                     "MultivariateNormal: parameter scale_tril must be lower triangular, got "
                         << x << " at [" << i << ", " << j << "]" << detail::site_suffix());
      }
}

}  // namespace

MultivariateNormal::MultivariateNormal(const Tensor& loc, const Tensor& scale_tril)
    : loc_(loc), scale_tril_(scale_tril) {
  CUVI_CHECK(loc_.defined() && scale_tril_.defined(), ValueError,
             "MultivariateNormal: undefined parameter" << detail::site_suffix());
  CUVI_CHECK(loc_.dtype() == DType::kFloat32 && scale_tril_.dtype() == DType::kFloat32, DTypeError,
             "MultivariateNormal: parameters must be float32" << detail::site_suffix());
  CUVI_CHECK(loc_.dim() >= 1, ShapeError,
             "MultivariateNormal: loc needs at least 1 dim, got " << shape_str(loc_.shape()) << detail::site_suffix());
  CUVI_CHECK(scale_tril_.dim() >= 2 && scale_tril_.size(-1) == scale_tril_.size(-2) &&
                 scale_tril_.size(-1) == loc_.size(-1),
             ShapeError,
             "MultivariateNormal: scale_tril must be [..., D, D] with D = loc.size(-1); got loc "
                 << shape_str(loc_.shape()) << " and scale_tril " << shape_str(scale_tril_.shape())
                 << detail::site_suffix());
  CUVI_CHECK(loc_.device() == scale_tril_.device(), DeviceError,
             "MultivariateNormal: loc on " << loc_.device().str() << " but scale_tril on "
                                           << scale_tril_.device().str() << detail::site_suffix());
  const Shape& sl = loc_.shape();
  const Shape& ss = scale_tril_.shape();
  batch_shape_ = broadcast_shapes(Shape(sl.begin(), sl.end() - 1), Shape(ss.begin(), ss.end() - 2),
                                  "MultivariateNormal");
  if (validation_enabled() && scale_tril_.device().is_cpu()) {
    for (float x : loc_.to_vector())
      CUVI_CHECK(!std::isnan(x), ValueError,
                 "MultivariateNormal: parameter loc must be real, got " << x << detail::site_suffix());
    validate_scale_tril(scale_tril_);
  }
}

Tensor MultivariateNormal::log_prob(const Tensor& x) const {
  const int64_t D = loc_.size(-1);
  CUVI_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == D, ShapeError,
             "MultivariateNormal.log_prob: value needs a last dim of "
                 << D << ", got " << (x.defined() ? shape_str(x.shape()) : "undefined") << detail::site_suffix());
  Tensor z = triangular_solve(scale_tril_, x - loc_);
  Tensor half_log_det = sum(log(diagonal(scale_tril_)), {-1});
  const float norm = 0.5f * static_cast<float>(D) * (2.0f * kern::kLogSqrt2Pi);
  return -0.5f * sum(square(z), {-1}) - half_log_det - norm;
}

Tensor MultivariateNormal::rsample(const Shape& s) const {
  Shape full = s;
  full.insert(full.end(), batch_shape_.begin(), batch_shape_.end());
  full.push_back(loc_.size(-1));
  Tensor eps = randn(full, device());
  return loc_ + matmul(scale_tril_, eps.unsqueeze(-1)).squeeze(-1);
}

Tensor MultivariateNormal::mean() const {
  const Shape full = with_event(batch_shape_, {loc_.size(-1)});
  return loc_.shape() == full ? loc_ : loc_.expand(full);
}

Tensor MultivariateNormal::variance() const {
  // diag(L L^T)_i = sum_j L_ij^2.
  Tensor v = sum(square(scale_tril_), {-1});
  const Shape full = with_event(batch_shape_, {loc_.size(-1)});
  return v.shape() == full ? v : v.expand(full);
}

DistPtr MultivariateNormal::expand_ptr(const Shape& b) const {
  bool fits = b.size() >= batch_shape_.size();
  for (size_t i = 0; fits && i < batch_shape_.size(); ++i) {
    const int64_t have = batch_shape_[batch_shape_.size() - 1 - i], want = b[b.size() - 1 - i];
    fits = have == want || have == 1;
  }
  CUVI_CHECK(fits, ShapeError,
             "MultivariateNormal.expand: cannot expand batch shape " << shape_str(batch_shape_) << " to "
                                                                     << shape_str(b) << detail::site_suffix());
  const int64_t D = loc_.size(-1);
  return std::make_shared<MultivariateNormal>(loc_.expand(with_event(b, {D})),
                                              scale_tril_.expand(with_event(b, {D, D})));
}

}  // namespace cuvi::dist
