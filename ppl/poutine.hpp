// Primitives and effect handlers (Pyro's pyro.primitives and pyro.poutine).
//
// A primitive builds a message (a Site) and passes it through the
// thread-local handler stack: process() from the innermost handler outwards
// (a handler may stop the message), then the default behaviour (draw a
// value, look up a parameter), then postprocess() from the outermost
// processed handler inwards. Handlers wrap callables and return callables.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "distributions.hpp"
#include "param_store.hpp"

namespace cuvi {

enum class SiteType { kSample, kParam };

// A plate a site sits in: a vectorized plate (Plate, a batch dim) or one
// iteration of a sequential plate (IRange, no dim). Code that reads dim must
// skip frames that are not vectorized (Pyro's CondIndepStackFrame.vectorized).
struct Frame {
  std::string name;
  int dim = -1;                // negative, counted from the right of the batch shape; 0: sequential, no dim
  int64_t size = 0;            // full size N
  int64_t subsample_size = 0;  // B (== size when not subsampled)
  bool subsampled = false;     // indices are taken: B < N drawn, or user-supplied (even all N)
  Tensor indices;              // this step's int64 indices (subsampled plates)
  bool vectorized = true;      // false: one iteration of a sequential plate
  int64_t counter = 0;         // sequential: the iteration number (0, 1, ...); 0 when vectorized
  // A sharded plate (poutine::shard): rank shard_rank of shard_count owns
  // rows [shard_begin, shard_begin + shard_size) of the N and takes its B
  // indices from there. shard_count 0: not sharded.
  int shard_rank = 0;
  int shard_count = 0;
  int64_t shard_begin = 0;
  int64_t shard_size = 0;
};

// The factor a plate multiplies into its sites' scale: 1 when it takes all
// N rows, N / B when subsampled, and shard_count * shard_size / B when
// sharded (so the mean over ranks estimates the whole data's sum).
inline float plate_scale(const Frame& f) {
  if (!f.subsampled) return 1.0f;
  const double population = f.shard_count > 0 ? static_cast<double>(f.shard_count) * static_cast<double>(f.shard_size)
                                              : static_cast<double>(f.size);
  return static_cast<float>(population) / static_cast<float>(f.subsample_size);
}

// One markov loop around a site (Pyro's pyro.markov): the loop's identity,
// the site's step in it and the loop's history.
struct MarkovStep {
  uint64_t context = 0;
  int64_t step = 0;
  int history = 1;
};

struct Site {
  std::string name;
  SiteType type = SiteType::kSample;
  dist::DistPtr fn;             // sample sites
  Tensor value;
  bool is_observed = false;
  bool is_subsample = false;    // a plate's index draw (no log-density)
  float scale = 1.0f;           // plates' N/B and scale handlers multiplied in
  Tensor mask;                  // optional 0/1 mask multiplied into log_prob
  std::vector<Frame> frames;    // enclosing plates, outermost first
  // param sites
  constraints::ConstraintPtr constraint;
  std::function<Tensor()> init;
  Tensor init_value;  // a Tensor init (lets the store check a redeclared shape)
  Tensor unconstrained;
  // Pyro's event_dim of a param: set, the subsampled plates around it take
  // their rows of it (and appear in frames); unset, no plate touches it.
  std::optional<int> event_dim;
  // Enumeration (Pyro's infer={"enumerate": "parallel"}): "parallel" marks
  // a latent discrete site for TraceEnum_ELBO, which runs the model under
  // poutine::enumerate: the site's value is then its whole support along
  // its own dim enum_dim (negative, left of every plate dim), not a draw.
  std::string enumerate;
  int enum_dim = 0;  // 0: not enumerated
  // The markov loops around the site (innermost first): under enumeration
  // a variable may take the dim of one that lies more than a loop's
  // history steps back in it.
  std::vector<MarkovStep> markov;
  // poutine::do_: the handler whose intervention split this site (so that
  // it does not split the copy it sends on again).
  const void* intervener = nullptr;
  // handler flags
  bool done = false;
  bool stop = false;
};

class Trace {
 public:
  void add(Site s);  // a repeated sample site name throws ValueError; a repeated param replaces the earlier site
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  const Site& site(const std::string& name) const;
  Site& site(const std::string& name);
  std::vector<std::string> site_names() const;  // execution order
  const std::vector<Site>& sites() const { return sites_; }
  // sum over sample sites of scale * sum(mask * log_prob(value)).
  Tensor log_prob_sum() const;
  // A table of every site's shapes, for debugging a model's plates and
  // broadcasting (Pyro's Trace.format_shapes): params with their shape;
  // subsampled plates' index sites ("plate", B of N); sample sites with the
  // distribution's batch | event shape, the value's shape split the same
  // way, and (log_prob = true) log_prob's shape, computed here. Plates are
  // listed per sample site outermost first with their dims and sizes.
  std::string format_shapes(bool log_prob = false) const;

