#include "infer.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <optional>

#include "../runtime/backend.hpp"

namespace cuvi::infer {

namespace {

Tensor site_term(const Site& s, float coef) {
  dist::detail::SiteScope scope(s.name);
  if (s.mask.defined()) return sum(where(s.mask, s.fn->log_prob(s.value), zeros({}, s.mask.device()))) * coef;
  return s.fn->log_prob_sum(s.value, coef);
}

void add_to(Tensor& acc, const Tensor& t) { acc = acc.defined() ? acc + t : t; }

void collect_params(const Trace& t, optim::NamedParams& out, std::set<std::string>& seen) {
  for (const Site& s : t.sites())
    if (s.type == SiteType::kParam && s.unconstrained.defined() && seen.insert(s.name).second)
      out.emplace_back(s.name, s.unconstrained);
}

bool is_latent(const Site& s) { return s.type == SiteType::kSample && !s.is_observed && !s.is_subsample; }

}  // namespace

namespace {

// One (log q - log p)-type term of a particle, per element, detached and
// scaled (loss orientation: +log q, -log p), for score-function costs.
struct CostTerm {
  Tensor value;
  const std::vector<Frame>* frames;
  int guide_idx = -1;  // position among the guide's latent sites (-1: none)
  int model_idx = -1;  // position among the model's sample sites (-1: none)
};

// Sums t over every dim that is not a plate of `target` shared with the
// term (same plate name at the same dim): Pyro's MultiFrameTensor.sum_to.
// Kept dims stay in place (keepdim), so terms broadcast against the site.
// Only vectorized plates have dims (Pyro's get_plate_stacks): a sequential
// plate's iterations are kept apart, where at all, by which terms enter.
Tensor reduce_to(const Tensor& t, const std::vector<Frame>& term_frames, const std::vector<Frame>& target) {
  const int64_t nd = t.dim();
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < nd; ++d) {
    if (t.size(d) == 1) continue;
    const int neg = static_cast<int>(d - nd);
    bool keep = false;
    for (const Frame& f : target) {
      if (!f.vectorized || f.dim != neg) continue;
      for (const Frame& g : term_frames)
        if (g.vectorized && g.dim == neg && g.name == f.name) keep = true;
    }
    if (!keep) dims.push_back(d);
  }
  return dims.empty() ? t : sum(t, dims, true);
}

bool has_vectorized_frame(const std::vector<Frame>& fs) {
  return std::any_of(fs.begin(), fs.end(), [](const Frame& f) { return f.vectorized; });
}

// The sequential-plate iterations a site sits in: (plate name, counter).
using SeqKey = std::vector<std::pair<std::string, int64_t>>;

SeqKey seq_key(const std::vector<Frame>& fs) {
  SeqKey k;
  for (const Frame& f : fs)
    if (!f.vectorized) k.emplace_back(f.name, f.counter);
  return k;
}

// Pyro's dense trace graph (poutine/util.py identify_dense_edges): an earlier
// sample site is a parent of a later one unless both sit in one sequential
// plate in different iterations. (Pyro pairs the two frame stacks position
// by position; matching by plate name is the same for stacks that agree on
// their outer plates, and also keeps apart sites whose stacks differ there.)
bool may_depend(const SeqKey& a, const SeqKey& b) {
  for (const auto& [n, c] : a)
    for (const auto& [m, d] : b)
      if (n == m && c != d) return false;
  return true;
}

// Interns keys: sites of one iteration share an id, so a dependency test
// compares ids against the few distinct keys met so far.
struct SeqKeys {
  std::map<SeqKey, int> ids;
  std::vector<SeqKey> keys;
  int id(const std::vector<Frame>& fs) {
    SeqKey k = seq_key(fs);
    auto [it, added] = ids.emplace(std::move(k), static_cast<int>(keys.size()));
    if (added) keys.push_back(it->first);
    return it->second;
  }
  // Whether a site with key b may depend on some site whose key is in `set`.
  bool any_parent(const std::vector<int>& set, int b) const {
    for (int a : set)
      if (a == b || may_depend(keys[static_cast<size_t>(a)], keys[static_cast<size_t>(b)])) return true;
    return false;
  }
};

void add_key(std::vector<int>& set, int k) {
  if (std::find(set.begin(), set.end(), k) == set.end()) set.push_back(k);
}

// log_prob with the site's mask: 0 where it is 0 (a select, so a -inf
// log-density there gives 0, not NaN).
Tensor masked_log_prob(const Site& s) {
  dist::detail::SiteScope scope(s.name);
  Tensor lp = s.fn->log_prob(s.value);
  return s.mask.defined() ? where(s.mask, lp, zeros({}, lp.device())) : lp;
}

}  // namespace

namespace {
// One traced run of guide and model (the model replaying the guide), with
// no gradient and the generator put back afterwards, so that looking does
// not shift the draws that follow; max_plate_nesting is Pyro's
// guess_max_plate_nesting: the deepest vectorised plate of either trace
// (sequential plates take no dim).
struct ProbeRun {
  Trace guide, model;
  int max_plate_nesting = 0;
};

ProbeRun probe_run(const Program& model, const Program& guide) {
  struct RestoreRng {
    RngState saved = get_rng_state();
    ~RestoreRng() { set_rng_state(saved); }
  } restore;
  NoGradGuard ng;
  ProbeRun r;
  r.guide = poutine::trace(guide).get_trace();
  r.model = poutine::trace(poutine::replay(model, r.guide)).get_trace();
  for (const Trace* t : {&r.guide, &r.model})
    for (const Site& s : t->sites())
      for (const Frame& f : s.frames)
        if (f.vectorized) r.max_plate_nesting = std::max(r.max_plate_nesting, -f.dim);
  return r;
}
}  // namespace

int ELBO::plate_nesting(const Program& model, const Program& guide) const {
  if (o_.max_plate_nesting >= 0) return o_.max_plate_nesting;
  if (mpn_ < 0) mpn_ = probe_run(model, guide).max_plate_nesting;
  return mpn_;
}

namespace {
// Model and guide, each run inside the vectorised particles' plate (size
// p at `dim`). They refer to model and guide: use them while those live.
std::pair<Program, Program> in_particle_plate(const Program& model, const Program& guide, int p, int dim) {
  return {[&model, p, dim] {
            Plate pl(ELBO::kParticlePlate, p, 0, dim);
            model();
          },
          [&guide, p, dim] {
            Plate pl(ELBO::kParticlePlate, p, 0, dim);
            guide();
          }};
}

// Puts back the param-store entries an evaluation changed (newest first).
void undo_store(const ELBOResult& r) {
  ParamStore& ps = param_store();
  for (auto it = r.store_undo.rbegin(); it != r.store_undo.rend(); ++it) {
    if (it->second.defined()) ps.set(it->first, it->second);
    else ps.erase(it->first);
  }
}
}  // namespace

