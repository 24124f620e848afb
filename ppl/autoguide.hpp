// Automatic guides (pyro.infer.autoguide): AutoNormal, AutoDelta,
// AutoDiagonalNormal, AutoMultivariateNormal, and the init strategies
// init_to_median / init_to_feasible / init_to_sample / init_to_mean.
//
// An autoguide is a callable built from the model and called with the
// model's arguments:
//
//   infer::AutoNormal guide(model);                         // Pyro's defaults
//   infer::AutoNormal guide2(model, {.init_loc_fn = infer::init_to_median(), .init_scale = 0.05f});
//   infer::SVI svi(model, guide, optim::Adam({.lr = 0.01f}), infer::Trace_ELBO());
//   svi.step(data);
//   auto m = guide.median();            // site -> constrained posterior median
//
// On its first call the guide runs the model once under a trace that is
// hidden from every handler outside (poutine::block) to find the latent
// sites (sample sites that are neither observed nor a plate's subsample
// draw), their supports, shapes and plates. Copies of a guide share that
// prototype (SVI keeps a copy; guide.median() still works afterwards).
//
// Parameters (in the global param store; <P> is the class name, or
// options.prefix when set):
//   AutoNormal:  "<P>.locs.<site>" (unconstrained shape, real) and
//                "<P>.scales.<site>" (softplus_positive, init_scale), as
//                Pyro's AutoNormal. Each site is drawn from
//                TransformedDistribution(Normal(loc, scale).to_event(k), support)
//                (Normal(loc, scale).to_event(k) for real support), k the
//                site's event dims in unconstrained space.
//   AutoDelta:   "<P>.<site>" (constrained, with the site's support), drawn
//                as Delta(value, event_dim).
//   AutoDiagonalNormal / AutoMultivariateNormal (Pyro's AutoContinuous): one
//                flat unconstrained vector of all latents (sites in trace
//                order, each flattened row-major); "<P>.loc" [D] and
//                "<P>.scale" [D] (softplus_positive) / "<P>.scale_tril" [D, D]
//                (lower_cholesky, init_scale * I). The guide samples
//                "_<P>_latent" from Normal(loc, scale).to_event(1) /
//                MultivariateNormal(loc, scale_tril), then every site as a
//                Delta at transform(u_site) with log-density log|du/dx| so
//                that the guide's density is that of the constrained values.
//
// Plates: every site is sampled inside plates with the names, sizes,
// subsample sizes and dims the model used. For a site in a subsampled plate,
// AutoNormal's and AutoDelta's parameters have the full size N along that
// plate's dim and the guide gathers the rows at this step's indices (drawn
// once per call by the guide and replayed into the model), so every local
// latent has its own parameters and only the selected rows get gradients.
// AutoDiagonalNormal / AutoMultivariateNormal reject subsampled plates
// (ValueError): their single latent vector cannot be subsampled.
//
// Discrete latent sites are rejected (ValueError naming the site).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "poutine.hpp"
#include "transformed.hpp"