 private:
  std::vector<Site> sites_;
  std::map<std::string, size_t> index_;
};

class Messenger {
 public:
  virtual ~Messenger() = default;
  virtual void process(Site&) {}
  virtual void postprocess(Site&) {}
};

// Pushes a handler for the scope's lifetime.
class HandlerScope {
 public:
  explicit HandlerScope(Messenger* m);
  ~HandlerScope();
  HandlerScope(const HandlerScope&) = delete;
  HandlerScope& operator=(const HandlerScope&) = delete;

 private:
  Messenger* m_;
};

// Runs a message through the stack (what the primitives call).
void apply_stack(Site& msg);

// ---- primitives ------------------------------------------------------------

Tensor sample(const std::string& name, const dist::Distribution& d);
Tensor sample(const std::string& name, const dist::Distribution& d, const Tensor& obs);
// Pyro's infer={...} of a sample site: enumerate = "parallel" marks a latent
// discrete site for enumeration by TraceEnum_ELBO (other losses draw it).
struct Infer {
  std::string enumerate;
};
Tensor sample(const std::string& name, const dist::Distribution& d, const Infer& infer);
// A learnable parameter (the constrained value of the store's leaf).
// event_dim, as Pyro's: the number of rightmost dims that are not batch
// dims. When given, every enclosing subsampled plate takes this step's rows
// of the param along its dim (counted from the right of the batch dims; a
// dim of size 1 broadcasts and is left alone), so a per-datapoint param of
// full size N comes back with the minibatch's B rows, and the plate is
// recorded in the site's frames. The rows are taken from the unconstrained
// leaf before the constraint's transform when the plate dim is left of the
// constraint's own event dims (the same values; the transform and its
// backward touch B rows, not N). Without event_dim no dim is subsampled.
Tensor param(const std::string& name, const Tensor& init, const constraints::ConstraintPtr& c = constraints::real,
             std::optional<int> event_dim = std::nullopt);
Tensor param(const std::string& name, float init, const constraints::ConstraintPtr& c = constraints::real,
             std::optional<int> event_dim = std::nullopt);
Tensor param(const std::string& name, const std::function<Tensor()>& init,
             const constraints::ConstraintPtr& c = constraints::real, std::optional<int> event_dim = std::nullopt);
// Adds log_factor to the model's log-density (an observed site).
void factor(const std::string& name, const Tensor& log_factor);
// Records a value in the trace (an observed Delta site with no density).
Tensor deterministic(const std::string& name, const Tensor& value, int event_dim = -1);

// A conditionally independent batch dimension. RAII: active until it leaves
// scope. subsample_size 0: no subsampling; dim unset: the rightmost free one.
//
// As a Pyro plate object may be entered by several `with` blocks, a Plate may
// be left early with exit() and entered again with scope(): its subsample
// indices are drawn (and recorded as the plate's site) once, at
// construction, so every block of one run sees the same minibatch.
//   auto data = plate("data", N, B);            // active
//   sample("z", ...);
//   data.exit();                                // leaves the plate
//   ...                                         // sites outside it
//   { auto in = data.scope(); sample("x", ...); }  // the same indices again
class Plate;
class PlateScope {
 public:
  explicit PlateScope(Plate* p) : p_(p) {}
  PlateScope(PlateScope&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  PlateScope& operator=(PlateScope&&) = delete;
  PlateScope(const PlateScope&) = delete;
  ~PlateScope();

 private:
  Plate* p_;
};

class Plate : public Messenger {
 public:
  Plate(std::string name, int64_t size, int64_t subsample_size = 0, std::optional<int> dim = std::nullopt);
  // User-supplied indices (int64, 1-D) instead of a random draw.
  Plate(std::string name, int64_t size, const Tensor& subsample, std::optional<int> dim = std::nullopt);
  ~Plate() override;
  Plate(const Plate&) = delete;
  Plate& operator=(const Plate&) = delete;