ELBOResult ELBO::compute(const Program& model, const Program& guide) const {
  CUVI_CHECK(o_.num_particles >= 1, ValueError, "ELBO: num_particles must be >= 1, got " << o_.num_particles);
  ELBOResult r;
  const uint64_t created = param_store().creation_mark();
  try {
    std::set<std::string> seen;
    const int P = o_.num_particles;
    const float inv_p = 1.0f / static_cast<float>(P);
    if (o_.vectorize_particles) {
      const int dim = -(plate_nesting(model, guide) + 1);
      const auto [vm, vg] = in_particle_plate(model, guide, P, dim);
      particle(vm, vg, inv_p, dim, r, seen);
    } else {
      for (int k = 0; k < P; ++k) particle(model, guide, inv_p, 0, r, seen);
    }
  } catch (...) {
    undo_store(r);  // an evaluation that throws changes nothing:
    param_store().erase_created_since(created);  // not even the params it created
    throw;
  }
  return r;
}

void ELBO::particle(const Program& model, const Program& guide, float inv_p, int particle_dim, ELBOResult& r,
                    std::set<std::string>& seen) const {
  const Trace guide_trace = poutine::trace(guide).get_trace();
  const Trace model_trace = poutine::trace(poutine::replay(model, guide_trace)).get_trace();
  collect_params(guide_trace, r.params, seen);
  collect_params(model_trace, r.params, seen);
  // The loss is a sum of per-site terms coef * sum(log_prob): -scale for the
  // model, +scale for the guide. Every term is one fused pass that also
  // writes its gradients (family kernels), so backward() only chains them.
  Tensor loss;
  std::set<std::string> kl_done;
  for (const Site& s : model_trace.sites()) {
    if (s.type != SiteType::kSample || s.is_subsample) continue;
    if (analytic_kl() && !s.is_observed && guide_trace.contains(s.name)) {
      const Site& q = guide_trace.site(s.name);
      if (!q.mask.defined() && !s.mask.defined() && dist::has_kl(*q.fn, *s.fn)) {
        dist::detail::SiteScope scope(s.name);
        add_to(loss, sum(dist::kl_divergence(*q.fn, *s.fn)) * (s.scale * inv_p));
        kl_done.insert(s.name);
        continue;
      }
    }
    add_to(loss, site_term(s, -s.scale * inv_p));
  }
  std::vector<const Site*> score_sites;
  for (const Site& s : guide_trace.sites()) {
    if (!is_latent(s) || kl_done.count(s.name)) continue;
    add_to(loss, site_term(s, s.scale * inv_p));
    if (!s.fn->has_rsample()) score_sites.push_back(&s);
  }
  if (!loss.defined()) loss = zeros({}, default_device());
  Tensor surrogate = loss;
  if (!score_sites.empty()) {
    // Score function: E_q[f] has gradient E_q[f grad log q]; its surrogate
    // is sum(log q(z) * cost.detach()), the cost being the part of the
    // particle's loss that z can influence (see ScoreCost).
    const ScoreCost mode = score_cost();
    // The particle's unscaled loss (sequential particles: inv_p = 1 / P).
    const Tensor whole = loss.detach() * std::round(1.0f / inv_p);
    // Per-element terms, built on first need only.
    std::vector<CostTerm> terms;
    std::map<std::string, int> guide_pos, model_pos;
    // kGraph: per guide latent / model sample site, in order, its
    // sequential-plate key and (model) the guide position of the same name.
    SeqKeys keys;
    std::vector<int> guide_key, model_key, model_guide_idx;
    bool built = false;
    auto build = [&] {
      if (built) return;
      built = true;
      NoGradGuard ng;
      int gi = 0, mi = 0;
      for (const Site& s : guide_trace.sites())
        if (is_latent(s)) {
          guide_pos[s.name] = gi++;
          guide_key.push_back(keys.id(s.frames));
        }
      for (const Site& s : model_trace.sites())
        if (s.type == SiteType::kSample && !s.is_subsample) {
          model_pos[s.name] = mi++;
          model_key.push_back(keys.id(s.frames));
          auto g = guide_pos.find(s.name);
          model_guide_idx.push_back(g == guide_pos.end() ? -1 : g->second);
        }
      for (const Site& s : model_trace.sites()) {
        if (s.type != SiteType::kSample || s.is_subsample) continue;
        CostTerm t;
        t.frames = &s.frames;
        t.model_idx = model_pos.at(s.name);
        if (kl_done.count(s.name)) {
          dist::detail::SiteScope scope(s.name);
          t.value = dist::kl_divergence(*guide_trace.site(s.name).fn, *s.fn) * s.scale;
          t.guide_idx = guide_pos.count(s.name) ? guide_pos.at(s.name) : -1;
        } else {
          t.value = masked_log_prob(s) * (-s.scale);
        }
        terms.push_back(std::move(t));
      }
      for (const Site& s : guide_trace.sites()) {
        if (!is_latent(s) || kl_done.count(s.name)) continue;
        CostTerm t;
        t.frames = &s.frames;
        t.guide_idx = guide_pos.at(s.name);
        t.value = masked_log_prob(s) * s.scale;
        terms.push_back(std::move(t));
      }
    };
    for (const Site* s : score_sites) {
      Tensor cost;
      if (mode == ScoreCost::kGraph) {
        build();
        // Pyro's _compute_downstream_costs on the dense graphs: D = s and its
        // descendants in the guide (a later guide site is one when some site
        // of D may be its parent); the cost takes log q - log p of every site
        // of D and log p of every model site that is a child in the model of
        // a site of D. Without sequential plates every later site qualifies.
        const size_t ng_sites = guide_key.size(), nm_sites = model_key.size();
        const int gs = guide_pos.at(s->name);
        std::vector<char> in_d(ng_sites, 0), in_m(nm_sites, 0);
        std::vector<int> d_keys{guide_key[static_cast<size_t>(gs)]};
        in_d[static_cast<size_t>(gs)] = 1;
        for (size_t g = static_cast<size_t>(gs) + 1; g < ng_sites; ++g)
          if (keys.any_parent(d_keys, guide_key[g])) {
            in_d[g] = 1;
            add_key(d_keys, guide_key[g]);
          }
        // Keys (model frames) of the sites of D met so far in model order.
        std::vector<int> parent_keys;
        for (size_t m = 0; m < nm_sites; ++m) {
          const int g = model_guide_idx[m];
          const bool own = g >= 0 && in_d[static_cast<size_t>(g)];
          in_m[m] = own || keys.any_parent(parent_keys, model_key[m]);
          if (own) add_key(parent_keys, model_key[m]);
        }
        NoGradGuard ng;
        for (const CostTerm& t : terms) {
          const bool take = t.model_idx >= 0 ? in_m[static_cast<size_t>(t.model_idx)] != 0
                                             : in_d[static_cast<size_t>(t.guide_idx)] != 0;
          if (take) add_to(cost, reduce_to(t.value, *t.frames, s->frames));
        }
        if (!cost.defined()) cost = zeros({}, default_device());
      } else if (particle_dim == 0 && (mode == ScoreCost::kWhole || !has_vectorized_frame(s->frames))) {
        cost = whole;  // nothing to keep apart: the whole particle loss
      } else {
        build();
        // kWhole under vectorised particles keeps only the particle plate.
        std::vector<Frame> particle_only;
        if (mode == ScoreCost::kWhole)
          for (const Frame& f : s->frames)
            if (f.name == kParticlePlate) particle_only.push_back(f);
        const std::vector<Frame>& target = mode == ScoreCost::kWhole ? particle_only : s->frames;
        NoGradGuard ng;
        for (const CostTerm& t : terms) add_to(cost, reduce_to(t.value, *t.frames, target));
      }
      cost = centre_cost(s->name, cost.detach(), particle_dim, r).detach();
      add_to(surrogate, sum(masked_log_prob(*s) * cost) * inv_p);
    }
  }
  add_to(r.loss, loss.detach());
  add_to(r.surrogate, surrogate);
}

