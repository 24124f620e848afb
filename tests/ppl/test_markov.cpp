// markov (Pyro's pyro.markov) under enumeration: an HMM written as a loop
// of enumerated sample sites is summed out exactly by TraceEnum_ELBO with
// the loop's dims recycled, so chains longer than a tensor's 8 dims work.
// Checked against dist::DiscreteHMM's forward algorithm (loss and
// gradients), a float64 brute force over every path (a second-order chain,
// history 2), and infer_discrete's MAP path (Viterbi) and posterior draws
// against the exact path posterior. Runs on the default device.
//
// Tolerances: the float32 losses are sums of a few hundred log-sum-exps of
// O(1)-O(10) terms, each within a few ulps of float64; relative 1e-5 is
// > 10x that rounding, and a wrong contraction (a factor dropped or
// counted twice) moves a loss by > 0.1.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "ppl/hmm.hpp"
#include "ppl/infer.hpp"
#include "ppl/poutine.hpp"

using namespace cuvi;
using namespace cuvi::testing;
namespace P = cuvi::poutine;

namespace {

// Rows of table [S, K] at the state values z (any shape): z.shape + [K].
Tensor rows_at(const Tensor& table, const Tensor& z) {
  Shape s = z.shape();
  s.push_back(table.size(-1));
  return index_select(table, 0, z.to_int64().reshape({z.numel()})).reshape(s);
}
// Entries of v [S] at the state values z: z's shape.
Tensor at(const Tensor& v, const Tensor& z) {
  return index_select(v, 0, z.to_int64().reshape({z.numel()})).reshape(z.shape());
}

// The HMM of DiscreteHMM's convention (z_{-1} ~ init, then T transitions,
// Normal(locs[z_t], 1) observations), n sequences [n, T] in a plate.
struct Hmm {
  int64_t S = 3, T = 12;
  Tensor y;  // [n, T]
  void model() const {
    const Device dev = y.device();
    Tensor init = param("init", tensor({0.2f, -0.1f, 0.4f}, dev));
    Tensor trans = param("trans", tensor({1.5f, 0.1f, -0.3f, 0.2f, 1.1f, 0.0f, -0.5f, 0.3f, 1.8f}, {3, 3}, dev));
    Tensor locs = param("locs", tensor({-1.0f, 0.5f, 2.0f}, dev));
    auto seqs = plate("seqs", y.size(0), 0, -1);
    Tensor z = sample("z_init", dist::Categorical::from_logits(init), Infer{"parallel"});
    for (int64_t t : markov(T)) {
      const std::string k = std::to_string(t);
      z = sample("z_" + k, dist::Categorical::from_logits(rows_at(trans, z)), Infer{"parallel"});
      sample("y_" + k, dist::Normal(at(locs, z), 1.0f), y.narrow(1, t, 1).reshape({y.size(0)}));
    }
  }
};

// The enumeration dims a run of the model takes, and every site's dim.
std::map<std::string, int> enum_dims(const std::function<void()>& model, int first) {
  P::EnumMessenger e(first);
  const Trace tr = P::trace([&] {
                     HandlerScope s(&e);
                     model();
                   }).get_trace();
  std::map<std::string, int> out;
  for (const Site& s : tr.sites())
    if (s.enum_dim != 0) out[s.name] = s.enum_dim;
  return out;
}

TEST(Markov, RecyclesEnumerationDims) {
  set_seed(1);
  param_store().clear();
  Hmm h{.S = 3, .T = 40, .y = randn({4, 40})};
  const auto dims = enum_dims([&] { h.model(); }, -2);
  std::set<int> used;
  for (const auto& [name, d] : dims) used.insert(d);
  // z_init holds -2 throughout (outside the loop); the chain alternates
  // between two more dims.
  EXPECT_EQ(used, (std::set<int>{-2, -3, -4}));
  EXPECT_EQ(dims.at("z_init"), -2);
  for (int t = 2; t < 40; ++t)
    EXPECT_EQ(dims.at("z_" + std::to_string(t)), dims.at("z_" + std::to_string(t - 2))) << t;
  EXPECT_NE(dims.at("z_0"), dims.at("z_1"));
  // Without markov the same chain runs out of dims.
  auto flat = [&] {
    auto seqs = plate("seqs", 4, 0, -1);
    Tensor z = sample("z_init", dist::Categorical(ones({3}) / 3.0f), Infer{"parallel"});
    for (int t = 0; t < 40; ++t)
      z = sample("z_" + std::to_string(t), dist::Categorical(rows_at(ones({3, 3}) / 3.0f, z)), Infer{"parallel"});
  };
  EXPECT_THROW(enum_dims(flat, -2), ShapeError);
}

TEST(Markov, HistoryTwoKeepsThreeDimsLive) {
  auto model = [] {
    Tensor a = sample("a", dist::Bernoulli(0.5f), Infer{"parallel"});
    Tensor b = sample("b", dist::Bernoulli(0.5f), Infer{"parallel"});
    for (int64_t t : markov(10, 2)) {
      Tensor c = sample("c_" + std::to_string(t), dist::Bernoulli(0.3f + 0.2f * a + 0.1f * b), Infer{"parallel"});
      a = b;
      b = c;
    }
  };
  const auto dims = enum_dims(model, -1);
  std::set<int> used;
  for (const auto& [name, d] : dims) used.insert(d);
  EXPECT_EQ(used.size(), 5u);  // a, b, and three for the loop
  for (int t = 3; t < 10; ++t)
    EXPECT_EQ(dims.at("c_" + std::to_string(t)), dims.at("c_" + std::to_string(t - 3))) << t;
}

// -ELBO with an empty guide is -log p(y): the forward algorithm of
// DiscreteHMM on the same parameters, and so are its gradients.
TEST(Markov, HmmLossAndGradientsMatchDiscreteHMM) {
  set_seed(2);
  param_store().clear();
  Hmm h{.S = 3, .T = 12, .y = 1.5f * randn({5, 12})};
  auto model = [&] { h.model(); };
  auto guide = [] {};
  const infer::ELBOResult r = infer::TraceEnum_ELBO({.max_plate_nesting = 1}).compute(model, guide);
  r.surrogate.backward();
  std::map<std::string, std::vector<float>> g_enum;
  for (const char* n : {"init", "trans", "locs"}) {
    g_enum[n] = param_store().unconstrained(n).grad().to_vector();
    param_store().unconstrained(n).zero_grad();
  }
  const Tensor init = param_store().unconstrained("init"), trans = param_store().unconstrained("trans"),
               locs = param_store().unconstrained("locs");
  const Tensor lp = sum(dist::DiscreteHMM(init, trans, dist::Normal(locs, 1.0f), 12).log_prob(h.y));
  lp.backward();
  const double want = -static_cast<double>(lp.item());
  EXPECT_NEAR(r.loss.item(), want, 1e-5 * std::fabs(want));
  for (const char* n : {"init", "trans", "locs"}) {
    const auto g = param_store().unconstrained(n).grad().to_vector();
    ASSERT_EQ(g.size(), g_enum[n].size());
    for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g_enum[n][i], -g[i], 1e-4 * (1 + std::fabs(g[i]))) << n << i;
  }
}

