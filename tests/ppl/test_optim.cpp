// Optimizer updates against float64 references written from the semantics of
// torch.optim.SGD / Adam / Adagrad / RMSprop / Adadelta and
// pyro.optim.ClippedAdam: several tensors per step (one longer than the CPU
// backend's parallel grain and block, one of a single element; for RMSprop
// and Adadelta random shapes and one empty tensor), fresh random parameters
// and gradients every step, several steps so the state buffers matter.
//
// Tolerance: every quantity is O(1) (parameters and gradients standard
// normal, or clipped), and one float32 update is a few roundings (relative
// 2^-24 each) of O(1) terms. Adam's step divides by sqrt(v) + eps, which
// can amplify the rounding of m and v by at most |m| / sqrt(v) <= ~3 in these
// runs. 2e-5 absolute on the parameters and the state buffers after 6 steps
// is >20x the worst case of that bound, and far below any semantic slip
// (a missing bias correction, momentum applied before dampening, clipping
// after weight decay: each changes the result by >1e-3).
//
// RMSprop's buffers are not O(1): g / avg reaches 1 / sqrt(1 - alpha) (10
// at alpha 0.99), and the momentum buffer sums such terms (up to ~50 here).
// Each float32 operation rounds by at most 2^-24 relative; an update is
// about 12 of them and earlier errors are carried on with weights < 1
// (alpha, rho, momentum), so after 6 steps a value is off by at most ~100
// ulps of its own size: 6e-6 relative. Those tests allow 2e-5 absolute
// plus 1e-5 relative to the reference value.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <numbers>
#include <random>
#include <set>
#include <string>
#include <unistd.h>
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
  std::vector<double> p, s0, s1, s2;
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

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// How check_against_reference runs; the defaults are the original tests'.
struct RefRun {
  std::vector<Shape> shapes = {{kSizes[0]}, {kSizes[1]}, {kSizes[2]}};
  double rel_tol = 0;           // allowed on top of kTol, times |reference value|
  bool exact_buffers = false;   // the state holds the named buffers and no others
};

