// Inference (pyro.infer): ELBO losses, SVI, Predictive.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "optim.hpp"
#include "poutine.hpp"

namespace cuvi::infer {

using Program = std::function<void()>;

struct ELBOOptions {
  int num_particles = 1;
  bool vectorize_particles = false;
  int max_plate_nesting = -1;  // -1: inferred
};

// What one evaluation of an ELBO produces.
struct ELBOResult {
  Tensor loss;       // -ELBO estimate (0-d, detached)
  Tensor surrogate;  // differentiable surrogate loss (0-d)
  optim::NamedParams params;  // unconstrained leaves touched by model and guide
};

class ELBO {
 public:
  explicit ELBO(ELBOOptions o) : o_(o) {}
  virtual ~ELBO() = default;
  virtual std::shared_ptr<ELBO> clone() const = 0;
  virtual ELBOResult compute(const Program& model, const Program& guide) const;
  const ELBOOptions& options() const { return o_; }

 protected:
  // Whether a latent site's log q - log p is replaced by an analytic KL.
  virtual bool analytic_kl() const { return false; }
  ELBOOptions o_;
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

struct SVIOptions {
  // Check the loss and every gradient for non-finite values before the
  // update (one synchronisation per step); a failing step changes nothing.
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
                                             const std::set<std::string>& return_sites);
}

// Samples from the posterior predictive: the guide's latents replayed into
// the model; sites whose observation is passed undefined are drawn. Returns
// site -> tensor stacked over a leading num_samples dim.
template <class Model, class Guide>
class Predictive {
 public:
  Predictive(Model model, Guide guide, int num_samples, std::set<std::string> return_sites = {})
      : model_(std::move(model)), guide_(std::move(guide)), n_(num_samples), sites_(std::move(return_sites)) {}
  template <class... Args>
  std::map<std::string, Tensor> operator()(const Args&... args) const {
    return detail::predictive_run([&] { model_(args...); }, [&] { guide_(args...); }, n_, sites_);
  }

 private:
  Model model_;
  Guide guide_;
  int n_;
  std::set<std::string> sites_;
};

}  // namespace cuvi::infer
