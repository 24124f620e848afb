// The dispatch table: one Backend per device type, raw pointers only. The
// CPU backend always registers; the CUDA backend exists when it was built.
// Tensor-level code (runtime/ops.cpp, ppl/) calls through this interface and
// never #ifdefs on CUDA.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../kernels/elementwise.hpp"
#include "../kernels/indexing.hpp"
#include "device.hpp"
#include "error.hpp"

namespace cuvi {

struct GemmArgs {
  // Row-major C[b] = op(A[b]) * op(B[b]) (+ C[b] if accumulate); op(A) is
  // m x k, op(B) is k x n. Batch strides of 0 broadcast an operand.
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false, accumulate = false;
  const float* a = nullptr;
  const float* b = nullptr;
  float* c = nullptr;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
};

// Geometry of gather-type ops viewed as [outer, dim, inner].
struct IndexGeom {
  int64_t outer = 1, src_dim = 1, idx_dim = 1, inner = 1;
};

// What a failed device-side check raises: ValueError (validation, a
// factorisation) or IndexError (an index out of range), the same type on
// every backend, whether raised at once or at the next synchronisation.
enum class CheckKind { kValue, kIndex };

// The messages of a backend's device-side checks, interned (a check
// registered every step costs one lookup) and numbered from 1; thread-safe.
class CheckRegistry {
 public:
  int add(const std::string& message, CheckKind kind) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = codes_.find(message);
    if (it != codes_.end()) return it->second;
    checks_.emplace_back(message, kind);
    const int code = static_cast<int>(checks_.size());
    codes_.emplace(message, code);
    return code;
  }
  // Throws code's exception (`fallback` for an unknown code) with `what`
  // appended to its message.
  [[noreturn]] void raise(int code, const char* fallback, const std::string& what) const {
    std::pair<std::string, CheckKind> c{fallback, CheckKind::kValue};
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (code > 0 && code <= static_cast<int>(checks_.size())) c = checks_[static_cast<size_t>(code - 1)];
    }
    if (c.second == CheckKind::kIndex) detail::raise<IndexError>(c.first + what, __FILE__, __LINE__);
    detail::raise<ValueError>(c.first + what, __FILE__, __LINE__);
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, CheckKind>> checks_;
  std::unordered_map<std::string, int> codes_;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // Memory and transfers. copy_d2h waits for the device.
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p) noexcept = 0;
  virtual void copy_h2d(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_d2h(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_d2d(void* dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() = 0;
  // Errors found by device code (range checks, validation) are recorded in a
  // flag and raised here, at the next synchronisation.
  virtual void raise_deferred_errors() = 0;
  // Registers a message for a device-side check; returns the code kernels
  // write into the flag when the check fails.
  virtual int register_check(const std::string& message, CheckKind kind = CheckKind::kValue) = 0;
  virtual int* check_flag() = 0;
  // A value check built from tensor ops: every ok[i] must be nonzero; the
  // first failing i (on the cpu, at once; on a GPU, any one, at the next
  // synchronisation) raises `check` with ", got value[i]".
  virtual void check_all(const float* ok, const float* value, int64_t n, int check) = 0;
  // The same for a range, in one pass and no mask: every x[i] must satisfy
  // (lo_open ? x > lo : x >= lo) and x <= hi (NaN fails).
  virtual void check_range(const float* x, int64_t n, float lo, bool lo_open, float hi, int check) = 0;

  // Elementwise.
  virtual void fill_f32(float* out, int64_t n, float v) = 0;
  virtual void fill_i64(int64_t* out, int64_t n, int64_t v) = 0;
  virtual void arange_f32(float* out, int64_t n) = 0;
  virtual void arange_i64(int64_t* out, int64_t n, int64_t start = 0) = 0;  // start, start + 1, ...
  virtual void cast_f32_to_i64(const float* x, int64_t* y, int64_t n) = 0;
  virtual void cast_i64_to_f32(const int64_t* x, float* y, int64_t n) = 0;
  virtual void unary(kern::UnaryOp op, const float* x, float* y, int64_t n) = 0;
  virtual void unary_backward(kern::UnaryOp op, const float* x, const float* y, const float* g, float* gx,
                              int64_t n) = 0;
  virtual void binary(kern::BinaryOp op, const float* a, const float* b, float* out,
                      const kern::BcastGeom<2>& geom) = 0;
  // Writes g * d out/d a and g * d out/d b in the output's shape (null skips).
  virtual void binary_backward(kern::BinaryOp op, const float* a, const float* b, const float* g, float* ga,
                               float* gb, const kern::BcastGeom<3>& geom) = 0;
  virtual void where(const float* cond, const float* a, const float* b, float* out,
                     const kern::BcastGeom<3>& geom) = 0;
  // out = I_x(a, b); the backward writes g * the partials in the output's
  // shape (null skips).
  virtual void betainc(const float* a, const float* b, const float* x, float* out,
                       const kern::BcastGeom<3>& geom) = 0;
  virtual void betainc_backward(const float* a, const float* b, const float* x, const float* g, float* ga,
                                float* gb, float* gx, const kern::BcastGeom<4>& geom) = 0;
  virtual void clamp(const float* x, float* y, int64_t n, float lo, float hi) = 0;
  virtual void clamp_backward(const float* x, const float* g, float* gx, int64_t n, float lo, float hi) = 0;
  // dst[offset(1, i)] = src[offset(0, i)] over the geometry's index space.
  virtual void copy_strided(const void* src, void* dst, size_t elem_size, const kern::BcastGeom<2>& geom) = 0;

  // Reductions (deterministic).
  virtual void reduce_sum(const float* x, float* out, const kern::ReduceGeom& g) = 0;
  virtual void reduce_max(const float* x, float* out, const kern::ReduceGeom& g) = 0;
  virtual void cumsum(const float* x, float* y, int64_t outer, int64_t n, int64_t inner, bool reverse) = 0;
  // The position in `spans` of the first (pointer, count) span holding a
  // non-finite value, or -1 when all are finite. Waits for the device once
  // for all of them.
  virtual int64_t first_nonfinite(const std::vector<std::pair<const float*, int64_t>>& spans) = 0;

  virtual void gemm(const GemmArgs& args) = 0;
  // Batched triangular solve: for each of `batch` vectors, z[i] = L[i]^{-1}
  // b[i] (or L[i]^{-T} b[i] with transpose). L[i] is D x D lower triangular
  // at L + i * l_batch_stride (0 broadcasts one matrix); b, z are
  // contiguous [batch, D] and must not alias.
  virtual void trisolve(const float* L, const float* b, float* z, int64_t batch, int64_t D, int64_t l_batch_stride,
                        bool transpose) = 0;
  // Cholesky factors of `batch` contiguous D x D matrices (kern::cholesky_lower).
  // A matrix that is not positive definite: `check` (register_check) is
  // raised with the failing pivot, at once on the cpu, at the next
  // synchronisation on a GPU.
  virtual void cholesky(const float* A, float* L, int64_t batch, int64_t D, int check) = 0;

  // Indexing; `check` is a code from register_check reported for an index
  // out of [0, src_dim).
  virtual void index_select(const void* src, const int64_t* idx, void* out, size_t elem_size, const IndexGeom& g,
                            int check) = 0;
  virtual void index_add(float* dst, const int64_t* idx, const float* src, const IndexGeom& g, int check) = 0;
  // index_add when the caller guarantees idx holds no repeated index (a
  // subsample drawn without replacement): every target gets at most one
  // term, so a backend may add them all at once (CUDA: one launch, no sort).
  virtual void index_add_distinct(float* dst, const int64_t* idx, const float* src, const IndexGeom& g, int check) {
    index_add(dst, idx, src, g, check);
  }
  // Row-sparse gradient coalescing (coalesce_row_grads): src is [outer,
  // idx_dim, inner] with rows idx (each in [0, src_dim); others are skipped
  // with index -1); for each distinct row, at its first position p: rows[p]
  // = the row and out[.., p, ..] = the sum of its terms in order of
  // position; at the other positions rows = -1 and out = 0.
  virtual void coalesce_rows(const int64_t* idx, const float* src, const IndexGeom& g, int64_t* rows,
                             float* out) = 0;
  virtual void gather(const float* src, const int64_t* idx, float* out, const IndexGeom& g, int check) = 0;
  virtual void scatter_add(float* dst, const int64_t* idx, const float* src, const IndexGeom& g, int check) = 0;

  // Random draws addressed by (seed, element, offset): same values on every
  // backend.
  virtual void rand_uniform(float* out, int64_t n, uint64_t seed, uint32_t offset) = 0;
  virtual void rand_normal(float* out, int64_t n, uint64_t seed, uint32_t offset) = 0;
  // B distinct indices in [0, N), uniformly, in O(B) work, plus base (a
  // sharded plate's first row).
  virtual void subsample(int64_t* out, int64_t N, int64_t B, uint64_t seed, uint32_t offset, int64_t base = 0) = 0;

  // Multi-tensor optimizer steps (one launch on CUDA).
  virtual void adam_step(const std::vector<kern::OptSlot>& slots, const std::vector<kern::AdamHyper>& hyper) = 0;
  virtual void sgd_step(const std::vector<kern::OptSlot>& slots, const std::vector<kern::SgdHyper>& hyper) = 0;
  virtual void adagrad_step(const std::vector<kern::OptSlot>& slots,
                            const std::vector<kern::AdagradHyper>& hyper) = 0;
  // state0 square_avg, state1 momentum_buffer (momentum > 0), state2
  // grad_avg (centered); a buffer the hyper-parameters do not use may be null.
  virtual void rmsprop_step(const std::vector<kern::OptSlot>& slots,
                            const std::vector<kern::RmspropHyper>& hyper) = 0;
  // state0 square_avg, state1 acc_delta.
  virtual void adadelta_step(const std::vector<kern::OptSlot>& slots,
                             const std::vector<kern::AdadeltaHyper>& hyper) = 0;
};

// The backend of a device; throws DeviceError naming the device when it is
// not available (CUDA not built, no such GPU).
Backend& backend(Device d);
Backend& cpu_backend();
// Defined by the CUDA backend when built; returns nullptr otherwise or when
// no device is usable. Creating it is lazy (never in static initialisers).
Backend* cuda_backend(int index);
int cuda_backend_device_count();

}  // namespace cuvi