namespace cuvi::infer {

// An init strategy maps a prototype site (its fn, with the plates' batch
// shape, and its prior draw `value`) to a constrained initial value of the
// site's value shape.
using InitLocFn = std::function<Tensor(const Site&)>;

// Per element, the median of num_samples prior draws (the lower middle for
// even counts, as torch.median). Simplex values are renormalised; where the
// result is still outside the support, init_to_feasible.
InitLocFn init_to_median(int num_samples = 15);
// transform(0) in the support's unconstrained space (e.g. 1 for positive,
// the uniform vector for simplex).
InitLocFn init_to_feasible();
// One prior draw.
InitLocFn init_to_sample();
// A uniform draw in (-radius, radius) of the support's unconstrained space,
// mapped onto the support (Pyro's init_to_uniform): random restarts that stay
// away from the edges (e.g. positive sites in (e^-2, e^2)).
InitLocFn init_to_uniform(float radius = 2.0f);
// The prior mean; init_to_median where the mean is not available or not in
// the support.
InitLocFn init_to_mean();
// Given values for named sites, fallback for the others.
InitLocFn init_to_value(std::map<std::string, Tensor> values, InitLocFn fallback = init_to_median());

struct AutoGuideOptions {
  InitLocFn init_loc_fn = nullptr;  // empty: the class's default (Pyro's): init_to_feasible
                                    // for AutoNormal, init_to_median for the others
  float init_scale = 0.1f;          // initial scale (AutoNormal, AutoDiagonalNormal, AutoMultivariateNormal)
  std::string prefix = "";          // param-name prefix; empty: the class name
  int64_t rank = 0;                 // AutoLowRankMultivariateNormal: 0 = round(sqrt(latent dim))
  // AutoIAFNormal: hidden sizes of each transform's AutoRegressiveNN (empty:
  // [3 D + 1]), the number of transforms, and their options.
  std::vector<int64_t> hidden_dims = {};
  int num_transforms = 1;
  dist::transforms::AffineAutoregressiveOptions iaf = {};
  // AutoNormalizingFlow (Pyro's init_transform_fn): the transforms, given the
  // flat latent dimension D and the device; each must map [D] to [D].
  std::function<std::vector<dist::transforms::TransformPtr>(int64_t latent_dim, Device dev)> init_transform_fn =
      nullptr;
};

namespace detail {

// What the prototype trace says about one latent site.
struct LatentSite {
  Site proto;                      // the model's site (fn with plate batch shape, a prior value, frames)
  constraints::ConstraintPtr support;
  Shape value_shape;               // constrained, as in the prototype (B along subsampled dims)
  Shape uncon_shape;               // unconstrained, prototype
  Shape full_value_shape;          // N along subsampled plates' dims
  Shape full_uncon_shape;
  int event_dim = 0;               // constrained event dims
  int uncon_event_dim = 0;         // unconstrained event dims
  int batch_ndim = 0;
  Tensor init_value;               // constrained, full shape (detached)
};

class AutoGuideCore {
 public:
  AutoGuideCore(std::string cls, AutoGuideOptions o, InitLocFn default_init);
  virtual ~AutoGuideCore() = default;
  bool ready() const { return ready_; }
  // Traces the model (hidden from outer handlers) and creates the params.
  void setup(const std::function<void()>& run_model);
  // One run of the guide: returns site -> sampled (constrained) value.
  virtual std::map<std::string, Tensor> run() = 0;
  virtual std::map<std::string, Tensor> median() const = 0;
  // Pyro's quantiles(qs): site -> [qs.size(), site's value shape], the
  // posterior's marginal quantiles in unconstrained space mapped through the
  // site's support (exact marginal quantiles for elementwise monotone
  // supports: real, positive, intervals). Default: ValueError naming the guide.
  virtual std::map<std::string, Tensor> quantiles(const std::vector<float>& qs) const;
  const std::string& prefix() const { return prefix_; }
  const std::vector<LatentSite>& sites() const { return sites_; }
  const LatentSite& site(const std::string& name) const;

 protected:
  virtual void create_params() = 0;
  virtual bool supports_subsampling() const { return true; }
  // Whether the guide takes latent site s (false: left to the loss or to
  // another guide); throws for a site it cannot follow. Default: continuous
  // sites, leaving those marked for enumeration.
  virtual bool takes(const Site& s) const;
  // Draws this call's indices of every subsampled plate (recorded as the
  // plates' subsample sites, which replay hands to the model).
  std::map<std::string, Tensor> draw_plates() const;
  // Samples `name` from d inside the site's plates (this call's indices).
  Tensor sample_in_plates(const LatentSite& s, const dist::Distribution& d,
                          const std::map<std::string, Tensor>& idx, const Infer& infer = {}) const;
  // param(name, init, c, event_dim) inside the site's plates (this call's
  // indices): a full-size param comes back with the minibatch's rows along
  // the subsampled dims, taken before the constraint's transform (so the
  // transform and its backward cost B rows, not N).
  Tensor param_in_plates(const LatentSite& s, const std::string& name, const std::function<Tensor()>& init,
                         const constraints::ConstraintPtr& c, int event_dim,
                         const std::map<std::string, Tensor>& idx) const;

