// Optimizers (pyro.optim / torch.optim semantics). State is created per
// parameter when it first appears, keyed by the parameter's name; on a GPU
// one launch updates every parameter (kernels/elementwise.hpp's updates).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "param_store.hpp"

namespace cuvi::optim {

using NamedParams = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  virtual std::shared_ptr<Optimizer> clone() const = 0;
  // Updates each leaf in place from its grad() (leaves without one are skipped).
  virtual void step(const NamedParams& params) = 0;
  virtual OptimizerState state() const = 0;
  // Replaces the state (validated first; the old state stays on error).
  virtual void load_state(const OptimizerState& s) = 0;
  // Whether step() updates a parameter whose gradient is row-sparse parts
  // (Tensor::row_grads(): rows a subsampled plate took, see ParamStore and
  // index_select's sparse_grad) in those rows only, in O(rows) work. True
  // where that equals the dense update (SGD without momentum and weight
  // decay, Adagrad without weight decay) and for SparseAdam (whose lazy
  // semantics it is). Otherwise the parts are summed into a dense gradient.
  virtual bool accepts_row_grads() const { return false; }
  // Data parallelism (optim::DistributedOptimizer, ppl/parallel.hpp):
  // combines the ranks' gradients of params before step(). SVI calls it
  // once per step after backward (and the finite check), also when this
  // rank's step has failed (failed_here; params then may be empty), so that
  // a rank that fails never leaves the others waiting; it throws on every
  // rank when any rank failed, and step() is not called. A no-op here.
  virtual void reduce_gradients(const NamedParams& params, bool failed_here) {
    (void)params;
    (void)failed_here;
  }
  // The learning rate the optimizer was configured with, before
  // lr_scale(); nullopt for one without a single such rate. Schedules whose
  // options are absolute rates (CosineAnnealingLR's eta_min,
  // ReduceLROnPlateau's min_lr and eps) turn them into factors with it.
  virtual std::optional<double> base_lr() const { return std::nullopt; }
  // Multiplies every learning rate (schedules).
  void set_lr_scale(float s) { lr_scale_ = s; }
  float lr_scale() const { return lr_scale_; }

 protected:
  float lr_scale_ = 1.0f;
};

struct AdamOptions {
  float lr = 1e-3f;
  std::pair<float, float> betas = {0.9f, 0.999f};
  float eps = 1e-8f;
  float weight_decay = 0.0f;
};

// torch.optim.AdamW (pyro.optim.AdamW): Adam with decoupled weight decay;
// each step first scales the param by 1 - lr weight_decay, then takes
// Adam's step from the gradient alone (no L2 term in the moments).
struct AdamWOptions {
  float lr = 1e-3f;
  std::pair<float, float> betas = {0.9f, 0.999f};
  float eps = 1e-8f;
  float weight_decay = 1e-2f;
};

struct ClippedAdamOptions {
  float lr = 1e-3f;
  std::pair<float, float> betas = {0.9f, 0.999f};
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  float clip_norm = 10.0f;
  float lrd = 1.0f;
};

// torch.optim.SparseAdam (pyro.optim.SparseAdam): Adam whose update of a
// parameter with a row-sparse gradient touches only those rows: the other
// rows, and their moments, stay as they are ("lazy" Adam). With N local
// latents under a plate of subsample size B, a step costs O(B) instead of
// O(N). It differs from Adam, where a row without gradient still moves by
// its decaying momentum. Bias corrections use the parameter's step count
// (steps in which it had a gradient), and the step has torch's form: lr
// sqrt(bc2) / bc1 * m / (sqrt(v) + eps). A parameter with a dense gradient
// (global weights, rows also used outside the plate, rows taken along two
// dims) gets that update on every row. No weight decay (torch has none).
struct SparseAdamOptions {
  float lr = 1e-3f;
  std::pair<float, float> betas = {0.9f, 0.999f};
  float eps = 1e-8f;
};

struct SGDOptions {
  float lr = 1e-3f;
  float momentum = 0.0f;
  float dampening = 0.0f;
  float weight_decay = 0.0f;
  bool nesterov = false;
};

struct AdagradOptions {
  float lr = 1e-2f;
  float eps = 1e-10f;
  float weight_decay = 0.0f;
};

// torch.optim.RMSprop (pyro.optim.RMSprop): g += weight_decay p; v = alpha
// v + (1 - alpha) g^2; avg = sqrt(v) + eps, or, centered, sqrt(v - ga^2) +
// eps with ga = alpha ga + (1 - alpha) g; then p -= lr g / avg, or with
// momentum > 0, buf = momentum buf + g / avg and p -= lr buf. State (torch's
// names): square_avg, momentum_buffer (momentum > 0), grad_avg (centered).
struct RMSpropOptions {
  float lr = 1e-2f;
  float alpha = 0.99f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  float momentum = 0.0f;
  bool centered = false;
};

