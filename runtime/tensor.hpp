// Tensor: shared, reference-counted, contiguous storage of float32 or int64
// values with up to 8 dimensions, on the CPU or a CUDA device, with
// reverse-mode autodiff. Work on a CUDA tensor is queued on the device's
// stream; only item(), to_vector() and to(cpu) wait for it.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "device.hpp"
#include "error.hpp"

namespace cuvi {

enum class DType : unsigned char { kFloat32 = 0, kInt64 = 1 };
inline const char* dtype_name(DType t) { return t == DType::kFloat32 ? "float32" : "int64"; }
inline size_t dtype_size(DType t) { return t == DType::kFloat32 ? 4 : 8; }

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
constexpr int kMaxDims = 8;

struct Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device;
  Storage(size_t nbytes, Device dev);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

class Node;
struct TensorImpl;
struct RowGrad;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Uninitialised storage (internal, and for users who fill it themselves).
  static Tensor empty(const Shape& shape, DType dtype, Device dev);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t dim() const;
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_float() const { return dtype() == DType::kFloat32; }

  // Reads (wait for the device).
  float item() const;
  int64_t item_i64() const;
  std::vector<float> to_vector() const;
  std::vector<int64_t> to_vector_i64() const;
  Tensor to(Device dev) const;  // differentiable; a no-op on the same device

  // Raw data (device or host pointer depending on device()).
  template <class T>
  T* data() const;

  // Autodiff.
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);
  void backward() const;                         // scalar tensors only
  void backward(const Tensor& grad_output) const;  // any shape, matching
  // The gradient, dense (undefined if none). Row-sparse parts a leaf
  // received (index_select with sparse_grad) are added into it first.
  Tensor grad() const;
  void zero_grad() const;                        // drops the gradient, parts too
  void set_grad(const Tensor& g) const;          // replaces both
  // Row-sparse gradient parts not yet added into grad() (see RowGrad).
  const std::vector<RowGrad>& row_grads() const;
  Tensor detach() const;
  bool is_leaf() const;
  const std::shared_ptr<Node>& grad_fn() const;

  // Views and shape ops (differentiable).
  Tensor reshape(const Shape& shape) const;
  Tensor view(const Shape& shape) const { return reshape(shape); }
  Tensor flatten() const { return reshape({numel()}); }
  Tensor unsqueeze(int64_t d) const;
  Tensor squeeze(int64_t d) const;
  Tensor expand(const Shape& shape) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor t() const { return transpose(-2, -1); }
  Tensor clone() const;
  Tensor index_select(int64_t d, const Tensor& idx) const;
  Tensor narrow(int64_t d, int64_t start, int64_t length) const;
  Tensor operator[](int64_t i) const;  // select along dim 0 (drops it)

  Tensor to_float() const;  // int64 -> float32 (identity on float32)
  Tensor to_int64() const;  // float32 -> int64 truncation, saturating, NaN -> 0 (identity on int64)

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  std::string str() const;  // "Tensor[2, 3] float32 cpu" plus values when small

 private:
  void check_defined(const char* what) const;
  std::shared_ptr<TensorImpl> impl_;
};

// A row-sparse part of a leaf's gradient, from index_select(leaf, dim,
// indices, /*sparse_grad=*/true): `values` is the gradient with respect to
// the rows `indices` (int64, 1-D) of dim `dim` of the leaf, shaped as the
// leaf with that dim's size replaced by indices.numel(). Parts are summed
// (repeated indices too) to give the dense gradient; optimizers that can
// update only those rows read them without making the dense N-row tensor.
// `distinct`: the indices hold no repeated row (TensorImpl::distinct_indices).
struct RowGrad {
  int64_t dim = 0;
  Tensor indices;
  Tensor values;
  bool distinct = false;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  DType dtype = DType::kFloat32;
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;
  std::shared_ptr<TensorImpl> grad;
  std::vector<RowGrad> row_grads;  // a leaf's row-sparse gradient parts, not yet in `grad`
  // An int64 index tensor whose entries are pairwise distinct (set where
  // such indices are made: a plate's subsample drawn without replacement).
  // index_select's backward then adds without sorting. Copies, transfers and
  // detached views do not carry it.
  bool distinct_indices = false;
  int64_t numel() const { return shape_numel(shape); }
};

template <class T>
T* Tensor::data() const {
  check_defined("data");
  return reinterpret_cast<T*>(static_cast<char*>(impl_->storage->ptr) + impl_->offset * dtype_size(impl_->dtype));
}

// Factories. float32 unless named _i64.
Tensor tensor(std::initializer_list<float> values, Device dev = default_device());
Tensor tensor(const std::vector<float>& values, const Shape& shape, Device dev = default_device());
Tensor tensor(const std::vector<float>& values, Device dev = default_device());
Tensor tensor(float scalar, Device dev = default_device());  // 0-d
Tensor tensor_i64(std::initializer_list<int64_t> values, Device dev = default_device());
Tensor tensor_i64(const std::vector<int64_t>& values, const Shape& shape, Device dev = default_device());
Tensor scalar_tensor(float v, Device dev = default_device());
Tensor zeros(const Shape& shape, Device dev = default_device());
Tensor ones(const Shape& shape, Device dev = default_device());
Tensor full(const Shape& shape, float value, Device dev = default_device());
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, float value);
Tensor arange(int64_t n, Device dev = default_device());      // float32 0..n-1
Tensor arange_i64(int64_t n, Device dev = default_device());  // int64 0..n-1
Tensor randn(const Shape& shape, Device dev = default_device());  // from the global generator
Tensor rand(const Shape& shape, Device dev = default_device());   // uniform in (0, 1)

// Disables graph recording in its scope (thread-local).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};
bool grad_enabled();

}  // namespace cuvi
