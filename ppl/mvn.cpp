// MultivariateNormal(loc, scale_tril). With Sigma = L L^T,
//   log p(x) = -0.5 |L^{-1}(x - loc)|^2 - sum_i log L_ii - D/2 log(2 pi),
// since log det Sigma = 2 sum_i log L_ii for a triangular L. For D <=
// kern::kMvnMaxD, log_prob, its backward and the fused log-prob-sum are one
// row kernel each (kern::MvnBody: one thread solves one row in registers);
// larger events compose runtime ops around the batched triangular solve
// (a few large systems, where a per-row thread would be slow). Validation
// is one row pass (deferred on a GPU).
#include <cmath>

#include "../kernels/dist/mvn.hpp"
#include "distributions.hpp"
#include "row_family_ops.hpp"

namespace cuvi::dist {

namespace {

Shape with_event(Shape s, std::initializer_list<int64_t> event) {
  s.insert(s.end(), event.begin(), event.end());
  return s;
}

const std::vector<std::string>& mvn_checks() {
  static const std::vector<std::string> what{
      "parameter loc must be real", "parameter scale_tril must be finite",
      "parameter scale_tril must have a positive diagonal", "parameter scale_tril must be lower triangular"};
  return what;
}

Shape drop(const Shape& s, size_t n) { return Shape(s.begin(), s.end() - static_cast<std::ptrdiff_t>(n)); }

// Row geometry over `rows` for value x (may be null), loc and scale_tril.
kern::MvnArgs mvn_args(const Tensor* x, const Tensor& loc, const Tensor& L, const Shape& rows) {
  kern::MvnArgs a;
  const Shape xb = x ? drop(x->shape(), 1) : rows, lb = drop(loc.shape(), 1), Lb = drop(L.shape(), 2);
  a.geom = cuvi::detail::make_geom<3>(rows, {&xb, &lb, &Lb});
  a.x = x ? x->data<float>() : nullptr;
  a.loc = loc.data<float>();
  a.L = L.data<float>();
  a.D = static_cast<int>(loc.size(-1));
  return a;
}

}  // namespace

MultivariateNormal MultivariateNormal::from_covariance(const Tensor& loc, const Tensor& covariance_matrix) {
  CUVI_CHECK(covariance_matrix.defined(), ValueError,
             "MultivariateNormal: undefined covariance_matrix" << detail::site_suffix());
  CUVI_CHECK(covariance_matrix.dtype() == DType::kFloat32 && covariance_matrix.dim() >= 2 &&
                 covariance_matrix.size(-1) == covariance_matrix.size(-2),
             ShapeError,
             "MultivariateNormal: covariance_matrix must be float32 [..., D, D], got "
                 << shape_str(covariance_matrix.shape()) << detail::site_suffix());
  return MultivariateNormal(loc, cholesky(covariance_matrix));
}

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
  if (validation_enabled())
    detail::rows_validate<kern::MvnBody>(mvn_args(nullptr, loc_, scale_tril_, batch_shape_), false, device(),
                                         "MultivariateNormal", mvn_checks());
}

namespace {

void check_value(const Tensor& x, int64_t D, Device dev) {
  CUVI_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == D, ShapeError,
             "MultivariateNormal.log_prob: value needs a last dim of "
                 << D << ", got " << (x.defined() ? shape_str(x.shape()) : "undefined") << detail::site_suffix());
  CUVI_CHECK(x.dtype() == DType::kFloat32, DTypeError,
             "MultivariateNormal: values must be float32, got " << dtype_name(x.dtype()) << detail::site_suffix());
  CUVI_CHECK(x.device() == dev, DeviceError,
             "MultivariateNormal: value on " << x.device().str() << " and parameters on " << dev.str()
                                             << detail::site_suffix());
}

