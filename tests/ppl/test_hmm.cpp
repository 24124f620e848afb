// DiscreteHMM (Pyro's): log_prob and filter against a float64 sum over
// every state path, gradients by central differences, ancestral samples
// against the exact joint law of the first two observations, shape errors,
// and use as an observed site in a plate. Runs on the default device (cpu,
// and cuda:0 in the gpu suite).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "../examples/hmm/hmm.hpp"
#include "gradcheck.hpp"
#include "ppl/infer.hpp"
#include "ppl/optim.hpp"
#include "ppl/hmm.hpp"
#include "ppl/poutine.hpp"

using namespace cuvi;
using namespace cuvi::testing;

namespace {

constexpr double kLog2Pi = 1.8378770664093453;

std::vector<double> as_double(const Tensor& t) {
  const auto v = t.to_vector();
  return {v.begin(), v.end()};
}

// log softmax of the rows of length n in v, in double.
std::vector<double> log_normalise(std::vector<double> v, size_t n) {
  for (size_t r = 0; r < v.size() / n; ++r) {
    double m = -1e300, s = 0;
    for (size_t i = 0; i < n; ++i) m = std::max(m, v[r * n + i]);
    for (size_t i = 0; i < n; ++i) s += std::exp(v[r * n + i] - m);
    for (size_t i = 0; i < n; ++i) v[r * n + i] -= m + std::log(s);
  }
  return v;
}

// One HMM in float64: log p0 [S], log A [Tt][S][S] (Tt 1 or T), and the
// observations' log-likelihoods L[t][s].
struct Ref {
  size_t S, T;
  std::vector<double> init, trans;  // normalised
  size_t tt;
  std::vector<double> L;  // [T][S]
  double trans_at(size_t t, size_t i, size_t j) const { return trans[((tt == 1 ? 0 : t) * S + i) * S + j]; }
  // Log-weights of every path (z_{-1}, z_0, ..., z_{T-1}) summed: either all
  // of them, or those ending in state `last`.
  double log_sum(int last = -1) const {
    std::vector<size_t> z(T + 1, 0);
    double m = -1e300;
    std::vector<double> w;
    while (true) {
      if (last < 0 || z[T] == static_cast<size_t>(last)) {
        double lw = init[z[0]];
        for (size_t t = 0; t < T; ++t) lw += trans_at(t, z[t], z[t + 1]) + L[t * S + z[t + 1]];
        w.push_back(lw);
        m = std::max(m, lw);
      }
      size_t k = 0;
      while (k <= T && ++z[k] == S) z[k++] = 0;
      if (k > T) break;
    }
    double s = 0;
    for (double x : w) s += std::exp(x - m);
    return m + std::log(s);
  }
};

// Normal(loc[t or 0][s], scale[s]) observations of x[t], in float64.
std::vector<double> normal_lik(const std::vector<double>& x, const std::vector<double>& loc, size_t lt,
                               const std::vector<double>& scale, size_t S) {
  const size_t T = x.size();
  std::vector<double> L(T * S);
  for (size_t t = 0; t < T; ++t)
    for (size_t s = 0; s < S; ++s) {
      const double z = (x[t] - loc[(lt == 1 ? 0 : t) * S + s]) / scale[s];
      L[t * S + s] = -0.5 * z * z - std::log(scale[s]) - 0.5 * kLog2Pi;
    }
  return L;
}

}  // namespace

