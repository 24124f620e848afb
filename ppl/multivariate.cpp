// OneHotCategorical, RelaxedOneHotCategorical, Multinomial and
// LowRankMultivariateNormal (declarations and formulas in
// distributions.hpp). The count families run the row bodies of
// kernels/dist/multinomial.hpp through the generic row passes of
// row_family_ops.hpp; the other two are runtime tensor ops with autodiff.
#include <cfloat>
#include <cmath>

#include "../kernels/dist/multinomial.hpp"
#include "distributions.hpp"
#include "row_family_ops.hpp"

namespace cuvi::dist {

namespace {

Shape drop(const Shape& s, size_t n) { return Shape(s.begin(), s.end() - static_cast<std::ptrdiff_t>(n)); }
Shape with_event(Shape s, std::initializer_list<int64_t> event) {
  s.insert(s.end(), event.begin(), event.end());
  return s;
}

// b is a batch shape `have` broadcasts to (the rightmost dims match or are 1).
bool expands_to(const Shape& have, const Shape& b) {
  bool fits = b.size() >= have.size();
  for (size_t i = 0; fits && i < have.size(); ++i) {
    const int64_t h = have[have.size() - 1 - i], w = b[b.size() - 1 - i];
    fits = h == w || h == 1;
  }
  return fits;
}

// ---- the count row bodies ------------------------------------------------------

template <class B>
const std::vector<std::string>& count_checks() {
  static const std::vector<std::string> what{std::string("parameter ") + B::Param::param_name(0) +
                                             " is outside its constraint"};
  return what;
}

template <class B>
const char* count_value_what() {
  if constexpr (B::kFamily == kern::count_rows::kOneHot)
    return "must be one-hot rows (entries 0 or 1 summing to 1; the number shown is the first bad entry, else the "
           "row's sum)";
  else if constexpr (B::kFamily == kern::count_rows::kMultinomial)
    return "must be rows of non-negative integers summing to total_count (the number shown is the first bad entry, "
           "else the row's sum)";
  else return "must lie on the simplex (the number shown is the first negative entry, else the row's sum)";
}

// Row geometry over `rows` for value x (null: parameters only) and parameter p.
kern::CountRowArgs count_args(const Tensor* x, const Tensor& p, const Shape& rows, int n) {
  kern::CountRowArgs a;
  const Shape pb = drop(p.shape(), 1);
  const Shape xb = x ? drop(x->shape(), 1) : rows;
  a.geom = cuvi::detail::make_geom<2>(rows, {&xb, &pb});
  a.x = x ? x->data<float>() : nullptr;
  a.p = p.data<float>();
  a.K = static_cast<int>(p.size(-1));
  a.n = n;
  return a;
}

// Device-side range checks (one pass each, no host read): finite, and
// positive and finite.
void check_finite(const Tensor& x, const std::string& message) {
  detail::check_in_range(x, -FLT_MAX, false, FLT_MAX, message);
}
void check_positive_finite(const Tensor& x, const std::string& message) {
  detail::check_in_range(x, 0.0f, true, FLT_MAX, message);
}

// The parameter's checks shared by the three categorical-parameter
// families: float32, at least one dim, K >= 1, then the rows (deferred on a
// GPU).
template <class B>
void validate_count_param(const Tensor& p, int n) {
  const char* pn = B::Param::param_name(0);
  CUVI_CHECK(p.defined() && p.dim() >= 1, ShapeError,
             B::kName << ": " << pn << " needs at least 1 dim, got "
                      << (p.defined() ? shape_str(p.shape()) : "undefined") << detail::site_suffix());
  CUVI_CHECK(p.dtype() == DType::kFloat32, DTypeError,
             B::kName << ": " << pn << " must be float32, got " << dtype_name(p.dtype()) << detail::site_suffix());
  CUVI_CHECK(p.size(-1) >= 1, ShapeError,
             B::kName << ": " << pn << " of shape " << shape_str(p.shape())
                      << " has an empty event dim (needs at least 1 category)" << detail::site_suffix());
  detail::rows_validate<B>(count_args(nullptr, p, drop(p.shape(), 1), n), false, p.device(), B::kName,
                           count_checks<B>(), count_value_what<B>());
}

// The value's checks before a row pass: float32 rows of K on the
// parameter's device; returns the row index space.
template <class B>
Shape count_rows(const Tensor& x, const Tensor& p, const Shape& batch) {
  CUVI_CHECK(x.defined(), ValueError, B::kName << ".log_prob: undefined value" << detail::site_suffix());
  CUVI_CHECK(x.dtype() == DType::kFloat32, DTypeError,
             B::kName << ": values must be float32, got " << dtype_name(x.dtype()) << detail::site_suffix());
  const int64_t K = p.size(-1);
  CUVI_CHECK(x.dim() >= 1 && x.size(-1) == K, ShapeError,
             B::kName << ".log_prob: value of shape " << shape_str(x.shape()) << " has no event dim of size " << K
                      << " (the parameter's " << shape_str(p.shape()) << ")" << detail::site_suffix());
  CUVI_CHECK(x.device() == p.device(), DeviceError,
             B::kName << ": value on " << x.device().str() << " and parameter on " << p.device().str()
                      << detail::site_suffix());
  return broadcast_shapes(broadcast_shapes(drop(x.shape(), 1), drop(p.shape(), 1), B::kName), batch, B::kName);
}

// The parameter's gradient of coef * (g or 1) * log_prob, reduced to p's
// shape; with sum_out, the fused pass also writes coef * sum(log_prob).
template <class B>
Tensor count_param_grad(const Tensor& x, const Tensor& p, const Shape& rows, int n, const Tensor* g, float coef,
                        Tensor* sum_out) {
  const Device dev = p.device();
  const auto a = count_args(&x, p, rows, n);
  Tensor gp = Tensor::empty(with_event(rows, {p.size(-1)}), DType::kFloat32, dev);
  kern::CountRowGrads o{gp.data<float>()};
  if (sum_out)
    detail::rows_log_prob_sum<B>(a, coef, o, true, *sum_out, dev, B::kName, &count_checks<B>(), count_value_what<B>());
  else detail::rows_log_prob_grad<B>(a, g->data<float>(), coef, o, dev, B::kName);
  return sum_to_shape(gp, p.shape());
}

template <class B>
Tensor count_log_prob(const Tensor& x, const Tensor& p, const Shape& batch, int n) {
  const Shape rows = count_rows<B>(x, p, batch);
  const auto a = count_args(&x, p, rows, n);
  Tensor out = Tensor::empty(rows, DType::kFloat32, p.device());
  // Validated inside the pass, each row just before its density.
  detail::rows_log_prob<B>(a, out.data<float>(), p.device(), B::kName, &count_checks<B>(), count_value_what<B>());
  if (!grad_enabled() || !p.requires_grad()) return out;
  Tensor xs = x.detach(), ps = p.detach();
  return cuvi::detail::record_fn(out, B::kName,
                                 [xs, ps, rows, n](const Tensor& g, const std::vector<bool>& nd) {
                                   std::vector<Tensor> res(1);
                                   if (nd[0]) res[0] = count_param_grad<B>(xs, ps, rows, n, &g, 1.0f, nullptr);
                                   return res;
                                 },
                                 {p});
}

template <class B>
Tensor count_log_prob_sum(const Tensor& x, const Tensor& p, const Shape& batch, int n, float coef) {
  const Shape rows = count_rows<B>(x, p, batch);
  const Device dev = p.device();
  Tensor out = Tensor::empty({}, DType::kFloat32, dev);
  if (!grad_enabled() || !p.requires_grad()) {
    detail::rows_log_prob_sum<B>(count_args(&x, p, rows, n), coef, kern::CountRowGrads{}, false, out, dev, B::kName,
                                 &count_checks<B>(), count_value_what<B>());
    return out;
  }
  std::vector<Tensor> grads{count_param_grad<B>(x, p, rows, n, nullptr, coef, &out)};
  return detail::record_fused_sum(out, B::kName, std::move(grads), {p});
}

// Categorical draws (int64, sample_shape + batch) from the parameter rows.
Tensor categorical_draws(const Tensor& p, bool logits, const Shape& s, const Shape& batch) {
  return logits ? row_family_sample<kern::CategoricalLogits>(p, s, false, batch)
                : row_family_sample<kern::CategoricalProbs>(p, s, false, batch);
}

// One-hot float32 rows [..., K] of int64 indices.
Tensor one_hot(const Tensor& idx, int64_t K) { return eq(idx.to_float().unsqueeze(-1), arange(K, idx.device())); }

Tensor normalised_logits(const Tensor& p, bool logits) {
  return logits ? log_softmax(p, -1) : log(p / sum(p, {-1}, true));
}
Tensor normalised_probs(const Tensor& p, bool logits) {
  return logits ? exp(log_softmax(p, -1)) : p / sum(p, {-1}, true);
}

}  // namespace

// ---- OneHotCategorical -------------------------------------------------------------

OneHotCategorical::OneHotCategorical(const Tensor& param, bool logits) : param_(param), logits_form_(logits) {
  if (logits) validate_count_param<kern::OneHotCategoricalLogitsBody>(param_, 1);
  else validate_count_param<kern::OneHotCategoricalProbsBody>(param_, 1);
  batch_shape_ = drop(param_.shape(), 1);
}
OneHotCategorical::OneHotCategorical(const Tensor& probs) : OneHotCategorical(probs, false) {}
OneHotCategorical OneHotCategorical::from_logits(const Tensor& logits) { return OneHotCategorical(logits, true); }
Tensor OneHotCategorical::logits() const { return normalised_logits(param_, logits_form_); }
Tensor OneHotCategorical::probs() const { return normalised_probs(param_, logits_form_); }

Tensor OneHotCategorical::log_prob(const Tensor& x) const {
  return logits_form_ ? count_log_prob<kern::OneHotCategoricalLogitsBody>(x, param_, batch_shape_, 1)
                      : count_log_prob<kern::OneHotCategoricalProbsBody>(x, param_, batch_shape_, 1);
}
Tensor OneHotCategorical::log_prob_sum(const Tensor& x, float coef) const {
  return logits_form_ ? count_log_prob_sum<kern::OneHotCategoricalLogitsBody>(x, param_, batch_shape_, 1, coef)
                      : count_log_prob_sum<kern::OneHotCategoricalProbsBody>(x, param_, batch_shape_, 1, coef);
}
Tensor OneHotCategorical::support_values() const {
  const int64_t K = param_.size(-1);
  const Tensor k = arange(K, param_.device());
  return eq(k.unsqueeze(-1), k);  // row j is e_j
}
Tensor OneHotCategorical::sample(const Shape& s) const {
  NoGradGuard ng;
  return one_hot(categorical_draws(param_, logits_form_, s, batch_shape_), param_.size(-1));
}
Tensor OneHotCategorical::mean() const { return probs().expand(with_event(batch_shape_, {param_.size(-1)})); }
Tensor OneHotCategorical::variance() const {
  const Tensor p = probs();
  return (p * (1.0f - p)).expand(with_event(batch_shape_, {param_.size(-1)}));
}
DistPtr OneHotCategorical::expand_ptr(const Shape& b) const {
  CUVI_CHECK(expands_to(batch_shape_, b), ShapeError,
             "OneHotCategorical.expand: cannot expand batch shape " << shape_str(batch_shape_) << " to " << shape_str(b)
                                                                    << detail::site_suffix());
  auto d = std::make_shared<OneHotCategorical>(*this);
  d->batch_shape_ = b;
  return d;
}

// ---- Multinomial -----------------------------------------------------------------

Multinomial::Multinomial(int total_count, const Tensor& param, bool logits)
    : n_(total_count), param_(param), logits_form_(logits) {
  CUVI_CHECK(total_count >= 0, ValueError,
             "Multinomial: total_count must be a non-negative integer, got " << total_count << detail::site_suffix());
  if (logits) validate_count_param<kern::MultinomialLogitsBody>(param_, n_);
  else validate_count_param<kern::MultinomialProbsBody>(param_, n_);
  batch_shape_ = drop(param_.shape(), 1);
}
Multinomial::Multinomial(int total_count, const Tensor& probs) : Multinomial(total_count, probs, false) {}
Multinomial Multinomial::from_logits(int total_count, const Tensor& logits) {
  return Multinomial(total_count, logits, true);
}
Tensor Multinomial::logits() const { return normalised_logits(param_, logits_form_); }
Tensor Multinomial::probs() const { return normalised_probs(param_, logits_form_); }

Tensor Multinomial::log_prob(const Tensor& x) const {
  return logits_form_ ? count_log_prob<kern::MultinomialLogitsBody>(x, param_, batch_shape_, n_)
                      : count_log_prob<kern::MultinomialProbsBody>(x, param_, batch_shape_, n_);
}
Tensor Multinomial::log_prob_sum(const Tensor& x, float coef) const {
  return logits_form_ ? count_log_prob_sum<kern::MultinomialLogitsBody>(x, param_, batch_shape_, n_, coef)
                      : count_log_prob_sum<kern::MultinomialProbsBody>(x, param_, batch_shape_, n_, coef);
}
Tensor Multinomial::sample(const Shape& s) const {
  NoGradGuard ng;
  const int64_t K = param_.size(-1);
  Shape out = s;
  out.insert(out.end(), batch_shape_.begin(), batch_shape_.end());
  out.push_back(K);
  if (n_ == 0) return zeros(out, device());
  // n draws per row (a leading sample dim), one-hot, summed over the draws.
  Shape ds{n_};
  ds.insert(ds.end(), s.begin(), s.end());
  return sum(one_hot(categorical_draws(param_, logits_form_, ds, batch_shape_), K), {0});
}
Tensor Multinomial::mean() const {
  return (probs() * static_cast<float>(n_)).expand(with_event(batch_shape_, {param_.size(-1)}));
}
Tensor Multinomial::variance() const {
  const Tensor p = probs();
  return (p * (1.0f - p) * static_cast<float>(n_)).expand(with_event(batch_shape_, {param_.size(-1)}));
}
DistPtr Multinomial::expand_ptr(const Shape& b) const {
  CUVI_CHECK(expands_to(batch_shape_, b), ShapeError,
             "Multinomial.expand: cannot expand batch shape " << shape_str(batch_shape_) << " to " << shape_str(b)
                                                              << detail::site_suffix());
  auto d = std::make_shared<Multinomial>(*this);
  d->batch_shape_ = b;
  return d;
}

// ---- RelaxedOneHotCategorical -----------------------------------------------------

RelaxedOneHotCategorical::RelaxedOneHotCategorical(Arg temperature, const Tensor& param, bool logits)
    : temp_(std::move(temperature)), param_(param), logits_form_(logits) {
  if (logits) validate_count_param<kern::RelaxedLogitsBody>(param_, 1);
  else validate_count_param<kern::RelaxedProbsBody>(param_, 1);
  if (temp_.is_const()) {
    CUVI_CHECK(
        temp_.v > 0.0f && temp_.v <= FLT_MAX, ValueError,
        "RelaxedOneHotCategorical: temperature must be positive and finite, got " << temp_.v << detail::site_suffix());
  } else {
    CUVI_CHECK(temp_.t.dtype() == DType::kFloat32, DTypeError,
               "RelaxedOneHotCategorical: temperature must be float32, got " << dtype_name(temp_.t.dtype())
                                                                             << detail::site_suffix());
    CUVI_CHECK(temp_.t.device() == param_.device(), DeviceError,
               "RelaxedOneHotCategorical: temperature on " << temp_.t.device().str() << " but the parameter on "
                                                           << param_.device().str() << detail::site_suffix());
    check_positive_finite(temp_.t, "RelaxedOneHotCategorical: temperature must be positive and finite");
  }
  batch_shape_ =
      broadcast_shapes(drop(param_.shape(), 1), temp_.shape(), "RelaxedOneHotCategorical(temperature, batch)");
}
RelaxedOneHotCategorical::RelaxedOneHotCategorical(Arg temperature, const Tensor& probs)
    : RelaxedOneHotCategorical(std::move(temperature), probs, false) {}
RelaxedOneHotCategorical RelaxedOneHotCategorical::from_logits(Arg temperature, const Tensor& logits) {
  return RelaxedOneHotCategorical(std::move(temperature), logits, true);
}
Tensor RelaxedOneHotCategorical::logits() const { return normalised_logits(param_, logits_form_); }
Tensor RelaxedOneHotCategorical::probs() const { return normalised_probs(param_, logits_form_); }
Tensor RelaxedOneHotCategorical::temp_event() const { return temp_.t.unsqueeze(-1); }

Tensor RelaxedOneHotCategorical::rsample(const Shape& s) const {
  const int64_t K = param_.size(-1);
  Shape full = s;
  full.insert(full.end(), batch_shape_.begin(), batch_shape_.end());
  full.push_back(K);
  // Standard Gumbel noise G = -log(-log U), U uniform in (0, 1).
  const Tensor g = -log(-log(rand(full, device())));
  const Tensor z = logits() + g;
  const Tensor scaled = temp_.is_const() ? z / temp_.v : z / temp_event();
  // In log space, then kept at FLT_MIN or above so log y stays finite.
  return clamp_min(exp(log_softmax(scaled, -1)), FLT_MIN);
}

Tensor RelaxedOneHotCategorical::log_prob(const Tensor& y) const {
  const char* nm = "RelaxedOneHotCategorical";
  const Shape rows = count_rows<kern::RelaxedLogitsBody>(y, param_, batch_shape_);
  // The parameter rows and the value's simplex check, one row pass.
  if (logits_form_)
    detail::rows_validate<kern::RelaxedLogitsBody>(count_args(&y, param_, rows, 1), true, device(), nm,
                                                   count_checks<kern::RelaxedLogitsBody>(),
                                                   count_value_what<kern::RelaxedLogitsBody>());
  else
    detail::rows_validate<kern::RelaxedProbsBody>(count_args(&y, param_, rows, 1), true, device(), nm,
                                                  count_checks<kern::RelaxedProbsBody>(),
                                                  count_value_what<kern::RelaxedProbsBody>());
  const float K = static_cast<float>(param_.size(-1));
  const Tensor l = logits();
  const Tensor ly = log(y);
  const float lgk = static_cast<float>(std::lgamma(static_cast<double>(K)));
  if (temp_.is_const()) {
    const float T = temp_.v;
    Tensor lp = sum(l - (T + 1.0f) * ly, {-1}) - K * logsumexp(l - T * ly, {-1});
    return lp + (lgk + (K - 1.0f) * std::log(T));
  }
  const Tensor T = temp_.t, Te = temp_event();
  Tensor lp = sum(l - (Te + 1.0f) * ly, {-1}) - K * logsumexp(l - Te * ly, {-1});
  return lp + ((K - 1.0f) * log(T) + lgk);
}

DistPtr RelaxedOneHotCategorical::expand_ptr(const Shape& b) const {
  CUVI_CHECK(expands_to(batch_shape_, b), ShapeError,
             "RelaxedOneHotCategorical.expand: cannot expand batch shape " << shape_str(batch_shape_) << " to "
                                                                           << shape_str(b) << detail::site_suffix());
  return std::make_shared<RelaxedOneHotCategorical>(
      RelaxedOneHotCategorical(temp_, param_.expand(with_event(b, {param_.size(-1)})), logits_form_));
}

// ---- LowRankMultivariateNormal -------------------------------------------------------

LowRankMultivariateNormal::LowRankMultivariateNormal(const Tensor& loc, const Tensor& cov_factor,
                                                     const Tensor& cov_diag)
    : loc_(loc), W_(cov_factor), d_(cov_diag) {
  const char* nm = "LowRankMultivariateNormal";
  CUVI_CHECK(loc_.defined() && W_.defined() && d_.defined(), ValueError,
             nm << ": undefined parameter" << detail::site_suffix());
  CUVI_CHECK(loc_.dtype() == DType::kFloat32 && W_.dtype() == DType::kFloat32 && d_.dtype() == DType::kFloat32,
             DTypeError, nm << ": parameters must be float32" << detail::site_suffix());
  CUVI_CHECK(
      loc_.dim() >= 1 && W_.dim() >= 2 && d_.dim() >= 1 && loc_.size(-1) >= 1 && W_.size(-1) >= 1 &&
          W_.size(-2) == loc_.size(-1) && d_.size(-1) == loc_.size(-1),
      ShapeError,
      nm << ": needs loc [..., D], cov_factor [..., D, R] and cov_diag [..., D] with the same D (and R >= 1); got "
            "loc "
         << shape_str(loc_.shape()) << ", cov_factor " << shape_str(W_.shape()) << " and cov_diag "
         << shape_str(d_.shape()) << detail::site_suffix());
  CUVI_CHECK(W_.device() == loc_.device() && d_.device() == loc_.device(), DeviceError,
             nm << ": loc on " << loc_.device().str() << ", cov_factor on " << W_.device().str() << ", cov_diag on "
                << d_.device().str() << detail::site_suffix());
  batch_shape_ =
      broadcast_shapes(broadcast_shapes(drop(loc_.shape(), 1), drop(W_.shape(), 2), nm), drop(d_.shape(), 1), nm);
  // On the device: a GPU step constructing it (AutoLowRankMultivariateNormal) does not wait.
  check_finite(loc_, std::string(nm) + ": parameter loc must be finite");
  check_finite(W_, std::string(nm) + ": parameter cov_factor must be finite");
  check_positive_finite(d_, std::string(nm) + ": parameter cov_diag must be positive and finite");
}

Tensor LowRankMultivariateNormal::log_prob(const Tensor& x) const {
  const int64_t D = loc_.size(-1), R = W_.size(-1);
  CUVI_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == D, ShapeError,
             "LowRankMultivariateNormal.log_prob: value needs a last dim of "
                 << D << ", got " << (x.defined() ? shape_str(x.shape()) : "undefined") << detail::site_suffix());
  CUVI_CHECK(
      x.dtype() == DType::kFloat32, DTypeError,
      "LowRankMultivariateNormal: values must be float32, got " << dtype_name(x.dtype()) << detail::site_suffix());
  CUVI_CHECK(x.device() == device(), DeviceError,
             "LowRankMultivariateNormal: value on " << x.device().str() << " and parameters on " << device().str()
                                                    << detail::site_suffix());
  // W^T D^-1 [batch, R, D]; the capacitance C = I + W^T D^-1 W [batch, R, R].
  const Tensor wtdi = transpose(W_, -1, -2) / d_.unsqueeze(-2);
  const Tensor C = matmul(wtdi, W_) + diag_embed(ones({R}, device()));
  const Tensor Lc = cholesky(C);
  const Tensor r = x - loc_;
  // u = W^T D^-1 r [..., R] (a matrix-vector product per row), z = Lc^-1 u.
  const Tensor u = matmul(wtdi, r.unsqueeze(-1)).squeeze(-1);
  const Tensor z = triangular_solve(Lc, u);
  const Tensor maha = sum(square(r) / d_, {-1}) - sum(square(z), {-1});
  const Tensor log_det = 2.0f * sum(log(diagonal(Lc)), {-1}) + sum(log(d_), {-1});
  const float norm = static_cast<float>(D) * 0.5f * std::log(2.0f * static_cast<float>(M_PI));
  return -0.5f * (maha + log_det) - norm;
}

