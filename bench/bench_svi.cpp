// Whole SVI steps per second (Trace_ELBO + Adam), per backend:
//   coin/<backend>            Pyro's SVI Part I coin model: a handful of tiny
//                             launches per step, so it measures per-step
//                             overhead (host work, launches), not bandwidth.
//   local_latents/<be>/N/B    a mean-field model with N local latents under a
//                             plate subsampled to B: per step the guide
//                             gathers B rows of loc and scale, draws z, and
//                             both sites' fused log-prob-sums write their
//                             gradients; Adam updates all 2N parameters.
//   coin_pipelined/<backend>  the coin model, 64 steps per synchronisation.
//   local_event_dim/<be>/N/B  local_latents with the params declared with
//                             event_dim (rows taken before the transform).
//   gmm_enum/<be>/N/K         Pyro's Gaussian mixture (MAP globals) with N
//                             points and K components, each point's
//                             assignment summed out by TraceEnum_ELBO: per
//                             step an [K, N] log-factor, its logsumexp and
//                             gradient.
//   local_sparse_adam/<be>/N/B  the same with SparseAdam: the params get
//                             row-sparse gradients and only the B rows of
//                             the minibatch are updated (O(B) per step).
//   regression/<be>/N/B/D     examples/regression: Bayesian linear
//                             regression over N rows of D features, B rows
//                             per step drawn on the device, an
//                             AutoDiagonalNormal guide (global latents only:
//                             per step a [B, D] gather, a matrix-vector
//                             product and the likelihood's fused sum).
//   ssvae/<be>/B/K            examples/ssvae: an unlabelled step of the
//                             semi-supervised VAE on 16x16 images, batch B,
//                             K classes enumerated in the guide (the nets
//                             run on K * B rows).
//   vae/<be>/B/H              examples/vae at the size of Pyro's VAE
//                             tutorial: 784 pixels, H hidden units, 50
//                             latents, batch B drawn from 10000 images by
//                             the plate (per step four [B, .] x [., .]
//                             products forward and eight backward, the
//                             latent and likelihood fused sums, Adam over
//                             ~0.67M weights for H = 400).
//   iaf/<be>/D/T              AutoIAFNormal with T flows on a D-dim
//                             correlated Gaussian model (global latents: a
//                             MADE forward per flow, Adam over the nets).
// Items are steps; bytes are not reported (the Adam update over 2N params
// dominates at large N: 2N * (param, grad, m, v) read + 3 written).
// Each iteration is one step plus a synchronisation (bench_common.hpp),
// except coin_pipelined's. Counters launches_per_step and syncs_per_step
// come from launch_count() and sync_count().
#include "bench_common.hpp"
#include "../examples/gmm/gmm.hpp"
#include "../examples/regression/regression.hpp"
#include "../examples/ssvae/ssvae.hpp"
#include "../examples/vae/vae.hpp"

