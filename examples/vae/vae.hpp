// A variational autoencoder as in Pyro's VAE tutorial
// (https://pyro.ai/examples/vae.html), on a synthetic binary-image data set
// (no downloads): an encoder MLP gives the mean and (softplus) scale of a
// diagonal Normal q(z | x); a decoder MLP gives Bernoulli logits of p(x | z);
// the prior is N(0, I). The data plate subsamples minibatches (its N/B scale
// makes every step's loss an estimate of the whole data set's -ELBO).
//
// Param names: "encoder$$$0.weight", "encoder$$$0.bias", "encoder$$$2.weight",
// ..., "decoder$$$0.weight", ... (module() with Pyro's "$$$" separator; the
// Linear layers of an mlp sit at even indices, activations between them).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include <cuvi.hpp>

namespace cuvi_examples {

// n binary images of side x side pixels, flattened to [n, side * side]
// float32 0/1 on dev. A few "stroke" prototypes (each 2 or 3 random line
// segments) are drawn first; each image is a prototype shifted by up to one
// pixel in each direction, with every pixel flipped with probability
// flip_prob. Fully determined by seed (host std::mt19937_64).
// The images with their classes (the prototype each one copies).
struct LabelledImages {
  cuvi::Tensor images;          // [n, side * side] float32 0/1
  cuvi::Tensor labels;          // [n] int64
  std::vector<int64_t> classes;  // the labels on the host
};

inline LabelledImages make_labelled_stroke_images(int64_t n, int64_t side, int n_prototypes, uint64_t seed,
                                                  float flip_prob = 0.03f,
                                                  cuvi::Device dev = cuvi::default_device()) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  const int64_t d = side * side;
  std::vector<std::vector<uint8_t>> protos(static_cast<size_t>(n_prototypes), std::vector<uint8_t>(d, 0));
  for (auto& p : protos) {
    const int strokes = 2 + static_cast<int>(u01(gen) * 2.0);  // 2 or 3
    for (int s = 0; s < strokes; ++s) {
      // endpoints inside a 1-pixel margin, so shifts keep strokes in the image
      const double lo = 1.0, hi = static_cast<double>(side) - 2.0;
      const double x0 = lo + u01(gen) * (hi - lo), y0 = lo + u01(gen) * (hi - lo);
      const double x1 = lo + u01(gen) * (hi - lo), y1 = lo + u01(gen) * (hi - lo);
      const int steps = static_cast<int>(2 * side);
      for (int k = 0; k <= steps; ++k) {
        const double t = static_cast<double>(k) / steps;
        const auto x = static_cast<int64_t>(std::lround(x0 + t * (x1 - x0)));
        const auto y = static_cast<int64_t>(std::lround(y0 + t * (y1 - y0)));
        p[static_cast<size_t>(y * side + x)] = 1;
      }
    }
  }
  std::vector<float> data(static_cast<size_t>(n * d), 0.0f);
  std::vector<int64_t> classes(static_cast<size_t>(n));
  std::uniform_int_distribution<int> pick(0, n_prototypes - 1), shift(-1, 1);
  for (int64_t i = 0; i < n; ++i) {
    classes[static_cast<size_t>(i)] = pick(gen);
    const auto& p = protos[static_cast<size_t>(classes[static_cast<size_t>(i)])];
    const int dx = shift(gen), dy = shift(gen);
    for (int64_t y = 0; y < side; ++y) {
      for (int64_t x = 0; x < side; ++x) {
        const int64_t sx = x - dx, sy = y - dy;
        bool on = sx >= 0 && sx < side && sy >= 0 && sy < side && p[static_cast<size_t>(sy * side + sx)];
        if (u01(gen) < flip_prob) on = !on;
        data[static_cast<size_t>(i * d + y * side + x)] = on ? 1.0f : 0.0f;
      }
    }
  }
  return {cuvi::tensor(data, {n, d}, dev), cuvi::tensor_i64(classes, {n}, dev), classes};
}

inline cuvi::Tensor make_stroke_images(int64_t n, int64_t side, int n_prototypes, uint64_t seed,
                                       float flip_prob = 0.03f, cuvi::Device dev = cuvi::default_device()) {
  return make_labelled_stroke_images(n, side, n_prototypes, seed, flip_prob, dev).images;
}

struct VaeConfig {
  int64_t x_dim = 256;   // pixels per image
  int64_t z_dim = 8;     // latent dimension
  int64_t hidden = 128;  // hidden units of encoder and decoder
  int64_t batch = 0;     // minibatch size; 0 or >= N: the whole data set
};

class VAE {
 public:
  // The nets are created (and initialised from the global generator) on dev.
  VAE(VaeConfig c, cuvi::Device dev)
      : c_(c),
        encoder_(cuvi::nn::mlp({c.x_dim, c.hidden, 2 * c.z_dim}, cuvi::nn::Activation::kSoftplus,
                               cuvi::nn::Activation::kNone, true, dev)),
        decoder_(cuvi::nn::mlp({c.z_dim, c.hidden, c.x_dim}, cuvi::nn::Activation::kSoftplus,
                               cuvi::nn::Activation::kNone, true, dev)) {}

  // q(z | x): loc and scale, each [..., z_dim].
  std::pair<cuvi::Tensor, cuvi::Tensor> encode(const cuvi::Tensor& x) const {
    cuvi::Tensor h = (*encoder_)(x);
    const int64_t last = h.dim() - 1;
    return {cuvi::narrow(h, last, 0, c_.z_dim), cuvi::softplus(cuvi::narrow(h, last, c_.z_dim, c_.z_dim))};
  }
  // Bernoulli logits of p(x | z), [..., x_dim].
  cuvi::Tensor decode(const cuvi::Tensor& z) const { return (*decoder_)(z); }

  // data: [N, x_dim] 0/1.
  void model(const cuvi::Tensor& data) const {
    cuvi::module("decoder", *decoder_);
    auto p = cuvi::plate("data", data.size(0), subsample_size(data));
    const cuvi::Tensor x = p.subsample(data, 1);  // rows; the pixel dim is an event dim
    const int64_t b = x.size(0);
    const cuvi::Tensor z =
        cuvi::sample("latent", cuvi::dist::Normal(0.0f, 1.0f).expand({b, c_.z_dim}).to_event(1));
    cuvi::sample("obs", cuvi::dist::Bernoulli::from_logits(decode(z)).to_event(1), x);
  }
  void guide(const cuvi::Tensor& data) const {
    cuvi::module("encoder", *encoder_);
    auto p = cuvi::plate("data", data.size(0), subsample_size(data));
    const cuvi::Tensor x = p.subsample(data, 1);  // rows; the pixel dim is an event dim
    auto [loc, scale] = encode(x);
    cuvi::sample("latent", cuvi::dist::Normal(loc, scale).to_event(1));
  }

  const VaeConfig& config() const { return c_; }
  // Minibatch size of later runs (0: the whole data set).
  void set_batch(int64_t b) { c_.batch = b; }
  cuvi::nn::Sequential& encoder() const { return *encoder_; }
  cuvi::nn::Sequential& decoder() const { return *decoder_; }

 private:
  int64_t subsample_size(const cuvi::Tensor& data) const {
    return (c_.batch <= 0 || c_.batch >= data.size(0)) ? 0 : c_.batch;
  }
  VaeConfig c_;
  std::shared_ptr<cuvi::nn::Sequential> encoder_, decoder_;
};

}  // namespace cuvi_examples
