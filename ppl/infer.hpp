// Inference (pyro.infer): ELBO losses, SVI, Predictive.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include "optim.hpp"
#include "poutine.hpp"

namespace cuvi::infer {

using Program = std::function<void()>;

struct ELBOOptions {
  int num_particles = 1;
  // Draw all particles at once: model and guide run once inside an outer
  // plate "num_particles_vectorized" of size num_particles at dim
  // -(max_plate_nesting + 1), and the loss is scaled by 1 / num_particles.
  bool vectorize_particles = false;
  // -1: inferred (only needed when vectorizing) from one traced run of guide
  // and model before the first step: the max over sites of -(min frame dim).
  // The run restores the generator state afterwards; the result is cached.
  int max_plate_nesting = -1;
  // Score-function cost of a non-reparameterised guide site (Pyro's partial
  // Rao-Blackwellisation, Trace_ELBO's _compute_log_r): every (log q - log p)
  // term of the particle, scaled, reduced to the site's vectorized plates
  // (terms in the same plate keep that dim, elementwise; all other dims are
  // summed). Sequential plates (irange) play no part here, as in Pyro.
  // false: the particle's whole loss as the cost of every element (the plain
  // estimator; for comparisons).
  bool rao_blackwellize = true;
};

// TraceGraph_ELBO's options: ELBOOptions' fields (rao_blackwellize is
// implied) plus the decaying-average baseline (Pyro's
// use_decaying_avg_baseline / baseline_beta).
struct TraceGraphELBOOptions {
  int num_particles = 1;
  bool vectorize_particles = false;
  int max_plate_nesting = -1;
  bool use_decaying_avg_baseline = true;
  float baseline_beta = 0.90f;
};

// What one evaluation of an ELBO produces.
struct ELBOResult {
  Tensor loss;       // -ELBO estimate (0-d, detached)
  Tensor surrogate;  // differentiable surrogate loss (0-d)
  optim::NamedParams params;  // unconstrained leaves touched by model and guide
  // Param-store entries the evaluation itself changed (TraceGraph_ELBO's
  // baselines), in order, each with its previous value (undefined: it was
  // absent); a failed SVI step puts them back.
  std::vector<std::pair<std::string, Tensor>> store_undo;
};

class ELBO {
 public:
  explicit ELBO(ELBOOptions o) : o_(o) {}
  virtual ~ELBO() = default;
  virtual std::shared_ptr<ELBO> clone() const = 0;
  virtual ELBOResult compute(const Program& model, const Program& guide) const;
  const ELBOOptions& options() const { return o_; }
  // The plate nesting used for vectorised particles: options().max_plate_nesting
  // when given, else the inferred value (-1 until inferred).
  int inferred_max_plate_nesting() const { return o_.max_plate_nesting >= 0 ? o_.max_plate_nesting : mpn_; }

  // Name of the outer plate that vectorised particles run in.
  static constexpr const char* kParticlePlate = "num_particles_vectorized";

 protected:
  // Whether a latent site's log q - log p is replaced by an analytic KL.
  virtual bool analytic_kl() const { return false; }
  // How the score-function cost of a site is formed.
  enum class ScoreCost {
    kWhole,   // the particle's whole loss
    kPlates,  // every term, reduced to the site's plates (Trace_ELBO)
    kGraph,   // the site's downstream terms only, reduced to its plates (TraceGraph_ELBO)
  };
  virtual ScoreCost score_cost() const { return o_.rao_blackwellize ? ScoreCost::kPlates : ScoreCost::kWhole; }
  // The cost a score term multiplies (detached), given the site's cost;
  // particle_dim: the vectorised particles' (negative) dim, 0 when none.
  // TraceGraph_ELBO subtracts its baseline here (and updates it, noting
  // the old value in r.store_undo).
  virtual Tensor centre_cost(const std::string& site, const Tensor& cost, int particle_dim, ELBOResult& r) const {
    (void)site;
    (void)particle_dim;
    (void)r;
    return cost;
  }
  ELBOOptions o_;
  // max_plate_nesting: given, cached, or guessed from one traced run.
  int plate_nesting(const Program& model, const Program& guide) const;