// A second-order chain (history 2) without plates: every one of the 2^T
// paths summed in float64.
TEST(Markov, SecondOrderChainMatchesBruteForce) {
  const int T = 6;
  const std::vector<float> obs = {0.3f, 1.7f, -0.4f, 1.1f, 0.9f, -1.2f};
  // p(c_t = 1 | c_{t-2}, c_{t-1}) = q[2 c_{t-2} + c_{t-1}]; c_{-2} = c_{-1} = 0.
  const std::vector<float> q = {0.2f, 0.7f, 0.4f, 0.9f};
  auto model = [&] {
    const Tensor qt = tensor(q);
    Tensor a = zeros({}), b = zeros({});
    for (int64_t t : markov(T, 2)) {
      const Tensor p1 = at(qt, a * 2.0f + b);
      Tensor c = sample("c_" + std::to_string(t), dist::Bernoulli(p1), Infer{"parallel"});
      sample("x_" + std::to_string(t), dist::Normal(c * 1.5f - 0.5f, 1.0f), full({}, obs[static_cast<size_t>(t)]));
      a = b;
      b = c;
    }
  };
  const infer::ELBOResult r = infer::TraceEnum_ELBO({.max_plate_nesting = 0}).compute(model, [] {});
  std::vector<double> paths;
  for (int m = 0; m < (1 << T); ++m) {
    double lp = 0;
    int a = 0, b = 0;
    for (int t = 0; t < T; ++t) {
      const int c = (m >> t) & 1;
      const double p1 = q[static_cast<size_t>(2 * a + b)];
      lp += std::log(c ? p1 : 1 - p1);
      const double mu = c * 1.5 - 0.5, d = obs[static_cast<size_t>(t)] - mu;
      lp += -0.5 * std::log(2 * M_PI) - 0.5 * d * d;
      a = b;
      b = c;
    }
    paths.push_back(lp);
  }
  const double want = -lse(paths);
  EXPECT_NEAR(r.loss.item(), want, 1e-5 * std::fabs(want));
}

