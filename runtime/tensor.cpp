#include "tensor.hpp"

#include <atomic>
#include <cstring>
#include <sstream>

#include "autograd.hpp"
#include "backend.hpp"
#include "ops.hpp"
#include "rng.hpp"

namespace cuvi {

// ---- devices -------------------------------------------------------------

namespace {
std::atomic<long long> g_sync_count{0};
std::atomic<long long> g_launch_count{0};
thread_local bool t_grad_enabled = true;
thread_local RngState t_rng{};
}  // namespace

namespace detail {
void count_sync() { g_sync_count.fetch_add(1, std::memory_order_relaxed); }
void count_launch() { g_launch_count.fetch_add(1, std::memory_order_relaxed); }
}  // namespace detail

long long sync_count() { return g_sync_count.load(std::memory_order_relaxed); }
long long launch_count() { return g_launch_count.load(std::memory_order_relaxed); }

int cuda_device_count() { return cuda_backend_device_count(); }

namespace {
thread_local Device t_default_device = Device::cpu();
}  // namespace

Device default_device() { return t_default_device; }
void set_default_device(Device d) { t_default_device = d; }

Device Device::best() { return cuda_available() ? Device::cuda(0) : Device::cpu(); }

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    const std::string num = s.substr(5);
    CUVI_CHECK(!num.empty() && num.find_first_not_of("0123456789") == std::string::npos, DeviceError,
               "Device::parse: bad device string '" << s << "' (expected cpu, cuda or cuda:N)");
    return cuda(std::stoi(num));
  }
  CUVI_THROW(DeviceError, "Device::parse: bad device string '" << s << "' (expected cpu, cuda or cuda:N)");
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

Backend& backend(Device d) {
  if (d.is_cpu()) return cpu_backend();
  CUVI_CHECK(cuda_built(), DeviceError, "device " << d.str() << " requested but cuvi was built without CUDA");
  Backend* b = cuda_backend(d.index);
  CUVI_CHECK(b != nullptr, DeviceError,
             "device " << d.str() << " is not available (" << cuda_device_count() << " CUDA device(s) usable)");
  return *b;
}

void synchronize(Device d) {
  Backend& b = backend(d);
  b.synchronize();
  detail::count_sync();
  b.raise_deferred_errors();
}

// ---- rng -----------------------------------------------------------------

void set_seed(uint64_t seed) { t_rng = RngState{seed, 0}; }
RngState get_rng_state() { return t_rng; }
void set_rng_state(RngState s) { t_rng = s; }
RngState next_rng() {
  RngState s = t_rng;
  ++t_rng.offset;
  return s;
}

// ---- shapes --------------------------------------------------------------

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t v : s) n *= v;
  return n;
}

// ---- storage -------------------------------------------------------------

Storage::Storage(size_t nbytes, Device dev) : bytes(nbytes), device(dev) {
  ptr = backend(dev).allocate(nbytes);
}

Storage::~Storage() {
  if (ptr) backend(device).deallocate(ptr);
}

// ---- tensor --------------------------------------------------------------

void Tensor::check_defined(const char* what) const {
  CUVI_CHECK(impl_ != nullptr, ValueError, what << ": tensor is undefined");
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device dev) {
  CUVI_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), ShapeError,
             "tensor: shape " << shape_str(shape) << " has more than " << kMaxDims << " dims");
  for (int64_t s : shape)
    CUVI_CHECK(s >= 0, ShapeError, "tensor: negative size in shape " << shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), dev);
  return Tensor(std::move(impl));
}

const Shape& Tensor::shape() const {
  check_defined("shape");
  return impl_->shape;
}
int64_t Tensor::dim() const { return static_cast<int64_t>(shape().size()); }
int64_t Tensor::size(int64_t d) const { return shape()[static_cast<size_t>(normalize_dim(d, dim(), "size"))]; }
int64_t Tensor::numel() const { return shape_numel(shape()); }
DType Tensor::dtype() const {
  check_defined("dtype");
  return impl_->dtype;
}
Device Tensor::device() const {
  check_defined("device");
  return impl_->storage->device;
}

float Tensor::item() const {
  CUVI_CHECK(numel() == 1, ShapeError, "item: tensor of shape " << shape_str(shape()) << " has " << numel()
                                                                << " elements, expected 1");
  if (dtype() == DType::kInt64) return static_cast<float>(item_i64());
  float v = 0;
  Backend& b = backend(device());
  b.copy_d2h(&v, data<float>(), sizeof(float));
  if (device().is_cuda()) detail::count_sync();
  b.raise_deferred_errors();
  return v;
}

