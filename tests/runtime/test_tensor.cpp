#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "gradcheck.hpp"
#include "runtime/backend.hpp"

using namespace cuvi;
using namespace cuvi::testing;

TEST(Tensor, FactoriesAndReads) {
  Tensor a = tensor({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, {2, 3});
  EXPECT_EQ(a.shape(), (Shape{2, 3}));
  EXPECT_EQ(a.size(-1), 3);
  EXPECT_EQ(a.dim(), 2);
  EXPECT_EQ(a.numel(), 6);
  EXPECT_EQ(a.dtype(), DType::kFloat32);
  EXPECT_TRUE(a.device().is_cpu());
  EXPECT_EQ(zeros({2, 2}).to_vector(), std::vector<float>(4, 0.f));
  EXPECT_EQ(full({3}, 2.5f).to_vector(), std::vector<float>(3, 2.5f));
  EXPECT_EQ(arange(4).to_vector(), (std::vector<float>{0, 1, 2, 3}));
  EXPECT_EQ(arange_i64(3).to_vector_i64(), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_FLOAT_EQ(tensor(3.5f).item(), 3.5f);
  EXPECT_EQ(tensor(3.5f).dim(), 0);
  EXPECT_EQ(a[1].to_vector(), (std::vector<float>{4, 5, 6}));
  EXPECT_EQ(a.reshape({3, -1}).shape(), (Shape{3, 2}));
  EXPECT_EQ(a.unsqueeze(0).shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(tensor_i64({5, 7}).to_float().to_vector(), (std::vector<float>{5, 7}));
}

// float32 -> int64 is defined everywhere (a plain cast is not): truncation
// toward zero, saturation at the int64 range, NaN -> 0; both backends share
// kern::f32_to_i64 (the GPU test compares them).
TEST(Tensor, ToInt64TruncatesSaturatesAndMapsNanToZero) {
  const std::vector<float> x{2.7f, -2.7f, 0.0f, -0.5f, 16777216.0f, NAN, 1e30f, -1e30f, INFINITY, -INFINITY};
  const std::vector<int64_t> want{2, -2, 0, 0, 16777216, 0, INT64_MAX, INT64_MIN, INT64_MAX, INT64_MIN};
  EXPECT_EQ(tensor(x).to_int64().to_vector_i64(), want);
  EXPECT_EQ(tensor(-9223372036854775808.0f).to_int64().item_i64(), INT64_MIN);  // -2^63 is exact
}

TEST(Tensor, SharedStorageViews) {
  Tensor a = tensor({1.f, 2.f, 3.f, 4.f});
  Tensor b = a.reshape({2, 2});
  EXPECT_EQ(a.data<float>(), b.data<float>());
  Tensor c = a.detach();
  EXPECT_EQ(a.data<float>(), c.data<float>());
}

TEST(Autograd, AccumulatesIntoLeaves) {
  Tensor x = tensor({1.f, 2.f}).requires_grad_();
  Tensor y = sum(x * x) + sum(x * 3.0f);
  y.backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{5, 7}));
  sum(x).backward();  // accumulates
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{6, 8}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, SharedSubexpressionAndDiamond) {
  Tensor x = tensor({0.5f}).requires_grad_();
  Tensor h = exp(x);
  Tensor y = sum(h * h + h);  // d/dx = 2 e^{2x} + e^x
  y.backward();
  const double e = std::exp(0.5);
  EXPECT_NEAR(x.grad().item(), 2 * e * e + e, 1e-5);
}

TEST(Autograd, NoGradGuardAndDetach) {
  Tensor x = tensor({1.f}).requires_grad_();
  {
    NoGradGuard ng;
    Tensor y = x * 2.0f;
    EXPECT_FALSE(y.requires_grad());
  }
  Tensor z = x.detach() * 2.0f;
  EXPECT_FALSE(z.requires_grad());
  EXPECT_TRUE((x * 2.0f).requires_grad());
}

TEST(Autograd, UnusedBranchStillReleasesDependencies) {
  // b's branch gets no gradient (a comparison), but a flows through both.
  Tensor a = tensor({2.f}).requires_grad_();
  Tensor c = a * 3.0f;
  Tensor mask = gt(c, zeros({}));
  Tensor y = sum(c * mask + c);
  y.backward();
  EXPECT_FLOAT_EQ(a.grad().item(), 6.f);
}

TEST(Errors, ShapeMismatchNamesOpAndShapes) {
  expect_error<ShapeError>([] { add(zeros({2, 3}), zeros({4})); }, {"add", "[2, 3]", "[4]"});
  expect_error<ShapeError>([] { matmul(zeros({2, 3}), zeros({4, 5})); }, {"matmul", "[2, 3]", "[4, 5]"});
  expect_error<ShapeError>([] { zeros({2, 3}).reshape({4}); }, {"reshape", "[2, 3]", "[4]"});
  expect_error<ShapeError>([] { cat({zeros({2, 3}), zeros({3, 3})}, 1); }, {"cat"});
}

TEST(Errors, DTypeMismatch) {
  expect_error<DTypeError>([] { exp(arange_i64(3)); }, {"exp", "int64"});
  expect_error<DTypeError>([] { index_select(zeros({3}), 0, tensor({0.f})); }, {"index_select", "int64"});
}

TEST(Errors, OutOfRangeIndex) {
  expect_error<IndexError>([] { index_select(zeros({3, 2}), 0, tensor_i64({0, 3})).to_vector(); },
                           {"index_select", "3", "[0, 3)"});
  expect_error<IndexError>([] { gather(zeros({2, 2}), 1, tensor_i64({0, -1, 1, 1}, {2, 2})).to_vector(); },
                           {"gather", "-1"});
  // Empty rows (3 x 0) or no outer rows (0 x 3): the indices are still checked.
  expect_error<IndexError>([] { index_select(zeros({3, 0}), 0, tensor_i64({0, 5})); }, {"index_select", "5"});
  expect_error<IndexError>([] { index_select(zeros({0, 3}), 1, tensor_i64({3})); }, {"index_select", "[0, 3)"});
  expect_error<IndexError>([] { index_add(zeros({3, 0}), 0, tensor_i64({-1}), zeros({1, 0})); }, {"index_add", "-1"});
  EXPECT_EQ(index_select(zeros({3, 0}), 0, tensor_i64({2, 0, 1})).shape(), (Shape{3, 0}));
  EXPECT_EQ(index_add(zeros({0, 3}), 1, tensor_i64({2, 2}), zeros({0, 2})).shape(), (Shape{0, 3}));
}

TEST(Errors, BackwardThroughNonScalar) {
  Tensor x = tensor({1.f, 2.f}).requires_grad_();
  expect_error<AutogradError>([&] { (x * 2.0f).backward(); }, {"non-scalar", "[2]"});
  expect_error<AutogradError>([] { sum(tensor({1.f})).backward(); }, {"does not require grad"});
}

TEST(Errors, UnavailableDevice) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present";
  expect_error<DeviceError>([] { zeros({2}, Device::cuda(0)); }, {"cuda:0"});
  expect_error<DeviceError>([] { Device::parse("tpu"); }, {"tpu"});
  EXPECT_TRUE(Device::best().is_cpu());
}