  const std::string& name() const { return frame_.name; }
  int dim() const { return frame_.dim; }
  int64_t size() const { return frame_.size; }
  int64_t subsample_size() const { return frame_.subsample_size; }
  // Name, dim, sizes and this step's indices, as sites record it.
  const Frame& frame() const { return frame_; }
  bool active() const { return active_; }
  // Leaves the plate (no-op when it is not active).
  void exit();
  // Enters it again, with the same indices, until the guard is destroyed.
  // ValueError when it is already active. An unset dim is allocated anew.
  [[nodiscard]] PlateScope scope();
  // This step's indices (int64 [B]); arange(N) when not subsampled.
  Tensor indices() const;
  // Rows of t at this step's indices along this plate's dim (t's dims right
  // of the plate's position beyond event_dim count as event dims).
  Tensor subsample(const Tensor& t, int event_dim = 0) const;
  void process(Site& msg) override;

 private:
  void activate();
  void draw_indices(const Tensor* user_indices);
  Frame frame_;
  std::optional<int> user_dim_;
  bool subsampled_ = false;
  bool active_ = false;
};

inline Plate plate(std::string name, int64_t size, int64_t subsample_size = 0,
                   std::optional<int> dim = std::nullopt) {
  return Plate(std::move(name), size, subsample_size, dim);
}

// Pyro's pyro.subsample(data, event_dim): the rows of data at this step's
// indices along every enclosing subsampled plate's dim (data's dims right of
// the batch dims beyond event_dim are event dims). data has the full size N
// there, or 1 (broadcast, left alone); outside subsampled plates it comes
// back as it is. For model arguments when the plates draw the minibatch:
//   auto p = plate("data", N, B);
//   sample("obs", dist::Normal(z, 1.0f), subsample(data, 0));
Tensor subsample(const Tensor& data, int event_dim);

// A sequential plate (Pyro's `for i in pyro.plate(name, N)`, historically
// pyro.irange): iterating it runs the body once per index, each iteration in
// its own conditionally independent frame (vectorized = false, counter = the
// iteration number) that takes no batch dim. The value is the host index.
//   for (int64_t i : irange("locals", N))      // i = 0, 1, ..., N-1
//     sample("x_" + std::to_string(i), dist::Normal(loc[i], 1.0f));
//   for (int64_t i : irange("locals", N, B))   // B indices of [0, N), no repeats
//     ...                                      // scale N / B on every site inside
// Sites inside are not broadcast along any dim for it, a vectorized plate
// inside allocates its dim as if the sequential plate were absent, and
// max_plate_nesting does not count it. TraceGraph_ELBO keeps iterations
// apart: a site's downstream cost leaves out the sites of the plate's other
// iterations (Pyro's dense trace graph).
//
// Subsampled, the indices are drawn once, at construction, and recorded as
// the plate's site (is_subsample, value the int64 indices), as Plate does,
// so replaying the guide's trace gives the model the same indices. Being
// host-driven by nature, a subsampled (or user-indexed) sequential plate
// copies its indices to the host once: one device synchronisation per run.
//
// The frame of an iteration is entered when the loop reaches it and left
// when the loop advances, breaks or unwinds through an exception (the
// iterator owns it). One object may be iterated again (the same indices),
// but not from inside its own loop.
namespace detail {
// The iterator of a host loop whose steps are handler scopes (IRange,
// Markov): made, it enters step 0; ++ leaves step k and enters k + 1; gone
// (the loop's end, a break, an exception), it leaves the step it is in.
// Loop has count(), index_at(k) (the value of step k), enter(k), leave().
struct LoopEnd {};
template <class Loop>
class LoopIterator {
 public:
  explicit LoopIterator(Loop* l) : l_(l) {
    if (k_ < l_->count()) l_->enter(k_);
  }
  LoopIterator(LoopIterator&& o) noexcept : l_(o.l_), k_(o.k_) { o.l_ = nullptr; }
  LoopIterator& operator=(LoopIterator&&) = delete;
  LoopIterator(const LoopIterator&) = delete;
  ~LoopIterator() {
    if (l_) l_->leave();
  }
  int64_t operator*() const { return l_->index_at(k_); }
  LoopIterator& operator++() {
    l_->leave();
    if (++k_ < l_->count()) l_->enter(k_);
    return *this;
  }
  bool operator==(LoopEnd) const { return !l_ || k_ >= l_->count(); }
  bool operator!=(LoopEnd e) const { return !(*this == e); }

