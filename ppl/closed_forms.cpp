// Closed-form cdf, icdf and entropy of the distributions (PyTorch's
// Distribution.cdf / icdf / entropy), composed of runtime ops so that both
// backends and autodiff come with them. Each formula is written so that it
// stays finite where its value is (no 0 * inf in a branch `where` does not
// take: the gradient of the untaken branch is still evaluated), keeps its
// precision in the tails (1 - q is exact for q >= 1/2; expm1 / log1p where
// a result is near 0), and has the right one-sided derivative at a switch
// between two forms.
#include <cmath>
#include <limits>

#include "distributions.hpp"

namespace cuvi::dist {

namespace {

constexpr float kEuler = 0.57721566490153286061f;
constexpr float kLogPi = 1.14472988584940017414f;
constexpr float kLog2 = 0.69314718055994530942f;
constexpr float kPiF = 3.14159265358979323846f;
constexpr float kHalfLog2Pi = 0.91893853320467274178f;

Tensor scalar_like(const Tensor& t, float v) { return full({}, v, t.device()); }

// x log x, 0 at x = 0 (and a finite gradient there).
Tensor xlogx(const Tensor& x) {
  const Tensor pos = gt(x, scalar_like(x, 0.0f));
  return x * log(where(pos, x, scalar_like(x, 1.0f)));
}

Tensor lbeta(const Tensor& a, const Tensor& b) { return lgamma(a) + lgamma(b) - lgamma(a + b); }

// Gamma(a, rate 1) entropy without the rate's -log rate.
Tensor gamma_entropy_unit(const Tensor& a) { return a + lgamma(a) + (1.0f - a) * digamma(a); }

// cot(pi m) for m in [0, 1/2] (+inf at 0): cos / sin is exact in relative
// terms where tan(pi (q - 1/2)) would lose q's low bits.
Tensor cot_pi(const Tensor& m) { return cos(m * kPiF) / sin(m * kPiF); }

}  // namespace

namespace detail {

void check_probabilities(const Tensor& q, const char* who) {
  CUVI_CHECK(q.dtype() == DType::kFloat32, DTypeError,
             who << ".icdf: probabilities must be float32, got " << dtype_name(q.dtype()) << site_suffix());
  check_in_range(q, 0.0f, false, 1.0f, std::string(who) + ".icdf: probabilities must lie in [0, 1]");
}

Tensor expand_to(const Tensor& t, const Shape& shape) { return t.shape() == shape ? t : t.expand(shape); }

using P = std::vector<Tensor>;

// ---- Normal(loc, scale) and the families built on it ---------------------------------

Tensor ClosedForm<kern::Normal>::cdf(const P& p, const Tensor& x) { return ndtr((x - p[0]) / p[1]); }
Tensor ClosedForm<kern::Normal>::icdf(const P& p, const Tensor& q) { return p[0] + p[1] * ndtri(q); }
Tensor ClosedForm<kern::Normal>::entropy(const P& p) { return log(p[1]) + (0.5f + kHalfLog2Pi); }

Tensor ClosedForm<kern::LogNormal>::cdf(const P& p, const Tensor& x) { return ndtr((log(x) - p[0]) / p[1]); }
Tensor ClosedForm<kern::LogNormal>::icdf(const P& p, const Tensor& q) { return exp(p[0] + p[1] * ndtri(q)); }
Tensor ClosedForm<kern::LogNormal>::entropy(const P& p) { return p[0] + log(p[1]) + (0.5f + kHalfLog2Pi); }

// HalfNormal(scale): P(X <= x) = erf(x / (scale sqrt 2)), exact near 0
// (where 2 Phi(x) - 1 cancels).
Tensor ClosedForm<kern::HalfNormal>::cdf(const P& p, const Tensor& x) {
  return erf(x / (p[0] * static_cast<float>(M_SQRT2)));
}
Tensor ClosedForm<kern::HalfNormal>::icdf(const P& p, const Tensor& q) {
  return p[0] * static_cast<float>(M_SQRT2) * erfinv(q);
}
Tensor ClosedForm<kern::HalfNormal>::entropy(const P& p) {
  return log(p[0]) + (0.5f * (kLogPi - kLog2) + 0.5f);
}

// ---- Laplace(loc, scale) ---------------------------------------------------------------
// cdf: e^z / 2 below loc, 1 - e^-z / 2 above (z = (x - loc) / scale; each
// branch's exponent clamped to <= 0, the switch at z = 0 taking the upper
// form, whose derivative there is the density's).
Tensor ClosedForm<kern::Laplace>::cdf(const P& p, const Tensor& x) {
  const Tensor z = (x - p[0]) / p[1];
  const Tensor zero = scalar_like(z, 0.0f);
  return where(lt(z, zero), 0.5f * exp(minimum(z, zero)), 1.0f - 0.5f * exp(-maximum(z, zero)));
}
// icdf: loc + scale log(2q) below 1/2, loc - scale log(2 (1 - q)) above.
Tensor ClosedForm<kern::Laplace>::icdf(const P& p, const Tensor& q) {
  const Tensor half = scalar_like(q, 0.5f);
  const Tensor lower = log(2.0f * minimum(q, half));
  const Tensor upper = -log(2.0f * (1.0f - maximum(q, half)));
  return p[0] + p[1] * where(lt(q, half), lower, upper);
}
Tensor ClosedForm<kern::Laplace>::entropy(const P& p) { return log(p[1]) + (1.0f + kLog2); }

// ---- Cauchy(loc, scale), HalfCauchy(scale) ---------------------------------------------

Tensor ClosedForm<kern::Cauchy>::cdf(const P& p, const Tensor& x) {
  return atan((x - p[0]) / p[1]) * (1.0f / kPiF) + 0.5f;
}
// icdf: loc + scale tan(pi (q - 1/2)) = loc -+ scale cot(pi m), m = q below
// 1/2, 1 - q above (so the ends are exactly -inf and +inf).
Tensor ClosedForm<kern::Cauchy>::icdf(const P& p, const Tensor& q) {
  const Tensor below = lt(q, scalar_like(q, 0.5f));
  const Tensor c = cot_pi(where(below, q, 1.0f - q));
  return p[0] + p[1] * where(below, -c, c);
}
Tensor ClosedForm<kern::Cauchy>::entropy(const P& p) { return log(p[1]) + (std::log(4.0f) + kLogPi); }

Tensor ClosedForm<kern::HalfCauchy>::cdf(const P& p, const Tensor& x) { return atan(x / p[0]) * (2.0f / kPiF); }
// icdf: scale tan(pi q / 2): sin / cos below 1/2, cot(pi (1 - q) / 2) above.
Tensor ClosedForm<kern::HalfCauchy>::icdf(const P& p, const Tensor& q) {
  const Tensor a = q * (0.5f * kPiF), b = (1.0f - q) * (0.5f * kPiF);
  return p[0] * where(lt(q, scalar_like(q, 0.5f)), sin(a) / cos(a), cos(b) / sin(b));
}
Tensor ClosedForm<kern::HalfCauchy>::entropy(const P& p) { return log(p[0]) + (kLog2 + kLogPi); }

// ---- Uniform(low, high) ----------------------------------------------------------------

Tensor ClosedForm<kern::Uniform>::cdf(const P& p, const Tensor& x) { return clamp((x - p[0]) / (p[1] - p[0]), 0.0f, 1.0f); }
Tensor ClosedForm<kern::Uniform>::icdf(const P& p, const Tensor& q) { return p[0] + q * (p[1] - p[0]); }
Tensor ClosedForm<kern::Uniform>::entropy(const P& p) { return log(p[1] - p[0]); }

// ---- Exponential(rate), Gumbel, Logistic, Pareto, Weibull ------------------------------

Tensor ClosedForm<kern::Exponential>::cdf(const P& p, const Tensor& x) { return -expm1(-(p[0] * x)); }
Tensor ClosedForm<kern::Exponential>::icdf(const P& p, const Tensor& q) { return -log1p(-q) / p[0]; }
Tensor ClosedForm<kern::Exponential>::entropy(const P& p) { return 1.0f - log(p[0]); }

Tensor ClosedForm<kern::Gumbel>::cdf(const P& p, const Tensor& x) { return exp(-exp(-(x - p[0]) / p[1])); }
Tensor ClosedForm<kern::Gumbel>::icdf(const P& p, const Tensor& q) { return p[0] - p[1] * log(-log(q)); }
Tensor ClosedForm<kern::Gumbel>::entropy(const P& p) { return log(p[1]) + (1.0f + kEuler); }

Tensor ClosedForm<kern::Logistic>::cdf(const P& p, const Tensor& x) { return sigmoid((x - p[0]) / p[1]); }
Tensor ClosedForm<kern::Logistic>::icdf(const P& p, const Tensor& q) { return p[0] + p[1] * (log(q) - log1p(-q)); }
Tensor ClosedForm<kern::Logistic>::entropy(const P& p) { return log(p[1]) + 2.0f; }

// Pareto(scale, alpha) on x >= scale: 1 - (scale / x)^alpha.
Tensor ClosedForm<kern::Pareto>::cdf(const P& p, const Tensor& x) { return -expm1(p[1] * log(p[0] / x)); }
Tensor ClosedForm<kern::Pareto>::icdf(const P& p, const Tensor& q) { return p[0] * exp(-log1p(-q) / p[1]); }
Tensor ClosedForm<kern::Pareto>::entropy(const P& p) { return log(p[0] / p[1]) + 1.0f / p[1] + 1.0f; }

// Weibull(scale, concentration k): 1 - exp(-(x / scale)^k).
Tensor ClosedForm<kern::Weibull>::cdf(const P& p, const Tensor& x) { return -expm1(-exp(p[1] * log(x / p[0]))); }
Tensor ClosedForm<kern::Weibull>::icdf(const P& p, const Tensor& q) {
  return p[0] * exp(log(-log1p(-q)) / p[1]);
}
Tensor ClosedForm<kern::Weibull>::entropy(const P& p) {
  return kEuler * (1.0f - 1.0f / p[1]) + log(p[0] / p[1]) + 1.0f;
}

// ---- ContinuousBernoulli, in its natural parameter l = logit(lambda) ----------------------
// (the formulas of kernels/dist/unit_interval.hpp, as ops on both
// backends; the icdf is its sampler's inverse cdf, which the kernels only
// evaluate at their own Philox draws). Each direct form cancels as l -> 0,
// where a Taylor series in l takes over; the branches `where` does not take
// get inputs clamped away from their singular points. The cdf and icdf
// values are computed without autodiff (their gradients come from the
// sampler's kernel, below); the entropy's gradient is autodiff's.

namespace {

constexpr float kCbSmall = 1e-3f;  // |l| below which the cdf / icdf use their series

// The logits of a probs parameter, clamped as the kernels clamp it (to
// [2^-23, 1 - 2^-23]; no gradient where the clamp is active).
Tensor cb_logits_of_probs(const Tensor& probs) {
  constexpr float kEps = 1.1920928955078125e-7f;
  const Tensor q = clamp(probs, kEps, 1.0f - kEps);
  return log(q) - log1p(-q);
}

// F(x) = expm1(l x) / expm1(l), written with exponents <= 0 on each side
// (for l > 0: e^(l (x - 1)) expm1(-l x) / expm1(-l)); |l| < 1e-3:
// x (1 + (x - 1) l / 2 + (2x - 1)(x - 1) l^2 / 12) (next term O(l^3), < 1e-9).
Tensor cb_cdf(const Tensor& l, const Tensor& x) {
  const Tensor small = lt(abs(l), scalar_like(l, kCbSmall));
  const Tensor series = x * (1.0f + (x - 1.0f) * l * 0.5f + (2.0f * x - 1.0f) * (x - 1.0f) * square(l) * (1.0f / 12));
  const Tensor lp = maximum(l, scalar_like(l, kCbSmall)), ln = minimum(l, scalar_like(l, -kCbSmall));
  const Tensor pos = exp(lp * (x - 1.0f)) * expm1(-lp * x) / expm1(-lp);
  const Tensor neg = expm1(ln * x) / expm1(ln);
  return where(small, series, where(gt(l, scalar_like(l, 0.0f)), pos, neg));
}

// x = F^-1(q) as the sampler computes it: for l > 0, log1p(q expm1(l)) / l
// (l < 20) or 1 + log(q + (1 - q) e^-l) / l (l >= 20, where expm1 would
// overflow); for l < 0, 1 - F^-1_{-l}(1 - q); |l| < 1e-3:
// q + q(1-q) l / 2 + q(1-q)(1-2q) l^2 / 6. Clamped to [0, 1].
Tensor cb_icdf_pos(const Tensor& m, const Tensor& u) {
  const Tensor mid = minimum(m, scalar_like(m, 20.0f));
  const Tensor big = maximum(m, scalar_like(m, 20.0f));
  return where(lt(m, scalar_like(m, 20.0f)), log1p(u * expm1(mid)) / mid,
               1.0f + log(u + (1.0f - u) * exp(-big)) / big);
}
Tensor cb_icdf(const Tensor& l, const Tensor& q) {
  const Tensor small = lt(abs(l), scalar_like(l, kCbSmall));
  const Tensor qq = q * (1.0f - q);
  const Tensor series = q + qq * l * 0.5f + qq * (1.0f - 2.0f * q) * square(l) * (1.0f / 6);
  const Tensor m = maximum(abs(l), scalar_like(l, kCbSmall));
  const Tensor pos = cb_icdf_pos(m, q);
  const Tensor neg = 1.0f - cb_icdf_pos(m, 1.0f - q);
  return clamp(where(small, series, where(gt(l, scalar_like(l, 0.0f)), pos, neg)), 0.0f, 1.0f);
}

// Entropy, even in l. With m = |l|: 1 + log(-expm1(-m)) - log m - m / expm1(m)
// (= softplus(l) - l mean - log C(l)). It cancels ~25x at m = 1 and ~7x at
// m = 2, so m < 2 takes the series -l^2/24 + l^4/960 - l^6/36288
// + l^8/1382400 - l^10/53222400 + 691 l^12/1426553856000 - l^14/80472268800
// (first omitted term < 2e-8 at m = 2, against an entropy of -0.15).
Tensor cb_entropy(const Tensor& l) {
  const Tensor m = abs(l);
  const Tensor s = square(l);
  const Tensor series =
      s * (-1.0f / 24 +
           s * (1.0f / 960 +
                s * (-1.0f / 36288 +
                     s * (1.0f / 1382400 +
                          s * (-1.0f / 53222400 + s * (691.0f / 1426553856000.0f + s * (-1.0f / 80472268800.0f)))))));
  const Tensor md = maximum(m, scalar_like(m, 2.0f));
  // m / expm1(m) as m e^-m / (1 - e^-m): no overflow (nor inf / inf in its gradient) for large m.
  const Tensor direct = 1.0f + log(-expm1(-md)) - log(md) - md * exp(-md) / (-expm1(-md));
  return where(lt(m, scalar_like(m, 2.0f)), series, direct);
}

// The gradients of cdf and icdf come from the family's own sampler kernels
// rather than from autodiff of the forms above, whose derivative in l
// cancels: d/dl expm1(l x) / expm1(l) is a difference of two terms ~x / l
// that leaves ~x (x - 1) / 2 (a 4% error at l = 2e-3, x = 0.999 in float).
// With x = F^-1(u; theta) the sampler's implicit-reparameterisation
// gradient s(x) = dx/dtheta at fixed u (F::sample_grad, written without
// that cancellation) and the density p(x) give
//   icdf: dx/dq = 1 / p(x),  dx/dtheta = s(x);
//   cdf:  dF/dx = p(x),      dF/dtheta = -p(x) s(x).

// g * s(x), in x's shape (x already broadcast against the parameter).
template <class F>
Tensor sampler_grad(const Tensor& param, const Tensor& x, const Tensor& g) {
  const std::array<Arg, 1> ps{Arg(param)};
  const auto a = detail::make_args<F>(&x, ps, x.shape());
  kern::FamilyGrads<1> o;
  Tensor out = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  o.gp[0] = out.data<float>();
  if (x.device().is_cpu()) kern::cpu::sample_grad<F>(a, g.data<float>(), o);
  else detail::cuda_ops<F>().sample_grad(a, g.data<float>(), o, cuda_stream(x.device().index));
  return out;
}

template <class F>
Tensor density(const Tensor& param, const Tensor& x) {
  NoGradGuard ng;
  return exp(family_log_prob<F>(x, std::array<Arg, 1>{Arg(param)}, param.shape()));
}

// value(l) evaluates the form at the family's logits; param is the
// family's own parameter (probs or logits).
template <class F, class Value>
Tensor cb_cdf_graded(const Tensor& param, const Tensor& x, Value value) {
  Tensor out;
  {
    NoGradGuard ng;
    out = value(param.detach(), x.detach());
  }
  const Tensor ps = param.detach(), xs = expand_to(x.detach(), out.shape());
  const Shape x_shape = x.shape();
  return cuvi::detail::record_fn(
      out, "ContinuousBernoulli.cdf",
      [ps, xs, x_shape](const Tensor& g, const std::vector<bool>& need) {
        const Tensor gp = g * density<F>(ps, xs);
        std::vector<Tensor> res(2);
        if (need[0]) res[0] = sum_to_shape(-sampler_grad<F>(ps, xs, gp), ps.shape());
        if (need[1]) res[1] = sum_to_shape(gp, x_shape);
        return res;
      },
      {&param, &x});
}

template <class F, class Value>
Tensor cb_icdf_graded(const Tensor& param, const Tensor& q, Value value) {
  Tensor out;
  {
    NoGradGuard ng;
    out = value(param.detach(), q.detach());
  }
  const Tensor ps = param.detach(), xs = out;
  const Shape q_shape = q.shape();
  return cuvi::detail::record_fn(
      out, "ContinuousBernoulli.icdf",
      [ps, xs, q_shape](const Tensor& g, const std::vector<bool>& need) {
        std::vector<Tensor> res(2);
        if (need[0]) res[0] = sum_to_shape(sampler_grad<F>(ps, xs, g), ps.shape());
        if (need[1]) res[1] = sum_to_shape(g / density<F>(ps, xs), q_shape);
        return res;
      },
      {&param, &q});
}

Tensor cb_probs_cdf(const Tensor& p, const Tensor& x) { return cb_cdf(cb_logits_of_probs(p), x); }
Tensor cb_probs_icdf(const Tensor& p, const Tensor& q) { return cb_icdf(cb_logits_of_probs(p), q); }

}  // namespace

Tensor ClosedForm<kern::ContinuousBernoulliProbs>::cdf(const P& p, const Tensor& x) {
  return cb_cdf_graded<kern::ContinuousBernoulliProbs>(p[0], x, cb_probs_cdf);
}
Tensor ClosedForm<kern::ContinuousBernoulliProbs>::icdf(const P& p, const Tensor& q) {
  return cb_icdf_graded<kern::ContinuousBernoulliProbs>(p[0], q, cb_probs_icdf);
}
Tensor ClosedForm<kern::ContinuousBernoulliProbs>::entropy(const P& p) { return cb_entropy(cb_logits_of_probs(p[0])); }
Tensor ClosedForm<kern::ContinuousBernoulliLogits>::cdf(const P& p, const Tensor& x) {
  return cb_cdf_graded<kern::ContinuousBernoulliLogits>(p[0], x, cb_cdf);
}
Tensor ClosedForm<kern::ContinuousBernoulliLogits>::icdf(const P& p, const Tensor& q) {
  return cb_icdf_graded<kern::ContinuousBernoulliLogits>(p[0], q, cb_icdf);
}
Tensor ClosedForm<kern::ContinuousBernoulliLogits>::entropy(const P& p) { return cb_entropy(p[0]); }

// ---- cdf through the incomplete gamma and beta functions (no icdf) ----------------------

Tensor ClosedForm<kern::Gamma>::cdf(const P& p, const Tensor& x) { return gammainc(p[0], p[1] * x); }
Tensor ClosedForm<kern::Chi2>::cdf(const P& p, const Tensor& x) { return gammainc(0.5f * p[0], 0.5f * x); }
// P(X <= x) = P(1/X >= 1/x) = Q(a, rate / x) (rate / 0 = inf gives 0).
Tensor ClosedForm<kern::InverseGamma>::cdf(const P& p, const Tensor& x) { return gammaincc(p[0], p[1] / x); }
Tensor ClosedForm<kern::Beta>::cdf(const P& p, const Tensor& x) { return betainc(p[0], p[1], x); }
Tensor ClosedForm<kern::StudentT>::cdf(const P& p, const Tensor& x) { return stdtr(p[0], (x - p[1]) / p[2]); }

// ---- entropy only ----------------------------------------------------------------------

Tensor ClosedForm<kern::Gamma>::entropy(const P& p) { return gamma_entropy_unit(p[0]) - log(p[1]); }
Tensor ClosedForm<kern::Chi2>::entropy(const P& p) { return gamma_entropy_unit(0.5f * p[0]) + kLog2; }
Tensor ClosedForm<kern::InverseGamma>::entropy(const P& p) {
  return p[0] + log(p[1]) + lgamma(p[0]) - (1.0f + p[0]) * digamma(p[0]);
}
Tensor ClosedForm<kern::Beta>::entropy(const P& p) {
  const Tensor& a = p[0];
  const Tensor& b = p[1];
  return lbeta(a, b) - (a - 1.0f) * digamma(a) - (b - 1.0f) * digamma(b) + (a + b - 2.0f) * digamma(a + b);
}
// StudentT(df, loc, scale): log scale + (df+1)/2 (psi((df+1)/2) - psi(df/2))
// + log(sqrt(df) B(df/2, 1/2)).
Tensor ClosedForm<kern::StudentT>::entropy(const P& p) {
  const Tensor h = 0.5f * p[0], h1 = 0.5f * (p[0] + 1.0f);
  return log(p[2]) + h1 * (digamma(h1) - digamma(h)) + 0.5f * log(p[0]) + lbeta(h, scalar_like(h, 0.5f));
}
Tensor ClosedForm<kern::BernoulliProbs>::entropy(const P& p) { return -(xlogx(p[0]) + xlogx(1.0f - p[0])); }
// From the logits: softplus(l) - l sigmoid(l), exact in both tails.
Tensor ClosedForm<kern::BernoulliLogits>::entropy(const P& p) { return softplus(p[0]) - p[0] * sigmoid(p[0]); }
// Geometric(probs): -((1 - p) log(1 - p) + p log p) / p.
Tensor ClosedForm<kern::Geometric>::entropy(const P& p) { return -(xlogx(1.0f - p[0]) + xlogx(p[0])) / p[0]; }

}  // namespace detail

// ---- defaults and the event-shaped families ---------------------------------------------

Tensor Distribution::cdf(const Tensor&) const {
  CUVI_THROW(ValueError, name() << ": cdf has no closed form here" << detail::site_suffix());
}
Tensor Distribution::icdf(const Tensor&) const {
  CUVI_THROW(ValueError, name() << ": icdf has no closed form here" << detail::site_suffix());
}
Tensor Distribution::entropy() const {
  CUVI_THROW(ValueError, name() << ": entropy has no closed form here" << detail::site_suffix());
}

Tensor Independent::entropy() const { return sum_rightmost(base_->entropy(), n_); }

namespace {
// -sum_k p_k log p_k from normalised logits (-inf logits clamped, so 0 log 0 = 0).
Tensor categorical_entropy(const Tensor& logits) {
  const Tensor l = clamp_min(logits, -std::numeric_limits<float>::max());
  return -sum(exp(logits) * l, {-1});
}
}  // namespace

Tensor Categorical::entropy() const { return detail::expand_to(categorical_entropy(logits()), batch_shape_); }
Tensor OneHotCategorical::entropy() const { return detail::expand_to(categorical_entropy(logits()), batch_shape_); }

// log B(alpha) + (alpha_0 - K) psi(alpha_0) - sum_k (alpha_k - 1) psi(alpha_k).
Tensor Dirichlet::entropy() const {
  const float K = static_cast<float>(conc_.size(-1));
  const Tensor a0 = sum(conc_, {-1});
  const Tensor h = sum(lgamma(conc_), {-1}) - lgamma(a0) + (a0 - K) * digamma(a0) -
                   sum((conc_ - 1.0f) * digamma(conc_), {-1});
  return detail::expand_to(h, batch_shape_);
}

Tensor MultivariateNormal::entropy() const {
  const float D = static_cast<float>(loc_.size(-1));
  const Tensor h = sum(log(diagonal(scale_tril_)), {-1}) + D * (0.5f + kHalfLog2Pi);
  return detail::expand_to(h, batch_shape_);
}

Tensor LowRankMultivariateNormal::entropy() const {
  const int64_t D = loc_.size(-1), R = W_.size(-1);
  const Tensor wtdi = transpose(W_, -1, -2) / d_.unsqueeze(-2);
  const Tensor Lc = cholesky(matmul(wtdi, W_) + diag_embed(ones({R}, device())));
  const Tensor half_log_det = sum(log(diagonal(Lc)), {-1}) + 0.5f * sum(log(d_), {-1});
  return detail::expand_to(half_log_det + static_cast<float>(D) * (0.5f + kHalfLog2Pi), batch_shape_);
}

}  // namespace cuvi::dist
