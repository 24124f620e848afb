// dist::MixtureSameFamily: log_prob against float64 sums (Normal and
// MultivariateNormal components, broadcast batch shapes), gradients by
// finite differences, moments, draws (moments with SE-based tolerances and
// a Kolmogorov-Smirnov test against the mixture CDF), errors, and its use
// as a likelihood: the marginal of Pyro's Gaussian-mixture tutorial, equal
// to TraceEnum_ELBO's sum over the assignments. Runs on the default device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../../examples/gmm/gmm.hpp"
#include "gradcheck.hpp"
#include "ppl/infer.hpp"
#include "ppl/mixture.hpp"

using namespace cuvi;
using namespace cuvi::testing;

namespace {

// Batch [2], K = 3 Normal components with their own locs and scales; the
// weights shared by the batch (mixture batch shape []).
struct NormalMix {
  std::vector<float> w = {0.2f, 0.5f, 0.3f};
  std::vector<float> loc = {-2.0f, 0.0f, 3.0f, 1.0f, 1.5f, -1.0f};  // [2, 3]
  std::vector<float> scale = {0.5f, 1.0f, 2.0f, 0.7f, 0.3f, 1.2f};
  dist::MixtureSameFamily make() const {
    return dist::MixtureSameFamily(dist::Categorical(tensor(w)),
                                   dist::Normal(tensor(loc, {2, 3}), tensor(scale, {2, 3})));
  }
  double log_prob(double x, int b) const {
    std::vector<double> t;
    for (int k = 0; k < 3; ++k) {
      const size_t i = static_cast<size_t>(b * 3 + k);
      t.push_back(std::log(w[static_cast<size_t>(k)]) + normal_lp(x, loc[i], scale[i]));
    }
    return lse(t);
  }
  double mean(int b) const {
    double m = 0;
    for (int k = 0; k < 3; ++k) m += w[static_cast<size_t>(k)] * loc[static_cast<size_t>(b * 3 + k)];
    return m;
  }
  double variance(int b) const {
    double m2 = 0;
    for (int k = 0; k < 3; ++k) {
      const size_t i = static_cast<size_t>(b * 3 + k);
      m2 += w[static_cast<size_t>(k)] * (scale[i] * scale[i] + loc[i] * loc[i]);
    }
    return m2 - mean(b) * mean(b);
  }
  double cdf(double x, int b) const {
    double c = 0;
    for (int k = 0; k < 3; ++k) {
      const size_t i = static_cast<size_t>(b * 3 + k);
      c += w[static_cast<size_t>(k)] * 0.5 * std::erfc(-(x - loc[i]) / (scale[i] * std::sqrt(2.0)));
    }
    return c;
  }
};

TEST(MixtureSameFamily, ShapesAndLogProbAgainstFloat64) {
  const NormalMix m;
  const auto d = m.make();
  EXPECT_EQ(d.batch_shape(), (Shape{2}));
  EXPECT_EQ(d.event_shape(), (Shape{}));
  EXPECT_EQ(d.num_components(), 3);
  EXPECT_FALSE(d.has_rsample());
  // Values [4, 2]: a sample dim in front of the batch.
  const std::vector<float> xs = {-2.5f, 1.0f, 0.1f, 1.4f, 3.3f, -0.9f, 7.0f, -4.0f};
  const Tensor lp = d.log_prob(tensor(xs, {4, 2}));
  ASSERT_EQ(lp.shape(), (Shape{4, 2}));
  const auto v = lp.to_vector();
  // float32 log-sum-exps of O(10) terms: within 1e-5 relative (a few ulps).
  for (int i = 0; i < 4; ++i)
    for (int b = 0; b < 2; ++b) {
      const double want = m.log_prob(xs[static_cast<size_t>(i * 2 + b)], b);
      EXPECT_NEAR(v[static_cast<size_t>(i * 2 + b)], want, 1e-5 * (1 + std::fabs(want))) << i << "," << b;
    }
  const auto mean = d.mean().to_vector(), var = d.variance().to_vector();
  for (int b = 0; b < 2; ++b) {
    EXPECT_NEAR(mean[static_cast<size_t>(b)], m.mean(b), 1e-5);
    EXPECT_NEAR(var[static_cast<size_t>(b)], m.variance(b), 1e-4);
  }
}

TEST(MixtureSameFamily, GradientsOfValueWeightsAndComponents) {
  std::mt19937 gen(3);
  const Tensor x = random_tensor({5, 2}, gen, -3.0f, 3.0f);
  const Tensor logits = random_tensor({2, 3}, gen, -1.0f, 1.0f);
  const Tensor loc = random_tensor({2, 3}, gen, -2.0f, 2.0f);
  const Tensor scale = random_tensor({2, 3}, gen, 0.5f, 2.0f);
  gradcheck(
      [](const std::vector<Tensor>& in) {
        return dist::MixtureSameFamily(dist::Categorical::from_logits(in[1]), dist::Normal(in[2], in[3]))
            .log_prob(in[0]);
      },
      {x, logits, loc, scale});
}

// Components with an event dim: MultivariateNormal over D = 2 (diagonal
// scale_tril, so the float64 reference is a product of Normals).
TEST(MixtureSameFamily, MultivariateComponents) {
  const std::vector<float> w = {0.7f, 0.3f};
  const std::vector<float> loc = {0.0f, 1.0f, 2.0f, -1.0f};  // [K = 2, D = 2]
  const std::vector<float> sd = {1.0f, 0.5f, 0.8f, 1.5f};
  std::vector<float> tril(8, 0.0f);
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < 2; ++j) tril[static_cast<size_t>(k * 4 + j * 2 + j)] = sd[static_cast<size_t>(k * 2 + j)];
  const dist::MixtureSameFamily d(dist::Categorical(tensor(w)),
                                  dist::MultivariateNormal(tensor(loc, {2, 2}), tensor(tril, {2, 2, 2})));
  EXPECT_EQ(d.batch_shape(), (Shape{}));
  EXPECT_EQ(d.event_shape(), (Shape{2}));
  const std::vector<float> xs = {0.3f, 0.9f, 2.5f, -2.0f, -1.0f, 4.0f};
  const auto v = d.log_prob(tensor(xs, {3, 2})).to_vector();
  ASSERT_EQ(v.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    std::vector<double> t;
    for (int k = 0; k < 2; ++k) {
      double lp = std::log(w[static_cast<size_t>(k)]);
      for (int j = 0; j < 2; ++j)
        lp += normal_lp(xs[static_cast<size_t>(i * 2 + j)], loc[static_cast<size_t>(k * 2 + j)],
                        sd[static_cast<size_t>(k * 2 + j)]);
      t.push_back(lp);
    }
    EXPECT_NEAR(v[static_cast<size_t>(i)], lse(t), 1e-5 * (1 + std::fabs(lse(t))));
  }
  const auto mean = d.mean().to_vector();
  EXPECT_NEAR(mean[0], 0.7 * 0.0 + 0.3 * 2.0, 1e-6);
  EXPECT_NEAR(mean[1], 0.7 * 1.0 + 0.3 * -1.0, 1e-6);
  EXPECT_EQ(d.sample({4}).shape(), (Shape{4, 2}));
  EXPECT_THROW(d.log_prob(tensor({1.0f, 2.0f, 3.0f})), ShapeError);
}