// Factories without a device follow the thread's default device (as
// torch.set_default_device); the guard restores the previous one, also when
// its scope is left by an exception, and other threads keep their own.
TEST(Tensor, DefaultDeviceFollowsGuardPerThread) {
  ASSERT_TRUE(default_device().is_cpu());
  const Device other = cuda_available() ? Device::cuda(0) : Device::cpu();
  {
    DefaultDeviceGuard g(other);
    EXPECT_EQ(default_device(), other);
    for (const Tensor& t : {tensor({1.f}), tensor(2.f), zeros({2}), ones({2}), full({2}, 3.f), arange(3),
                            arange_i64(3), tensor_i64({1, 2}), scalar_tensor(1.f), randn({2}), rand({2})})
      EXPECT_EQ(t.device(), other);
    std::thread([] { EXPECT_TRUE(default_device().is_cpu()); }).join();
  }
  EXPECT_TRUE(default_device().is_cpu());
  if (cuda_available()) return;
  // Without a GPU, a cuda default makes the factories fail, naming the device;
  // leaving the scope by that exception restores the cpu default.
  try {
    DefaultDeviceGuard g(Device::cuda(0));
    expect_error<DeviceError>([] { zeros({2}); }, {"cuda:0"});
    (void)tensor({1.f});
    ADD_FAILURE() << "expected an exception";
  } catch (const DeviceError&) {
  }
  EXPECT_TRUE(default_device().is_cpu());
  EXPECT_TRUE(zeros({1}).device().is_cpu());
}