 private:
  Loop* l_;
  int64_t k_ = 0;
};
}  // namespace detail

class IRange : public Messenger {
 public:
  IRange(std::string name, int64_t size, int64_t subsample_size = 0);
  // User-supplied indices (int64, 1-D, each in [0, size)) instead of a random draw.
  IRange(std::string name, int64_t size, const Tensor& subsample);
  ~IRange() override;
  IRange(const IRange&) = delete;
  IRange& operator=(const IRange&) = delete;

  using Sentinel = detail::LoopEnd;
  using Iterator = detail::LoopIterator<IRange>;
  // Enters the first iteration's frame (ValueError when this plate, or an
  // active plate of the same name, is already being iterated).
  Iterator begin();
  Sentinel end() const { return {}; }

  const std::string& name() const { return frame_.name; }
  int64_t size() const { return frame_.size; }
  int64_t subsample_size() const { return frame_.subsample_size; }
  // Number of iterations (the subsample size).
  int64_t count() const { return frame_.subsample_size; }
  // The host index of iteration k.
  int64_t index_at(int64_t k) const { return subsampled_ ? host_indices_[static_cast<size_t>(k)] : k; }
  // This run's indices (int64 [B]); arange(N) when not subsampled.
  Tensor indices() const;
  // Whether an iteration's frame is active.
  bool active() const { return active_; }
  void process(Site& msg) override;

 private:
  friend class detail::LoopIterator<IRange>;
  void draw_indices(const Tensor* user_indices);
  void enter(int64_t k);
  void leave();
  Frame frame_;
  std::vector<int64_t> host_indices_;
  bool subsampled_ = false;
  bool active_ = false;
};

// Pyro's pyro.markov(range(n), history): a loop of n steps (t = 0, ...,
// n - 1) whose step t depends only on steps t - history, ..., t. For
// enumeration that is the license to recycle: an enumerated variable of
// step t may take the dim of one from step t - history - 1 or earlier, so a
// chain of any length needs history + 1 enumeration dims (plus those of
// the variables outside the loop), and TraceEnum_ELBO and infer_discrete
// eliminate the variables in the order they were created (forward
// filtering; infer_discrete then samples backwards, Viterbi at
// temperature 0).
//   for (int64_t t : markov(T)) {
//     x = sample("x_" + std::to_string(t), dist::Categorical(row_of(trans, x)), Infer{"parallel"});
//     sample("y_" + std::to_string(t), dist::Normal(at(locs, x), 1.0f), y_t);
//   }
// A site of step t that depends on a variable of a step more than history
// back breaks the promise: its value would be read from a recycled dim.
// The contraction then finds two variables at one dim and throws a
// ValueError naming them, where it can tell. The loop adds no plate and no
// dim, and changes nothing outside enumeration. Iterating enters step k
// (the Markov object is on the handler stack for the loop's duration).
class Markov : public Messenger {
 public:
  explicit Markov(int64_t n, int history = 1);
  ~Markov() override;
  Markov(const Markov&) = delete;
  Markov& operator=(const Markov&) = delete;