Tensor TraceGraph_ELBO::baseline(const std::string& site) const {
  const ParamStore& ps = param_store();
  const std::string n = baseline_param_name(site);
  return ps.contains(n) ? ps.get(n) : Tensor();
}

Tensor TraceGraph_ELBO::centre_cost(const std::string& site, const Tensor& cost, int particle_dim,
                                    ELBOResult& r) const {
  if (!g_.use_decaying_avg_baseline) return cost;
  // The baseline averages over vectorised particles (they are i.i.d.).
  Tensor c = cost;
  if (particle_dim != 0 && c.dim() >= -particle_dim) c = mean(c, {c.dim() + particle_dim}, true);
  ParamStore& ps = param_store();
  const std::string name = baseline_param_name(site);
  Tensor prev = ps.contains(name) ? ps.unconstrained(name).detach() : Tensor();
  // A baseline of another shape or device (the plates changed) starts over.
  const Tensor old = prev.defined() && prev.shape() == c.shape() && prev.device() == c.device()
                         ? prev
                         : zeros(c.shape(), c.device());
  if (grad_enabled()) {
    NoGradGuard ng;
    r.store_undo.emplace_back(name, prev);
    ps.set(name, old * g_.baseline_beta + c * (1.0f - g_.baseline_beta));
  }
  return cost - old;
}

// ---- TraceEnum_ELBO ----------------------------------------------------------

namespace {

using PlateSet = std::set<std::string>;

PlateSet plate_set(const std::vector<Frame>& frames) {
  PlateSet out;
  for (const Frame& f : frames)
    if (f.vectorized) out.insert(f.name);
  return out;
}

std::string plates_str(const PlateSet& p) {
  std::string out = "{";
  for (const std::string& n : p) out += (out.size() > 1 ? ", " : "") + n;
  return out + "}";
}

// The shape of a sample site's log_prob: its value's batch dims broadcast
// with the distribution's batch shape.
Shape log_prob_shape(const Site& s) {
  Shape vb = s.value.shape();
  vb.resize(vb.size() - std::min(vb.size(), static_cast<size_t>(s.fn->event_dim())));
  return broadcast_shapes(vb, s.fn->batch_shape(), s.name.c_str());
}

// Dims (negative) of `shape` left of the plate dims (-mpn..-1) with size > 1.
std::vector<int> enum_dims_of(const Shape& shape, int mpn) {
  std::vector<int> out;
  const int n = static_cast<int>(shape.size());
  for (int d = -n; d < -mpn; ++d)
    if (shape[static_cast<size_t>(n + d)] > 1) out.push_back(d);
  return out;
}

// A log-factor of the contraction: the site's log_prob, masked, except an
// enumerated site's own, which stays whole: its values' probabilities sum
// to 1, so where the mask drops the observations that depend on it the
// variable sums out to factor 1 (the model without those elements), where
// a masked prior would sum to K (as Pyro, which leaves it unmasked).
Tensor enum_factor(const Site& s) {
  if (s.enum_dim == 0) return masked_log_prob(s);
  dist::detail::SiteScope scope(s.name);
  return s.fn->log_prob(s.value);
}

// A log-factor and the variables along its enumeration dims.
struct EnumFactor {
  Tensor t;
  std::map<int, std::string> vars;  // dim (negative) -> variable (its site's name)
  // Already multiplied by its site's scale: a factor over guide-enumerated
  // variables only, which no log-sum-exp touches (the expectation is linear
  // in it), so sites of different scales may meet there.
  bool scaled = false;
};

// Tensor variable elimination over plates (Pyro's contract_tensor_tree),
// with variables keyed by name rather than dim, so that markov loops may
// recycle dims: a factor's dims name the variables that held them when its
// site ran.
struct EnumContraction {
  int mpn = 0;
  std::map<std::string, PlateSet> var_plates;  // variable -> its site's plates
  std::map<std::string, size_t> var_order;     // variable -> creation index
  std::map<int, std::string> current;          // dim -> its variable at this point of the trace
  std::map<std::string, Frame> plates;         // plate name -> frame (dim, this step's size)
  std::map<PlateSet, std::vector<EnumFactor>> groups;
  std::map<PlateSet, std::string> group_site;  // a site of each group, for messages
  // With record: each elimination's joint factor before its log-sum-exp,
  // the variable summed out there and its dim, root last (infer_discrete
  // samples backwards through them).
  struct Step {
    Tensor t;
    std::string var;
    int dim = 0;
    std::map<int, std::string> vars;
  };
  bool record = false;
  // Max-product instead of sum-product (infer_discrete's MAP, Viterbi on a chain).
  bool maximise = false;
  std::vector<Step> steps;
  // Guide-enumerated variables: never summed out here; factors left holding
  // only them are costs (with their plates) for the guide's expectation.
  std::set<std::string> free;
  std::vector<std::pair<PlateSet, EnumFactor>> finals;

