// A deep Markov model (Krishnan et al. 2017) as in Pyro's DMM tutorial
// (https://pyro.ai/examples/dmm.html), on synthetic "chorale-like" binary
// sequences (no downloads): every time step is a vector of x_dim notes.
//
//   model:  z_0 a param; for t = 1..T (pyro.markov):
//             z_t ~ N(GatedTransition(z_{t-1}))          (masked past the end)
//             x_t ~ Bernoulli(Emitter(z_t))               (masked past the end)
//   guide:  h = RNN over each sequence reversed within its length, then
//           reversed back (h_t summarises x_t..x_L); z_q_0 a param; for t:
//             z_t ~ N(Combiner(z_{t-1}, h_t))
//
// Sequences of one minibatch have different lengths: they are padded at the
// end and every site past a sequence's end is masked (Pyro's
// .mask(mini_batch_mask[:, t-1:t])), so a padded batch has the ELBO of its
// sequences taken one by one. The z sites are scaled by an annealing factor
// (KL annealing, Pyro's --annealing-epochs). The net's parameters are param
// sites "dmm$$$trans.lin_gate_z_to_hidden.weight", ..., "dmm$$$rnn.weight_ih_l0",
// "dmm$$$z_0", "dmm$$$z_q_0", "dmm$$$h_0" (Pyro's names).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <cuvi.hpp>

namespace cuvi_examples {

// n binary sequences of x_dim notes with lengths uniform in [t_min, t_max],
// padded with zeros to t_max. A sticky Markov chain over n_chords chords
// (each 3 or 4 random notes; stays with probability stay) picks each step's
// chord; a chord's notes sound with probability 0.9, the others with 0.01.
// Fully determined by seed (host std::mt19937_64).
struct SequenceData {
  cuvi::Tensor x;                     // [n, t_max, x_dim] float32 0/1, zero past each end
  cuvi::Tensor lengths;               // [n] int64
  std::vector<int64_t> host_lengths;  // the same on the host
};

inline SequenceData make_chorale_like(int64_t n, int64_t t_min, int64_t t_max, int64_t x_dim, uint64_t seed,
                                      int n_chords = 6, double stay = 0.8,
                                      cuvi::Device dev = cuvi::default_device()) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  std::vector<std::vector<int64_t>> chords(static_cast<size_t>(n_chords));
  for (auto& c : chords) {
    const int k = 3 + static_cast<int>(u01(gen) * 2.0);  // 3 or 4 notes
    while (static_cast<int>(c.size()) < k) {
      const auto note = static_cast<int64_t>(u01(gen) * static_cast<double>(x_dim));
      if (std::find(c.begin(), c.end(), note) == c.end()) c.push_back(note);
    }
  }
  std::vector<float> x(static_cast<size_t>(n * t_max * x_dim), 0.0f);
  std::vector<int64_t> lengths(static_cast<size_t>(n));
  std::uniform_int_distribution<int64_t> len(t_min, t_max);
  std::uniform_int_distribution<int> pick(0, n_chords - 1);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t l = len(gen);
    lengths[static_cast<size_t>(i)] = l;
    int chord = pick(gen);
    for (int64_t t = 0; t < l; ++t) {
      if (t > 0 && u01(gen) >= stay) chord = pick(gen);
      const auto& c = chords[static_cast<size_t>(chord)];
      for (int64_t d = 0; d < x_dim; ++d) {
        const bool in_chord = std::find(c.begin(), c.end(), d) != c.end();
        if (u01(gen) < (in_chord ? 0.9 : 0.01)) x[static_cast<size_t>((i * t_max + t) * x_dim + d)] = 1.0f;
      }
    }
  }
  return {cuvi::tensor(x, {n, t_max, x_dim}, dev), cuvi::tensor_i64(lengths, {n}, dev), lengths};
}

// Sequences [start, start + count) of d.
inline SequenceData slice(const SequenceData& d, int64_t start, int64_t count) {
  return {cuvi::narrow(d.x, 0, start, count), cuvi::narrow(d.lengths, 0, start, count),
          std::vector<int64_t>(d.host_lengths.begin() + start, d.host_lengths.begin() + start + count)};
}

// Pyro's DMM sizes (input_dim 88 for the JSB chorales).
struct DmmConfig {
  int64_t x_dim = 88;
  int64_t z_dim = 100;
  int64_t emission_dim = 100;
  int64_t transition_dim = 200;
  int64_t rnn_dim = 600;
};

// A module whose forward() is not its interface (it takes or returns more
// than one tensor): the parts of the DMM.
class DmmPart : public cuvi::nn::Module {
 public:
  cuvi::Tensor forward(const cuvi::Tensor&) override {
    CUVI_THROW(cuvi::ValueError, name() << ": call its own methods, not forward()");
    return {};
  }

 protected:
  std::shared_ptr<cuvi::nn::Linear> add(const std::string& n, int64_t in, int64_t out, cuvi::Device dev) {
    auto l = std::make_shared<cuvi::nn::Linear>(in, out, true, dev);
    register_module(n, l);
    return l;
  }
};

