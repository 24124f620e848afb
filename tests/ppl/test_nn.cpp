// Tests of cuvi::nn (Module, Linear, Sequential, mlp), the module()
// primitive (pyro.module) and the VAE example (examples/vae/vae.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../examples/vae/vae.hpp"
#include "gradcheck.hpp"

using namespace cuvi;
using cuvi::testing::gradcheck;
using cuvi::testing::random_tensor;

namespace {

void reset(uint64_t seed) {
  param_store().clear();
  set_seed(seed);
}

// y[r, o] = sum_i x[r, i] w[o, i] + b[o] in double.
std::vector<double> linear_ref(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                               int64_t rows, int64_t in, int64_t out) {
  std::vector<double> y(static_cast<size_t>(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double acc = b.empty() ? 0.0 : b[static_cast<size_t>(o)];
      for (int64_t i = 0; i < in; ++i)
        acc += static_cast<double>(x[static_cast<size_t>(r * in + i)]) * w[static_cast<size_t>(o * in + i)];
      y[static_cast<size_t>(r * out + o)] = acc;
    }
  return y;
}

std::vector<std::string> names_of(const nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& p : m.named_parameters()) out.push_back(p.first);
  return out;
}

}  // namespace

// ---- Linear --------------------------------------------------------------------

// Float32 dot products of <= 7 terms of magnitude <= 2 round to ~1e-6; 1e-5
// absolute (plus 1e-5 relative) is tight enough to catch any wrong index.
TEST(NnLinear, ForwardMatchesFloat64Reference) {
  reset(0);
  std::mt19937 gen(3);
  for (bool bias : {true, false}) {
    nn::Linear lin(7, 3, bias);
    EXPECT_EQ(lin.weight().shape(), (Shape{3, 7}));
    EXPECT_EQ(lin.bias().defined(), bias);
    const auto w = lin.weight().to_vector();
    const std::vector<float> b = bias ? lin.bias().to_vector() : std::vector<float>{};
    // [5, 7] and a batched [2, 4, 7] input (leading dims carried through)
    for (const Shape& s : {Shape{5, 7}, Shape{2, 4, 7}, Shape{7}}) {
      Tensor x = random_tensor(s, gen, -2.0f, 2.0f);
      Tensor y = lin(x);
      Shape want_shape = s;
      want_shape.back() = 3;
      ASSERT_EQ(y.shape(), want_shape);
      const int64_t rows = x.numel() / 7;
      cuvi::testing::expect_close(y.to_vector(), linear_ref(x.to_vector(), w, b, rows, 7, 3), 1e-5, 1e-5,
                                  "Linear forward");
    }
  }
  cuvi::testing::expect_error<ShapeError>([] { nn::Linear(4, 2)(zeros({3, 5})); }, {"Linear(4, 2)", "[3, 5]"});
}

// torch.nn.Linear: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)). With 16000
// (resp. 1000) draws, the sample extremes lie within 2% (resp. 10%) of the
// bounds and the mean within ~4 standard errors of 0, except with
// probability < 1e-6.
TEST(NnLinear, InitRangeAndReproducibility) {
  reset(11);
  nn::Linear lin(16, 1000);
  const double bound = 0.25;
  auto check = [&](const std::vector<float>& v, double edge, double mean_tol) {
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    EXPECT_GE(*lo, -bound);
    EXPECT_LE(*hi, bound);
    EXPECT_LT(*lo, -bound * (1 - edge));
    EXPECT_GT(*hi, bound * (1 - edge));
    const double m = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    EXPECT_NEAR(m, 0.0, mean_tol);
  };
  // sd of U(-b, b) is b / sqrt(3) = 0.144; standard error 0.144 / sqrt(n)
  check(lin.weight().to_vector(), 0.02, 4 * 0.144 / std::sqrt(16000.0));
  check(lin.bias().to_vector(), 0.1, 4 * 0.144 / std::sqrt(1000.0));
  EXPECT_TRUE(lin.weight().requires_grad());
  EXPECT_TRUE(lin.weight().is_leaf());

  set_seed(5);
  nn::Linear a(6, 4);
  set_seed(5);
  nn::Linear b(6, 4);
  nn::Linear c(6, 4);  // the generator has moved on
  EXPECT_EQ(a.weight().to_vector(), b.weight().to_vector());
  EXPECT_EQ(a.bias().to_vector(), b.bias().to_vector());
  EXPECT_NE(a.weight().to_vector(), c.weight().to_vector());
}