  using Sentinel = detail::LoopEnd;
  using Iterator = detail::LoopIterator<Markov>;
  Iterator begin();
  Sentinel end() const { return {}; }
  int64_t size() const { return n_; }
  int64_t count() const { return n_; }
  int64_t index_at(int64_t k) const { return k; }
  int history() const { return history_; }
  void process(Site& msg) override;

 private:
  friend class detail::LoopIterator<Markov>;
  void enter(int64_t k);
  void leave();
  int64_t n_;
  int history_;
  uint64_t context_;
  int64_t step_ = 0;
  bool active_ = false;
};

inline Markov markov(int64_t n, int history = 1) { return Markov(n, history); }

inline IRange irange(std::string name, int64_t size, int64_t subsample_size = 0) {
  return IRange(std::move(name), size, subsample_size);
}
inline IRange irange(std::string name, int64_t size, const Tensor& subsample) {
  return IRange(std::move(name), size, subsample);
}

namespace poutine {

// Records every site of a run.
class TraceMessenger : public Messenger {
 public:
  void postprocess(Site& msg) override;
  Trace trace;
};

class ReplayMessenger : public Messenger {
 public:
  explicit ReplayMessenger(const Trace& t) : t_(t) {}
  void process(Site& msg) override;

 private:
  const Trace& t_;
};

class ConditionMessenger : public Messenger {
 public:
  explicit ConditionMessenger(std::map<std::string, Tensor> data) : data_(std::move(data)) {}
  void process(Site& msg) override;
  std::set<std::string> used;

 private:
  std::map<std::string, Tensor> data_;
};

class SubstituteMessenger : public Messenger {
 public:
  explicit SubstituteMessenger(std::map<std::string, Tensor> data) : data_(std::move(data)) {}
  void process(Site& msg) override;
  std::set<std::string> used;

 private:
  std::map<std::string, Tensor> data_;
};

class BlockMessenger : public Messenger {
 public:
  BlockMessenger(std::set<std::string> hide, std::set<std::string> expose, bool hide_all)
      : hide_(std::move(hide)), expose_(std::move(expose)), hide_all_(hide_all) {}
  void process(Site& msg) override;

 private:
  std::set<std::string> hide_, expose_;
  bool hide_all_;
};

class ScaleMessenger : public Messenger {
 public:
  explicit ScaleMessenger(float f);
  void process(Site& msg) override { msg.scale *= f_; }

 private:
  float f_;
};

// Pyro's poutine.enum: every latent sample site marked enumerate =
// "parallel" (without a value from an inner handler such as replay) gets
// its whole support as its value, shaped [K, 1, ..., 1] with K at its own
// dim: first_available_dim (negative, left of every plate dim: -(max plate
// nesting + 1)) for the first such site of a run, one further left for each
// next, except that inside markov loops a dim whose variable lies more than
// a loop's history steps back is taken again (the rightmost such dim).
// Downstream sites then broadcast along those dims.
class EnumMessenger : public Messenger {
 public:
  explicit EnumMessenger(int first_available_dim);
  void process(Site& msg) override;

