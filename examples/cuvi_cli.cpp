// The `cuvi` command line: runnable examples.
//   cuvi coin [--device cpu|cuda|cuda:N] [--steps N] [--seed S]
//   cuvi demo [--device ...]       a tensor program with a gradient
//   cuvi vae [--device ...] [--epochs E] [--batch B] [--latent Z] [--seed S]
//                                  a VAE on synthetic 16x16 stroke images
//   mpiexec -n W cuvi vae --mpi 1 [...]
//                                  the same, data-parallel over W ranks
//                                  (each trains on its block of the
//                                  images; NCCL between GPUs when built)
//   cuvi hmm [--device ...] [--steps N]
//                                  the dishonest casino: an HMM's switching
//                                  and dice learned from rolls alone
//                                  (dist::DiscreteHMM, states summed out)
//   cuvi gmm [--device ...] [--steps N]
//                                  Pyro's Gaussian mixture tutorial: the
//                                  assignments enumerated (TraceEnum_ELBO),
//                                  MAP globals, then infer_discrete
//   cuvi ssvae [--device ...] [--epochs E] [--batch B] [--latent Z] [--n L]
//                                  a semi-supervised VAE (Pyro's SS-VAE):
//                                  L labelled images, the class of the
//                                  others enumerated in the guide
//   cuvi dmm [--device ...] [--epochs E] [--batch B] [--n N] [--latent Z]
//                                  a deep Markov model (Pyro's DMM tutorial)
//                                  on synthetic chorale-like sequences of
//                                  different lengths (RNN guide, masks,
//                                  KL annealing)
//   cuvi regression [--device ...] [--steps N] [--n N] [--features D]
//                   [--batch B] [--guide diag|mvn|normal|iaf]
//                                  Bayesian linear regression (Pyro's
//                                  regression tutorial) on synthetic data,
//                                  minibatched with --batch; the guide
//                                  beside the exact posterior
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "coin/coin.hpp"
#include "dmm/dmm.hpp"
#include "gmm/gmm.hpp"
#include "hmm/hmm.hpp"
#include "regression/regression.hpp"
#include "ssvae/ssvae.hpp"
#include "vae/vae.hpp"

using namespace cuvi;