int64_t Tensor::item_i64() const {
  CUVI_CHECK(numel() == 1, ShapeError, "item: tensor of shape " << shape_str(shape()) << " has " << numel()
                                                                << " elements, expected 1");
  if (dtype() == DType::kFloat32) return static_cast<int64_t>(item());
  int64_t v = 0;
  Backend& b = backend(device());
  b.copy_d2h(&v, data<int64_t>(), sizeof(int64_t));
  if (device().is_cuda()) detail::count_sync();
  b.raise_deferred_errors();
  return v;
}

std::vector<float> Tensor::to_vector() const {
  CUVI_CHECK(dtype() == DType::kFloat32, DTypeError, "to_vector: tensor is " << dtype_name(dtype())
                                                                             << ", use to_vector_i64");
  std::vector<float> out(static_cast<size_t>(numel()));
  Backend& b = backend(device());
  if (!out.empty()) b.copy_d2h(out.data(), data<float>(), out.size() * sizeof(float));
  else b.synchronize();  // nothing to copy, but queued checks must be done before the flag is read
  if (device().is_cuda()) detail::count_sync();
  b.raise_deferred_errors();
  return out;
}

std::vector<int64_t> Tensor::to_vector_i64() const {
  CUVI_CHECK(dtype() == DType::kInt64, DTypeError, "to_vector_i64: tensor is " << dtype_name(dtype()));
  std::vector<int64_t> out(static_cast<size_t>(numel()));
  Backend& b = backend(device());
  if (!out.empty()) b.copy_d2h(out.data(), data<int64_t>(), out.size() * sizeof(int64_t));
  else b.synchronize();  // nothing to copy, but queued checks must be done before the flag is read
  if (device().is_cuda()) detail::count_sync();
  b.raise_deferred_errors();
  return out;
}

Tensor Tensor::to(Device dev) const { return to_device(*this, dev); }

bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }

Tensor& Tensor::requires_grad_(bool on) {
  check_defined("requires_grad_");
  CUVI_CHECK(!on || dtype() == DType::kFloat32, DTypeError, "requires_grad_: only float32 tensors can require grad");
  CUVI_CHECK(is_leaf(), AutogradError, "requires_grad_: only leaf tensors can be switched (use detach())");
  impl_->requires_grad = on;
  return *this;
}

void Tensor::backward() const {
  check_defined("backward");
  CUVI_CHECK(numel() == 1, AutogradError,
             "backward: called on a non-scalar tensor of shape " << shape_str(shape())
                                                                 << "; pass a gradient of that shape");
  run_backward(*this, ones(shape(), device()), /*unit=*/true);
}

void Tensor::backward(const Tensor& grad_output) const {
  check_defined("backward");
  CUVI_CHECK(grad_output.shape() == shape(), ShapeError,
             "backward: gradient of shape " << shape_str(grad_output.shape()) << " for a tensor of shape "
                                            << shape_str(shape()));
  run_backward(*this, grad_output);
}

Tensor Tensor::grad() const {
  check_defined("grad");
  if (!impl_->row_grads.empty()) {
    // Parts are gradients of values already computed: no graph.
    NoGradGuard ng;
    const Tensor base = impl_->grad ? Tensor(impl_->grad) : Tensor();
    const Tensor dense = add_row_grads(base, impl_->shape, impl_->storage->device, impl_->row_grads);
    impl_->grad = dense.impl_ptr();
    impl_->row_grads.clear();
  }
  return impl_->grad ? Tensor(impl_->grad) : Tensor();
}
void Tensor::zero_grad() const {
  check_defined("zero_grad");
  impl_->grad.reset();
  impl_->row_grads.clear();
}
void Tensor::set_grad(const Tensor& g) const {
  check_defined("set_grad");
  impl_->grad = g.impl_ptr();
  impl_->row_grads.clear();
}
const std::vector<RowGrad>& Tensor::row_grads() const {
  check_defined("row_grads");
  return impl_->row_grads;
}

Tensor Tensor::detach() const {
  check_defined("detach");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  impl->shape = impl_->shape;
  impl->dtype = impl_->dtype;
  return Tensor(std::move(impl));
}

bool Tensor::is_leaf() const { return impl_ && !impl_->grad_fn; }

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  check_defined("grad_fn");
  return impl_->grad_fn;
}

Tensor Tensor::reshape(const Shape& s) const { return cuvi::reshape(*this, s); }
Tensor Tensor::unsqueeze(int64_t d) const { return cuvi::unsqueeze(*this, d); }
Tensor Tensor::squeeze(int64_t d) const { return cuvi::squeeze(*this, d); }
Tensor Tensor::expand(const Shape& s) const { return cuvi::expand(*this, s); }
Tensor Tensor::transpose(int64_t a, int64_t b) const { return cuvi::transpose(*this, a, b); }
Tensor Tensor::permute(const std::vector<int64_t>& dims) const { return cuvi::permute(*this, dims); }
Tensor Tensor::index_select(int64_t d, const Tensor& idx) const { return cuvi::index_select(*this, d, idx); }
Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  return cuvi::narrow(*this, d, start, length);
}
Tensor Tensor::operator[](int64_t i) const {
  CUVI_CHECK(dim() >= 1, ShapeError, "operator[]: tensor is 0-d");
  const int64_t n = size(0);
  CUVI_CHECK(i >= -n && i < n, IndexError, "operator[]: index " << i << " out of range for size " << n);
  if (i < 0) i += n;
  return cuvi::narrow(*this, 0, i, 1).squeeze(0);
}