TEST(NnLinear, GradcheckInputWeightBias) {
  reset(1);
  std::mt19937 gen(4);
  nn::Linear lin(4, 3);
  gradcheck(
      [&](const std::vector<Tensor>& in) {
        lin.set_parameter("weight", in[1]);
        lin.set_parameter("bias", in[2]);
        return lin(in[0]);
      },
      {random_tensor({2, 5, 4}, gen, -1.5f, 1.5f), random_tensor({3, 4}, gen, -1.0f, 1.0f),
       random_tensor({3}, gen, -1.0f, 1.0f)});
}

// ---- Sequential / mlp -------------------------------------------------------------

TEST(NnMlp, NamesAndForwardMatchComposition) {
  reset(2);
  auto net = nn::mlp({4, 6, 5, 2}, nn::Activation::kTanh, nn::Activation::kSigmoid);
  EXPECT_EQ(names_of(*net), (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias", "4.weight",
                                                       "4.bias"}));
  ASSERT_EQ(net->size(), 6u);
  EXPECT_EQ(net->children()[1].second->name(), "Tanh");
  EXPECT_EQ(net->children()[5].second->name(), "Sigmoid");
  EXPECT_EQ(net->named_parameters()[2].second.shape(), (Shape{5, 6}));

  std::mt19937 gen(5);
  Tensor x = random_tensor({3, 4}, gen, -1, 1);
  auto P = [&](int i) { return net->named_parameters()[static_cast<size_t>(i)].second; };
  Tensor h = tanh(matmul(x, P(0).t()) + P(1));
  h = tanh(matmul(h, P(2).t()) + P(3));
  Tensor want = sigmoid(matmul(h, P(4).t()) + P(5));
  EXPECT_EQ((*net)(x).to_vector(), want.to_vector());

  // No output activation: the last layer is a Linear.
  auto plain = nn::mlp({3, 2}, nn::Activation::kRelu);
  EXPECT_EQ(plain->size(), 1u);
  cuvi::testing::expect_error<ValueError>([] { nn::mlp({3}); }, {"mlp"});
}

TEST(NnMlp, ActivationsAreTheRuntimeOps) {
  Tensor x = tensor({-2.0f, -0.5f, 0.0f, 0.7f, 3.0f});
  EXPECT_EQ(nn::activate(x, nn::Activation::kRelu).to_vector(), relu(x).to_vector());
  EXPECT_EQ(nn::activate(x, nn::Activation::kSoftplus).to_vector(), softplus(x).to_vector());
  EXPECT_EQ(nn::activate(x, nn::Activation::kSigmoid).to_vector(), sigmoid(x).to_vector());
  EXPECT_EQ(nn::activate(x, nn::Activation::kTanh).to_vector(), tanh(x).to_vector());
  EXPECT_EQ(nn::activate(x, nn::Activation::kNone).to_vector(), x.to_vector());
}

// A 2-layer MLP (smooth activations: finite differences across a ReLU kink
// would be meaningless) against central differences, wrt the input and every
// weight and bias.
TEST(NnMlp, GradcheckTwoLayer) {
  for (auto act : {nn::Activation::kTanh, nn::Activation::kSoftplus}) {
    reset(3);
    std::mt19937 gen(6);
    auto net = nn::mlp({3, 4, 2}, act, nn::Activation::kSigmoid);
    const auto names = names_of(*net);
    std::vector<Tensor> inputs{random_tensor({5, 3}, gen, -1.5f, 1.5f)};
    for (const auto& p : net->named_parameters()) inputs.push_back(p.second.detach());
    gradcheck(
        [&](const std::vector<Tensor>& in) {
          for (size_t k = 0; k < names.size(); ++k) net->set_parameter(names[k], in[k + 1]);
          return (*net)(in[0]);
        },
        inputs);
  }
}

TEST(NnMlp, SetParameterChecksNameAndShape) {
  auto net = nn::mlp({3, 4, 2});
  cuvi::testing::expect_error<ValueError>([&] { net->set_parameter("1.weight", zeros({4, 3})); }, {"1.weight"});
  cuvi::testing::expect_error<ShapeError>([&] { net->set_parameter("0.weight", zeros({3, 4})); },
                                          {"0.weight", "[4, 3]", "[3, 4]"});
}

