// PPL core and inference on CUDA: plates, handlers, param store and the
// conjugate acceptance models with everything resident on the device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gpu_test.hpp"
#include "gradcheck.hpp"

using namespace cuvi;
using namespace cuvi::testing;

namespace {

struct OnCuda {
  OnCuda() {
    set_default_device(Device::cuda());
    param_store().clear();
  }
  ~OnCuda() { set_default_device(Device::cpu()); }
};

TEST(GpuPlate, SubsampleIndicesOnDeviceUniqueAndReplayed) {
  CUVI_REQUIRE_CUDA();
  OnCuda scope;
  set_seed(5);
  auto prog = [] {
    auto p = plate("data", 100000, 512);
    sample("z", dist::Normal(0.0f, 1.0f));
  };
  const Trace g = poutine::trace(prog).get_trace();
  const Tensor idx = g.site("data").value;
  ASSERT_TRUE(idx.device().is_cuda());
  const auto v = idx.to_vector_i64();
  std::set<int64_t> s(v.begin(), v.end());
  EXPECT_EQ(s.size(), v.size());
  for (int64_t i : v) ASSERT_TRUE(i >= 0 && i < 100000);
  const Trace m = poutine::trace(poutine::replay(prog, g)).get_trace();
  EXPECT_EQ(m.site("data").value.to_vector_i64(), v);
  EXPECT_FLOAT_EQ(m.site("z").scale, 100000.0f / 512.0f);
  EXPECT_TRUE(m.site("z").value.device().is_cuda());
  EXPECT_EQ(m.site("z").value.shape(), (Shape{512}));
}

// cdf / icdf / entropy with float-constant parameters follow the value's
// device (the default device being the cpu), as log_prob does, and match
// the cpu's results; validation of q is deferred to the next read.
TEST(GpuClosedForm, ConstantParametersFollowTheValuesDevice) {
  CUVI_REQUIRE_CUDA();
  const std::vector<float> xs = {-2.0f, 0.1f, 1.7f}, qs = {1e-4f, 0.5f, 0.97f};
  const Tensor xc = tensor(xs, Device::cuda()), qc = tensor(qs, Device::cuda());
  for (const dist::DistPtr& d : std::vector<dist::DistPtr>{std::make_shared<dist::Normal>(0.5f, 2.0f),
                                                          std::make_shared<dist::Cauchy>(0.5f, 2.0f),
                                                          std::make_shared<dist::Laplace>(0.5f, 2.0f)}) {
    const Tensor c = d->cdf(xc), i = d->icdf(qc);
    EXPECT_TRUE(c.device().is_cuda() && i.device().is_cuda()) << d->name();
    const auto cc = c.to_vector(), cpu_c = d->cdf(tensor(xs)).to_vector();
    const auto ic = i.to_vector(), cpu_i = d->icdf(tensor(qs)).to_vector();
    for (size_t k = 0; k < 3; ++k) {
      EXPECT_NEAR(cc[k], cpu_c[k], 1e-6f) << d->name();
      EXPECT_NEAR(ic[k], cpu_i[k], 1e-5f * (1 + std::fabs(cpu_i[k]))) << d->name();
    }
  }
  OnCuda scope;
  const dist::Normal n(tensor({0.0f, 1.0f}), 1.0f);
  expect_error<ValueError>([&] { n.icdf(tensor({0.5f, 1.5f})).to_vector(); }, {"Normal.icdf", "[0, 1]"});
}

TEST(GpuHandlers, ConditionScaleMaskOnDevice) {
  CUVI_REQUIRE_CUDA();
  OnCuda scope;
  set_seed(6);
  Tensor obs = tensor({0.5f, -1.0f}, Device::cuda());
  auto model = [] {
    auto p = plate("n", 2);
    sample("x", dist::Normal(0.0f, 1.0f));
  };
  auto conditioned = poutine::scale(poutine::condition(model, {{"x", obs}}), 3.0f);
  const Trace t = poutine::trace(conditioned).get_trace();
  EXPECT_TRUE(t.site("x").is_observed);
  EXPECT_FLOAT_EQ(t.site("x").scale, 3.0f);
  const double lp = 3.0 * (-0.5 * (0.25 + 1.0) - 2 * 0.918938533);
  EXPECT_NEAR(t.log_prob_sum().item(), lp, 1e-4);
  auto masked = poutine::mask(conditioned, tensor({1.0f, 0.0f}, Device::cuda()));
  const double lp_masked = 3.0 * (-0.5 * 0.25 - 0.918938533);
  EXPECT_NEAR(poutine::trace(masked).get_trace().log_prob_sum().item(), lp_masked, 1e-4);
}

TEST(GpuParamStore, SaveLoadRoundTripFromDevice) {
  CUVI_REQUIRE_CUDA();
  OnCuda scope;
  Tensor a = param("a", tensor({1.f, 2.f, 3.f}, Device::cuda()), constraints::positive);
  const auto before = param_store().get("a").to_vector();
  const std::string path = ::testing::TempDir() + "cuvi_gpu_store.bin";
  param_store().save(path);
  param_store().clear();
  param_store().load(path, nullptr, Device::cuda());
  EXPECT_TRUE(param_store().get("a").device().is_cuda());
  const auto after = param_store().get("a").to_vector();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_NEAR(after[i], before[i], 1e-6f * before[i]);
  std::remove(path.c_str());
}

// Pyro's Normal-Normal acceptance model on the device: 2-d latent, the exact
// posterior from the conjugate formulas, Adam as in test_inference.cpp.
TEST(GpuInference, NormalNormalConvergesOnDevice) {
  CUVI_REQUIRE_CUDA();
  OnCuda scope;
  set_seed(0);
  const Device d = Device::cuda();
  const std::vector<float> lam0{0.1f, 0.1f}, mu0{0.0f, 0.5f}, lam{6.0f, 4.0f};
  const std::vector<float> xs{0.0f, 1.0f, 2.0f, 1.5f, 0.5f, 0.3f, 1.1f, 0.9f};  // 4 x 2
  Tensor data = tensor(xs, {4, 2}, d);
  std::vector<float> post_mu(2), post_sd(2);
  for (int k = 0; k < 2; ++k) {
    double s = 0;
    for (int i = 0; i < 4; ++i) s += xs[static_cast<size_t>(i * 2 + k)];
    const double prec = lam0[k] + 4 * lam[k];
    post_mu[static_cast<size_t>(k)] = static_cast<float>((lam0[k] * mu0[k] + lam[k] * s) / prec);
    post_sd[static_cast<size_t>(k)] = static_cast<float>(1.0 / std::sqrt(prec));
  }
  Tensor mu0_t = tensor(mu0, d), sd0 = tensor({1 / std::sqrt(0.1f), 1 / std::sqrt(0.1f)}, d);
  Tensor sd = tensor({1 / std::sqrt(6.0f), 1 / std::sqrt(4.0f)}, d);
  auto model = [&](const Tensor& x) {
    Tensor z = sample("z", dist::Normal(mu0_t, sd0).to_event(1));
    auto p = plate("data", 4);
    sample("obs", dist::Normal(z, sd).to_event(1), x);
  };
  auto guide = [&](const Tensor&) {
    Tensor loc = param("loc", tensor({post_mu[0] + 0.134f, post_mu[1] + 0.134f}, d));
    Tensor log_sd = param("log_sd", tensor({std::log(post_sd[0]) - 0.14f, std::log(post_sd[1]) - 0.14f}, d));
    sample("z", dist::Normal(loc, exp(log_sd)).to_event(1));
  };
  infer::SVI svi(model, guide, optim::Adam({.lr = 0.0015f, .betas = {0.97f, 0.999f}}), infer::Trace_ELBO());
  for (int i = 0; i < 5000; ++i) svi.step(data);
  const auto loc = param_store().get("loc").to_vector();
  const auto lsd = param_store().get("log_sd").to_vector();
  double err_loc = 0, err_sd = 0;
  for (int k = 0; k < 2; ++k) {
    err_loc += std::pow(loc[static_cast<size_t>(k)] - post_mu[static_cast<size_t>(k)], 2);
    err_sd += std::pow(lsd[static_cast<size_t>(k)] - std::log(post_sd[static_cast<size_t>(k)]), 2);
  }
  // Pyro's tolerance (squared error 0.05), and at least halved from the start.
  EXPECT_LT(std::sqrt(err_loc), 0.05);
  EXPECT_LT(std::sqrt(err_sd), 0.05);
  EXPECT_LT(std::sqrt(err_loc), 0.5 * std::sqrt(2 * 0.134 * 0.134));
}

TEST(GpuInference, LossIsBitwiseReproducibleRunToRun) {
  CUVI_REQUIRE_CUDA();
  auto run = [] {
    OnCuda scope;
    set_seed(42);
    Tensor data = randn({4096}, Device::cuda());
    auto model = [](const Tensor& x) {
      Tensor mu = sample("mu", dist::Normal(0.0f, 10.0f));
      auto p = plate("data", 4096, 256);
      sample("x", dist::Normal(mu, 1.0f), p.subsample(x));
    };
    auto guide = [](const Tensor&) {
      sample("mu", dist::Normal(param("m", 0.0f), param("s", 1.0f, constraints::positive)));
    };
    infer::SVI svi(model, guide, optim::Adam({.lr = 1e-2f}), infer::Trace_ELBO());
    std::vector<float> losses;
    for (int i = 0; i < 20; ++i) losses.push_back(svi.step(data).item());
    return losses;
  };
  EXPECT_EQ(run(), run());
}

// RMSprop (every variant) and Adadelta on cuda:0 against the CPU backend
// through the optimizers themselves: 40 parameters of random shapes (one
// long, one empty; 300 for two of the cases, past one pack of 256), fresh
// random gradients, 4 steps. From the second step on (the state exists)
// a step is one launch for up to 256 tensors and two beyond. Both sides run
// the same per-element function with correctly rounded sqrt and division;
// the GPU may contract a*b+c into an fma (one rounding fewer), so values
// drift apart by a few ulps a step: 1e-5 relative plus 1e-6 absolute after
// 4 steps, for params and every state buffer. The exception is RMSprop's
// momentum buffer b = momentum b + g / avg: its terms reach 1/sqrt(1 -
// alpha) = 3.2 (g / avg) and ~11 (the buffer after 4 steps), and where they
// cancel, b is small while the fma's difference stays an ulp of the terms
// (ulp(11) = 9.5e-7, one per step): 4e-6 absolute after 4 steps. (The decay
// term g + wd p is rounded alike on both backends: kern::add_decay.)
TEST(GpuOptim, RMSpropAndAdadeltaMatchCpuInOneLaunchPerStep) {
  CUVI_REQUIRE_CUDA();
  struct Case {
    std::shared_ptr<optim::Optimizer> opt;
    int count;
  };
  std::vector<Case> cases;
  for (float wd : {0.0f, 0.1f})
    for (float momentum : {0.0f, 0.9f})
      for (bool centered : {false, true})
        cases.push_back({std::make_shared<optim::RMSprop>(optim::RMSpropOptions{
                             .lr = 0.01f, .alpha = 0.9f, .weight_decay = wd, .momentum = momentum, .centered = centered}),
                         40});
  cases.push_back(
      {std::make_shared<optim::RMSprop>(optim::RMSpropOptions{.lr = 0.01f, .momentum = 0.5f, .centered = true}), 300});
  cases.push_back({std::make_shared<optim::Adadelta>(optim::AdadeltaOptions{}), 40});
  cases.push_back({std::make_shared<optim::Adadelta>(optim::AdadeltaOptions{.lr = 0.5f, .weight_decay = 0.1f}), 300});
  std::mt19937 gen(21);
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.opt->name() << ", case " << (&c - cases.data()) << ", " << c.count
                                      << " tensors");
    std::uniform_int_distribution<int64_t> len(1, 40);
    std::vector<Shape> shapes;
    for (int k = 0; k < c.count; ++k)
      shapes.push_back(k == 3 ? Shape{0, 5} : (k == 7 ? Shape{3, 30000} : Shape{len(gen), len(gen)}));
    std::vector<Tensor> on_cpu, on_gpu;
    for (const Shape& s : shapes) {
      const Tensor p = random_tensor(s, gen, -1.0f, 1.0f, Device::cpu());
      on_cpu.push_back(p.clone().requires_grad_());
      on_gpu.push_back(p.to(Device::cuda()).requires_grad_());
    }
    auto cpu_opt = c.opt->clone(), gpu_opt = c.opt->clone();
    for (int step = 1; step <= 4; ++step) {
      optim::NamedParams cpu_named, gpu_named;
      for (size_t k = 0; k < shapes.size(); ++k) {
        const Tensor g = random_tensor(shapes[k], gen, -1.0f, 1.0f, Device::cpu());
        on_cpu[k].set_grad(g);
        on_gpu[k].set_grad(g.to(Device::cuda()));
        cpu_named.push_back({"p" + std::to_string(k), on_cpu[k]});
        gpu_named.push_back({"p" + std::to_string(k), on_gpu[k]});
      }
      cpu_opt->step(cpu_named);
      const long long before = launch_count();
      gpu_opt->step(gpu_named);
      if (step > 1) {
        EXPECT_EQ(launch_count() - before, c.count <= 256 ? 1 : 2) << "step " << step;
      }
    }
    const OptimizerState cs = cpu_opt->state(), gs = gpu_opt->state();
    EXPECT_EQ(gs.scalars, cs.scalars);
    ASSERT_EQ(gs.tensors.size(), cs.tensors.size());
    for (size_t k = 0; k < shapes.size(); ++k) {
      SCOPED_TRACE(k);
      const auto want = on_cpu[k].detach().to_vector();
      expect_close(on_gpu[k].detach().to_vector(), std::vector<double>(want.begin(), want.end()), 1e-6, 1e-5, "param");
      const std::string name = "p" + std::to_string(k);
      ASSERT_EQ(gs.tensors.at(name).size(), cs.tensors.at(name).size());
      for (const auto& [buf, t] : cs.tensors.at(name)) {
        EXPECT_TRUE(gs.tensors.at(name).at(buf).device().is_cuda());
        const auto w = t.to_vector();
        const double atol = buf == "momentum_buffer" ? 4e-6 : 1e-6;
        expect_close(gs.tensors.at(name).at(buf).to_vector(), std::vector<double>(w.begin(), w.end()), atol, 1e-5,
                     buf.c_str());
      }
    }
  }
}