 private:
  void particle(const Program& model, const Program& guide, float inv_p, int particle_dim, ELBOResult& r,
                std::set<std::string>& seen) const;
  mutable int mpn_ = -1;  // inferred max_plate_nesting (cached)
};

// Pathwise gradients for reparameterised sites; the score-function
// surrogate (cost = the particle's whole ELBO, detached) for the others.
class Trace_ELBO : public ELBO {
 public:
  explicit Trace_ELBO(ELBOOptions o = {}) : ELBO(o) {}
  std::shared_ptr<ELBO> clone() const override { return std::make_shared<Trace_ELBO>(*this); }
};

// Trace_ELBO with KL(q || p) in closed form wherever the pair has one.
class TraceMeanField_ELBO : public ELBO {
 public:
  explicit TraceMeanField_ELBO(ELBOOptions o = {}) : ELBO(o) {}
  std::shared_ptr<ELBO> clone() const override { return std::make_shared<TraceMeanField_ELBO>(*this); }

 protected:
  bool analytic_kl() const override { return true; }
};

// Pyro's TraceEnum_ELBO (parallel enumeration in the model): the model runs
// under poutine::enumerate with first_available_dim -(max_plate_nesting +
// 1), so each latent site marked enumerate = "parallel" (sample(..., Infer)
// or config_enumerate) takes its whole support along a dim of its own, and
// its discrete variable is summed out exactly instead of drawn:
//   ELBO = E_q[ log sum_{enumerated} p(x, z, e) - log q(z) ].
// The sum is a contraction over the plates (tensor variable elimination,
// as Pyro's contract_tensor_tree): the log-factors (log_prob of every model
// site that depends on an enumerated variable) are grouped by their set of
// plates; from the deepest set up, a group is added up, the variables
// enumerated in exactly those plates are log-sum-exp'ed out, and the
// plates it does not share with its parent group (the largest set of
// plates below it) are summed over (a product of factors) before the
// result joins the parent. The root is log-sum-exp'ed over what remains.
// A variable that would have to be summed across a plate it is not in
// (plates that do not nest) is a ValueError naming the site.
//
// As in Pyro, every factor that depends on a model-enumerated variable must
// carry the same scale (a subsampled plate's N/B and scale handlers): the
// contraction is then scaled once (factors over guide-enumerated variables
// only are linear in the expectation and keep their own scales); sites that depend on no enumerated variable are ordinary
// terms (the fused kernels). A guide site without a reparameterised
// sampler gets the score-function term with the particle's whole loss as
// its cost.
//
// Guide-side enumeration (Pyro's, e.g. the semi-supervised VAE's class
// variable): guide sites marked enumerate = "parallel" take their whole
// support along dims from -(max_plate_nesting + 1) (the model's own
// enumeration starts left of them), later guide sites are drawn once per
// value, and the model replays every value at once. The ELBO is then the
// exact expectation over them: the contraction keeps their dims (it sums
// out only the model's variables), and every cost left over them, as every
// guide term -log q that depends on them, is weighted by the product of q
// of the enumerated guide sites in its plates (not detached, so the
// gradient reaches q's parameters) and summed. With guide enumeration every
// other guide latent must be reparameterised, and a guide variable in a
// plate must not meet a model-enumerated variable outside it (the
// expectation would not factorise over the plate): ValueErrors naming them.
// num_particles run one after the other, or at once with
// vectorize_particles (an outer plate at -(max_plate_nesting + 1), the
// enumeration dims starting one further left).
class TraceEnum_ELBO : public ELBO {
 public:
  explicit TraceEnum_ELBO(ELBOOptions o = {}) : ELBO(o) {}
  std::shared_ptr<ELBO> clone() const override { return std::make_shared<TraceEnum_ELBO>(*this); }
  ELBOResult compute(const Program& model, const Program& guide) const override;