TEST(NnMlp, ToDevice) {
  reset(4);
  auto net = nn::mlp({3, 4, 2});
  const auto before = net->named_parameters();
  net->to(Device::cpu());
  const auto after = net->named_parameters();
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(before[i].second.to_vector(), after[i].second.to_vector());
    EXPECT_TRUE(after[i].second.is_leaf());
    EXPECT_TRUE(after[i].second.requires_grad());
  }
  if (!cuda_available()) return;  // the round trip below needs a GPU
  net->to(Device::cuda());
  for (const auto& p : net->named_parameters()) EXPECT_TRUE(p.second.device().is_cuda());
  Tensor y = (*net)(ones({2, 3}, Device::cuda()));
  EXPECT_TRUE(y.device().is_cuda());
  net->to(Device::cpu());
  for (size_t i = 0; i < after.size(); ++i)
    EXPECT_EQ(before[i].second.to_vector(), net->named_parameters()[i].second.to_vector());
}

// ---- module() ------------------------------------------------------------------

TEST(NnModule, RegistersParamsUnderPrefix) {
  reset(5);
  auto net = nn::mlp({3, 4, 2});
  const auto init = net->named_parameters();
  Trace tr = poutine::trace([&] { module("mynet", *net); }).get_trace();
  const std::vector<std::string> want{"mynet$$$0.weight", "mynet$$$0.bias", "mynet$$$2.weight", "mynet$$$2.bias"};
  EXPECT_EQ(tr.site_names(), want);
  EXPECT_EQ(param_store().names(), want);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(tr.site(want[i]).type, SiteType::kParam);
    EXPECT_EQ(param_store().get(want[i]).to_vector(), init[i].second.to_vector());
    // the net now uses the store's value for this run
    EXPECT_EQ(net->named_parameters()[i].second.to_vector(), init[i].second.to_vector());
  }
  // The shared_ptr form returns the net; a hand-built Sequential names its
  // children by position.
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Linear>(2, 3, false)).push_back(
      std::make_shared<nn::ActivationLayer>(nn::Activation::kRelu));
  seq->push_back(std::make_shared<nn::Linear>(3, 1));
  std::shared_ptr<nn::Sequential> same = module("seq", seq);
  EXPECT_EQ(same.get(), seq.get());
  EXPECT_TRUE(param_store().contains("seq$$$0.weight"));
  EXPECT_FALSE(param_store().contains("seq$$$0.bias"));
  EXPECT_TRUE(param_store().contains("seq$$$2.bias"));
  EXPECT_EQ((*seq)(ones({4, 2})).shape(), (Shape{4, 1}));
}

TEST(NnModule, SecondCallReusesStoreLeaves) {
  reset(6);
  auto net = nn::mlp({3, 4, 2});
  module("m", *net);
  const Tensor leaf = param_store().unconstrained("m$$$0.weight");
  const auto stored = param_store().get("m$$$0.weight").to_vector();
  // A freshly initialised net of the same shapes under the same prefix takes
  // the store's values: the store is not re-initialised.
  auto other = nn::mlp({3, 4, 2});
  ASSERT_NE(other->named_parameters()[0].second.to_vector(), stored);
  module("m", *other);
  EXPECT_EQ(param_store().unconstrained("m$$$0.weight").impl(), leaf.impl());
  EXPECT_EQ(other->named_parameters()[0].second.to_vector(), stored);
  EXPECT_EQ(param_store().size(), 4u);
  // Another shape under the same name is an error naming the param.
  auto wrong = nn::mlp({3, 5, 2});
  cuvi::testing::expect_error<ValueError>([&] { module("m", *wrong); }, {"m$$$0.weight"});
}