// torch.optim.Adadelta (pyro.optim.Adadelta): g += weight_decay p; v = rho
// v + (1 - rho) g^2; delta = sqrt(u + eps) / sqrt(v + eps) g; u = rho u +
// (1 - rho) delta^2; p -= lr delta. State: square_avg (v), acc_delta (u).
struct AdadeltaOptions {
  float lr = 1.0f;
  float rho = 0.9f;
  float eps = 1e-6f;
  float weight_decay = 0.0f;
};

// Shared machinery: per-parameter state tensors and scalars.
class StatefulOptimizer : public Optimizer {
 public:
  OptimizerState state() const override;
  void load_state(const OptimizerState& s) override;

 protected:
  struct Slot {
    Tensor s0, s1, s2;  // state buffers, named buffer0_..buffer2_ (undefined where that name is null)
    double step = 0;
    double lr = 0;  // ClippedAdam's decayed rate
  };
  // Returns the slot of a parameter, creating zeroed buffers on first sight
  // (and again when a buffer it keeps does not match the parameter: another
  // shape, device or dtype, or missing).
  Slot& slot(const std::string& name, const Tensor& p, double lr0);
  // The loop every optimizer shares: per parameter with a gradient, count
  // the step, build its hyper-parameters with make(slot), then one
  // multi-tensor launch per device (defined in optim.cpp).
  template <class Hyper, class Make, class Launch>
  void step_all(const NamedParams& params, double lr0, Make&& make, Launch&& launch);
  std::map<std::string, Slot> slots_;
  // The state buffers' names (torch's) in state(); buffer0_ is always kept,
  // buffer1_ / buffer2_ only where not null (set by each constructor).
  const char* buffer0_ = "exp_avg";
  const char* buffer1_ = "exp_avg_sq";
  const char* buffer2_ = nullptr;
};

class Adam : public StatefulOptimizer {
 public:
  explicit Adam(AdamOptions o = {});
  std::string name() const override { return "Adam"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<Adam>(*this); }
  void step(const NamedParams& params) override;
  std::optional<double> base_lr() const override { return o_.lr; }
  const AdamOptions& options() const { return o_; }

 private:
  AdamOptions o_;
};

class AdamW : public StatefulOptimizer {
 public:
  explicit AdamW(AdamWOptions o = {});
  std::string name() const override { return "AdamW"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<AdamW>(*this); }
  void step(const NamedParams& params) override;
  std::optional<double> base_lr() const override { return o_.lr; }
  const AdamWOptions& options() const { return o_; }

 private:
  AdamWOptions o_;
};

class SparseAdam : public StatefulOptimizer {
 public:
  explicit SparseAdam(SparseAdamOptions o = {});
  std::string name() const override { return "SparseAdam"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<SparseAdam>(*this); }
  void step(const NamedParams& params) override;
  std::optional<double> base_lr() const override { return o_.lr; }
  bool accepts_row_grads() const override { return true; }
  const SparseAdamOptions& options() const { return o_; }

 private:
  SparseAdamOptions o_;
};

class ClippedAdam : public StatefulOptimizer {
 public:
  explicit ClippedAdam(ClippedAdamOptions o = {});
  std::string name() const override { return "ClippedAdam"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<ClippedAdam>(*this); }
  void step(const NamedParams& params) override;
  std::optional<double> base_lr() const override { return o_.lr; }

 private:
  ClippedAdamOptions o_;
};

class SGD : public StatefulOptimizer {
 public:
  explicit SGD(SGDOptions o = {});
  std::string name() const override { return "SGD"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<SGD>(*this); }
  void step(const NamedParams& params) override;
  std::optional<double> base_lr() const override { return o_.lr; }
  bool accepts_row_grads() const override { return o_.momentum == 0.0f && o_.weight_decay == 0.0f; }

 private:
  SGDOptions o_;
};

class Adagrad : public StatefulOptimizer {
 public:
  explicit Adagrad(AdagradOptions o = {});
  std::string name() const override { return "Adagrad"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<Adagrad>(*this); }
  void step(const NamedParams& params) override;
  std::optional<double> base_lr() const override { return o_.lr; }
  // eps > 0: a row never touched has sum 0, and the dense update 0 / (0 + 0) would be NaN.
  bool accepts_row_grads() const override { return o_.weight_decay == 0.0f && o_.eps > 0.0f; }

 private:
  AdagradOptions o_;
};