 private:
  int first_;
  int next_;
  // dim -> the markov steps of the variable that holds it now.
  std::map<int, std::vector<MarkovStep>> holder_;
};

// Pyro's config_enumerate: marks every latent sample site whose
// distribution has a finite support (Bernoulli, Categorical) with
// enumerate = `how` ("parallel"), unless the site sets its own.
class ConfigEnumerateMessenger : public Messenger {
 public:
  explicit ConfigEnumerateMessenger(std::string how) : how_(std::move(how)) {}
  void process(Site& msg) override;

 private:
  std::string how_;
};

// Pyro's LocScaleReparam (pyro.infer.reparam), for poutine::reparam: a
// latent site x ~ F(loc, scale) of a location-scale family (Normal,
// Laplace, Cauchy, Gumbel, Logistic, StudentT; expanded or to_event as the
// site has it)
// becomes
//   x_decentered ~ F(c loc, scale^c)   (a new latent site "<x>_decentered")
//   x = loc + scale^(1 - c) (x_decentered - c loc)   (x: observed, a Delta)
// with centeredness c: 1 keeps the model as it was, 0 is the non-centred
// form (x_decentered ~ F(0, 1)) that removes the funnel between a scale and
// the variables it scales. Unset, c is learned: a param "<x>_centered" in
// (0, 1), starting at 0.5.
struct LocScaleReparam {
  std::optional<float> centered;
};

class ReparamMessenger : public Messenger {
 public:
  explicit ReparamMessenger(std::map<std::string, LocScaleReparam> config) : config_(std::move(config)) {}
  void process(Site& msg) override;

 private:
  std::map<std::string, LocScaleReparam> config_;
};

// Data parallelism (ppl/parallel.hpp): each of `world` ranks runs the same
// model and guide on its own block of the data. Under shard, each named
// plate (every vectorised plate when `plates` is empty) of full size N is
// split into `world` contiguous blocks, rank r owning rows
// [floor(r N / W), floor((r + 1) N / W)) (n_r of them). A plate with
// subsample_size B draws its B distinct rows from its own block (on the
// device, as ever); a plate without subsampling takes its whole block, in
// order. Either way its indices() and subsample() give those rows and its
// scale is W n_r / B, so the mean over ranks of the ranks' losses and
// gradients (what optim::DistributedOptimizer applies) is an unbiased
// estimate of the whole data's: with equal blocks, the single-process
// estimator with minibatch W B. Wrap model and guide alike (an autoguide
// built from a sharded model draws from the same blocks). Plates given
// their own indices and sequential plates (irange) are not sharded; naming
// one is an error, as is B > n_r.
class ShardMessenger : public Messenger {
 public:
  ShardMessenger(int rank, int world, std::set<std::string> plates);
  // Whether plate `name` is sharded here (plates consult the stack when
  // they are built; there is nothing to do per site).
  bool covers(const std::string& name) const { return plates_.empty() || plates_.count(name) > 0; }
  bool names(const std::string& name) const { return plates_.count(name) > 0; }
  int rank() const { return rank_; }
  int world() const { return world_; }

 private:
  int rank_, world_;
  std::set<std::string> plates_;
};

// Pyro's poutine.do: an intervention. A sample site named in `data` is
// split in two: the program gets the given value, as if it were written
// into the model (so everything downstream sees it), and the handlers
// outside see the site drawn from its distribution as usual under its own
// name, a draw that reaches nothing downstream. (Inside, and in an inner
// trace, the intervened site is observed at the value under the name
// "<name>__CF", Pyro's.) Unlike condition, the value adds no likelihood
// term to the outer trace: do(model, {{"x", v}}) is p(. | do(x = v)).
class DoMessenger : public Messenger {
 public:
  explicit DoMessenger(std::map<std::string, Tensor> data) : data_(std::move(data)) {}
  void process(Site& msg) override;
  std::set<std::string> used;

