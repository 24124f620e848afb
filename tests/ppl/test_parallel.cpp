// Data parallelism within one process: poutine::shard's blocks, indices and
// scales (every rank simulated by its rank number), the unbiasedness of the
// ranks' mean, autoguides under a sharded model, and DistributedOptimizer
// over the single-rank communicator (the identity: bit for bit the wrapped
// optimizer). The exchanges between real ranks are tested under mpiexec in
// tests/mpi. Runs on the default device (cpu, and cuda:0 in the gpu suite).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "gradcheck.hpp"
#include "models.hpp"
#include "ppl/autoguide.hpp"
#include "ppl/infer.hpp"
#include "ppl/parallel.hpp"
#include "ppl/poutine.hpp"

using namespace cuvi;
using namespace cuvi::testing;
namespace P = cuvi::poutine;

namespace {

const Site& obs_site(const Trace& t) { return t.site("obs"); }

// A model over N data points in a plate of subsample size B (0: none).
auto plate_model(const Tensor& data, int64_t B) {
  return [data, B] {
    auto p = plate("data", data.size(0), B);
    sample("obs", dist::Normal(0.5f, 2.0f), p.subsample(data));
  };
}

std::vector<float> range_values(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = 0.1f * static_cast<float>(i) - 1.0f;
  return v;
}

}  // namespace

TEST(Shard, WholeBlocksInOrderWithScaleW) {
  fresh(1);
  const int64_t N = 10;
  const Tensor data = tensor(range_values(N), {N});
  // Blocks of floor(r N / W): [0, 3), [3, 6), [6, 10).
  const std::vector<std::pair<int64_t, int64_t>> blocks{{0, 3}, {3, 6}, {6, 10}};
  for (int r = 0; r < 3; ++r) {
    const Trace t = P::trace(P::shard(plate_model(data, 0), r, 3, {"data"})).get_trace();
    const Site& s = obs_site(t);
    const auto [lo, hi] = blocks[static_cast<size_t>(r)];
    std::vector<int64_t> want;
    for (int64_t i = lo; i < hi; ++i) want.push_back(i);
    EXPECT_EQ(t.site("data").value.to_vector_i64(), want) << "rank " << r;
    EXPECT_EQ(s.value.numel(), hi - lo);
    EXPECT_FLOAT_EQ(s.scale, 3.0f) << "W n_r / B with B = n_r";
    const Frame& f = s.frames.at(0);
    EXPECT_EQ(f.shard_begin, lo);
    EXPECT_EQ(f.shard_size, hi - lo);
    EXPECT_EQ(f.subsample_size, hi - lo);
    // The observed values are the block's rows.
    const auto v = s.value.to_vector();
    for (int64_t i = lo; i < hi; ++i) EXPECT_FLOAT_EQ(v[static_cast<size_t>(i - lo)], 0.1f * i - 1.0f);
  }
}

TEST(Shard, SubsamplesDrawDistinctRowsOfTheBlockWithScaleWnOverB) {
  fresh(2);
  const int64_t N = 31, B = 4;  // blocks of 10, 10, 11
  const Tensor data = tensor(range_values(N), {N});
  for (int r = 0; r < 3; ++r) {
    const int64_t lo = r * N / 3, hi = (r + 1) * N / 3;
    for (int k = 0; k < 20; ++k) {
      const Trace t = P::trace(P::shard(plate_model(data, B), r, 3)).get_trace();  // every plate
      const auto idx = t.site("data").value.to_vector_i64();
      ASSERT_EQ(idx.size(), static_cast<size_t>(B));
      EXPECT_EQ(std::set<int64_t>(idx.begin(), idx.end()).size(), idx.size()) << "distinct";
      for (int64_t i : idx) EXPECT_TRUE(i >= lo && i < hi) << "rank " << r << " drew " << i;
      EXPECT_FLOAT_EQ(obs_site(t).scale, 3.0f * static_cast<float>(hi - lo) / B);
    }
  }
}

