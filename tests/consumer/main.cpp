// Builds against the installed package and runs a few SVI steps.
#include <cmath>
#include <cstdio>

#include <cuvi.hpp>

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
  return std::isfinite(loss) ? 0 : 1;
}