class RMSprop : public StatefulOptimizer {
 public:
  explicit RMSprop(RMSpropOptions o = {});
  std::string name() const override { return "RMSprop"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<RMSprop>(*this); }
  void step(const NamedParams& params) override;
  std::optional<double> base_lr() const override { return o_.lr; }
  // Dense updates only (torch's RMSprop takes no sparse gradients): a row
  // without gradient still has its square_avg decay (and with momentum,
  // keeps moving), so a rows-only update would differ from the dense one.
  const RMSpropOptions& options() const { return o_; }

 private:
  RMSpropOptions o_;
};

class Adadelta : public StatefulOptimizer {
 public:
  explicit Adadelta(AdadeltaOptions o = {});
  std::string name() const override { return "Adadelta"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<Adadelta>(*this); }
  void step(const NamedParams& params) override;
  std::optional<double> base_lr() const override { return o_.lr; }
  // Dense updates only, as RMSprop: a row without gradient still has its
  // square_avg and acc_delta decay.
  const AdadeltaOptions& options() const { return o_; }

 private:
  AdadeltaOptions o_;
};

// ---- learning-rate schedules (pyro.optim.lr_scheduler) ----------------------
//
// A schedule wraps another optimizer (a clone of it) and forwards
// step/state/load_state/clone to it; scheduler_step() advances the epoch
// (call it once per epoch, as Pyro's scheduler.step()) and sets the inner
// optimizer's lr scale to this wrapper's own lr_scale() times the schedule's
// factor. SVI holds a clone of its optimizer, so step the schedule through
// svi.optimizer(), e.g.
//   dynamic_cast<optim::LRScheduler&>(svi.optimizer()).scheduler_step();
// state() is the inner optimizer's state (same `optimizer` name) plus the
// epoch under the scalar entry kStateKey / "epoch" (and a schedule's own
// counters beside it: ReduceLROnPlateau's), so save/load resumes the
// schedule too; a state without that entry loads as epoch 0. A schedule
// may wrap another: the inner one's entries move one level down, to
// kStateKey + "/inner" (and "/inner/inner" below that), so every level
// resumes at its own epoch.
// ReduceLROnPlateau steps on a metric instead: scheduler_step(metric).
class LRScheduler : public Optimizer {
 public:
  static constexpr const char* kStateKey = "__lr_scheduler__";
  explicit LRScheduler(const Optimizer& inner) : inner_(inner.clone()) {}
  LRScheduler(const LRScheduler& o) : Optimizer(o), inner_(o.inner_->clone()), epoch_(o.epoch_) {}
  LRScheduler& operator=(const LRScheduler&) = delete;
  void step(const NamedParams& params) override;
  bool accepts_row_grads() const override { return inner_->accepts_row_grads(); }
  void reduce_gradients(const NamedParams& params, bool failed_here) override {
    inner_->reduce_gradients(params, failed_here);
  }
  std::optional<double> base_lr() const override { return inner_->base_lr(); }
  OptimizerState state() const override;
  void load_state(const OptimizerState& s) override;
  // Advances one epoch and applies the new factor to the inner optimizer
  // (ReduceLROnPlateau: an error, it needs the metric).
  virtual void scheduler_step();
  // Advances one epoch given the watched metric (a host float, e.g. the
  // epoch's mean loss): ReduceLROnPlateau's step; an error naming the
  // schedule for the others, which take none.
  virtual void scheduler_step(float metric);
  int64_t epoch() const { return epoch_; }
  // The learning-rate multiplier at the current epoch (base lr * factor).
  virtual double factor() const = 0;
  Optimizer& optimizer() { return *inner_; }
  const Optimizer& optimizer() const { return *inner_; }

 protected:
  void apply() { inner_->set_lr_scale(static_cast<float>(lr_scale_ * factor())); }
  std::shared_ptr<Optimizer> inner_;
  int64_t epoch_ = 0;
};

// torch.optim.lr_scheduler.StepLR: lr = base * gamma^floor(epoch / step_size).
struct StepLROptions {
  int64_t step_size = 1;
  float gamma = 0.1f;
};

class StepLR : public LRScheduler {
 public:
  StepLR(const Optimizer& inner, StepLROptions o);
  std::string name() const override { return "StepLR(" + inner_->name() + ")"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<StepLR>(*this); }
  double factor() const override;
  const StepLROptions& options() const { return o_; }

 private:
  StepLROptions o_;
};

// torch.optim.lr_scheduler.ExponentialLR: lr = base * gamma^epoch.
struct ExponentialLROptions {
  float gamma = 1.0f;
};

class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(const Optimizer& inner, ExponentialLROptions o);
  std::string name() const override { return "ExponentialLR(" + inner_->name() + ")"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<ExponentialLR>(*this); }
  double factor() const override;
  const ExponentialLROptions& options() const { return o_; }

 private:
  ExponentialLROptions o_;
};