  std::string cls_, prefix_;
  AutoGuideOptions o_;
  std::vector<LatentSite> sites_;
  bool ready_ = false;
};

class AutoNormalCore final : public AutoGuideCore {
 public:
  explicit AutoNormalCore(AutoGuideOptions o);
  std::map<std::string, Tensor> run() override;
  std::map<std::string, Tensor> median() const override;
  std::map<std::string, Tensor> quantiles(const std::vector<float>& qs) const override;
  std::pair<Tensor, Tensor> loc_and_scale(const std::string& site) const;

 protected:
  void create_params() override;
};

class AutoDeltaCore final : public AutoGuideCore {
 public:
  explicit AutoDeltaCore(AutoGuideOptions o);
  std::map<std::string, Tensor> run() override;
  std::map<std::string, Tensor> median() const override;
  // A point mass's: the point, once per q.
  std::map<std::string, Tensor> quantiles(const std::vector<float>& qs) const override;

 protected:
  void create_params() override;
};

// Pyro's AutoDiscreteParallel: a mean-field guide over the model's discrete
// latent sites (Bernoulli, Categorical, OneHotCategorical; marked for
// enumeration or not), each a learnable distribution of its family with
// probabilities "<P>.<site>_probs" (unit_interval, or simplex over the last
// dim), initialised at the prior's and full size along subsampled plates.
// Its sites are sampled with parallel enumeration, so TraceEnum_ELBO takes
// the exact expectation over them (guide-side enumeration). Continuous
// latents are refused: give them to another autoguide (AutoGuideList, with
// poutine::block). median() is each site's mode.
class AutoDiscreteParallelCore final : public AutoGuideCore {
 public:
  enum class DiscreteKind { kBernoulli, kCategorical, kOneHot };
  explicit AutoDiscreteParallelCore(AutoGuideOptions o);
  std::map<std::string, Tensor> run() override;
  std::map<std::string, Tensor> median() const override;

 protected:
  void create_params() override;
  bool takes(const Site& s) const override;

 private:
  struct Part {
    DiscreteKind kind;
    Tensor init;  // the prior's probs, full size, at setup
  };
  std::vector<Part> parts_;  // one per site, in sites_'s order
};

// AutoContinuous: a joint distribution over one flat unconstrained vector.
class AutoContinuousCore : public AutoGuideCore {
 public:
  AutoContinuousCore(std::string cls, AutoGuideOptions o);
  std::map<std::string, Tensor> run() override;
  std::map<std::string, Tensor> median() const override;
  // From each flat coordinate's marginal Normal(mean, sqrt(variance)) of the
  // posterior (Pyro's AutoContinuous.quantiles); AutoIAFNormal has none.
  std::map<std::string, Tensor> quantiles(const std::vector<float>& qs) const override;
  int64_t latent_dim() const { return dim_; }
  // Pyro's get_posterior(): the guide's distribution over the flat
  // unconstrained latent vector [latent_dim()] at the store's current params.
  dist::DistPtr get_posterior() const { return posterior(); }
  // site -> unconstrained value (shape of the site) from a flat vector.
  std::map<std::string, Tensor> unpack(const Tensor& latent) const;

 protected:
  void create_params() override;
  bool supports_subsampling() const override { return false; }
  virtual void create_posterior_params() = 0;  // from init_loc_
  virtual dist::DistPtr posterior() const = 0;  // inside a run: reads params through param()
  // Lazy inits of the posterior's loc and scale (diagonal, or scale_tril).
  std::function<Tensor()> loc_init() const;
  std::function<Tensor()> scale_init(bool tril) const;
  int64_t dim_ = 0;
  Tensor init_loc_;  // unconstrained, flat [dim_], set at setup
};

class AutoDiagonalNormalCore final : public AutoContinuousCore {
 public:
  explicit AutoDiagonalNormalCore(AutoGuideOptions o) : AutoContinuousCore("AutoDiagonalNormal", std::move(o)) {}

