// CPU backend: the shared CUVI_HD math in loops on cuvi's thread pool
// (kernels/cpu_parallel.hpp), OpenBLAS for GEMM (one thread per block).
// Reductions split the reduced range into fixed chunks (independent of the
// thread count) accumulated in double, then add the chunk partials in order,
// so a sum has the same bits whatever OMP_NUM_THREADS is.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <sstream>
#include <type_traits>
#include <vector>

#include "../kernels/cpu_parallel.hpp"
#include "../kernels/dist/support.hpp"
#include "../kernels/linalg.hpp"
#include "../kernels/philox.hpp"
#include "../kernels/subsample.hpp"
#include "backend.hpp"
#include "error.hpp"

namespace cuvi {
namespace {

constexpr int64_t kParallelGrain = 1 << 14;
// Multiply-adds per block of a parallel matrix product (below: one sgemm).
constexpr int64_t kGemmGrain = int64_t{1} << 20;
constexpr int64_t kGemmAlign = 64;
constexpr int64_t kGemmMaxBlocks = 16;
constexpr int64_t kReduceChunk = 1 << 15;

// Host memory for tensors. An SVI step allocates and frees the same few
// small shapes every step (parameters, per-site log-probs, gradients), so
// blocks up to 1 MiB come from per-size-class free lists (powers of two from
// 64 B) instead of aligned_alloc/free each time; larger blocks go straight to
// aligned_alloc. A 64-byte header before each block holds its class (-1 for
// a large block). At most kCacheCap bytes are kept; the rest is freed.
class HostAllocator {
 public:
  void* allocate(size_t bytes) {
    if (bytes <= kMaxBlock && kCaching) {
      const int c = size_class(bytes);
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto& list = free_[static_cast<size_t>(c)];
        if (!list.empty()) {
          void* raw = list.back();
          list.pop_back();
          cached_ -= block_size(c);
          return static_cast<char*>(raw) + kHeader;
        }
      }
      return fresh(block_size(c), c);
    }
    return fresh((bytes + kHeader - 1) / kHeader * kHeader, -1);
  }
  void deallocate(void* p) noexcept {
    void* raw = static_cast<char*>(p) - kHeader;
    const int c = *static_cast<int*>(raw);
    if (c >= 0) {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + block_size(c) <= kCacheCap) {
        try {
          free_[static_cast<size_t>(c)].push_back(raw);
          cached_ += block_size(c);
          return;
        } catch (...) {  // no memory for the list: free the block instead
        }
      }
    }
    std::free(raw);
  }

 private:
  // Under AddressSanitizer every block is its own allocation, so that an
  // overrun or a use after free is still caught.
#if defined(__SANITIZE_ADDRESS__)
  static constexpr bool kCaching = false;
#else
  static constexpr bool kCaching = true;
#endif
  static constexpr size_t kHeader = 64;
  static constexpr int kMinShift = 6, kMaxShift = 20;
  static constexpr size_t kMaxBlock = size_t{1} << kMaxShift;
  static constexpr size_t kCacheCap = size_t{256} << 20;
  static size_t block_size(int c) { return size_t{1} << (c + kMinShift); }
  static int size_class(size_t bytes) {
    int c = 0;
    while (block_size(c) < bytes) ++c;
    return c;
  }
  static void* fresh(size_t payload, int c) {
    void* raw = std::aligned_alloc(kHeader, kHeader + payload);
    if (!raw) return nullptr;
    *static_cast<int*>(raw) = c;
    return static_cast<char*>(raw) + kHeader;
  }
  std::mutex mu_;
  std::vector<void*> free_[kMaxShift - kMinShift + 1];
  size_t cached_ = 0;
};