namespace {

using namespace cuvi_bench;
using namespace cuvi;

// Per-step counters from launch_count() (cuvi's CUDA kernel launches; 0 on
// the CPU) and sync_count() (1 per timed iteration: the timing sync).
struct StepCounters {
  long long launches0 = cuvi::launch_count(), syncs0 = cuvi::sync_count();
  void report(benchmark::State& state, double steps) const {
    if (steps <= 0) return;
    state.counters["launches_per_step"] = static_cast<double>(cuvi::launch_count() - launches0) / steps;
    state.counters["syncs_per_step"] = static_cast<double>(cuvi::sync_count() - syncs0) / steps;
  }
};

// Times whole SVI steps: one step first, outside the timing and the
// counters (it creates the params), then run_timed; items are steps, and
// `what` counts per_step of something per step as a rate. Leaves the cpu
// as the default device.
template <class Step>
void time_steps(benchmark::State& state, Device dev, Step&& step, const char* what, double per_step) {
  step();
  const StepCounters counters;
  run_timed(state, dev, step);
  counters.report(state, static_cast<double>(state.iterations()) + 1);
  state.SetItemsProcessed(state.iterations());
  state.counters[what] = benchmark::Counter(per_step * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  set_default_device(Device::cpu());
}

// Pyro's coin model; each timed iteration runs `steps_per_sync` steps, then
// waits once. With 1 (bm_coin, as Pyro's step that returns a float) the
// time is a step's latency; with more (bm_coin_pipelined) the host queues
// the next steps while the GPU runs, which a training loop that reads the
// loss only now and then gets.
void coin(benchmark::State& state, Which which, int steps_per_sync) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  set_default_device(*dev);
  param_store().clear();
  std::vector<float> flips(10, 0.0f);
  for (int i = 0; i < 6; ++i) flips[static_cast<size_t>(i)] = 1.0f;
  const Tensor data = tensor(flips, *dev);
  auto model = [](const Tensor& d) {
    Tensor f = sample("latent_fairness", dist::Beta(10.0f, 10.0f));
    auto p = plate("data", d.size(0));
    sample("obs", dist::Bernoulli(f), d);
  };
  auto guide = [](const Tensor&) {
    Tensor a = param("alpha_q", 15.0f, constraints::positive);
    Tensor b = param("beta_q", 15.0f, constraints::positive);
    sample("latent_fairness", dist::Beta(a, b));
  };
  infer::SVI svi(model, guide, optim::Adam({.lr = 5e-4f}), infer::Trace_ELBO());
  const auto steps = [&] {
    Tensor loss;
    for (int i = 0; i < steps_per_sync; ++i) loss = svi.step(data);
    return loss;
  };
  steps();  // warm-up outside the counters
  const StepCounters counters;
  run_timed(state, *dev, steps);
  const double n = static_cast<double>(state.iterations()) * steps_per_sync;
  counters.report(state, n + steps_per_sync);  // run_timed's warm-up call too
  state.SetItemsProcessed(static_cast<int64_t>(n));
  set_default_device(Device::cpu());
}

void bm_coin(benchmark::State& state, Which which) { coin(state, which, 1); }
void bm_coin_pipelined(benchmark::State& state, Which which) { coin(state, which, 64); }

// 3 * (i mod k) for i < n: the centre each generated point sits around.
Tensor floor_to_centres(int64_t n, int64_t k, Device dev) {
  std::vector<float> c(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) c[static_cast<size_t>(i)] = 3.0f * static_cast<float>(i % k);
  return tensor(c, {n}, dev);
}

// A local latent per datapoint under a subsampled plate (N, minibatch B).
// event_dim: the guide declares its per-datapoint params with event_dim 0
// inside the plate, so the plate takes their B rows before the positive
// constraint's exp (which then runs on B rows, not N); otherwise the guide
// takes the rows of the whole constrained params by hand (Pyro's usual
// plate.subsample(param) style). Same values and gradients either way.
// sparse_adam: optim::SparseAdam instead of Adam (event_dim only).
// one_rank: wrapped in optim::DistributedOptimizer over one rank (NCCL on a
// GPU when built, else parallel::self()): the cost of the data-parallel
// exchange's packing and launches, the transfer between ranks aside.
void local_steps(benchmark::State& state, Which which, bool event_dim, bool sparse_adam = false,
                 bool one_rank = false) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const int64_t n = state.range(0), b = state.range(1);
  set_default_device(*dev);
  set_seed(3);
  param_store().clear();
  const Tensor data = randn({n}, *dev);
  auto model = [n, b](const Tensor& x) {
    auto p = plate("data", n, b);
    Tensor z = sample("z", dist::Normal(0.0f, 1.0f));
    sample("x", dist::Normal(z, 1.0f), p.subsample(x));
  };
  auto guide = [n, b, dev, event_dim](const Tensor&) {
    if (event_dim) {
      auto p = plate("data", n, b);
      Tensor loc = param("loc", [n, dev] { return zeros({n}, *dev); }, constraints::real, 0);
      Tensor scale = param("scale", [n, dev] { return full({n}, 0.5f, *dev); }, constraints::positive, 0);
      sample("z", dist::Normal(loc, scale));
      return;
    }
    Tensor loc = param("loc", [n, dev] { return zeros({n}, *dev); });
    Tensor scale = param("scale", [n, dev] { return full({n}, 0.5f, *dev); }, constraints::positive);
    auto p = plate("data", n, b);
    sample("z", dist::Normal(p.subsample(loc), p.subsample(scale)));
  };
  std::shared_ptr<optim::Optimizer> opt;
  if (sparse_adam) opt = std::make_shared<optim::SparseAdam>(optim::SparseAdamOptions{.lr = 1e-2f});
  else opt = std::make_shared<optim::Adam>(optim::AdamOptions{.lr = 1e-2f});
  if (one_rank) {
    const parallel::CommPtr comm =
        dev->is_cuda() && parallel::nccl_available() ? parallel::nccl(parallel::self(), *dev) : parallel::self();
    state.SetLabel(comm->name());
    opt = std::make_shared<optim::DistributedOptimizer>(*opt, comm);
  }
  infer::SVI svi(model, guide, *opt, infer::Trace_ELBO());
  time_steps(state, *dev, [&] { return svi.step(data); }, "latents_per_s", static_cast<double>(b));
}