 protected:
  void create_posterior_params() override;
  dist::DistPtr posterior() const override;
};

class AutoMultivariateNormalCore final : public AutoContinuousCore {
 public:
  explicit AutoMultivariateNormalCore(AutoGuideOptions o)
      : AutoContinuousCore("AutoMultivariateNormal", std::move(o)) {}

 protected:
  void create_posterior_params() override;
  dist::DistPtr posterior() const override;
};

// Pyro's AutoLowRankMultivariateNormal: a joint Normal whose covariance is
// diag(s) (W W^T + I) diag(s) = (s W)(s W)^T + diag(s^2), W [D, rank]
// (cov_factor, initialised N(0, 1) * init_scale * sqrt(0.5 / rank)), s [D]
// (scale, softplus_positive, initialised sqrt(0.5) * init_scale). The
// posterior (get_posterior()) is dist::LowRankMultivariateNormal(loc, s W,
// s^2): its density is O(D rank^2) (Woodbury), never a D x D Cholesky.
class AutoLowRankMultivariateNormalCore final : public AutoContinuousCore {
 public:
  explicit AutoLowRankMultivariateNormalCore(AutoGuideOptions o)
      : AutoContinuousCore("AutoLowRankMultivariateNormal", std::move(o)) {}
  int64_t rank() const;

 protected:
  void create_posterior_params() override;
  dist::DistPtr posterior() const override;

 private:
  std::function<Tensor()> factor_init() const;
  std::function<Tensor()> diag_init() const;
};

// A standard Normal over the flat latent vector pushed through a chain of
// transforms (Pyro's AutoNormalizingFlow and its AutoIAFNormal), made once
// at setup by make_transforms(). The weights of the transforms that have a
// net (module()) are params "<P>.transforms.<k>$$$<name>" (module()
// naming), trained by SVI. As in Pyro the base is N(0, I) and init_loc_fn is
// not used. median() is the transforms applied to the base's median (the
// zero vector): the image of the base's mode, which for a non-Gaussian fit
// is a point estimate rather than the marginal medians; quantiles() has no
// closed form (ValueError pointing to Predictive).
class AutoFlowCore : public AutoContinuousCore {
 public:
  AutoFlowCore(std::string cls, AutoGuideOptions o) : AutoContinuousCore(std::move(cls), std::move(o)) {}
  std::map<std::string, Tensor> median() const override;
  std::map<std::string, Tensor> quantiles(const std::vector<float>& qs) const override;
  // The transforms in the order they are applied (after setup).
  const std::vector<dist::transforms::TransformPtr>& flow() const { return ts_; }

 protected:
  void create_posterior_params() override;
  dist::DistPtr posterior() const override;
  virtual std::vector<dist::transforms::TransformPtr> make_transforms() = 0;

 private:
  std::string module_name(size_t k) const { return prefix_ + ".transforms." + std::to_string(k); }
  std::vector<dist::transforms::TransformPtr> ts_;
  dist::DistPtr base_;  // N(0, I) over the flat latent, made once at setup
};

// Pyro's AutoNormalizingFlow(model, init_transform_fn): the transforms are
// options.init_transform_fn(D, device) (required), e.g. Planar flows, IAFs
// with Permute between them, and elementwise or Affine maps; each must map
// a [D] vector to a [D] vector (event_dim <= 1), else ValueError naming it.
class AutoNormalizingFlowCore final : public AutoFlowCore {
 public:
  explicit AutoNormalizingFlowCore(AutoGuideOptions o) : AutoFlowCore("AutoNormalizingFlow", std::move(o)) {}