TEST(DiscreteHMM, LogProbSumsEveryStatePath) {
  // Batches of 2 HMMs with Normal observations; T odd and even (the scan's
  // leftover step), 1, and time-varying transitions and observations.
  std::mt19937 gen(5);
  const int64_t S = 3;
  for (const int64_t T : {5, 4, 1}) {
    for (const bool varying : {false, true}) {
      const int64_t tt = varying ? T : 1;
      const Tensor init = random_tensor({2, S}, gen, -1.0f, 1.0f);
      const Tensor trans = random_tensor({tt, S, S}, gen, -2.0f, 2.0f);
      const Tensor loc = random_tensor({tt, S}, gen, -2.0f, 2.0f);
      const Tensor scale = random_tensor({S}, gen, 0.5f, 1.5f);
      const Tensor x = random_tensor({2, T}, gen, -2.0f, 2.0f);
      const dist::DiscreteHMM hmm(init, trans, dist::Normal(loc, scale), T);
      EXPECT_EQ(hmm.batch_shape(), (Shape{2}));
      EXPECT_EQ(hmm.event_shape(), (Shape{T}));
      const auto lp = hmm.log_prob(x).to_vector();
      ASSERT_EQ(lp.size(), 2u);
      const auto xs = as_double(x);
      for (size_t b = 0; b < 2; ++b) {
        const auto i0 = as_double(init);
        Ref ref{static_cast<size_t>(S), static_cast<size_t>(T),
                log_normalise({i0.begin() + b * S, i0.begin() + (b + 1) * S}, S),
                log_normalise(as_double(trans), S), static_cast<size_t>(tt),
                normal_lik({xs.begin() + b * T, xs.begin() + (b + 1) * T}, as_double(loc), static_cast<size_t>(tt),
                           as_double(scale), S)};
        const double want = ref.log_sum();
        EXPECT_NEAR(lp[b], want, 2e-5 * (1 + std::abs(want))) << "T " << T << " varying " << varying << " b " << b;
      }
    }
  }
}

TEST(DiscreteHMM, DiscreteAndVectorObservations) {
  std::mt19937 gen(6);
  const int64_t S = 2, T = 6, K = 4, D = 3;
  const Tensor init = random_tensor({S}, gen, -1.0f, 1.0f);
  const Tensor trans = random_tensor({S, S}, gen, -2.0f, 2.0f);  // the same every step
  // Categorical observations: int64 values.
  const Tensor probs = random_tensor({S, K}, gen, 0.1f, 1.0f);
  const Tensor x = tensor_i64({0, 3, 1, 1, 2, 0});
  const dist::DiscreteHMM hc(init, trans, dist::Categorical(probs), T);
  const auto pr = as_double(probs);
  std::vector<double> L(T * S);
  const std::vector<int64_t> xv{0, 3, 1, 1, 2, 0};
  for (size_t t = 0; t < T; ++t)
    for (size_t s = 0; s < S; ++s) {
      double tot = 0;
      for (size_t k = 0; k < K; ++k) tot += pr[s * K + k];
      L[t * S + s] = std::log(pr[s * K + static_cast<size_t>(xv[t])] / tot);
    }
  Ref ref{S, T, log_normalise(as_double(init), S), log_normalise(as_double(trans), S), 1, L};
  EXPECT_NEAR(hc.log_prob(x).item(), ref.log_sum(), 2e-5 * std::abs(ref.log_sum()));
  // Vector observations: Normal(...).to_event(1), values [T, D].
  const Tensor loc = random_tensor({S, D}, gen, -1.0f, 1.0f);
  const Tensor xd = random_tensor({T, D}, gen, -1.0f, 1.0f);
  const dist::DiscreteHMM hv(init, trans, dist::Normal(loc, 0.8f).to_event(1), T);
  EXPECT_EQ(hv.event_shape(), (Shape{T, D}));
  const auto lv = as_double(loc), xs = as_double(xd);
  for (size_t t = 0; t < T; ++t)
    for (size_t s = 0; s < S; ++s) {
      double l = 0;
      for (size_t d = 0; d < D; ++d) {
        const double z = (xs[t * D + d] - lv[s * D + d]) / 0.8;
        l += -0.5 * z * z - std::log(0.8) - 0.5 * kLog2Pi;
      }
      L[t * S + s] = l;
    }
  Ref refv{S, T, log_normalise(as_double(init), S), log_normalise(as_double(trans), S), 1, L};
  EXPECT_NEAR(hv.log_prob(xd).item(), refv.log_sum(), 2e-5 * std::abs(refv.log_sum()));
}