TEST(Errors, MixingDevices) {
  if (!cuda_available()) GTEST_SKIP() << "needs a CUDA device";
  expect_error<DeviceError>([] { add(zeros({2}), zeros({2}, Device::cuda(0))); }, {"add", "cpu", "cuda:0"});
}

// The CPU backend's block cache: sizes at and around the size-class edges,
// freed and reallocated in a shuffled order, never hand out a live block
// twice (every tensor keeps its own values) and keep 64-byte alignment.
TEST(Tensor, HostBlockCacheNeverAliasesLiveTensors) {
  const std::vector<int64_t> sizes{0, 1, 15, 16, 17, 255, 256, 257, (1 << 18) - 1, 1 << 18, (1 << 18) + 1, 1 << 20};
  std::mt19937 gen(3);
  std::vector<Tensor> live;
  std::vector<float> tag;
  for (int round = 0; round < 6; ++round) {
    for (int64_t n : sizes) {
      const float v = static_cast<float>(live.size()) + 0.5f;
      live.push_back(full({n}, v));
      tag.push_back(v);
      ASSERT_EQ(reinterpret_cast<uintptr_t>(live.back().data<float>()) % 64, 0u) << "size " << n;
    }
    // Free about half (shuffled), then check every survivor.
    std::vector<size_t> order(live.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), gen);
    std::vector<Tensor> keep;
    std::vector<float> keep_tag;
    for (size_t k = 0; k < order.size(); ++k)
      if (k % 2 == 0) {
        keep.push_back(live[order[k]]);
        keep_tag.push_back(tag[order[k]]);
      }
    live = std::move(keep);
    tag = std::move(keep_tag);
    for (size_t i = 0; i < live.size(); ++i)
      for (float x : live[i].to_vector()) ASSERT_EQ(x, tag[i]) << "tensor " << i << " of " << live[i].numel();
  }
}

// The batched finiteness check SVI's check_finite uses: the first span (in
// order) holding a NaN or an infinity, or -1; empty spans and lists are fine.
TEST(Backend, FirstNonfiniteNamesTheFirstBadSpan) {
  Backend& b = backend(Device::cpu());
  std::vector<std::vector<float>> data(5, std::vector<float>(40000, 1.0f));
  auto spans = [&] {
    std::vector<std::pair<const float*, int64_t>> s;
    for (auto& d : data) s.push_back({d.data(), static_cast<int64_t>(d.size())});
    s.push_back({nullptr, 0});
    return s;
  };
  EXPECT_EQ(b.first_nonfinite({}), -1);
  EXPECT_EQ(b.first_nonfinite(spans()), -1);
  data[3][39999] = INFINITY;
  EXPECT_EQ(b.first_nonfinite(spans()), 3);
  data[1][17] = NAN;
  EXPECT_EQ(b.first_nonfinite(spans()), 1);
  data[1][17] = -INFINITY;
  EXPECT_EQ(b.first_nonfinite(spans()), 1);
}