 protected:
  std::vector<dist::transforms::TransformPtr> make_transforms() override;
};

// Pyro's AutoIAFNormal: options.num_transforms AffineAutoregressive flows
// (inverse autoregressive flows), each over an AutoRegressiveNN(D,
// hidden_dims) with ReLU; flow k generates the coordinates in order 0..D-1
// for even k and D-1..0 for odd k, so that stacked flows condition both ways.
class AutoIAFNormalCore final : public AutoFlowCore {
 public:
  explicit AutoIAFNormalCore(AutoGuideOptions o) : AutoFlowCore("AutoIAFNormal", std::move(o)) {}
  const std::vector<std::shared_ptr<dist::transforms::AffineAutoregressive>>& transforms() const { return flows_; }

 protected:
  std::vector<dist::transforms::TransformPtr> make_transforms() override;

 private:
  std::vector<std::shared_ptr<dist::transforms::AffineAutoregressive>> flows_;
};

// Pyro's AutoLaplaceApproximation: trained as a MAP guide over the flat
// unconstrained latent vector (a Delta at "<P>.loc", with the transforms'
// Jacobians, so the optimum is the mode of the posterior density in
// unconstrained space); laplace_approximation() then gives the Gaussian
// whose covariance is the inverse Hessian of -log p(x, z) there.
class AutoLaplaceApproximationCore final : public AutoContinuousCore {
 public:
  explicit AutoLaplaceApproximationCore(AutoGuideOptions o)
      : AutoContinuousCore("AutoLaplaceApproximation", std::move(o)) {}
  // The Laplace approximation at the current loc, given the loss
  // -log p(x, T(u)) - log|J(u)| as a function of the flat latent u (one
  // traced run of guide and model): (loc, scale_tril), scale_tril the
  // Cholesky factor of the inverse Hessian. The Hessian comes from central
  // differences of the reverse-mode gradient (exact for a quadratic loss;
  // steps of 1e-3 max(1, |u_j|) otherwise), symmetrised, factored in
  // float64; ValueError naming the guide when it is not positive definite
  // (not at a mode: train longer).
  std::pair<Tensor, Tensor> laplace(const std::function<Tensor(const Tensor&)>& loss_at) const;

 protected:
  void create_posterior_params() override;
  dist::DistPtr posterior() const override;
};

// The callable front end: holds the model and a shared core.
template <class Model, class Core>
class AutoGuideFront {
 public:
  explicit AutoGuideFront(Model model, AutoGuideOptions o = {})
      : model_(std::move(model)), core_(std::make_shared<Core>(std::move(o))) {}

  // Runs the guide (sets it up on the first call); returns site -> value.
  template <class... Args>
  std::map<std::string, Tensor> operator()(const Args&... args) const {
    setup(args...);
    return core_->run();
  }
  // Traces the model with these arguments unless already done.
  template <class... Args>
  void setup(const Args&... args) const {
    if (!core_->ready()) core_->setup([&] { model_(args...); });
  }
  // site -> constrained posterior median (the guide must have been set up,
  // by a call or by the overload with the model's arguments).
  std::map<std::string, Tensor> median() const {
    CUVI_CHECK(core_->ready(), ValueError,
               core_->prefix() << ".median(): the guide has not been run yet (call it, or pass the model's arguments)");
    return core_->median();
  }
  template <class A0, class... Args>
  std::map<std::string, Tensor> median(const A0& a0, const Args&... args) const {
    setup(a0, args...);
    return core_->median();
  }
  // site -> constrained marginal quantiles [qs.size(), ...] (Pyro's
  // quantiles; see AutoGuideCore::quantiles); the model's arguments set the
  // guide up when it has not run yet.
  template <class... Args>
  std::map<std::string, Tensor> quantiles(const std::vector<float>& qs, const Args&... args) const {
    if constexpr (sizeof...(Args) > 0) setup(args...);
    CUVI_CHECK(core_->ready(), ValueError,
               core_->prefix() << ".quantiles(): the guide has not been run yet (call it, or pass the model's arguments)");
    return core_->quantiles(qs);
  }
  const Core& core() const { return *core_; }
  // The AutoContinuous guides' joint distribution over the flat
  // unconstrained latent vector (sites in trace order, each flattened).
  dist::DistPtr get_posterior() const
    requires std::is_base_of_v<AutoContinuousCore, Core>
  {
    CUVI_CHECK(core_->ready(), ValueError,
               core_->prefix() << ".get_posterior(): the guide has not been run yet");
    return core_->get_posterior();
  }