 private:
  void enum_particle(const Program& model, const Program& guide, int mpn, float inv_p, ELBOResult& r,
                     std::set<std::string>& seen) const;
};

// Pyro's RenyiELBO: the variational Renyi bound of order alpha (Li and
// Turner, 2016) over K = num_particles draws z_k of the guide,
//   L = 1 / (1 - alpha) log (1/K) sum_k exp((1 - alpha) w_k),
//   w_k = log p(x, z_k) - log q(z_k)   (every site's scale and mask in),
// and the loss is -L. alpha = 0 is the importance-weighted bound of IWAE
// (tighter than the ELBO, reaching log p(x) as K grows); alpha -> 1 tends
// to the ELBO, and alpha = 1 is refused (use Trace_ELBO), as in Pyro. The
// gradient sum_k v_k grad w_k, with v the normalised weights
// softmax((1 - alpha) w) held fixed, flows pathwise: every latent guide
// site needs a reparameterised sampler (a ValueError names one that has
// none). Particles run one after the other, or at once with
// vectorize_particles (an outer plate at -(max_plate_nesting + 1)).
struct RenyiELBOOptions {
  float alpha = 0.0f;
  int num_particles = 2;
  int max_plate_nesting = -1;
  bool vectorize_particles = false;
};

class RenyiELBO : public ELBO {
 public:
  explicit RenyiELBO(RenyiELBOOptions o = {});
  std::shared_ptr<ELBO> clone() const override { return std::make_shared<RenyiELBO>(*this); }
  ELBOResult compute(const Program& model, const Program& guide) const override;
  const RenyiELBOOptions& renyi_options() const { return ro_; }

 private:
  RenyiELBOOptions ro_;
};

namespace detail {
// infer_discrete's first run: the model under poutine::enumerate, its
// enumerated sites' values replaced by the chosen ones (see infer_discrete).
Trace infer_discrete_trace(const Program& model, int first_available_dim, int temperature);
}  // namespace detail

// Pyro's infer_discrete: returns a callable that runs the model with every
// site marked for enumeration set to a draw from its posterior given the
// rest of the run (temperature 1), or to the most likely joint value
// (temperature 0; ties to the lower value), not a prior draw. The model runs
// once under poutine::enumerate (first_available_dim = -(max_plate_nesting
// + 1)); the contraction of TraceEnum_ELBO (with max in place of the sums
// over variables at temperature 0: max-product, Viterbi on a markov chain)
// is then sampled or maximised backwards (each variable given the ones it
// was eliminated before), and the model runs
// again replaying that run with the chosen values, so wrap it in
// poutine::trace to read them. Latent continuous sites must not depend on
// enumerated ones (replay a guide's trace to give them values), as in Pyro.
//   auto tr = poutine::trace(infer::infer_discrete(
//       poutine::replay(model, guide_trace), -2, 0)).get_trace(data);
//   Tensor z = tr.site("assignment").value;  // [N] MAP assignments
template <class Model>
auto infer_discrete(Model model, int first_available_dim, int temperature = 1) {
  return [model, first_available_dim, temperature](const auto&... args) {
    const Trace chosen = detail::infer_discrete_trace([&] { model(args...); }, first_available_dim, temperature);
    return poutine::replay(model, chosen)(args...);
  };
}

// Pyro's TraceGraph_ELBO: a non-reparameterised guide site's score term
// uses only its downstream cost, minus a per-site decaying-average baseline
//   b <- baseline_beta * b + (1 - baseline_beta) * cost
// (the old b is subtracted; b starts at zero). As in Pyro, b lives in the
// param store as "__baseline_avg_downstream_cost_<site>", so it is saved
// and loaded with the params (training resumes exactly) and cleared with
// them; it is updated only when grad mode is on (not by evaluate_loss), and
// a failed SVI step restores it.
//
// Dependencies come from execution order and plates, not from values: the
// structure of Pyro's "dense" trace graph, which TraceGraph_ELBO uses: every
// earlier sample site is a parent, except one that sits in another
// iteration of a sequential plate (irange) the site sits in. For a guide
// site s: G(s) = s and its descendants among the guide's latent sites (whose
// values may depend on z_s); the cost of s sums log q_t - log p_t for t in
// G(s) and the model's log p_u for every model site u that is a child in the
// model of a site of G(s). Without sequential plates that is every guide
// latent at or after s and every model site at or after the first model
// position of a site of G(s); inside `for (i : irange(...))` the other
// iterations' sites drop out (unless reached through a site outside the
// plate that comes after both).
// Each term is then reduced to s's vectorized plates as in Trace_ELBO: in a
// plate that s shares it stays elementwise (other elements are
// conditionally independent of z_s), every other dim is summed. With the
// baseline mean taken over vectorised particles, the baseline is one per
// element of s's (other) plates.
class TraceGraph_ELBO : public ELBO {
 public:
  explicit TraceGraph_ELBO(TraceGraphELBOOptions o = {})
      : ELBO(ELBOOptions{o.num_particles, o.vectorize_particles, o.max_plate_nesting, true}), g_(o) {}
  std::shared_ptr<ELBO> clone() const override { return std::make_shared<TraceGraph_ELBO>(*this); }
  const TraceGraphELBOOptions& graph_options() const { return g_; }
  // The current baseline of a site (undefined before its first update).
  Tensor baseline(const std::string& site) const;
  static std::string baseline_param_name(const std::string& site) { return "__baseline_avg_downstream_cost_" + site; }