Tensor Tensor::clone() const {
  check_defined("clone");
  return cuvi::add(*this, zeros({}, device()));
}

Tensor Tensor::to_float() const {
  if (dtype() == DType::kFloat32) return *this;
  Tensor out = empty(shape(), DType::kFloat32, device());
  backend(device()).cast_i64_to_f32(data<int64_t>(), out.data<float>(), numel());
  return out;
}

Tensor Tensor::to_int64() const {
  if (dtype() == DType::kInt64) return *this;
  Tensor out = empty(shape(), DType::kInt64, device());
  backend(device()).cast_f32_to_i64(data<float>(), out.data<int64_t>(), numel());
  return out;
}

std::string Tensor::str() const {
  if (!impl_) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor" << shape_str(shape()) << " " << dtype_name(dtype()) << " " << device().str();
  if (numel() <= 16) {
    os << " {";
    if (dtype() == DType::kFloat32) {
      auto v = to_vector();
      for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
    } else {
      auto v = to_vector_i64();
      for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
    }
    os << "}";
  }
  return os.str();
}

// ---- factories -----------------------------------------------------------

Tensor tensor(const std::vector<float>& values, const Shape& shape, Device dev) {
  CUVI_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), ShapeError,
             "tensor: " << values.size() << " values for shape " << shape_str(shape));
  Tensor t = Tensor::empty(shape, DType::kFloat32, dev);
  if (!values.empty()) backend(dev).copy_h2d(t.data<float>(), values.data(), values.size() * sizeof(float));
  return t;
}
Tensor tensor(std::initializer_list<float> values, Device dev) {
  return tensor(std::vector<float>(values), Shape{static_cast<int64_t>(values.size())}, dev);
}
Tensor tensor(const std::vector<float>& values, Device dev) {
  return tensor(values, Shape{static_cast<int64_t>(values.size())}, dev);
}
Tensor tensor(float scalar, Device dev) { return full({}, scalar, dev); }
Tensor scalar_tensor(float v, Device dev) { return full({}, v, dev); }

Tensor tensor_i64(const std::vector<int64_t>& values, const Shape& shape, Device dev) {
  CUVI_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), ShapeError,
             "tensor_i64: " << values.size() << " values for shape " << shape_str(shape));
  Tensor t = Tensor::empty(shape, DType::kInt64, dev);
  if (!values.empty()) backend(dev).copy_h2d(t.data<int64_t>(), values.data(), values.size() * sizeof(int64_t));
  return t;
}
Tensor tensor_i64(std::initializer_list<int64_t> values, Device dev) {
  return tensor_i64(std::vector<int64_t>(values), Shape{static_cast<int64_t>(values.size())}, dev);
}

Tensor full(const Shape& shape, float value, Device dev) {
  Tensor t = Tensor::empty(shape, DType::kFloat32, dev);
  backend(dev).fill_f32(t.data<float>(), t.numel(), value);
  return t;
}
Tensor zeros(const Shape& shape, Device dev) { return full(shape, 0.0f, dev); }
Tensor ones(const Shape& shape, Device dev) { return full(shape, 1.0f, dev); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.device()); }
Tensor full_like(const Tensor& t, float v) { return full(t.shape(), v, t.device()); }

Tensor arange(int64_t n, Device dev) {
  Tensor t = Tensor::empty({n}, DType::kFloat32, dev);
  backend(dev).arange_f32(t.data<float>(), n);
  return t;
}
Tensor arange_i64(int64_t n, Device dev) {
  Tensor t = Tensor::empty({n}, DType::kInt64, dev);
  backend(dev).arange_i64(t.data<int64_t>(), n);
  return t;
}

Tensor randn(const Shape& shape, Device dev) {
  Tensor t = Tensor::empty(shape, DType::kFloat32, dev);
  const RngState s = next_rng();
  backend(dev).rand_normal(t.data<float>(), t.numel(), s.seed, s.offset);
  return t;
}
Tensor rand(const Shape& shape, Device dev) {
  Tensor t = Tensor::empty(shape, DType::kFloat32, dev);
  const RngState s = next_rng();
  backend(dev).rand_uniform(t.data<float>(), t.numel(), s.seed, s.offset);
  return t;
}

// ---- grad mode -----------------------------------------------------------

NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = prev_; }
bool grad_enabled() { return t_grad_enabled; }

}  // namespace cuvi