  // An enumerated site, in trace order (before its own factor).
  void declare(const Site& s) {
    var_plates[s.name] = plate_set(s.frames);
    var_order.emplace(s.name, var_order.size());
    current[s.enum_dim] = s.name;
  }
  // A site the guide enumerated (its dims are the model's from the replay).
  void declare_free(const Site& s) {
    declare(s);
    free.insert(s.name);
  }

  void add(const Site& s, Tensor logp, bool scaled = false) {
    const PlateSet ps = plate_set(s.frames);
    for (const Frame& f : s.frames)
      if (f.vectorized) plates.emplace(f.name, f);
    EnumFactor f{std::move(logp), {}, scaled};
    for (int d : enum_dims_of(f.t.shape(), mpn)) {
      const auto it = current.find(d);
      CUVI_CHECK(it != current.end(), ValueError,
                 "TraceEnum_ELBO: site '" << s.name << "' has log_prob shape " << shape_str(f.t.shape())
                                          << " with size " << f.t.size(d) << " at dim " << d
                                          << ", left of the plate dims (max_plate_nesting " << mpn
                                          << "), where no variable is enumerated");
      f.vars[d] = it->second;
    }
    groups[ps].push_back(std::move(f));
    group_site.emplace(ps, s.name);
  }

  // Sums variable v out of the factors that hold it (their log-sum, then a
  // log-sum-exp along v's dim); the result takes their place.
  void eliminate(std::vector<EnumFactor>& fs, const std::string& v) {
    EnumFactor joint;
    std::vector<EnumFactor> rest;
    for (EnumFactor& f : fs) {
      bool has = false;
      for (const auto& [d, u] : f.vars) has = has || u == v;
      if (!has) {
        rest.push_back(std::move(f));
        continue;
      }
      for (const auto& [d, u] : f.vars) {
        const auto [it, fresh] = joint.vars.emplace(d, u);
        CUVI_CHECK(fresh || it->second == u, ValueError,
                   "TraceEnum_ELBO: variables '" << it->second << "' and '" << u << "' share enumeration dim " << d
                                                 << " where their factors meet to sum out '" << v
                                                 << "': a site depends on a variable more than its markov loop's "
                                                    "history steps back (raise history)");
      }
      add_to(joint.t, f.t);
    }
    int vd = 0;
    for (const auto& [d, u] : joint.vars)
      if (u == v) vd = d;
    if (record) steps.push_back({joint.t.detach(), v, vd, joint.vars});
    joint.t = maximise ? amax(joint.t, {joint.t.dim() + vd}, true) : logsumexp(joint.t, {joint.t.dim() + vd}, true);
    joint.vars.erase(vd);
    rest.push_back(std::move(joint));
    fs = std::move(rest);
  }

  // The variables of fs enumerated in exactly the plates L, in creation order.
  std::vector<std::string> local_vars(const std::vector<EnumFactor>& fs, const PlateSet& L,
                                      const std::string& site) const {
    std::vector<std::string> local;
    for (const EnumFactor& f : fs)
      for (const auto& [d, u] : f.vars) {
        const PlateSet& vp = var_plates.at(u);
        if (vp == L) {
          if (!free.count(u) && std::find(local.begin(), local.end(), u) == local.end()) local.push_back(u);
          continue;
        }
        CUVI_CHECK(std::includes(L.begin(), L.end(), vp.begin(), vp.end()), ValueError,
                   "TraceEnum_ELBO: site '" << site << "' in plates " << plates_str(L)
                                            << " depends on the variable enumerated at site '" << u << "' in plates "
                                            << plates_str(vp) << ", which are not among them");
      }
    std::sort(local.begin(), local.end(),
              [this](const std::string& a, const std::string& b) { return var_order.at(a) < var_order.at(b); });
    return local;
  }

  // log sum over the enumerated variables of prod exp(factors), product over plates.
  Tensor run() {
    while (true) {
      auto deepest = groups.end();
      for (auto it = groups.begin(); it != groups.end(); ++it)
        if (!it->first.empty() && (deepest == groups.end() || it->first.size() > deepest->first.size())) deepest = it;
      if (deepest == groups.end()) break;
      const PlateSet L = deepest->first;
      const std::string site = group_site[L];
      std::vector<EnumFactor> fs = std::move(deepest->second);
      groups.erase(deepest);
      // Variables enumerated in exactly these plates are summed out here,
      // one at a time in the order they were created.
      for (const std::string& v : local_vars(fs, L, site)) eliminate(fs, v);
      // Each factor left joins its parent (Pyro's): the plates of the
      // variables it still holds, after the product over the other plates
      // of L. Variables from plates that do not nest (their plates make up
      // all of L) cannot be summed out by products over plates (Pyro:
      // tree-structured plates only).
      for (EnumFactor& f : fs) {
        PlateSet parent;
        bool has_model_var = false;
        for (const auto& [d, u] : f.vars) {
          parent.insert(var_plates.at(u).begin(), var_plates.at(u).end());
          has_model_var = has_model_var || !free.count(u);
        }
        if (parent == L && !has_model_var) {  // a cost over guide-enumerated variables local to L
          finals.emplace_back(L, std::move(f));
          continue;
        }
        if (parent == L) {
          std::string names;
          for (const auto& [d, u] : f.vars) names += (names.empty() ? "'" : ", '") + u + "'";
          CUVI_THROW(ValueError, "TraceEnum_ELBO: site '"
                                     << site << "' in plates " << plates_str(L)
                                     << " depends on variables enumerated in plates that do not nest (" << names
                                     << "), or on a model-enumerated variable outside them together with a "
                                        "guide-enumerated one inside; the contraction needs tree-structured plates "
                                        "and guide-enumerated variables no deeper than the model's they meet");
        }
        for (const std::string& p : L) {
          if (parent.count(p)) continue;
          const Frame& fr = plates.at(p);
          if (f.t.dim() >= -fr.dim && f.t.size(fr.dim) > 1) f.t = sum(f.t, {f.t.dim() + fr.dim}, true);
          else f.t = f.t * static_cast<float>(fr.subsample_size);  // a factor constant along the plate
        }
        group_site.emplace(parent, site);
        groups[parent].push_back(std::move(f));
      }
    }
    std::vector<EnumFactor> fs = std::move(groups[PlateSet{}]);
    for (const std::string& v : local_vars(fs, PlateSet{}, group_site[PlateSet{}])) eliminate(fs, v);
    Tensor total;
    for (EnumFactor& f : fs) {
      if (!f.vars.empty()) finals.emplace_back(PlateSet{}, std::move(f));  // only guide variables are left
      else add_to(total, sum(f.t));
    }
    return total;
  }
};

}  // namespace

