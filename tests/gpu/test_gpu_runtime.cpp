// CUDA backend against the CPU backend on the same inputs and seeds. Skips
// when no CUDA device is usable, unless CUVI_REQUIRE_GPU=1 (then it fails).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>

#include "gpu_test.hpp"
#include "gradcheck.hpp"
#include "runtime/backend.hpp"
#include "op_cases.hpp"

using namespace cuvi;
using namespace cuvi::testing;


namespace {

class GpuOpTable : public ::testing::TestWithParam<size_t> {};

// CUDA vs CPU with the same float32 inputs: the per-element math is shared,
// so differences come from libdevice vs glibc transcendentals (a few ulp),
// fused multiply-adds and reduction order: rtol 1e-5 + atol 1e-5.
TEST_P(GpuOpTable, CudaMatchesCpuForwardAndBackward) {
  CUVI_REQUIRE_CUDA();
  const OpCase c = op_cases()[GetParam()];
  std::mt19937 gen(42 + static_cast<unsigned>(GetParam()));
  std::vector<Tensor> cpu_in, gpu_in;
  for (const auto& in : c.inputs) {
    Tensor t = random_tensor(in.shape, gen, in.lo, in.hi);
    cpu_in.push_back(t.detach().requires_grad_());
    gpu_in.push_back(t.to(Device::cuda()).detach().requires_grad_());
  }
  Tensor yc = c.fn(cpu_in), yg = c.fn(gpu_in);
  ASSERT_TRUE(yg.device().is_cuda());
  const auto vc = yc.to_vector();
  expect_close(yg.to_vector(), std::vector<double>(vc.begin(), vc.end()), 1e-5, 1e-5, c.name.c_str());
  if (!c.differentiable || !yc.requires_grad()) return;
  Tensor w = random_tensor(yc.shape(), gen, 0.5f, 1.5f);
  sum(yc * w).backward();
  sum(yg * w.to(Device::cuda())).backward();
  for (size_t k = 0; k < cpu_in.size(); ++k) {
    if (!cpu_in[k].grad().defined()) continue;
    const auto gc = cpu_in[k].grad().to_vector();
    expect_close(gpu_in[k].grad().to_vector(), std::vector<double>(gc.begin(), gc.end()), 1e-5, 1e-5,
                 (c.name + " grad").c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(All, GpuOpTable, ::testing::Range<size_t>(0, op_cases().size()));

TEST(GpuRuntime, SameSeedSameDraws) {
  CUVI_REQUIRE_CUDA();
  for (int64_t n : {1, 1000, 1 << 20}) {
    set_seed(77);
    const auto uc = rand({n}).to_vector();
    const auto zc = randn({n}).to_vector();
    set_seed(77);
    const auto ug = rand({n}, Device::cuda()).to_vector();
    const auto zg = randn({n}, Device::cuda()).to_vector();
    ASSERT_EQ(uc, ug) << "uniforms are exact fixed-point conversions and must match bit for bit";
    // Box-Muller's log/sin/cos: libdevice vs glibc differ by a few ulp.
    for (size_t i = 0; i < zc.size(); ++i) ASSERT_NEAR(zc[i], zg[i], 1e-5f * (1 + std::fabs(zc[i]))) << i;
  }
}

TEST(GpuRuntime, ToInt64MatchesCpuAtTheEdges) {
  CUVI_REQUIRE_CUDA();
  const std::vector<float> x{2.7f, -2.7f, -0.5f, 16777216.0f, NAN, 1e30f, -1e30f, INFINITY, -INFINITY,
                             -9223372036854775808.0f};
  EXPECT_EQ(tensor(x, Device::cuda()).to_int64().to_vector_i64(), tensor(x).to_int64().to_vector_i64());
}

TEST(GpuRuntime, SubsampleMatchesCpu) {
  CUVI_REQUIRE_CUDA();
  Tensor ic = Tensor::empty({4096}, DType::kInt64, Device::cpu());
  Tensor ig = Tensor::empty({4096}, DType::kInt64, Device::cuda());
  backend(Device::cpu()).subsample(ic.data<int64_t>(), 1000000, 4096, 3, 9);
  backend(Device::cuda()).subsample(ig.data<int64_t>(), 1000000, 4096, 3, 9);
  EXPECT_EQ(ic.to_vector_i64(), ig.to_vector_i64());
}

TEST(GpuRuntime, SumsAreBitwiseReproducible) {
  CUVI_REQUIRE_CUDA();
  set_seed(1);
  Tensor x = randn({(1 << 22) + 17}, Device::cuda());
  const float a = sum(x).item();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(sum(x).item(), a);
  EXPECT_NEAR(a, sum(x.to(Device::cpu())).item(), 1e-3 * std::sqrt(double(x.numel())));
}

// Sums and maxima of [rows, cols] views on the GPU against a float64 sum of
// the same float32 inputs: over the leading dim (leading = true: each of
// the `cols` outputs reduces a strided column) or the trailing one (each of
// the `rows` outputs reduces a contiguous row). Any order of float32
// additions over a tree of depth d is off by at most d * 2^-24 * sum|x|;
// d <= 30 here, so the tolerance is 2e-6 * sum|x|. Maxima are exact. Each
// sum twice: the same bits.
void check_reductions(const std::vector<Shape>& shapes, bool leading, unsigned seed) {
  std::mt19937 gen(seed);
  for (const Shape& s : shapes) {
    Tensor xc = random_tensor(s, gen, -1.0f, 1.0f, Device::cpu());
    Tensor xg = xc.to(Device::cuda());
    const auto v = xc.to_vector();
    const int64_t rows = leading ? s.front() : static_cast<int64_t>(v.size()) / s.back();
    const int64_t cols = static_cast<int64_t>(v.size()) / rows;
    const size_t outs = static_cast<size_t>(leading ? cols : rows);
    std::vector<double> want(outs, 0.0), abs_sum(outs, 0.0);
    std::vector<float> want_max(outs, -INFINITY);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const float x = v[static_cast<size_t>(r * cols + c)];
        const size_t o = static_cast<size_t>(leading ? c : r);
        want[o] += x;
        abs_sum[o] += std::fabs(x);
        want_max[o] = std::max(want_max[o], x);
      }
    const std::vector<int64_t> dims{leading ? 0 : -1};
    const auto got = sum(xg, dims).to_vector();
    const auto got_max = amax(xg, dims).to_vector();
    ASSERT_EQ(got.size(), outs);
    for (size_t o = 0; o < outs; ++o) {
      ASSERT_NEAR(got[o], want[o], 2e-6 * abs_sum[o]) << shape_str(s) << " output " << o;
      ASSERT_EQ(got_max[o], want_max[o]) << shape_str(s) << " output " << o;
    }
    EXPECT_EQ(sum(xg, dims).to_vector(), got) << shape_str(s);
  }
}

// Leading dims ([N, ...] -> [...], a broadcast parameter's gradient summed
// over a plate): one chunk, several chunks (a second pass, with few and with
// many outputs), and more rows than 4096 chunks of 512 hold (larger chunks).
TEST(GpuRuntime, LeadingReductionsMatchFloat64) {
  CUVI_REQUIRE_CUDA();
  check_reductions({{300, 40}, {700, 5}, {100000, 7}, {3000, 1030}, {5000, 3, 33}, {(1 << 22) + 5, 2}}, true, 5);
}

// Trailing dims ([M, N] -> [M]) with long rows: fixed chunks of each row,
// then each output's chunk partials in order (few, many and one output).
TEST(GpuRuntime, TrailingReductionsMatchFloat64) {
  CUVI_REQUIRE_CUDA();
  check_reductions({{3, 1000007}, {1000, 5000}, {1, 5000000}, {2, 3, 4097}}, false, 6);
}

// Trailing rows of 64 < n <= 4096 (a [N, 256] tensor's row sums): a warp
// per row, lanes strided across it, then shuffles. Just above the
// thread-per-row bound, many rows, one and several leading dims, and the
// longest row a warp takes.
TEST(GpuRuntime, MediumTrailingRowsMatchFloat64) {
  CUVI_REQUIRE_CUDA();
  check_reductions({{1000, 65}, {200003, 100}, {2, 3, 300}, {1, 2000}, {7, 4096}}, false, 7);
}

// Long cumsum lines with few of them (a random walk over 1e5 steps) are
// scanned in fixed 2048-element chunks (chunk sums, their offsets, then each
// chunk from its offset), in double: against the float64 running sum within
// float rounding of its value (2^-24 relative, plus a few ulp of the double
// partials), forward and reversed, and the same bits on every run.
TEST(GpuRuntime, LongCumsumsMatchFloat64) {
  CUVI_REQUIRE_CUDA();
  std::mt19937 gen(17);
  for (const Shape& shape : {Shape{100000}, Shape{3, 5000, 4}, Shape{2, 2049}}) {
    SCOPED_TRACE(shape_str(shape));
    const Tensor x = random_tensor(shape, gen, -1.0f, 1.0f);
    const auto xv = x.to_vector();
    const int64_t dim = shape.size() == 3 ? 1 : static_cast<int64_t>(shape.size()) - 1;
    const int64_t n = shape[static_cast<size_t>(dim)];
    const int64_t inner = shape.size() == 3 ? shape[2] : 1, outer = x.numel() / (n * inner);
    // Forward only here: reverse scans run through cumsum's backward.
    Tensor xg = x.to(Device::cuda()).requires_grad_();
    Tensor y = cumsum(xg, dim);
    const Tensor up = random_tensor(shape, gen, -1.0f, 1.0f);
    sum(y * up.to(Device::cuda())).backward();
    const auto yv = y.to_vector(), gv = xg.grad().to_vector(), uv = up.to_vector();
    Tensor xg2 = x.to(Device::cuda()).requires_grad_();
    Tensor y2 = cumsum(xg2, dim);
    sum(y2 * up.to(Device::cuda())).backward();
    EXPECT_EQ(y2.to_vector(), yv) << "cumsum differs between runs";
    EXPECT_EQ(xg2.grad().to_vector(), gv) << "cumsum backward differs between runs";
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        double fwd = 0.0, rev = 0.0;
        for (int64_t j = 0; j < n; ++j) {
          const auto k = static_cast<size_t>((o * n + j) * inner + i);
          const auto kr = static_cast<size_t>((o * n + (n - 1 - j)) * inner + i);
          fwd += xv[k];
          rev += uv[kr];
          ASSERT_NEAR(yv[k], fwd, 1e-7 * std::fabs(fwd) + 1e-9) << "forward at " << k;
          ASSERT_NEAR(gv[kr], rev, 1e-7 * std::fabs(rev) + 1e-9) << "reverse (backward) at " << kr;
        }
      }
  }
}

// The fused optimizer step: every tensor of a step in one launch (a pack of
// 32 in 4 KiB of kernel parameters, above that a pack of 256, beyond 256 one
// more launch), each updated as the CPU backend does; every fifth tensor is
// a row-sparse slot (rows of [n / 3, 3], one row skipped with -1). Adam's
// arithmetic is the same per element; sqrt and division are correctly
// rounded on both, but the GPU may contract a*b+c into an fma: 1e-6
// relative after 3 steps.
TEST(GpuRuntime, OptimizerStepIsOneLaunchForManyTensorsAndMatchesCpu) {
  CUVI_REQUIRE_CUDA();
  std::mt19937 gen(12);
  for (int count : {30, 100, 300}) {
    SCOPED_TRACE(count);
    struct Side {
      std::vector<Tensor> p, g, m, v, rows;
    } cpu, gpu;
    std::uniform_int_distribution<int64_t> len(0, 3000);
    for (int k = 0; k < count; ++k) {
      const bool sparse = k % 5 == 3;
      const int64_t n = k == 7 ? 300000 : (sparse ? 3 * (1 + len(gen) / 3) : len(gen));  // one long; some empty
      // Row-sparse: up to 40 distinct rows of the n / 3, the first skipped.
      std::vector<int64_t> rows;
      if (sparse) {
        std::vector<int64_t> all(static_cast<size_t>(n / 3));
        for (size_t r = 0; r < all.size(); ++r) all[r] = static_cast<int64_t>(r);
        std::shuffle(all.begin(), all.end(), gen);
        rows.assign(all.begin(), all.begin() + std::min<int64_t>(40, n / 3));
        rows[0] = -1;
      }
      const int64_t gn = sparse ? 3 * static_cast<int64_t>(rows.size()) : n;
      const Tensor p = random_tensor({n}, gen, -1.0f, 1.0f), g = random_tensor({gn}, gen, -1.0f, 1.0f);
      for (Side* s : {&cpu, &gpu}) {
        const Device d = s == &cpu ? Device::cpu() : Device::cuda();
        s->p.push_back(p.to(d).clone());
        s->g.push_back(g.to(d));
        s->m.push_back(zeros({n}, d));
        s->v.push_back(zeros({n}, d));
        s->rows.push_back(sparse ? tensor_i64(rows, {static_cast<int64_t>(rows.size())}, d) : Tensor());
      }
    }
    auto step = [&](Side& s, Device d, int t) {
      std::vector<kern::OptSlot> slots;
      std::vector<kern::AdamHyper> hyper;
      for (size_t k = 0; k < s.p.size(); ++k) {
        kern::OptSlot sl{s.p[k].data<float>(), s.g[k].data<float>(), s.m[k].data<float>(), s.v[k].data<float>(),
                         s.g[k].numel()};
        if (s.rows[k].defined()) {
          sl.rows = s.rows[k].data<int64_t>();
          sl.k = s.rows[k].numel();
          sl.inner = 3;
          sl.dim_size = s.p[k].numel() / 3;
        }
        slots.push_back(sl);
        const float bc1 = 1.0f - std::pow(0.9f, static_cast<float>(t)), bc2 = 1.0f - std::pow(0.999f, static_cast<float>(t));
        hyper.push_back({1e-2f * static_cast<float>(k % 3 + 1), 0.9f, 0.999f, 1e-8f, k % 2 ? 0.01f : 0.0f, bc1, bc2,
                         0.0f, 0});
      }
      backend(d).adam_step(slots, hyper);
    };
    for (int t = 1; t <= 3; ++t) {
      step(cpu, Device::cpu(), t);
      const long long before = launch_count();
      step(gpu, Device::cuda(), t);
      EXPECT_EQ(launch_count() - before, count <= 256 ? 1 : 2);
    }
    for (int k = 0; k < count; ++k) {
      SCOPED_TRACE(k);
      const auto want = cpu.p[static_cast<size_t>(k)].to_vector();
      expect_close(gpu.p[static_cast<size_t>(k)].to_vector(), std::vector<double>(want.begin(), want.end()), 1e-6,
                   1e-6, "param");
    }
  }
}

// The batched finiteness check on the GPU: more spans than one launch
// takes (64), the first bad one named whichever launch finds it, one wait.
TEST(GpuRuntime, FirstNonfiniteMatchesCpuOverManySpans) {
  CUVI_REQUIRE_CUDA();
  std::vector<Tensor> ts;
  for (int k = 0; k < 70; ++k) ts.push_back(full({k % 7 == 0 ? 100000 : 33}, 1.0f, Device::cuda()));
  auto spans = [&] {
    std::vector<std::pair<const float*, int64_t>> s;
    for (const Tensor& t : ts) s.push_back({t.data<float>(), t.numel()});
    return s;
  };
  Backend& b = backend(Device::cuda());
  EXPECT_EQ(b.first_nonfinite(spans()), -1);
  const auto poison = [&](int k, int64_t i, float v) {
    std::vector<float> h = ts[static_cast<size_t>(k)].to_vector();
    h[static_cast<size_t>(i)] = v;
    ts[static_cast<size_t>(k)] = tensor(h, {static_cast<int64_t>(h.size())}, Device::cuda());
  };
  poison(68, 5, NAN);
  poison(66, 32, INFINITY);
  EXPECT_EQ(b.first_nonfinite(spans()), 66);
  poison(63, 99999, -INFINITY);  // 63 % 7 == 0: a long span, in the first launch
  const long long before = sync_count();
  EXPECT_EQ(b.first_nonfinite(spans()), 63);
  EXPECT_EQ(sync_count(), before + 1);
}

TEST(GpuRuntime, AsyncOpsDoNotSynchronize) {
  CUVI_REQUIRE_CUDA();
  Tensor x = randn({1024}, Device::cuda()).requires_grad_();
  const long long before = sync_count();
  Tensor y = sum(exp(x) * 2.0f);
  y.backward();
  Tensor g = x.grad();
  EXPECT_EQ(sync_count(), before);
  (void)g.to_vector();
  EXPECT_EQ(sync_count(), before + 1);
}

TEST(GpuRuntime, DeferredIndexErrorRaisedAtSync) {
  CUVI_REQUIRE_CUDA();
  Tensor x = zeros({3, 2}, Device::cuda());
  Tensor idx = tensor_i64({0, 5}, Device::cuda());
  Tensor y = index_select(x, 0, idx);  // queued, not yet checked
  expect_error<IndexError>([&] { y.to_vector(); }, {"index_select", "size 3"});
  // The flag is cleared: the device is usable afterwards.
  EXPECT_EQ(zeros({2}, Device::cuda()).to_vector(), std::vector<float>(2, 0.f));
}

// Empty values (a 3 x 0 source) with indices: the CPU backend still checks
// the indices, and so must the CUDA one; coalescing rows of empty values
// still returns each position's row (the head) or -1, as on the CPU.
TEST(GpuRuntime, EmptyValuesStillCheckIndicesAndCoalesceRows) {
  CUVI_REQUIRE_CUDA();
  for (const Device d : {Device::cpu(), Device::cuda()}) {
    SCOPED_TRACE(d.str());
    const Tensor x = zeros({3, 0}, d);
    const Tensor bad = tensor_i64({0, 5}, d);
    expect_error<IndexError>([&] { index_select(x, 0, bad).to_vector(); }, {"index_select", "size 3"});
    expect_error<IndexError>([&] { index_add(x, 0, bad, zeros({2, 0}, d)).to_vector(); }, {"index_add", "size 3"});
    EXPECT_EQ(index_select(x, 0, tensor_i64({2, 0, 1}, d)).shape(), (Shape{3, 0}));
  }
  auto rows_of = [](Device d) {
    const RowGrad part{0, tensor_i64({2, 0, 2, 7, 0}, d), zeros({5, 0}, d), false};
    return coalesce_row_grads({part}, 3).indices.to_vector_i64();
  };
  EXPECT_EQ(rows_of(Device::cpu()), (std::vector<int64_t>{2, 0, -1, -1, -1}));
  EXPECT_EQ(rows_of(Device::cuda()), rows_of(Device::cpu()));
}

TEST(GpuRuntime, MixingDevicesErrors) {
  CUVI_REQUIRE_CUDA();
  expect_error<DeviceError>([] { add(zeros({2}), zeros({2}, Device::cuda(0))); }, {"add", "cpu", "cuda:0"});
}

}  // namespace

// index_select / gather backward (index_add / scatter_add) with repeated
// indices, as a hierarchical model's theta[group] has: a target with at most
// 128 terms gets them in the CPU loop's order, so the gradients equal the
// CPU's bit for bit and are the same on every run. Both paths: a short index
// (one thread per column) and a long one (sorted runs, here all <= 128).
TEST(GpuRuntime, RepeatedIndexGradientsMatchCpuBitwise) {
  CUVI_REQUIRE_CUDA();
  std::mt19937 gen(41);
  for (int64_t n_idx : {12, 600}) {
    SCOPED_TRACE(n_idx);
    std::vector<int64_t> iv;
    std::uniform_int_distribution<int64_t> pick(0, 6);
    for (int64_t i = 0; i < n_idx; ++i) iv.push_back(pick(gen));
    std::vector<int64_t> hits(7, 0);
    for (int64_t k : iv) ++hits[static_cast<size_t>(k)];
    ASSERT_LE(*std::max_element(hits.begin(), hits.end()), 128) << "precondition: every run within one chunk";
    Tensor x = random_tensor({7, 5}, gen, -1.0f, 1.0f);
    Tensor w = random_tensor({n_idx, 5}, gen, -1.0f, 1.0f);
    auto grad_of_select = [&](Device d) {
      // to(cpu) of a cpu tensor is that tensor: detach, so x itself stays a
      // constant and every device gets a fresh leaf.
      Tensor xd = x.to(d).detach().requires_grad_();
      sum(index_select(xd, 0, tensor_i64(iv, {n_idx}, d)) * w.to(d)).backward();
      return xd.grad().to_vector();
    };
    const auto gc = grad_of_select(Device::cpu());
    const auto g1 = grad_of_select(Device::cuda());
    const auto g2 = grad_of_select(Device::cuda());
    EXPECT_EQ(g1, g2) << "index_select backward differs between runs";
    EXPECT_EQ(g1, gc) << "index_select backward differs from the CPU";
    // gather along dim 0 with a [n_idx, 5] index: every column repeats too.
    std::vector<int64_t> gi;
    for (int64_t i = 0; i < n_idx * 5; ++i) gi.push_back(pick(gen));
    auto grad_of_gather = [&](Device d) {
      // to(cpu) of a cpu tensor is that tensor: detach, so x itself stays a
      // constant and every device gets a fresh leaf.
      Tensor xd = x.to(d).detach().requires_grad_();
      sum(gather(xd, 0, tensor_i64(gi, {n_idx, 5}, d)) * w.to(d)).backward();
      return xd.grad().to_vector();
    };
    const auto hc = grad_of_gather(Device::cpu());
    const auto h1 = grad_of_gather(Device::cuda());
    EXPECT_EQ(h1, grad_of_gather(Device::cuda())) << "gather backward differs between runs";
    EXPECT_EQ(h1, hc) << "gather backward differs from the CPU";
  }
}

// A plate's drawn indices are marked distinct, and index_select's backward
// then adds in one launch (after the zeros it adds into), no sort; the CPU's
// gradient bit for bit, and the unmarked (sorted) path's too.
TEST(GpuRuntime, DistinctIndexGradientsTakeOneLaunch) {
  CUVI_REQUIRE_CUDA();
  set_default_device(Device::cuda());
  set_seed(8);
  auto p = plate("rows", 1000000, 4096);
  const Tensor idx = p.indices();
  set_default_device(Device::cpu());
  ASSERT_TRUE(idx.impl()->distinct_indices);
  std::mt19937 gen(9);
  const Tensor w = random_tensor({4096, 3}, gen, -1.0f, 1.0f);
  auto grad_through = [&](const Tensor& i, Device d, long long* launches) {
    Tensor x = zeros({1000000, 3}, d).requires_grad_();
    Tensor y = sum(index_select(x, 0, i) * w.to(d));
    const long long before = launch_count();
    y.backward();
    if (launches) *launches = launch_count() - before;
    return x.grad().to_vector();
  };
  long long marked_launches = 0, plain_launches = 0;
  const auto gm = grad_through(idx, Device::cuda(), &marked_launches);
  const auto gp = grad_through(idx.detach(), Device::cuda(), &plain_launches);
  const auto gc = grad_through(idx.to(Device::cpu()), Device::cpu(), nullptr);
  EXPECT_EQ(gm, gc);
  EXPECT_EQ(gp, gc);
  EXPECT_LT(marked_launches, plain_launches) << "the distinct path should skip the sort";
}

// Targets hit by many indices (runs longer than the 128-term chunk): the
// head adds its own chunk one by one, then the partial sums of the chunks
// its run continues into. Run lengths 1, 128 and 129 (the edges), 257, and
// ~100000 (hundreds of chunks), shuffled; terms in [0.5, 1], so a chunk
// lost or counted twice moves a sum by >= 64. Against float64 sums with the
// error bound of that order of addition, (2 * 128 + m / 128) * 2^-24 *
// sum|t| for a run of m terms (chunk partials of <= 128 terms, then <= 128 +
// m / 128 additions); the same bits on every run; runs of at most
// 128 equal the CPU's bit for bit. Both index_add (index_select backward,
// 3 columns) and scatter_add (gather backward).
TEST(GpuRuntime, LongIndexRunsAreChunkedDeterministically) {
  CUVI_REQUIRE_CUDA();
  std::mt19937 gen(42);
  const std::vector<int64_t> counts{1, 128, 129, 257, 100000};
  std::vector<int64_t> iv;
  for (size_t k = 0; k < counts.size(); ++k) iv.insert(iv.end(), static_cast<size_t>(counts[k]), static_cast<int64_t>(k));
  std::shuffle(iv.begin(), iv.end(), gen);
  const auto n = static_cast<int64_t>(iv.size()), T = static_cast<int64_t>(counts.size());
  const Tensor w = random_tensor({n, 3}, gen, 0.5f, 1.0f);
  const auto wv = w.to_vector();
  std::vector<double> exact(static_cast<size_t>(T * 3), 0.0), abs_sum(static_cast<size_t>(T * 3), 0.0);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < 3; ++c) {
      const double t = wv[static_cast<size_t>(j * 3 + c)];
      exact[static_cast<size_t>(iv[static_cast<size_t>(j)] * 3 + c)] += t;
      abs_sum[static_cast<size_t>(iv[static_cast<size_t>(j)] * 3 + c)] += std::fabs(t);
    }
  auto check = [&](const std::vector<float>& got, const std::vector<float>& cpu, const char* what) {
    SCOPED_TRACE(what);
    for (int64_t k = 0; k < T; ++k)
      for (int64_t c = 0; c < 3; ++c) {
        const auto e = static_cast<size_t>(k * 3 + c);
        const double m = static_cast<double>(counts[static_cast<size_t>(k)]);
        const double bound = (2.0 * 128.0 + m / 128.0) * std::ldexp(1.0, -24) * abs_sum[e];
        EXPECT_NEAR(got[e], exact[e], bound) << "target " << k << " column " << c;
        if (m <= 128) EXPECT_EQ(got[e], cpu[e]) << "target " << k << " column " << c;
      }
  };
  auto grad_of_select = [&](Device d) {
    Tensor xd = zeros({T, 3}, d).requires_grad_();
    sum(index_select(xd, 0, tensor_i64(iv, {n}, d)) * w.to(d)).backward();
    return xd.grad().to_vector();
  };
  const auto s1 = grad_of_select(Device::cuda());
  EXPECT_EQ(s1, grad_of_select(Device::cuda())) << "index_select backward differs between runs";
  check(s1, grad_of_select(Device::cpu()), "index_add");
  std::vector<int64_t> gi;
  for (int64_t k : iv)
    for (int c = 0; c < 3; ++c) gi.push_back(k);
  auto grad_of_gather = [&](Device d) {
    Tensor xd = zeros({T, 3}, d).requires_grad_();
    sum(gather(xd, 0, tensor_i64(gi, {n, 3}, d)) * w.to(d)).backward();
    return xd.grad().to_vector();
  };
  const auto h1 = grad_of_gather(Device::cuda());
  EXPECT_EQ(h1, grad_of_gather(Device::cuda())) << "gather backward differs between runs";
  check(h1, grad_of_gather(Device::cpu()), "scatter_add");
}