void bm_gmm_enum(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const int64_t n = state.range(0), k = state.range(1);
  set_default_device(*dev);
  set_seed(4);
  param_store().clear();
  // Points around K centres 0, 3, 6, ...
  const Tensor data = randn({n}, *dev) + floor_to_centres(n, k, *dev);
  // The example's model and MAP guide (examples/gmm), locs starting at the centres.
  const cuvi_examples::GMM gmm{k, arange(k, *dev) * 3.0f};
  auto model = [&gmm](const Tensor& x) { gmm.model(x); };
  auto guide = [&gmm](const Tensor& x) { gmm.guide(x); };
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.05f}), infer::TraceEnum_ELBO({.max_plate_nesting = 1}));
  time_steps(state, *dev, [&] { return svi.step(data); }, "points_per_s", static_cast<double>(n));
}

// DiscreteHMM's log_prob and its gradient (the scan of log-space matrix
// products and its backward) for n sequences of t steps over s states with
// Normal observations: one SVI-like evaluation per iteration.
void bm_hmm_log_prob_grad(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const int64_t n = state.range(0), t = state.range(1), s = state.range(2);
  set_default_device(*dev);
  set_seed(5);
  const Tensor x = randn({n, t}, *dev);
  Tensor trans = randn({s, s}, *dev).requires_grad_();
  Tensor locs = randn({s}, *dev).requires_grad_();
  run_timed(state, *dev, [&] {
    trans.zero_grad();
    locs.zero_grad();
    const Tensor lp = sum(dist::DiscreteHMM(zeros({s}, *dev), trans, dist::Normal(locs, 1.0f), t).log_prob(x));
    lp.backward();
    return lp;
  });
  state.counters["steps_per_s"] = benchmark::Counter(static_cast<double>(n * t) * static_cast<double>(state.iterations()),
                                                     benchmark::Counter::kIsRate);
  set_default_device(Device::cpu());
}

void bm_regression(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const int64_t n = state.range(0), b = state.range(1), d = state.range(2);
  set_default_device(*dev);
  set_seed(6);
  param_store().clear();
  const auto data = cuvi_examples::make_regression_data(n, d, *dev);
  const cuvi_examples::BayesianRegression reg{b};
  auto model = [reg](const Tensor& x, const Tensor& y) { reg.model(x, y); };
  infer::AutoDiagonalNormal guide(model);
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.03f}), infer::Trace_ELBO());
  time_steps(state, *dev, [&] { return svi.step(data.x, data.y); }, "rows_per_s", static_cast<double>(b));
}

void bm_ssvae(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const int64_t b = state.range(0), k = state.range(1);
  set_default_device(*dev);
  set_seed(7);
  param_store().clear();
  const Tensor x = cuvi_examples::make_stroke_images(4096, 16, static_cast<int>(k), 99, 0.03f, *dev);
  cuvi_examples::SsVAE vae({.x_dim = 256, .classes = k, .z_dim = 8, .hidden = 256, .batch = b}, *dev);
  auto model = [&vae](const Tensor& xs, const Tensor& ys) { vae.model(xs, ys); };
  auto guide = [&vae](const Tensor& xs, const Tensor& ys) { vae.guide(xs, ys); };
  infer::SVI svi(model, guide, optim::Adam({.lr = 1e-3f}), infer::TraceEnum_ELBO({.max_plate_nesting = 1}));
  time_steps(state, *dev, [&] { return svi.step(x, Tensor()); }, "images_per_s", static_cast<double>(b));
}

void bm_vae(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const int64_t b = state.range(0), h = state.range(1);
  set_default_device(*dev);
  set_seed(9);
  param_store().clear();
  const Tensor x = cuvi_examples::make_stroke_images(10000, 28, 10, 98, 0.03f, *dev);
  cuvi_examples::VAE vae({.x_dim = 784, .z_dim = 50, .hidden = h, .batch = b}, *dev);
  auto model = [&vae](const Tensor& xs) { vae.model(xs); };
  auto guide = [&vae](const Tensor& xs) { vae.guide(xs); };
  infer::SVI svi(model, guide, optim::Adam({.lr = 1e-3f}), infer::Trace_ELBO());
  time_steps(state, *dev, [&] { return svi.step(x); }, "images_per_s", static_cast<double>(b));
}

