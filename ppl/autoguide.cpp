#include "autoguide.hpp"

#include <algorithm>
#include <cmath>

namespace cuvi::infer {

namespace {


bool subsampled(const Frame& f) { return f.subsampled; }

// True where every event of x is in the support.
bool all_in_support(const constraints::ConstraintPtr& c, const Tensor& x) {
  const auto v = c->check(x.detach()).to_vector();
  for (float b : v)
    if (b == 0.0f) return false;
  return true;
}

// The prototype's rows of t repeated periodically to the full size along
// every subsampled plate of s (Pyro's periodic_repeat): a guide's init of a
// per-datapoint quantity. batch_ndim: the number of batch dims of t, to
// which the plates' dims (negative) count from the right.
Tensor periodic_repeat(Tensor t, const Site& s, int batch_ndim) {
  for (const Frame& f : s.frames) {
    if (!subsampled(f)) continue;
    const int pos = batch_ndim + f.dim;
    std::vector<int64_t> rep(static_cast<size_t>(f.size));
    for (int64_t i = 0; i < f.size; ++i) rep[static_cast<size_t>(i)] = i % f.subsample_size;
    t = index_select(t, pos, tensor_i64(rep, {f.size}, t.device()));
  }
  return t;
}

Tensor feasible(const Site& s) {
  const constraints::ConstraintPtr c = s.fn->support();
  const Shape v = s.value.shape();
  return c->transform(zeros(c->unconstrained_shape(v), s.value.device())).detach();
}

// Adds the plates a site sat in (with this call's indices) to its message,
// as the model's Plate objects did, without entering them again (a
// subsampled plate's index draw may occur only once per trace).
class FramesMessenger final : public Messenger {
 public:
  explicit FramesMessenger(std::vector<Frame> frames) : frames_(std::move(frames)) {}
  void process(Site& msg) override {
    if (msg.type == SiteType::kParam) {  // as Plate::process: event_dim params take the plates' rows
      if (msg.event_dim) msg.frames.insert(msg.frames.begin(), frames_.begin(), frames_.end());
      return;
    }
    if (msg.type != SiteType::kSample || msg.is_subsample) return;
    msg.frames.insert(msg.frames.begin(), frames_.begin(), frames_.end());
    for (const Frame& f : frames_) msg.scale *= plate_scale(f);
  }