// p(x_t | z_t): Bernoulli logits from z through two ReLU layers.
class Emitter final : public DmmPart {
 public:
  Emitter(const DmmConfig& c, cuvi::Device dev)
      : z_to_hidden_(add("lin_z_to_hidden", c.z_dim, c.emission_dim, dev)),
        hidden_to_hidden_(add("lin_hidden_to_hidden", c.emission_dim, c.emission_dim, dev)),
        hidden_to_input_(add("lin_hidden_to_input", c.emission_dim, c.x_dim, dev)) {}
  std::string name() const override { return "Emitter"; }
  cuvi::Tensor logits(const cuvi::Tensor& z) const {
    const cuvi::Tensor h1 = cuvi::relu((*z_to_hidden_)(z));
    const cuvi::Tensor h2 = cuvi::relu((*hidden_to_hidden_)(h1));
    return (*hidden_to_input_)(h2);
  }

 private:
  std::shared_ptr<cuvi::nn::Linear> z_to_hidden_, hidden_to_hidden_, hidden_to_input_;
};

// p(z_t | z_{t-1}): a gated mix of a linear map of z (identity at the
// start) and a nonlinear proposal; the scale from the proposal.
class GatedTransition final : public DmmPart {
 public:
  GatedTransition(const DmmConfig& c, cuvi::Device dev)
      : gate_z_to_hidden_(add("lin_gate_z_to_hidden", c.z_dim, c.transition_dim, dev)),
        gate_hidden_to_z_(add("lin_gate_hidden_to_z", c.transition_dim, c.z_dim, dev)),
        proposed_z_to_hidden_(add("lin_proposed_mean_z_to_hidden", c.z_dim, c.transition_dim, dev)),
        proposed_hidden_to_z_(add("lin_proposed_mean_hidden_to_z", c.transition_dim, c.z_dim, dev)),
        sig_(add("lin_sig", c.z_dim, c.z_dim, dev)),
        z_to_loc_(add("lin_z_to_loc", c.z_dim, c.z_dim, dev)) {
    // Pyro's: lin_z_to_loc starts as the identity.
    z_to_loc_->set_parameter("weight", cuvi::diag_embed(cuvi::ones({c.z_dim}, dev)).detach().requires_grad_());
    z_to_loc_->set_parameter("bias", cuvi::zeros({c.z_dim}, dev).requires_grad_());
  }
  std::string name() const override { return "GatedTransition"; }
  std::pair<cuvi::Tensor, cuvi::Tensor> loc_scale(const cuvi::Tensor& z) const {
    const cuvi::Tensor gate = cuvi::sigmoid((*gate_hidden_to_z_)(cuvi::relu((*gate_z_to_hidden_)(z))));
    const cuvi::Tensor proposed = (*proposed_hidden_to_z_)(cuvi::relu((*proposed_z_to_hidden_)(z)));
    const cuvi::Tensor lin = (*z_to_loc_)(z);
    const cuvi::Tensor loc = lin + gate * (proposed - lin);  // (1 - gate) lin + gate proposed
    return {loc, cuvi::softplus((*sig_)(cuvi::relu(proposed)))};
  }

 private:
  std::shared_ptr<cuvi::nn::Linear> gate_z_to_hidden_, gate_hidden_to_z_, proposed_z_to_hidden_,
      proposed_hidden_to_z_, sig_, z_to_loc_;
};

// q(z_t | z_{t-1}, h_t): h_combined = (tanh(W z_{t-1}) + h_t) / 2.
class Combiner final : public DmmPart {
 public:
  Combiner(const DmmConfig& c, cuvi::Device dev)
      : z_to_hidden_(add("lin_z_to_hidden", c.z_dim, c.rnn_dim, dev)),
        hidden_to_loc_(add("lin_hidden_to_loc", c.rnn_dim, c.z_dim, dev)),
        hidden_to_scale_(add("lin_hidden_to_scale", c.rnn_dim, c.z_dim, dev)) {}
  std::string name() const override { return "Combiner"; }
  std::pair<cuvi::Tensor, cuvi::Tensor> loc_scale(const cuvi::Tensor& z, const cuvi::Tensor& h) const {
    const cuvi::Tensor hc = 0.5f * (cuvi::tanh((*z_to_hidden_)(z)) + h);
    return {(*hidden_to_loc_)(hc), cuvi::softplus((*hidden_to_scale_)(hc))};
  }

 private:
  std::shared_ptr<cuvi::nn::Linear> z_to_hidden_, hidden_to_loc_, hidden_to_scale_;
};

// One minibatch: sequences padded to the batch's longest, their reversal
// within each length (the guide's RNN input) and the mask [B, T].
struct SequenceBatch {
  cuvi::Tensor x, x_reversed, mask, lengths;
  int64_t steps = 0;  // sum of the lengths: the number of observed time steps
};

