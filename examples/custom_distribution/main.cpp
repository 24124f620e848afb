// Fits a Kumaraswamy guide to a Beta(2, 5) posterior's shape with SVI.
#include <cstdio>

#include "kumaraswamy.hpp"

int main(int argc, char** argv) {
  using namespace cuvi;
  const Device dev = argc > 1 ? Device::parse(argv[1]) : Device::best();
  set_default_device(dev);
  set_seed(0);
  auto model = [] { sample("x", dist::Beta(2.0f, 5.0f)); };
  auto guide = [] {
    sample("x", custom::Kumaraswamy(param("a", 1.0f, constraints::positive), param("b", 1.0f, constraints::positive)));
  };
  infer::SVI svi(model, guide, optim::Adam({.lr = 2e-2f}), infer::Trace_ELBO({.num_particles = 8}));
  for (int i = 1; i <= 1500; ++i) {
    Tensor loss = svi.step();
    if (i % 500 == 0) std::printf("step %d loss %.4f\n", i, loss.item());
  }
  std::printf("Kumaraswamy(a=%.3f, b=%.3f) fitted to Beta(2, 5)\n", param_store().get("a").item(),
              param_store().get("b").item());
  return 0;
}