TEST(Shard, SubsampleIsUniformOverTheBlock) {
  // Rank 1 of 3 over N = 30 owns rows [10, 20); B = 3 per draw. Over D
  // draws each row is expected 3 D / 10 times; Pearson's statistic has 9
  // degrees of freedom, and 27.88 is its 0.999 quantile.
  fresh(3);
  const int64_t N = 30, B = 3;
  const int D = 4000;
  const Tensor data = tensor(range_values(N), {N});
  std::vector<double> counts(10, 0.0);
  for (int k = 0; k < D; ++k) {
    const Trace t = P::trace(P::shard(plate_model(data, B), 1, 3, {"data"})).get_trace();
    for (int64_t i : t.site("data").value.to_vector_i64()) counts[static_cast<size_t>(i - 10)] += 1;
  }
  const double expect = 3.0 * D / 10.0;
  double chi2 = 0;
  for (double c : counts) chi2 += (c - expect) * (c - expect) / expect;
  EXPECT_LT(chi2, 27.88);
}

TEST(Shard, MeanOverRanksEstimatesTheWholeDataLogLikelihood) {
  fresh(4);
  const int64_t N = 23;  // blocks of 7, 8, 8 over W = 3
  const Tensor data = tensor(range_values(N), {N});
  const double full = P::trace(plate_model(data, 0)).get_trace().log_prob_sum().item();
  // Whole blocks: the mean over ranks is the full sum up to rounding.
  double mean = 0;
  for (int r = 0; r < 3; ++r) mean += P::trace(P::shard(plate_model(data, 0), r, 3)).get_trace().log_prob_sum().item();
  mean /= 3;
  EXPECT_NEAR(mean, full, 1e-5 * std::abs(full));
  // Subsamples of 3 (unequal blocks: the scale is W n_r / B, not N / B):
  // the mean over D draws of the ranks' mean is within 4 standard errors
  // (measured from the draws) of the full sum.
  const int D = 3000;
  double s = 0, s2 = 0;
  for (int k = 0; k < D; ++k) {
    double m = 0;
    for (int r = 0; r < 3; ++r)
      m += P::trace(P::shard(plate_model(data, 3), r, 3)).get_trace().log_prob_sum().item();
    m /= 3;
    s += m;
    s2 += m * m;
  }
  const double avg = s / D, sd = std::sqrt(std::max(0.0, s2 / D - avg * avg)), se = sd / std::sqrt(D);
  EXPECT_GT(sd, 0.0);
  EXPECT_NEAR(avg, full, 4 * se) << "sd per draw " << sd;
}