 protected:
  ScoreCost score_cost() const override { return ScoreCost::kGraph; }
  Tensor centre_cost(const std::string& site, const Tensor& cost, int particle_dim, ELBOResult& r) const override;

 private:
  TraceGraphELBOOptions g_;
};

struct SVIOptions {
  // Check the loss and every gradient for non-finite values before the
  // update (on a GPU the step then waits for the device twice: once for the
  // queued work, once for one batched check of all those tensors); a
  // failing step changes nothing.
  // On a GPU that synchronisation also raises the step's deferred checks
  // (distribution validation, index ranges) before the update. Without it a
  // step never waits, so such an error surfaces at the next synchronisation,
  // after the update it came from (its message names the site).
  bool check_finite = false;
};

namespace detail {
// One SVI step on type-erased programs; returns the loss (0-d, on device).
Tensor svi_step(const Program& model, const Program& guide, optim::Optimizer& opt, const ELBO& loss,
                const SVIOptions& o);
Tensor svi_evaluate(const Program& model, const Program& guide, const ELBO& loss);
}  // namespace detail

template <class Model, class Guide>
class SVI {
 public:
  template <class Opt, class Loss>
  SVI(Model model, Guide guide, const Opt& optimizer, const Loss& loss, SVIOptions o = {})
      : model_(std::move(model)),
        guide_(std::move(guide)),
        opt_(optimizer.clone()),
        loss_(loss.clone()),
        o_(o) {}

  // One gradient step; returns the loss as a 0-d tensor on the device,
  // without waiting for it.
  template <class... Args>
  Tensor step(const Args&... args) {
    return detail::svi_step([&] { model_(args...); }, [&] { guide_(args...); }, *opt_, *loss_, o_);
  }
  template <class... Args>
  Tensor evaluate_loss(const Args&... args) {
    return detail::svi_evaluate([&] { model_(args...); }, [&] { guide_(args...); }, *loss_);
  }
  optim::Optimizer& optimizer() { return *opt_; }

