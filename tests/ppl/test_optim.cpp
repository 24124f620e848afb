// Optimizer updates against float64 references written from the semantics of
// torch.optim.SGD / Adam / Adagrad and pyro.optim.ClippedAdam: several
// tensors per step (one longer than the CPU backend's parallel grain and
// block, one of a single element), fresh random parameters and gradients
// every step, several steps so the state buffers matter.
//
// Tolerance: every quantity is O(1) (parameters and gradients standard
// normal, or clipped), and one float32 update is a few roundings (relative
// 2^-24 each) of O(1) terms. Adam's step divides by sqrt(v) + eps, which
// can amplify the rounding of m and v by at most |m| / sqrt(v) <= ~3 in these
// runs. 2e-5 absolute on the parameters and the state buffers after 6 steps
// is >20x the worst case of that bound, and far below any semantic slip
// (a missing bias correction, momentum applied before dampening, clipping
// after weight decay: each changes the result by >1e-3).
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/optim.hpp"

using namespace cuvi;

namespace {

constexpr double kTol = 2e-5;
constexpr int kSteps = 6;
const std::vector<int64_t> kSizes = {20001, 7, 1};

// Reference state of one parameter (float64).
struct Ref {
  std::vector<double> p, s0, s1;
  int step = 0;
  double lr = 0;  // ClippedAdam's per-parameter decayed rate
};

std::vector<double> as_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Draws standard normals on the host from a fixed-seed generator (the test
// must not depend on the device's RNG).
std::vector<float> host_normals(std::mt19937_64& gen, int64_t n, float clip_to = 0.0f) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) {
    x = nd(gen);
    if (clip_to > 0.0f) x = std::max(-clip_to, std::min(clip_to, x));
  }
  return v;
}

using RefUpdate = std::function<void(Ref&, const std::vector<double>& g)>;

// Runs `opt` for kSteps on kSizes parameters with random gradients (set
// through backward of sum(p * g), so the gradient is exactly g), applying
// `ref` to the float64 state alongside; compares params and state after
// every step. `buffers`: the state tensor names the optimizer keeps.
void check_against_reference(optim::Optimizer& opt, const RefUpdate& ref, const std::vector<std::string>& buffers,
                             uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::vector<Tensor> params;
  std::vector<Ref> refs;
  for (int64_t n : kSizes) {
    const std::vector<float> init = host_normals(gen, n);
    Tensor p = tensor(init, {n});
    p.requires_grad_();
    params.push_back(p);
    Ref r;
    r.p = as_double(init);
    r.s0.assign(static_cast<size_t>(n), 0.0);
    r.s1.assign(static_cast<size_t>(n), 0.0);
    refs.push_back(r);
  }
  for (int step = 1; step <= kSteps; ++step) {
    optim::NamedParams named;
    for (size_t k = 0; k < params.size(); ++k) {
      const std::vector<float> g = host_normals(gen, kSizes[k]);
      params[k].zero_grad();
      sum(params[k] * tensor(g, {kSizes[k]})).backward();
      named.push_back({"p" + std::to_string(k), params[k]});
      ref(refs[k], as_double(g));
    }
    opt.step(named);
    const OptimizerState st = opt.state();
    for (size_t k = 0; k < params.size(); ++k) {
      const std::string name = "p" + std::to_string(k);
      const std::vector<float> got = params[k].detach().to_vector();
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], refs[k].p[i], kTol) << opt.name() << " step " << step << " param " << name << "[" << i << "]";
      for (size_t b = 0; b < buffers.size(); ++b) {
        const std::vector<float> s = st.tensors.at(name).at(buffers[b]).to_vector();
        const std::vector<double>& want = b == 0 ? refs[k].s0 : refs[k].s1;
        for (size_t i = 0; i < s.size(); ++i)
          ASSERT_NEAR(s[i], want[i], kTol) << opt.name() << " step " << step << " " << buffers[b] << " of " << name
                                           << "[" << i << "]";
      }
      EXPECT_EQ(st.scalars.at(name).at("step"), step);
    }
  }
}

