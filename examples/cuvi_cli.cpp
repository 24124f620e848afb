// The `cuvi` command line: runnable examples.
//   cuvi coin [--device cpu|cuda|cuda:N] [--steps N] [--seed S]
//   cuvi demo [--device ...]       a tensor program with a gradient
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "coin/coin.hpp"

using namespace cuvi;

namespace {

struct Args {
  std::string command = "coin";
  Device device = Device::best();
  int steps = 2000;
  uint64_t seed = 0;
};

int usage() {
  std::fprintf(stderr,
               "usage: cuvi [coin|demo] [--device cpu|cuda|cuda:N] [--steps N] [--seed S]\n"
               "  coin  SVI on Pyro's coin-fairness example (SVI Part I)\n"
               "  demo  a least-squares fit by gradient descent (runtime demo)\n");
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
      else return usage();
    }
    if (a.command == "coin") return run_coin(a);
    if (a.command == "demo") return run_demo(a);
    return usage();
  } catch (const cuvi::Error& e) {
    std::fprintf(stderr, "cuvi: %s\n", e.what());
    return 1;
  }
}