 private:
  std::vector<Frame> frames_;
};

}  // namespace

// ---- init strategies ----------------------------------------------------------

InitLocFn init_to_feasible() {
  return [](const Site& s) { return feasible(s); };
}

InitLocFn init_to_sample() {
  return [](const Site& s) {
    NoGradGuard ng;
    return s.fn->sample().detach();
  };
}

InitLocFn init_to_uniform(float radius) {
  CUVI_CHECK(radius > 0.0f && std::isfinite(radius), ValueError,
             "init_to_uniform: radius must be positive and finite, got " << radius);
  return [radius](const Site& s) {
    NoGradGuard ng;
    const constraints::ConstraintPtr c = s.fn->support();
    const Tensor u = rand(c->unconstrained_shape(s.value.shape()), s.value.device()) * (2.0f * radius) - radius;
    return c->transform(u).detach();
  };
}

InitLocFn init_to_median(int num_samples) {
  CUVI_CHECK(num_samples >= 1, ValueError, "init_to_median: num_samples must be >= 1, got " << num_samples);
  return [num_samples](const Site& s) {
    NoGradGuard ng;
    const Shape vs = s.value.shape();
    const Tensor draws = s.fn->sample({num_samples}).detach().to(Device::cpu());
    const auto d = draws.to_vector();
    const size_t n = d.size() / static_cast<size_t>(num_samples);
    std::vector<float> med(n), col(static_cast<size_t>(num_samples));
    for (size_t i = 0; i < n; ++i) {
      for (size_t k = 0; k < col.size(); ++k) col[k] = d[k * n + i];
      // torch.median: the lower of the two middle values for even counts.
      const size_t mid = (col.size() - 1) / 2;
      std::nth_element(col.begin(), col.begin() + static_cast<std::ptrdiff_t>(mid), col.end());
      med[i] = col[mid];
    }
    Tensor m = tensor(med, vs, Device::cpu());
    const constraints::ConstraintPtr c = s.fn->support();
    // Elementwise medians of simplex draws do not sum to one.
    if (c->name() == "simplex") m = m / sum(m, {-1}, true);
    m = m.to(s.value.device());
    if (!all_in_support(c, m)) return feasible(s);
    return m;
  };
}

InitLocFn init_to_mean() {
  const InitLocFn fallback = init_to_median();
  return [fallback](const Site& s) {
    NoGradGuard ng;
    Tensor m;
    try {
      m = s.fn->mean().detach();
    } catch (const std::exception&) {
      return fallback(s);
    }
    if (m.shape() != s.value.shape()) m = m.expand(s.value.shape()).clone();
    if (!all_in_support(s.fn->support(), m)) return fallback(s);
    return m;
  };
}

InitLocFn init_to_value(std::map<std::string, Tensor> values, InitLocFn fallback) {
  return [values = std::move(values), fallback](const Site& s) {
    auto it = values.find(s.name);
    if (it == values.end()) return fallback(s);
    Tensor v = it->second.detach();
    CUVI_CHECK(v.shape() == s.value.shape(), ShapeError,
               "init_to_value: site '" << s.name << "' has shape " << shape_str(s.value.shape())
                                       << ", the value given has shape " << shape_str(v.shape()));
    return v.to(s.value.device());
  };
}

namespace detail {

// ---- core ------------------------------------------------------------------------

AutoGuideCore::AutoGuideCore(std::string cls, AutoGuideOptions o, InitLocFn default_init)
    : cls_(std::move(cls)), o_(std::move(o)) {
  prefix_ = o_.prefix.empty() ? cls_ : o_.prefix;
  if (!o_.init_loc_fn) o_.init_loc_fn = std::move(default_init);
  CUVI_CHECK(o_.init_scale > 0.0f && std::isfinite(o_.init_scale), ValueError,
             cls_ << ": init_scale must be positive, got " << o_.init_scale);
}

const LatentSite& AutoGuideCore::site(const std::string& name) const {
  for (const LatentSite& s : sites_)
    if (s.proto.name == name) return s;
  CUVI_THROW(ValueError, prefix_ << ": the model has no latent site named '" << name << "'");
}

std::map<std::string, Tensor> AutoGuideCore::quantiles(const std::vector<float>&) const {
  CUVI_THROW(ValueError, prefix_ << ".quantiles(): " << cls_ << " has no marginal quantiles");
}

namespace {
// The probabilities as a tensor [Q] on dev, each checked to lie in [0, 1].
Tensor quantile_levels(const std::vector<float>& qs, const std::string& who, Device dev) {
  CUVI_CHECK(!qs.empty(), ValueError, who << ".quantiles(): no quantiles asked for");
  for (float q : qs)
    CUVI_CHECK(q >= 0.0f && q <= 1.0f, ValueError, who << ".quantiles(): each quantile must lie in [0, 1], got " << q);
  return tensor(qs, dev);
}
}  // namespace

bool AutoGuideCore::takes(const Site& s) const {
  // A site marked for enumeration is summed out by TraceEnum_ELBO: the
  // guide leaves it alone (as hiding it with block(model, hide) would).
  if (s.enumerate == "parallel") return false;
  CUVI_CHECK(!s.fn->is_discrete() && !s.fn->support()->is_discrete(), ValueError,
             cls_ << ": latent site '" << s.name << "' is discrete (" << s.fn->name()
                  << "); autoguides need continuous latents (mark it for enumeration, or marginalise it out)");
  return true;
}

void AutoGuideCore::setup(const std::function<void()>& run_model) {
  // The model runs hidden from every handler outside (the guide may be
  // running under the ELBO's trace); the inner trace still records it.
  Trace proto;
  {
    poutine::BlockMessenger block({}, {}, true);
    poutine::TraceMessenger tr;
    HandlerScope b(&block);
    HandlerScope t(&tr);
    run_model();
    proto = std::move(tr.trace);
  }
  std::vector<LatentSite> sites;
  for (const Site& s : proto.sites()) {
    if (s.type != SiteType::kSample || s.is_observed || s.is_subsample) continue;
    if (!takes(s)) continue;
    LatentSite ls;
    ls.proto = s;
    ls.proto.value = s.value.detach();
    ls.support = s.fn->support();
    ls.value_shape = s.value.shape();
    ls.event_dim = s.fn->event_dim();
    ls.batch_ndim = static_cast<int>(ls.value_shape.size()) - ls.event_dim;
    ls.uncon_shape = ls.support->unconstrained_shape(ls.value_shape);
    ls.uncon_event_dim = ls.event_dim + static_cast<int>(ls.uncon_shape.size()) - static_cast<int>(ls.value_shape.size());
    ls.full_value_shape = ls.value_shape;
    ls.full_uncon_shape = ls.uncon_shape;
    for (const Frame& f : s.frames) {
      // A subsampled sequential plate names different sites from step to
      // step (x_<index>): no fixed set of guide parameters can follow it
      // (Pyro's autoguides refuse sequential plates altogether). Unsubsampled
      // ones work: each iteration's site is a site of its own, and the
      // frames (no dim) are handed back unchanged by sample_in_plates.
      CUVI_CHECK(f.vectorized || !subsampled(f), ValueError,
                 cls_ << ": site '" << s.name << "' is in the subsampled sequential plate '" << f.name
                      << "' (irange); its sites change from step to step, which an autoguide cannot follow");
      if (!f.vectorized || !subsampled(f)) continue;
      CUVI_CHECK(supports_subsampling(), ValueError,
                 cls_ << ": site '" << s.name << "' is in the subsampled plate '" << f.name
                      << "'; this guide has one joint latent vector and cannot subsample it (use AutoNormal)");
      const int pos = ls.batch_ndim + f.dim;
      CUVI_CHECK(pos >= 0 && ls.value_shape[static_cast<size_t>(pos)] == f.subsample_size, ShapeError,
                 cls_ << ": site '" << s.name << "' of shape " << shape_str(ls.value_shape)
                      << " has no dim of size " << f.subsample_size << " for plate '" << f.name << "'");
      ls.full_value_shape[static_cast<size_t>(pos)] = f.size;
      ls.full_uncon_shape[static_cast<size_t>(pos)] = f.size;
    }
    // The constrained init at the prototype's shape, repeated periodically
    // to the full size along subsampled dims (Pyro's periodic_repeat).
    Tensor init;
    {
      NoGradGuard ng;
      dist::detail::SiteScope scope(s.name);
      init = o_.init_loc_fn(ls.proto).detach();
      CUVI_CHECK(init.shape() == ls.value_shape, ShapeError,
                 cls_ << ": init_loc_fn gave shape " << shape_str(init.shape()) << " for site '" << s.name
                      << "' of shape " << shape_str(ls.value_shape));
      init = periodic_repeat(init, s, ls.batch_ndim);
    }
    ls.init_value = init;
    sites.push_back(std::move(ls));
  }
  sites_ = std::move(sites);
  create_params();
  ready_ = true;
}

std::map<std::string, Tensor> AutoGuideCore::draw_plates() const {
  std::map<std::string, Tensor> idx;
  for (const LatentSite& s : sites_)
    for (const Frame& f : s.proto.frames) {
      if (!subsampled(f) || idx.count(f.name)) continue;
      // The guide draws B of N at random each call and the model replays
      // them; a plate the model gives all N of its own indices (a
      // permutation) has nothing to draw, and guessing its order would
      // misalign the guide's rows with the model's.
      CUVI_CHECK(f.subsample_size < f.size || f.shard_count > 0, ValueError,
                 cls_ << ": plate '" << f.name << "' takes user-supplied indices of its full size " << f.size
                      << "; an autoguide draws its minibatches (give the plate a subsample_size < size)");
      // A sharded plate draws from the same block as the model's.
      std::optional<poutine::ShardMessenger> shard;
      std::optional<HandlerScope> in_shard;
      if (f.shard_count > 0) {
        shard.emplace(f.shard_rank, f.shard_count, std::set<std::string>{f.name});
        in_shard.emplace(&*shard);
      }
      Plate p(f.name, f.size, f.subsample_size, f.dim);
      idx[f.name] = p.indices();
    }
  return idx;
}

namespace {
std::vector<Frame> frames_at(const LatentSite& s, const std::map<std::string, Tensor>& idx) {
  std::vector<Frame> frames = s.proto.frames;
  for (Frame& f : frames)
    if (subsampled(f)) f.indices = idx.at(f.name);
  return frames;
}
}  // namespace

Tensor AutoGuideCore::param_in_plates(const LatentSite& s, const std::string& name,
                                      const std::function<Tensor()>& init, const constraints::ConstraintPtr& c,
                                      int event_dim, const std::map<std::string, Tensor>& idx) const {
  FramesMessenger m(frames_at(s, idx));
  HandlerScope scope(&m);
  return param(name, init, c, event_dim);
}

Tensor AutoGuideCore::sample_in_plates(const LatentSite& s, const dist::Distribution& d,
                                       const std::map<std::string, Tensor>& idx, const Infer& infer) const {
  FramesMessenger m(frames_at(s, idx));
  HandlerScope scope(&m);
  return infer.enumerate.empty() ? sample(s.proto.name, d) : sample(s.proto.name, d, infer);
}

// ---- AutoNormal ------------------------------------------------------------------

AutoNormalCore::AutoNormalCore(AutoGuideOptions o) : AutoGuideCore("AutoNormal", std::move(o), init_to_feasible()) {}

void AutoNormalCore::create_params() {
  for (const LatentSite& s : sites_) {
    const std::string n = s.proto.name;
    param_store().param(prefix_ + ".locs." + n,
                        std::function<Tensor()>([&s] { return s.support->inverse(s.init_value).detach(); }),
                        constraints::real);
    const float sc = o_.init_scale;
    param_store().param(prefix_ + ".scales." + n,
                        std::function<Tensor()>([&s, sc] { return full(s.full_uncon_shape, sc, s.init_value.device()); }),
                        constraints::softplus_positive);
  }
}

std::map<std::string, Tensor> AutoNormalCore::run() {
  const auto idx = draw_plates();
  std::map<std::string, Tensor> out;
  for (const LatentSite& s : sites_) {
    const std::string n = s.proto.name;
    const Tensor loc = param_in_plates(
        s, prefix_ + ".locs." + n,
        std::function<Tensor()>([&s] { return s.support->inverse(s.init_value).detach(); }), constraints::real,
        s.uncon_event_dim, idx);
    const float sc = o_.init_scale;
    const Tensor scale = param_in_plates(
        s, prefix_ + ".scales." + n,
        std::function<Tensor()>([&s, sc] { return full(s.full_uncon_shape, sc, s.init_value.device()); }),
        constraints::softplus_positive, s.uncon_event_dim, idx);
    dist::DistPtr q = dist::Normal(loc, scale).to_event(s.uncon_event_dim).ptr();
    if (s.support->name() != "real") q = std::make_shared<dist::TransformedDistribution>(q, s.support);
    out[n] = sample_in_plates(s, dist::Dist(q), idx);
  }
  return out;
}

std::map<std::string, Tensor> AutoNormalCore::median() const {
  NoGradGuard ng;
  std::map<std::string, Tensor> out;
  for (const LatentSite& s : sites_)
    out[s.proto.name] = s.support->transform(param_store().get(prefix_ + ".locs." + s.proto.name)).detach();
  return out;
}

std::map<std::string, Tensor> AutoNormalCore::quantiles(const std::vector<float>& qs) const {
  NoGradGuard ng;
  std::map<std::string, Tensor> out;
  for (const LatentSite& s : sites_) {
    const auto [loc, scale] = loc_and_scale(s.proto.name);
    Shape qshape(static_cast<size_t>(loc.dim()) + 1, 1);
    qshape[0] = static_cast<int64_t>(qs.size());
    const Tensor z = ndtri(quantile_levels(qs, prefix_, loc.device()).reshape(qshape));
    out[s.proto.name] = s.support->transform(loc + scale * z).detach();
  }
  return out;
}

std::pair<Tensor, Tensor> AutoNormalCore::loc_and_scale(const std::string& name) const {
  const LatentSite& s = site(name);
  return {param_store().get(prefix_ + ".locs." + s.proto.name), param_store().get(prefix_ + ".scales." + s.proto.name)};
}

// ---- AutoDelta ---------------------------------------------------------------------

AutoDeltaCore::AutoDeltaCore(AutoGuideOptions o) : AutoGuideCore("AutoDelta", std::move(o), init_to_median()) {}

void AutoDeltaCore::create_params() {
  for (const LatentSite& s : sites_)
    param_store().param(prefix_ + "." + s.proto.name, std::function<Tensor()>([&s] { return s.init_value; }),
                        s.support);
}

std::map<std::string, Tensor> AutoDeltaCore::run() {
  const auto idx = draw_plates();
  std::map<std::string, Tensor> out;
  for (const LatentSite& s : sites_) {
    const Tensor v = param_in_plates(s, prefix_ + "." + s.proto.name,
                                     std::function<Tensor()>([&s] { return s.init_value; }), s.support, s.event_dim,
                                     idx);
    out[s.proto.name] = sample_in_plates(s, dist::Delta(v, 0.0f, s.event_dim), idx);
  }
  return out;
}

std::map<std::string, Tensor> AutoDeltaCore::median() const {
  std::map<std::string, Tensor> out;
  for (const LatentSite& s : sites_) out[s.proto.name] = param_store().get(prefix_ + "." + s.proto.name);
  return out;
}

std::map<std::string, Tensor> AutoDeltaCore::quantiles(const std::vector<float>& qs) const {
  std::map<std::string, Tensor> out;
  for (auto& [name, v] : median()) {
    quantile_levels(qs, prefix_, v.device());
    Shape shape = v.shape();
    shape.insert(shape.begin(), static_cast<int64_t>(qs.size()));
    out[name] = v.unsqueeze(0).expand(shape).clone();
  }
  return out;
}

// ---- AutoDiscreteParallel ----------------------------------------------------------

namespace {
using DiscreteKind = AutoDiscreteParallelCore::DiscreteKind;

DiscreteKind discrete_kind(const Site& s) {
  const dist::Distribution& d = *s.fn;
  CUVI_CHECK(d.has_enumerate_support(), ValueError,
             "AutoDiscreteParallel: site '" << s.name << "' (" << d.name()
                                            << ") is not Bernoulli, Categorical or OneHotCategorical");
  if (d.support()->name() == "boolean") return DiscreteKind::kBernoulli;
  if (d.event_dim() == 1) return DiscreteKind::kOneHot;
  return DiscreteKind::kCategorical;
}

// The prior's probabilities at the prototype's shape: batch [+ K] (K for
// Categorical and OneHotCategorical), from log_prob over the support, so
// any parameterisation and any wrapper (expanded to its plates, masked)
// gives them.
Tensor prior_probs(const Site& s, DiscreteKind kind) {
  NoGradGuard ng;
  dist::detail::SiteScope scope(s.name);
  const dist::Distribution& d = *s.fn;
  const Tensor vals = d.support_values();  // [K] + event
  const int64_t K = vals.size(0);
  const int bd = static_cast<int>(d.batch_shape().size());
  Shape vs = {K};
  for (int i = 0; i < bd; ++i) vs.push_back(1);
  for (int i = 1; i < vals.dim(); ++i) vs.push_back(vals.size(i));
  Shape full = {K};
  const Shape b = d.batch_shape();
  full.insert(full.end(), b.begin(), b.end());
  const Tensor lp = d.log_prob(vals.reshape(vs)).expand(full);  // [K] + batch
  // Normalised over the support (a masked-out element's log_prob is 0 for
  // every value: uniform there).
  const Tensor p = exp(lp - logsumexp(lp, {0}, true));
  if (kind == DiscreteKind::kBernoulli) return narrow(p, 0, 1, 1).reshape(d.batch_shape()).clone();
  std::vector<int64_t> perm;
  for (int i = 1; i <= bd; ++i) perm.push_back(i);
  perm.push_back(0);
  return permute(p, perm).clone();  // batch + [K]
}
}  // namespace

AutoDiscreteParallelCore::AutoDiscreteParallelCore(AutoGuideOptions o)
    : AutoGuideCore("AutoDiscreteParallel", std::move(o), init_to_sample()) {}

bool AutoDiscreteParallelCore::takes(const Site& s) const {
  CUVI_CHECK(s.fn->is_discrete() || s.fn->support()->is_discrete(), ValueError,
             cls_ << ": latent site '" << s.name << "' is continuous (" << s.fn->name()
                  << "); this guide takes discrete sites only (give the others to another autoguide: "
                     "AutoGuideList with poutine::block)");
  (void)discrete_kind(s);  // refuses the families it cannot follow
  return true;
}

void AutoDiscreteParallelCore::create_params() {
  parts_.clear();
  for (const LatentSite& s : sites_) {
    const DiscreteKind kind = discrete_kind(s.proto);
    Tensor init = prior_probs(s.proto, kind);
    {
      NoGradGuard ng;
      init = periodic_repeat(init, s.proto, s.batch_ndim);  // full size along subsampled plates
    }
    parts_.push_back({kind, init.detach()});
    param_store().param(prefix_ + "." + s.proto.name + "_probs",
                        std::function<Tensor()>([t = parts_.back().init] { return t; }),
                        kind == DiscreteKind::kBernoulli ? constraints::unit_interval : constraints::simplex);
  }
}

std::map<std::string, Tensor> AutoDiscreteParallelCore::run() {
  const auto idx = draw_plates();
  std::map<std::string, Tensor> out;
  for (size_t i = 0; i < sites_.size(); ++i) {
    const LatentSite& s = sites_[i];
    const DiscreteKind kind = parts_[i].kind;
    const bool bern = kind == DiscreteKind::kBernoulli;
    const Tensor init = parts_[i].init;
    const Tensor probs = param_in_plates(s, prefix_ + "." + s.proto.name + "_probs",
                                         std::function<Tensor()>([init] { return init; }),
                                         bern ? constraints::unit_interval : constraints::simplex, bern ? 0 : 1, idx);
    const dist::Dist q = bern ? dist::Dist(dist::Bernoulli(probs))
                              : (kind == DiscreteKind::kCategorical ? dist::Dist(dist::Categorical(probs).clone())
                                                                    : dist::Dist(dist::OneHotCategorical(probs).clone()));
    out[s.proto.name] = sample_in_plates(s, q, idx, Infer{"parallel"});
  }
  return out;
}

// The mode of each site's guide distribution (Bernoulli: probs > 1/2).
std::map<std::string, Tensor> AutoDiscreteParallelCore::median() const {
  NoGradGuard ng;
  std::map<std::string, Tensor> out;
  for (size_t i = 0; i < sites_.size(); ++i) {
    const LatentSite& s = sites_[i];
    const DiscreteKind kind = parts_[i].kind;
    const Tensor probs = param_store().get(prefix_ + "." + s.proto.name + "_probs");
    const auto pv = probs.to(Device::cpu()).to_vector();
    if (kind == DiscreteKind::kBernoulli) {
      std::vector<float> m(pv.size());
      for (size_t i = 0; i < pv.size(); ++i) m[i] = pv[i] > 0.5f ? 1.0f : 0.0f;
      out[s.proto.name] = tensor(m, probs.shape(), probs.device());
      continue;
    }
    const size_t K = static_cast<size_t>(probs.size(-1)), rows = pv.size() / K;
    std::vector<float> m(kind == DiscreteKind::kOneHot ? pv.size() : rows, 0.0f);
    for (size_t r = 0; r < rows; ++r) {
      size_t best = 0;
      for (size_t k = 1; k < K; ++k)
        if (pv[r * K + k] > pv[r * K + best]) best = k;
      if (kind == DiscreteKind::kOneHot) m[r * K + best] = 1.0f;
      else m[r] = static_cast<float>(best);
    }
    Shape shape = probs.shape();
    if (kind == DiscreteKind::kCategorical) shape.pop_back();
    out[s.proto.name] = tensor(m, shape, probs.device());
  }
  return out;
}

// ---- AutoContinuous ------------------------------------------------------------------

AutoContinuousCore::AutoContinuousCore(std::string cls, AutoGuideOptions o)
    : AutoGuideCore(std::move(cls), std::move(o), init_to_median()) {}

void AutoContinuousCore::create_params() {
  std::vector<Tensor> parts;
  dim_ = 0;
  for (const LatentSite& s : sites_) {
    NoGradGuard ng;
    Tensor u = s.support->inverse(s.init_value).detach();
    dim_ += u.numel();
    parts.push_back(u.reshape({u.numel()}));
  }
  CUVI_CHECK(dim_ > 0, ValueError, cls_ << ": the model has no latent sites");
  Tensor init_loc;
  {
    NoGradGuard ng;
    init_loc = parts.size() == 1 ? parts[0] : cat(parts, 0);
  }
  init_loc_ = init_loc.detach();
  create_posterior_params();
}

// The latent may carry batch dims of its own: under vectorized particles
// the particle plate expands it to [P, 1, ..., 1, D] (the particle dim at
// -(max_plate_nesting + 1)). Each site keeps the leading ones its own
// batch dims do not cover, so its particle dim lands where the model's
// site has it: [P, 1, .., 1] + the site's unconstrained shape.
std::map<std::string, Tensor> AutoContinuousCore::unpack(const Tensor& latent) const {
  const Shape prefix(latent.shape().begin(), latent.shape().end() - 1);
  std::map<std::string, Tensor> out;
  int64_t off = 0;
  for (const LatentSite& s : sites_) {
    const int64_t n = shape_numel(s.uncon_shape);
    const size_t keep = prefix.size() > static_cast<size_t>(s.batch_ndim) ? prefix.size() - s.batch_ndim : 0;
    Shape shape(prefix.begin(), prefix.begin() + static_cast<std::ptrdiff_t>(keep));
    shape.insert(shape.end(), s.uncon_shape.begin(), s.uncon_shape.end());
    out[s.proto.name] = narrow(latent, -1, off, n).reshape(shape);
    off += n;
  }
  return out;
}

std::map<std::string, Tensor> AutoContinuousCore::run() {
  const auto idx = draw_plates();  // none subsampled; kept for symmetry
  const Tensor latent = sample("_" + prefix_ + "_latent", dist::Dist(posterior()));
  const auto us = unpack(latent);
  std::map<std::string, Tensor> out;
  for (const LatentSite& s : sites_) {
    const Tensor& u = us.at(s.proto.name);
    Tensor x = s.support->transform(u);
    // log|du/dx| = -log|dx/du|, summed over the site's event dims.
    Tensor ladj = s.support->log_abs_det_jacobian(u, x);
    ladj = sum_rightmost(ladj, ladj.dim() - (x.dim() - s.event_dim));
    out[s.proto.name] = sample_in_plates(s, dist::Delta(x, -ladj, s.event_dim), idx);
  }
  return out;
}

std::map<std::string, Tensor> AutoContinuousCore::median() const {
  NoGradGuard ng;
  const auto us = unpack(param_store().get(prefix_ + ".loc"));
  std::map<std::string, Tensor> out;
  for (const LatentSite& s : sites_) out[s.proto.name] = s.support->transform(us.at(s.proto.name)).detach();
  return out;
}

std::map<std::string, Tensor> AutoContinuousCore::quantiles(const std::vector<float>& qs) const {
  NoGradGuard ng;
  const dist::DistPtr post = posterior();
  const Tensor loc = post->mean().detach(), scale = sqrt(post->variance()).detach();
  const Tensor levels = quantile_levels(qs, prefix_, loc.device());
  const Tensor u = loc + scale * ndtri(levels.unsqueeze(-1));  // [Q, D]
  std::map<std::string, std::vector<Tensor>> rows;
  for (int64_t i = 0; i < static_cast<int64_t>(qs.size()); ++i) {
    const auto us = unpack(narrow(u, 0, i, 1).squeeze(0));
    for (const LatentSite& s : sites_) rows[s.proto.name].push_back(s.support->transform(us.at(s.proto.name)));
  }
  std::map<std::string, Tensor> out;
  for (auto& [name, r] : rows) out[name] = stack(r, 0).detach();
  return out;
}

// The posterior params' initial values, as lazy inits: evaluated when the
// params are created at setup, and again only if they have gone from the
// store since (a failed first step takes back what it created; a cleared
// store), so the guide recreates them instead of failing.
std::function<Tensor()> AutoContinuousCore::loc_init() const {
  const Tensor l = init_loc_;
  return [l] { return l; };
}
std::function<Tensor()> AutoContinuousCore::scale_init(bool tril) const {
  const float sc = o_.init_scale;
  const int64_t d = dim_;
  const Device dev = init_loc_.device();
  return [sc, d, dev, tril] { return tril ? diag_embed(full({d}, sc, dev)) : full({d}, sc, dev); };
}

void AutoDiagonalNormalCore::create_posterior_params() {
  param_store().param(prefix_ + ".loc", loc_init());
  param_store().param(prefix_ + ".scale", scale_init(false), constraints::softplus_positive);
}

dist::DistPtr AutoDiagonalNormalCore::posterior() const {
  Tensor loc = param(prefix_ + ".loc", loc_init());
  Tensor scale = param(prefix_ + ".scale", scale_init(false), constraints::softplus_positive);
  return dist::Normal(loc, scale).to_event(1).ptr();
}

void AutoMultivariateNormalCore::create_posterior_params() {
  param_store().param(prefix_ + ".loc", loc_init());
  param_store().param(prefix_ + ".scale_tril", scale_init(true), constraints::lower_cholesky);
}

dist::DistPtr AutoMultivariateNormalCore::posterior() const {
  Tensor loc = param(prefix_ + ".loc", loc_init());
  Tensor L = param(prefix_ + ".scale_tril", scale_init(true), constraints::lower_cholesky);
  return std::make_shared<dist::MultivariateNormal>(loc, L);
}

int64_t AutoLowRankMultivariateNormalCore::rank() const {
  CUVI_CHECK(o_.rank >= 0, ValueError, cls_ << ": rank must be >= 0 (0: automatic), got " << o_.rank);
  if (o_.rank > 0) return o_.rank;
  return std::max<int64_t>(1, static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(dim_)))));
}

