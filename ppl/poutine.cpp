#include "poutine.hpp"

#include <algorithm>
#include <atomic>
#include <sstream>

#include "../runtime/backend.hpp"

namespace cuvi {

namespace {
thread_local std::vector<Messenger*> t_stack;
thread_local std::vector<const Plate*> t_plates;
// Sequential plates with an iteration's frame active (they take no dim, so
// only their names matter to the plates entered inside them).
thread_local std::vector<const IRange*> t_seq;

// ValueError when a plate or an active iteration of a sequential plate
// already uses the name (sites would carry two frames of one name).
void check_plate_name_free(const std::string& name) {
  for (const Plate* p : t_plates)
    CUVI_CHECK(p->name() != name, ValueError, "plate '" << name << "' is already active");
  for (const IRange* r : t_seq)
    CUVI_CHECK(r->name() != name, ValueError,
               "plate '" << name << "' is already active (a sequential plate being iterated)");
}

// Removes the last occurrence of x (a plate leaving, possibly while an
// exception unwinds past plates entered after it).
template <class T>
void erase_last(std::vector<T*>& v, const void* x) {
  auto it = std::find(v.rbegin(), v.rend(), x);
  if (it != v.rend()) v.erase(std::next(it).base());
}

// The frame of a plate of `size` (N) subsampled to subsample_size (B; 0:
// none), or to the given indices (int64, 1-D) when `user` is set.
Frame plate_frame(std::string name, int64_t size, int64_t subsample_size, const Tensor* user) {
  CUVI_CHECK(size >= 0, ValueError, "plate '" << name << "': negative size " << size);
  Frame f;
  if (user) {
    CUVI_CHECK(user->defined() && user->dtype() == DType::kInt64 && user->dim() == 1, ValueError,
               "plate '" << name << "': subsample indices must be a 1-D int64 tensor");
    f.subsample_size = user->numel();
    CUVI_CHECK(f.subsample_size <= size, ValueError,
               "plate '" << name << "': " << f.subsample_size << " subsample indices for a plate of size " << size);
    f.subsampled = true;  // the user's indices are taken, even all N of them (a permutation)
  } else {
    CUVI_CHECK(subsample_size >= 0 && subsample_size <= size, ValueError,
               "plate '" << name << "': subsample_size " << subsample_size << " not in [0, " << size << "]");
    f.subsample_size = subsample_size == 0 ? size : subsample_size;
    f.subsampled = f.subsample_size < size;
  }
  f.name = std::move(name);
  f.size = size;
  return f;
}

// The innermost shard handler on the stack that covers plate `name`.
const poutine::ShardMessenger* shard_of(const std::string& name) {
  for (size_t i = t_stack.size(); i-- > 0;)
    if (const auto* m = dynamic_cast<const poutine::ShardMessenger*>(t_stack[i]); m && m->covers(name)) return m;
  return nullptr;
}

// Makes f rank m's block of its plate (poutine::shard).
void apply_shard(Frame& f, const poutine::ShardMessenger& m) {
  const int64_t W = m.world(), r = m.rank();
  CUVI_CHECK(f.size >= W, ValueError,
             "plate '" << f.name << "': size " << f.size << " is smaller than the " << W << " ranks it is sharded over");
  f.shard_rank = m.rank();
  f.shard_count = m.world();
  f.shard_begin = r * f.size / W;
  f.shard_size = (r + 1) * f.size / W - f.shard_begin;
  const int64_t B = f.subsampled ? f.subsample_size : f.shard_size;
  CUVI_CHECK(B <= f.shard_size, ValueError,
             "plate '" << f.name << "': subsample_size " << B << " exceeds rank " << r << "'s shard of " << f.shard_size
                       << " rows (size " << f.size << " over " << W << " ranks)");
  f.subsample_size = B;
  f.subsampled = true;
}

// A subsampled plate's indices for this run: a site of their own (is_subsample),
// so the guide's trace records them and replay hands the model the same
// minibatch; the default draw (or the user's indices) otherwise.
Tensor record_indices(const Frame& f, const Tensor* user) {
  Site msg;
  msg.name = f.name;
  msg.type = SiteType::kSample;
  msg.is_subsample = true;
  msg.frames.push_back(f);  // sizes for the default draw
  if (user) msg.value = *user;
  apply_stack(msg);
  CUVI_CHECK(msg.value.defined() && msg.value.dtype() == DType::kInt64 && msg.value.dim() == 1 &&
                 msg.value.numel() == f.subsample_size,
             ShapeError,
             "plate '" << f.name << "': indices of shape "
                       << (msg.value.defined() ? shape_str(msg.value.shape()) : std::string("(undefined)"))
                       << " for subsample size " << f.subsample_size);
  return msg.value;
}

// A site's density is not a distribution (factor): log_prob returns it.
class UnitDist final : public dist::Distribution {
 public:
  explicit UnitDist(Tensor log_factor) : lf_(std::move(log_factor)) {}
  std::string name() const override { return "Unit"; }
  dist::DistPtr clone() const override { return std::make_shared<UnitDist>(*this); }
  Shape batch_shape() const override { return lf_.shape(); }
  constraints::ConstraintPtr support() const override { return constraints::real; }
  Tensor log_prob(const Tensor&) const override { return lf_; }
  Tensor sample(const Shape&) const override { return zeros({0}, lf_.device()); }
  dist::DistPtr expand_ptr(const Shape& b) const override { return std::make_shared<UnitDist>(lf_.expand(b)); }
  Device device() const override { return lf_.device(); }