 private:
  std::map<std::string, Tensor> data_;
};

// Pyro's poutine.uncondition: every observed sample site is drawn from its
// distribution instead (is_observed false; the observation is dropped), so
// a conditioned model samples its data, e.g. for prior predictive checks.
class UnconditionMessenger : public Messenger {
 public:
  void process(Site& msg) override;
};

// Pyro's poutine.lift: the param sites named in `priors` become latent
// sample sites (same name) drawn from their prior; the param's init and
// constraint are unused and the store gets no entry for it. A model with
// learned weights so becomes a Bayesian one (Pyro's random_module) whose
// weights a guide infers; nets registered with module(prefix, net) take the
// drawn weights (their sites are named prefix$$$param). A prior's shape is
// the param's (e.g. dist::Normal(0.0f, 1.0f).expand({out, in}).to_event(2)).
// The key "" gives the prior of every param not named. Params declared
// inside a plate are not lifted (a ValueError says so): a prior's draw
// would not carry the plate's frames.
class LiftMessenger : public Messenger {
 public:
  explicit LiftMessenger(std::map<std::string, dist::DistPtr> priors);
  void process(Site& msg) override;

 private:
  std::map<std::string, dist::DistPtr> priors_;
};

class MaskMessenger : public Messenger {
 public:
  explicit MaskMessenger(Tensor mask) : mask_(std::move(mask)) {}
  explicit MaskMessenger(bool keep) : keep_(keep) {}
  void process(Site& msg) override;

 private:
  Tensor mask_;
  std::optional<bool> keep_;
};

void check_all_used(const char* handler, const std::map<std::string, Tensor>& data, const std::set<std::string>& used);

// trace(fn).get_trace(args...) runs fn under a TraceMessenger.
template <class Fn>
class Traced {
 public:
  explicit Traced(Fn fn) : fn_(std::move(fn)) {}
  template <class... Args>
  Trace get_trace(Args&&... args) const {
    TraceMessenger m;
    {
      HandlerScope s(&m);
      fn_(std::forward<Args>(args)...);
    }
    return std::move(m.trace);
  }
  template <class... Args>
  auto operator()(Args&&... args) const {
    return fn_(std::forward<Args>(args)...);
  }