TEST(Shard, OneRankIsTheWholePlate) {
  fresh(5);
  const Tensor data = tensor(range_values(6), {6});
  const Trace t = P::trace(P::shard(plate_model(data, 0), 0, 1)).get_trace();
  EXPECT_EQ(t.site("data").value.to_vector_i64(), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_FLOAT_EQ(obs_site(t).scale, 1.0f);
  EXPECT_NEAR(t.log_prob_sum().item(), P::trace(plate_model(data, 0)).get_trace().log_prob_sum().item(), 1e-5);
}

TEST(Shard, PlatesNotNamedAreLeftAlone) {
  fresh(6);
  const Tensor data = tensor(range_values(8), {8});
  const Trace t = P::trace(P::shard(plate_model(data, 0), 1, 2, {"other"})).get_trace();
  EXPECT_FALSE(t.contains("data")) << "an unsubsampled plate that is not sharded draws nothing";
  EXPECT_EQ(obs_site(t).value.numel(), 8);
  EXPECT_FLOAT_EQ(obs_site(t).scale, 1.0f);
}

TEST(Shard, ErrorsNameThePlateAndTheSizes) {
  fresh(7);
  const Tensor data = tensor(range_values(8), {8});
  auto message = [](auto&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // B = 5 of a 4-row block.
  EXPECT_NE(message([&] { P::shard(plate_model(data, 5), 0, 2)(); })
                .find("plate 'data': subsample_size 5 exceeds rank 0's shard of 4 rows"),
            std::string::npos);
  // More ranks than rows.
  EXPECT_NE(message([&] { P::shard(plate_model(data, 0), 0, 9)(); }).find("size 8 is smaller than the 9 ranks"),
            std::string::npos);
  EXPECT_NE(message([&] { P::shard(plate_model(data, 0), 2, 2); }).find("rank 2 is not in [0, 2)"),
            std::string::npos);
  // Named plates that cannot be sharded.
  EXPECT_NE(message([&] { P::shard([] { irange("steps", 4); }, 0, 2, {"steps"})(); }).find("sequential"),
            std::string::npos);
  EXPECT_NE(message([&] { P::shard([] { Plate p("data", 8, tensor_i64({1, 2})); }, 0, 2, {"data"})(); })
                .find("given its own indices"),
            std::string::npos);
  // Unnamed (every plate): the user's indices and irange are left alone.
  EXPECT_NO_THROW(P::shard([] { Plate p("data", 8, tensor_i64({1, 2})); }, 0, 2)());
}

namespace {
const int64_t kN = 40, kB = 5;
const auto local_model = local_latent_model(kN, kB);
}  // namespace

TEST(Shard, AutoNormalFromAShardedModelDrawsFromTheBlock) {
  // The guide itself is not wrapped: the autoguide takes the block from the
  // plate's frame in the model's prototype trace.
  fresh(8);
  const Tensor data = tensor(range_values(kN), {kN});
  auto m = P::shard(local_model, 2, 4, {"data"});  // rows [20, 30)
  infer::AutoNormal guide(m);
  for (int k = 0; k < 10; ++k) {
    const Trace gt = P::trace([&] { guide(data); }).get_trace();
    const auto idx = gt.site("data").value.to_vector_i64();
    ASSERT_EQ(idx.size(), static_cast<size_t>(kB));
    for (int64_t i : idx) EXPECT_TRUE(i >= 20 && i < 30) << i;
    EXPECT_FLOAT_EQ(gt.site("z").scale, 4.0f * 10.0f / kB);
    // The model replays the guide's rows.
    const Trace mt = P::trace(P::replay([&] { m(data); }, gt)).get_trace();
    EXPECT_EQ(mt.site("data").value.to_vector_i64(), idx);
    EXPECT_FLOAT_EQ(mt.site("x").scale, 4.0f * 10.0f / kB);
  }
}

TEST(DistributedOptimizer, OverOneRankIsTheWrappedOptimizerBitForBit) {
  const Tensor data = tensor(range_values(kN), {kN});
  auto run = [&](const optim::Optimizer& opt) {
    fresh(9);
    infer::AutoNormal guide(local_model);
    infer::SVI svi(local_model, [&](const Tensor& x) { guide(x); }, opt, infer::Trace_ELBO());
    std::vector<float> out;
    for (int k = 0; k < 15; ++k) out.push_back(svi.step(data).item());
    for (const auto& n : param_store().names()) {
      const auto v = param_store().unconstrained(n).to_vector();
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  };
  EXPECT_EQ(run(optim::DistributedOptimizer(optim::Adam({.lr = 0.05f}), parallel::self())),
            run(optim::Adam({.lr = 0.05f})));
  EXPECT_EQ(run(optim::DistributedOptimizer(optim::SparseAdam({.lr = 0.05f}), parallel::self())),
            run(optim::SparseAdam({.lr = 0.05f})));
  const optim::DistributedOptimizer d(optim::SparseAdam(), parallel::self());
  EXPECT_TRUE(d.accepts_row_grads());
  EXPECT_EQ(d.name(), "Distributed(SparseAdam)");
}

TEST(DistributedOptimizer, OverOneRankRowsAlongAnInnerDim) {
  // Per-datapoint params [3, N] whose plate is their dim 1: the exchange
  // moves rows along dim 1 (values transposed to rows first and back);
  // over one rank, bit for bit the wrapped optimizer.
  const int64_t n = 30, b = 4;
  const Tensor data = tensor(range_values(3 * n), {3, n});
  auto model = [&](const Tensor& x) {
    auto rows = plate("rows", 3, 0, -2);
    auto p = plate("data", n, b, -1);
    Tensor z = sample("z", dist::Normal(0.0f, 1.0f));
    sample("x", dist::Normal(z, 1.0f), p.subsample(x));
  };
  auto guide = [&](const Tensor&) {
    auto rows = plate("rows", 3, 0, -2);
    auto p = plate("data", n, b, -1);
    Tensor loc = param("loc", [&] { return zeros({3, n}); }, constraints::real, 0);
    sample("z", dist::Normal(loc, 0.5f));
  };
  auto run = [&](const optim::Optimizer& opt, int steps = 8) {
    fresh(11);
    infer::SVI svi(model, guide, opt, infer::Trace_ELBO());
    for (int k = 0; k < steps; ++k) svi.step(data);
    return param_store().unconstrained("loc").to_vector();
  };
  {
    fresh(11);
    const Trace gt = P::trace([&] { guide(data); }).get_trace();
    (-gt.log_prob_sum()).backward();
    const Tensor loc = param_store().unconstrained("loc");
    ASSERT_EQ(loc.row_grads().size(), 1u);
    EXPECT_EQ(loc.row_grads()[0].dim, 1) << "the case this test is for";
  }
  const auto sparse = run(optim::DistributedOptimizer(optim::SparseAdam({.lr = 0.05f}), parallel::self()));
  EXPECT_EQ(sparse, run(optim::SparseAdam({.lr = 0.05f})));
  EXPECT_EQ(run(optim::DistributedOptimizer(optim::SGD({.lr = 0.05f}), parallel::self())),
            run(optim::SGD({.lr = 0.05f})));
  // One step moves the minibatch's b columns of every row only.
  int moved = 0;
  for (float v : run(optim::DistributedOptimizer(optim::SparseAdam({.lr = 0.05f}), parallel::self()), 1))
    moved += v != 0.0f;
  EXPECT_EQ(moved, 3 * b);
}

TEST(DistributedOptimizer, SchedulesReachTheWrappedOptimizer) {
  // A schedule around the distributed optimizer scales its wrapped rate:
  // the same run as the schedule around Adam itself.
  const Tensor data = tensor(range_values(kN), {kN});
  auto run = [&](const optim::Optimizer& inner) {
    fresh(10);
    optim::StepLR sched(inner, {.step_size = 1, .gamma = 0.5f});
    auto guide = [](const Tensor&) {
      Tensor loc = param("loc", 0.0f);
      sample("mu", dist::Normal(loc, 1.0f));
      auto p = plate("data", kN, kB);
      sample("z", dist::Normal(zeros({kB}), 1.0f));
    };
    infer::SVI svi(local_model, guide, sched, infer::Trace_ELBO());
    for (int k = 0; k < 6; ++k) {
      svi.step(data);
      dynamic_cast<optim::LRScheduler&>(svi.optimizer()).scheduler_step();
    }
    return param_store().get("loc").item();
  };
  EXPECT_EQ(run(optim::DistributedOptimizer(optim::Adam({.lr = 0.1f}), parallel::self())),
            run(optim::Adam({.lr = 0.1f})));
}

TEST(Parallel, SelfCollectivesKeepTheData) {
  const Tensor t = tensor({1.0f, -2.0f, 3.5f});
  auto c = parallel::self();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  EXPECT_EQ(parallel::all_reduce_sum(t, *c).to_vector(), t.to_vector());
  EXPECT_EQ(parallel::all_reduce_mean(t, *c).to_vector(), t.to_vector());
  parallel::broadcast_(t, *c);
  EXPECT_EQ(t.to_vector(), (std::vector<float>{1.0f, -2.0f, 3.5f}));
  if (!parallel::mpi_available()) {
    try {
      parallel::mpi_world();
      ADD_FAILURE() << "mpi_world must throw without MPI";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("built without MPI"), std::string::npos);
    }
  }
}