ELBOResult TraceEnum_ELBO::compute(const Program& model, const Program& guide) const {
  CUVI_CHECK(o_.num_particles >= 1, ValueError,
             "TraceEnum_ELBO: num_particles must be >= 1, got " << o_.num_particles);
  ELBOResult r;
  const uint64_t created = param_store().creation_mark();
  try {
    const int mpn = plate_nesting(model, guide);
    std::set<std::string> seen;
    const int p = o_.num_particles;
    const float inv_p = 1.0f / static_cast<float>(p);
    if (o_.vectorize_particles) {
      // The particles as an outer plate at -(mpn + 1), a plate like the
      // others for the contraction (its product is the sum of the particles'
      // ELBOs); enumeration starts one dim further left.
      const auto [vm, vg] = in_particle_plate(model, guide, p, -(mpn + 1));
      enum_particle(vm, vg, mpn + 1, inv_p, r, seen);
    } else {
      for (int k = 0; k < p; ++k) enum_particle(model, guide, mpn, inv_p, r, seen);
    }
  } catch (...) {
    undo_store(r);
    param_store().erase_created_since(created);
    throw;
  }
  return r;
}

void TraceEnum_ELBO::enum_particle(const Program& model, const Program& guide, int mpn, float inv_p,
                                   ELBOResult& r, std::set<std::string>& seen) const {
  // Guide-side enumeration: the guide's sites marked enumerate = "parallel"
  // take their whole support along dims of their own from -(mpn + 1); the
  // model's enumeration starts left of them.
  poutine::EnumMessenger guide_enum(-(mpn + 1));
  const Trace guide_trace = poutine::trace([&] {
                              HandlerScope scope(&guide_enum);
                              guide();
                            }).get_trace();
  std::vector<const Site*> guide_vars;
  int model_first = -(mpn + 1);
  for (const Site& s : guide_trace.sites())
    if (s.enum_dim != 0) {
      guide_vars.push_back(&s);
      model_first = std::min(model_first, s.enum_dim - 1);
    }
  if (!guide_vars.empty())
    for (const Site& s : guide_trace.sites())
      CUVI_CHECK(!is_latent(s) || s.enum_dim != 0 || s.fn->has_rsample(), ValueError,
                 "TraceEnum_ELBO: guide site '" << s.name << "' (" << s.fn->name()
                                                << ") has no reparameterised sampler; with guide-side enumeration "
                                                   "every other guide latent must be reparameterised");
  poutine::EnumMessenger enum_handler(model_first);
  const Trace model_trace = poutine::trace([&] {
                              HandlerScope scope(&enum_handler);
                              poutine::replay(model, guide_trace)();
                            }).get_trace();
  collect_params(guide_trace, r.params, seen);
  collect_params(model_trace, r.params, seen);
  EnumContraction c;
  c.mpn = mpn;
  for (const Site* g : guide_vars) c.declare_free(*g);
  for (const Trace* t : {&guide_trace, &model_trace})
    for (const Site& s : t->sites())
      for (const Frame& f : s.frames)
        if (f.vectorized) c.plates.emplace(f.name, f);
  // E_q over the guide-enumerated variables of a cost C in plates L: the
  // sum of q(values) * C over every dim, q the product of the enumerated
  // guide sites in plates within L (their probabilities, not detached: the
  // expectation is exact, and its gradient reaches q's parameters). Along a
  // plate of L that the product does not vary over, the sum counts it once
  // per element of the plate.
  // Each enumerated guide site's log q and plates, computed once per particle.
  std::vector<std::pair<PlateSet, Tensor>> guide_logq;
  for (const Site* g : guide_vars) {
    dist::detail::SiteScope scope(g->name);
    guide_logq.emplace_back(plate_set(g->frames), g->fn->log_prob(g->value));
  }
  auto expectation = [&](const Tensor& cost, const PlateSet& L) {
    Tensor logq;
    for (const auto& [gp, lq] : guide_logq)
      if (std::includes(L.begin(), L.end(), gp.begin(), gp.end())) add_to(logq, lq);
    Tensor t = logq.defined() ? exp(logq) * cost : cost;
    for (const std::string& p : L) {
      const Frame& fr = c.plates.at(p);
      if (t.dim() < -fr.dim || t.size(fr.dim) == 1) t = t * static_cast<float>(fr.subsample_size);
    }
    return sum(t);
  };
  Tensor loss;
  std::optional<float> enum_scale;
  std::string scale_site;
  bool any_factor = false;
  for (const Site& s : model_trace.sites()) {
    if (s.type != SiteType::kSample || s.is_subsample) continue;
    if (s.enum_dim != 0) c.declare(s);
    const std::vector<int> dims = enum_dims_of(log_prob_shape(s), mpn);
    if (dims.empty()) {
      add_to(loss, site_term(s, -s.scale * inv_p));  // depends on no enumerated variable
      continue;
    }
    any_factor = true;
    bool guide_vars_only = s.enum_dim == 0;
    for (int d : dims) {
      const auto it = c.current.find(d);
      guide_vars_only = guide_vars_only && it != c.current.end() && c.free.count(it->second);
    }
    if (guide_vars_only) {  // its own scale, applied now
      c.add(s, enum_factor(s) * s.scale, true);
      continue;
    }
    CUVI_CHECK(!enum_scale || *enum_scale == s.scale, ValueError,
               "TraceEnum_ELBO: sites that depend on a model-enumerated variable must share one scale (plates' "
               "N/B, scale handlers); site '"
                   << scale_site << "' has " << *enum_scale << ", site '" << s.name << "' " << s.scale);
    enum_scale = s.scale;
    scale_site = s.name;
    c.add(s, enum_factor(s));
  }
  if (any_factor) {
    const Tensor contracted = c.run();
    if (contracted.defined()) add_to(loss, contracted * (-enum_scale.value_or(1.0f) * inv_p));
    for (const auto& [L, f] : c.finals)
      add_to(loss, expectation(f.t, L) * (-(f.scaled ? 1.0f : enum_scale.value_or(1.0f)) * inv_p));
  }
  std::vector<const Site*> score_sites;
  for (const Site& s : guide_trace.sites()) {
    if (!is_latent(s)) continue;
    if (!guide_vars.empty() && !enum_dims_of(log_prob_shape(s), mpn).empty()) {
      // A guide term over enumerated values (the variable's own -log q, or
      // a site drawn once per value): its expectation under q.
      add_to(loss, expectation(masked_log_prob(s), plate_set(s.frames)) * (s.scale * inv_p));
      continue;
    }
    add_to(loss, site_term(s, s.scale * inv_p));
    if (!s.fn->has_rsample()) score_sites.push_back(&s);
  }
  if (!loss.defined()) loss = zeros({}, default_device());
  Tensor surrogate = loss;
  if (!score_sites.empty()) {
    // Score function with the particle's whole loss as the cost (with
    // vectorised particles, all of them: unbiased, as the other particles'
    // terms are independent of this one's draw, if noisier).
    const Tensor whole = loss.detach() * std::round(1.0f / inv_p);
    for (const Site* s : score_sites) add_to(surrogate, sum(masked_log_prob(*s)) * whole * inv_p);
  }
  add_to(r.loss, loss.detach());
  add_to(r.surrogate, surrogate);
}