 protected:
  Model model_;
  std::shared_ptr<Core> core_;
};

}  // namespace detail

template <class Model>
class AutoNormal : public detail::AutoGuideFront<Model, detail::AutoNormalCore> {
 public:
  using detail::AutoGuideFront<Model, detail::AutoNormalCore>::AutoGuideFront;
  // The site's (loc, scale) params in unconstrained space, full size.
  std::pair<Tensor, Tensor> loc_and_scale(const std::string& site) const { return this->core_->loc_and_scale(site); }
};
template <class Model>
AutoNormal(Model) -> AutoNormal<Model>;
template <class Model>
AutoNormal(Model, AutoGuideOptions) -> AutoNormal<Model>;

template <class Model>
class AutoDiscreteParallel : public detail::AutoGuideFront<Model, detail::AutoDiscreteParallelCore> {
 public:
  using detail::AutoGuideFront<Model, detail::AutoDiscreteParallelCore>::AutoGuideFront;
};
template <class Model>
AutoDiscreteParallel(Model) -> AutoDiscreteParallel<Model>;
template <class Model>
AutoDiscreteParallel(Model, AutoGuideOptions) -> AutoDiscreteParallel<Model>;

template <class Model>
class AutoDelta : public detail::AutoGuideFront<Model, detail::AutoDeltaCore> {
 public:
  using detail::AutoGuideFront<Model, detail::AutoDeltaCore>::AutoGuideFront;
};
template <class Model>
AutoDelta(Model) -> AutoDelta<Model>;
template <class Model>
AutoDelta(Model, AutoGuideOptions) -> AutoDelta<Model>;

template <class Model>
class AutoDiagonalNormal : public detail::AutoGuideFront<Model, detail::AutoDiagonalNormalCore> {
 public:
  using detail::AutoGuideFront<Model, detail::AutoDiagonalNormalCore>::AutoGuideFront;
};
template <class Model>
AutoDiagonalNormal(Model) -> AutoDiagonalNormal<Model>;
template <class Model>
AutoDiagonalNormal(Model, AutoGuideOptions) -> AutoDiagonalNormal<Model>;

template <class Model>
class AutoMultivariateNormal : public detail::AutoGuideFront<Model, detail::AutoMultivariateNormalCore> {
 public:
  using detail::AutoGuideFront<Model, detail::AutoMultivariateNormalCore>::AutoGuideFront;
};
template <class Model>
AutoMultivariateNormal(Model) -> AutoMultivariateNormal<Model>;
template <class Model>
AutoMultivariateNormal(Model, AutoGuideOptions) -> AutoMultivariateNormal<Model>;

template <class Model>
class AutoLowRankMultivariateNormal
    : public detail::AutoGuideFront<Model, detail::AutoLowRankMultivariateNormalCore> {
 public:
  using detail::AutoGuideFront<Model, detail::AutoLowRankMultivariateNormalCore>::AutoGuideFront;
};
template <class Model>
AutoLowRankMultivariateNormal(Model) -> AutoLowRankMultivariateNormal<Model>;
template <class Model>
AutoLowRankMultivariateNormal(Model, AutoGuideOptions) -> AutoLowRankMultivariateNormal<Model>;

template <class Model>
class AutoIAFNormal : public detail::AutoGuideFront<Model, detail::AutoIAFNormalCore> {
 public:
  using detail::AutoGuideFront<Model, detail::AutoIAFNormalCore>::AutoGuideFront;
  // The flows, in the order they are applied (after the guide has been set up).
  const std::vector<std::shared_ptr<dist::transforms::AffineAutoregressive>>& transforms() const {
    return this->core_->transforms();
  }
};
template <class Model>
AutoIAFNormal(Model) -> AutoIAFNormal<Model>;
template <class Model>
AutoIAFNormal(Model, AutoGuideOptions) -> AutoIAFNormal<Model>;

template <class Model>
class AutoNormalizingFlow : public detail::AutoGuideFront<Model, detail::AutoNormalizingFlowCore> {
 public:
  using detail::AutoGuideFront<Model, detail::AutoNormalizingFlowCore>::AutoGuideFront;
  // The transforms, in the order they are applied (after the guide has been set up).
  const std::vector<dist::transforms::TransformPtr>& transforms() const { return this->core_->flow(); }
};
template <class Model>
AutoNormalizingFlow(Model, AutoGuideOptions) -> AutoNormalizingFlow<Model>;

template <class Model>
class AutoLaplaceApproximation : public detail::AutoGuideFront<Model, detail::AutoLaplaceApproximationCore> {
 public:
  using detail::AutoGuideFront<Model, detail::AutoLaplaceApproximationCore>::AutoGuideFront;
  // Pyro's laplace_approximation(*args): an AutoMultivariateNormal over the
  // same latents (options.prefix `prefix`) whose loc and scale_tril params
  // are set to the MAP point and the Cholesky factor of the inverse Hessian
  // there (any params of that prefix are replaced).
  template <class... Args>
  AutoMultivariateNormal<Model> laplace_approximation(const Args&... args) const {
    return laplace_approximation_as("AutoMultivariateNormal", args...);
  }
  template <class... Args>
  AutoMultivariateNormal<Model> laplace_approximation_as(const std::string& prefix, const Args&... args) const {
    this->setup(args...);
    const std::string loc_name = this->core_->prefix() + ".loc";
    auto loss_at = [&](const Tensor& u) {
      const Trace g = poutine::trace(poutine::substitute([&] { this->core_->run(); }, {{loc_name, u}}))
                          .get_trace();
      const Trace m = poutine::trace(poutine::replay([&] { this->model_(args...); }, g)).get_trace();
      return g.log_prob_sum() - m.log_prob_sum();
    };
    const auto [loc, scale_tril] = this->core_->laplace(loss_at);
    for (const char* p : {".loc", ".scale_tril"}) param_store().erase(prefix + p);
    param_store().param(prefix + ".loc", loc);
    param_store().param(prefix + ".scale_tril", scale_tril, constraints::lower_cholesky);
    AutoGuideOptions o;
    o.prefix = prefix;
    return AutoMultivariateNormal<Model>(this->model_, o);
  }
};
template <class Model>
AutoLaplaceApproximation(Model) -> AutoLaplaceApproximation<Model>;
template <class Model>
AutoLaplaceApproximation(Model, AutoGuideOptions) -> AutoLaplaceApproximation<Model>;

// Factories (the same as the deduction guides).
template <class Model>
AutoNormal<Model> make_auto_normal(Model m, AutoGuideOptions o = {}) { return AutoNormal<Model>(std::move(m), std::move(o)); }
template <class Model>
AutoDelta<Model> make_auto_delta(Model m, AutoGuideOptions o = {}) { return AutoDelta<Model>(std::move(m), std::move(o)); }
template <class Model>
AutoDiagonalNormal<Model> make_auto_diagonal_normal(Model m, AutoGuideOptions o = {}) {
  return AutoDiagonalNormal<Model>(std::move(m), std::move(o));
}
template <class Model>
AutoMultivariateNormal<Model> make_auto_multivariate_normal(Model m, AutoGuideOptions o = {}) {
  return AutoMultivariateNormal<Model>(std::move(m), std::move(o));
}

// Pyro's AutoGuideList: a guide made of parts, each a guide for some of
// the model's latent sites, run in the order appended; a call returns the
// union of the parts' site -> value maps. Parts are autoguides built from
// the model with the other parts' sites blocked, or any callable taking the
// model's arguments (returning void or a site -> value map):
//   infer::AutoGuideList<Tensor> guide;
//   guide.append(infer::AutoDelta(poutine::block(model, {}, {"scale"})));   // expose: MAP for scale
//   guide.append(infer::AutoNormal(poutine::block(model, {"scale"})));      // hide: the rest
//   infer::SVI svi(model, guide, optim::Adam({.lr = 0.01f}), infer::Trace_ELBO());
// Copies share the parts (SVI keeps a copy). median(args...) is the union
// of the autoguide parts' medians (a plain callable contributes none). On
// the first call the parts' traces are checked: a latent sample site or a
// param that two parts both declare is a ValueError naming the site and the
// parts (two parts of one class need their own options.prefix).
template <class... Args>
class AutoGuideList {
 public:
  using Values = std::map<std::string, Tensor>;