TEST(DiscreteHMM, GradientsOfEveryParameter) {
  std::mt19937 gen(7);
  const int64_t S = 3, T = 5;
  const Tensor x = random_tensor({2, T}, gen, -2.0f, 2.0f);
  gradcheck(
      [&](const std::vector<Tensor>& in) {
        return dist::DiscreteHMM(in[0], in[1], dist::Normal(in[2], in[3]), T).log_prob(x);
      },
      {random_tensor({2, S}, gen, -1.0f, 1.0f), random_tensor({T, S, S}, gen, -1.0f, 1.0f),
       random_tensor({S}, gen, -1.0f, 1.0f), random_tensor({S}, gen, 0.7f, 1.5f)});
  // And with respect to the value.
  gradcheck([&](const std::vector<Tensor>& in) {
    return dist::DiscreteHMM(zeros({S}), zeros({S, S}), dist::Normal(arange(S) - 1.0f, 1.0f), T).log_prob(in[0]);
  }, {x});
}

TEST(DiscreteHMM, FilterIsThePosteriorOfTheLastState) {
  std::mt19937 gen(8);
  const int64_t S = 3, T = 4;
  const Tensor init = random_tensor({S}, gen, -1.0f, 1.0f);
  const Tensor trans = random_tensor({S, S}, gen, -2.0f, 2.0f);
  const Tensor loc = random_tensor({S}, gen, -2.0f, 2.0f);
  const Tensor x = random_tensor({T}, gen, -2.0f, 2.0f);
  const dist::DiscreteHMM hmm(init, trans, dist::Normal(loc, 1.0f), T);
  const auto post = hmm.filter(x).probs().to_vector();
  Ref ref{S, T, log_normalise(as_double(init), S), log_normalise(as_double(trans), S), 1,
          normal_lik(as_double(x), as_double(loc), 1, {1.0, 1.0, 1.0}, S)};
  const double all = ref.log_sum();
  for (int s = 0; s < S; ++s) EXPECT_NEAR(post[static_cast<size_t>(s)], std::exp(ref.log_sum(s) - all), 1e-5);
}

TEST(DiscreteHMM, SamplesFollowTheJointLawOfTheFirstTwoSteps) {
  // Pearson's statistic of the n draws' (x_0, x_1) pairs against their
  // exact probabilities sum p0_i A_ij E_j,a A_jk E_k,b: K^2 - 1 = 8 degrees
  // of freedom, 26.12 is the 0.999 quantile.
  fresh(9);
  const int64_t S = 2, K = 3, T = 3, n = 20000;
  const std::vector<float> p0{0.3f, 0.7f}, A{0.9f, 0.1f, 0.2f, 0.8f}, E{0.6f, 0.3f, 0.1f, 0.1f, 0.2f, 0.7f};
  const dist::DiscreteHMM hmm(log(tensor(p0, {S})), log(tensor(A, {S, S})),
                              dist::Categorical(tensor(E, {S, K})), T);
  const Tensor xs = hmm.sample({n});
  ASSERT_EQ(xs.shape(), (Shape{n, T}));
  ASSERT_EQ(xs.dtype(), DType::kInt64);
  const auto v = xs.to_vector_i64();
  std::vector<double> count(K * K, 0.0);
  for (int64_t i = 0; i < n; ++i) count[static_cast<size_t>(v[i * T] * K + v[i * T + 1])] += 1;
  double chi2 = 0;
  for (int a = 0; a < K; ++a)
    for (int b = 0; b < K; ++b) {
      double p = 0;
      for (int i = 0; i < S; ++i)
        for (int j = 0; j < S; ++j)
          for (int k = 0; k < S; ++k) p += p0[i] * A[i * S + j] * E[j * K + a] * A[j * S + k] * E[k * K + b];
      const double e = p * n;
      chi2 += (count[a * K + b] - e) * (count[a * K + b] - e) / e;
    }
  EXPECT_LT(chi2, 26.12);
}