// ---- infer_discrete -----------------------------------------------------------

namespace {

// idx (int64, keepdim: size 1 at dim d) aligned to t's rank and expanded to
// t's shape except at d, for gather(t, d, .).
Tensor align_index(const Tensor& idx, const Tensor& t, int d) {
  Shape s = idx.shape();
  // Leading dims of size 1 (dims of variables chosen before) may reach
  // further left than t does.
  while (static_cast<int64_t>(s.size()) > t.dim() && s.front() == 1) s.erase(s.begin());
  CUVI_CHECK(static_cast<int64_t>(s.size()) <= t.dim(), ShapeError,
             "infer_discrete: index of shape " << shape_str(s) << " for a factor of shape " << shape_str(t.shape()));
  s.insert(s.begin(), static_cast<size_t>(t.dim()) - s.size(), 1);
  Shape target = t.shape();
  target[static_cast<size_t>(t.dim() + d)] = 1;
  return idx.reshape(s).expand(target);
}

// One value per element along dim d of logits: a draw (temperature 1) or
// the first maximum (temperature 0); int64, keepdim.
Tensor choose(const Tensor& logits, int d, int temperature) {
  const int64_t pos = logits.dim() + d;
  const Tensor last = logits.transpose(pos, -1);
  Tensor idx;
  if (temperature == 1) {
    idx = dist::Categorical::from_logits(last).sample();
  } else {
    const int64_t k = last.size(-1);
    const Tensor is_max = eq(last, amax(last, {-1}, true));
    const Tensor first = is_max * eq(cumsum(is_max, -1), ones({}, last.device()));
    idx = sum(first * arange(k, last.device()), {-1}).to_int64();
  }
  return idx.unsqueeze(-1).transpose(pos, -1);
}

}  // namespace

namespace detail {

Trace infer_discrete_trace(const Program& model, int first_available_dim, int temperature) {
  CUVI_CHECK(first_available_dim < 0, ValueError,
             "infer_discrete: first_available_dim must be negative, got " << first_available_dim);
  CUVI_CHECK(temperature == 0 || temperature == 1, ValueError,
             "infer_discrete: temperature must be 0 (MAP) or 1 (posterior draws), got " << temperature);
  NoGradGuard ng;
  const int mpn = -first_available_dim - 1;
  // The first run is hidden from the handlers outside (an outer trace sees
  // only the second), as Pyro's poutine.block around it.
  poutine::BlockMessenger hide_all({}, {}, true);
  HandlerScope hidden(&hide_all);
  poutine::EnumMessenger enum_handler(first_available_dim);
  Trace tr = poutine::trace([&] {
               HandlerScope scope(&enum_handler);
               model();
             }).get_trace();
  EnumContraction c;
  c.mpn = mpn;
  c.record = true;
  c.maximise = temperature == 0;
  bool any = false;
  for (const Site& s : tr.sites()) {
    if (s.type != SiteType::kSample || s.is_subsample) continue;
    if (s.enum_dim != 0) c.declare(s);
    if (enum_dims_of(log_prob_shape(s), mpn).empty()) continue;
    CUVI_CHECK(s.is_observed || s.enum_dim != 0, ValueError,
               "infer_discrete: latent site '" << s.name
                                               << "' depends on an enumerated variable but is not enumerated itself; "
                                                  "give it a value (observe it, or replay a guide's trace)");
    c.add(s, enum_factor(s) * s.scale);
    any = true;
  }
  if (!any) return tr;
  (void)c.run();
  // Backwards through the eliminations: each variable given those chosen
  // already (the ones summed out after it, which its joint factor holds).
  std::map<std::string, Tensor> chosen;
  for (auto it = c.steps.rbegin(); it != c.steps.rend(); ++it) {
    Tensor t = it->t;
    for (const auto& [d, u] : it->vars)
      if (u != it->var) t = gather(t, t.dim() + d, align_index(chosen.at(u), t, d));
    chosen[it->var] = choose(t, it->dim, temperature);
  }
  // The chosen values in place of the supports, shaped by the site's plates.
  for (const std::string& name : tr.site_names()) {
    Site& s = tr.site(name);
    if (s.enum_dim == 0) continue;
    const Tensor idx = chosen.at(s.name);
    int need = 0;
    for (const Frame& f : s.frames)
      if (f.vectorized) need = std::max(need, -f.dim);
    const Shape& is = idx.shape();
    Shape keep(is.end() - std::min<int64_t>(need, static_cast<int64_t>(is.size())), is.end());
    const Tensor vals = s.fn->support_values();  // [K] + event (OneHotCategorical's rows)
    const Shape ev = s.fn->event_shape();
    keep.insert(keep.end(), ev.begin(), ev.end());
    s.value = index_select(vals, 0, idx.reshape({idx.numel()})).reshape(keep);
    s.enum_dim = 0;
  }
  for (const Site& s : tr.sites()) {
    if (s.type != SiteType::kSample || s.is_observed || s.is_subsample) continue;
    // The value's batch dims (an event, as OneHotCategorical's row, is not enumerated).
    Shape vb = s.value.shape();
    vb.resize(vb.size() - std::min(vb.size(), static_cast<size_t>(s.fn ? s.fn->event_dim() : 0)));
    CUVI_CHECK(static_cast<int>(vb.size()) <= mpn || enum_dims_of(vb, mpn).empty(), ValueError,
                 "infer_discrete: latent site '" << s.name << "' has value shape " << shape_str(s.value.shape())
                                                 << " with enumerated dims; give it a value (replay a guide)");
  }
  return tr;
}

}  // namespace detail

// ---- RenyiELBO -------------------------------------------------------------

