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
#include <map>
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
// then the optimizer's step.
void store_step(optim::Optimizer& opt, int k) {
  std::mt19937_64 gen(1000 + static_cast<uint64_t>(k));
  optim::NamedParams named;
  for (const auto& [name, shape] : kStoreParams) {
    Tensor leaf = param_store().unconstrained(name);
    leaf.set_grad(tensor(host_normals(gen, numel_of(shape)), shape));
    named.push_back({name, leaf});
  }
  opt.step(named);
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