 private:
  Fn fn_;
};

template <class Fn>
Traced<Fn> trace(Fn fn) {
  return Traced<Fn>(std::move(fn));
}

template <class Fn>
auto replay(Fn fn, Trace t) {
  return [fn, t = std::make_shared<Trace>(std::move(t))](auto&&... args) {
    ReplayMessenger m(*t);
    HandlerScope s(&m);
    return fn(std::forward<decltype(args)>(args)...);
  };
}

// condition, substitute and do_: fn under a handler M built from data; with
// strict, every name of data must have been used by the run.
namespace detail {
template <class M, class Fn>
auto with_named_values(const char* handler, Fn fn, std::map<std::string, Tensor> data, bool strict) {
  return [handler, fn, data = std::move(data), strict](auto&&... args) {
    M m(data);
    auto run = [&] {
      HandlerScope s(&m);
      return fn(std::forward<decltype(args)>(args)...);
    };
    if constexpr (std::is_void_v<decltype(run())>) {
      run();
      if (strict) check_all_used(handler, data, m.used);
    } else {
      auto r = run();
      if (strict) check_all_used(handler, data, m.used);
      return r;
    }
  };
}
}  // namespace detail

// Observes the named sample sites at the given values. strict: every name
// must occur in the run (else ValueError naming the unused ones).
template <class Fn>
auto condition(Fn fn, std::map<std::string, Tensor> data, bool strict = false) {
  return detail::with_named_values<ConditionMessenger>("condition", std::move(fn), std::move(data), strict);
}

// Replaces the values of the named param (and latent sample) sites.
template <class Fn>
auto substitute(Fn fn, std::map<std::string, Tensor> data, bool strict = false) {
  return detail::with_named_values<SubstituteMessenger>("substitute", std::move(fn), std::move(data), strict);
}

// Hides sites from the handlers outside: those named in `hide`, or all but
// those in `expose` when expose is given, or all when both are empty.
template <class Fn>
auto block(Fn fn, std::set<std::string> hide = {}, std::set<std::string> expose = {}) {
  return [fn, hide = std::move(hide), expose = std::move(expose)](auto&&... args) {
    BlockMessenger m(hide, expose, hide.empty() && expose.empty());
    HandlerScope s(&m);
    return fn(std::forward<decltype(args)>(args)...);
  };
}

template <class Fn>
auto shard(Fn fn, int rank, int world, std::set<std::string> plates = {}) {
  auto m = std::make_shared<ShardMessenger>(rank, world, std::move(plates));  // checks the arguments once
  return [fn, m](auto&&... args) {
    HandlerScope s(m.get());
    return fn(std::forward<decltype(args)>(args)...);
  };
}

template <class Fn>
auto scale(Fn fn, float factor) {
  return [fn, factor](auto&&... args) {
    ScaleMessenger m(factor);
    HandlerScope s(&m);
    return fn(std::forward<decltype(args)>(args)...);
  };
}

template <class Fn, class M>
auto mask(Fn fn, M mask_value) {
  return [fn, mask_value](auto&&... args) {
    MaskMessenger m(mask_value);
    HandlerScope s(&m);
    return fn(std::forward<decltype(args)>(args)...);
  };
}

// Pyro's poutine.do (do is a C++ keyword). strict: every name must occur.
template <class Fn>
auto do_(Fn fn, std::map<std::string, Tensor> data, bool strict = false) {
  return detail::with_named_values<DoMessenger>("do", std::move(fn), std::move(data), strict);
}

template <class Fn>
auto uncondition(Fn fn) {
  return [fn](auto&&... args) {
    UnconditionMessenger m;
    HandlerScope s(&m);
    return fn(std::forward<decltype(args)>(args)...);
  };
}

template <class Fn>
auto lift(Fn fn, std::map<std::string, dist::DistPtr> priors) {
  auto m = std::make_shared<LiftMessenger>(std::move(priors));  // checks them once
  return [fn, m](auto&&... args) {
    HandlerScope s(m.get());
    return fn(std::forward<decltype(args)>(args)...);
  };
}

// Pyro's poutine.reparam(fn, config): the named sites reparameterised.
template <class Fn>
auto reparam(Fn fn, std::map<std::string, LocScaleReparam> config) {
  return [fn, config = std::move(config)](auto&&... args) {
    ReparamMessenger m(config);
    HandlerScope s(&m);
    return fn(std::forward<decltype(args)>(args)...);
  };
}

// Runs fn under EnumMessenger(first_available_dim).
template <class Fn>
auto enumerate(Fn fn, int first_available_dim) {
  return [fn, first_available_dim](auto&&... args) {
    EnumMessenger m(first_available_dim);
    HandlerScope s(&m);
    return fn(std::forward<decltype(args)>(args)...);
  };
}

// Pyro's config_enumerate(fn, default="parallel").
template <class Fn>
auto config_enumerate(Fn fn, std::string how = "parallel") {
  return [fn, how](auto&&... args) {
    ConfigEnumerateMessenger m(how);
    HandlerScope s(&m);
    return fn(std::forward<decltype(args)>(args)...);
  };
}

// Runs fn with the generator seeded (the previous generator state is
// restored afterwards, so a seeded call does not disturb the caller's draws).
template <class Fn>
auto seed(Fn fn, uint64_t s) {
  return [fn, s](auto&&... args) {
    const RngState saved = get_rng_state();
    set_seed(s);
    struct Restore {
      RngState st;
      ~Restore() { set_rng_state(st); }
    } restore{saved};
    return fn(std::forward<decltype(args)>(args)...);
  };
}

}  // namespace poutine
}  // namespace cuvi