// 20000 draws per batch element: mean within 4 SE (SE = sd / sqrt(n)),
// variance within 4 SE of the sample variance (SE from the fourth central
// moment: sqrt((m4 - var^2) / n)), and a KS test at the 0.001 level.
TEST(MixtureSameFamily, DrawsFollowTheMixture) {
  set_seed(11);
  const NormalMix m;
  const int n = 20000;
  const auto s = m.make().sample({n}).to_vector();  // [n, 2]
  for (int b = 0; b < 2; ++b) {
    std::vector<double> x(n);
    for (int i = 0; i < n; ++i) x[static_cast<size_t>(i)] = s[static_cast<size_t>(i * 2 + b)];
    double mean = 0;
    for (double v : x) mean += v / n;
    double var = 0, m4 = 0;
    for (double v : x) {
      var += (v - mean) * (v - mean) / (n - 1);
      m4 += std::pow(v - mean, 4) / n;
    }
    EXPECT_NEAR(mean, m.mean(b), 4 * std::sqrt(m.variance(b) / n)) << b;
    EXPECT_NEAR(var, m.variance(b), 4 * std::sqrt((m4 - var * var) / n)) << b;
    std::sort(x.begin(), x.end());
    double dmax = 0;
    for (int i = 0; i < n; ++i) {
      const double c = m.cdf(x[static_cast<size_t>(i)], b);
      dmax = std::max({dmax, std::fabs(c - static_cast<double>(i) / n), std::fabs(c - static_cast<double>(i + 1) / n)});
    }
    EXPECT_LT(dmax, 1.95 / std::sqrt(static_cast<double>(n))) << b;  // KS critical value at 0.001
  }
}