// One sequence of a two-state HMM: the joint of every path in float64
// gives the MAP path and the path posterior.
struct SmallHmm {
  int T = 7;
  std::vector<float> y = {0.1f, 1.9f, 2.2f, -0.3f, 0.4f, 2.5f, 1.7f};
  std::vector<float> init = {0.6f, 0.4f};               // p(z_0)
  std::vector<float> trans = {0.8f, 0.2f, 0.3f, 0.7f};  // rows: from
  std::vector<float> locs = {0.0f, 2.0f};
  // n identical copies of the sequence in a plate (independent draws).
  void model(int64_t n) const {
    auto seqs = plate("seqs", n, 0, -1);
    Tensor z;
    for (int64_t t : markov(T)) {
      const dist::Categorical prior =
          t == 0 ? dist::Categorical(tensor(init)) : dist::Categorical(rows_at(tensor(trans, {2, 2}), z));
      z = sample("z_" + std::to_string(t), prior, Infer{"parallel"});
      sample("y_" + std::to_string(t), dist::Normal(at(tensor(locs), z), 0.8f),
             full({n}, y[static_cast<size_t>(t)]));
    }
  }
  double path_log_joint(int m) const {
    double lp = 0;
    int prev = 0;
    for (int t = 0; t < T; ++t) {
      const int z = (m >> t) & 1;
      lp += std::log(t == 0 ? init[static_cast<size_t>(z)] : trans[static_cast<size_t>(2 * prev + z)]);
      const double d = (y[static_cast<size_t>(t)] - locs[static_cast<size_t>(z)]) / 0.8;
      lp += -0.5 * std::log(2 * M_PI) - std::log(0.8) - 0.5 * d * d;
      prev = z;
    }
    return lp;
  }
};

// Temperature 0 is the joint MAP (max-product, Viterbi). These numbers
// are chosen so that it differs from the path that picks each state's
// marginal argmax given the later ones (what sum-product then argmax
// gives: 1 1 0 0 0 here, against the Viterbi path 1 1 1 0 0); the best
// path's log joint leads the next by 0.47.
TEST(Markov, InferDiscreteMapIsTheViterbiPath) {
  const SmallHmm h{.T = 5,
                   .y = {2.2f, 1.1f, 1.2f, 0.7f, -0.8f},
                   .init = {0.32f, 0.68f},
                   .trans = {0.89f, 0.11f, 0.24f, 0.76f},
                   .locs = {0.0f, 2.0f}};
  int best = 0;
  for (int m = 1; m < (1 << h.T); ++m)
    if (h.path_log_joint(m) > h.path_log_joint(best)) best = m;
  EXPECT_EQ(best, 0b00111);  // z = 1 1 1 0 0 (bit t is z_t)
  const Trace tr = P::trace(infer::infer_discrete([&] { h.model(3); }, -2, 0)).get_trace();
  for (int t = 0; t < h.T; ++t) {
    const auto v = tr.site("z_" + std::to_string(t)).value.to(Device::cpu()).to_int64().to_vector_i64();
    ASSERT_EQ(v.size(), 3u);
    for (int64_t x : v) EXPECT_EQ(x, (best >> t) & 1) << "step " << t;
  }
}

// Posterior draws (temperature 1): 4000 sequences at once; the path counts
// against the exact path posterior by a chi-square test over the paths
// with expected count >= 5 (the rest pooled), at the 0.001 level.
TEST(Markov, InferDiscreteDrawsFollowThePathPosterior) {
  set_seed(7);
  const SmallHmm h;
  const int n = 4000, paths = 1 << h.T;
  std::vector<double> lj(paths);
  for (int m = 0; m < paths; ++m) lj[static_cast<size_t>(m)] = h.path_log_joint(m);
  const double z = lse(lj);
  const Trace tr = P::trace(infer::infer_discrete([&] { h.model(n); }, -2, 1)).get_trace();
  std::vector<int> path(n, 0);
  for (int t = 0; t < h.T; ++t) {
    const auto v = tr.site("z_" + std::to_string(t)).value.to(Device::cpu()).to_int64().to_vector_i64();
    ASSERT_EQ(v.size(), static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) path[static_cast<size_t>(i)] |= static_cast<int>(v[static_cast<size_t>(i)]) << t;
  }
  std::vector<int> count(paths, 0);
  for (int p : path) ++count[static_cast<size_t>(p)];
  double chi2 = 0, pooled_e = 0, pooled_o = 0;
  int cells = 0;
  for (int m = 0; m < paths; ++m) {
    const double e = n * std::exp(lj[static_cast<size_t>(m)] - z);
    if (e < 5) {
      pooled_e += e;
      pooled_o += count[static_cast<size_t>(m)];
      continue;
    }
    chi2 += (count[static_cast<size_t>(m)] - e) * (count[static_cast<size_t>(m)] - e) / e;
    ++cells;
  }
  if (pooled_e > 0) {
    chi2 += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
    ++cells;
  }
  ASSERT_GE(cells, 5);
  // Upper 0.001 quantile of chi-square(k) by the Wilson-Hilferty approximation.
  const double k = cells - 1, zq = 3.090;
  const double crit = k * std::pow(1 - 2 / (9 * k) + zq * std::sqrt(2 / (9 * k)), 3);
  EXPECT_LT(chi2, crit) << cells << " cells";
}

TEST(Markov, Errors) {
  EXPECT_THROW(markov(-1), ValueError);
  EXPECT_THROW(markov(3, -1), ValueError);
  // A loop iterated from inside itself.
  Markov m(3);
  EXPECT_THROW(
      {
        for (int64_t t : m) {
          (void)t;
          for (int64_t u : m) (void)u;
        }
      },
      ValueError);
}

}  // namespace
