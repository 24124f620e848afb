#include "infer.hpp"

#include <algorithm>

#include "../runtime/backend.hpp"

namespace cuvi::infer {

namespace {

Tensor site_term(const Site& s, float coef) {
  dist::detail::SiteScope scope(s.name);
  if (s.mask.defined()) return sum(s.fn->log_prob(s.value) * s.mask) * coef;
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

ELBOResult ELBO::compute(const Program& model, const Program& guide) const {
  CUVI_CHECK(o_.num_particles >= 1, ValueError, "ELBO: num_particles must be >= 1, got " << o_.num_particles);
  ELBOResult r;
  std::set<std::string> seen;
  const float inv_p = 1.0f / static_cast<float>(o_.num_particles);
  for (int particle = 0; particle < o_.num_particles; ++particle) {
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
      // Score function: E_q[f] has gradient E_q[f grad log q]; with f the
      // particle's loss, its surrogate is log q * f.detach().
      const Tensor cost = loss.detach() * static_cast<float>(o_.num_particles);
      for (const Site* s : score_sites) add_to(surrogate, site_term(*s, inv_p) * cost);
    }
    add_to(r.loss, loss.detach());
    add_to(r.surrogate, surrogate);
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
  ELBOResult r = loss.compute(model, guide);
  try {
    if (r.surrogate.requires_grad()) r.surrogate.backward();
    if (o.check_finite) {
      Backend& b = backend(r.loss.device());
      CUVI_CHECK(b.all_finite(r.loss.data<float>(), 1), ValueError,
                 "SVI.step: the loss is not finite (" << r.loss.item() << "); parameters left unchanged");
      for (const auto& [n, p] : r.params) {
        const Tensor g = p.grad();
        if (g.defined())
          CUVI_CHECK(backend(g.device()).all_finite(g.data<float>(), g.numel()), ValueError,
                     "SVI.step: gradient of parameter '" << n << "' is not finite; parameters left unchanged");
      }
    }
  } catch (...) {
    drop_grads(r.params);
    throw;
  }
  opt.step(r.params);
  drop_grads(r.params);
  return r.loss;
}

Tensor svi_evaluate(const Program& model, const Program& guide, const ELBO& loss) {
  NoGradGuard ng;
  return loss.compute(model, guide).loss;
}

std::map<std::string, Tensor> predictive_run(const Program& model, const Program& guide, int num_samples,
                                             const std::set<std::string>& return_sites) {
  CUVI_CHECK(num_samples >= 1, ValueError, "Predictive: num_samples must be >= 1, got " << num_samples);
  NoGradGuard ng;
  std::map<std::string, std::vector<Tensor>> draws;
  for (int i = 0; i < num_samples; ++i) {
    const Trace gt = poutine::trace(guide).get_trace();
    const Trace mt = poutine::trace(poutine::replay(model, gt)).get_trace();
    for (const Site& s : mt.sites()) {
      if (s.type != SiteType::kSample || s.is_subsample) continue;
      const bool want = return_sites.empty() ? !s.is_observed : return_sites.count(s.name) > 0;
      if (want) draws[s.name].push_back(s.value.detach());
    }
  }
  std::map<std::string, Tensor> out;
  for (auto& [n, v] : draws) out[n] = stack(v, 0);
  for (const auto& n : return_sites)
    CUVI_CHECK(out.count(n), ValueError, "Predictive: site '" << n << "' never appeared in the model");
  return out;
}

}  // namespace detail
}  // namespace cuvi::infer