  template <class G>
  void append(G guide) {
    auto g = std::make_shared<G>(std::move(guide));
    Part part;
    part.run = [g](const Args&... args) -> Values {
      if constexpr (std::is_void_v<decltype((*g)(args...))>) {
        (*g)(args...);
        return {};
      } else {
        return (*g)(args...);
      }
    };
    if constexpr (requires(const G& x, const Args&... a) { x.median(a...); })
      part.median = [g](const Args&... args) -> Values { return g->median(args...); };
    if constexpr (requires(const G& x, const std::vector<float>& q, const Args&... a) { x.quantiles(q, a...); })
      part.quantiles = [g](const std::vector<float>& q, const Args&... args) -> Values {
        return g->quantiles(q, args...);
      };
    parts_->push_back(std::move(part));
    *checked_ = false;
  }
  size_t size() const { return parts_->size(); }

  Values operator()(const Args&... args) const {
    if (!*checked_) return first_call(args...);
    Values out;
    for (const Part& p : *parts_) out.merge(p.run(args...));
    return out;
  }

  Values median(const Args&... args) const {
    Values out;
    for (const Part& p : *parts_)
      if (p.median) out.merge(p.median(args...));
    return out;
  }
  // The union of the autoguide parts' quantiles (a plain callable
  // contributes none; a part without them, e.g. AutoIAFNormal, throws).
  Values quantiles(const std::vector<float>& qs, const Args&... args) const {
    Values out;
    for (const Part& p : *parts_)
      if (p.quantiles) out.merge(p.quantiles(qs, args...));
    return out;
  }