// Rows idx of d, trimmed to their longest sequence.
inline SequenceBatch make_batch(const SequenceData& d, const std::vector<int64_t>& idx) {
  const cuvi::Device dev = d.x.device();
  int64_t t = 1, steps = 0;
  for (int64_t i : idx) {
    t = std::max(t, d.host_lengths[static_cast<size_t>(i)]);
    steps += d.host_lengths[static_cast<size_t>(i)];
  }
  const int64_t b = static_cast<int64_t>(idx.size());
  const cuvi::Tensor rows = cuvi::tensor_i64(idx, {b}, dev);
  SequenceBatch s;
  s.x = cuvi::narrow(cuvi::index_select(d.x, 0, rows), 1, 0, t);
  s.lengths = cuvi::index_select(d.lengths, 0, rows);
  s.x_reversed = cuvi::nn::reverse_padded(s.x, s.lengths);
  s.mask = cuvi::lt(cuvi::reshape(cuvi::arange(t, dev), {1, t}), cuvi::reshape(s.lengths.to_float(), {b, 1}));
  s.steps = steps;
  return s;
}

class DMM final : public cuvi::nn::Module {
 public:
  DMM(DmmConfig c, cuvi::Device dev)
      : c_(c),
        emitter_(std::make_shared<Emitter>(c, dev)),
        trans_(std::make_shared<GatedTransition>(c, dev)),
        combiner_(std::make_shared<Combiner>(c, dev)),
        rnn_(std::make_shared<cuvi::nn::RNN>(c.x_dim, c.rnn_dim, cuvi::nn::Activation::kRelu, true, dev)) {
    register_module("emitter", emitter_);
    register_module("trans", trans_);
    register_module("combiner", combiner_);
    register_module("rnn", rnn_);
    register_parameter("z_0", cuvi::zeros({c.z_dim}, dev));
    register_parameter("z_q_0", cuvi::zeros({c.z_dim}, dev));
    register_parameter("h_0", cuvi::zeros({c.rnn_dim}, dev));
  }
  cuvi::Tensor forward(const cuvi::Tensor&) override {
    CUVI_THROW(cuvi::ValueError, "DMM: call model() or guide(), not forward()");
    return {};
  }
  std::string name() const override { return "DMM"; }

  void model(const SequenceBatch& s, float annealing = 1.0f) const {
    cuvi::module("dmm", const_cast<DMM&>(*this));
    const int64_t b = s.x.size(0), t_max = s.x.size(1);
    cuvi::Tensor z_prev = cuvi::expand(param(0), {b, c_.z_dim});
    auto p = cuvi::plate("z_minibatch", b);
    for (int64_t t : cuvi::markov(t_max)) {
      const cuvi::Tensor m = cuvi::narrow(s.mask, 1, t, 1);  // [B, 1]
      auto [loc, scale] = trans_->loc_scale(z_prev);
      cuvi::Tensor z;
      {
        cuvi::poutine::ScaleMessenger anneal(annealing);
        cuvi::HandlerScope in(&anneal);
        z = cuvi::sample(site("z_", t), cuvi::dist::Normal(loc, scale).mask(m).to_event(1));
      }
      cuvi::sample(site("obs_x_", t), cuvi::dist::Bernoulli::from_logits(emitter_->logits(z)).mask(m).to_event(1),
                   cuvi::squeeze(cuvi::narrow(s.x, 1, t, 1), 1));
      z_prev = z;
    }
  }

  void guide(const SequenceBatch& s, float annealing = 1.0f) const {
    cuvi::module("dmm", const_cast<DMM&>(*this));
    const int64_t b = s.x.size(0), t_max = s.x.size(1);
    const cuvi::Tensor h0 = cuvi::expand(param(2), {b, c_.rnn_dim});
    const cuvi::Tensor h = cuvi::nn::reverse_padded(rnn_->forward(s.x_reversed, h0).first, s.lengths);
    cuvi::Tensor z_prev = cuvi::expand(param(1), {b, c_.z_dim});
    auto p = cuvi::plate("z_minibatch", b);
    for (int64_t t : cuvi::markov(t_max)) {
      const cuvi::Tensor m = cuvi::narrow(s.mask, 1, t, 1);
      auto [loc, scale] = combiner_->loc_scale(z_prev, cuvi::squeeze(cuvi::narrow(h, 1, t, 1), 1));
      cuvi::poutine::ScaleMessenger anneal(annealing);
      cuvi::HandlerScope in(&anneal);
      z_prev = cuvi::sample(site("z_", t), cuvi::dist::Normal(loc, scale).mask(m).to_event(1));
    }
  }

  const DmmConfig& config() const { return c_; }

 private:
  static std::string site(const char* prefix, int64_t t) { return prefix + std::to_string(t + 1); }
  DmmConfig c_;
  std::shared_ptr<Emitter> emitter_;
  std::shared_ptr<GatedTransition> trans_;
  std::shared_ptr<Combiner> combiner_;
  std::shared_ptr<cuvi::nn::RNN> rnn_;
};

}  // namespace cuvi_examples