namespace {

// sum over a trace's sample sites of scale * sum(mask * log_prob), per
// particle: [P] when the particles are vectorised at particle_dim (< 0;
// a term without that dim is the same for every particle), else 0-d.
// Guide traces count their latent sites only.
Tensor per_particle_log_prob(const Trace& t, bool guide, int particle_dim, int P) {
  Tensor total;
  for (const Site& s : t.sites()) {
    if (s.type != SiteType::kSample || s.is_subsample || (guide && s.is_observed)) continue;
    const Tensor lp = masked_log_prob(s);
    Tensor term;
    if (particle_dim < 0 && lp.dim() >= -particle_dim) {
      const int64_t at = lp.dim() + particle_dim;
      std::vector<int64_t> rest;
      for (int64_t d = 0; d < lp.dim(); ++d)
        if (d != at) rest.push_back(d);
      term = (rest.empty() ? lp : sum(lp, rest)).expand({P});
    } else {
      term = sum(lp);
      if (particle_dim < 0) term = term.expand({P});
    }
    add_to(total, term * s.scale);
  }
  if (!total.defined()) total = particle_dim < 0 ? zeros({P}, default_device()) : zeros({}, default_device());
  return total;
}

}  // namespace

RenyiELBO::RenyiELBO(RenyiELBOOptions o)
    : ELBO(ELBOOptions{o.num_particles, o.vectorize_particles, o.max_plate_nesting}), ro_(o) {
  CUVI_CHECK(o.alpha != 1.0f, ValueError,
             "RenyiELBO: alpha = 1 is the ELBO itself (its bound's 1 / (1 - alpha) is undefined); use Trace_ELBO");
  CUVI_CHECK(std::isfinite(o.alpha), ValueError, "RenyiELBO: alpha must be finite, got " << o.alpha);
  CUVI_CHECK(o.num_particles >= 1, ValueError, "RenyiELBO: num_particles must be >= 1, got " << o.num_particles);
}

ELBOResult RenyiELBO::compute(const Program& model, const Program& guide) const {
  ELBOResult r;
  const uint64_t created = param_store().creation_mark();
  try {
    std::set<std::string> seen;
    const int K = ro_.num_particles;
    auto weights = [&](const Program& m, const Program& g, int particle_dim) {
      const Trace gt = poutine::trace(g).get_trace();
      for (const Site& s : gt.sites())
        CUVI_CHECK(!is_latent(s) || s.fn->has_rsample(), ValueError,
                   "RenyiELBO: guide site '" << s.name << "' (" << s.fn->name()
                                             << ") has no reparameterised sampler; RenyiELBO takes pathwise "
                                                "gradients only");
      const Trace mt = poutine::trace(poutine::replay(m, gt)).get_trace();
      collect_params(gt, r.params, seen);
      collect_params(mt, r.params, seen);
      return per_particle_log_prob(mt, false, particle_dim, K) - per_particle_log_prob(gt, true, particle_dim, K);
    };
    Tensor w;  // [K]
    if (ro_.vectorize_particles) {
      const int dim = -(plate_nesting(model, guide) + 1);
      const auto [vm, vg] = in_particle_plate(model, guide, K, dim);
      w = weights(vm, vg, dim);
    } else {
      std::vector<Tensor> ws;
      for (int k = 0; k < K; ++k) ws.push_back(weights(model, guide, 0));
      w = stack(ws, 0);
    }
    const float c = 1.0f - ro_.alpha;
    const Tensor scaled = w * c;
    {
      NoGradGuard ng;
      const Tensor bound = (logsumexp(scaled.detach(), {0}) - std::log(static_cast<float>(K))) / c;
      r.loss = -bound;
    }
    const Tensor v = softmax(scaled.detach(), 0);  // the normalised weights, held fixed
    r.surrogate = -sum(v * w);
  } catch (...) {
    undo_store(r);
    param_store().erase_created_since(created);
    throw;
  }
  return r;
}