 private:
  Model model_;
  Guide guide_;
  std::shared_ptr<optim::Optimizer> opt_;
  std::shared_ptr<ELBO> loss_;
  SVIOptions o_;
};

template <class Model, class Guide, class Opt, class Loss>
SVI(Model, Guide, const Opt&, const Loss&) -> SVI<Model, Guide>;
template <class Model, class Guide, class Opt, class Loss>
SVI(Model, Guide, const Opt&, const Loss&, SVIOptions) -> SVI<Model, Guide>;

namespace detail {
std::map<std::string, Tensor> predictive_run(const Program& model, const Program& guide, int num_samples,
                                             const std::set<std::string>& return_sites, bool parallel = false);
}

// Samples from the posterior predictive: the guide's latents replayed into
// the model; sites whose observation is passed undefined are drawn. Returns
// site -> tensor stacked over a leading num_samples dim.
// parallel (Pyro's parallel=True): all samples in one run of guide and
// model inside an outer plate of num_samples at -(max_plate_nesting + 1)
// (one launch per op on a GPU instead of num_samples of them), which the
// model must broadcast along as with vectorised particles. The results have
// the shapes of the sequential ones (the plate's dim first, its padding
// dropped); max_plate_nesting and those shapes come from one traced run,
// after which the generator is put back.
template <class Model, class Guide>
class Predictive {
 public:
  Predictive(Model model, Guide guide, int num_samples, std::set<std::string> return_sites = {},
             bool parallel = false)
      : model_(std::move(model)),
        guide_(std::move(guide)),
        n_(num_samples),
        sites_(std::move(return_sites)),
        parallel_(parallel) {}
  template <class... Args>
  std::map<std::string, Tensor> operator()(const Args&... args) const {
    return detail::predictive_run([&] { model_(args...); }, [&] { guide_(args...); }, n_, sites_, parallel_);
  }

 private:
  Model model_;
  Guide guide_;
  int n_;
  std::set<std::string> sites_;
  bool parallel_;
};

// Pyro's Importance (with EmpiricalMarginal's weighted summaries): n
// proposals z_k ~ guide (or, without a guide, the model's own prior), each
// weighted by log w_k = log p(x, z_k) - log q(z_k) (without a guide: the
// observed sites' log-likelihood). Sequential runs; no gradients.
struct ImportanceResult {
  std::vector<double> log_weights;            // one per sample, in float64
  std::map<std::string, Tensor> samples;      // latent site -> [n, site shape]
  // log of the mean weight: an estimate of log p(x) (Pyro's get_log_normalizer).
  double log_normalizer() const;
  // Effective sample size 1 / sum_k wbar_k^2, wbar the normalised weights (Pyro's get_ESS).
  double ess() const;
  // sum_k wbar_k z_k for a latent site (its posterior mean under the weights), float64 on the host.
  std::vector<double> weighted_mean(const std::string& site) const;
  std::vector<double> normalized_weights() const;
};

namespace detail {
ImportanceResult importance_run(const Program& model, const Program* guide, int num_samples);
}

template <class Model, class Guide = std::nullptr_t>
class Importance {
 public:
  Importance(Model model, Guide guide, int num_samples)
      : model_(std::move(model)), guide_(std::move(guide)), n_(num_samples) {}
  template <class... Args>
  ImportanceResult operator()(const Args&... args) const {
    const Program m = [&] { model_(args...); };
    if constexpr (std::is_same_v<Guide, std::nullptr_t>) {
      return detail::importance_run(m, nullptr, n_);
    } else {
      const Program g = [&] { guide_(args...); };
      return detail::importance_run(m, &g, n_);
    }
  }

 private:
  Model model_;
  Guide guide_;
  int n_;
};
// Importance(model, num_samples): proposals from the model's prior.
template <class Model>
Importance<Model> make_importance(Model model, int num_samples) {
  return Importance<Model>(std::move(model), nullptr, num_samples);
}

}  // namespace cuvi::infer