std::function<Tensor()> AutoLowRankMultivariateNormalCore::factor_init() const {
  const int64_t d = dim_, r = rank();
  const float sc = o_.init_scale * static_cast<float>(std::sqrt(0.5 / static_cast<double>(r)));
  const Device dev = init_loc_.device();
  return [d, r, sc, dev] {
    NoGradGuard ng;
    return (randn({d, r}, dev) * sc).detach();
  };
}

void AutoLowRankMultivariateNormalCore::create_posterior_params() {
  param_store().param(prefix_ + ".loc", loc_init());
  param_store().param(prefix_ + ".cov_factor", factor_init());
  param_store().param(prefix_ + ".scale", diag_init(), constraints::softplus_positive);
}

std::function<Tensor()> AutoLowRankMultivariateNormalCore::diag_init() const {
  const float sc = o_.init_scale * static_cast<float>(std::sqrt(0.5));
  const int64_t d = dim_;
  const Device dev = init_loc_.device();
  return [sc, d, dev] { return full({d}, sc, dev); };
}

dist::DistPtr AutoLowRankMultivariateNormalCore::posterior() const {
  Tensor loc = param(prefix_ + ".loc", loc_init());
  Tensor w = param(prefix_ + ".cov_factor", factor_init());
  Tensor s = param(prefix_ + ".scale", diag_init(), constraints::softplus_positive);
  // N(loc, (s W)(s W)^T + diag(s^2)) without a D x D matrix (Pyro's
  // LowRankMultivariateNormal(loc, s W, s^2)).
  return std::make_shared<dist::LowRankMultivariateNormal>(loc, s.unsqueeze(-1) * w, s * s);
}

