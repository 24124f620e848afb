// The dishonest casino (a classic HMM): a die is fair or loaded (a six
// half the time), and the casino switches between them now and then. From
// sequences of rolls alone, learn the switching probabilities and both
// dice by maximum likelihood: the hidden states are summed out exactly by
// dist::DiscreteHMM, so the model has params and no latent site (an empty
// guide), as in Pyro's HMM examples' MAP fits.
#pragma once

#include <cuvi.hpp>

namespace cuvi_examples {

struct Casino {
  // The truth: p(stay fair) 0.95, p(stay loaded) 0.90; the fair die uniform,
  // the loaded one a six with probability 1/2.
  static cuvi::Tensor true_transition_probs(cuvi::Device dev) {
    return cuvi::tensor({0.95f, 0.05f, 0.10f, 0.90f}, {2, 2}, dev);
  }
  static cuvi::Tensor true_emission_probs(cuvi::Device dev) {
    const float f = 1.0f / 6.0f, l = 0.1f;
    return cuvi::tensor({f, f, f, f, f, f, l, l, l, l, l, 0.5f}, {2, 6}, dev);
  }
  // n sequences of t rolls (int64 faces 0..5), [n, t], from the truth.
  static cuvi::Tensor rolls(int64_t n, int64_t t, cuvi::Device dev) {
    using namespace cuvi;
    const dist::DiscreteHMM truth(zeros({2}, dev), log(true_transition_probs(dev)),
                                  dist::Categorical(true_emission_probs(dev)), t);
    return truth.sample({n});
  }

  // The model: learned transition logits and dice (simplex rows, started
  // apart so the two states can tell themselves apart), a uniform state
  // before the first roll, the sequences as a plate's rows.
  static void model(const cuvi::Tensor& rolls) {
    using namespace cuvi;
    const Device dev = rolls.device();
    Tensor trans = param("transition_logits", tensor({2.0f, 0.0f, 0.0f, 2.0f}, {2, 2}, dev));
    Tensor dice = param(
        "emission_probs",
        [dev] {
          return tensor({0.2f, 0.2f, 0.2f, 0.2f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.5f}, {2, 6}, dev);
        },
        constraints::simplex);
    auto seqs = plate("sequences", rolls.size(0));
    sample("rolls", dist::DiscreteHMM(zeros({2}, dev), trans, dist::Categorical(dice), rolls.size(1)), rolls);
  }
  static void guide(const cuvi::Tensor&) {}
};

}  // namespace cuvi_examples
