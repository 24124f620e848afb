// Data-parallel SVI between real ranks: run under mpiexec (ctest runs this
// binary with 2 and with 3 ranks). Every rank runs every test in the same
// order, so the collectives inside line up; a check that fails on one rank
// never skips a collective (EXPECT, not ASSERT, before a collective).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuvi.hpp"
#include "models.hpp"

using namespace cuvi;
using namespace cuvi::testing;
namespace P = cuvi::poutine;

namespace {

parallel::Communicator& world() { return *parallel::mpi_world(); }
int R() { return world().rank(); }
int W() { return world().size(); }

void fresh(uint64_t seed) {
  param_store().clear();
  set_seed(seed);
}

// Every rank's copy of v (the same length on all), rank by rank.
std::vector<std::vector<float>> gather(const std::vector<float>& v) {
  std::vector<int64_t> bytes(static_cast<size_t>(W()), static_cast<int64_t>(v.size() * 4));
  std::vector<float> all(v.size() * static_cast<size_t>(W()));
  world().all_gather_v(v.data(), all.data(), bytes, Device::cpu());
  std::vector<std::vector<float>> out;
  for (int r = 0; r < W(); ++r) out.emplace_back(all.begin() + r * v.size(), all.begin() + (r + 1) * v.size());
  return out;
}

// Whether v has the same bits on every rank.
bool same_everywhere(const std::vector<float>& v) {
  const auto all = gather(v);
  for (const auto& x : all)
    if (std::memcmp(x.data(), all[0].data(), v.size() * 4) != 0) return false;
  return true;
}

std::vector<float> store_values() {
  std::vector<float> out;
  for (const auto& n : param_store().names()) {
    const auto v = param_store().unconstrained(n).to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

std::vector<float> data_values(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = std::sin(0.7f * static_cast<float>(i)) + 0.3f;
  return v;
}

}  // namespace

TEST(Communicator, CollectivesCombineTheRanks) {
  EXPECT_EQ(world().name(), "mpi");
  EXPECT_GE(W(), 2) << "run under mpiexec -n 2 or more";
  EXPECT_EQ(world().local_rank(), R()) << "every rank runs on this machine";
  std::vector<int64_t> m{R(), -R(), 7};
  world().max_host(m);
  EXPECT_EQ(m, (std::vector<int64_t>{W() - 1, 0, 7}));
  const auto g = world().all_gather_host({R(), 10 * R()});
  for (int r = 0; r < W(); ++r) {
    EXPECT_EQ(g[2 * r], r);
    EXPECT_EQ(g[2 * r + 1], 10 * r);
  }
  // Sums in rank order: ((1e8 + 1) + ... ) is what rank order gives, the
  // same bits on every rank.
  std::vector<float> x{R() == 0 ? 1e8f : 1.0f, static_cast<float>(R() + 1)};
  world().sum(x.data(), 2, Device::cpu());
  float want = 1e8f;
  for (int r = 1; r < W(); ++r) want += 1.0f;
  EXPECT_EQ(x[0], want);
  EXPECT_EQ(x[1], static_cast<float>(W() * (W() + 1) / 2));
  EXPECT_TRUE(same_everywhere(x));
  // A buffer that does not split evenly: every element the float sum of
  // the ranks' values in rank order.
  auto value = [](int r, int64_t i) { return std::sin(0.37f * static_cast<float>(i) + static_cast<float>(r)) * 1e3f; };
  const int64_t n = 1001;
  std::vector<float> big(n);
  for (int64_t i = 0; i < n; ++i) big[i] = value(R(), i);
  world().sum(big.data(), n, Device::cpu());
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) {
    float acc = value(0, i);
    for (int r = 1; r < W(); ++r) acc += value(r, i);
    wrong += big[i] != acc;
  }
  EXPECT_EQ(wrong, 0);
  // Broadcast from the last rank.
  std::vector<float> b{static_cast<float>(R()), 2.5f};
  world().broadcast(b.data(), 8, Device::cpu(), W() - 1);
  EXPECT_EQ(b, (std::vector<float>{static_cast<float>(W() - 1), 2.5f}));
  // Variable-size gather: rank r sends r + 1 values r.
  std::vector<int64_t> bytes;
  int64_t total = 0;
  for (int r = 0; r < W(); ++r) {
    bytes.push_back(4 * (r + 1));
    total += r + 1;
  }
  std::vector<float> mine(static_cast<size_t>(R() + 1), static_cast<float>(R()));
  std::vector<float> all(static_cast<size_t>(total));
  world().all_gather_v(mine.data(), all.data(), bytes, Device::cpu());
  size_t at = 0;
  for (int r = 0; r < W(); ++r)
    for (int k = 0; k <= r; ++k) EXPECT_EQ(all[at++], static_cast<float>(r));
  // The tensor helpers.
  const Tensor t = tensor({static_cast<float>(R()), 1.0f});
  EXPECT_EQ(parallel::all_reduce_sum(t, world()).to_vector(),
            (std::vector<float>{static_cast<float>(W() * (W() - 1) / 2), static_cast<float>(W())}));
  EXPECT_FLOAT_EQ(parallel::all_reduce_mean(t, world()).to_vector()[1], 1.0f);
}

namespace {
// A model with only params (its gradient is exact, no draws): a regression
// line on N points in a plate, sharded whole.
const int64_t kLineN = 24;
void line_model(const Tensor& x, const Tensor& y) {
  Tensor w = param("w", zeros({2}));
  auto p = plate("data", kLineN);
  const Tensor xs = p.subsample(x), ys = p.subsample(y);
  sample("y", dist::Normal(w.narrow(0, 0, 1) + w.narrow(0, 1, 1) * xs, 0.5f), ys);
}
void no_guide(const Tensor&, const Tensor&) {}
}  // namespace

TEST(DistributedSVI, WholeShardsEqualTheFullDataRun) {
  // The ranks' mean gradient over whole blocks is the full-data gradient,
  // so SGD takes the single-process steps (up to the order of the sums).
  const Tensor x = tensor(data_values(kLineN), {kLineN});
  const Tensor y = x * 2.0f - 1.0f;
  auto run = [&](bool distributed) {
    fresh(1);
    std::vector<float> losses;
    if (distributed) {
      infer::SVI svi(P::shard(line_model, R(), W(), {"data"}), P::shard(no_guide, R(), W(), {"data"}),
                     optim::DistributedOptimizer(optim::SGD({.lr = 0.002f}), parallel::mpi_world()),
                     infer::Trace_ELBO());
      for (int k = 0; k < 8; ++k) losses.push_back(parallel::all_reduce_mean(svi.step(x, y), world()).item());
    } else {
      infer::SVI svi(line_model, no_guide, optim::SGD({.lr = 0.002f}), infer::Trace_ELBO());
      for (int k = 0; k < 8; ++k) losses.push_back(svi.step(x, y).item());
    }
    return std::make_pair(losses, param_store().get("w").to_vector());
  };
  const auto [dl, dw] = run(true);
  const auto [sl, sw] = run(false);
  ASSERT_EQ(dw.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(dw[i], sw[i], 1e-5f * (1.0f + std::abs(sw[i])));
  for (size_t k = 0; k < dl.size(); ++k) EXPECT_NEAR(dl[k], sl[k], 1e-5f * std::abs(sl[k])) << "step " << k;
  EXPECT_GT(std::abs(sw[1]), 0.01f) << "the run must move the params";
  EXPECT_TRUE(same_everywhere(dw));
}

namespace {
const int64_t kN = 60, kB = 4;
const auto local_model = local_latent_model(kN, kB);
// The same guide with per-datapoint params taken as rows (row-sparse
// gradients) or gathered densely by hand.
void local_guide(const Tensor&, bool rows) {
  Tensor m = param("m", 0.0f);
  sample("mu", dist::Normal(m, 0.5f));
  auto p = plate("data", kN, kB);
  Tensor loc = rows ? param("loc", [] { return zeros({kN}); }, constraints::real, 0)
                    : p.subsample(param("loc", [] { return zeros({kN}); }));
  sample("z", dist::Normal(loc, 0.7f));
}
}  // namespace

TEST(DistributedSVI, RowSparseGradientsTravelAsRowsAndEqualTheDenseExchange) {
  const Tensor x = tensor(data_values(kN), {kN});
  auto run = [&](bool rows, int steps) {
    fresh(100 + R());  // each rank its own draws
    auto guide = [rows](const Tensor& d) { local_guide(d, rows); };
    infer::SVI svi(P::shard(local_model, R(), W(), {"data"}), P::shard(guide, R(), W(), {"data"}),
                   optim::DistributedOptimizer(optim::SGD({.lr = 0.05f}), parallel::mpi_world()), infer::Trace_ELBO());
    for (int k = 0; k < steps; ++k) svi.step(x);
    return std::make_pair(param_store().unconstrained("loc").to_vector(), param_store().get("m").to_vector());
  };
  // One step: exactly the W B rows the ranks drew moved, kB per block.
  const auto [loc1, m1] = run(true, 1);
  for (int r = 0; r < W(); ++r) {
    int moved = 0;
    for (int64_t i = r * kN / W(); i < (r + 1) * kN / W(); ++i) moved += loc1[static_cast<size_t>(i)] != 0.0f;
    EXPECT_EQ(moved, kB) << "block of rank " << r;
  }
  EXPECT_TRUE(same_everywhere(loc1));
  // Several steps: the rows exchange and the dense one agree (the same
  // sums, divided by W per rank or after the sum).
  const auto [loc_rows, m_rows] = run(true, 10);
  const auto [loc_dense, m_dense] = run(false, 10);
  for (size_t i = 0; i < loc_rows.size(); ++i) EXPECT_NEAR(loc_rows[i], loc_dense[i], 1e-6f) << "row " << i;
  EXPECT_NEAR(m_rows[0], m_dense[0], 1e-6f);
  EXPECT_TRUE(same_everywhere(loc_rows));
  EXPECT_TRUE(same_everywhere(loc_dense));
}

TEST(DistributedSVI, SparseAdamAutoNormalKeepsEveryRankIdentical) {
  const Tensor x = tensor(data_values(kN), {kN});
  fresh(200 + R());
  auto m = P::shard(local_model, R(), W(), {"data"});
  infer::AutoNormal guide(m);
  infer::SVI svi(m, [&](const Tensor& d) { guide(d); },
                 optim::DistributedOptimizer(optim::SparseAdam({.lr = 0.05f}), parallel::mpi_world()),
                 infer::Trace_ELBO());
  for (int k = 0; k < 25; ++k) svi.step(x);
  const auto v = store_values();
  EXPECT_GT(v.size(), static_cast<size_t>(2 * kN));
  EXPECT_TRUE(same_everywhere(v)) << "params differ between ranks";
  EXPECT_TRUE(same_everywhere(svi.optimizer().state().tensors.at("AutoNormal.locs.z").at("exp_avg").to_vector()));
}

TEST(DistributedSVI, NewParamsTakeRankZerosValues) {
  // Ranks initialise differently; after the first step all hold rank 0's
  // initial value moved by the same update.
  fresh(300);
  auto model = [](const Tensor&) { sample("mu", dist::Normal(0.0f, 1.0f)); };
  auto guide = [](const Tensor&) {
    Tensor loc = param("loc", static_cast<float>(10 * R()));
    sample("mu", dist::Delta(loc));
  };
  infer::SVI svi(model, guide, optim::DistributedOptimizer(optim::SGD({.lr = 0.1f}), parallel::mpi_world()),
                 infer::Trace_ELBO());
  svi.step(Tensor());
  const float loc = param_store().get("loc").item();
  EXPECT_TRUE(same_everywhere({loc}));
  // Rank 0 starts at 0; the gradient is the mean of the ranks' (at their
  // own starts, 10 r): d/dloc of -log N(loc; 0, 1) = loc.
  double mean_start = 0;
  for (int r = 0; r < W(); ++r) mean_start += 10.0 * r / W();
  EXPECT_NEAR(loc, 0.0 - 0.1 * mean_start, 1e-5);
}

namespace {
struct Poison {
  int rank = -1;  // the rank whose step fails
  bool nan = false;
};
Poison g_poison;
void poisoned_model(const Tensor& x) {
  Tensor mu = sample("mu", dist::Normal(0.0f, 1.0f));
  auto p = plate("data", kLineN);
  if (R() == g_poison.rank && !g_poison.nan) throw std::runtime_error("model failed on purpose");
  if (R() == g_poison.rank) factor("bad", zeros({}) * std::numeric_limits<float>::quiet_NaN());  // a NaN loss
  sample("x", dist::Normal(mu, 1.0f), p.subsample(x));
}
void mu_guide(const Tensor&) {
  Tensor loc = param("loc", 0.0f);
  Tensor sc = param("sc", 1.0f, constraints::positive);
  sample("mu", dist::Normal(loc, sc));
}
}  // namespace

TEST(DistributedSVI, AStepThatFailsOnOneRankChangesNothingOnAny) {
  const Tensor x = tensor(data_values(kLineN), {kLineN});
  fresh(400 + R());
  infer::SVI svi(P::shard(poisoned_model, R(), W()), P::shard(mu_guide, R(), W()),
                 optim::DistributedOptimizer(optim::Adam({.lr = 0.1f}), parallel::mpi_world()), infer::Trace_ELBO(),
                 {.check_finite = true});
  for (int k = 0; k < 3; ++k) svi.step(x);
  for (const bool nan : {false, true}) {
    const auto before = store_values();
    const auto state_before = svi.optimizer().state().tensors.at("loc").at("exp_avg").to_vector();
    g_poison = {W() - 1, nan};
    std::string what = "no error";
    try {
      svi.step(x);
    } catch (const std::exception& e) {
      what = e.what();
    }
    g_poison = {};
    if (R() == W() - 1)
      EXPECT_NE(what.find(nan ? "not finite" : "failed on purpose"), std::string::npos) << what;
    else
      EXPECT_NE(what.find("the step failed on rank " + std::to_string(W() - 1)), std::string::npos) << what;
    EXPECT_EQ(store_values(), before) << "params changed";
    EXPECT_EQ(svi.optimizer().state().tensors.at("loc").at("exp_avg").to_vector(), state_before);
    // The ranks go on together.
    svi.step(x);
    EXPECT_TRUE(same_everywhere(store_values()));
  }
}

TEST(DistributedSVI, RanksWithDifferentParamsAllRaise) {
  fresh(500);
  auto model = [](const Tensor&) { sample("mu", dist::Normal(0.0f, 1.0f)); };
  auto guide = [](const Tensor&) {
    Tensor loc = param("loc", 0.0f);
    if (R() == 1) loc = loc + param("extra", 0.0f);
    sample("mu", dist::Normal(loc, 1.0f));
  };
  infer::SVI svi(model, guide, optim::DistributedOptimizer(optim::Adam(), parallel::mpi_world()),
                 infer::Trace_ELBO());
  std::string what = "no error";
  try {
    svi.step(Tensor());
  } catch (const ValueError& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("the ranks' parameters differ"), std::string::npos) << what;
  EXPECT_FALSE(param_store().contains("loc")) << "the failed first step takes back what it created";
}

TEST(DistributedSVI, MinibatchesConvergeToThePosterior) {
  // Pyro's minibatched map-data test, data-parallel: N = 100 draws from
  // N(1.5, 1), prior mu ~ N(0, 10), each rank a minibatch of 10 from its
  // block; exact posterior N(sum x / (N + 1/100), 1 / (N + 1/100)).
  fresh(30);
  const MapData md{randn({100}) + 1.5f, 10};  // the same data on every rank
  set_seed(31 + static_cast<uint64_t>(R()));
  const double post_mean = md.post_mean(), post_sd = md.post_sd();
  auto model = [&] { md.model(); };
  auto guide = MapData::guide;
  const int steps = 3000;
  infer::SVI svi(P::shard(model, R(), W()), P::shard(guide, R(), W()),
                 optim::DistributedOptimizer(
                     optim::ClippedAdam({.lr = 0.05f, .lrd = static_cast<float>(std::pow(0.02, 1.0 / steps))}),
                     parallel::mpi_world()),
                 infer::Trace_ELBO());
  for (int k = 0; k < steps; ++k) svi.step();
  const float loc = param_store().get("loc").item(), sc = param_store().get("scale").item();
  // The single-process test's tolerance: half a posterior standard deviation.
  EXPECT_NEAR(loc, post_mean, 0.5 * post_sd) << "post mean " << post_mean;
  EXPECT_NEAR(sc, post_sd, 0.5 * post_sd) << "post sd " << post_sd;
  EXPECT_TRUE(same_everywhere({loc, sc}));
}