// torch.optim.SGD.
RefUpdate sgd_ref(double lr, double momentum, double dampening, double wd, bool nesterov) {
  return [=](Ref& r, const std::vector<double>& g) {
    ++r.step;
    for (size_t i = 0; i < g.size(); ++i) {
      double d = g[i] + wd * r.p[i];
      if (momentum != 0) {
        r.s0[i] = r.step == 1 ? d : momentum * r.s0[i] + (1 - dampening) * d;
        d = nesterov ? d + momentum * r.s0[i] : r.s0[i];
      }
      r.p[i] -= lr * d;
    }
  };
}

// torch.optim.Adam (L2 weight decay added to the gradient).
RefUpdate adam_ref(double lr, double b1, double b2, double eps, double wd) {
  return [=](Ref& r, const std::vector<double>& g) {
    ++r.step;
    const double bc1 = 1 - std::pow(b1, r.step), bc2 = 1 - std::pow(b2, r.step);
    for (size_t i = 0; i < g.size(); ++i) {
      const double d = g[i] + wd * r.p[i];
      r.s0[i] = b1 * r.s0[i] + (1 - b1) * d;
      r.s1[i] = b2 * r.s1[i] + (1 - b2) * d * d;
      r.p[i] -= lr / bc1 * r.s0[i] / (std::sqrt(r.s1[i]) / std::sqrt(bc2) + eps);
    }
  };
}

// torch.optim.AdamW: the param decays by lr * wd first (decoupled), then
// Adam's step from the gradient alone.
RefUpdate adamw_ref(double lr, double b1, double b2, double eps, double wd) {
  return [=](Ref& r, const std::vector<double>& g) {
    ++r.step;
    const double bc1 = 1 - std::pow(b1, r.step), bc2 = 1 - std::pow(b2, r.step);
    for (size_t i = 0; i < g.size(); ++i) {
      r.p[i] *= 1 - lr * wd;
      r.s0[i] = b1 * r.s0[i] + (1 - b1) * g[i];
      r.s1[i] = b2 * r.s1[i] + (1 - b2) * g[i] * g[i];
      r.p[i] -= lr / bc1 * r.s0[i] / (std::sqrt(r.s1[i]) / std::sqrt(bc2) + eps);
    }
  };
}

// pyro.optim.ClippedAdam: lr *= lrd first, then clamp each gradient element
// to [-clip, clip], then weight decay, then Adam with eps outside the bias
// correction.
RefUpdate clipped_adam_ref(double lr0, double b1, double b2, double eps, double wd, double clip, double lrd) {
  return [=](Ref& r, const std::vector<double>& g) {
    if (r.step == 0) r.lr = lr0;
    ++r.step;
    r.lr *= lrd;
    const double bc1 = 1 - std::pow(b1, r.step), bc2 = 1 - std::pow(b2, r.step);
    const double step_size = r.lr * std::sqrt(bc2) / bc1;
    for (size_t i = 0; i < g.size(); ++i) {
      const double d = std::max(-clip, std::min(clip, g[i])) + wd * r.p[i];
      r.s0[i] = b1 * r.s0[i] + (1 - b1) * d;
      r.s1[i] = b2 * r.s1[i] + (1 - b2) * d * d;
      r.p[i] -= step_size * r.s0[i] / (std::sqrt(r.s1[i]) + eps);
    }
  };
}

// torch.optim.Adagrad (lr_decay 0, initial accumulator 0).
RefUpdate adagrad_ref(double lr, double eps, double wd) {
  return [=](Ref& r, const std::vector<double>& g) {
    ++r.step;
    for (size_t i = 0; i < g.size(); ++i) {
      const double d = g[i] + wd * r.p[i];
      r.s0[i] += d * d;
      r.p[i] -= lr * d / (std::sqrt(r.s0[i]) + eps);
    }
  };
}

}  // namespace

TEST(Optim, SGDPlainMatchesTorchSemantics) {
  optim::SGD opt({.lr = 0.1f});
  check_against_reference(opt, sgd_ref(0.1, 0, 0, 0, false), {}, 11);
}