 private:
  Tensor lf_;
};

// Expands a sample site's distribution to the batch shape its plates imply,
// or reports the site, its shape and the plate it does not fit.
void broadcast_to_plates(Site& msg) {
  if (msg.frames.empty() || !msg.fn) return;
  Shape batch = msg.fn->batch_shape();
  int need = 0;
  // A sequential plate's iteration has no dim: it does not broadcast.
  for (const Frame& f : msg.frames)
    if (f.vectorized) need = std::max(need, -f.dim);
  Shape target = batch;
  if (static_cast<int>(target.size()) < need) target.insert(target.begin(), need - target.size(), 1);
  for (const Frame& f : msg.frames) {
    if (!f.vectorized) continue;
    int64_t& d = target[target.size() + f.dim];
    CUVI_CHECK(d == 1 || d == f.subsample_size, ShapeError,
               "site '" << msg.name << "': batch shape " << shape_str(batch) << " does not fit plate '" << f.name
                        << "' of size " << f.subsample_size << " at dim " << f.dim);
    d = f.subsample_size;
  }
  if (target != batch) msg.fn = msg.fn->expand_ptr(target);
}

// Rows of param site msg's tensor t (its value, or its leaf when the batch
// dims agree) at plate f's indices, along the plate's dim counted from the
// right of t's batch dims (t.dim() - event_dim of them). A dim of size 1, or
// one t does not have, broadcasts: t is returned as it is.
// Where plate f's dim lies in a tensor of `shape` whose rightmost event_dim
// dims are event dims: -1 when the tensor has no such dim or it has size 1
// (broadcast); any size other than the plate's full size is a ShapeError
// naming `what` (Pyro checks this under every plate, subsampled or not).
int64_t plate_dim_pos(const std::string& what, const Shape& shape, int event_dim, const Frame& f) {
  const int64_t pos = static_cast<int64_t>(shape.size()) - event_dim + f.dim;
  if (pos < 0 || shape[static_cast<size_t>(pos)] == 1) return -1;
  CUVI_CHECK(shape[static_cast<size_t>(pos)] == f.size, ShapeError,
             what << ": shape " << shape_str(shape) << " (event_dim " << event_dim << ") has size "
                  << shape[static_cast<size_t>(pos)] << " at plate '" << f.name << "' dim " << f.dim
                  << "; inside the plate it needs the plate's full size " << f.size
                  << " there (or 1), and a subsampled plate takes its rows");
  return pos;
}
// Rows taken from the store's leaf itself give it a row-sparse gradient
// (index_select's sparse_grad): an optimizer that updates rows then does
// O(B) work (optim.hpp, accepts_row_grads); grad() is the same either way.
Tensor take_rows(const Tensor& t, int64_t pos, const Frame& f) {
  const Tensor idx = f.indices.device() == t.device() ? f.indices : f.indices.to(t.device());
  return index_select(t, pos, idx, /*sparse_grad=*/t.is_leaf());
}

// A param site: the store's value (unless a handler has set one), and for
// an event_dim param the rows of every subsampled plate around it (sizes
// checked against every vectorized plate on the declared, constrained
// shape). Those rows come from the leaf, before the transform, when every
// such plate dim lies left of the constraint's event dims (same values, B
// rows of work).
void process_param(Site& msg) {
  if (!msg.event_dim) {
    if (!msg.done && !msg.value.defined()) {
      msg.value = msg.init_value.defined() ? param_store().param(msg.name, msg.init_value, msg.constraint)
                                           : param_store().param(msg.name, msg.init, msg.constraint);
      msg.unconstrained = param_store().unconstrained(msg.name);
    }
    return;
  }
  const int ed = *msg.event_dim;
  const std::string what = "param '" + msg.name + "'";
  CUVI_CHECK(ed >= 0, ValueError, what << ": event_dim must be >= 0, got " << ed);
  // (position, plate) of every subsampled plate's dim in `shape`.
  auto takes_in = [&](const Shape& shape) {
    std::vector<std::pair<int64_t, const Frame*>> takes;
    for (const Frame& f : msg.frames) {
      if (!f.vectorized) continue;
      const int64_t pos = plate_dim_pos(what, shape, ed, f);
      if (pos >= 0 && f.subsampled) takes.emplace_back(pos, &f);
    }
    return takes;
  };
  if (!msg.done && !msg.value.defined()) {
    const Tensor leaf = param_store().declare(msg.name, msg.init, msg.init_value.defined() ? &msg.init_value : nullptr,
                                              msg.constraint);
    msg.unconstrained = leaf;
    const constraints::ConstraintPtr c = param_store().constraint(msg.name);
    const Shape shape = c->constrained_shape(leaf.shape());
    const auto takes = takes_in(shape);
    const int64_t nd = leaf.dim();
    bool early = !takes.empty() && static_cast<int64_t>(shape.size()) == nd;
    for (const auto& [pos, f] : takes) early = early && pos < nd - c->event_dim();
    if (!early) {
      msg.value = c->transform(leaf);
      for (const auto& [pos, f] : takes) msg.value = take_rows(msg.value, pos, *f);
      return;
    }
    Tensor u = leaf;
    for (const auto& [pos, f] : takes) u = take_rows(u, pos, *f);
    msg.value = c->transform(u);
    return;
  }
  // A value set by a handler (substitute): its rows, as Pyro's plates take them.
  for (const auto& [pos, f] : takes_in(msg.value.shape())) msg.value = take_rows(msg.value, pos, *f);
}

void default_process(Site& msg) {
  if (msg.type == SiteType::kParam) {
    process_param(msg);
    return;
  }
  if (msg.done) return;
  if (msg.is_subsample) {
    // Drawn here, before postprocess, so the trace records the indices and
    // replay hands the guide's minibatch to the model.
    if (!msg.value.defined()) {
      const Frame& f = msg.frames.front();
      const Device dev = default_device();
      Tensor idx = Tensor::empty({f.subsample_size}, DType::kInt64, dev);
      const RngState s = next_rng();
      if (f.shard_count > 0 && f.subsample_size == f.shard_size)  // a whole shard, in order
        backend(dev).arange_i64(idx.data<int64_t>(), f.shard_size, f.shard_begin);
      else if (f.shard_count > 0)
        backend(dev).subsample(idx.data<int64_t>(), f.shard_size, f.subsample_size, s.seed, s.offset, f.shard_begin);
      else
        backend(dev).subsample(idx.data<int64_t>(), f.size, f.subsample_size, s.seed, s.offset);
      idx.impl()->distinct_indices = true;  // a permutation's prefix: no repeats
      msg.value = idx;
    }
    return;
  }
  if (msg.value.defined()) return;
  dist::detail::SiteScope scope(msg.name);
  msg.value = msg.fn->has_rsample() ? msg.fn->rsample() : msg.fn->sample();
}
}  // namespace

// ---- stack -------------------------------------------------------------------

HandlerScope::HandlerScope(Messenger* m) : m_(m) { t_stack.push_back(m); }
HandlerScope::~HandlerScope() {
  // Scopes are strictly nested, but be tolerant of exceptions unwinding.
  auto it = std::find(t_stack.rbegin(), t_stack.rend(), m_);
  if (it != t_stack.rend()) t_stack.erase(std::next(it).base());
}

namespace {
// The message through the handlers t_stack[0, top) (innermost first, until
// one stops it), the default processing, then the postprocessing of those
// it reached (outermost first).
void apply_stack_below(Site& msg, size_t top) {
  size_t lowest = top;
  for (size_t i = top; i-- > 0;) {
    lowest = i;
    t_stack[i]->process(msg);
    if (msg.stop) break;
  }
  if (msg.type == SiteType::kSample && !msg.is_subsample) broadcast_to_plates(msg);
  default_process(msg);
  for (size_t i = lowest; i < top; ++i) t_stack[i]->postprocess(msg);
}
}  // namespace

void apply_stack(Site& msg) { apply_stack_below(msg, t_stack.size()); }

// ---- trace -------------------------------------------------------------------

void Trace::add(Site s) {
  if (auto it = index_.find(s.name); it != index_.end()) {
    Site& old = sites_[it->second];
    // As Pyro: a param may be declared again (the latest site replaces the
    // earlier one, keeping its place); a sample site name is unique.
    auto kind = [](const Site& x) {
      return x.type == SiteType::kParam ? "param" : x.is_subsample ? "plate index" : "sample";
    };
    CUVI_CHECK(old.type == SiteType::kParam && s.type == SiteType::kParam, ValueError,
               "site '" << s.name << "' appears twice in the trace (as a " << kind(old) << " site, then as a "
                        << kind(s) << " site); sample site and plate names must be unique");
    // A later declaration a handler substituted has no leaf: the store's
    // leaf found earlier still fed the run, so keep it for the optimizer.
    Tensor leaf = s.unconstrained.defined() ? s.unconstrained : old.unconstrained;
    old = std::move(s);
    old.unconstrained = std::move(leaf);
    return;
  }
  index_[s.name] = sites_.size();
  sites_.push_back(std::move(s));
}
const Site& Trace::site(const std::string& name) const {
  auto it = index_.find(name);
  CUVI_CHECK(it != index_.end(), ValueError, "trace has no site named '" << name << "'");
  return sites_[it->second];
}
Site& Trace::site(const std::string& name) {
  auto it = index_.find(name);
  CUVI_CHECK(it != index_.end(), ValueError, "trace has no site named '" << name << "'");
  return sites_[it->second];
}
std::vector<std::string> Trace::site_names() const {
  std::vector<std::string> n;
  for (const Site& s : sites_) n.push_back(s.name);
  return n;
}
Tensor Trace::log_prob_sum() const {
  Tensor total;
  for (const Site& s : sites_) {
    if (s.type != SiteType::kSample || s.is_subsample) continue;
    dist::detail::SiteScope scope(s.name);
    Tensor lp = s.fn->log_prob(s.value);
    if (s.mask.defined()) lp = lp * s.mask;
    Tensor term = sum(lp) * s.scale;
    total = total.defined() ? total + term : term;
  }
  return total.defined() ? total : zeros({}, default_device());
}

std::string Trace::format_shapes(bool log_prob) const {
  // Rows of (site, what, shape text, plates text); the columns are padded
  // to their widest entry.
  struct Row {
    std::string site, what, shape, note;
    bool header = false;
  };
  auto dims = [](const Shape& s, size_t from, size_t to) {
    std::string out;
    for (size_t i = from; i < to; ++i) {
      if (!out.empty()) out += ' ';
      out += std::to_string(s[i]);
    }
    return out;
  };
  auto split = [&](const Shape& s, int event_dim) {
    const size_t e = static_cast<size_t>(std::min<int64_t>(event_dim, static_cast<int64_t>(s.size())));
    return dims(s, 0, s.size() - e) + " | " + dims(s, s.size() - e, s.size());
  };
  auto plates_of = [](const Site& s) {
    std::string plates;
    for (const Frame& f : s.frames) {
      if (!plates.empty()) plates += ", ";
      plates += f.name;
      if (f.vectorized) plates.append(" dim ").append(std::to_string(f.dim));
      plates.append(" size ").append(std::to_string(f.subsample_size));
      if (f.subsampled) plates.append("/").append(std::to_string(f.size));
    }
    return plates.empty() ? plates : "plates: " + plates;
  };
  std::vector<Row> rows;
  rows.push_back({"Param Sites:", "", "", "", true});
  for (const Site& s : sites_)
    if (s.type == SiteType::kParam)
      rows.push_back({s.name, "param", s.value.defined() ? dims(s.value.shape(), 0, s.value.dim()) : "?", plates_of(s)});
  rows.push_back({"Sample Sites:", "", "", "", true});
  for (const Site& s : sites_) {
    if (s.type != SiteType::kSample) continue;
    if (s.is_subsample) {
      const Frame* f = s.frames.empty() ? nullptr : &s.frames.back();
      rows.push_back({s.name, "plate", s.value.defined() ? dims(s.value.shape(), 0, s.value.dim()) : "?",
                      f ? std::to_string(f->subsample_size) + " of " + std::to_string(f->size) : ""});
      continue;
    }
    const std::string plates = plates_of(s);
    const int ed = s.fn ? s.fn->event_dim() : 0;
    const Shape b = s.fn ? s.fn->batch_shape() : Shape{}, e = s.fn ? s.fn->event_shape() : Shape{};
    Shape be = b;
    be.insert(be.end(), e.begin(), e.end());
    rows.push_back({s.name, "dist", split(be, ed),
                    (s.fn ? s.fn->name() : std::string("?")) + (s.is_observed ? " (observed)" : "") +
                        (plates.empty() ? "" : "  " + plates)});
    rows.push_back({"", "value", s.value.defined() ? split(s.value.shape(), ed) : "?", ""});
    if (log_prob && s.fn && s.value.defined()) {
      dist::detail::SiteScope scope(s.name);
      const Tensor lp = s.fn->log_prob(s.value);
      rows.push_back({"", "log_prob", dims(lp.shape(), 0, lp.dim()) + " |", ""});
    }
  }
  size_t w0 = 0, w1 = 0, w2 = 0;
  for (const Row& r : rows) {
    if (r.header) continue;  // headers span the row
    w0 = std::max(w0, r.site.size());
    w1 = std::max(w1, r.what.size());
    w2 = std::max(w2, r.shape.size());
  }
  std::ostringstream os;
  os << "Trace Shapes:\n";
  for (const Row& r : rows) {
    if (r.header) {
      os << " " << r.site << "\n";
      continue;
    }
    os << "  " << std::string(w0 - std::min(w0, r.site.size()), ' ') << r.site << " " << r.what
       << std::string(w1 - std::min(w1, r.what.size()), ' ') << "  " << r.shape;
    if (!r.note.empty()) os << std::string(w2 - std::min(w2, r.shape.size()), ' ') << "   " << r.note;
    os << "\n";
  }
  return os.str();
}

// ---- primitives ----------------------------------------------------------------

namespace {
Tensor sample_impl(const std::string& name, const dist::Distribution& d, const Tensor* obs) {
  Site msg;
  msg.name = name;
  msg.type = SiteType::kSample;
  msg.fn = d.clone();
  // An undefined obs makes the site latent (Pyro's obs=None), so the same
  // model serves inference and posterior prediction.
  if (obs && obs->defined()) {
    msg.value = *obs;
    msg.is_observed = true;
  }
  apply_stack(msg);
  return msg.value;
}
}  // namespace

Tensor sample(const std::string& name, const dist::Distribution& d) { return sample_impl(name, d, nullptr); }
Tensor sample(const std::string& name, const dist::Distribution& d, const Infer& infer) {
  CUVI_CHECK(infer.enumerate.empty() || infer.enumerate == "parallel", ValueError,
             "sample site '" << name << "': enumerate must be \"parallel\" (or empty), got \"" << infer.enumerate
                             << "\"");
  Site msg;
  msg.name = name;
  msg.type = SiteType::kSample;
  msg.fn = d.clone();
  msg.enumerate = infer.enumerate;
  apply_stack(msg);
  return msg.value;
}
Tensor sample(const std::string& name, const dist::Distribution& d, const Tensor& obs) {
  return sample_impl(name, d, &obs);
}

namespace {
// A param site: exactly one of init (lazy) and init_value is set.
Tensor param_site(const std::string& name, std::function<Tensor()> init, Tensor init_value,
                  const constraints::ConstraintPtr& c, std::optional<int> event_dim) {
  Site msg;
  msg.name = name;
  msg.type = SiteType::kParam;
  msg.init = std::move(init);
  msg.init_value = std::move(init_value);
  msg.constraint = c;
  msg.event_dim = event_dim;
  apply_stack(msg);
  return msg.value;
}
}  // namespace

Tensor param(const std::string& name, const std::function<Tensor()>& init, const constraints::ConstraintPtr& c,
             std::optional<int> event_dim) {
  return param_site(name, init, Tensor(), c, event_dim);
}
Tensor param(const std::string& name, const Tensor& init, const constraints::ConstraintPtr& c,
             std::optional<int> event_dim) {
  return param_site(name, nullptr, init, c, event_dim);
}
Tensor param(const std::string& name, float init, const constraints::ConstraintPtr& c, std::optional<int> event_dim) {
  return param(name, std::function<Tensor()>([init] { return full({}, init, default_device()); }), c, event_dim);
}

void factor(const std::string& name, const Tensor& log_factor) {
  Site msg;
  msg.name = name;
  msg.fn = std::make_shared<UnitDist>(log_factor);
  msg.value = zeros({0}, log_factor.device());
  msg.is_observed = true;
  apply_stack(msg);
}

Tensor deterministic(const std::string& name, const Tensor& value, int event_dim) {
  Site msg;
  msg.name = name;
  const int ed = event_dim < 0 ? static_cast<int>(value.dim()) : event_dim;
  msg.fn = std::make_shared<dist::Delta>(value, 0.0f, ed);
  msg.value = value;
  msg.is_observed = true;
  apply_stack(msg);
  return msg.value;
}

// ---- plates --------------------------------------------------------------------

Plate::Plate(std::string name, int64_t size, int64_t subsample_size, std::optional<int> dim)
    : frame_(plate_frame(std::move(name), size, subsample_size, nullptr)), user_dim_(dim) {
  if (const auto* m = shard_of(frame_.name)) apply_shard(frame_, *m);
  subsampled_ = frame_.subsampled;
  activate();
  draw_indices(nullptr);
}

Plate::Plate(std::string name, int64_t size, const Tensor& subsample, std::optional<int> dim)
    : frame_(plate_frame(std::move(name), size, 0, &subsample)), user_dim_(dim) {
  const auto* m = shard_of(frame_.name);
  CUVI_CHECK(!m || !m->names(frame_.name), ValueError,
             "plate '" << frame_.name << "' is given its own indices and cannot also be sharded");
  subsampled_ = true;
  activate();
  draw_indices(&subsample);
}

void Plate::activate() {
  CUVI_CHECK(!active_, ValueError, "plate '" << frame_.name << "' is already active");
  if (!user_dim_) {
    // The rightmost dim no active plate uses.
    int d = -1;
    for (bool taken = true; taken; ) {
      taken = false;
      for (const Plate* p : t_plates)
        if (p->frame_.dim == d) {
          taken = true;
          --d;
        }
    }
    frame_.dim = d;
  } else {
    frame_.dim = *user_dim_;
    CUVI_CHECK(frame_.dim < 0, ValueError, "plate '" << frame_.name << "': dim must be negative, got " << frame_.dim);
    for (const Plate* p : t_plates)
      CUVI_CHECK(p->frame_.dim != frame_.dim, ValueError,
                 "plate '" << frame_.name << "' at dim " << frame_.dim << " collides with enclosing plate '"
                           << p->frame_.name << "'");
  }
  check_plate_name_free(frame_.name);
  t_plates.push_back(this);
  t_stack.push_back(this);
  active_ = true;
}

void Plate::draw_indices(const Tensor* user_indices) {
  if (!subsampled_) return;
  // The plate itself is on the stack already but does not touch subsample
  // sites. On an error the plate leaves the stack (the destructor of a
  // half-built object never runs).
  try {
    frame_.indices = record_indices(frame_, user_indices);
  } catch (...) {
    exit();
    throw;
  }
}

void Plate::exit() {
  if (!active_) return;
  erase_last(t_stack, static_cast<Messenger*>(this));
  erase_last(t_plates, this);
  active_ = false;
}

Plate::~Plate() { exit(); }

PlateScope Plate::scope() {
  activate();
  return PlateScope(this);
}

PlateScope::~PlateScope() {
  if (p_) p_->exit();
}

Tensor Plate::indices() const {
  return subsampled_ ? frame_.indices : arange_i64(frame_.size, default_device());
}

Tensor Plate::subsample(const Tensor& t, int event_dim) const {
  if (!subsampled_) return t;
  const int64_t d = t.dim() - event_dim + frame_.dim;
  CUVI_CHECK(d >= 0 && d < t.dim() && t.size(d) == frame_.size, ShapeError,
             "plate '" << frame_.name << "'.subsample: tensor of shape " << shape_str(t.shape())
                       << " has no dim of size " << frame_.size << " at plate dim " << frame_.dim);
  Tensor idx = frame_.indices.device() == t.device() ? frame_.indices : frame_.indices.to(t.device());
  return index_select(t, d, idx);
}

void Plate::process(Site& msg) {
  if (msg.type == SiteType::kParam) {
    // An event_dim param is indexed by this plate (its rows are taken in
    // default_process, see param()); no scale: a param has no density.
    if (msg.event_dim) msg.frames.insert(msg.frames.begin(), frame_);
    return;
  }
  if (msg.type != SiteType::kSample || msg.is_subsample) return;
  msg.frames.insert(msg.frames.begin(), frame_);
  if (subsampled_) msg.scale *= plate_scale(frame_);
}

Tensor subsample(const Tensor& data, int event_dim) {
  CUVI_CHECK(data.defined(), ValueError, "subsample: undefined data tensor");
  CUVI_CHECK(event_dim >= 0, ValueError, "subsample: event_dim must be >= 0, got " << event_dim);
  Tensor t = data;
  // Outermost first, as sites list their frames; sizes checked under every plate.
  for (const Plate* p : t_plates) {
    const int64_t pos = plate_dim_pos("subsample", t.shape(), event_dim, p->frame());
    if (pos >= 0 && p->frame().subsampled) t = take_rows(t, pos, p->frame());
  }
  return t;
}

// ---- sequential plates ------------------------------------------------------------

IRange::IRange(std::string name, int64_t size, int64_t subsample_size)
    : frame_(plate_frame(std::move(name), size, subsample_size, nullptr)) {
  const auto* m = shard_of(frame_.name);
  CUVI_CHECK(!m || !m->names(frame_.name), ValueError,
             "plate '" << frame_.name << "' is sequential (irange); only plate() can be sharded");
  frame_.dim = 0;
  frame_.vectorized = false;
  subsampled_ = frame_.subsampled;
  draw_indices(nullptr);
}

IRange::IRange(std::string name, int64_t size, const Tensor& subsample)
    : frame_(plate_frame(std::move(name), size, 0, &subsample)) {
  frame_.dim = 0;
  frame_.vectorized = false;
  subsampled_ = true;
  draw_indices(&subsample);
}

IRange::~IRange() { leave(); }

void IRange::draw_indices(const Tensor* user_indices) {
  if (!subsampled_) return;
  // The plate is not on the stack yet, so nothing needs undoing on an error.
  frame_.indices = record_indices(frame_, user_indices);
  // The loop runs on the host: the one synchronisation of a sequential plate.
  host_indices_ = frame_.indices.to_vector_i64();
  for (int64_t i : host_indices_)
    CUVI_CHECK(i >= 0 && i < frame_.size, IndexError,
               "plate '" << frame_.name << "': index " << i << " not in [0, " << frame_.size << ")");
}

Tensor IRange::indices() const {
  return subsampled_ ? frame_.indices : arange_i64(frame_.size, default_device());
}

void IRange::enter(int64_t k) {
  CUVI_CHECK(!active_, ValueError, "plate '" << frame_.name << "' is already being iterated");
  check_plate_name_free(frame_.name);
  frame_.counter = k;
  t_seq.push_back(this);
  t_stack.push_back(this);
  active_ = true;
}

void IRange::leave() {
  if (!active_) return;
  // Tolerant of exceptions unwinding: remove this plate wherever it is.
  erase_last(t_stack, static_cast<Messenger*>(this));
  erase_last(t_seq, this);
  active_ = false;
}

IRange::Iterator IRange::begin() {
  CUVI_CHECK(!active_, ValueError, "plate '" << frame_.name << "' is already being iterated");
  return Iterator(this);
}

void IRange::process(Site& msg) {
  if (msg.type != SiteType::kSample || msg.is_subsample) return;
  msg.frames.insert(msg.frames.begin(), frame_);
  if (subsampled_) msg.scale *= plate_scale(frame_);
}

// ---- markov ----------------------------------------------------------------------

namespace {
std::atomic<uint64_t> g_markov_contexts{0};
}

Markov::Markov(int64_t n, int history) : n_(n), history_(history), context_(++g_markov_contexts) {
  CUVI_CHECK(n >= 0, ValueError, "markov: negative length " << n);
  CUVI_CHECK(history >= 0, ValueError, "markov: history must be >= 0, got " << history);
}

Markov::~Markov() { leave(); }

void Markov::enter(int64_t k) {
  step_ = k;
  t_stack.push_back(this);
  active_ = true;
}

void Markov::leave() {
  if (!active_) return;
  erase_last(t_stack, static_cast<Messenger*>(this));
  active_ = false;
}

Markov::Iterator Markov::begin() {
  CUVI_CHECK(!active_, ValueError, "markov: this loop is already being iterated");
  return Iterator(this);
}

void Markov::process(Site& msg) {
  if (msg.type == SiteType::kSample) msg.markov.push_back({context_, step_, history_});
}

// ---- handlers ------------------------------------------------------------------

namespace poutine {

void TraceMessenger::postprocess(Site& msg) {
  Site copy = msg;
  copy.init = nullptr;
  copy.init_value = Tensor();
  trace.add(std::move(copy));
}

EnumMessenger::EnumMessenger(int first_available_dim) : first_(first_available_dim), next_(first_available_dim) {
  CUVI_CHECK(first_available_dim < 0, ValueError,
             "enumerate: first_available_dim must be negative, got " << first_available_dim);
}

void EnumMessenger::process(Site& msg) {
  if (msg.type != SiteType::kSample || msg.is_observed || msg.is_subsample || msg.value.defined()) return;
  if (msg.enumerate != "parallel") return;
  CUVI_CHECK(msg.fn && msg.fn->has_enumerate_support(), ValueError,
             "sample site '" << msg.name << "' is marked for enumeration but " << (msg.fn ? msg.fn->name() : "it")
                             << " has no finite support (Bernoulli, Categorical)");
  // A dim is free for this site when its variable lies more than history
  // steps back in a markov loop around both (steps only grow in a loop).
  auto expired = [&](const std::vector<MarkovStep>& held) {
    for (const MarkovStep& h : held)
      for (const MarkovStep& m : msg.markov)
        if (h.context == m.context && m.step - h.step > m.history) return true;
    return false;
  };
  int dim = 0;
  for (int d = first_; d > next_ && dim == 0; --d)
    if (expired(holder_.at(d))) dim = d;
  if (dim == 0) dim = next_--;
  CUVI_CHECK(-dim <= kMaxDims, ShapeError,
             "enumerate: site '" << msg.name << "' would need dim " << dim << ", beyond the " << kMaxDims
                                 << " dims a tensor has (first available dim " << first_ << ")");
  for (const Frame& f : msg.frames)
    CUVI_CHECK(!f.vectorized || f.dim > first_, ValueError,
               "enumerate: plate '" << f.name << "' of site '" << msg.name << "' has dim " << f.dim
                                    << ", not right of the first enumeration dim " << first_
                                    << "; raise max_plate_nesting");
  // The distribution's own batch dims must not reach the enumeration dims
  // (a batch dim there is a plate the model did not declare).
  const Shape batch = msg.fn->batch_shape();
  for (size_t i = 0; i < batch.size(); ++i) {
    const int neg = static_cast<int>(i) - static_cast<int>(batch.size());
    CUVI_CHECK(neg > first_ || batch[i] == 1 || holder_.count(neg), ValueError,
               "enumerate: site '" << msg.name << "' has batch shape " << shape_str(batch) << " with size " << batch[i]
                                   << " at dim " << neg << ", where enumeration dims start (" << first_
                                   << "); declare a plate for it or raise max_plate_nesting");
  }
  dist::detail::SiteScope scope(msg.name);
  const Tensor v = msg.fn->support_values();  // [K] + event
  Shape shape{v.size(0)};
  shape.insert(shape.end(), static_cast<size_t>(-dim - 1), 1);
  const Shape ev = msg.fn->event_shape();
  shape.insert(shape.end(), ev.begin(), ev.end());
  msg.value = v.reshape(shape);
  msg.enum_dim = dim;
  holder_[dim] = msg.markov;
}

namespace {
// A location-scale family's (loc, scale) and a maker of the same family at
// other ones (StudentT keeps its df).
struct LocScale {
  Tensor loc, scale;
  std::function<dist::DistPtr(const Tensor&, const Tensor&)> make;
};
template <class D>
std::optional<LocScale> loc_scale_as(const dist::DistPtr& d) {
  if (auto* n = dynamic_cast<const D*>(d.get()))
    return LocScale{n->loc(), n->scale(), [](const Tensor& l, const Tensor& s) { return std::make_shared<D>(l, s); }};
  return std::nullopt;
}
std::optional<LocScale> loc_scale_of(const dist::DistPtr& d) {
  if (auto* n = dynamic_cast<const dist::StudentT*>(d.get())) {
    const Tensor df = n->df();
    return LocScale{n->loc(), n->scale(), [df](const Tensor& l, const Tensor& s) {
                      return std::make_shared<dist::StudentT>(df, l, s);
                    }};
  }
  for (auto f : {loc_scale_as<dist::Normal>, loc_scale_as<dist::Laplace>, loc_scale_as<dist::Cauchy>,
                 loc_scale_as<dist::Gumbel>, loc_scale_as<dist::Logistic>})
    if (auto ls = f(d)) return ls;
  return std::nullopt;
}
}  // namespace

void ReparamMessenger::process(Site& msg) {
  if (msg.type != SiteType::kSample || msg.is_subsample) return;
  const auto it = config_.find(msg.name);
  if (it == config_.end()) return;
  CUVI_CHECK(!msg.is_observed, ValueError,
             "reparam: site '" << msg.name << "' is observed; LocScaleReparam applies to latent sites");
  // Unwrap Dist holders and to_event (Independent), outermost first.
  dist::DistPtr d = msg.fn;
  int reinterpreted = 0;
  while (true) {
    if (auto* h = dynamic_cast<const dist::Dist*>(d.get())) {
      d = h->ptr();
    } else if (auto* ind = dynamic_cast<const dist::Independent*>(d.get())) {
      reinterpreted += ind->reinterpreted();
      d = ind->base();
    } else {
      break;
    }
  }
  const std::optional<LocScale> ls = loc_scale_of(d);
  CUVI_CHECK(ls.has_value(), ValueError,
             "reparam: site '" << msg.name << "' is " << msg.fn->name()
                               << "; LocScaleReparam needs Normal, Laplace, Cauchy, Gumbel, Logistic or StudentT");
  const Device dev = d->device();
  Tensor c = it->second.centered ? full({}, *it->second.centered, dev)
                                 : param(msg.name + "_centered", [dev] { return full({}, 0.5f, dev); },
                                         constraints::unit_interval);
  if (it->second.centered)
    CUVI_CHECK(*it->second.centered >= 0.0f && *it->second.centered <= 1.0f, ValueError,
               "reparam: site '" << msg.name << "': centered must be in [0, 1], got " << *it->second.centered);
  const Tensor loc0 = ls->loc * c;
  const Tensor scale0 = pow(ls->scale, c);
  dist::DistPtr base = ls->make(loc0, scale0)->expand_ptr(d->batch_shape());
  if (reinterpreted > 0) base = std::make_shared<dist::Independent>(base, reinterpreted);
  const Tensor x0 = sample(msg.name + "_decentered", dist::Dist(base));
  const Tensor x = ls->loc + pow(ls->scale, 1.0f - c) * (x0 - loc0);
  msg.fn = std::make_shared<dist::Delta>(x, 0.0f, msg.fn->event_dim());
  msg.value = x;
  msg.is_observed = true;
}

void ConfigEnumerateMessenger::process(Site& msg) {
  if (msg.type != SiteType::kSample || msg.is_observed || msg.is_subsample || !msg.enumerate.empty()) return;
  if (msg.fn && msg.fn->has_enumerate_support()) msg.enumerate = how_;
}

void ReplayMessenger::process(Site& msg) {
  if (msg.type != SiteType::kSample || msg.is_observed) return;
  if (!t_.contains(msg.name)) return;
  const Site& g = t_.site(msg.name);
  msg.value = g.value;
}

void ConditionMessenger::process(Site& msg) {
  if (msg.type != SiteType::kSample || msg.is_subsample) return;
  auto it = data_.find(msg.name);
  if (it == data_.end()) return;
  msg.value = it->second;
  msg.is_observed = true;
  used.insert(msg.name);
}

void DoMessenger::process(Site& msg) {
  if (msg.type != SiteType::kSample || msg.is_subsample || msg.intervener == this) return;
  const auto it = data_.find(msg.name);
  if (it == data_.end()) return;
  used.insert(msg.name);
  // The copy goes on to the handlers outside this one (as the site would
  // have), is drawn and recorded there; its value stays there.
  const auto self = std::find(t_stack.begin(), t_stack.end(), static_cast<Messenger*>(this));
  CUVI_CHECK(self != t_stack.end(), ValueError, "do: handler for site '" << msg.name << "' is not on the stack");
  Site copy = msg;
  copy.intervener = this;
  apply_stack_below(copy, static_cast<size_t>(self - t_stack.begin()));
  // The program gets the intervention; no handler outside sees this half.
  msg.name += "__CF";
  msg.value = it->second;
  msg.is_observed = true;
  msg.stop = true;
}

void UnconditionMessenger::process(Site& msg) {
  if (msg.type != SiteType::kSample || msg.is_subsample || !msg.is_observed) return;
  msg.is_observed = false;
  msg.value = Tensor();
}

void SubstituteMessenger::process(Site& msg) {
  auto it = data_.find(msg.name);
  if (it == data_.end()) return;
  if (msg.type == SiteType::kParam) {
    msg.value = it->second;
    msg.done = true;
  } else if (!msg.is_observed && !msg.is_subsample) {
    msg.value = it->second;
  } else {
    return;
  }
  used.insert(msg.name);
}

void BlockMessenger::process(Site& msg) {
  bool hidden;
  if (hide_all_) hidden = true;
  else if (!expose_.empty()) hidden = !expose_.count(msg.name);
  else hidden = hide_.count(msg.name) > 0;
  if (hidden) msg.stop = true;
}

ScaleMessenger::ScaleMessenger(float f) : f_(f) {
  CUVI_CHECK(f > 0.0f, ValueError, "scale: factor must be positive, got " << f);
}

LiftMessenger::LiftMessenger(std::map<std::string, dist::DistPtr> priors) : priors_(std::move(priors)) {
  for (const auto& [name, d] : priors_)
    CUVI_CHECK(d != nullptr, ValueError, "lift: no prior for '" << name << "'");
}

void LiftMessenger::process(Site& msg) {
  if (msg.type != SiteType::kParam) return;
  auto it = priors_.find(msg.name);
  if (it == priors_.end()) it = priors_.find("");
  if (it == priors_.end()) return;
  // Plates entered inside the lifted function process a message before
  // lift does (while it is still a param), so its draw would miss them.
  const auto self = std::find(t_stack.begin(), t_stack.end(), static_cast<Messenger*>(this));
  for (auto m = self; m != t_stack.end(); ++m)
    CUVI_CHECK(!dynamic_cast<const Plate*>(*m) && !dynamic_cast<const IRange*>(*m), ValueError,
               "lift: param '" << msg.name << "' is declared inside a plate; lift params declared outside plates");
  msg.type = SiteType::kSample;
  msg.fn = it->second;
  msg.is_observed = false;
  msg.constraint = nullptr;
  msg.init = nullptr;
  msg.init_value = Tensor();
  msg.event_dim.reset();
}

ShardMessenger::ShardMessenger(int rank, int world, std::set<std::string> plates)
    : rank_(rank), world_(world), plates_(std::move(plates)) {
  CUVI_CHECK(world >= 1 && rank >= 0 && rank < world, ValueError,
             "shard: rank " << rank << " is not in [0, " << world << ")");
}

void MaskMessenger::process(Site& msg) {
  if (msg.type != SiteType::kSample) return;
  Tensor m = keep_ ? full({}, *keep_ ? 1.0f : 0.0f, msg.fn ? msg.fn->device() : default_device()) : mask_;
  msg.mask = msg.mask.defined() ? msg.mask * m : m;
}

void check_all_used(const char* handler, const std::map<std::string, Tensor>& data,
                    const std::set<std::string>& used) {
  std::ostringstream unused;
  int n = 0;
  for (const auto& [k, v] : data)
    if (!used.count(k)) unused << (n++ ? ", " : "") << "'" << k << "'";
  CUVI_CHECK(n == 0, ValueError, handler << ": site(s) " << unused.str() << " never appeared in the run");
}

}  // namespace poutine
}  // namespace cuvi