 private:
  struct Part {
    std::function<Values(const Args&...)> run;
    std::function<Values(const Args&...)> median;
    std::function<Values(const std::vector<float>&, const Args&...)> quantiles;
  };

  // Runs each part under its own trace (inside whatever handlers surround
  // the call) and checks that no two parts declare one site.
  Values first_call(const Args&... args) const {
    Values out;
    std::map<std::string, size_t> owner;
    for (size_t i = 0; i < parts_->size(); ++i) {
      Values v;
      const Trace t = poutine::trace([&] { v = (*parts_)[i].run(args...); }).get_trace();
      for (const Site& s : t.sites()) {
        const bool latent = s.type == SiteType::kSample && !s.is_observed && !s.is_subsample;
        if (!latent && s.type != SiteType::kParam) continue;
        const auto [it, fresh] = owner.emplace(s.name, i);
        CUVI_CHECK(fresh, ValueError,
                   "AutoGuideList: " << (latent ? "sample site '" : "param '") << s.name << "' is declared by parts "
                                     << it->second << " and " << i
                                     << " (block each part's model to its own sites; give parts of one class their "
                                        "own options.prefix)");
      }
      out.merge(v);
    }
    *checked_ = true;
    return out;
  }

  std::shared_ptr<std::vector<Part>> parts_ = std::make_shared<std::vector<Part>>();
  std::shared_ptr<bool> checked_ = std::make_shared<bool>(false);
};

}  // namespace cuvi::infer