TEST(DiscreteHMM, ShapeErrorsNameTheArguments) {
  const dist::Normal obs(zeros({3}), 1.0f);
  expect_error<ShapeError>([&] { dist::DiscreteHMM(zeros({3}), zeros({3, 2}), obs, 4); },
                           {"transition_logits of shape [3, 2]", "3 states"});
  expect_error<ShapeError>([&] { dist::DiscreteHMM(zeros({2}), zeros({2, 2}), obs, 4); },
                           {"observation_dist Normal has batch shape [3]", "S = 2"});
  expect_error<ValueError>([&] { dist::DiscreteHMM(zeros({3}), zeros({3, 3}), obs); }, {"give duration"});
  expect_error<ShapeError>([&] { dist::DiscreteHMM(zeros({3}), zeros({5, 3, 3}), obs, 4); },
                           {"time dims 5", "duration 4"});
  const dist::DiscreteHMM hmm(zeros({3}), zeros({3, 3}), obs, 4);
  expect_error<ShapeError>([&] { hmm.log_prob(zeros({5})); }, {"value of shape [5]", "event shape [4]"});
}

TEST(DiscreteHMM, ObservedSequencesInAPlate) {
  // Sequences as a plate's rows: the trace's log-density is the sum of
  // their log_prob, and the parameters get gradients.
  fresh(10);
  std::mt19937 gen(11);
  const int64_t S = 2, T = 7, N = 5;
  const Tensor data = random_tensor({N, T}, gen, -2.0f, 2.0f);
  auto model = [&] {
    Tensor trans = param("trans", zeros({S, S}));
    Tensor locs = param("locs", tensor({-1.0f, 1.0f}));
    auto p = plate("seqs", N);
    sample("obs", dist::DiscreteHMM(zeros({S}), trans, dist::Normal(locs, 1.0f), T), data);
  };
  const Trace t = poutine::trace(model).get_trace();
  const Tensor lp = t.log_prob_sum();
  const dist::DiscreteHMM hmm(zeros({S}), zeros({S, S}), dist::Normal(tensor({-1.0f, 1.0f}), 1.0f), T);
  EXPECT_NEAR(lp.item(), sum(hmm.log_prob(data)).item(), 1e-4);
  lp.backward();
  EXPECT_TRUE(param_store().unconstrained("locs").grad().defined());
  EXPECT_TRUE(param_store().unconstrained("trans").grad().defined());
}

TEST(DiscreteHMM, CasinoExampleRecoversTheDice) {
  // cuvi hmm: 50 sequences of 100 rolls, states summed out, MAP of the
  // switching and the dice. About a third of the 5000 rolls come from the
  // loaded die (its stationary share 0.05 / 0.15): the standard error of
  // its six's probability is about sqrt(0.25 / 1667) = 0.012, of its other
  // faces 0.0073, of a fair face 0.0065, of p(stay fair) 0.004 and of
  // p(stay loaded) 0.0073; the states are inferred, not seen, which we
  // allow to double them. Tolerances: 3 of those doubled errors.
  fresh(12);
  using cuvi_examples::Casino;
  const Tensor rolls = Casino::rolls(50, 100, default_device());
  infer::SVI svi(Casino::model, Casino::guide, optim::Adam({.lr = 0.05f}), infer::Trace_ELBO());
  for (int k = 0; k < 300; ++k) svi.step(rolls);
  const auto stay = softmax(param_store().get("transition_logits"), -1).to_vector();
  const auto dice = param_store().get("emission_probs").to_vector();
  const int loaded = dice[11] > dice[5] ? 1 : 0, fair = 1 - loaded;
  EXPECT_NEAR(dice[static_cast<size_t>(loaded * 6 + 5)], 0.5, 0.075);
  for (int f = 0; f < 5; ++f) EXPECT_NEAR(dice[static_cast<size_t>(loaded * 6 + f)], 0.1, 0.045) << "face " << f;
  for (int f = 0; f < 6; ++f) EXPECT_NEAR(dice[static_cast<size_t>(fair * 6 + f)], 1.0 / 6, 0.04) << "face " << f;
  EXPECT_NEAR(stay[static_cast<size_t>(fair * 3)], 0.95, 0.025);
  EXPECT_NEAR(stay[static_cast<size_t>(loaded * 3)], 0.90, 0.045);
}