TEST(Optim, SGDMomentumDampeningWeightDecayMatchesTorchSemantics) {
  optim::SGD opt({.lr = 0.05f, .momentum = 0.9f, .dampening = 0.3f, .weight_decay = 0.01f});
  check_against_reference(opt, sgd_ref(0.05, 0.9, 0.3, 0.01, false), {"momentum_buffer"}, 12);
}

TEST(Optim, SGDNesterovMatchesTorchSemantics) {
  optim::SGD opt({.lr = 0.05f, .momentum = 0.8f, .weight_decay = 0.02f, .nesterov = true});
  check_against_reference(opt, sgd_ref(0.05, 0.8, 0, 0.02, true), {"momentum_buffer"}, 13);
}

TEST(Optim, AdamMatchesTorchSemantics) {
  optim::Adam opt({.lr = 0.01f, .betas = {0.8f, 0.99f}, .eps = 1e-6f});
  check_against_reference(opt, adam_ref(0.01, 0.8, 0.99, 1e-6, 0), {"exp_avg", "exp_avg_sq"}, 14);
}

TEST(Optim, AdamWeightDecayMatchesTorchSemantics) {
  optim::Adam opt({.lr = 0.02f, .betas = {0.9f, 0.999f}, .eps = 1e-8f, .weight_decay = 0.1f});
  check_against_reference(opt, adam_ref(0.02, 0.9, 0.999, 1e-8, 0.1), {"exp_avg", "exp_avg_sq"}, 15);
}

TEST(Optim, AdamWDecaysDecoupledAsTorch) {
  // A large decay (lr wd = 0.01 a step) so that decoupled and L2 decay
  // (Adam's weight_decay) differ by far more than the tolerance.
  optim::AdamW opt({.lr = 0.02f, .betas = {0.9f, 0.99f}, .eps = 1e-8f, .weight_decay = 0.5f});
  check_against_reference(opt, adamw_ref(0.02, 0.9, 0.99, 1e-8, 0.5), {"exp_avg", "exp_avg_sq"}, 17);
}

TEST(Optim, ClippedAdamClipsDecaysAndMatchesPyroSemantics) {
  // clip 0.5 against standard-normal gradients: ~60% of the elements are
  // clamped, so clamping before (not after) weight decay is checked too.
  optim::ClippedAdam opt({.lr = 0.03f, .betas = {0.85f, 0.995f}, .eps = 1e-7f, .weight_decay = 0.05f,
                          .clip_norm = 0.5f, .lrd = 0.9f});
  check_against_reference(opt, clipped_adam_ref(0.03, 0.85, 0.995, 1e-7, 0.05, 0.5, 0.9), {"exp_avg", "exp_avg_sq"},
                          16);
}

TEST(Optim, AdagradMatchesTorchSemantics) {
  optim::Adagrad opt({.lr = 0.1f, .eps = 1e-10f, .weight_decay = 0.03f});
  check_against_reference(opt, adagrad_ref(0.1, 1e-10, 0.03), {"sum"}, 17);
}

// A parameter without a gradient is skipped: no state, unchanged value.
TEST(Optim, ParameterWithoutGradientIsLeftAlone) {
  optim::Adam opt({.lr = 0.1f});
  Tensor a = tensor({1.0f, 2.0f});
  Tensor b = tensor({3.0f});
  a.requires_grad_();
  b.requires_grad_();
  sum(a * 2.0f).backward();
  opt.step({{"a", a}, {"b", b}});
  EXPECT_EQ(b.detach().to_vector(), std::vector<float>({3.0f}));
  const OptimizerState st = opt.state();
  EXPECT_TRUE(st.tensors.count("a"));
  EXPECT_FALSE(st.tensors.count("b"));
  // Adam's first step moves every element by lr against the gradient's sign.
  const auto av = a.detach().to_vector();
  EXPECT_NEAR(av[0], 0.9f, 1e-6f);
  EXPECT_NEAR(av[1], 1.9f, 1e-6f);
}
