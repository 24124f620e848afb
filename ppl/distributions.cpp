#include "distributions.hpp"

#include "../kernels/dist/categorical.hpp"
#include "../kernels/dist/dirichlet.hpp"
#include "row_family_ops.hpp"

#include <cmath>
#include <limits>
#include <map>
#include <sstream>
#include <tuple>

namespace cuvi {

namespace {
bool g_validation = true;
thread_local std::string t_site;
}  // namespace

namespace dist {

bool validation_enabled() { return g_validation; }
void set_validation(bool on) { g_validation = on; }

namespace detail {
const std::string& current_site() { return t_site; }
SiteScope::SiteScope(const std::string& name) : prev_(t_site) { t_site = name; }
SiteScope::~SiteScope() { t_site = prev_; }
std::string site_suffix() { return t_site.empty() ? std::string() : " (site '" + t_site + "')"; }

void check_values(const Tensor& ok, const Tensor& value, const std::string& message) {
  if (!validation_enabled() || ok.numel() == 0) return;
  NoGradGuard ng;
  const Tensor& o = ok;
  const Tensor v = value.shape() == ok.shape() ? value.detach() : value.detach().expand(ok.shape());
  Backend& b = backend(o.device());
  b.check_all(o.data<float>(), v.data<float>(), o.numel(), b.register_check(message + site_suffix()));
}

void check_in_range(const Tensor& x, float lo, bool lo_open, float hi, const std::string& message) {
  if (!validation_enabled() || x.numel() == 0) return;
  Backend& b = backend(x.device());
  b.check_range(x.data<float>(), x.numel(), lo, lo_open, hi, b.register_check(message + site_suffix()));
}

const CheckCodes& check_codes(Device dev, const void* kind, const std::function<std::vector<std::string>()>& make) {
  // Per thread, so no lock; a backend's codes are stable for its lifetime.
  thread_local std::map<std::tuple<int, const void*, std::string>, CheckCodes> cache;
  auto key = std::make_tuple(dev.index, kind, t_site);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const std::vector<std::string> msgs = make();
  CUVI_CHECK(!msgs.empty() && msgs.size() <= 9, ValueError, "check_codes: " << msgs.size() << " messages (1 to 9)");
  Backend& b = backend(dev);
  CheckCodes c;
  for (size_t k = 0; k + 1 < msgs.size(); ++k) c.param[k] = b.register_check(msgs[k]);
  c.value = b.register_check(msgs.back());
  return cache.emplace(std::move(key), c).first->second;
}
}  // namespace detail

// ---- Distribution defaults ---------------------------------------------------

Tensor Distribution::rsample(const Shape&) const {
  CUVI_THROW(ValueError, name() << " has no reparameterised sampler; use sample()" << detail::site_suffix());
}
Tensor Distribution::support_values() const {
  CUVI_THROW(ValueError, name() << " has no finite support to enumerate (enumeration needs Bernoulli or Categorical)"
                                << detail::site_suffix());
}

Tensor Distribution::enumerate_support() const {
  const Tensor v = support_values();
  Shape shape{v.size(0)};
  shape.insert(shape.end(), batch_shape().size(), 1);
  const Shape ev = event_shape();
  shape.insert(shape.end(), ev.begin(), ev.end());
  return v.reshape(shape);
}

Tensor Distribution::sample(const Shape& s) const {
  NoGradGuard ng;
  return rsample(s).detach();
}
Tensor Distribution::mean() const { CUVI_THROW(ValueError, name() << ": mean is not implemented"); }
Tensor Distribution::variance() const { CUVI_THROW(ValueError, name() << ": variance is not implemented"); }
Tensor Distribution::log_prob_sum(const Tensor& x, float coef) const { return sum(log_prob(x)) * coef; }

Dist Distribution::expand(const Shape& batch) const { return Dist(expand_ptr(batch)); }
Dist Distribution::to_event(int n) const { return Dist(std::make_shared<Independent>(clone(), n)); }
Dist Distribution::mask(const Tensor& m) const { return Dist(std::make_shared<Masked>(clone(), m)); }
Dist Distribution::mask(bool keep) const { return Dist(std::make_shared<Masked>(clone(), keep)); }

Shape Distribution::shape(const Shape& sample_shape) const {
  Shape s = sample_shape;
  const Shape b = batch_shape(), e = event_shape();
  s.insert(s.end(), b.begin(), b.end());
  s.insert(s.end(), e.begin(), e.end());
  return s;
}

Dist::Dist(DistPtr d) : d_(std::move(d)) {
  CUVI_CHECK(d_ != nullptr, ValueError, "Dist: null distribution");
}

// ---- Masked ------------------------------------------------------------------------

Masked::Masked(DistPtr base, Tensor mask) : base_(std::move(base)), mask_(std::move(mask)) {
  CUVI_CHECK(mask_.defined(), ValueError, base_->name() << ".mask: undefined mask tensor" << detail::site_suffix());
  CUVI_CHECK(mask_.device() == base_->device(), DeviceError,
             base_->name() << ".mask: mask on " << mask_.device().str() << " but the distribution on "
                           << base_->device().str() << detail::site_suffix());
  const Shape b = base_->batch_shape();
  const Shape full = broadcast_shapes(b, mask_.shape(), "mask");
  if (full != b) base_ = base_->expand_ptr(full);
  if (mask_.dtype() != DType::kFloat32) mask_ = mask_.to_float();
}
Masked::Masked(DistPtr base, bool keep) : base_(std::move(base)), keep_(keep) {}

Tensor Masked::log_prob(const Tensor& x) const {
  if (!mask_.defined() && !keep_) {
    // As Pyro: every term dropped, the base not evaluated (nor x validated).
    const int ed = event_dim();
    CUVI_CHECK(x.dim() >= ed, ShapeError,
               name() << ".log_prob: value of shape " << shape_str(x.shape()) << " has fewer than " << ed
                      << " event dims" << detail::site_suffix());
    const Shape xb(x.shape().begin(), x.shape().end() - ed);
    return zeros(broadcast_shapes(xb, batch_shape(), name().c_str()), base_->device());
  }
  Tensor lp = base_->log_prob(x);
  if (!mask_.defined()) return lp;
  return where(mask_, lp, zeros({}, lp.device()));
}
Tensor Masked::log_prob_sum(const Tensor& x, float coef) const {
  if (!mask_.defined()) return keep_ ? base_->log_prob_sum(x, coef) : zeros({}, base_->device());
  return sum(log_prob(x)) * coef;
}
DistPtr Masked::expand_ptr(const Shape& b) const {
  if (!mask_.defined()) return std::make_shared<Masked>(base_->expand_ptr(b), keep_);
  return std::make_shared<Masked>(base_->expand_ptr(b), mask_);
}

// ---- Independent ---------------------------------------------------------------

Independent::Independent(DistPtr base, int n) : base_(std::move(base)), n_(n) {
  const int nb = static_cast<int>(base_->batch_shape().size());
  CUVI_CHECK(n >= 0 && n <= nb, ShapeError,
             "to_event(" << n << "): " << base_->name() << " has only " << nb << " batch dims (batch shape "
                         << shape_str(base_->batch_shape()) << ")");
}
Shape Independent::batch_shape() const {
  const Shape b = base_->batch_shape();
  return Shape(b.begin(), b.end() - n_);
}
Shape Independent::event_shape() const {
  const Shape b = base_->batch_shape(), e = base_->event_shape();
  Shape out(b.end() - n_, b.end());
  out.insert(out.end(), e.begin(), e.end());
  return out;
}
Tensor Independent::support_values() const {
  CUVI_CHECK(n_ == 0, ValueError,
             name() << " reinterprets " << n_ << " batch dims as event dims: its support is a product, not enumerated"
                    << detail::site_suffix());
  return base_->support_values();
}

Tensor Independent::log_prob(const Tensor& x) const {
  return sum_rightmost(base_->log_prob(x), n_);
}
DistPtr Independent::expand_ptr(const Shape& b) const {
  Shape full = b;
  const Shape bb = base_->batch_shape();
  full.insert(full.end(), bb.end() - n_, bb.end());
  return std::make_shared<Independent>(base_->expand_ptr(full), n_);
}

// ---- Categorical ---------------------------------------------------------------

namespace {
Shape drop_last(const Shape& s) { return Shape(s.begin(), s.end() - 1); }
}  // namespace

Categorical::Categorical(const Tensor& param, bool logits) : param_(param), logits_form_(logits) {
  if (logits) row_family_validate_params<kern::CategoricalLogits>(param_);
  else row_family_validate_params<kern::CategoricalProbs>(param_);
  batch_shape_ = drop_last(param_.shape());
}
Categorical::Categorical(const Tensor& probs) : Categorical(probs, false) {}

Categorical OrderedLogistic(const Tensor& predictor, const Tensor& cutpoints) {
  CUVI_CHECK(predictor.defined() && cutpoints.defined(), ValueError,
             "OrderedLogistic: undefined predictor or cutpoints" << detail::site_suffix());
  CUVI_CHECK(cutpoints.dim() >= 1 && cutpoints.size(-1) >= 1, ShapeError,
             "OrderedLogistic: cutpoints need a last dim of at least 1 (K - 1 for K outcomes), got shape "
                 << shape_str(cutpoints.shape()) << detail::site_suffix());
  CUVI_CHECK(predictor.dtype() == DType::kFloat32 && cutpoints.dtype() == DType::kFloat32, DTypeError,
             "OrderedLogistic: predictor and cutpoints must be float32" << detail::site_suffix());
  CUVI_CHECK(predictor.device() == cutpoints.device(), DeviceError,
             "OrderedLogistic: predictor on " << predictor.device().str() << " but cutpoints on "
                                              << cutpoints.device().str() << detail::site_suffix());
  const int64_t m = cutpoints.size(-1);  // K - 1
  if (m >= 2)
    detail::check_in_range(narrow(cutpoints, -1, 1, m - 1) - narrow(cutpoints, -1, 0, m - 1), 0.0f, true,
                           std::numeric_limits<float>::infinity(),
                           "OrderedLogistic: cutpoints must be strictly increasing; a step between neighbours");
  // Outcome k lies between a = c_{k-1} - predictor and b = c_k - predictor
  // (a = -inf for k = 0, b = +inf for k = K - 1); its probability
  // sigmoid(b) - sigmoid(a) = sigmoid(-a) - sigmoid(-b), in logs
  //   log sigmoid(b) + log(-expm1(log sigmoid(a) - log sigmoid(b)))   (a + b <= 0)
  //   log sigmoid(-a) + log(-expm1(log sigmoid(-b) - log sigmoid(-a))) (a + b > 0)
  // each exact where its sigmoids are small.
  const Tensor t = cutpoints - predictor.unsqueeze(-1);
  Shape edge = t.shape();
  edge.back() = 1;
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor a = cat({full(edge, -inf, t.device()), t}, -1);
  const Tensor b = cat({t, full(edge, inf, t.device())}, -1);
  const Tensor lo = log_sigmoid(b) + log(-expm1(log_sigmoid(a) - log_sigmoid(b)));
  const Tensor hi = log_sigmoid(-a) + log(-expm1(log_sigmoid(-b) - log_sigmoid(-a)));
  return Categorical::from_logits(where(gt(a + b, full({}, 0.0f, t.device())), hi, lo));
}
Categorical Categorical::from_logits(const Tensor& logits) { return Categorical(logits, true); }
Tensor Categorical::logits() const {
  return logits_form_ ? log_softmax(param_, -1) : log(param_ / sum(param_, {-1}, true));
}
Tensor Categorical::probs() const {
  return logits_form_ ? exp(log_softmax(param_, -1)) : param_ / sum(param_, {-1}, true);
}

Tensor Categorical::gathered_log_prob(const Tensor& x) const {
  // Without validation, the row kernels give -inf outside the support.
  if (!validation_enabled() || x.device() != param_.device()) return {};
  const int64_t k = param_.size(-1);
  const Shape pb = drop_last(param_.shape());
  const int64_t r = shape_numel(pb);
  const Shape xrows = broadcast_shapes(x.shape(), pb, "Categorical");
  const Shape rows = broadcast_shapes(xrows, batch_shape_, "Categorical");
  const int64_t n = shape_numel(rows);
  // Many rows per parameter row, enough work that a K-fold saving beats the
  // gather's several launches (small sites keep the one fused pass), and
  // flat indices exact in float.
  if (n < 2 * r || n * k < (int64_t{1} << 16) || r * k >= (int64_t{1} << 24)) return {};
  const Device dev = param_.device();
  // The values, each once (with its parameter row), by the row kernels'
  // validation: the same errors as their log_prob (deferred on a GPU).
  const auto a = detail::make_row_args(&x, x.shape(), param_, xrows);
  if (logits_form_) detail::row_validate<kern::CategoricalLogits>(a, true, dev);
  else detail::row_validate<kern::CategoricalProbs>(a, true, dev);
  // Row r(i) * K + x(i) of the normalised log-probabilities, broadcast to
  // rows (valid values are integers below K, exact in float).
  Tensor idx;
  if (r == 1 && x.dtype() == DType::kInt64 && x.shape() == rows) {
    idx = x.detach().reshape({n});  // already the flat indices: two launches fewer
  } else {
    Tensor flat = x.dtype() == DType::kInt64 ? x.to_float() : x.detach();
    if (r > 1) flat = flat + (pb.empty() ? arange(r, dev) : arange(r, dev).reshape(pb)) * static_cast<float>(k);
    if (flat.shape() != rows) flat = flat.expand(rows);
    idx = flat.to_int64().reshape({n});
  }
  return index_select(logits().reshape({r * k}), 0, idx).reshape(rows);
}

Tensor Categorical::log_prob(const Tensor& x) const {
  CUVI_CHECK(x.defined(), ValueError, "Categorical.log_prob: undefined value" << detail::site_suffix());
  if (Tensor lp = gathered_log_prob(x); lp.defined()) return lp;
  // int64 indices (what sample() returns) are read by the kernels as they are.
  return logits_form_ ? row_family_log_prob<kern::CategoricalLogits>(x, param_, batch_shape_)
                      : row_family_log_prob<kern::CategoricalProbs>(x, param_, batch_shape_);
}
Tensor Categorical::log_prob_sum(const Tensor& x, float coef) const {
  CUVI_CHECK(x.defined(), ValueError, "Categorical.log_prob: undefined value" << detail::site_suffix());
  if (Tensor lp = gathered_log_prob(x); lp.defined()) return sum(lp) * coef;
  return logits_form_ ? row_family_log_prob_sum<kern::CategoricalLogits>(x, param_, coef, batch_shape_)
                      : row_family_log_prob_sum<kern::CategoricalProbs>(x, param_, coef, batch_shape_);
}

Tensor Categorical::support_values() const { return arange_i64(param_.size(-1), param_.device()); }

Tensor Categorical::sample(const Shape& s) const {
  NoGradGuard ng;
  // int64 indices straight from the sampler.
  return logits_form_ ? row_family_sample<kern::CategoricalLogits>(param_, s, false, batch_shape_)
                      : row_family_sample<kern::CategoricalProbs>(param_, s, false, batch_shape_);
}
Tensor Categorical::mean() const {
  Tensor k = arange(param_.size(-1), device());
  return sum(probs() * k, {-1}).expand(batch_shape_);
}
Tensor Categorical::variance() const {
  Tensor k = arange(param_.size(-1), device());
  Tensor pr = probs();
  Tensor m = sum(pr * k, {-1});
  return (sum(pr * k * k, {-1}) - m * m).expand(batch_shape_);
}
DistPtr Categorical::expand_ptr(const Shape& b) const {
  // The parameter stays as it is (validated when made); rows read it broadcast.
  bool fits = b.size() >= batch_shape_.size();
  for (size_t i = 0; fits && i < batch_shape_.size(); ++i) {
    const int64_t have = batch_shape_[batch_shape_.size() - 1 - i], want = b[b.size() - 1 - i];
    fits = have == want || have == 1;
  }
  CUVI_CHECK(fits, ShapeError,
             "Categorical.expand: cannot expand batch shape " << shape_str(batch_shape_) << " to " << shape_str(b));
  auto d = std::make_shared<Categorical>(*this);
  d->batch_shape_ = b;
  return d;
}

// ---- Dirichlet -----------------------------------------------------------------

Dirichlet::Dirichlet(const Tensor& concentration) : conc_(concentration) {
  CUVI_CHECK(conc_.defined() && conc_.dim() >= 1 && conc_.size(-1) >= 2, ShapeError,
             "Dirichlet: concentration needs a last dim of size >= 2, got "
                 << (conc_.defined() ? shape_str(conc_.shape()) : "undefined") << detail::site_suffix());
  row_family_validate_params<kern::Dirichlet>(conc_);
  batch_shape_ = drop_last(conc_.shape());
}
Tensor Dirichlet::log_prob(const Tensor& x) const { return row_family_log_prob<kern::Dirichlet>(x, conc_); }
Tensor Dirichlet::log_prob_sum(const Tensor& x, float coef) const {
  return row_family_log_prob_sum<kern::Dirichlet>(x, conc_, coef);
}
Tensor Dirichlet::rsample(const Shape& s) const { return row_family_sample<kern::Dirichlet>(conc_, s, true); }
Tensor Dirichlet::mean() const { return conc_ / sum(conc_, {-1}, true); }
Tensor Dirichlet::variance() const {
  Tensor a0 = sum(conc_, {-1}, true);
  Tensor m = conc_ / a0;
  return m * (1.0f - m) / (a0 + 1.0f);
}
DistPtr Dirichlet::expand_ptr(const Shape& b) const {
  Shape full = b;
  full.push_back(conc_.size(-1));
  return std::make_shared<Dirichlet>(conc_.expand(full));
}

// ---- Delta -----------------------------------------------------------------------

Delta::Delta(const Tensor& v, Arg log_density, int event_dim)
    : v_(v), log_density_(std::move(log_density)), event_dim_(event_dim) {
  CUVI_CHECK(v_.defined() && event_dim_ >= 0 && event_dim_ <= v_.dim(), ShapeError,
             "Delta: event_dim " << event_dim << " for a value of shape "
                                 << (v_.defined() ? shape_str(v_.shape()) : "undefined"));
  if (!log_density_.is_const()) broadcast_shapes(log_density_.t.shape(), batch_shape(), "Delta(log_density)");
}
Shape Delta::batch_shape() const { return Shape(v_.shape().begin(), v_.shape().end() - event_dim_); }
Shape Delta::event_shape() const { return Shape(v_.shape().end() - event_dim_, v_.shape().end()); }
Tensor Delta::log_prob(const Tensor& x) const {
  Tensor lp = where(eq(x, v_.detach()), zeros({}, x.device()), full({}, -INFINITY, x.device()));
  lp = sum_rightmost(lp, event_dim_);
  if (!log_density_.is_const()) return lp + log_density_.t;
  return log_density_.v == 0.0f ? lp : lp + log_density_.v;
}
Tensor Delta::rsample(const Shape& s) const {
  if (s.empty()) return v_;
  Shape full = s;
  full.insert(full.end(), v_.shape().begin(), v_.shape().end());
  return v_.expand(full);
}
DistPtr Delta::expand_ptr(const Shape& b) const {
  Shape full = b;
  const Shape e = event_shape();
  full.insert(full.end(), e.begin(), e.end());
  Arg ld = log_density_;
  if (!ld.is_const() && ld.t.dim() > 0) ld.t = ld.t.expand(b);
  return std::make_shared<Delta>(v_.expand(full), ld, event_dim_);
}

// ---- KL ----------------------------------------------------------------------

namespace {

const Distribution& unwrap(const Distribution& d) {
  if (auto w = dynamic_cast<const Dist*>(&d)) return unwrap(*w->ptr());
  return d;
}

// pq * (lq - lp) with the 0 log 0 = 0 convention: where pq == 0 both logs
// are replaced by 0 before they meet, so neither the value nor a gradient
// sees 0 * inf.
Tensor xlogratio(const Tensor& pq, const Tensor& lq, const Tensor& lp) {
  const Tensor pos = gt(pq, zeros_like(pq));
  const Tensor zero = zeros_like(pq);
  return pq * (where(pos, lq, zero) - where(pos, lp, zero));
}

// log P(1) and log P(0) of a Bernoulli given by probs or by logits.
bool bernoulli_logs(const Distribution& d, Tensor* l1, Tensor* l0, bool dry) {
  if (auto b = dynamic_cast<const BernoulliProbs*>(&d)) {
    if (!dry) *l1 = log(b->param(0)), *l0 = log1p(-b->param(0));
    return true;
  }
  if (auto b = dynamic_cast<const BernoulliLogits*>(&d)) {
    if (!dry) *l1 = log_sigmoid(b->param(0)), *l0 = log_sigmoid(-b->param(0));
    return true;
  }
  return false;
}

// A tensor of +inf where `outside` (q's support not inside p's), v elsewhere.
Tensor inf_where(const Tensor& outside, const Tensor& v) {
  return where(outside, full_like(v, std::numeric_limits<float>::infinity()), v);
}

Tensor kl_impl(const Distribution& qd, const Distribution& pd, bool dry, bool* ok) {
  const Distribution& q = unwrap(qd);
  const Distribution& p = unwrap(pd);
  *ok = true;
  if (auto qi = dynamic_cast<const Independent*>(&q)) {
    if (auto pi = dynamic_cast<const Independent*>(&p); pi && pi->reinterpreted() == qi->reinterpreted()) {
      Tensor k = kl_impl(*qi->base(), *pi->base(), dry, ok);
      if (dry || !*ok) return k;
      return sum_rightmost(k, qi->reinterpreted());
    }
  }
  if (auto a = dynamic_cast<const Normal*>(&q)) {
    if (auto b = dynamic_cast<const Normal*>(&p)) {
      if (dry) return {};
      Tensor r = a->scale() / b->scale();
      Tensor d = (a->loc() - b->loc()) / b->scale();
      return 0.5f * (r * r + d * d - 1.0f) - log(r);
    }
  }
  if (auto a = dynamic_cast<const LogNormal*>(&q)) {
    if (auto b = dynamic_cast<const LogNormal*>(&p)) {
      if (dry) return {};
      Tensor r = a->scale() / b->scale();
      Tensor d = (a->loc() - b->loc()) / b->scale();
      return 0.5f * (r * r + d * d - 1.0f) - log(r);
    }
  }
  if (auto a = dynamic_cast<const Exponential*>(&q)) {
    if (auto b = dynamic_cast<const Exponential*>(&p)) {
      if (dry) return {};
      Tensor r = b->rate() / a->rate();
      return r - log(r) - 1.0f;
    }
  }
  if (auto a = dynamic_cast<const Gamma*>(&q)) {
    if (auto b = dynamic_cast<const Gamma*>(&p)) {
      if (dry) return {};
      Tensor aq = a->concentration(), bq = a->rate(), ap = b->concentration(), bp = b->rate();
      return (aq - ap) * digamma(aq) - lgamma(aq) + lgamma(ap) + ap * (log(bq) - log(bp)) + aq * (bp - bq) / bq;
    }
  }
  if (auto a = dynamic_cast<const Beta*>(&q)) {
    if (auto b = dynamic_cast<const Beta*>(&p)) {
      if (dry) return {};
      Tensor a1 = a->concentration1(), b1 = a->concentration0(), a2 = b->concentration1(), b2 = b->concentration0();
      Tensor s1 = a1 + b1;
      auto lbeta = [](const Tensor& x, const Tensor& y) { return lgamma(x) + lgamma(y) - lgamma(x + y); };
      return lbeta(a2, b2) - lbeta(a1, b1) + (a1 - a2) * digamma(a1) + (b1 - b2) * digamma(b1) +
             (a2 - a1 + b2 - b1) * digamma(s1);
    }
  }
  if (auto a = dynamic_cast<const Dirichlet*>(&q)) {
    if (auto b = dynamic_cast<const Dirichlet*>(&p)) {
      if (dry) return {};
      Tensor aq = a->concentration(), ap = b->concentration();
      Tensor sq = sum(aq, {-1}, true);
      Tensor t = sum((aq - ap) * (digamma(aq) - digamma(sq)), {-1});
      return t + lgamma(sum(aq, {-1})) - lgamma(sum(ap, {-1})) - sum(lgamma(aq), {-1}) + sum(lgamma(ap), {-1});
    }
  }
  if (auto a = dynamic_cast<const MultivariateNormal*>(&q)) {
    if (auto b = dynamic_cast<const MultivariateNormal*>(&p)) {
      if (dry) return {};
      // 0.5 (tr(Sp^-1 Sq) + (mp-mq)^T Sp^-1 (mp-mq) - D + log det Sp - log det Sq)
      // with tr(Sp^-1 Sq) = |Lp^-1 Lq|_F^2: column j of Lq is row j of Lq^T,
      // solved against Lp broadcast over j.
      const int64_t D = a->loc().size(-1);
      CUVI_CHECK(b->loc().size(-1) == D, ShapeError,
                 "kl_divergence: MultivariateNormal event sizes differ (" << D << " and " << b->loc().size(-1) << ")"
                                                                        << detail::site_suffix());
      const Tensor& lq = a->scale_tril();
      const Tensor& lp = b->scale_tril();
      Tensor tr = sum(square(triangular_solve(lp.unsqueeze(-3), transpose(lq, -1, -2))), {-2, -1});
      Tensor maha = sum(square(triangular_solve(lp, a->loc() - b->loc())), {-1});
      Tensor half_log_det_p = sum(log(diagonal(lp)), {-1});
      Tensor half_log_det_q = sum(log(diagonal(lq)), {-1});
      return 0.5f * (tr + maha - static_cast<float>(D)) + half_log_det_p - half_log_det_q;
    }
  }
  {  // Bernoulli (probs or logits on either side): the two-point sum.
    Tensor q1, q0, p1, p0;
    if (bernoulli_logs(q, &q1, &q0, true) && bernoulli_logs(p, &p1, &p0, true)) {
      if (dry) return {};
      bernoulli_logs(q, &q1, &q0, false);
      bernoulli_logs(p, &p1, &p0, false);
      return xlogratio(exp(q1), q1, p1) + xlogratio(exp(q0), q0, p0);
    }
  }
  {  // Binomial (probs or logits on either side), torch's: with equal
     // total counts n, n times the Bernoulli KL; +inf where q's total count
     // exceeds p's (q reaches counts p cannot); none where it is below
     // (constant counts: no closed form; tensor counts: a deferred error).
    auto binomial = [](const Distribution& d, Arg* n, Tensor* l1, Tensor* l0, bool dry) {
      if (auto b = dynamic_cast<const Binomial*>(&d)) {
        *n = b->args()[0];
        if (!dry) *l1 = log(b->probs()), *l0 = log1p(-b->probs());
        return true;
      }
      if (auto b = dynamic_cast<const BinomialLogits*>(&d)) {
        *n = b->args()[0];
        if (!dry) *l1 = log_sigmoid(b->logits()), *l0 = log_sigmoid(-b->logits());
        return true;
      }
      return false;
    };
    Arg nq = 0.0f, np = 0.0f;
    Tensor q1, q0, p1, p0;
    if (binomial(q, &nq, &q1, &q0, true) && binomial(p, &np, &p1, &p0, true)) {
      if (nq.is_const() && np.is_const() && nq.v < np.v) {
        *ok = false;
        return {};
      }
      if (dry) return {};
      binomial(q, &nq, &q1, &q0, false);
      binomial(p, &np, &p1, &p0, false);
      const Tensor k = (xlogratio(exp(q1), q1, p1) + xlogratio(exp(q0), q0, p0)) * nq.as_tensor(q.device());
      if (nq.is_const() && np.is_const()) return nq.v > np.v ? inf_where(ones_like(k), k) : k;
      const Tensor tq = nq.as_tensor(q.device()), tp = np.as_tensor(q.device());
      detail::check_values(ge(tq, tp), tq,
                           "kl_divergence(Binomial, Binomial): no closed form where q's total_count is below p's "
                           "(" + p.name() + "'s)");
      return inf_where(gt(tq, tp), k);
    }
  }
  {  // Categorical / OneHotCategorical: the K-point sum over the last dim.
    auto cat_logits = [](const Distribution& d, Tensor* l) {
      if (auto c = dynamic_cast<const Categorical*>(&d)) return (*l = c->logits(), true);
      if (auto c = dynamic_cast<const OneHotCategorical*>(&d)) return (*l = c->logits(), true);
      return false;
    };
    const bool qc = dynamic_cast<const Categorical*>(&q) != nullptr;
    const bool qo = dynamic_cast<const OneHotCategorical*>(&q) != nullptr;
    if ((qc && dynamic_cast<const Categorical*>(&p)) || (qo && dynamic_cast<const OneHotCategorical*>(&p))) {
      if (dry) return {};
      Tensor lq, lp;
      cat_logits(q, &lq);
      cat_logits(p, &lp);
      CUVI_CHECK(lq.size(-1) == lp.size(-1), ShapeError,
                 "kl_divergence: " << q.name() << " with " << lq.size(-1) << " categories against " << lp.size(-1)
                                   << detail::site_suffix());
      return sum(xlogratio(exp(lq), lq, lp), {-1});
    }
  }
  if (auto a = dynamic_cast<const Laplace*>(&q)) {
    if (auto b = dynamic_cast<const Laplace*>(&p)) {
      if (dry) return {};
      // log(bp/bq) + |mq - mp|/bp + (bq/bp) exp(-|mq - mp|/bq) - 1
      Tensor r = a->scale() / b->scale();
      Tensor d = abs(a->loc() - b->loc());
      return d / b->scale() + r * exp(-d / a->scale()) - log(r) - 1.0f;
    }
  }
  if (auto a = dynamic_cast<const HalfNormal*>(&q)) {
    if (auto b = dynamic_cast<const HalfNormal*>(&p)) {
      if (dry) return {};
      Tensor r = a->scale() / b->scale();
      return 0.5f * (r * r - 1.0f) - log(r);
    }
  }
  if (auto a = dynamic_cast<const Cauchy*>(&q)) {
    if (auto b = dynamic_cast<const Cauchy*>(&p)) {
      if (dry) return {};
      // log(((sq + sp)^2 + (mq - mp)^2) / (4 sq sp))
      Tensor ss = a->scale() + b->scale(), d = a->loc() - b->loc();
      return log(ss * ss + d * d) - log(4.0f * a->scale() * b->scale());
    }
  }
  if (auto a = dynamic_cast<const Gumbel*>(&q)) {
    if (auto b = dynamic_cast<const Gumbel*>(&p)) {
      if (dry) return {};
      // E_q[log q] = -log bq - gamma - 1; E_q[-log p] = log bp + E[w] + E[e^-w]
      // with w = (mq - mp + bq G)/bp, E[G] = gamma, E[e^-tG] = Gamma(1 + t).
      const float euler = static_cast<float>(kern::kEulerD);
      Tensor t = a->scale() / b->scale();
      Tensor d = (a->loc() - b->loc()) / b->scale();
      return -log(t) + euler * (t - 1.0f) + d + exp(lgamma(t + 1.0f) - d) - 1.0f;
    }
  }
  if (auto a = dynamic_cast<const Uniform*>(&q)) {
    if (auto b = dynamic_cast<const Uniform*>(&p)) {
      if (dry) return {};
      Tensor v = log((b->high() - b->low()) / (a->high() - a->low()));
      return inf_where(maximum(lt(a->low(), b->low()), gt(a->high(), b->high())), v);
    }
  }
  if (auto a = dynamic_cast<const Pareto*>(&q)) {
    if (auto b = dynamic_cast<const Pareto*>(&p)) {
      if (dry) return {};
      // log(aq/ap) + ap log(sq/sp) + ap/aq - 1, for sq >= sp (else inf).
      Tensor v = log(a->alpha() / b->alpha()) + b->alpha() * log(a->scale() / b->scale()) + b->alpha() / a->alpha() -
                 1.0f;
      return inf_where(lt(a->scale(), b->scale()), v);
    }
  }
  if (auto a = dynamic_cast<const Poisson*>(&q)) {
    if (auto b = dynamic_cast<const Poisson*>(&p)) {
      if (dry) return {};
      Tensor lq = a->rate(), lp = b->rate();
      return xlogratio(lq, log(lq), log(lp)) - lq + lp;
    }
  }
  if (auto a = dynamic_cast<const Geometric*>(&q)) {
    if (auto b = dynamic_cast<const Geometric*>(&p)) {
      if (dry) return {};
      // log(pq/pp) + E_q[k] log((1 - pq)/(1 - pp)), E_q[k] = (1 - pq)/pq.
      Tensor pq = a->probs(), pp = b->probs();
      return log(pq / pp) + xlogratio(1.0f - pq, log1p(-pq), log1p(-pp)) / pq;
    }
  }
  *ok = false;
  return {};
}

}  // namespace

bool has_kl(const Distribution& q, const Distribution& p) {
  bool ok = false;
  kl_impl(q, p, true, &ok);
  return ok;
}

Tensor kl_divergence(const Distribution& q, const Distribution& p) {
  bool ok = false;
  Tensor k = kl_impl(q, p, false, &ok);
  CUVI_CHECK(ok, ValueError,
             "kl_divergence: no closed form for KL(" << q.name() << " || " << p.name() << ")" << detail::site_suffix());
  return k;
}

}  // namespace dist
}  // namespace cuvi