namespace {

struct Args {
  std::string command = "coin";
  Device device = Device::best();
  int steps = 2000;
  uint64_t seed = 0;
  int epochs = 10;
  int64_t batch = 128;
  bool batch_given = false;
  int64_t n = 10000;
  bool n_given = false;
  int64_t features = 3;
  std::string guide = "diag";
  int64_t latent = 8;
  bool mpi = false;
};

int usage() {
  std::fprintf(stderr,
               "usage: cuvi [coin|demo|vae|ssvae|dmm|gmm|hmm|regression] [--device cpu|cuda|cuda:N] [--steps N] [--seed S]\n"
               "                 [--epochs E] [--batch B] [--latent Z] [--mpi 1]   (vae)\n"
               "                 [--epochs E] [--batch B] [--latent Z] [--n labelled]   (ssvae)\n"
               "                 [--epochs E] [--batch B] [--n sequences] [--latent Z]   (dmm)\n"
               "                 [--n N] [--features D] [--batch B] [--guide diag|mvn|normal|iaf]   (regression)\n"
               "  coin  SVI on Pyro's coin-fairness example (SVI Part I)\n"
               "  demo  a least-squares fit by gradient descent (runtime demo)\n"
               "  vae   a variational autoencoder on synthetic 16x16 binary images (Pyro's VAE tutorial)\n"
               "  ssvae a semi-supervised VAE on the same images, most unlabelled (Pyro's SS-VAE tutorial)\n"
               "  dmm   a deep Markov model (Pyro's DMM tutorial) on synthetic note sequences\n"
               "  gmm   a Gaussian mixture with enumerated assignments (Pyro's GMM tutorial)\n"
               "  hmm   the dishonest casino: an HMM's parameters learned from rolls (DiscreteHMM)\n"
               "  regression  Bayesian linear regression (Pyro's tutorial) on synthetic data, optionally\n"
               "        minibatched, the guide beside the exact posterior\n");
  return 2;
}

int run_coin(const Args& a) {
  set_default_device(a.device);
  set_seed(a.seed);
  param_store().clear();
  std::vector<float> flips(10, 0.0f);
  for (int i = 0; i < 6; ++i) flips[static_cast<size_t>(i)] = 1.0f;
  Tensor data = tensor(flips, a.device);
  infer::SVI svi(cuvi_examples::coin_model, cuvi_examples::coin_guide,
                 optim::Adam({.lr = 5e-4f, .betas = {0.9f, 0.999f}}), infer::Trace_ELBO());
  std::printf("cuvi coin: SVI on %s, %d steps, Adam(lr=5e-4), Trace_ELBO\n", a.device.str().c_str(), a.steps);
  const auto t0 = std::chrono::steady_clock::now();
  auto last = t0;
  int last_step = 0;
  for (int step = 1; step <= a.steps; ++step) {
    Tensor loss = svi.step(data);
    if (step % 200 == 0 || step == a.steps) {
      const float l = loss.item();  // the only wait for the device: progress lines
      const auto now = std::chrono::steady_clock::now();
      const double secs = std::chrono::duration<double>(now - last).count();
      std::printf("step %5d  ELBO %9.4f  %8.0f steps/s\n", step, -l, (step - last_step) / secs);
      last = now;
      last_step = step;
    }
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double alpha = param_store().get("alpha_q").item();
  const double beta = param_store().get("beta_q").item();
  auto summary = [](double al, double be, double* m, double* s) {
    *m = al / (al + be);
    *s = std::sqrt(al * be / ((al + be) * (al + be) * (al + be + 1)));
  };
  double m, s, em, es;
  summary(alpha, beta, &m, &s);
  summary(16.0, 14.0, &em, &es);
  std::printf("alpha_q = %.4f, beta_q = %.4f (%.0f steps/s overall)\n", alpha, beta, a.steps / total);
  std::printf("inferred fairness: %.3f +- %.3f   exact posterior Beta(16, 14): %.3f +- %.3f\n", m, s, em, es);
  return 0;
}

int run_gmm(const Args& a) {
  set_default_device(a.device);
  set_seed(a.seed);
  param_store().clear();
  const Tensor data = tensor({0.0f, 1.0f, 10.0f, 11.0f, 12.0f}, a.device);
  cuvi_examples::GMM gmm{2, tensor({0.0f, 12.0f}, a.device)};
  auto model = [&gmm](const Tensor& x) { gmm.model(x); };
  auto guide = [&gmm](const Tensor& x) { gmm.guide(x); };
  const int steps = a.steps == 2000 ? 500 : a.steps;  // the coin's default is not this one's
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.1f, .betas = {0.8f, 0.99f}}),
                 infer::TraceEnum_ELBO({.max_plate_nesting = 1}));
  std::printf("cuvi gmm: MAP of Pyro's GMM tutorial on %s, data [0, 1, 10, 11, 12], K = 2, %d steps, "
              "TraceEnum_ELBO\n",
              a.device.str().c_str(), steps);
  const auto t0 = std::chrono::steady_clock::now();
  for (int step = 1; step <= steps; ++step) {
    Tensor loss = svi.step(data);
    if (step % 100 == 0 || step == steps) std::printf("step %4d  loss %9.4f\n", step, loss.item());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto w = param_store().get("weights_map").to_vector();
  const auto l = param_store().get("locs_map").to_vector();
  std::printf("weights = [%.3f, %.3f]   locs = [%.3f, %.3f]   scale = %.3f   (%.0f steps/s)\n", w[0], w[1], l[0],
              l[1], param_store().get("scale_map").item(), steps / secs);
  // MAP assignments given the MAP globals: the guide's values replayed.
  const Trace gt = poutine::trace(guide).get_trace(data);
  const Trace tr = poutine::trace(infer::infer_discrete(poutine::replay(model, gt), -2, 0)).get_trace(data);
  const auto z = tr.site("assignment").value.to_vector_i64();
  std::printf("assignments:");
  for (int64_t v : z) std::printf(" %lld", static_cast<long long>(v));
  std::printf("\n");
  return 0;
}