// ---- AutoNormalizingFlow and AutoIAFNormal -------------------------------------------

void AutoFlowCore::create_posterior_params() {
  ts_ = make_transforms();
  CUVI_CHECK(!ts_.empty(), ValueError, cls_ << ": no transforms");
  for (size_t k = 0; k < ts_.size(); ++k) {
    const auto& t = ts_[k];
    CUVI_CHECK(t != nullptr, ValueError, cls_ << ": transform " << k << " is null");
    CUVI_CHECK(t->event_dim() <= 1 && t->codomain_event_dim() <= 1 && t->forward_shape({dim_}) == Shape{dim_},
               ValueError,
               cls_ << ": transform " << k << " (" << t->name() << ") must map the flat latent vector ["
                    << dim_ << "] to a vector of the same size");
  }
  const Device dev = init_loc_.device();
  base_ = dist::Normal(zeros({dim_}, dev), ones({dim_}, dev)).to_event(1).ptr();
  // The store's leaves are created from the nets' initial weights by the
  // first module() call (in posterior()), as for any net.
}

dist::DistPtr AutoFlowCore::posterior() const {
  for (size_t k = 0; k < ts_.size(); ++k)
    if (nn::Module* net = ts_[k]->module()) module(module_name(k), *net);
  return std::make_shared<dist::TransformedDistribution>(base_, ts_);
}