TEST(NnModule, GradientsReachStoreLeaves) {
  reset(7);
  std::mt19937 gen(7);
  auto net = nn::mlp({3, 4, 2}, nn::Activation::kTanh);
  module("g", *net);
  // The same function on detached copies of the values, as a reference.
  auto ref = nn::mlp({3, 4, 2}, nn::Activation::kTanh);
  for (const auto& p : net->named_parameters()) ref->set_parameter(p.first, p.second.detach().clone());
  Tensor x = random_tensor({5, 3}, gen, -1, 1);
  module("g", *net);
  sum(square((*net)(x))).backward();
  ref->to(default_device());  // makes the copies leaves that require grad
  sum(square((*ref)(x))).backward();
  for (const auto& p : ref->named_parameters()) {
    Tensor g = param_store().unconstrained("g$$$" + p.first).grad();
    ASSERT_TRUE(g.defined()) << p.first;
    ASSERT_TRUE(p.second.grad().defined()) << p.first;
    EXPECT_EQ(g.to_vector(), p.second.grad().to_vector()) << p.first;
  }
}

TEST(NnModule, SubstituteReplacesParams) {
  reset(8);
  nn::Linear lin(2, 1);
  module("lin", lin);  // create the store entries
  Tensor w = tensor({2.0f, -1.0f}, {1, 2});
  Tensor x = tensor({3.0f, 5.0f}, {1, 2});
  Tensor out;
  auto fn = [&] {
    module("lin", lin);
    out = lin(x);
  };
  Trace tr = poutine::trace(poutine::substitute(fn, {{"lin$$$weight", w}})).get_trace();
  EXPECT_TRUE(tr.contains("lin$$$weight"));
  EXPECT_TRUE(tr.contains("lin$$$bias"));
  const float b = param_store().get("lin$$$bias").item();
  EXPECT_NEAR(out.item(), 2.0f * 3.0f - 5.0f + b, 1e-5f);
  EXPECT_EQ(tr.site("lin$$$weight").value.to_vector(), w.to_vector());
  // the store itself is untouched by substitute
  EXPECT_NE(param_store().get("lin$$$weight").to_vector(), w.to_vector());
}

// Linear regression y = x w + b + N(0, 0.1^2) with the weights as a module:
// SVI (no latents; the ELBO is the log-likelihood) moves the store's leaves
// to the least-squares solution. 300 Adam steps at lr 0.05 from |init| <=
// 0.58 reach it to within 0.05 (the least-squares estimate itself is within
// ~0.01 of the truth with 200 points and noise 0.1).
TEST(NnModule, SVIUpdatesModuleParams) {
  reset(9);
  std::mt19937 gen(9);
  nn::Linear lin(3, 1);
  Tensor x = random_tensor({200, 3}, gen, -1, 1);
  Tensor y = matmul(x, tensor({1.5f, -2.0f, 0.5f}, {3, 1})) + 0.7f + 0.1f * randn({200, 1});
  auto model = [&](const Tensor& xs, const Tensor& ys) {
    module("reg", lin);
    auto p = plate("data", xs.size(0));
    sample("obs", dist::Normal(lin(xs).squeeze(-1), 0.1f), ys.squeeze(-1));
  };
  auto guide = [](const Tensor&, const Tensor&) {};
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.05f}), infer::Trace_ELBO());
  const float loss0 = svi.step(x, y).item();
  const Tensor leaf = param_store().unconstrained("reg$$$weight");
  for (int i = 0; i < 299; ++i) svi.step(x, y);
  const float loss1 = svi.evaluate_loss(x, y).item();
  EXPECT_LT(loss1, loss0);
  EXPECT_EQ(param_store().unconstrained("reg$$$weight").impl(), leaf.impl());  // updated in place
  const auto w = param_store().get("reg$$$weight").to_vector();
  EXPECT_NEAR(w[0], 1.5f, 0.05f);
  EXPECT_NEAR(w[1], -2.0f, 0.05f);
  EXPECT_NEAR(w[2], 0.5f, 0.05f);
  EXPECT_NEAR(param_store().get("reg$$$bias").item(), 0.7f, 0.05f);
  // the net sees the trained values
  EXPECT_EQ(lin.weight().to_vector(), w);
}

// ---- VAE example -----------------------------------------------------------------

