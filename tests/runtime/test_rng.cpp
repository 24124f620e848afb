#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "gradcheck.hpp"
#include "runtime/backend.hpp"

using namespace cuvi;

namespace {

// Kolmogorov-Smirnov statistic of sorted draws against a CDF.
template <class Cdf>
double ks_stat(std::vector<float> x, Cdf cdf) {
  std::sort(x.begin(), x.end());
  const double n = static_cast<double>(x.size());
  double d = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double f = cdf(x[i]);
    d = std::max({d, f - i / n, (i + 1) / n - f});
  }
  return d;
}

constexpr int64_t kN = 200000;
// KS critical value at alpha = 0.001 is 1.95 / sqrt(N).
const double kKsCrit = 1.95 / std::sqrt(static_cast<double>(kN));

TEST(Rng, UniformMomentsAndKs) {
  set_seed(123);
  const auto u = rand({kN}).to_vector();
  double m = 0, v = 0;
  for (float x : u) {
    ASSERT_GT(x, 0.f);
    ASSERT_LT(x, 1.f);
    m += x;
  }
  m /= kN;
  for (float x : u) v += (x - m) * (x - m);
  v /= kN;
  // SE(mean) = sqrt(1/12 / N); SE(var) = sqrt((1/80 - 1/144) / N).
  EXPECT_NEAR(m, 0.5, 5 * std::sqrt(1.0 / 12 / kN));
  EXPECT_NEAR(v, 1.0 / 12, 5 * std::sqrt((1.0 / 80 - 1.0 / 144) / kN));
  EXPECT_LT(ks_stat(u, [](double x) { return x; }), kKsCrit);
}

TEST(Rng, NormalMomentsAndKs) {
  set_seed(321);
  const auto z = randn({kN}).to_vector();
  double m = 0, v = 0;
  for (float x : z) m += x;
  m /= kN;
  for (float x : z) v += (x - m) * (x - m);
  v /= kN;
  // SE(mean) = 1/sqrt(N); SE(var) = sqrt(2/N) for a standard normal.
  EXPECT_NEAR(m, 0.0, 5 / std::sqrt(double(kN)));
  EXPECT_NEAR(v, 1.0, 5 * std::sqrt(2.0 / kN));
  EXPECT_LT(ks_stat(z, [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }), kKsCrit);
}

TEST(Rng, SeedReproducesAndOffsetsAdvance) {
  set_seed(5);
  const auto a = randn({16}).to_vector();
  const auto b = randn({16}).to_vector();
  set_seed(5);
  EXPECT_EQ(randn({16}).to_vector(), a);
  EXPECT_EQ(randn({16}).to_vector(), b);
  EXPECT_NE(a, b);
  // Draw i depends only on (seed, i, offset): a longer draw extends a shorter one.
  set_seed(5);
  const auto c = randn({32}).to_vector();
  EXPECT_TRUE(std::equal(a.begin(), a.end(), c.begin()));
}

TEST(Rng, SubsampleDistinctInRangeUniform) {
  const int64_t N = 50, B = 10;
  const int trials = 20000;
  std::vector<double> counts(N, 0);
  for (int t = 0; t < trials; ++t) {
    Tensor idx = Tensor::empty({B}, DType::kInt64, Device::cpu());
    backend(Device::cpu()).subsample(idx.data<int64_t>(), N, B, 99, static_cast<uint32_t>(t));
    const auto v = idx.to_vector_i64();
    std::set<int64_t> s(v.begin(), v.end());
    ASSERT_EQ(static_cast<int64_t>(s.size()), B) << "duplicate index in trial " << t;
    for (int64_t i : v) {
      ASSERT_GE(i, 0);
      ASSERT_LT(i, N);
      counts[static_cast<size_t>(i)] += 1;
    }
  }
  // Chi-square of inclusion counts against trials*B/N each, N-1 dof. The
  // counts are negatively correlated (B fixed), which only shrinks the
  // statistic; the 0.999 quantile of chi2(49) is 85.4.
  const double e = static_cast<double>(trials) * B / N;
  double chi2 = 0;
  for (double c : counts) chi2 += (c - e) * (c - e) / e;
  EXPECT_LT(chi2, 85.4);
}

TEST(Rng, SubsampleLargeNIsWholeRange) {
  // B = N must produce a permutation.
  Tensor idx = Tensor::empty({1000}, DType::kInt64, Device::cpu());
  backend(Device::cpu()).subsample(idx.data<int64_t>(), 1000, 1000, 7, 0);
  auto v = idx.to_vector_i64();
  std::sort(v.begin(), v.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(v[static_cast<size_t>(i)], i);
}

}  // namespace