std::map<std::string, Tensor> AutoFlowCore::median() const {
  NoGradGuard ng;
  Tensor x = zeros({dim_}, init_loc_.device());
  for (size_t k = 0; k < ts_.size(); ++k) {
    // The store's current values (a load may have replaced the leaves).
    if (nn::Module* net = ts_[k]->module())
      for (const auto& [pname, value] : net->named_parameters()) {
        const std::string site = module_name(k) + kModuleNameSeparator + pname;
        if (param_store().contains(site)) net->set_parameter(pname, param_store().get(site));
      }
    x = ts_[k]->forward(x);
  }
  const auto us = unpack(x.detach());
  std::map<std::string, Tensor> out;
  for (const LatentSite& s : sites_) out[s.proto.name] = s.support->transform(us.at(s.proto.name)).detach();
  return out;
}

std::map<std::string, Tensor> AutoFlowCore::quantiles(const std::vector<float>&) const {
  CUVI_THROW(ValueError, prefix_ << ".quantiles(): " << cls_
                                 << "'s flows have no closed-form marginals (take quantiles of Predictive's draws instead)");
}

std::vector<dist::transforms::TransformPtr> AutoNormalizingFlowCore::make_transforms() {
  CUVI_CHECK(o_.init_transform_fn != nullptr, ValueError,
             cls_ << ": options.init_transform_fn is required (it makes the transforms, given the latent dimension)");
  return o_.init_transform_fn(dim_, init_loc_.device());
}