TEST(MixtureSameFamily, ExpandBroadcastsBothParts) {
  const NormalMix m;
  const auto e = m.make().expand({4, 2});
  EXPECT_EQ(e.batch_shape(), (Shape{4, 2}));
  EXPECT_EQ(e.sample().shape(), (Shape{4, 2}));
  const auto lp = e.log_prob(zeros({4, 2})).to_vector();
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(lp[static_cast<size_t>(i * 2 + 1)], m.log_prob(0.0, 1), 1e-5);
  EXPECT_THROW(m.make().expand({3}), ShapeError);
}

TEST(MixtureSameFamily, ComponentsMustEndInTheMixturesK) {
  try {
    dist::MixtureSameFamily(dist::Categorical(ones({3})), dist::Normal(zeros({2, 4}), ones({2, 4})));
    FAIL() << "expected a ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 4]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("3 components"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dist::MixtureSameFamily(dist::Categorical(ones({3})), dist::Normal(0.0f, 1.0f)), ShapeError);
}

// Pyro's GMM tutorial written with a mixture likelihood and with the
// assignments enumerated: the same marginal likelihood, so Trace_ELBO on
// the first and TraceEnum_ELBO on the second give one loss (the MAP guide
// has no randomness) and one gradient.
TEST(MixtureSameFamily, GmmLikelihoodEqualsTheEnumeratedSum) {
  fresh(5);
  const Tensor data = tensor({0.0f, 1.0f, 10.0f, 11.0f, 12.0f});
  const cuvi_examples::GMM gmm{2, tensor({0.0f, 12.0f})};
  auto guide = [&gmm](const Tensor& x) { gmm.guide(x); };
  auto enum_model = [&gmm](const Tensor& x) { gmm.model(x); };
  auto mix_model = [](const Tensor& x) {
    Tensor weights = sample("weights", dist::Dirichlet(full({2}, 0.5f)));
    Tensor scale = sample("scale", dist::LogNormal(0.0f, 2.0f));
    Tensor locs;
    {
      auto components = plate("components", 2);
      locs = sample("locs", dist::Normal(0.0f, 10.0f));
    }
    auto points = plate("data", x.size(0));
    sample("obs", dist::MixtureSameFamily(dist::Categorical(weights), dist::Normal(locs, scale)), x);
  };
  const auto run = [&](auto model, const infer::ELBO& elbo) {
    infer::ELBOResult r = elbo.compute([&] { model(data); }, [&] { guide(data); });
    r.surrogate.backward();
    std::vector<float> g;
    for (const char* n : {"weights_map", "scale_map", "locs_map"}) {
      for (float v : param_store().unconstrained(n).grad().to_vector()) g.push_back(v);
      param_store().unconstrained(n).zero_grad();
    }
    return std::pair{static_cast<double>(r.loss.item()), g};
  };
  const auto [l_enum, g_enum] = run(enum_model, infer::TraceEnum_ELBO({.max_plate_nesting = 1}));
  const auto [l_mix, g_mix] = run(mix_model, infer::Trace_ELBO({.max_plate_nesting = 1}));
  EXPECT_NEAR(l_mix, l_enum, 1e-5 * std::fabs(l_enum));
  ASSERT_EQ(g_mix.size(), g_enum.size());
  for (size_t i = 0; i < g_mix.size(); ++i) EXPECT_NEAR(g_mix[i], g_enum[i], 1e-4 * (1 + std::fabs(g_enum[i]))) << i;
}

}  // namespace