// A gradient that cancels the weight-decay term exactly on the CPU (g =
// -fl(wd p), so g + fl(wd p) = 0): every optimizer leaves the param as it
// was. Were the GPU to fuse wd * p + g into an fma, it would keep the
// product's rounding error (~1e-9) as the gradient, and Adam, RMSprop and
// Adagrad, dividing by a running RMS of that same tiny gradient plus eps,
// would take steps of ~lr / 10. kern::add_decay rounds the product alone on
// both backends: the params must come back bit for bit.
TEST(GpuOptim, WeightDecayThatCancelsTheGradientLeavesParamsAsOnCpu) {
  CUVI_REQUIRE_CUDA();
  const float wd = 0.1f;
  std::vector<std::shared_ptr<optim::Optimizer>> opts = {
      std::make_shared<optim::Adam>(optim::AdamOptions{.weight_decay = wd}),
      std::make_shared<optim::ClippedAdam>(optim::ClippedAdamOptions{.weight_decay = wd}),
      std::make_shared<optim::Adagrad>(optim::AdagradOptions{.weight_decay = wd}),
      std::make_shared<optim::RMSprop>(optim::RMSpropOptions{.weight_decay = wd}),
      std::make_shared<optim::RMSprop>(optim::RMSpropOptions{.weight_decay = wd, .momentum = 0.9f, .centered = true}),
      std::make_shared<optim::Adadelta>(optim::AdadeltaOptions{.weight_decay = wd}),
      std::make_shared<optim::SGD>(optim::SGDOptions{.momentum = 0.9f, .weight_decay = wd})};
  std::mt19937 gen(17);
  const Tensor p0 = random_tensor({64, 64}, gen, -1.0f, 1.0f, Device::cpu());
  const auto start = p0.to_vector();
  std::vector<float> gv(start.size());
  for (size_t i = 0; i < gv.size(); ++i) gv[i] = -(wd * start[i]);
  const Tensor g = tensor(gv, {64, 64}, Device::cpu());
  for (const auto& opt : opts) {
    SCOPED_TRACE(opt->name());
    Tensor on_cpu = p0.clone().requires_grad_(), on_gpu = p0.to(Device::cuda()).requires_grad_();
    auto cpu_opt = opt->clone(), gpu_opt = opt->clone();
    for (int step = 0; step < 2; ++step) {
      on_cpu.set_grad(g);
      on_gpu.set_grad(g.to(Device::cuda()));
      cpu_opt->step({{"p", on_cpu}});
      gpu_opt->step({{"p", on_gpu}});
    }
    EXPECT_EQ(on_cpu.detach().to_vector(), start);
    EXPECT_EQ(on_gpu.detach().to_vector(), start);
  }
}

}  // namespace
