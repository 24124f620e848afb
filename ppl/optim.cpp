#include "optim.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <optional>

#include "../runtime/backend.hpp"
#include "../runtime/ops.hpp"

namespace cuvi::optim {

namespace {

// Groups slots by device so each device gets one multi-tensor launch.
template <class Hyper, class Launch>
void launch_grouped(std::vector<std::pair<Device, std::pair<kern::OptSlot, Hyper>>>& items, Launch&& launch) {
  while (!items.empty()) {
    const Device dev = items.front().first;
    std::vector<kern::OptSlot> slots;
    std::vector<Hyper> hyper;
    std::vector<std::pair<Device, std::pair<kern::OptSlot, Hyper>>> rest;
    for (auto& it : items) {
      if (it.first == dev) {
        slots.push_back(it.second.first);
        hyper.push_back(it.second.second);
      } else {
        rest.push_back(it);
      }
    }
    launch(backend(dev), slots, hyper);
    items.swap(rest);
  }
}

void check_param(const std::string& name, const Tensor& p) {
  CUVI_CHECK(p.defined() && p.dtype() == DType::kFloat32, DTypeError,
             "optimizer: parameter '" << name << "' must be a float32 tensor");
  // The dense gradient as it is (grad() would first add the row parts in).
  const Tensor g = p.impl()->grad ? Tensor(p.impl()->grad) : Tensor();
  CUVI_CHECK(!g.defined() || g.shape() == p.shape(), ShapeError,
             "optimizer: gradient of '" << name << "' has shape " << shape_str(g.shape()) << ", parameter "
                                        << shape_str(p.shape()));
  for (const RowGrad& r : p.row_grads()) {
    Shape want = p.shape();
    const bool dim_ok = r.dim >= 0 && r.dim < p.dim();
    if (dim_ok) want[static_cast<size_t>(r.dim)] = r.indices.numel();
    CUVI_CHECK(dim_ok && r.values.shape() == want && r.values.device() == p.device(), ShapeError,
               "optimizer: row gradient of '" << name << "' has shape " << shape_str(r.values.shape()) << " for "
                                              << r.indices.numel() << " rows of dim " << r.dim << ", parameter "
                                              << shape_str(p.shape()));
  }
}

}  // namespace

StatefulOptimizer::Slot& StatefulOptimizer::slot(const std::string& name, const Tensor& p, double lr0) {
  // A kept buffer the launch can use as it is: a loaded state may hold
  // anything, and the kernels trust the slot's pointers and lengths.
  const auto fits = [&](const Tensor& b) {
    return b.defined() && b.dtype() == DType::kFloat32 && b.shape() == p.shape() && b.device() == p.device();
  };
  auto it = slots_.find(name);
  if (it != slots_.end() && fits(it->second.s0) && (!buffer1_ || fits(it->second.s1)) &&
      (!buffer2_ || fits(it->second.s2)))
    return it->second;
  Slot s;
  s.s0 = zeros(p.shape(), p.device());
  if (buffer1_) s.s1 = zeros(p.shape(), p.device());
  if (buffer2_) s.s2 = zeros(p.shape(), p.device());
  s.lr = lr0;
  return slots_[name] = s;
}

OptimizerState StatefulOptimizer::state() const {
  OptimizerState st;
  st.optimizer = name();
  for (const auto& [n, s] : slots_) {
    st.tensors[n][buffer0_] = s.s0;
    if (buffer1_ && s.s1.defined()) st.tensors[n][buffer1_] = s.s1;
    if (buffer2_ && s.s2.defined()) st.tensors[n][buffer2_] = s.s2;
    st.scalars[n]["step"] = s.step;
    st.scalars[n]["lr"] = s.lr;
  }
  return st;
}

void StatefulOptimizer::load_state(const OptimizerState& st) {
  CUVI_CHECK(st.optimizer.empty() || st.optimizer == name(), ValueError,
             name() << ".load_state: state was saved by " << st.optimizer);
  std::map<std::string, Slot> next;
  for (const auto& [n, ts] : st.tensors) {
    Slot s;
    // Every buffer this optimizer keeps must be there (a step would
    // otherwise start a missing one from zero, silently not resuming).
    const auto take = [&](const char* key, Tensor& into) {
      if (!key) return;
      auto a = ts.find(key);
      CUVI_CHECK(a != ts.end(), ValueError, name() << ".load_state: parameter '" << n << "' lacks " << key);
      into = a->second;
    };
    take(buffer0_, s.s0);
    take(buffer1_, s.s1);
    take(buffer2_, s.s2);
    auto sc = st.scalars.find(n);
    if (sc != st.scalars.end()) {
      if (auto x = sc->second.find("step"); x != sc->second.end()) s.step = x->second;
      if (auto x = sc->second.find("lr"); x != sc->second.end()) s.lr = x->second;
    }
    next[n] = s;
  }
  slots_.swap(next);
}

Adam::Adam(AdamOptions o) : o_(o) {
  CUVI_CHECK(o.lr >= 0 && o.eps >= 0 && o.betas.first >= 0 && o.betas.first < 1 && o.betas.second >= 0 &&
                 o.betas.second < 1,
             ValueError, "Adam: invalid options (lr " << o.lr << ", betas " << o.betas.first << ", " << o.betas.second
                                                      << ", eps " << o.eps << ")");
}

template <class Hyper, class Make, class Launch>
void StatefulOptimizer::step_all(const NamedParams& params, double lr0, Make&& make, Launch&& launch) {
  for (const auto& [name, p] : params) check_param(name, p);
  // Pass 1: every gradient source (summing row parts into a dense gradient,
  // or coalescing them), which may allocate and throw; nothing has changed yet.
  struct Source {
    const std::string* name;
    const Tensor* p;
    Tensor dense;
    int rows = -1;  // index into rows_held: a row-sparse update
  };
  std::vector<RowGrad> rows_held;  // coalesced row gradients, alive until the launches are queued
  std::vector<Source> sources;
  for (const auto& [name, p] : params) {
    const std::vector<RowGrad>& parts = p.row_grads();
    bool one_dim = !parts.empty();
    for (const RowGrad& r : parts) one_dim = one_dim && r.dim == parts.front().dim;
    // Row parts alone (along one dim), to an optimizer that updates rows: O(rows) work.
    Source src{&name, &p, Tensor(), -1};
    if (one_dim && !p.impl()->grad && accepts_row_grads()) {
      rows_held.push_back(coalesce_row_grads(parts, p.size(parts.front().dim)));
      src.rows = static_cast<int>(rows_held.size()) - 1;
    } else {
      src.dense = p.grad();
      if (!src.dense.defined()) continue;
    }
    sources.push_back(std::move(src));
  }
  // Pass 2: state buffers for parameters seen for the first time, or whose
  // buffers no longer fit them (put back as they were if an allocation
  // fails), then the step counts and the launch.
  std::vector<std::pair<std::string, std::optional<Slot>>> replaced;  // name, the slot before (none: new)
  try {
    for (const Source& src : sources) {
      auto it = slots_.find(*src.name);
      std::optional<Slot> before;
      if (it != slots_.end()) before = it->second;
      const Slot& now = slot(*src.name, *src.p, lr0);
      if (!before || before->s0.impl() != now.s0.impl()) replaced.emplace_back(*src.name, std::move(before));
    }
  } catch (...) {
    for (auto r = replaced.rbegin(); r != replaced.rend(); ++r) {
      if (r->second) slots_[r->first] = *r->second;
      else slots_.erase(r->first);
    }
    throw;
  }
  std::vector<std::pair<Device, std::pair<kern::OptSlot, Hyper>>> items;
  for (const Source& src : sources) {
    const Tensor& p = *src.p;
    kern::OptSlot os;
    if (src.rows >= 0) {
      const RowGrad& r = rows_held[static_cast<size_t>(src.rows)];
      os.grad = r.values.template data<float>();
      os.n = r.values.numel();
      os.rows = r.indices.template data<int64_t>();
      os.k = r.indices.numel();
      os.dim_size = p.size(r.dim);
      os.inner = 1;
      for (int64_t i = r.dim + 1; i < p.dim(); ++i) os.inner *= p.size(i);
    } else {
      os.grad = src.dense.template data<float>();
      os.n = p.numel();
    }
    Slot& s = slot(*src.name, p, lr0);
    s.step += 1;
    os.param = p.template data<float>();
    os.state0 = s.s0.template data<float>();
    os.state1 = buffer1_ ? s.s1.template data<float>() : nullptr;
    os.state2 = buffer2_ ? s.s2.template data<float>() : nullptr;
    if (os.n > 0) items.push_back({p.device(), {os, make(s)}});
  }
  launch_grouped(items, launch);
}

namespace {
kern::AdamHyper adam_hyper(float lr, std::pair<float, float> betas, float eps, float wd, double step, float clip,
                           int clipped_form) {
  return kern::AdamHyper{lr,
                         betas.first,
                         betas.second,
                         eps,
                         wd,
                         static_cast<float>(1.0 - std::pow(double(betas.first), step)),
                         static_cast<float>(1.0 - std::pow(double(betas.second), step)),
                         clip,
                         clipped_form};
}
}  // namespace

void Adam::step(const NamedParams& params) {
  step_all<kern::AdamHyper>(
      params, o_.lr,
      [&](Slot& s) { return adam_hyper(o_.lr * lr_scale_, o_.betas, o_.eps, o_.weight_decay, s.step, 0.0f, 0); },
      [](Backend& b, auto& sl, auto& hy) { b.adam_step(sl, hy); });
}

AdamW::AdamW(AdamWOptions o) : o_(o) {
  CUVI_CHECK(o.lr >= 0 && o.eps >= 0 && o.weight_decay >= 0 && o.betas.first >= 0 && o.betas.first < 1 &&
                 o.betas.second >= 0 && o.betas.second < 1,
             ValueError, "AdamW: invalid options (lr " << o.lr << ", betas " << o.betas.first << ", "
                                                       << o.betas.second << ", eps " << o.eps << ", weight_decay "
                                                       << o.weight_decay << ")");
}

void AdamW::step(const NamedParams& params) {
  step_all<kern::AdamHyper>(
      params, o_.lr,
      [&](Slot& s) {
        const float lr = o_.lr * lr_scale_;
        kern::AdamHyper h = adam_hyper(lr, o_.betas, o_.eps, 0.0f, s.step, 0.0f, 0);
        h.keep = 1.0f - lr * o_.weight_decay;
        return h;
      },
      [](Backend& b, auto& sl, auto& hy) { b.adam_step(sl, hy); });
}

SparseAdam::SparseAdam(SparseAdamOptions o) : o_(o) {
  CUVI_CHECK(o.lr >= 0 && o.eps >= 0 && o.betas.first >= 0 && o.betas.first < 1 && o.betas.second >= 0 &&
                 o.betas.second < 1,
             ValueError, "SparseAdam: invalid options (lr " << o.lr << ", betas " << o.betas.first << ", "
                                                            << o.betas.second << ", eps " << o.eps << ")");
}

void SparseAdam::step(const NamedParams& params) {
  step_all<kern::AdamHyper>(
      params, o_.lr,
      // torch's SparseAdam: step size lr sqrt(bc2) / bc1 and denominator
      // sqrt(v) + eps, which is ClippedAdam's form (without clipping).
      [&](Slot& s) { return adam_hyper(o_.lr * lr_scale_, o_.betas, o_.eps, 0.0f, s.step, 0.0f, 1); },
      [](Backend& b, auto& sl, auto& hy) { b.adam_step(sl, hy); });
}

ClippedAdam::ClippedAdam(ClippedAdamOptions o) : o_(o) {
  CUVI_CHECK(o.lr >= 0 && o.clip_norm > 0 && o.lrd > 0, ValueError,
             "ClippedAdam: invalid options (lr " << o.lr << ", clip_norm " << o.clip_norm << ", lrd " << o.lrd << ")");
}

void ClippedAdam::step(const NamedParams& params) {
  step_all<kern::AdamHyper>(
      params, o_.lr,
      [&](Slot& s) {
        s.lr *= o_.lrd;  // pyro.optim.ClippedAdam decays first, every step
        return adam_hyper(static_cast<float>(s.lr) * lr_scale_, o_.betas, o_.eps, o_.weight_decay, s.step,
                          o_.clip_norm, 1);
      },
      [](Backend& b, auto& sl, auto& hy) { b.adam_step(sl, hy); });
}

SGD::SGD(SGDOptions o) : o_(o) {
  CUVI_CHECK(o.lr >= 0 && o.momentum >= 0 && (!o.nesterov || (o.momentum > 0 && o.dampening == 0)), ValueError,
             "SGD: invalid options (nesterov needs momentum > 0 and dampening 0)");
  buffer0_ = "momentum_buffer";
  buffer1_ = nullptr;
}

void SGD::step(const NamedParams& params) {
  step_all<kern::SgdHyper>(
      params, o_.lr,
      [&](Slot& s) {
        return kern::SgdHyper{o_.lr * lr_scale_, o_.momentum,          o_.dampening, o_.weight_decay,
                              o_.nesterov ? 1 : 0, s.step == 1 ? 1 : 0};
      },
      [](Backend& b, auto& sl, auto& hy) { b.sgd_step(sl, hy); });
}

Adagrad::Adagrad(AdagradOptions o) : o_(o) {
  CUVI_CHECK(o.lr >= 0 && o.eps >= 0, ValueError, "Adagrad: invalid options");
  buffer0_ = "sum";
  buffer1_ = nullptr;
}

void Adagrad::step(const NamedParams& params) {
  step_all<kern::AdagradHyper>(
      params, o_.lr, [&](Slot&) { return kern::AdagradHyper{o_.lr * lr_scale_, o_.eps, o_.weight_decay}; },
      [](Backend& b, auto& sl, auto& hy) { b.adagrad_step(sl, hy); });
}

namespace {
// One option's check: "RMSprop: alpha must be in [0, 1], got 1.5".
void check_option(bool ok, const char* optimizer, const char* option, const char* rule, double value) {
  CUVI_CHECK(ok, ValueError, optimizer << ": " << option << " must be " << rule << ", got " << value);
}
}  // namespace

RMSprop::RMSprop(RMSpropOptions o) : o_(o) {
  // torch's checks, and alpha <= 1 (above it square_avg can turn negative).
  check_option(o.lr >= 0, "RMSprop", "lr", ">= 0", o.lr);
  check_option(o.alpha >= 0 && o.alpha <= 1, "RMSprop", "alpha", "in [0, 1]", o.alpha);
  check_option(o.eps >= 0, "RMSprop", "eps", ">= 0", o.eps);
  check_option(o.weight_decay >= 0, "RMSprop", "weight_decay", ">= 0", o.weight_decay);
  check_option(o.momentum >= 0, "RMSprop", "momentum", ">= 0", o.momentum);
  buffer0_ = "square_avg";
  buffer1_ = o.momentum > 0 ? "momentum_buffer" : nullptr;
  buffer2_ = o.centered ? "grad_avg" : nullptr;
}

void RMSprop::step(const NamedParams& params) {
  step_all<kern::RmspropHyper>(
      params, o_.lr,
      [&](Slot&) {
        return kern::RmspropHyper{o_.lr * lr_scale_, o_.alpha,    o_.eps, o_.weight_decay,
                                  o_.momentum,       o_.centered ? 1 : 0};
      },
      [](Backend& b, auto& sl, auto& hy) { b.rmsprop_step(sl, hy); });
}

Adadelta::Adadelta(AdadeltaOptions o) : o_(o) {
  check_option(o.lr >= 0, "Adadelta", "lr", ">= 0", o.lr);
  check_option(o.rho >= 0 && o.rho <= 1, "Adadelta", "rho", "in [0, 1]", o.rho);
  check_option(o.eps >= 0, "Adadelta", "eps", ">= 0", o.eps);
  check_option(o.weight_decay >= 0, "Adadelta", "weight_decay", ">= 0", o.weight_decay);
  buffer0_ = "square_avg";
  buffer1_ = "acc_delta";
}

void Adadelta::step(const NamedParams& params) {
  step_all<kern::AdadeltaHyper>(
      params, o_.lr,
      [&](Slot&) { return kern::AdadeltaHyper{o_.lr * lr_scale_, o_.rho, o_.eps, o_.weight_decay}; },
      [](Backend& b, auto& sl, auto& hy) { b.adadelta_step(sl, hy); });
}

// ---- schedules -------------------------------------------------------------------

void LRScheduler::step(const NamedParams& params) {
  apply();  // picks up a set_lr_scale() on this wrapper
  inner_->step(params);
}

void LRScheduler::scheduler_step(float metric) {
  CUVI_THROW(ValueError, name() << ".scheduler_step: this schedule takes no metric (got " << metric
                                << "); call scheduler_step()");
}

void LRScheduler::scheduler_step() {
  ++epoch_;
  try {
    apply();  // a factor that throws (LambdaLR) leaves the epoch as it was
  } catch (...) {
    --epoch_;
    throw;
  }
}

namespace {

// A schedule wrapping another schedule: the inner one's entries
// (kStateKey, and its own inner ones) move one level down, under
// kStateKey + "/inner" + the rest of their key, so that every level keeps
// its own epoch and counters. Params are never named so (kStateKey starts
// with "__").
constexpr const char* kInnerSuffix = "/inner";

bool is_schedule_key(const std::string& k) {
  const std::string key = LRScheduler::kStateKey;
  return k.compare(0, key.size(), key) == 0 &&
         (k.size() == key.size() || k.compare(key.size(), std::strlen(kInnerSuffix), kInnerSuffix) == 0);
}

}  // namespace

OptimizerState LRScheduler::state() const {
  OptimizerState st = inner_->state();
  const std::string key = kStateKey;
  std::vector<std::pair<std::string, std::map<std::string, double>>> moved;
  for (auto it = st.scalars.begin(); it != st.scalars.end();) {
    if (is_schedule_key(it->first)) {
      moved.emplace_back(key + kInnerSuffix + it->first.substr(key.size()), std::move(it->second));
      it = st.scalars.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [k, m] : moved) st.scalars[k] = std::move(m);
  st.scalars[kStateKey]["epoch"] = static_cast<double>(epoch_);
  return st;
}

void LRScheduler::load_state(const OptimizerState& s) {
  OptimizerState inner = s;
  int64_t epoch = 0;
  if (auto it = inner.scalars.find(kStateKey); it != inner.scalars.end()) {
    auto e = it->second.find("epoch");
    CUVI_CHECK(e != it->second.end() && e->second >= 0 && std::floor(e->second) == e->second, ValueError,
               name() << ".load_state: bad schedule epoch");
    epoch = static_cast<int64_t>(e->second);
    inner.scalars.erase(it);
  }
  {
    // The inner schedule's entries come back up one level (see state()).
    const std::string key = kStateKey, nested = key + kInnerSuffix;
    std::vector<std::pair<std::string, std::map<std::string, double>>> moved;
    for (auto it = inner.scalars.begin(); it != inner.scalars.end();) {
      if (it->first.compare(0, nested.size(), nested) == 0 && is_schedule_key(it->first)) {
        moved.emplace_back(key + it->first.substr(nested.size()), std::move(it->second));
        it = inner.scalars.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [k, m] : moved) inner.scalars[k] = std::move(m);
  }
  {
    // The schedule's factor at the loaded epoch is checked before anything
    // changes (a LambdaLR may reject it).
    const int64_t old = epoch_;
    epoch_ = epoch;
    try {
      (void)factor();
    } catch (...) {
      epoch_ = old;
      throw;
    }
    epoch_ = old;
  }
  inner_->load_state(inner);  // validates; throws before anything changes
  epoch_ = epoch;
  apply();
}

StepLR::StepLR(const Optimizer& inner, StepLROptions o) : LRScheduler(inner), o_(o) {
  CUVI_CHECK(o.step_size >= 1 && o.gamma > 0, ValueError,
             "StepLR: invalid options (step_size " << o.step_size << ", gamma " << o.gamma << ")");
  apply();
}

double StepLR::factor() const {
  return std::pow(static_cast<double>(o_.gamma), static_cast<double>(epoch_ / o_.step_size));
}

ExponentialLR::ExponentialLR(const Optimizer& inner, ExponentialLROptions o) : LRScheduler(inner), o_(o) {
  CUVI_CHECK(o.gamma > 0, ValueError, "ExponentialLR: invalid options (gamma " << o.gamma << ")");
  apply();
}

double ExponentialLR::factor() const {
  return std::pow(static_cast<double>(o_.gamma), static_cast<double>(epoch_));
}

MultiStepLR::MultiStepLR(const Optimizer& inner, MultiStepLROptions o) : LRScheduler(inner), o_(std::move(o)) {
  CUVI_CHECK(o_.gamma > 0, ValueError, "MultiStepLR: invalid options (gamma " << o_.gamma << ")");
  for (size_t i = 0; i < o_.milestones.size(); ++i)
    CUVI_CHECK(o_.milestones[i] >= 1 && (i == 0 || o_.milestones[i] > o_.milestones[i - 1]), ValueError,
               "MultiStepLR: milestones must be >= 1 and strictly increasing; milestone " << i << " is "
                                                                                     << o_.milestones[i]);
  apply();
}

double MultiStepLR::factor() const {
  const auto passed = std::upper_bound(o_.milestones.begin(), o_.milestones.end(), epoch_) - o_.milestones.begin();
  return std::pow(static_cast<double>(o_.gamma), static_cast<double>(passed));
}

LambdaLR::LambdaLR(const Optimizer& inner, std::function<double(int64_t)> f) : LRScheduler(inner), f_(std::move(f)) {
  CUVI_CHECK(static_cast<bool>(f_), ValueError, "LambdaLR: no function");
  apply();
}

double LambdaLR::factor() const {
  const double v = f_(epoch_);
  CUVI_CHECK(std::isfinite(v) && v > 0, ValueError,
             "LambdaLR: the factor at epoch " << epoch_ << " is " << v << "; it must be finite and positive");
  return v;
}

CosineAnnealingLR::CosineAnnealingLR(const Optimizer& inner, CosineAnnealingLROptions o)
    : LRScheduler(inner), o_(o) {
  CUVI_CHECK(o.T_max >= 1, ValueError, "CosineAnnealingLR: T_max must be >= 1, got " << o.T_max);
  CUVI_CHECK(o.eta_min >= 0 && std::isfinite(o.eta_min), ValueError,
             "CosineAnnealingLR: eta_min must be finite and >= 0, got " << o.eta_min);
  if (o.eta_min > 0) {
    // eta_min is a rate; the schedule is a factor of the inner optimizer's.
    const std::optional<double> base = inner_->base_lr();
    CUVI_CHECK(base && *base > 0, ValueError,
               "CosineAnnealingLR: eta_min " << o.eta_min << " needs the base lr of " << inner_->name() << ", which "
                                             << (base ? "is " + std::to_string(*base) : std::string("reports none")));
    eta_min_factor_ = static_cast<double>(o.eta_min) / *base;
  }
  apply();
}

double CosineAnnealingLR::factor() const {
  const double c =
      0.5 * (1.0 + std::cos(std::numbers::pi * static_cast<double>(epoch_) / static_cast<double>(o_.T_max)));
  return eta_min_factor_ + (1.0 - eta_min_factor_) * c;
}

ReduceLROnPlateau::ReduceLROnPlateau(const Optimizer& inner, ReduceLROnPlateauOptions o)
    : LRScheduler(inner), o_(o) {
  CUVI_CHECK(o.factor >= 0 && o.factor < 1, ValueError,
             "ReduceLROnPlateau: factor must be in [0, 1), got " << o.factor);
  CUVI_CHECK(o.patience >= 0, ValueError, "ReduceLROnPlateau: patience must be >= 0, got " << o.patience);
  CUVI_CHECK(o.threshold >= 0 && std::isfinite(o.threshold), ValueError,
             "ReduceLROnPlateau: threshold must be finite and >= 0, got " << o.threshold);
  CUVI_CHECK(o.cooldown >= 0, ValueError, "ReduceLROnPlateau: cooldown must be >= 0, got " << o.cooldown);
  CUVI_CHECK(o.min_lr >= 0 && std::isfinite(o.min_lr), ValueError,
             "ReduceLROnPlateau: min_lr must be finite and >= 0, got " << o.min_lr);
  CUVI_CHECK(o.eps >= 0 && std::isfinite(o.eps), ValueError,
             "ReduceLROnPlateau: eps must be finite and >= 0, got " << o.eps);
  if (o.min_lr > 0 || o.eps > 0) {
    // Both are rates compared with the lr itself: base lr * factor.
    const std::optional<double> base = inner_->base_lr();
    CUVI_CHECK(base && *base > 0, ValueError,
               "ReduceLROnPlateau: min_lr " << o.min_lr << " and eps " << o.eps << " need the base lr of "
                                            << inner_->name() << ", which "
                                            << (base ? "is " + std::to_string(*base) : std::string("reports none")));
    base_ = *base;
  }
  best_ = o.mode == PlateauMode::kMin ? std::numeric_limits<double>::infinity()
                                      : -std::numeric_limits<double>::infinity();
  apply();
}

bool ReduceLROnPlateau::improves(double a) const {
  const double t = o_.threshold;
  // torch's rules: relative thresholds scale best (so their sense flips
  // for a negative best, as torch's do); comparisons with NaN are false.
  if (o_.mode == PlateauMode::kMin)
    return o_.threshold_mode == ThresholdMode::kRel ? a < best_ * (1.0 - t) : a < best_ - t;
  return o_.threshold_mode == ThresholdMode::kRel ? a > best_ * (1.0 + t) : a > best_ + t;
}

void ReduceLROnPlateau::scheduler_step() {
  CUVI_THROW(ValueError, name() << ".scheduler_step: ReduceLROnPlateau needs the metric it watches; call "
                                   "scheduler_step(metric), e.g. with the epoch's mean loss");
}

void ReduceLROnPlateau::scheduler_step(float metric) {
  // Nothing here throws: the epoch and the counters move together.
  ++epoch_;
  if (improves(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {  // bad epochs in a cooldown do not count
    --cooldown_counter_;
    num_bad_epochs_ = 0;
  }
  if (num_bad_epochs_ > o_.patience) {
    const double reduced = std::max(factor_ * o_.factor, o_.min_lr / base_);
    // torch compares the rates themselves: old lr - new lr > eps.
    if (base_ * (factor_ - reduced) > o_.eps) factor_ = reduced;
    cooldown_counter_ = o_.cooldown;
    num_bad_epochs_ = 0;
  }
  apply();
}

OptimizerState ReduceLROnPlateau::state() const {
  OptimizerState st = LRScheduler::state();
  auto& m = st.scalars[kStateKey];
  m["best"] = best_;
  m["num_bad_epochs"] = static_cast<double>(num_bad_epochs_);
  m["cooldown_counter"] = static_cast<double>(cooldown_counter_);
  m["factor"] = factor_;
  return st;
}

void ReduceLROnPlateau::load_state(const OptimizerState& s) {
  // Read and check this schedule's entries first, then let the base load
  // the epoch and the inner state (it throws before changing anything),
  // then commit: nothing after that throws.
  double best = o_.mode == PlateauMode::kMin ? std::numeric_limits<double>::infinity()
                                             : -std::numeric_limits<double>::infinity();
  double bad = 0, cooldown = 0, factor = 1;
  if (auto it = s.scalars.find(kStateKey); it != s.scalars.end()) {
    const auto& m = it->second;
    const char* keys[] = {"best", "num_bad_epochs", "cooldown_counter", "factor"};
    double* into[] = {&best, &bad, &cooldown, &factor};
    int found = 0;
    for (int k = 0; k < 4; ++k)
      if (auto e = m.find(keys[k]); e != m.end()) {
        *into[k] = e->second;
        ++found;
      }
    CUVI_CHECK(found == 0 || found == 4, ValueError,
               name() << ".load_state: the schedule state has " << found
                      << " of best, num_bad_epochs, cooldown_counter and factor; it needs all or none");
    const auto count_ok = [](double v) { return v >= 0 && std::floor(v) == v && v < 9e15; };
    CUVI_CHECK(!std::isnan(best), ValueError, name() << ".load_state: best is NaN");
    CUVI_CHECK(count_ok(bad), ValueError, name() << ".load_state: num_bad_epochs is " << bad);
    CUVI_CHECK(count_ok(cooldown), ValueError, name() << ".load_state: cooldown_counter is " << cooldown);
    CUVI_CHECK(std::isfinite(factor) && factor >= 0, ValueError, name() << ".load_state: factor is " << factor);
  }
  const double old_factor = factor_;
  factor_ = factor;  // the base applies factor() at the loaded epoch
  try {
    LRScheduler::load_state(s);
  } catch (...) {
    factor_ = old_factor;
    throw;
  }
  best_ = best;
  num_bad_epochs_ = static_cast<int64_t>(bad);
  cooldown_counter_ = static_cast<int64_t>(cooldown);
}

}  // namespace cuvi::optim