// Visits every element i of a broadcast geometry with its inputs' offsets,
// row by row along the innermost dim: the div/mod walk of BcastGeom::offset
// runs once per row, and the offsets then advance by the innermost strides.
template <int N, class Body>
void for_each_bcast(const kern::BcastGeom<N>& g, Body&& body) {
  const int64_t n = g.n;
  if (n == 0) return;
  const int64_t inner = g.ndim > 0 ? std::max<int64_t>(1, g.size[g.ndim - 1]) : 1;
  int64_t step[N];
  for (int k = 0; k < N; ++k)
    step[k] = g.kind[k] == kern::InKind::kSame     ? 1
              : g.kind[k] == kern::InKind::kScalar || g.ndim == 0 ? 0
                                                                 : g.stride[k][g.ndim - 1];
  ::cuvi::kern::cpu::parallel_for(n > kParallelGrain, n / inner, [&](int64_t r) {
    int64_t off[N];
    for (int k = 0; k < N; ++k) off[k] = g.offset(k, r * inner);
    for (int64_t j = 0, i = r * inner; j < inner; ++j, ++i) {
      body(i, off);
      for (int k = 0; k < N; ++k) off[k] += step[k];
    }
  });
}

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::cpu(); }

  void* allocate(size_t bytes) override {
    if (bytes == 0) bytes = 64;
    void* p = alloc_.allocate(bytes);
    CUVI_CHECK(p != nullptr, Error, "cpu: out of memory allocating " << bytes << " bytes");
    return p;
  }
  void deallocate(void* p) noexcept override {
    if (p) alloc_.deallocate(p);
  }
  void copy_h2d(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy_d2h(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy_d2d(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void synchronize() override {}
  void raise_deferred_errors() override {
    const int code = flag_.exchange(0);
    if (code != 0) checks_.raise(code, "device check failed", "");
  }
  int register_check(const std::string& message, CheckKind kind) override { return checks_.add(message, kind); }
  int* check_flag() override { return nullptr; }
  void check_range(const float* x, int64_t n, float lo, bool lo_open, float hi, int check) override {
    for (int64_t i = 0; i < n; ++i)
      if (!kern::in_range(x[i], lo, lo_open, hi)) {
        std::ostringstream what;
        what << ", got " << x[i];
        checks_.raise(check, "value check", what.str());
      }
  }
  void check_all(const float* ok, const float* value, int64_t n, int check) override {
    for (int64_t i = 0; i < n; ++i)
      if (ok[i] == 0.0f) {
        std::ostringstream what;
        what << ", got " << value[i];
        checks_.raise(check, "value check", what.str());
      }
  }

  void fill_f32(float* out, int64_t n, float v) override {
    ::cuvi::kern::cpu::parallel_for(n > kParallelGrain, n, [&](int64_t i) { out[i] = v; });
  }
  void fill_i64(int64_t* out, int64_t n, int64_t v) override {
    for (int64_t i = 0; i < n; ++i) out[i] = v;
  }
  void arange_f32(float* out, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(i);
  }
  void arange_i64(int64_t* out, int64_t n, int64_t start) override {
    for (int64_t i = 0; i < n; ++i) out[i] = start + i;
  }
  void cast_f32_to_i64(const float* x, int64_t* y, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) y[i] = kern::f32_to_i64(x[i]);
  }
  void cast_i64_to_f32(const int64_t* x, float* y, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i]);
  }

  void unary(kern::UnaryOp op, const float* x, float* y, int64_t n) override {
    kern::visit_unary(op, [&](auto c) {
      constexpr kern::UnaryOp kOp = decltype(c)::value;
      ::cuvi::kern::cpu::parallel_for(n > kParallelGrain, n, [&](int64_t i) { y[i] = kern::unary_fwd<kOp>(x[i]); });
    });
  }
  void unary_backward(kern::UnaryOp op, const float* x, const float* y, const float* g, float* gx,
                      int64_t n) override {
    kern::visit_unary(op, [&](auto c) {
      constexpr kern::UnaryOp kOp = decltype(c)::value;
      ::cuvi::kern::cpu::parallel_for(n > kParallelGrain, n,
                                      [&](int64_t i) { gx[i] = g[i] * kern::unary_deriv<kOp>(x[i], y[i]); });
    });
  }
  void binary(kern::BinaryOp op, const float* a, const float* b, float* out,
              const kern::BcastGeom<2>& geom) override {
    const int64_t n = geom.n;
    kern::visit_binary(op, [&](auto c) {
      constexpr kern::BinaryOp kOp = decltype(c)::value;
      if (geom.kind[0] == kern::InKind::kSame && geom.kind[1] == kern::InKind::kSame) {
        ::cuvi::kern::cpu::parallel_for(n > kParallelGrain, n,
                                        [&](int64_t i) { out[i] = kern::binary_fwd<kOp>(a[i], b[i]); });
        return;
      }
      for_each_bcast(geom, [&](int64_t i, const int64_t* o) { out[i] = kern::binary_fwd<kOp>(a[o[0]], b[o[1]]); });
    });
  }
  void binary_backward(kern::BinaryOp op, const float* a, const float* b, const float* g, float* ga, float* gb,
                       const kern::BcastGeom<3>& geom) override {
    const int64_t n = geom.n;
    kern::visit_binary(op, [&](auto c) {
      constexpr kern::BinaryOp kOp = decltype(c)::value;
      (void)n;
      for_each_bcast(geom, [&](int64_t i, const int64_t* o) {
        float da, db;
        kern::binary_deriv<kOp>(a[o[0]], b[o[1]], &da, &db);
        const float gi = g[o[2]];
        if (ga) ga[i] = gi * da;
        if (gb) gb[i] = gi * db;
      });
    });
  }
  void where(const float* cond, const float* a, const float* b, float* out,
             const kern::BcastGeom<3>& geom) override {
    const int64_t n = geom.n;
    (void)n;
    for_each_bcast(geom, [&](int64_t i, const int64_t* o) { out[i] = cond[o[0]] != 0.0f ? a[o[1]] : b[o[2]]; });
  }
  void betainc(const float* a, const float* b, const float* x, float* out,
               const kern::BcastGeom<3>& geom) override {
    for_each_bcast(geom, [&](int64_t i, const int64_t* o) { out[i] = kern::betainc_f(a[o[0]], b[o[1]], x[o[2]]); });
  }
  void betainc_backward(const float* a, const float* b, const float* x, const float* g, float* ga, float* gb,
                        float* gx, const kern::BcastGeom<4>& geom) override {
    for_each_bcast(geom, [&](int64_t i, const int64_t* o) {
      float da, db, dx;
      kern::betainc_grad_f(a[o[0]], b[o[1]], x[o[2]], &da, &db, &dx);
      const float gi = g[o[3]];
      if (ga) ga[i] = gi * da;
      if (gb) gb[i] = gi * db;
      if (gx) gx[i] = gi * dx;
    });
  }
  void clamp(const float* x, float* y, int64_t n, float lo, float hi) override {
    ::cuvi::kern::cpu::parallel_for(n > kParallelGrain, n, [&](int64_t i) { y[i] = kern::clamp_f(x[i], lo, hi); });
  }
  void clamp_backward(const float* x, const float* g, float* gx, int64_t n, float lo, float hi) override {
    ::cuvi::kern::cpu::parallel_for(n > kParallelGrain, n,
                                    [&](int64_t i) { gx[i] = (x[i] >= lo && x[i] <= hi) ? g[i] : 0.0f; });
  }
  void copy_strided(const void* src, void* dst, size_t elem_size, const kern::BcastGeom<2>& geom) override {
    const int64_t n = geom.n;
    const char* s = static_cast<const char*>(src);
    char* d = static_cast<char*>(dst);
    (void)n;
    if (elem_size == 4) {
      float* df = reinterpret_cast<float*>(d);
      const float* sf = reinterpret_cast<const float*>(s);
      for_each_bcast(geom, [&](int64_t, const int64_t* o) { df[o[1]] = sf[o[0]]; });
    } else {
      int64_t* di = reinterpret_cast<int64_t*>(d);
      const int64_t* si = reinterpret_cast<const int64_t*>(s);
      for_each_bcast(geom, [&](int64_t, const int64_t* o) { di[o[1]] = si[o[0]]; });
    }
  }

  void reduce_sum(const float* x, float* out, const kern::ReduceGeom& g) override {
    if (g.out_n >= 8 || g.red_n <= kReduceChunk) {
      ::cuvi::kern::cpu::parallel_for(g.out_n * g.red_n > kParallelGrain, g.out_n, [&](int64_t o) {
        const int64_t base = g.base(o);
        double acc = 0.0;
        for (int64_t r = 0; r < g.red_n; ++r) acc += x[base + g.inner(r)];
        out[o] = static_cast<float>(acc);
      });
      return;
    }
    // Few outputs, long reductions: fixed chunks in parallel, then in order.
    const int64_t chunks = (g.red_n + kReduceChunk - 1) / kReduceChunk;
    std::vector<double> partial(static_cast<size_t>(chunks));
    for (int64_t o = 0; o < g.out_n; ++o) {
      const int64_t base = g.base(o);
      ::cuvi::kern::cpu::parallel_for(true, chunks, [&](int64_t ch) {
        const int64_t lo = ch * kReduceChunk, hi = std::min(g.red_n, lo + kReduceChunk);
        double acc = 0.0;
        for (int64_t r = lo; r < hi; ++r) acc += x[base + g.inner(r)];
        partial[static_cast<size_t>(ch)] = acc;
      });
      double acc = 0.0;
      for (double p : partial) acc += p;
      out[o] = static_cast<float>(acc);
    }
  }
  void reduce_max(const float* x, float* out, const kern::ReduceGeom& g) override {
    ::cuvi::kern::cpu::parallel_for(g.out_n * g.red_n > kParallelGrain, g.out_n, [&](int64_t o) {
      const int64_t base = g.base(o);
      float m = -INFINITY;
      for (int64_t r = 0; r < g.red_n; ++r) {
        const float v = x[base + g.inner(r)];
        m = (v > m || std::isnan(v)) ? v : m;
      }
      out[o] = m;
    });
  }
  void cumsum(const float* x, float* y, int64_t outer, int64_t n, int64_t inner, bool reverse) override {
    ::cuvi::kern::cpu::parallel_for(outer * inner * n > kParallelGrain, outer * inner, [&](int64_t oi) {
      const int64_t o = oi / inner, i = oi % inner;
      const int64_t base = o * n * inner + i;
      double acc = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t jj = reverse ? n - 1 - j : j;
        acc += x[base + jj * inner];
        y[base + jj * inner] = static_cast<float>(acc);
      }
    });
  }
  int64_t first_nonfinite(const std::vector<std::pair<const float*, int64_t>>& spans) override {
    for (size_t s = 0; s < spans.size(); ++s) {
      const float* x = spans[s].first;
      // Fixed blocks; any of them raises one flag (no allocation per call:
      // this runs on every parameter's gradient each checked step).
      const int64_t n = spans[s].second, blocks = (n + kParallelGrain - 1) / kParallelGrain;
      std::atomic<bool> bad{false};
      ::cuvi::kern::cpu::parallel_for(blocks > 1, blocks, [&](int64_t b) {
        const int64_t lo = b * kParallelGrain, hi = std::min(n, lo + kParallelGrain);
        bool any = false;
        for (int64_t i = lo; i < hi; ++i) any = any || !std::isfinite(x[i]);
        if (any) bad.store(true, std::memory_order_relaxed);
      });
      if (bad.load(std::memory_order_relaxed)) return static_cast<int64_t>(s);
    }
    return -1;
  }

  // Products run on the pool: each task one sgemm over a block of C's rows
  // (or of its columns when it has few rows) of one batch entry, with
  // OpenBLAS on one thread (an OpenMP OpenBLAS follows the calling
  // thread's OpenMP setting, set to 1 around the call; a pthreads one was
  // set to 1 when the pool started). The blocks depend only on the shapes,
  // and each element's sum over k runs in OpenBLAS's fixed order for its
  // place in a block, so a product has the same bits on every run and for
  // every thread count.
  void gemm(const GemmArgs& a) override {
    if (a.batch == 0 || a.m == 0 || a.n == 0) return;
    const int lda = static_cast<int>(a.trans_a ? a.m : a.k);
    const int ldb = static_cast<int>(a.trans_b ? a.k : a.n);
    const int ldc = static_cast<int>(a.n);
    const CBLAS_TRANSPOSE ta = a.trans_a ? CblasTrans : CblasNoTrans, tb = a.trans_b ? CblasTrans : CblasNoTrans;
    // The blocks depend on the shapes only, never on the thread count: at
    // least kGemmGrain multiply-adds each, at most kGemmMaxBlocks per batch
    // entry, rows when there are enough of them, else columns, starting on
    // multiples of kGemmAlign. OpenBLAS's kernels handle a tile at the edge
    // of a call (M or N not a multiple of the micro-tile) with other code
    // than a full tile, and on some cores (Haswell: measured) that code adds
    // the k terms in another order; so the split itself must not change with
    // the thread count, or the bits would.
    const int64_t flops = a.m * a.n * a.k;
    const int64_t per_entry = std::max<int64_t>(1, std::min<int64_t>(kGemmMaxBlocks, flops / kGemmGrain));
    const bool by_rows = a.m >= a.n || a.m >= 4 * per_entry;
    const int64_t extent = by_rows ? a.m : a.n;
    const int64_t parts = std::min(per_entry, (extent + kGemmAlign - 1) / kGemmAlign);
    const int64_t step = (((extent + parts - 1) / parts + kGemmAlign - 1) / kGemmAlign) * kGemmAlign;
    const int64_t blocks = (extent + step - 1) / step;
    auto block = [&](int64_t t) {
      const int64_t b = t / blocks, lo = (t % blocks) * step, len = std::min(extent, lo + step) - lo;
      const float* A = a.a + b * a.stride_a;
      const float* B = a.b + b * a.stride_b;
      float* C = a.c + b * a.stride_c;
      // op(A)[lo:, :] starts at row lo of A, or at column lo of A^T; same for op(B)[:, lo:].
      if (by_rows) {
        A += a.trans_a ? lo : lo * lda;
        C += lo * ldc;
      } else {
        B += a.trans_b ? lo * ldb : lo;
        C += lo;
      }
      cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(by_rows ? len : a.m), static_cast<int>(by_rows ? a.n : len),
                  static_cast<int>(a.k), 1.0f, A, lda, B, ldb, a.accumulate ? 1.0f : 0.0f, C, ldc);
    };
    const int prev = omp_get_max_threads();
    if (prev != 1) omp_set_num_threads(1);
    try {
      ::cuvi::kern::cpu::parallel_for(a.batch * blocks > 1, a.batch * blocks, block);
    } catch (...) {
      if (prev != 1) omp_set_num_threads(prev);
      throw;
    }
    if (prev != 1) omp_set_num_threads(prev);
  }

  void cholesky(const float* A, float* L, int64_t batch, int64_t D, int check) override {
    // The first failing matrix by index, whatever the thread count.
    std::vector<float> pivot(static_cast<size_t>(batch), 0.0f);
    std::vector<unsigned char> bad(static_cast<size_t>(batch), 0);
    ::cuvi::kern::cpu::parallel_for(batch * D * D * D > kParallelGrain, batch, [&](int64_t i) {
      bad[static_cast<size_t>(i)] =
          kern::cholesky_lower(A + i * D * D, L + i * D * D, D, &pivot[static_cast<size_t>(i)]) >= 0;
    });
    for (int64_t i = 0; i < batch; ++i) {
      if (!bad[static_cast<size_t>(i)]) continue;
      std::ostringstream what;
      what << " (matrix " << i << " of the batch), got " << pivot[static_cast<size_t>(i)];
      checks_.raise(check, "cholesky", what.str());
    }
  }
  void trisolve(const float* L, const float* b, float* z, int64_t batch, int64_t D, int64_t l_batch_stride,
                bool transpose) override {
    ::cuvi::kern::cpu::parallel_for(batch * D * D > kParallelGrain, batch, [&](int64_t i) {
      kern::trisolve_lower(L + i * l_batch_stride, D, b + i * D, z + i * D, D, transpose);
    });
  }

  void index_select(const void* src, const int64_t* idx, void* out, size_t elem_size, const IndexGeom& g,
                    int check) override {
    check_indices(idx, g.idx_dim, g.src_dim, check);
    const int64_t total = g.outer * g.idx_dim;
    if (g.inner == 1) {  // one element per row (a plate's gather of a vector): no memcpy call per element
      auto gather_elems = [&](auto* o, const auto* sp) {
        ::cuvi::kern::cpu::parallel_for(total > kParallelGrain, total, [&](int64_t t) {
          o[t] = sp[(t / g.idx_dim) * g.src_dim + idx[t % g.idx_dim]];
        });
      };
      if (elem_size == 4) gather_elems(static_cast<float*>(out), static_cast<const float*>(src));
      else gather_elems(static_cast<int64_t*>(out), static_cast<const int64_t*>(src));
      return;
    }
    ::cuvi::kern::cpu::parallel_for(total * g.inner > kParallelGrain, total, [&](int64_t t) {
      const int64_t o = t / g.idx_dim, j = t % g.idx_dim;
      const char* s = static_cast<const char*>(src) + ((o * g.src_dim + idx[j]) * g.inner) * elem_size;
      char* d = static_cast<char*>(out) + ((o * g.idx_dim + j) * g.inner) * elem_size;
      std::memcpy(d, s, static_cast<size_t>(g.inner) * elem_size);
    });
  }
  // Accumulations into dst are deterministic: every destination element gets
  // its terms added in source order, whatever the thread count. In parallel,
  // either each task owns a block of columns (outer x inner wide enough), or
  // each owns a range of destination rows and scans all sources in order,
  // adding only its own (the index reads repeat per task; the adds do not).
  static int owner_parts(int64_t work) {
    if (work <= kParallelGrain) return 1;
    return std::max(1, std::min(::cuvi::kern::cpu::pool_threads(), static_cast<int>(work / kParallelGrain)));
  }
  void index_add(float* dst, const int64_t* idx, const float* src, const IndexGeom& g, int check) override {
    check_indices(idx, g.idx_dim, g.src_dim, check);
    const int64_t work = g.outer * g.idx_dim * g.inner;
    auto rows = [&](int64_t o, int64_t i0, int64_t i1, int64_t lo, int64_t hi) {
      for (int64_t j = 0; j < g.idx_dim; ++j) {
        const int64_t r = idx[j];
        if (r < lo || r >= hi) continue;
        float* d = dst + (o * g.src_dim + r) * g.inner;
        const float* s = src + (o * g.idx_dim + j) * g.inner;
        for (int64_t i = i0; i < i1; ++i) d[i] += s[i];
      }
    };
    const int parts = owner_parts(work);
    if (parts == 1) {
      for (int64_t o = 0; o < g.outer; ++o) rows(o, 0, g.inner, 0, g.src_dim);
      return;
    }
    constexpr int64_t kCols = 256;  // a column block: whole cache lines, enough work per task
    const int64_t col_blocks = (g.inner + kCols - 1) / kCols;
    if (g.outer * col_blocks >= parts) {
      ::cuvi::kern::cpu::parallel_for(true, g.outer * col_blocks, [&](int64_t t) {
        const int64_t o = t / col_blocks, c = t % col_blocks;
        rows(o, c * kCols, std::min(g.inner, (c + 1) * kCols), 0, g.src_dim);
      });
      return;
    }
    const int64_t span = (g.src_dim + parts - 1) / parts;
    ::cuvi::kern::cpu::parallel_for(true, g.outer * parts, [&](int64_t t) {
      const int64_t o = t / parts, p = t % parts;
      rows(o, 0, g.inner, p * span, std::min(g.src_dim, (p + 1) * span));
    });
  }
  // Distinct indices (a plate's draw): no two sources share a destination
  // row, so the rows are added independently, in parallel.
  void index_add_distinct(float* dst, const int64_t* idx, const float* src, const IndexGeom& g, int check) override {
    check_indices(idx, g.idx_dim, g.src_dim, check);
    const int64_t total = g.outer * g.idx_dim;
    ::cuvi::kern::cpu::parallel_for(total * g.inner > kParallelGrain, total, [&](int64_t t) {
      const int64_t o = t / g.idx_dim, j = t % g.idx_dim;
      float* d = dst + (o * g.src_dim + idx[j]) * g.inner;
      const float* s = src + t * g.inner;
      for (int64_t i = 0; i < g.inner; ++i) d[i] += s[i];
    });
  }
  void coalesce_rows(const int64_t* idx, const float* src, const IndexGeom& g, int64_t* rows,
                     float* out) override {
    const int64_t m = g.idx_dim;
    std::vector<int64_t> order(static_cast<size_t>(m));
    for (int64_t j = 0; j < m; ++j) order[static_cast<size_t>(j)] = j;
    auto key = [&](int64_t j) { return idx[j] >= 0 && idx[j] < g.src_dim ? idx[j] : g.src_dim; };
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return key(a) < key(b); });
    std::fill(out, out + g.outer * m * g.inner, 0.0f);
    for (int64_t t = 0; t < m;) {
      const int64_t k = key(order[static_cast<size_t>(t)]);
      const int64_t head = order[static_cast<size_t>(t)];
      int64_t e = t + 1;
      while (e < m && key(order[static_cast<size_t>(e)]) == k) ++e;
      for (int64_t u = t; u < e; ++u) rows[order[static_cast<size_t>(u)]] = -1;
      if (k < g.src_dim) {
        rows[head] = k;
        for (int64_t o = 0; o < g.outer; ++o)
          for (int64_t i = 0; i < g.inner; ++i) {
            float acc = 0.0f;
            for (int64_t u = t; u < e; ++u) acc += src[(o * m + order[static_cast<size_t>(u)]) * g.inner + i];
            out[(o * m + head) * g.inner + i] = acc;
          }
      }
      t = e;
    }
  }
  void gather(const float* src, const int64_t* idx, float* out, const IndexGeom& g, int check) override {
    const int64_t n = g.outer * g.idx_dim * g.inner;
    check_indices(idx, n, g.src_dim, check);
    ::cuvi::kern::cpu::parallel_for(n > kParallelGrain, n, [&](int64_t t) {
      const int64_t i = t % g.inner, o = t / (g.idx_dim * g.inner);
      out[t] = src[(o * g.src_dim + idx[t]) * g.inner + i];
    });
  }
  void scatter_add(float* dst, const int64_t* idx, const float* src, const IndexGeom& g, int check) override {
    const int64_t n = g.outer * g.idx_dim * g.inner;
    check_indices(idx, n, g.src_dim, check);
    // Destination rows (o, idx) in ranges owned by tasks, each scanning every
    // source element in order (see owner_parts).
    const int parts = owner_parts(n);
    const int64_t dst_rows = g.outer * g.src_dim;
    const int64_t span = (dst_rows + parts - 1) / parts;
    ::cuvi::kern::cpu::parallel_for(parts > 1, parts, [&](int64_t p) {
      const int64_t lo = p * span, hi = std::min(dst_rows, (p + 1) * span);
      for (int64_t t = 0; t < n; ++t) {
        const int64_t i = t % g.inner, o = t / (g.idx_dim * g.inner);
        const int64_t row = o * g.src_dim + idx[t];
        if (row >= lo && row < hi) dst[row * g.inner + i] += src[t];
      }
    });
  }

  void rand_uniform(float* out, int64_t n, uint64_t seed, uint32_t offset) override {
    ::cuvi::kern::cpu::parallel_for(n > kParallelGrain, n, [&](int64_t i) {
      kern::ElemRng rng(seed, static_cast<uint64_t>(i), offset);
      out[i] = rng.uniform();
    });
  }
  void rand_normal(float* out, int64_t n, uint64_t seed, uint32_t offset) override {
    ::cuvi::kern::cpu::parallel_for(n > kParallelGrain, n, [&](int64_t i) {
      kern::ElemRng rng(seed, static_cast<uint64_t>(i), offset);
      out[i] = rng.normal();
    });
  }
  void subsample(int64_t* out, int64_t N, int64_t B, uint64_t seed, uint32_t offset, int64_t base) override {
    const int hb = kern::subsample_half_bits(static_cast<uint64_t>(N));
    ::cuvi::kern::cpu::parallel_for(B > 4096, B,
                                    [&](int64_t i) { out[i] = base + kern::subsample_index(i, N, hb, seed, offset); });
  }

  // One optimizer update over one tensor, in blocks: each block copies the
  // hyper-parameters and pointers into locals that no store can alias, so the
  // compiler hoists the invariants and vectorises the update (the same
  // per-element function as the CUDA kernel's). update(p, s0, s1, s2, g, at,
  // h) updates element `at` of param and state with gradient value g (a null
  // state pointer is a buffer the update does not use). A
  // row-sparse slot goes row by row (each row's inner elements contiguous).
  template <class Hyper, class Update>
  static void optimizer_slot(const kern::OptSlot& sl, const Hyper& h, Update update) {
    constexpr int64_t kBlock = 4096;
    if (sl.rows) {
      const int64_t nrows = sl.inner > 0 ? sl.n / sl.inner : 0;  // outer * k
      const int64_t per = std::max<int64_t>(1, kBlock / std::max<int64_t>(1, sl.inner));
      const int64_t blocks = (nrows + per - 1) / per;
      ::cuvi::kern::cpu::parallel_for(sl.n > kParallelGrain, blocks, [&](int64_t b) {
        const Hyper hl = h;
        float* __restrict p = sl.param;
        float* __restrict s0 = sl.state0;
        float* __restrict s1 = sl.state1;
        float* __restrict s2 = sl.state2;
        const float* __restrict g = sl.grad;
        const int64_t inner = sl.inner;
        for (int64_t kr = b * per; kr < std::min(nrows, (b + 1) * per); ++kr) {
          const int64_t row = sl.rows[kr % sl.k];
          if (row < 0) continue;
          const int64_t at = ((kr / sl.k) * sl.dim_size + row) * inner;
          const float* __restrict gr = g + kr * inner;
#pragma omp simd
          for (int64_t j = 0; j < inner; ++j) update(p, s0, s1, s2, gr[j], at + j, hl);
        }
      });
      return;
    }
    const int64_t blocks = (sl.n + kBlock - 1) / kBlock;
    ::cuvi::kern::cpu::parallel_for(sl.n > kParallelGrain, blocks, [&](int64_t b) {
      const Hyper hl = h;
      float* __restrict p = sl.param;
      float* __restrict s0 = sl.state0;
      float* __restrict s1 = sl.state1;
      float* __restrict s2 = sl.state2;
      const float* __restrict g = sl.grad;
      const int64_t hi = std::min(sl.n, (b + 1) * kBlock);
      // The five arrays are distinct tensors: nothing overlaps.
#pragma omp simd
      for (int64_t i = b * kBlock; i < hi; ++i) update(p, s0, s1, s2, g[i], i, hl);
    });
  }
  void adam_step(const std::vector<kern::OptSlot>& slots, const std::vector<kern::AdamHyper>& hyper) override {
    for (size_t s = 0; s < slots.size(); ++s) {
      if (hyper[s].clipped_form)
        optimizer_slot(slots[s], hyper[s], [](float* p, float* s0, float* s1, float*, float g, int64_t i,
                                              const kern::AdamHyper& h) {
          kern::adam_update_form<1>(p + i, s0 + i, s1 + i, g, h);
        });
      else
        optimizer_slot(slots[s], hyper[s], [](float* p, float* s0, float* s1, float*, float g, int64_t i,
                                              const kern::AdamHyper& h) {
          kern::adam_update_form<0>(p + i, s0 + i, s1 + i, g, h);
        });
    }
  }
  void sgd_step(const std::vector<kern::OptSlot>& slots, const std::vector<kern::SgdHyper>& hyper) override {
    for (size_t s = 0; s < slots.size(); ++s)
      optimizer_slot(slots[s], hyper[s], [](float* p, float* s0, float*, float*, float g, int64_t i,
                                            const kern::SgdHyper& h) { kern::sgd_update(p + i, s0 + i, g, h); });
  }
  void adagrad_step(const std::vector<kern::OptSlot>& slots, const std::vector<kern::AdagradHyper>& hyper) override {
    for (size_t s = 0; s < slots.size(); ++s)
      optimizer_slot(slots[s], hyper[s], [](float* p, float* s0, float*, float*, float g, int64_t i,
                                            const kern::AdagradHyper& h) {
        kern::adagrad_update(p + i, s0 + i, g, h);
      });
  }
  void rmsprop_step(const std::vector<kern::OptSlot>& slots, const std::vector<kern::RmspropHyper>& hyper) override {
    for (size_t s = 0; s < slots.size(); ++s) {
      // The variant is fixed per tensor (see rmsprop_update_form); a buffer
      // it does not keep is passed as null, never offset.
      auto run = [&](auto centered, auto momentum) {
        constexpr bool kC = decltype(centered)::value, kM = decltype(momentum)::value;
        optimizer_slot(slots[s], hyper[s], [](float* p, float* s0, float* s1, float* s2, float g, int64_t i,
                                              const kern::RmspropHyper& h) {
          kern::rmsprop_update_form<kC, kM>(p + i, s0 + i, kM ? s1 + i : nullptr, kC ? s2 + i : nullptr, g, h);
        });
      };
      using T = std::true_type;
      using F = std::false_type;
      const bool momentum = hyper[s].momentum > 0.0f;
      if (hyper[s].centered && momentum) run(T{}, T{});
      else if (hyper[s].centered) run(T{}, F{});
      else if (momentum) run(F{}, T{});
      else run(F{}, F{});
    }
  }
  void adadelta_step(const std::vector<kern::OptSlot>& slots, const std::vector<kern::AdadeltaHyper>& hyper) override {
    for (size_t s = 0; s < slots.size(); ++s)
      optimizer_slot(slots[s], hyper[s], [](float* p, float* s0, float* s1, float*, float g, int64_t i,
                                            const kern::AdadeltaHyper& h) {
        kern::adadelta_update(p + i, s0 + i, s1 + i, g, h);
      });
  }



 private:
  HostAllocator alloc_;
  // On the CPU an index is checked before use, so the error is immediate.
  void check_indices(const int64_t* idx, int64_t n, int64_t bound, int check) {
    for (int64_t i = 0; i < n; ++i) {
      if (idx[i] < 0 || idx[i] >= bound) {
        std::ostringstream what;
        what << ": index " << idx[i] << " at position " << i << " is out of range [0, " << bound << ")";
        checks_.raise(check, "index op", what.str());
      }
    }
  }
  std::atomic<int> flag_{0};
  CheckRegistry checks_;
};

}  // namespace

Backend& cpu_backend() {
  // Never destroyed: tensors held by other statics (the param store, test
  // fixtures) may be freed after this function's statics would be.
  static CpuBackend* b = new CpuBackend;
  return *b;
}

}  // namespace cuvi