Tensor LowRankMultivariateNormal::rsample(const Shape& s) const {
  const int64_t D = loc_.size(-1), R = W_.size(-1);
  Shape base = s;
  base.insert(base.end(), batch_shape_.begin(), batch_shape_.end());
  const Tensor eR = randn(with_event(base, {R}), device());
  const Tensor eD = randn(with_event(base, {D}), device());
  return loc_ + matmul(W_, eR.unsqueeze(-1)).squeeze(-1) + sqrt(d_) * eD;
}

Tensor LowRankMultivariateNormal::mean() const {
  const Shape full = with_event(batch_shape_, {loc_.size(-1)});
  return loc_.shape() == full ? loc_ : loc_.expand(full);
}
Tensor LowRankMultivariateNormal::variance() const {
  const Tensor v = sum(square(W_), {-1}) + d_;
  const Shape full = with_event(batch_shape_, {loc_.size(-1)});
  return v.shape() == full ? v : v.expand(full);
}
Tensor LowRankMultivariateNormal::covariance_matrix() const {
  const int64_t D = loc_.size(-1);
  const Tensor S = matmul(W_, transpose(W_, -1, -2)) + diag_embed(d_);
  const Shape full = with_event(batch_shape_, {D, D});
  return S.shape() == full ? S : S.expand(full);
}
Tensor LowRankMultivariateNormal::scale_tril() const { return cholesky(covariance_matrix()); }

DistPtr LowRankMultivariateNormal::expand_ptr(const Shape& b) const {
  CUVI_CHECK(expands_to(batch_shape_, b), ShapeError,
             "LowRankMultivariateNormal.expand: cannot expand batch shape " << shape_str(batch_shape_) << " to "
                                                                            << shape_str(b) << detail::site_suffix());
  const int64_t D = loc_.size(-1), R = W_.size(-1);
  return std::make_shared<LowRankMultivariateNormal>(loc_.expand(with_event(b, {D})), W_.expand(with_event(b, {D, R})),
                                                     d_.expand(with_event(b, {D})));
}

}  // namespace cuvi::dist