// torch.optim.lr_scheduler.MultiStepLR: lr = base * gamma^(number of
// milestones <= epoch); milestones strictly increasing, >= 1.
struct MultiStepLROptions {
  std::vector<int64_t> milestones;
  float gamma = 0.1f;
};

class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(const Optimizer& inner, MultiStepLROptions o);
  std::string name() const override { return "MultiStepLR(" + inner_->name() + ")"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<MultiStepLR>(*this); }
  double factor() const override;
  const MultiStepLROptions& options() const { return o_; }

 private:
  MultiStepLROptions o_;
};

// torch.optim.lr_scheduler.LambdaLR: lr = base * f(epoch) for a user
// function (a cosine annealing, a warm-up, ...). f must return a finite
// positive factor, checked at every epoch (ValueError naming the epoch and
// the value). The epoch, not f, is saved with the state: a resumed run
// constructs the same f.
class LambdaLR : public LRScheduler {
 public:
  LambdaLR(const Optimizer& inner, std::function<double(int64_t)> f);
  std::string name() const override { return "LambdaLR(" + inner_->name() + ")"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<LambdaLR>(*this); }
  double factor() const override;

 private:
  std::function<double(int64_t)> f_;
};

// torch.optim.lr_scheduler.CosineAnnealingLR in its closed form: lr =
// eta_min + (base - eta_min) (1 + cos(pi epoch / T_max)) / 2, base the
// inner optimizer's lr (base_lr()). The factor is that over base; it
// reaches eta_min / base at epoch T_max and, past it, climbs back along the
// same cosine (period 2 T_max), as torch's. eta_min is an absolute rate:
// above 0 it needs an inner optimizer that reports a base_lr() above 0.
struct CosineAnnealingLROptions {
  int64_t T_max = 0;  // required, >= 1
  float eta_min = 0.0f;
};

class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(const Optimizer& inner, CosineAnnealingLROptions o);
  std::string name() const override { return "CosineAnnealingLR(" + inner_->name() + ")"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<CosineAnnealingLR>(*this); }
  double factor() const override;
  const CosineAnnealingLROptions& options() const { return o_; }

 private:
  CosineAnnealingLROptions o_;
  double eta_min_factor_ = 0;  // eta_min / base lr
};

// torch.optim.lr_scheduler.ReduceLROnPlateau: scheduler_step(metric) once
// per epoch with the watched value. The metric improves on the best so far
// when, in mode kMin, it is below best (1 - threshold) (kRel) or best -
// threshold (kAbs) (kMax: above best (1 + threshold) / best + threshold).
// After more than `patience` epochs in a row without improvement the lr
// becomes max(lr factor, min_lr), unless that lowers it by eps or less,
// and the next `cooldown` epochs count no bad epochs. min_lr and eps are
// absolute rates, turned into factors with the inner optimizer's
// base_lr(). A metric that is NaN never improves (as in torch). The best
// value, the bad-epoch and cooldown counters and the current factor are
// saved beside the epoch (kStateKey: "best", "num_bad_epochs",
// "cooldown_counter", "factor").
enum class PlateauMode { kMin, kMax };
enum class ThresholdMode { kRel, kAbs };

struct ReduceLROnPlateauOptions {
  PlateauMode mode = PlateauMode::kMin;
  float factor = 0.1f;  // in [0, 1)
  int64_t patience = 10;
  float threshold = 1e-4f;
  ThresholdMode threshold_mode = ThresholdMode::kRel;
  int64_t cooldown = 0;
  float min_lr = 0.0f;
  float eps = 1e-8f;
};

class ReduceLROnPlateau : public LRScheduler {
 public:
  ReduceLROnPlateau(const Optimizer& inner, ReduceLROnPlateauOptions o);
  std::string name() const override { return "ReduceLROnPlateau(" + inner_->name() + ")"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<ReduceLROnPlateau>(*this); }
  OptimizerState state() const override;
  void load_state(const OptimizerState& s) override;
  void scheduler_step() override;  // throws ValueError: the metric is needed
  void scheduler_step(float metric) override;
  double factor() const override { return factor_; }
  double best() const { return best_; }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }
  int64_t cooldown_counter() const { return cooldown_counter_; }
  const ReduceLROnPlateauOptions& options() const { return o_; }

 private:
  bool improves(double metric) const;
  ReduceLROnPlateauOptions o_;
  double base_ = 1;  // the inner optimizer's lr (1 where min_lr and eps are 0 and it reports none)
  double best_;      // +inf (kMin) / -inf (kMax) before the first metric
  int64_t num_bad_epochs_ = 0;
  int64_t cooldown_counter_ = 0;
  double factor_ = 1;
};

}  // namespace cuvi::optim