// The per-row gradients of coef * (g or 1) * log_prob, reduced to the
// shapes of x, loc and L; with sum_out, the fused pass also writes
// coef * sum(log_prob) there.
std::vector<Tensor> mvn_grads(const Tensor& x, const Tensor& loc, const Tensor& L, const Shape& rows, const Tensor* g,
                              float coef, Tensor* sum_out, const std::vector<bool>& need) {
  const Device dev = loc.device();
  const int64_t D = loc.size(-1);
  const auto a = mvn_args(&x, loc, L, rows);
  Shape rv = rows, rm = rows;
  rv.push_back(D);
  rm.push_back(D);
  rm.push_back(D);
  Tensor gx = Tensor::empty(rv, DType::kFloat32, dev), gloc = Tensor::empty(rv, DType::kFloat32, dev);
  Tensor gL = Tensor::empty(rm, DType::kFloat32, dev);
  kern::MvnGrads o{gx.data<float>(), gloc.data<float>(), gL.data<float>()};
  // The fused sum validates as it goes (MultivariateNormal::log_prob_sum).
  if (sum_out)
    detail::rows_log_prob_sum<kern::MvnBody>(a, coef, o, true, *sum_out, dev, "MultivariateNormal", &mvn_checks());
  else detail::rows_log_prob_grad<kern::MvnBody>(a, g->data<float>(), coef, o, dev, "MultivariateNormal");
  std::vector<Tensor> res(3);
  if (need[0]) res[0] = sum_to_shape(gx, x.shape());
  if (need[1]) res[1] = sum_to_shape(gloc, loc.shape());
  if (need[2]) res[2] = sum_to_shape(gL, L.shape());
  return res;
}

}  // namespace

Tensor MultivariateNormal::log_prob(const Tensor& x) const {
  const int64_t D = loc_.size(-1);
  check_value(x, D, device());
  if (D > kern::kMvnMaxD) {
    Tensor z = triangular_solve(scale_tril_, x - loc_);
    Tensor half_log_det = sum(log(diagonal(scale_tril_)), {-1});
    const float norm = 0.5f * static_cast<float>(D) * (2.0f * kern::kLogSqrt2Pi);
    return -0.5f * sum(square(z), {-1}) - half_log_det - norm;
  }
  const Shape rows = broadcast_shapes(drop(x.shape(), 1), batch_shape_, "MultivariateNormal.log_prob");
  const auto a = mvn_args(&x, loc_, scale_tril_, rows);
  Tensor out = Tensor::empty(rows, DType::kFloat32, device());
  // Validated inside the pass, each row just before its density.
  detail::rows_log_prob<kern::MvnBody>(a, out.data<float>(), device(), "MultivariateNormal", &mvn_checks());
  const bool any = grad_enabled() && (x.requires_grad() || loc_.requires_grad() || scale_tril_.requires_grad());
  if (!any) return out;
  Tensor xs = x.detach(), ls = loc_.detach(), Ls = scale_tril_.detach();
  return cuvi::detail::record_fn(
      out, "MultivariateNormal",
      [xs, ls, Ls, rows](const Tensor& g, const std::vector<bool>& nd) {
        return mvn_grads(xs, ls, Ls, rows, &g, 1.0f, nullptr, nd);
      },
      {x, loc_, scale_tril_});
}

Tensor MultivariateNormal::log_prob_sum(const Tensor& x, float coef) const {
  const int64_t D = loc_.size(-1);
  if (D > kern::kMvnMaxD) return Distribution::log_prob_sum(x, coef);
  check_value(x, D, device());
  const Shape rows = broadcast_shapes(drop(x.shape(), 1), batch_shape_, "MultivariateNormal.log_prob");
  const auto a = mvn_args(&x, loc_, scale_tril_, rows);
  // Validation happens inside the fused pass (rows_log_prob_sum).
  Tensor out = Tensor::empty({}, DType::kFloat32, device());
  const std::vector<bool> need{grad_enabled() && x.requires_grad(), grad_enabled() && loc_.requires_grad(),
                               grad_enabled() && scale_tril_.requires_grad()};
  if (!need[0] && !need[1] && !need[2]) {
    detail::rows_log_prob_sum<kern::MvnBody>(a, coef, kern::MvnGrads{}, false, out, device(), "MultivariateNormal",
                                             &mvn_checks());
    return out;
  }
  return detail::record_fused_sum(out, "MultivariateNormal",
                                  mvn_grads(x, loc_, scale_tril_, rows, nullptr, coef, &out, need),
                                  {x, loc_, scale_tril_});
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