std::vector<dist::transforms::TransformPtr> AutoIAFNormalCore::make_transforms() {
  CUVI_CHECK(o_.num_transforms >= 1, ValueError,
             cls_ << ": num_transforms must be at least 1, got " << o_.num_transforms);
  flows_.clear();
  std::vector<dist::transforms::TransformPtr> ts;
  for (int k = 0; k < o_.num_transforms; ++k) {
    nn::AutoRegressiveNNOptions arn;
    for (int64_t i = 0; i < dim_; ++i) arn.permutation.push_back(k % 2 == 0 ? i : dim_ - 1 - i);
    flows_.push_back(
        dist::transforms::affine_autoregressive(dim_, o_.hidden_dims, o_.iaf, std::move(arn), init_loc_.device()));
    ts.push_back(flows_.back());
  }
  return ts;
}

// ---- AutoLaplaceApproximation ----------------------------------------------------------

void AutoLaplaceApproximationCore::create_posterior_params() { param_store().param(prefix_ + ".loc", loc_init()); }

dist::DistPtr AutoLaplaceApproximationCore::posterior() const {
  return std::make_shared<dist::Delta>(param(prefix_ + ".loc", loc_init()), 0.0f, 1);
}

std::pair<Tensor, Tensor> AutoLaplaceApproximationCore::laplace(
    const std::function<Tensor(const Tensor&)>& loss_at) const {
  const Tensor loc = param_store().get(prefix_ + ".loc").detach();
  const Device dev = loc.device();
  const int64_t d = loc.numel();
  const std::vector<float> u0 = loc.to_vector();
  auto grad_at = [&](const std::vector<float>& u) {
    Tensor leaf = tensor(u, {d}, dev).requires_grad_();
    loss_at(leaf).backward();
    CUVI_CHECK(leaf.grad().defined(), ValueError, cls_ << ".laplace_approximation: the loss does not depend on "
                                                       << prefix_ << ".loc");
    const std::vector<float> g = leaf.grad().to_vector();
    return std::vector<double>(g.begin(), g.end());
  };
  std::vector<std::vector<double>> h(static_cast<size_t>(d), std::vector<double>(static_cast<size_t>(d)));
  for (int64_t j = 0; j < d; ++j) {
    const double step = 1e-3 * std::max(1.0, std::fabs(static_cast<double>(u0[j])));
    std::vector<float> up = u0, down = u0;
    up[j] = static_cast<float>(u0[j] + step);
    down[j] = static_cast<float>(u0[j] - step);
    const double width = static_cast<double>(up[j]) - static_cast<double>(down[j]);  // the steps as rounded
    const auto gp = grad_at(up), gm = grad_at(down);
    for (int64_t i = 0; i < d; ++i) h[i][j] = (gp[i] - gm[i]) / width;
  }
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < i; ++j) h[i][j] = h[j][i] = 0.5 * (h[i][j] + h[j][i]);
  // H = C C^T (Cholesky), H^-1 = C^-T C^-1, then the Cholesky factor of H^-1.
  auto cholesky = [&](std::vector<std::vector<double>> a, const char* what) {
    for (int64_t j = 0; j < d; ++j) {
      for (int64_t k = 0; k < j; ++k) a[j][j] -= a[j][k] * a[j][k];
      CUVI_CHECK(a[j][j] > 0 && std::isfinite(a[j][j]), ValueError,
                 cls_ << ".laplace_approximation: the " << what << " is not positive definite (pivot " << j
                      << " of " << d << "); the guide's loc is not at a mode of the posterior: train longer");
      a[j][j] = std::sqrt(a[j][j]);
      for (int64_t i = j + 1; i < d; ++i) {
        for (int64_t k = 0; k < j; ++k) a[i][j] -= a[i][k] * a[j][k];
        a[i][j] /= a[j][j];
      }
      for (int64_t k = j + 1; k < d; ++k) a[j][k] = 0;
    }
    return a;
  };
  const auto c = cholesky(h, "Hessian");
  // C^-1 by forward substitution, column by column.
  std::vector<std::vector<double>> ci(static_cast<size_t>(d), std::vector<double>(static_cast<size_t>(d), 0.0));
  for (int64_t col = 0; col < d; ++col)
    for (int64_t i = col; i < d; ++i) {
      double v = i == col ? 1.0 : 0.0;
      for (int64_t k = col; k < i; ++k) v -= c[i][k] * ci[k][col];
      ci[i][col] = v / c[i][i];
    }
  std::vector<std::vector<double>> cov(static_cast<size_t>(d), std::vector<double>(static_cast<size_t>(d), 0.0));
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j)
      for (int64_t k = std::max(i, j); k < d; ++k) cov[i][j] += ci[k][i] * ci[k][j];
  const auto l = cholesky(cov, "inverse Hessian");
  std::vector<float> lf(static_cast<size_t>(d * d));
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) lf[static_cast<size_t>(i * d + j)] = static_cast<float>(l[i][j]);
  return {loc, tensor(lf, {d, d}, dev)};
}

}  // namespace detail
}  // namespace cuvi::infer
