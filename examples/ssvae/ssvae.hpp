// A semi-supervised VAE (Kingma et al. 2014's M2), as in Pyro's SS-VAE
// tutorial, on the synthetic stroke images of the VAE example (each image a
// noisy, shifted copy of one of K prototypes; the prototype is its class).
// A few images come with their class, the rest without:
//
//   model:  z ~ N(0, I),  y ~ Categorical(1/K) (observed when labelled),
//           x ~ Bernoulli(decoder([z, onehot(y)]))
//   guide:  y ~ Categorical(encoder_y(x)), enumerated (guide-side
//           enumeration: the ELBO sums over the K classes weighted by q(y | x)
//           instead of drawing one), unless labelled;
//           z ~ N(encoder_z([x, onehot(y)])), drawn once per class
//
// Labelled batches also carry Pyro's auxiliary classification term,
// aux_scale * log q(y | x) at the known labels (an observed site in the
// model), so that encoder_y learns from the labels directly. Both kinds of
// batch train with TraceEnum_ELBO; the classifier's accuracy on the
// unlabelled images measures what the unlabelled ELBO added.
//
// Param names: "encoder_y$$$0.weight", ..., "encoder_z$$$...", "decoder$$$..."
// (module() naming).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include <cuvi.hpp>

namespace cuvi_examples {

struct SsVaeConfig {
  int64_t x_dim = 256;
  int64_t classes = 10;
  int64_t z_dim = 8;
  int64_t hidden = 256;
  int64_t batch = 128;        // minibatch of either set (0 or >= its size: the whole set)
  float aux_scale = 50.0f;    // weight of the labelled classification term
};

class SsVAE {
 public:
  SsVAE(SsVaeConfig c, cuvi::Device dev)
      : c_(c),
        encoder_y_(cuvi::nn::mlp({c.x_dim, c.hidden, c.classes}, cuvi::nn::Activation::kSoftplus,
                                 cuvi::nn::Activation::kNone, true, dev)),
        encoder_z_(cuvi::nn::mlp({c.x_dim + c.classes, c.hidden, 2 * c.z_dim}, cuvi::nn::Activation::kSoftplus,
                                 cuvi::nn::Activation::kNone, true, dev)),
        decoder_(cuvi::nn::mlp({c.z_dim + c.classes, c.hidden, c.x_dim}, cuvi::nn::Activation::kSoftplus,
                               cuvi::nn::Activation::kNone, true, dev)),
        eye_(cuvi::diag_embed(cuvi::ones({c.classes}, dev))) {}

  // onehot(y) [..., K] for integral class values y (int64, any shape).
  cuvi::Tensor onehot(const cuvi::Tensor& y) const {
    cuvi::Shape s = y.shape();
    s.push_back(c_.classes);
    return cuvi::index_select(eye_, 0, y.to_int64().reshape({y.numel()})).reshape(s);
  }
  // [a, onehot(y)] along the last dim, both broadcast to their common batch
  // (an enumerated y of shape [K, 1] against a batch of B rows gives [K, B]).
  cuvi::Tensor join(const cuvi::Tensor& a, const cuvi::Tensor& y) const {
    const cuvi::Tensor h = onehot(y);
    cuvi::Shape ab(a.shape().begin(), a.shape().end() - 1), hb(h.shape().begin(), h.shape().end() - 1);
    cuvi::Shape b = cuvi::broadcast_shapes(ab, hb, "SsVAE.join");
    cuvi::Shape as = b, hs = b;
    as.push_back(a.size(-1));
    hs.push_back(c_.classes);
    return cuvi::cat({a.expand(as), h.expand(hs)}, -1);
  }
  // Classifier logits q(y | x), [..., K].
  cuvi::Tensor classify(const cuvi::Tensor& x) const { return (*encoder_y_)(x); }

  // x: [N, x_dim] 0/1; y: [N] int64 classes (labelled) or undefined.
  void model(const cuvi::Tensor& x, const cuvi::Tensor& y) const {
    using namespace cuvi;
    module("decoder", *decoder_);
    auto p = plate("data", x.size(0), subsample_size(x));
    const Tensor xb = p.subsample(x, 1);
    const int64_t b = xb.size(0);
    const Tensor z = sample("z", dist::Normal(0.0f, 1.0f).expand({b, c_.z_dim}).to_event(1));
    const dist::Categorical prior(full({c_.classes}, 1.0f / static_cast<float>(c_.classes), x.device()));
    const Tensor yb = y.defined() ? sample("y", prior, p.subsample(y)) : sample("y", prior);
    sample("x", dist::Bernoulli::from_logits((*decoder_)(join(z, yb))).to_event(1), xb);
    if (y.defined()) {
      // The auxiliary term: log q(y | x) at the labels, scaled.
      module("encoder_y", *encoder_y_);
      poutine::scale([&] { sample("y_aux", dist::Categorical::from_logits(classify(xb)), p.subsample(y)); },
                     c_.aux_scale)();
    }
  }
  void guide(const cuvi::Tensor& x, const cuvi::Tensor& y) const {
    using namespace cuvi;
    module("encoder_y", *encoder_y_);
    module("encoder_z", *encoder_z_);
    auto p = plate("data", x.size(0), subsample_size(x));
    const Tensor xb = p.subsample(x, 1);
    const Tensor yb = y.defined() ? p.subsample(y)
                                  : sample("y", dist::Categorical::from_logits(classify(xb)), Infer{"parallel"});
    const Tensor h = (*encoder_z_)(join(xb, yb));
    const int64_t last = h.dim() - 1;
    sample("z", dist::Normal(narrow(h, last, 0, c_.z_dim), softplus(narrow(h, last, c_.z_dim, c_.z_dim))).to_event(1));
  }

  // Fraction of rows of x whose most probable class under q(y | x) is the label.
  double accuracy(const cuvi::Tensor& x, const std::vector<int64_t>& labels) const {
    cuvi::NoGradGuard ng;
    const std::vector<float> l = classify(x).to_vector();
    int64_t right = 0;
    const int64_t n = x.size(0), k = c_.classes;
    for (int64_t i = 0; i < n; ++i) {
      const auto row = l.begin() + i * k;
      right += (std::max_element(row, row + k) - row) == labels[static_cast<size_t>(i)];
    }
    return static_cast<double>(right) / static_cast<double>(n);
  }

  const SsVaeConfig& config() const { return c_; }

 private:
  int64_t subsample_size(const cuvi::Tensor& x) const {
    return (c_.batch <= 0 || c_.batch >= x.size(0)) ? 0 : c_.batch;
  }
  SsVaeConfig c_;
  std::shared_ptr<cuvi::nn::Sequential> encoder_y_, encoder_z_, decoder_;
  cuvi::Tensor eye_;
};

}  // namespace cuvi_examples