// Runs `opt` for kSteps on parameters of the run's shapes with random
// gradients (set through backward of sum(p * g), so the gradient is exactly
// g), applying `ref` to the float64 state alongside; compares params and
// state after every step. `buffers`: the state tensor names of the
// reference's s0, s1, s2 in order ("" or absent: not kept).
void check_against_reference(optim::Optimizer& opt, const RefUpdate& ref, const std::vector<std::string>& buffers,
                             uint64_t seed, const RefRun& run = {}) {
  std::mt19937_64 gen(seed);
  std::vector<Tensor> params;
  std::vector<Ref> refs;
  for (const Shape& shape : run.shapes) {
    const int64_t n = numel_of(shape);
    const std::vector<float> init = host_normals(gen, n);
    Tensor p = tensor(init, shape);
    p.requires_grad_();
    params.push_back(p);
    Ref r;
    r.p = as_double(init);
    r.s0.assign(static_cast<size_t>(n), 0.0);
    r.s1.assign(static_cast<size_t>(n), 0.0);
    r.s2.assign(static_cast<size_t>(n), 0.0);
    refs.push_back(r);
  }
  const auto tol = [&](double want) { return kTol + run.rel_tol * std::fabs(want); };
  for (int step = 1; step <= kSteps; ++step) {
    optim::NamedParams named;
    for (size_t k = 0; k < params.size(); ++k) {
      const std::vector<float> g = host_normals(gen, params[k].numel());
      params[k].zero_grad();
      sum(params[k] * tensor(g, params[k].shape())).backward();
      named.push_back({"p" + std::to_string(k), params[k]});
      ref(refs[k], as_double(g));
    }
    opt.step(named);
    const OptimizerState st = opt.state();
    for (size_t k = 0; k < params.size(); ++k) {
      const std::string name = "p" + std::to_string(k);
      const std::vector<float> got = params[k].detach().to_vector();
      ASSERT_EQ(got.size(), refs[k].p.size());
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], refs[k].p[i], tol(refs[k].p[i]))
            << opt.name() << " step " << step << " param " << name << "[" << i << "]";
      std::set<std::string> kept;
      for (size_t b = 0; b < buffers.size(); ++b) {
        if (buffers[b].empty()) continue;
        kept.insert(buffers[b]);
        ASSERT_TRUE(st.tensors.at(name).count(buffers[b])) << opt.name() << " keeps no " << buffers[b];
        const std::vector<float> s = st.tensors.at(name).at(buffers[b]).to_vector();
        const std::vector<double>& want = b == 0 ? refs[k].s0 : (b == 1 ? refs[k].s1 : refs[k].s2);
        ASSERT_EQ(s.size(), want.size());
        for (size_t i = 0; i < s.size(); ++i)
          ASSERT_NEAR(s[i], want[i], tol(want[i])) << opt.name() << " step " << step << " " << buffers[b] << " of "
                                                   << name << "[" << i << "]";
      }
      if (run.exact_buffers) {
        std::set<std::string> have;
        for (const auto& [key, t] : st.tensors.at(name)) have.insert(key);
        EXPECT_EQ(have, kept) << opt.name();
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

// torch.optim.RMSprop, from the options the optimizer holds (float32
// values, read exactly as doubles). s0 square_avg, s1 momentum_buffer, s2
// grad_avg.
RefUpdate rmsprop_ref(const optim::RMSpropOptions& o) {
  const double lr = o.lr, alpha = o.alpha, eps = o.eps, wd = o.weight_decay, momentum = o.momentum;
  const bool centered = o.centered;
  return [=](Ref& r, const std::vector<double>& g) {
    ++r.step;
    for (size_t i = 0; i < g.size(); ++i) {
      const double d = g[i] + wd * r.p[i];
      r.s0[i] = alpha * r.s0[i] + (1 - alpha) * d * d;
      double avg;
      if (centered) {
        r.s2[i] = alpha * r.s2[i] + (1 - alpha) * d;
        avg = std::sqrt(r.s0[i] - r.s2[i] * r.s2[i]) + eps;
      } else {
        avg = std::sqrt(r.s0[i]) + eps;
      }
      if (momentum > 0) {
        r.s1[i] = momentum * r.s1[i] + d / avg;
        r.p[i] -= lr * r.s1[i];
      } else {
        r.p[i] -= lr * d / avg;
      }
    }
  };
}

// torch.optim.Adadelta. s0 square_avg, s1 acc_delta.
RefUpdate adadelta_ref(const optim::AdadeltaOptions& o) {
  const double lr = o.lr, rho = o.rho, eps = o.eps, wd = o.weight_decay;
  return [=](Ref& r, const std::vector<double>& g) {
    ++r.step;
    for (size_t i = 0; i < g.size(); ++i) {
      const double d = g[i] + wd * r.p[i];
      r.s0[i] = rho * r.s0[i] + (1 - rho) * d * d;
      const double delta = std::sqrt(r.s1[i] + eps) / std::sqrt(r.s0[i] + eps) * d;
      r.s1[i] = rho * r.s1[i] + (1 - rho) * delta * delta;
      r.p[i] -= lr * delta;
    }
  };
}

// Shapes drawn per test: one past the CPU backend's parallel grain (2^14)
// and block, small ones of 1 to 3 dims, and one empty, in random order.
std::vector<Shape> random_shapes(uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int64_t> d(1, 9);
  std::vector<Shape> shapes = {{3, 6000 + 100 * d(gen)}, {d(gen)}, {d(gen), d(gen)}, {d(gen), d(gen), d(gen)},
                               {d(gen), 0}, {1}};
  std::shuffle(shapes.begin(), shapes.end(), gen);
  return shapes;
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

// ---------------------------------------------------------------------------
// RMSprop and Adadelta.

TEST(Optim, RMSpropDefaultsAreTorchs) {
  const optim::RMSpropOptions o = optim::RMSprop().options();
  EXPECT_EQ(o.lr, 1e-2f);
  EXPECT_EQ(o.alpha, 0.99f);
  EXPECT_EQ(o.eps, 1e-8f);
  EXPECT_EQ(o.weight_decay, 0.0f);
  EXPECT_EQ(o.momentum, 0.0f);
  EXPECT_FALSE(o.centered);
  EXPECT_EQ(optim::RMSprop().name(), "RMSprop");
  EXPECT_EQ(optim::RMSprop().base_lr(), 1e-2f);
  const optim::AdadeltaOptions a = optim::Adadelta().options();
  EXPECT_EQ(a.lr, 1.0f);
  EXPECT_EQ(a.rho, 0.9f);
  EXPECT_EQ(a.eps, 1e-6f);
  EXPECT_EQ(a.weight_decay, 0.0f);
  EXPECT_EQ(optim::Adadelta().name(), "Adadelta");
}

// Every combination of weight decay, momentum and centering, at the
// defaults' eps and a faster alpha (0.9) so that the history matters
// within 6 steps.
TEST(Optim, RMSpropEveryVariantMatchesTorchSemantics) {
  uint64_t seed = 30;
  for (float wd : {0.0f, 0.1f})
    for (float momentum : {0.0f, 0.9f})
      for (bool centered : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "weight_decay " << wd << " momentum " << momentum << " centered "
                                          << centered);
        const optim::RMSpropOptions o{.lr = 0.01f, .alpha = 0.9f, .eps = 1e-8f, .weight_decay = wd,
                                      .momentum = momentum, .centered = centered};
        optim::RMSprop opt(o);
        check_against_reference(opt, rmsprop_ref(o),
                                {"square_avg", momentum > 0 ? "momentum_buffer" : "", centered ? "grad_avg" : ""},
                                ++seed, {.shapes = random_shapes(seed), .rel_tol = 1e-5, .exact_buffers = true});
      }
}

TEST(Optim, RMSpropDefaultOptionsMatchTorchSemantics) {
  optim::RMSprop opt;
  check_against_reference(opt, rmsprop_ref(opt.options()), {"square_avg"}, 40,
                          {.shapes = random_shapes(40), .rel_tol = 1e-5, .exact_buffers = true});
}

TEST(Optim, AdadeltaMatchesTorchSemantics) {
  uint64_t seed = 50;
  for (const optim::AdadeltaOptions& o :
       {optim::AdadeltaOptions{}, optim::AdadeltaOptions{.weight_decay = 0.1f},
        optim::AdadeltaOptions{.lr = 0.5f, .rho = 0.8f, .eps = 1e-4f, .weight_decay = 0.05f}}) {
    SCOPED_TRACE(::testing::Message() << "lr " << o.lr << " rho " << o.rho << " eps " << o.eps << " weight_decay "
                                      << o.weight_decay);
    optim::Adadelta opt(o);
    check_against_reference(opt, adadelta_ref(o), {"square_avg", "acc_delta"}, ++seed,
                            {.shapes = random_shapes(seed), .rel_tol = 1e-5, .exact_buffers = true});
  }
}

TEST(Optim, RMSpropAndAdadeltaRejectBadOptionsNamingThem) {
  using cuvi::testing::expect_error;
  expect_error<ValueError>([] { optim::RMSprop({.lr = -1.0f}); }, {"RMSprop", "lr", "-1"});
  expect_error<ValueError>([] { optim::RMSprop({.alpha = 1.5f}); }, {"RMSprop", "alpha", "1.5"});
  expect_error<ValueError>([] { optim::RMSprop({.eps = -1e-3f}); }, {"RMSprop", "eps", "-0.001"});
  expect_error<ValueError>([] { optim::RMSprop({.weight_decay = -2.0f}); }, {"RMSprop", "weight_decay", "-2"});
  expect_error<ValueError>([] { optim::RMSprop({.momentum = -0.5f}); }, {"RMSprop", "momentum", "-0.5"});
  expect_error<ValueError>([] { optim::Adadelta({.lr = -1.0f}); }, {"Adadelta", "lr", "-1"});
  expect_error<ValueError>([] { optim::Adadelta({.rho = 1.25f}); }, {"Adadelta", "rho", "1.25"});
  expect_error<ValueError>([] { optim::Adadelta({.eps = -1.0f}); }, {"Adadelta", "eps", "-1"});
  expect_error<ValueError>([] { optim::Adadelta({.weight_decay = -3.0f}); }, {"Adadelta", "weight_decay", "-3"});
}

// A row without gradient still has its averages decay (and, with momentum,
// its param move), so neither takes row-sparse gradients.
TEST(Optim, RMSpropAndAdadeltaUpdateDensely) {
  EXPECT_FALSE(optim::RMSprop().accepts_row_grads());
  EXPECT_FALSE(optim::RMSprop({.momentum = 0.9f, .centered = true}).accepts_row_grads());
  EXPECT_FALSE(optim::Adadelta().accepts_row_grads());
}

namespace {

// Copies of a state's tensors (state() hands out the live buffers).
std::map<std::string, std::map<std::string, std::vector<float>>> buffers_of(const OptimizerState& st) {
  std::map<std::string, std::map<std::string, std::vector<float>>> out;
  for (const auto& [n, bufs] : st.tensors)
    for (const auto& [b, t] : bufs) out[n][b] = t.to_vector();
  return out;
}

// Params in the store: one past the CPU parallel grain, a matrix, an empty
// one and a positive one (its leaf is the log).
const std::vector<std::pair<std::string, Shape>> kStoreParams = {
    {"big", {20001}}, {"mat", {4, 3}}, {"empty", {2, 0}}, {"pos", {5}}};

void declare_store_params(uint64_t seed) {
  param_store().clear();
  std::mt19937_64 gen(seed);
  for (const auto& [name, shape] : kStoreParams) {
    std::vector<float> init = host_normals(gen, numel_of(shape));
    if (name == "pos")
      for (float& x : init) x = std::exp(x);
    param_store().param(name, tensor(init, shape), name == "pos" ? constraints::positive : constraints::real);
  }
}

// Step k's gradients (the same for every run) set on the store's leaves,
// then the optimizer's step and the schedule's (given a metric from step k).
void store_step(optim::Optimizer& opt, int k) {
  std::mt19937_64 gen(1000 + static_cast<uint64_t>(k));
  optim::NamedParams named;
  for (const auto& [name, shape] : kStoreParams) {
    Tensor leaf = param_store().unconstrained(name);
    leaf.set_grad(tensor(host_normals(gen, numel_of(shape)), shape));
    named.push_back({name, leaf});
  }
  opt.step(named);
  if (auto* plateau = dynamic_cast<optim::ReduceLROnPlateau*>(&opt)) {
    // A metric that stalls now and then, so the schedule reduces the lr.
    plateau->scheduler_step(k % 3 == 0 ? 1.0f : 1.0f / static_cast<float>(k));
  }
}

// N steps, the store and the optimizer state saved to a file, M more steps;
// a store loaded from the file and a fresh optimizer loading its state,
// running the same M steps, end bit for bit where the first run did.
void expect_resumes_bitwise(const optim::Optimizer& proto) {
  const int N = 5, M = 7;
  const std::string path = ::testing::TempDir() + "cuvi_optim_resume_" + std::to_string(::getpid()) + ".bin";
  declare_store_params(7);
  auto opt = proto.clone();
  for (int k = 0; k < N; ++k) store_step(*opt, k);
  const OptimizerState saved = opt->state();
  param_store().save(path, &saved);
  for (int k = N; k < N + M; ++k) store_step(*opt, k);
  std::map<std::string, std::vector<float>> want;
  for (const auto& n : param_store().names()) want[n] = param_store().unconstrained(n).to_vector();
  const OptimizerState want_st = opt->state();
  const auto want_buf = buffers_of(want_st);

  param_store().clear();
  OptimizerState loaded;
  param_store().load(path, &loaded);
  std::remove(path.c_str());
  auto fresh = proto.clone();
  fresh->load_state(loaded);
  for (int k = N; k < N + M; ++k) store_step(*fresh, k);
  for (const auto& [n, v] : want) EXPECT_EQ(param_store().unconstrained(n).to_vector(), v) << proto.name() << " " << n;
  const OptimizerState got_st = fresh->state();
  EXPECT_EQ(got_st.optimizer, want_st.optimizer);
  EXPECT_EQ(got_st.scalars, want_st.scalars) << proto.name();
  EXPECT_EQ(buffers_of(got_st), want_buf) << proto.name();
  EXPECT_EQ(fresh->state().tensors.at("empty").size(), want_st.tensors.at("empty").size());
}

}  // namespace

TEST(Optim, RMSpropAndAdadeltaResumeBitwiseFromASavedStore) {
  for (bool centered : {false, true})
    for (float momentum : {0.0f, 0.9f})
      expect_resumes_bitwise(
          optim::RMSprop({.lr = 0.01f, .alpha = 0.9f, .weight_decay = 0.01f, .momentum = momentum, .centered = centered}));
  expect_resumes_bitwise(optim::Adadelta({.weight_decay = 0.01f}));
  // The schedule's counters travel in the same file (best, bad epochs,
  // cooldown, factor; the metric stalls every third step).
  expect_resumes_bitwise(optim::ReduceLROnPlateau(optim::RMSprop({.momentum = 0.5f, .centered = true}),
                                                  {.factor = 0.5f, .patience = 1, .cooldown = 1}));
  param_store().clear();
}

// A state that lacks a buffer the optimizer keeps is refused by name, and
// the old state stays.
TEST(Optim, RMSpropLoadStateNeedsEveryBufferItKeeps) {
  declare_store_params(8);
  optim::RMSprop plain({.lr = 0.01f});
  store_step(plain, 0);
  optim::RMSprop centered({.lr = 0.01f, .centered = true});
  store_step(centered, 0);
  const auto before = buffers_of(centered.state());
  cuvi::testing::expect_error<ValueError>([&] { centered.load_state(plain.state()); },
                                          {"RMSprop.load_state", "'big'", "grad_avg"});
  EXPECT_EQ(buffers_of(centered.state()), before);
  // The other way round the extra buffer is not read.
  EXPECT_NO_THROW(plain.load_state(centered.state()));
  param_store().clear();
}

// A step that throws (here: one parameter's gradient has the wrong shape,
// another's dtype is wrong) leaves every param, buffer and counter as it
// was, creates no state for a parameter it met for the first time, and
// training goes on afterwards.
TEST(Optim, RMSpropAndAdadeltaFailedStepChangesNothing) {
  const std::vector<std::shared_ptr<optim::Optimizer>> opts = {
      std::make_shared<optim::RMSprop>(optim::RMSpropOptions{.lr = 0.01f, .momentum = 0.9f, .centered = true}),
      std::make_shared<optim::Adadelta>(optim::AdadeltaOptions{.weight_decay = 0.1f})};
  for (const auto& opt : opts) {
    SCOPED_TRACE(opt->name());
    std::mt19937_64 gen(60);
    Tensor a = tensor(host_normals(gen, 6), {2, 3}), b = tensor(host_normals(gen, 4), {4});
    Tensor c = tensor(host_normals(gen, 3), {3});
    for (Tensor* t : {&a, &b, &c}) t->requires_grad_();
    for (int k = 0; k < 2; ++k) {
      a.set_grad(tensor(host_normals(gen, 6), {2, 3}));
      b.set_grad(tensor(host_normals(gen, 4), {4}));
      opt->step({{"a", a}, {"b", b}});
    }
    const auto a0 = a.detach().to_vector(), b0 = b.detach().to_vector(), c0 = c.detach().to_vector();
    const OptimizerState st0 = opt->state();
    const auto buf0 = buffers_of(st0);

    a.set_grad(tensor(host_normals(gen, 6), {2, 3}));
    b.set_grad(tensor(host_normals(gen, 4), {4}));
    c.set_grad(tensor(host_normals(gen, 3), {3}));
    Tensor bad = tensor({1.0f, 2.0f, 3.0f});
    bad.requires_grad_();
    bad.set_grad(tensor({1.0f, 2.0f}));
    cuvi::testing::expect_error<ShapeError>([&] { opt->step({{"a", a}, {"c", c}, {"bad", bad}, {"b", b}}); },
                                            {"'bad'", "[2]", "[3]"});
    Tensor ints = tensor_i64(std::vector<int64_t>{1, 2}, Shape{2});
    EXPECT_THROW(opt->step({{"a", a}, {"c", c}, {"ints", ints}}), DTypeError);

    EXPECT_EQ(a.detach().to_vector(), a0);
    EXPECT_EQ(b.detach().to_vector(), b0);
    EXPECT_EQ(c.detach().to_vector(), c0);
    const OptimizerState st1 = opt->state();
    EXPECT_EQ(st1.scalars, st0.scalars);
    EXPECT_EQ(buffers_of(st1), buf0);
    EXPECT_FALSE(st1.tensors.count("c"));

    opt->step({{"a", a}, {"c", c}, {"b", b}});
    EXPECT_NE(a.detach().to_vector(), a0);
    EXPECT_NE(c.detach().to_vector(), c0);
    EXPECT_EQ(opt->state().scalars.at("a").at("step"), 3);
    EXPECT_EQ(opt->state().scalars.at("c").at("step"), 1);
  }
}

// ---------------------------------------------------------------------------
// CosineAnnealingLR and ReduceLROnPlateau.

namespace {

// An optimizer with no single base learning rate (base_lr() is nullopt).
class NoBaseLr : public optim::Optimizer {
 public:
  std::string name() const override { return "NoBaseLr"; }
  std::shared_ptr<optim::Optimizer> clone() const override { return std::make_shared<NoBaseLr>(*this); }
  void step(const optim::NamedParams&) override {}
  OptimizerState state() const override { return {}; }
  void load_state(const OptimizerState&) override {}
};

}  // namespace

// torch's closed form, lr = eta_min + (base - eta_min) (1 + cos(pi e /
// T_max)) / 2, over base; past T_max it climbs back (period 2 T_max).
TEST(LRSchedule, CosineAnnealingLRFollowsTheClosedForm) {
  const double base = 0.1f, eta = 0.01f;  // as the floats they are stored as
  optim::CosineAnnealingLR s(optim::SGD({.lr = 0.1f}), {.T_max = 10, .eta_min = 0.01f});
  EXPECT_EQ(s.name(), "CosineAnnealingLR(SGD)");
  for (int e = 0; e <= 25; ++e) {
    const double want = (eta + (base - eta) * (1 + std::cos(std::numbers::pi * e / 10.0)) / 2) / base;
    EXPECT_EQ(s.epoch(), e);
    EXPECT_NEAR(s.factor(), want, 1e-15) << "epoch " << e;
    EXPECT_FLOAT_EQ(s.optimizer().lr_scale(), static_cast<float>(want)) << "epoch " << e;
    s.scheduler_step();
  }
  // eta_min 0: no base lr needed; the factor is exactly 0 at T_max.
  optim::CosineAnnealingLR z(NoBaseLr(), {.T_max = 4});
  for (int e = 0; e < 4; ++e) z.scheduler_step();
  EXPECT_EQ(z.factor(), 0.0);
  EXPECT_EQ(z.optimizer().lr_scale(), 0.0f);
  z.scheduler_step();
  EXPECT_NEAR(z.factor(), (1 + std::cos(std::numbers::pi * 5 / 4.0)) / 2, 1e-15);
  // The epoch round-trips through the state.
  optim::CosineAnnealingLR t(optim::Adam({.lr = 0.02f}), {.T_max = 7, .eta_min = 1e-3f});
  for (int e = 0; e < 5; ++e) t.scheduler_step();
  optim::CosineAnnealingLR u(optim::Adam({.lr = 0.02f}), {.T_max = 7, .eta_min = 1e-3f});
  u.load_state(t.state());
  EXPECT_EQ(u.epoch(), 5);
  EXPECT_EQ(u.factor(), t.factor());
  EXPECT_EQ(u.optimizer().lr_scale(), t.optimizer().lr_scale());

  using cuvi::testing::expect_error;
  expect_error<ValueError>([] { optim::CosineAnnealingLR(optim::SGD(), {}); }, {"CosineAnnealingLR", "T_max", "0"});
  expect_error<ValueError>([] { optim::CosineAnnealingLR(optim::SGD(), {.T_max = 3, .eta_min = -1.0f}); },
                           {"CosineAnnealingLR", "eta_min", "-1"});
  expect_error<ValueError>([] { optim::CosineAnnealingLR(NoBaseLr(), {.T_max = 3, .eta_min = 0.1f}); },
                           {"CosineAnnealingLR", "NoBaseLr", "reports none"});
  expect_error<ValueError>([] { optim::CosineAnnealingLR(optim::SGD({.lr = 0.0f}), {.T_max = 3, .eta_min = 0.1f}); },
                           {"CosineAnnealingLR", "SGD", "is 0"});
}

namespace {

// Feeds metrics to a ReduceLROnPlateau and compares its factor after each
// with a trace worked out by hand from torch's rules (comments per test).
void expect_plateau_trace(optim::ReduceLROnPlateau& s, const std::vector<float>& metrics,
                          const std::vector<double>& factors) {
  ASSERT_EQ(metrics.size(), factors.size());
  for (size_t e = 0; e < metrics.size(); ++e) {
    s.scheduler_step(metrics[e]);
    EXPECT_EQ(s.epoch(), static_cast<int64_t>(e + 1));
    EXPECT_NEAR(s.factor(), factors[e], 1e-15 * factors[e]) << "epoch " << e + 1 << " metric " << metrics[e];
    EXPECT_EQ(s.optimizer().lr_scale(), static_cast<float>(s.factor())) << "epoch " << e + 1;
  }
}

}  // namespace

// mode min, rel threshold 0.1 (an improvement is a value below 0.9 best),
// patience 2, cooldown 1, factor 0.5, min_lr 0.02 at base lr 0.1:
//   e1 10: best 10 | e2 9.5, e3 9 (not < 9), e4 9.2: 3 bad > 2: lr .05,
//   cooldown 1 | e5 8.9 < 9: best 8.9 (cooldown -> 0) | e6..e8 9: lr .025
//   | e9 100: bad, but in cooldown | e10..e12: lr max(.0125, .02) = .02 |
//   e13 cooldown | e14..e16: max(.01, .02) = .02 lowers nothing: no change.
TEST(LRSchedule, ReduceLROnPlateauMinRelWithPatienceCooldownAndMinLr) {
  optim::ReduceLROnPlateau s(optim::SGD({.lr = 0.1f}),
                             {.factor = 0.5f, .patience = 2, .threshold = 0.1f, .cooldown = 1, .min_lr = 0.02f});
  EXPECT_EQ(s.name(), "ReduceLROnPlateau(SGD)");
  EXPECT_EQ(s.factor(), 1.0);
  const double floor = double(0.02f) / double(0.1f);
  expect_plateau_trace(s, {10, 9.5f, 9, 9.2f, 8.9f, 9, 9, 9, 100, 100, 100, 100, 100, 100, 100, 100},
                       {1, 1, 1, .5, .5, .5, .5, .25, .25, .25, .25, floor, floor, floor, floor, floor});
  EXPECT_EQ(s.best(), 8.9f);
  EXPECT_EQ(s.cooldown_counter(), 1);  // set again by the reduction that lowered nothing
  EXPECT_EQ(s.num_bad_epochs(), 0);
}

// mode max, abs threshold 0.5, patience 0, cooldown 2, factor 0.1, eps
// 1e-8 at base lr 0.01:
//   e1 1: best 1 | e2 1.4 (not > 1.5): lr 1e-3, cooldown 2 | e3 1.6 > 1.5:
//   best 1.6 | e4 0: cooldown | e5 0: lr 1e-4 | e6, e7: cooldown | e8 2.2 >
//   2.1: best | e9 2.3 (not > 2.7): 1e-5 | then a reduction every third
//   epoch: e12 1e-6, e15 1e-7, e18 1e-8; at e21 the next (1e-9) would
//   lower the lr by 9e-9 <= eps: it stays.
TEST(LRSchedule, ReduceLROnPlateauMaxAbsWithCooldownAndEps) {
  optim::ReduceLROnPlateau s(optim::Adam({.lr = 0.01f}), {.mode = optim::PlateauMode::kMax, .factor = 0.1f,
                                                          .patience = 0, .threshold = 0.5f,
                                                          .threshold_mode = optim::ThresholdMode::kAbs,
                                                          .cooldown = 2});
  const double g = 0.1f;
  std::vector<float> metrics = {1, 1.4f, 1.6f, 0, 0, 0, 0, 2.2f, 2.3f};
  std::vector<double> factors = {1, g, g, g, g * g, g * g, g * g, g * g, g * g * g};
  double f = g * g * g;
  for (int e = 10; e <= 24; ++e) {
    metrics.push_back(0);
    if (e % 3 == 0 && e <= 18) f *= g;
    factors.push_back(f);
  }
  expect_plateau_trace(s, metrics, factors);
  EXPECT_EQ(s.best(), 2.2f);  // 2.3 was no improvement (not > 2.7)
}

// mode min, abs threshold 1, patience 1, no cooldown, factor 0.5:
//   e1 5: best 5 | e2 4.5 (not < 4): bad | e3 3.9 < 4: best | e4 3, e5 3:
//   2 bad: lr / 2 | e6 NaN (never an improvement), e7 3: lr / 2.
TEST(LRSchedule, ReduceLROnPlateauMinAbsAndNaN) {
  optim::ReduceLROnPlateau s(optim::SGD({.lr = 0.1f}), {.factor = 0.5f, .patience = 1, .threshold = 1.0f,
                                                        .threshold_mode = optim::ThresholdMode::kAbs});
  expect_plateau_trace(s, {5, 4.5f, 3.9f, 3, 3, std::numeric_limits<float>::quiet_NaN(), 3},
                       {1, 1, 1, 1, .5, .5, .25});
  EXPECT_EQ(s.best(), 3.9f);
}

// mode max, rel threshold 0.1 (an improvement is above 1.1 best): with a
// negative best, torch's rule accepts a value below it:
//   e1 -2: best | e2 -1.9 > -2.2: best | e3 -2.05 > -2.09: best -2.05 (a
//   worse value) | e4 -2.3 (not > -2.255), e5 -2.3: 2 bad: lr / 2.
TEST(LRSchedule, ReduceLROnPlateauMaxRelAsTorchForNegativeValues) {
  optim::ReduceLROnPlateau s(optim::SGD({.lr = 0.1f}), {.mode = optim::PlateauMode::kMax, .factor = 0.5f,
                                                        .patience = 1, .threshold = 0.1f});
  expect_plateau_trace(s, {-2, -1.9f, -2.05f, -2.3f, -2.3f}, {1, 1, 1, 1, .5});
  EXPECT_EQ(s.best(), -2.05f);
}

TEST(LRSchedule, ReduceLROnPlateauNeedsAMetricAndOthersTakeNone) {
  using cuvi::testing::expect_error;
  optim::ReduceLROnPlateau s(optim::SGD({.lr = 0.1f}), {});
  expect_error<ValueError>([&] { s.scheduler_step(); }, {"ReduceLROnPlateau(SGD)", "metric"});
  optim::LRScheduler& base = s;
  expect_error<ValueError>([&] { base.scheduler_step(); }, {"ReduceLROnPlateau(SGD)", "metric"});
  EXPECT_EQ(s.epoch(), 0);
  base.scheduler_step(2.0f);  // through the base class, as SVI users hold it
  EXPECT_EQ(s.epoch(), 1);
  EXPECT_EQ(s.best(), 2.0);
  optim::StepLR step(optim::SGD({.lr = 0.1f}), {.step_size = 2});
  expect_error<ValueError>([&] { step.scheduler_step(1.5f); }, {"StepLR(SGD)", "no metric", "1.5"});
  EXPECT_EQ(step.epoch(), 0);

  expect_error<ValueError>([] { optim::ReduceLROnPlateau(optim::SGD(), {.factor = 1.0f}); },
                           {"ReduceLROnPlateau", "factor", "1"});
  expect_error<ValueError>([] { optim::ReduceLROnPlateau(optim::SGD(), {.patience = -1}); },
                           {"ReduceLROnPlateau", "patience", "-1"});
  expect_error<ValueError>([] { optim::ReduceLROnPlateau(optim::SGD(), {.cooldown = -2}); },
                           {"ReduceLROnPlateau", "cooldown", "-2"});
  expect_error<ValueError>([] { optim::ReduceLROnPlateau(optim::SGD(), {.min_lr = -0.5f}); },
                           {"ReduceLROnPlateau", "min_lr", "-0.5"});
  // min_lr and eps are rates: they need the inner optimizer's base lr.
  expect_error<ValueError>([] { optim::ReduceLROnPlateau(NoBaseLr(), {}); }, {"ReduceLROnPlateau", "NoBaseLr"});
  EXPECT_NO_THROW(optim::ReduceLROnPlateau(NoBaseLr(), {.eps = 0.0f}));
}

// best (also the initial infinity), the bad-epoch and cooldown counters,
// the factor and the epoch round-trip through state()/load_state(); the
// copy then follows the same trace. A partial or bad schedule state is
// refused and changes nothing.
TEST(LRSchedule, ReduceLROnPlateauStateRoundTrips) {
  const optim::ReduceLROnPlateauOptions o{.factor = 0.5f, .patience = 2, .cooldown = 3};
  optim::ReduceLROnPlateau fresh(optim::SGD({.lr = 0.1f}), o);
  optim::ReduceLROnPlateau copy0(optim::SGD({.lr = 0.1f}), o);
  copy0.load_state(fresh.state());
  EXPECT_EQ(copy0.best(), std::numeric_limits<double>::infinity());

  optim::ReduceLROnPlateau s(optim::SGD({.lr = 0.1f}), o);
  for (float m : {3.0f, 2.0f, 2.5f, 2.5f, 2.5f, 2.5f}) s.scheduler_step(m);  // reduced at e5, cooling down
  ASSERT_EQ(s.factor(), 0.5);
  ASSERT_EQ(s.cooldown_counter(), 2);
  const OptimizerState st = s.state();
  const auto& m = st.scalars.at(optim::LRScheduler::kStateKey);
  EXPECT_EQ(m.at("epoch"), 6);
  EXPECT_EQ(m.at("best"), 2.0);
  EXPECT_EQ(m.at("num_bad_epochs"), 0);
  EXPECT_EQ(m.at("cooldown_counter"), 2);
  EXPECT_EQ(m.at("factor"), 0.5);
  optim::ReduceLROnPlateau t(optim::SGD({.lr = 0.1f}), o);
  t.load_state(st);
  EXPECT_EQ(t.epoch(), 6);
  EXPECT_EQ(t.best(), 2.0);
  EXPECT_EQ(t.cooldown_counter(), 2);
  EXPECT_EQ(t.factor(), 0.5);
  EXPECT_EQ(t.optimizer().lr_scale(), 0.5f);
  for (float x : {2.5f, 2.5f, 2.5f, 2.5f, 2.5f, 1.0f, 2.0f}) {
    s.scheduler_step(x);
    t.scheduler_step(x);
    EXPECT_EQ(t.factor(), s.factor());
    EXPECT_EQ(t.num_bad_epochs(), s.num_bad_epochs());
    EXPECT_EQ(t.cooldown_counter(), s.cooldown_counter());
  }
  EXPECT_EQ(t.state().scalars, s.state().scalars);

  using cuvi::testing::expect_error;
  OptimizerState partial = st;
  partial.scalars[optim::LRScheduler::kStateKey].erase("best");
  expect_error<ValueError>([&] { t.load_state(partial); }, {"ReduceLROnPlateau(SGD).load_state", "3 of"});
  OptimizerState bad = st;
  bad.scalars[optim::LRScheduler::kStateKey]["num_bad_epochs"] = -1;
  expect_error<ValueError>([&] { t.load_state(bad); }, {"num_bad_epochs", "-1"});
  bad = st;
  bad.scalars[optim::LRScheduler::kStateKey]["factor"] = std::numeric_limits<double>::quiet_NaN();
  expect_error<ValueError>([&] { t.load_state(bad); }, {"factor", "nan"});
  EXPECT_EQ(t.state().scalars, s.state().scalars);
  EXPECT_EQ(t.optimizer().lr_scale(), s.optimizer().lr_scale());
  // A state without the schedule's entry loads as a fresh schedule.
  OptimizerState none = st;
  none.scalars.erase(optim::LRScheduler::kStateKey);
  t.load_state(none);
  EXPECT_EQ(t.epoch(), 0);
  EXPECT_EQ(t.factor(), 1.0);
  EXPECT_EQ(t.best(), std::numeric_limits<double>::infinity());
}

// A schedule wrapping a schedule (StepLR over ExponentialLR over SGD):
// each level keeps its own epoch through state()/load_state() (the inner
// one's entries sit one level down, under kStateKey + "/inner"), so the
// loaded copy's SGD runs at the same rate 0.1 * 0.5^floor(3/2) * 0.9^5.
TEST(LRSchedule, NestedSchedulesKeepTheirOwnEpochs) {
  const auto make = [] {
    return optim::StepLR(optim::ExponentialLR(optim::SGD({.lr = 0.1f}), {.gamma = 0.9f}),
                         {.step_size = 2, .gamma = 0.5f});
  };
  auto outer = make();
  auto& inner = dynamic_cast<optim::LRScheduler&>(outer.optimizer());
  for (int i = 0; i < 3; ++i) outer.scheduler_step();
  for (int i = 0; i < 5; ++i) inner.scheduler_step();
  outer.step({});  // applies the outer factor to the inner schedule, and the inner one's to SGD
  const float want = static_cast<float>(0.5 * std::pow(0.9, 5));
  EXPECT_FLOAT_EQ(inner.optimizer().lr_scale(), want);

  const OptimizerState st = outer.state();
  const std::string key = optim::LRScheduler::kStateKey;
  EXPECT_EQ(st.scalars.at(key).at("epoch"), 3);
  EXPECT_EQ(st.scalars.at(key + "/inner").at("epoch"), 5);

  auto copy = make();
  copy.load_state(st);
  auto& copy_inner = dynamic_cast<optim::LRScheduler&>(copy.optimizer());
  EXPECT_EQ(copy.epoch(), 3);
  EXPECT_EQ(copy_inner.epoch(), 5);
  copy.step({});
  EXPECT_FLOAT_EQ(copy_inner.optimizer().lr_scale(), want);
  EXPECT_EQ(copy.state().scalars, st.scalars);

  // Three levels: ReduceLROnPlateau's counters stay with their own level.
  optim::ReduceLROnPlateau top(make(), {.factor = 0.5f, .patience = 0});
  top.scheduler_step(2.0f);
  top.scheduler_step(3.0f);  // no improvement: factor 0.5
  const OptimizerState st3 = top.state();
  EXPECT_EQ(st3.scalars.at(key).at("factor"), 0.5);
  EXPECT_EQ(st3.scalars.at(key).at("epoch"), 2);
  EXPECT_EQ(st3.scalars.at(key + "/inner").at("epoch"), 0);
  EXPECT_EQ(st3.scalars.at(key + "/inner").count("factor"), 0u);
  EXPECT_EQ(st3.scalars.at(key + "/inner/inner").at("epoch"), 0);
  optim::ReduceLROnPlateau top2(make(), {.factor = 0.5f, .patience = 0});
  top2.load_state(st3);
  EXPECT_EQ(top2.factor(), 0.5);
  EXPECT_EQ(top2.state().scalars, st3.scalars);
}