namespace detail {

namespace {
void drop_grads(const optim::NamedParams& ps) {
  for (const auto& [n, p] : ps) p.zero_grad();
}
}  // namespace

Tensor svi_step(const Program& model, const Program& guide, optim::Optimizer& opt, const ELBO& loss,
                const SVIOptions& o) {
  const uint64_t created = param_store().creation_mark();
  ELBOResult r;
  try {
    r = loss.compute(model, guide);  // cleans up after itself when it throws
  } catch (...) {
    try {
      opt.reduce_gradients({}, /*failed_here=*/true);  // tells the other ranks (data parallelism)
    } catch (...) {
    }
    throw;
  }
  // From here a failure anywhere leaves params, optimizer and store as they
  // were. Every rank reaches reduce_gradients, failed or not.
  std::exception_ptr failure;
  try {
    if (r.surrogate.requires_grad()) r.surrogate.backward();
    if (o.check_finite) {
      // Raises what the device checked on the way (validation, indices)
      // while nothing is updated yet; a no-op wait on the cpu.
      synchronize(r.loss.device());
      // The loss and every gradient on the loss's device in one check (one
      // more wait), others per device; the first offender is named.
      std::vector<std::pair<const float*, int64_t>> spans{{r.loss.data<float>(), 1}};
      std::vector<std::string> names{""};
      for (const auto& [n, p] : r.params) {
        // Row-sparse parts alone are checked as they are (their sum is
        // finite if they are), else the dense gradient.
        std::vector<Tensor> gs;
        if (!p.row_grads().empty() && !p.impl()->grad)
          for (const RowGrad& part : p.row_grads()) gs.push_back(part.values);
        else if (const Tensor g = p.grad(); g.defined())
          gs.push_back(g);
        for (const Tensor& g : gs) {
          if (g.device() != r.loss.device()) {
            const int64_t bad = backend(g.device()).first_nonfinite({{g.data<float>(), g.numel()}});
            CUVI_CHECK(bad < 0, ValueError,
                       "SVI.step: gradient of parameter '" << n << "' is not finite; parameters left unchanged");
            continue;
          }
          spans.push_back({g.data<float>(), g.numel()});
          names.push_back(n);
        }
      }
      const int64_t bad = backend(r.loss.device()).first_nonfinite(spans);
      CUVI_CHECK(bad != 0, ValueError,
                 "SVI.step: the loss is not finite (" << r.loss.item() << "); parameters left unchanged");
      CUVI_CHECK(bad < 0, ValueError,
                 "SVI.step: gradient of parameter '" << names[static_cast<size_t>(bad)]
                                                     << "' is not finite; parameters left unchanged");
    }
  } catch (...) {
    failure = std::current_exception();
  }
  try {
    opt.reduce_gradients(r.params, failure != nullptr);
    if (!failure) opt.step(r.params);  // all or nothing (optim.hpp)
  } catch (...) {
    if (!failure) failure = std::current_exception();
  }
  if (failure) {
    drop_grads(r.params);
    undo_store(r);
    param_store().erase_created_since(created);  // params this step created go too
    std::rethrow_exception(failure);
  }
  drop_grads(r.params);
  return r.loss;
}

Tensor svi_evaluate(const Program& model, const Program& guide, const ELBO& loss) {
  NoGradGuard ng;
  return loss.compute(model, guide).loss;
}

std::map<std::string, Tensor> predictive_run(const Program& model, const Program& guide, int num_samples,
                                             const std::set<std::string>& return_sites, bool parallel) {
  CUVI_CHECK(num_samples >= 1, ValueError, "Predictive: num_samples must be >= 1, got " << num_samples);
  NoGradGuard ng;
  auto wanted = [&](const Site& s) {
    if (s.type != SiteType::kSample || s.is_subsample) return false;
    return return_sites.empty() ? !s.is_observed : return_sites.count(s.name) > 0;
  };
  auto run = [&](const Program& m, const Program& g) {
    const Trace gt = poutine::trace(g).get_trace();
    return poutine::trace(poutine::replay(m, gt)).get_trace();
  };
  std::map<std::string, Tensor> out;
  if (!parallel) {
    std::map<std::string, std::vector<Tensor>> draws;
    for (int i = 0; i < num_samples; ++i) {
      const Trace t = run(model, guide);
      for (const Site& s : t.sites())
        if (wanted(s)) draws[s.name].push_back(s.value.detach());
    }
    for (auto& [n, v] : draws) out[n] = stack(v, 0);
  } else {
    // The plate nesting and each site's own shape from one probing run
    // (the generator is put back afterwards).
    const ProbeRun probe = probe_run(model, guide);
    std::map<std::string, Shape> shapes;
    for (const Site& s : probe.model.sites())
      if (wanted(s)) shapes[s.name] = s.value.shape();
    const int mpn = probe.max_plate_nesting;
    const int dim = -(mpn + 1);
    const auto [vm, vg] = in_particle_plate(model, guide, num_samples, dim);
    const Trace t = run(vm, vg);
    for (const Site& s : t.sites()) {
      if (!wanted(s)) continue;
      const Shape& own = shapes.count(s.name) ? shapes.at(s.name) : s.value.shape();
      Shape want{num_samples};
      want.insert(want.end(), own.begin(), own.end());
      Tensor v = s.value.detach();
      const int64_t at = v.dim() - s.fn->event_dim() + dim;  // the samples' dim, if v reaches it
      if (at >= 0) {
        std::vector<int64_t> perm{at};  // the samples' dim first, the others in order
        for (int64_t d = 0; d < v.dim(); ++d)
          if (d != at) perm.push_back(d);
        v = v.permute(perm);
      } else {
        v = v.unsqueeze(0);  // the same value for every sample
      }
      if (v.size(0) == 1) {
        Shape e = v.shape();
        e[0] = num_samples;
        v = v.expand(e);
      }
      // What is left of the sample dim is the site's own shape, padded on
      // the left with the plate nesting's ones.
      CUVI_CHECK(v.numel() == shape_numel(want), ShapeError,
                 "Predictive(parallel): site '" << s.name << "' has shape " << shape_str(s.value.shape())
                                                << " under the samples' plate, which does not give its own shape "
                                                << shape_str(own) << " per sample; use parallel = false");
      out[s.name] = v.reshape(want);
    }
  }
  for (const auto& n : return_sites)
    CUVI_CHECK(out.count(n), ValueError, "Predictive: site '" << n << "' never appeared in the model");
  return out;
}

ImportanceResult importance_run(const Program& model, const Program* guide, int num_samples) {
  CUVI_CHECK(num_samples >= 1, ValueError, "Importance: num_samples must be >= 1, got " << num_samples);
  NoGradGuard ng;
  ImportanceResult r;
  std::map<std::string, std::vector<Tensor>> draws;
  for (int k = 0; k < num_samples; ++k) {
    Tensor lw;
    Trace mt;
    if (guide) {
      const Trace gt = poutine::trace(*guide).get_trace();
      mt = poutine::trace(poutine::replay(model, gt)).get_trace();
      lw = mt.log_prob_sum() - gt.log_prob_sum();
    } else {
      mt = poutine::trace(model).get_trace();
      for (const Site& s : mt.sites())
        if (s.type == SiteType::kSample && s.is_observed) add_to(lw, sum(masked_log_prob(s)) * s.scale);
      if (!lw.defined()) lw = zeros({}, default_device());
    }
    r.log_weights.push_back(static_cast<double>(lw.item()));
    for (const Site& s : mt.sites())
      if (is_latent(s)) draws[s.name].push_back(s.value.detach());
  }
  for (auto& [n, v] : draws) r.samples[n] = stack(v, 0);
  return r;
}

}  // namespace detail

std::vector<double> ImportanceResult::normalized_weights() const {
  CUVI_CHECK(!log_weights.empty(), ValueError, "Importance: no samples");
  double m = -INFINITY;
  for (double v : log_weights) m = std::max(m, v);
  CUVI_CHECK(std::isfinite(m), ValueError, "Importance: every sample has weight 0 (log weight " << m << ")");
  std::vector<double> w;
  double z = 0;
  for (double v : log_weights) z += std::exp(v - m);
  for (double v : log_weights) w.push_back(std::exp(v - m) / z);
  return w;
}

double ImportanceResult::log_normalizer() const {
  CUVI_CHECK(!log_weights.empty(), ValueError, "Importance: no samples");
  double m = -INFINITY;
  for (double v : log_weights) m = std::max(m, v);
  if (!std::isfinite(m)) return m;
  double z = 0;
  for (double v : log_weights) z += std::exp(v - m);
  return m + std::log(z / static_cast<double>(log_weights.size()));
}

double ImportanceResult::ess() const {
  double s2 = 0;
  for (double w : normalized_weights()) s2 += w * w;
  return 1.0 / s2;
}

std::vector<double> ImportanceResult::weighted_mean(const std::string& site) const {
  const auto it = samples.find(site);
  CUVI_CHECK(it != samples.end(), ValueError, "Importance: no latent site '" << site << "' in the samples");
  const std::vector<double> w = normalized_weights();
  const std::vector<float> v = it->second.to(Device::cpu()).to_vector();
  const size_t per = v.size() / w.size();
  std::vector<double> out(per, 0.0);
  for (size_t k = 0; k < w.size(); ++k)
    for (size_t j = 0; j < per; ++j) out[j] += w[k] * v[k * per + j];
  return out;
}

}  // namespace cuvi::infer