TEST(NnVae, SyntheticImagesAreBinaryAndSeeded) {
  Tensor a = cuvi_examples::make_stroke_images(50, 8, 3, 42);
  Tensor b = cuvi_examples::make_stroke_images(50, 8, 3, 42);
  Tensor c = cuvi_examples::make_stroke_images(50, 8, 3, 43);
  EXPECT_EQ(a.shape(), (Shape{50, 64}));
  EXPECT_EQ(a.to_vector(), b.to_vector());
  EXPECT_NE(a.to_vector(), c.to_vector());
  double on = 0;
  for (float v : a.to_vector()) {
    EXPECT_TRUE(v == 0.0f || v == 1.0f);
    on += v;
  }
  const double frac = on / 3200.0;
  EXPECT_GT(frac, 0.05);  // strokes are there ...
  EXPECT_LT(frac, 0.6);   // ... and do not fill the image
}

TEST(NnVae, TraceStructure) {
  reset(10);
  Tensor data = cuvi_examples::make_stroke_images(40, 8, 3, 1);
  cuvi_examples::VAE vae({.x_dim = 64, .z_dim = 3, .hidden = 16, .batch = 10}, default_device());
  Trace g = poutine::trace([&] { vae.guide(data); }).get_trace();
  EXPECT_TRUE(g.contains("encoder$$$0.weight"));
  EXPECT_TRUE(g.contains("encoder$$$2.bias"));
  EXPECT_EQ(g.site("latent").value.shape(), (Shape{10, 3}));
  Trace m = poutine::trace(poutine::replay([&] { vae.model(data); }, g)).get_trace();
  EXPECT_TRUE(m.contains("decoder$$$0.weight"));
  EXPECT_EQ(m.site("latent").value.to_vector(), g.site("latent").value.to_vector());
  EXPECT_TRUE(m.site("obs").is_observed);
  EXPECT_EQ(m.site("obs").value.shape(), (Shape{10, 64}));
  EXPECT_EQ(m.site("obs").fn->event_shape(), (Shape{64}));
  EXPECT_FLOAT_EQ(m.site("obs").scale, 4.0f);  // N / B
}

// A tiny VAE (8x8 images, 64 of them, minibatches of 32) trained 20 steps.
// The -ELBO is estimated before and after by averaging K = 20 full-data
// evaluations. At the start it is ~ 64 log 2 = 44.4 nats/image plus a small
// KL (decoder logits near 0 give fair pixels; checked to within 5 nats).
// The improvement must exceed 10 standard errors of the difference (measured
// here, so it is not Monte Carlo noise) and 10 nats per image, ~22% of the
// starting value: a real change of the fit (measured: 47.7 -> 23.8).
TEST(NnVae, ElboImprovesInTwentySteps) {
  reset(12);
  constexpr int64_t kN = 64;
  Tensor data = cuvi_examples::make_stroke_images(kN, 8, 3, 7);
  cuvi_examples::VAE vae({.x_dim = 64, .z_dim = 4, .hidden = 32, .batch = 32}, default_device());
  auto model = [&](const Tensor& d) { vae.model(d); };
  auto guide = [&](const Tensor& d) { vae.guide(d); };
  infer::SVI svi(model, guide, optim::Adam({.lr = 1e-2f}), infer::Trace_ELBO());
  auto estimate = [&](double* mean, double* se) {
    vae.set_batch(0);
    constexpr int kK = 20;
    std::vector<double> v;
    for (int i = 0; i < kK; ++i) v.push_back(svi.evaluate_loss(data).item() / kN);
    *mean = std::accumulate(v.begin(), v.end(), 0.0) / kK;
    double ss = 0;
    for (double e : v) ss += (e - *mean) * (e - *mean);
    *se = std::sqrt(ss / (kK - 1) / kK);
    vae.set_batch(32);
  };
  module("encoder", vae.encoder());  // create the params before the first estimate
  module("decoder", vae.decoder());
  double before, se_before, after, se_after;
  estimate(&before, &se_before);
  for (int i = 0; i < 20; ++i) svi.step(data);
  estimate(&after, &se_after);
  const double improvement = before - after;  // in nats per image (loss = -ELBO)
  const double se = std::sqrt(se_before * se_before + se_after * se_after);
  std::printf("VAE -ELBO/image: %.3f +- %.3f -> %.3f +- %.3f (improvement %.3f)\n", before, se_before, after,
              se_after, improvement);
  EXPECT_NEAR(before, 64 * std::log(2.0), 5.0);
  EXPECT_GT(improvement, 10 * se);
  EXPECT_GT(improvement, 10.0);
}