void bm_iaf(benchmark::State& state, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const int64_t d = state.range(0);
  const int t = static_cast<int>(state.range(1));
  set_default_device(*dev);
  set_seed(8);
  param_store().clear();
  // z ~ N(0, I_d), y ~ N(A z, 0.5) with 4d rows of A near all-ones: a
  // correlated Gaussian posterior.
  const Tensor a = 1.0f + 0.1f * randn({4 * d, d}, *dev), y = randn({4 * d}, *dev);
  auto model = [a, y, d] {
    const Tensor z = sample("z", dist::Normal(0.0f, 1.0f).expand({d}).to_event(1));
    auto p = plate("rows", a.size(0));
    sample("y", dist::Normal(matmul(a, z), 0.5f), y);
  };
  infer::AutoIAFNormal guide(model, {.num_transforms = t});
  infer::SVI svi(model, guide, optim::Adam({.lr = 1e-2f}), infer::Trace_ELBO());
  time_steps(state, *dev, [&] { return svi.step(); }, "steps_per_s", 1.0);
}

void bm_local(benchmark::State& state, Which which) { local_steps(state, which, false); }
void bm_local_event_dim(benchmark::State& state, Which which) { local_steps(state, which, true); }
void bm_local_sparse_adam(benchmark::State& state, Which which) { local_steps(state, which, true, true); }
void bm_local_sparse_adam_dp1(benchmark::State& state, Which which) { local_steps(state, which, true, true, true); }

}  // namespace

BENCHMARK_CAPTURE(bm_coin, cpu, Which::kCpu)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_coin, cuda, Which::kCuda)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_coin_pipelined, cpu, Which::kCpu)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_coin_pipelined, cuda, Which::kCuda)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_local, cpu, Which::kCpu)
    ->Args({1 << 16, 1 << 10})
    ->Args({1 << 20, 1 << 14})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_local, cuda, Which::kCuda)
    ->Args({1 << 20, 1 << 14})
    ->Args({1 << 24, 1 << 16})
    ->Args({1 << 24, 1 << 20})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_local_event_dim, cpu, Which::kCpu)
    ->Args({1 << 16, 1 << 10})
    ->Args({1 << 20, 1 << 14})
    ->Args({1 << 20, 1 << 10})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_local_event_dim, cuda, Which::kCuda)
    ->Args({1 << 20, 1 << 14})
    ->Args({1 << 24, 1 << 16})
    ->Args({1 << 24, 1 << 20})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_gmm_enum, cpu, Which::kCpu)
    ->Args({1 << 12, 4})
    ->Args({1 << 16, 8})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_gmm_enum, cuda, Which::kCuda)
    ->Args({1 << 16, 8})
    ->Args({1 << 20, 16})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_local_sparse_adam, cpu, Which::kCpu)
    ->Args({1 << 16, 1 << 10})
    ->Args({1 << 20, 1 << 14})
    ->Args({1 << 20, 1 << 10})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_local_sparse_adam, cuda, Which::kCuda)
    ->Args({1 << 20, 1 << 14})
    ->Args({1 << 24, 1 << 16})
    ->Args({1 << 24, 1 << 20})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_hmm_log_prob_grad, cpu, Which::kCpu)
    ->Args({64, 256, 8})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_hmm_log_prob_grad, cuda, Which::kCuda)
    ->Args({1024, 1024, 8})
    ->Args({256, 4096, 32})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_local_sparse_adam_dp1, cpu, Which::kCpu)
    ->Args({1 << 20, 1 << 14})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_local_sparse_adam_dp1, cuda, Which::kCuda)
    ->Args({1 << 24, 1 << 20})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_regression, cpu, Which::kCpu)
    ->Args({1 << 20, 1 << 12, 3})
    ->Args({1 << 20, 1 << 16, 16})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_regression, cuda, Which::kCuda)
    ->Args({1 << 20, 1 << 12, 3})
    ->Args({1 << 24, 1 << 18, 16})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_ssvae, cpu, Which::kCpu)->Args({128, 10})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_ssvae, cuda, Which::kCuda)
    ->Args({128, 10})
    ->Args({1024, 10})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_vae, cpu, Which::kCpu)->Args({128, 400})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_vae, cuda, Which::kCuda)
    ->Args({128, 400})
    ->Args({1024, 400})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_iaf, cpu, Which::kCpu)->Args({16, 2})->Args({64, 2})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_iaf, cuda, Which::kCuda)->Args({64, 2})->Args({256, 2})->UseManualTime()->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
