// Builds against the installed package: a few SVI steps of a coin model, and
// a distribution family defined here (Gumbel) checked against its formula,
// its gradient, and used as an SVI guide; on a GPU, its CUDA kernels against
// the CPU.
#include <cmath>
#include <cstdio>

#include <cuvi.hpp>

#include "gumbel.hpp"

namespace {

int failures = 0;
void check(bool ok, const char* what) {
  if (!ok) {
    std::printf("consumer: FAILED %s\n", what);
    ++failures;
  }
}

double gumbel_lp(double x, double loc, double s) {
  const double z = (x - loc) / s;
  return -(z + std::exp(-z)) - std::log(s);
}

}  // namespace

int main() {
  using namespace cuvi;
  set_seed(1);
  Tensor data = tensor({1.f, 0.f, 1.f, 1.f});
  auto model = [](const Tensor& d) {
    Tensor f = sample("f", dist::Beta(2.0f, 2.0f));
    auto p = plate("data", d.size(0));
    sample("obs", dist::Bernoulli(f), d);
  };
  auto guide = [](const Tensor&) {
    sample("f", dist::Beta(param("a", 3.0f, constraints::positive), param("b", 3.0f, constraints::positive)));
  };
  infer::SVI svi(model, guide, optim::Adam({.lr = 1e-2f}), infer::Trace_ELBO());
  float loss = 0;
  for (int i = 0; i < 20; ++i) loss = svi.step(data).item();
  std::printf("consumer: loss %.4f after 20 steps\n", loss);
  check(std::isfinite(loss), "coin loss finite");

  // The consumer's own family: log_prob against the formula (float32 terms
  // of size ~1: 1e-5), d/dloc against the analytic (e^-z - 1)(-1/s).
  const std::vector<float> xs{-1.5f, 0.0f, 0.7f, 3.0f};
  Tensor loc = tensor({0.3f}).requires_grad_();
  consumer::Gumbel g(loc, 1.7f);
  Tensor lp = g.log_prob(tensor(xs));
  const auto lv = lp.to_vector();
  double dloc = 0.0;
  for (size_t i = 0; i < xs.size(); ++i) {
    check(std::fabs(lv[i] - gumbel_lp(xs[i], 0.3, 1.7)) < 1e-5, "Gumbel log_prob");
    dloc += (1.0 - std::exp(-(xs[i] - 0.3) / 1.7)) / 1.7;
  }
  sum(lp).backward();
  check(std::fabs(loc.grad().item() - dloc) < 1e-5, "Gumbel d log_prob / d loc");
  check(std::fabs(g.mean().item() - (0.3 + 1.7 * 0.5772156649)) < 1e-5, "Gumbel mean");

  // As an SVI guide for a Gumbel model with an observed site's worth of
  // evidence: the loss must come down from its start.
  param_store().clear();
  auto gmodel = [] { sample("y", consumer::Gumbel(1.0f, 2.0f)); };
  auto gguide = [] {
    sample("y", consumer::Gumbel(param("gl", 0.0f), param("gs", 1.0f, constraints::positive)));
  };
  infer::SVI gsvi(gmodel, gguide, optim::Adam({.lr = 5e-2f}), infer::Trace_ELBO({.num_particles = 64}));
  const float first = gsvi.evaluate_loss().item();
  for (int i = 0; i < 300; ++i) gsvi.step();
  const float last = gsvi.evaluate_loss().item();
  std::printf("consumer: Gumbel guide loss %.4f -> %.4f, loc %.3f scale %.3f (target 1, 2)\n", first, last,
              param_store().get("gl").item(), param_store().get("gs").item());
  // The exact fit has KL 0; 64 particles put the estimate's SE near 0.1.
  check(last < first && std::fabs(last) < 0.5f, "Gumbel guide fits");

#ifdef CONSUMER_WITH_CUDA
  check(consumer::gumbel_has_cuda_kernels(), "Gumbel CUDA kernels registered from the consumer's .cu");
  if (cuda_available()) {
    const Tensor xc = tensor(xs, Device::cuda());
    consumer::Gumbel gc(tensor({0.3f}, Device::cuda()), 1.7f);
    const auto lc = gc.log_prob(xc).to_vector();
    for (size_t i = 0; i < xs.size(); ++i) check(std::fabs(lc[i] - lv[i]) < 1e-5, "Gumbel log_prob cuda vs cpu");
    std::printf("consumer: Gumbel CUDA kernels ran on %s\n", Device::cuda().str().c_str());
  }
#endif
  return failures == 0 ? 0 : 1;
}
