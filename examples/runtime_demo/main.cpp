// A short runtime demo: a least-squares fit by gradient descent on the best
// device, showing tensors, broadcasting, autodiff and the RNG.
#include <cstdio>

#include <cuvi.hpp>

int main(int argc, char** argv) {
  using namespace cuvi;
  const Device dev = argc > 1 ? Device::parse(argv[1]) : Device::best();
  std::printf("cuvi runtime demo on %s\n", dev.str().c_str());
  set_seed(0);
  const int64_t n = 1000;
  Tensor x = randn({n, 3}, dev);
  Tensor w_true = tensor({1.5f, -2.0f, 0.5f}, dev);
  Tensor y = matmul(x, w_true) + 0.1f * randn({n}, dev);
  Tensor w = zeros({3}, dev).requires_grad_();
  for (int it = 0; it < 200; ++it) {
    Tensor loss = mean(square(matmul(x, w) - y));
    loss.backward();
    Tensor g = w.grad();
    w = (w.detach() - 0.1f * g).requires_grad_();
    if (it % 50 == 0) std::printf("step %3d  loss %.5f\n", it, loss.item());
  }
  const auto wv = w.to_vector();
  std::printf("fitted w = [%.3f, %.3f, %.3f] (true [1.5, -2.0, 0.5])\n", wv[0], wv[1], wv[2]);
  return 0;
}