int run_hmm(const Args& a) {
  using cuvi_examples::Casino;
  set_default_device(a.device);
  set_seed(a.seed);
  param_store().clear();
  const int64_t n = 50, t = 100;
  const Tensor rolls = Casino::rolls(n, t, a.device);
  const int steps = a.steps == 2000 ? 300 : a.steps;  // the coin's default is not this one's
  infer::SVI svi(Casino::model, Casino::guide, optim::Adam({.lr = 0.05f}), infer::Trace_ELBO());
  std::printf("cuvi hmm: the dishonest casino on %s, %lld sequences of %lld rolls, DiscreteHMM (2 states), "
              "Adam(lr=0.05), %d steps\n",
              a.device.str().c_str(), static_cast<long long>(n), static_cast<long long>(t), steps);
  const auto t0 = std::chrono::steady_clock::now();
  for (int step = 1; step <= steps; ++step) {
    Tensor loss = svi.step(rolls);
    if (step % 50 == 0 || step == steps)
      std::printf("step %4d  log-likelihood per roll %8.4f\n", step, -loss.item() / static_cast<double>(n * t));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto tr = softmax(param_store().get("transition_logits"), -1).to_vector();
  const auto dice = param_store().get("emission_probs").to_vector();
  std::printf("(%.0f steps/s)\n", steps / secs);
  std::printf("p(stay): state 0 %.3f, state 1 %.3f   (truth: fair 0.950, loaded 0.900)\n", tr[0], tr[3]);
  for (int s = 0; s < 2; ++s) {
    std::printf("die %d:", s);
    for (int f = 0; f < 6; ++f) std::printf(" %.3f", dice[static_cast<size_t>(s * 6 + f)]);
    std::printf("\n");
  }
  std::printf("truth: fair 1/6 each; loaded 0.1 x5, 0.5 for a six\n");
  return 0;
}

// Fits the regression with one autoguide and prints the guide beside the
// exact posterior of (w, b) given the guide's median sigma.
template <class Guide>
int fit_regression(const Args& a, const cuvi_examples::RegressionData& data, int64_t batch, Guide guide,
                   const std::string& prefix) {
  using namespace cuvi_examples;
  const BayesianRegression reg{batch};
  auto model = [reg](const Tensor& x, const Tensor& y) { reg.model(x, y); };
  const int steps = a.steps;
  // Adam at lr 0.03 (the tutorial's), decayed a hundredfold over the run (near the optimum Adam moves each
  // param by about lr per step, which must end below the posterior sd).
  optim::ClippedAdam opt({.lr = 0.03f, .lrd = static_cast<float>(std::pow(0.01, 1.0 / std::max(1, steps)))});
  infer::SVI svi(model, guide, opt, infer::Trace_ELBO());
  std::printf("cuvi regression: %lld rows x %lld features on %s, %s, %s, ClippedAdam(lr=0.03, x0.01 over the run), "
              "%d steps\n",
              static_cast<long long>(a.n), static_cast<long long>(a.features), a.device.str().c_str(),
              batch ? ("minibatches of " + std::to_string(batch) + " rows").c_str() : "all rows per step",
              prefix.c_str(), steps);
  const auto t0 = std::chrono::steady_clock::now();
  auto last = t0;
  int last_step = 0;
  for (int step = 1; step <= steps; ++step) {
    Tensor loss = svi.step(data.x, data.y);
    if (step % std::max(1, steps / 10) == 0 || step == steps) {
      const float l = loss.item();  // the only wait for the device: progress lines
      const auto now = std::chrono::steady_clock::now();
      std::printf("step %5d  ELBO/row %9.4f  %8.0f steps/s\n", step, -l / static_cast<double>(a.n),
                  (step - last_step) / std::chrono::duration<double>(now - last).count());
      last = now;
      last_step = step;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The guide's marginals of (w, b) in its flat order: weight [d], bias.
  std::vector<float> mean, sd;
  if constexpr (requires { guide.loc_and_scale(prefix); }) {
    for (const char* site : {"weight", "bias"}) {
      const auto [loc, scale] = guide.loc_and_scale(site);
      for (float v : loc.to_vector()) mean.push_back(v);
      for (float v : scale.to_vector()) sd.push_back(v);
    }
  } else if constexpr (requires { guide.transforms(); }) {  // AutoIAFNormal: moments by sampling
    sampled_moments(*guide.get_posterior(), 20000, &mean, &sd);
  } else {
    continuous_guide_moments(prefix, &mean, &sd);
  }
  const double sigma = guide.median().at("sigma").item();
  const GaussianPosterior exact = exact_posterior(data.x, data.y, sigma);
  std::printf("(%.2f s, %.0f steps/s)\n", secs, steps / secs);
  std::printf("%-10s %8s   %-19s   %-19s\n", "", "truth", "exact posterior", "guide");
  for (int64_t j = 0; j <= a.features; ++j) {
    const size_t i = static_cast<size_t>(j);
    const std::string name = j < a.features ? "weight[" + std::to_string(j) + "]" : "bias";
    const double truth = j < a.features ? data.weight[i] : data.bias;
    std::printf("%-10s %8.4f   %8.4f +- %7.4f   %8.4f +- %7.4f\n", name.c_str(), truth, exact.mean[i], exact.sd(i),
                mean[i], sd[i]);
  }
  std::printf("%-10s %8.4f   the guide's median %.4f (the exact posterior above is given it)\n", "sigma", data.sigma,
              sigma);
  return 0;
}

int run_regression(const Args& a) {
  using namespace cuvi_examples;
  if (a.n < 2 || a.features < 1 || (a.batch_given && (a.batch < 1 || a.batch > a.n))) return usage();
  set_default_device(a.device);
  set_seed(a.seed);
  param_store().clear();
  const RegressionData data = make_regression_data(a.n, a.features, a.device);
  const int64_t batch = a.batch_given ? a.batch : 0;
  const BayesianRegression reg{batch};
  auto model = [reg](const Tensor& x, const Tensor& y) { reg.model(x, y); };
  if (a.guide == "diag") return fit_regression(a, data, batch, infer::AutoDiagonalNormal(model), "AutoDiagonalNormal");
  if (a.guide == "mvn")
    return fit_regression(a, data, batch, infer::AutoMultivariateNormal(model), "AutoMultivariateNormal");
  if (a.guide == "normal") return fit_regression(a, data, batch, infer::AutoNormal(model), "AutoNormal");
  if (a.guide == "iaf")
    return fit_regression(a, data, batch, infer::AutoIAFNormal(model, {.num_transforms = 2}), "AutoIAFNormal");
  return usage();
}

int run_demo(const Args& a) {
  set_seed(a.seed);
  std::printf("cuvi runtime demo on %s: least squares by gradient descent\n", a.device.str().c_str());
  Tensor x = randn({1000, 3}, a.device);
  Tensor w_true = tensor({1.5f, -2.0f, 0.5f}, a.device);
  Tensor y = matmul(x, w_true) + 0.1f * randn({1000}, a.device);
  Tensor w = zeros({3}, a.device).requires_grad_();
  for (int it = 0; it <= 200; ++it) {
    Tensor loss = mean(square(matmul(x, w) - y));
    loss.backward();
    const Tensor g = w.grad();
    w = (w.detach() - 0.1f * g).requires_grad_();
    if (it % 50 == 0) std::printf("iter %3d  loss %.5f\n", it, loss.item());
  }
  const auto wv = w.to_vector();
  std::printf("fitted w = [%.3f, %.3f, %.3f] (true [1.5, -2.0, 0.5])\n", wv[0], wv[1], wv[2]);
  return 0;
}


int run_vae_on(const Args& a, const parallel::CommPtr& comm);

// The semi-supervised VAE: the first `labelled` images keep their class,
// the others are trained on unlabelled (their class enumerated in the
// guide); each unlabelled step is followed by a labelled one.
int run_ssvae(const Args& a) {
  constexpr int64_t kSide = 16, kImages = 4096, kHidden = 256;
  constexpr int kClasses = 10;
  const int64_t labelled = a.n_given ? a.n : 100;
  if (a.epochs < 1 || a.batch < 1 || a.latent < 1 || labelled < 1 || labelled >= kImages) return usage();
  set_default_device(a.device);
  set_seed(a.seed);
  param_store().clear();
  const auto data = cuvi_examples::make_labelled_stroke_images(kImages, kSide, kClasses, 1234 + a.seed, 0.03f,
                                                               a.device);
  const Tensor xl = narrow(data.images, 0, 0, labelled), yl = narrow(data.labels, 0, 0, labelled);
  const Tensor xu = narrow(data.images, 0, labelled, kImages - labelled);
  const std::vector<int64_t> yu(data.classes.begin() + labelled, data.classes.end());
  cuvi_examples::SsVAE vae({.x_dim = kSide * kSide, .classes = kClasses, .z_dim = a.latent, .hidden = kHidden,
                            .batch = a.batch},
                           a.device);
  auto model = [&vae](const Tensor& x, const Tensor& y) { vae.model(x, y); };
  auto guide = [&vae](const Tensor& x, const Tensor& y) { vae.guide(x, y); };
  infer::SVI svi(model, guide, optim::Adam({.lr = 1e-3f}), infer::TraceEnum_ELBO({.max_plate_nesting = 1}));
  const int64_t steps = (kImages - labelled + a.batch - 1) / a.batch;
  std::printf("cuvi ssvae: %lld synthetic %lldx%lld images of %d classes, %lld labelled; z_dim %lld, hidden %lld, "
              "batch %lld, %lld unlabelled + %lld labelled steps/epoch, Adam(lr=1e-3), TraceEnum_ELBO (the class "
              "enumerated in the guide), on %s\n",
              static_cast<long long>(kImages), static_cast<long long>(kSide), static_cast<long long>(kSide), kClasses,
              static_cast<long long>(labelled), static_cast<long long>(a.latent), static_cast<long long>(kHidden),
              static_cast<long long>(a.batch), static_cast<long long>(steps), static_cast<long long>(steps),
              a.device.str().c_str());
  std::printf("epoch %3d  accuracy on the unlabelled images %.4f (chance %.2f)\n", 0, vae.accuracy(xu, yu),
              1.0 / kClasses);
  const auto t0 = std::chrono::steady_clock::now();
  for (int epoch = 1; epoch <= a.epochs; ++epoch) {
    const auto te = std::chrono::steady_clock::now();
    Tensor lu = zeros({}, a.device);
    for (int64_t s = 0; s < steps; ++s) {
      lu = lu + svi.step(xu, Tensor());  // no sync per step
      svi.step(xl, yl);
    }
    const double per_image = -static_cast<double>(lu.item()) / (static_cast<double>(steps) * (kImages - labelled));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - te).count();
    std::printf("epoch %3d  unlabelled ELBO/image %9.4f  accuracy %.4f  %7.1f steps/s\n", epoch, per_image,
                vae.accuracy(xu, yu), 2.0 * steps / secs);
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%lld steps in %.2f s\n", static_cast<long long>(2 * steps * a.epochs), total);
  return 0;
}

// Pyro's DMM tutorial at a size a CPU trains in seconds (its own sizes are
// DmmConfig's defaults: z 100, rnn 600, ...): per epoch the training loss
// and a held-out set's, each per observed time step (Pyro's "NLL per
// timestep", an upper bound: the negative ELBO), beside the independent
// per-note baseline (the training notes' marginal frequencies: the best
// model without time or chords).
int run_dmm(const Args& a) {
  const int64_t n = a.n_given ? a.n : 512, batch = a.batch_given ? a.batch : 32, z_dim = a.latent;
  if (a.epochs < 1 || batch < 1 || n < 2 || z_dim < 1) return usage();
  constexpr int64_t kNotes = 88, kTmin = 8, kTmax = 32, kTest = 64;
  set_default_device(a.device);
  set_seed(a.seed);
  param_store().clear();
  // One draw (one chord table), split into the training and held-out sequences.
  const auto all_data =
      cuvi_examples::make_chorale_like(n + kTest, kTmin, kTmax, kNotes, 4321 + a.seed, 6, 0.8, a.device);
  const auto train = cuvi_examples::slice(all_data, 0, n), test = cuvi_examples::slice(all_data, n, kTest);
  cuvi_examples::DMM dmm({.x_dim = kNotes, .z_dim = z_dim, .emission_dim = 64, .transition_dim = 64, .rnn_dim = 128},
                         a.device);
  float annealing = 1.0f;
  auto model = [&dmm, &annealing](const cuvi_examples::SequenceBatch& s) { dmm.model(s, annealing); };
  auto guide = [&dmm, &annealing](const cuvi_examples::SequenceBatch& s) { dmm.guide(s, annealing); };
  infer::SVI svi(model, guide,
                 optim::ClippedAdam({.lr = 3e-3f, .betas = {0.96f, 0.999f}, .clip_norm = 10.0f, .lrd = 0.99996f}),
                 infer::Trace_ELBO());
  // The baseline: independent notes at their training frequencies.
  double baseline = 0;
  {
    const auto x = train.x.to_vector();
    std::vector<double> on(kNotes, 0.0);
    int64_t steps = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t l = train.host_lengths[static_cast<size_t>(i)];
      steps += l;
      for (int64_t t = 0; t < l; ++t)
        for (int64_t d = 0; d < kNotes; ++d) on[static_cast<size_t>(d)] += x[static_cast<size_t>((i * kTmax + t) * kNotes + d)];
    }
    for (double c : on) {
      const double p = std::clamp(c / static_cast<double>(steps), 1e-6, 1 - 1e-6);
      baseline -= p * std::log(p) + (1 - p) * std::log(1 - p);
    }
  }
  std::vector<int64_t> all(static_cast<size_t>(kTest));
  for (int64_t i = 0; i < kTest; ++i) all[static_cast<size_t>(i)] = i;
  const auto test_batch = cuvi_examples::make_batch(test, all);
  const int annealing_epochs = std::max(1, a.epochs / 4);
  constexpr float kMinAnnealing = 0.2f;
  std::printf("cuvi dmm: %lld synthetic sequences of %lld notes, lengths %lld..%lld (6 chords), %lld held out; "
              "z_dim %lld, rnn 128, batch %lld, ClippedAdam(lr=3e-3), KL annealing from %.1f over %d epochs, on %s\n"
              "independent-notes baseline: %.4f nats per time step\n",
              static_cast<long long>(n), static_cast<long long>(kNotes), static_cast<long long>(kTmin),
              static_cast<long long>(kTmax), static_cast<long long>(kTest), static_cast<long long>(z_dim),
              static_cast<long long>(batch), kMinAnnealing, annealing_epochs, a.device.str().c_str(), baseline);
  std::printf("epoch %3d  test loss/step %8.4f\n", 0,
              svi.evaluate_loss(test_batch).item() / static_cast<double>(test_batch.steps));
  std::mt19937_64 shuffle(a.seed);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  const auto t0 = std::chrono::steady_clock::now();
  int64_t total_steps = 0;
  for (int epoch = 1; epoch <= a.epochs; ++epoch) {
    const auto te = std::chrono::steady_clock::now();
    std::shuffle(order.begin(), order.end(), shuffle);
    Tensor train_loss = zeros({}, a.device);  // summed on the device: no wait per step
    int64_t observed = 0, steps = 0;
    for (int64_t start = 0; start < n; start += batch) {
      // Pyro's annealing schedule: linear in the minibatch count over the first epochs.
      const double progress = (static_cast<double>(epoch - 1) + static_cast<double>(start) / n) / annealing_epochs;
      annealing = epoch > annealing_epochs
                      ? 1.0f
                      : static_cast<float>(kMinAnnealing + (1.0 - kMinAnnealing) * std::min(1.0, progress));
      const std::vector<int64_t> idx(order.begin() + start, order.begin() + std::min(n, start + batch));
      const auto s = cuvi_examples::make_batch(train, idx);
      train_loss = train_loss + svi.step(s);
      observed += s.steps;
      ++steps;
    }
    annealing = 1.0f;
    const double test_loss = svi.evaluate_loss(test_batch).item() / static_cast<double>(test_batch.steps);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - te).count();
    total_steps += steps;
    std::printf("epoch %3d  training loss/step %8.4f  test loss/step %8.4f  %6.1f steps/s\n", epoch,
                static_cast<double>(train_loss.item()) / static_cast<double>(observed), test_loss, static_cast<double>(steps) / secs);
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%lld steps in %.2f s\n", static_cast<long long>(total_steps), total);
  return 0;
}

int run_vae(const Args& a) {
  if (a.epochs < 1 || a.batch < 1 || a.latent < 1) return usage();
  // Data parallelism (--mpi 1, under mpiexec): each rank trains on its block
  // of the images with minibatches of `batch`; the mean gradient over ranks
  // updates identical weights everywhere. On GPUs each rank takes one
  // (cuda:(local rank % devices)) and NCCL joins them when built.
  parallel::CommPtr comm;
  Device dev = a.device;
  if (a.mpi) {
    comm = parallel::mpi_world();
    if (dev.is_cuda()) {
      dev = Device::cuda(comm->local_rank() % std::max(1, cuda_device_count()));
      if (parallel::nccl_available()) comm = parallel::nccl(comm, dev);
    }
  }
  Args a_dev = a;
  a_dev.device = dev;
  return run_vae_on(a_dev, comm);
}

int run_vae_on(const Args& a, const parallel::CommPtr& comm) {
  set_default_device(a.device);
  set_seed(a.seed);  // the same data and initial weights on every rank
  param_store().clear();
  const int rank = comm ? comm->rank() : 0, world = comm ? comm->size() : 1;
  constexpr int64_t kSide = 16, kImages = 4096, kHidden = 256;
  constexpr int kPrototypes = 10;
  const Tensor data = cuvi_examples::make_stroke_images(kImages, kSide, kPrototypes, 1234 + a.seed, 0.03f, a.device);
  const int64_t batch = std::min<int64_t>(a.batch, kImages / world);
  cuvi_examples::VAE vae({.x_dim = kSide * kSide, .z_dim = a.latent, .hidden = kHidden, .batch = batch}, a.device);
  std::function<void(const Tensor&)> model = [&vae](const Tensor& x) { vae.model(x); };
  std::function<void(const Tensor&)> guide = [&vae](const Tensor& x) { vae.guide(x); };
  std::shared_ptr<optim::Optimizer> opt = std::make_shared<optim::Adam>(optim::AdamOptions{.lr = 1e-3f});
  if (comm) {
    model = poutine::shard(model, rank, world, {"data"});
    guide = poutine::shard(guide, rank, world, {"data"});
    opt = std::make_shared<optim::DistributedOptimizer>(*opt, comm);
    set_seed(a.seed + 1000003ull * static_cast<uint64_t>(rank));  // each rank its own draws
  }
  infer::SVI svi(model, guide, *opt, infer::Trace_ELBO());
  // An epoch: every image once in expectation, over all ranks.
  const int64_t steps_per_epoch = (kImages + batch * world - 1) / (batch * world);
  if (rank == 0)
    std::printf("cuvi vae: %lld synthetic %lldx%lld images (%d prototypes), z_dim %lld, hidden %lld, batch %lld, "
                "%lld steps/epoch, Adam(lr=1e-3), Trace_ELBO, on %s%s\n",
                static_cast<long long>(kImages), static_cast<long long>(kSide), static_cast<long long>(kSide),
                kPrototypes, static_cast<long long>(a.latent), static_cast<long long>(kHidden),
                static_cast<long long>(batch), static_cast<long long>(steps_per_epoch), a.device.str().c_str(),
                comm ? (", data-parallel over " + std::to_string(world) + " ranks (" + comm->name() + ")").c_str()
                     : "");
  const auto t0 = std::chrono::steady_clock::now();
  for (int epoch = 1; epoch <= a.epochs; ++epoch) {
    const auto te = std::chrono::steady_clock::now();
    Tensor total = zeros({}, a.device);
    for (int64_t s = 0; s < steps_per_epoch; ++s) total = total + svi.step(data);  // no sync per step
    if (comm) total = parallel::all_reduce_mean(total, *comm);
    // Each step's loss estimates the whole data set's -ELBO (plate scale N/B).
    const double per_image = -static_cast<double>(total.item()) / (static_cast<double>(steps_per_epoch) * kImages);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - te).count();
    if (rank == 0) std::printf("epoch %3d  ELBO/image %9.4f  %8.1f steps/s\n", epoch, per_image, steps_per_epoch / secs);
  }
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (rank == 0)
    std::printf("%lld steps in %.2f s (%.1f steps/s); ELBO/image of independent fair pixels: %.4f\n",
                static_cast<long long>(steps_per_epoch * a.epochs), total_s, steps_per_epoch * a.epochs / total_s,
                -static_cast<double>(kSide * kSide) * std::log(2.0));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  try {
    int i = 1;
    if (i < argc && argv[i][0] != '-') a.command = argv[i++];
    for (; i < argc; ++i) {
      const std::string k = argv[i];
      if (i + 1 >= argc) return usage();
      if (k == "--device") a.device = Device::parse(argv[++i]);
      else if (k == "--steps") a.steps = std::stoi(argv[++i]);
      else if (k == "--seed") a.seed = std::stoull(argv[++i]);
      else if (k == "--epochs") a.epochs = std::stoi(argv[++i]);
      else if (k == "--batch") a.batch = std::stoll(argv[++i]), a.batch_given = true;
      else if (k == "--n") a.n = std::stoll(argv[++i]), a.n_given = true;
      else if (k == "--features") a.features = std::stoll(argv[++i]);
      else if (k == "--guide") a.guide = argv[++i];
      else if (k == "--latent") a.latent = std::stoll(argv[++i]);
      else if (k == "--mpi") a.mpi = std::stoi(argv[++i]) != 0;
      else return usage();
    }
    if (a.command == "coin") return run_coin(a);
    if (a.command == "demo") return run_demo(a);
    if (a.command == "vae") return run_vae(a);
    if (a.command == "ssvae") return run_ssvae(a);
    if (a.command == "dmm") return run_dmm(a);
    if (a.command == "gmm") return run_gmm(a);
    if (a.command == "hmm") return run_hmm(a);
    if (a.command == "regression") return run_regression(a);
    return usage();
  } catch (const cuvi::Error& e) {
    std::fprintf(stderr, "cuvi: %s\n", e.what());
    return 1;
  }
}
