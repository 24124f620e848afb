// CUDA backend: hand-written kernels over the shared CUVI_HD math, CUB block
// reductions, cuBLAS for GEMM. All work is queued on one non-blocking stream
// per device; memory comes from the device's stream-ordered pool, whose
// release threshold is raised so freed blocks stay cached between steps.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cub/block/block_reduce.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "../kernels/cuda/launch.cuh"
#include "../kernels/dist/support.hpp"
#include "../kernels/linalg.hpp"
#include "../kernels/philox.hpp"
#include "../kernels/subsample.hpp"
#include "backend.hpp"
#include "cuda_context.hpp"
#include "error.hpp"

namespace cuvi {
namespace detail {
void count_sync();  // runtime/tensor.cpp: the host-synchronisation counter
}
namespace {

using kern::cuda::grid_for;
using kern::cuda::kThreads;

#define CUVI_CUBLAS_CHECK(call)                                                                   \
  do {                                                                                            \
    cublasStatus_t st_ = (call);                                                                  \
    CUVI_CHECK(st_ == CUBLAS_STATUS_SUCCESS, CudaError, "cuBLAS error " << static_cast<int>(st_) << " in " #call); \
  } while (0)

// ---- kernels ---------------------------------------------------------------

// flag[0]: the first failing check's code; flag[1]: the offending value's
// float bits, written by the thread that won the race.
__device__ __forceinline__ void report(int* flag, int code, float value) {
  if (flag && atomicCAS(flag, 0, code) == 0) flag[1] = __float_as_int(value);
}

__global__ void fill_f32_kernel(float* out, int64_t n, float v) {
  CUVI_GRID_STRIDE(i, n) out[i] = v;
}
__global__ void fill_i64_kernel(int64_t* out, int64_t n, int64_t v) {
  CUVI_GRID_STRIDE(i, n) out[i] = v;
}
__global__ void arange_f32_kernel(float* out, int64_t n) {
  CUVI_GRID_STRIDE(i, n) out[i] = static_cast<float>(i);
}
__global__ void arange_i64_kernel(int64_t* out, int64_t n, int64_t start) {
  CUVI_GRID_STRIDE(i, n) out[i] = start + i;
}
__global__ void cast_f32_i64_kernel(const float* x, int64_t* y, int64_t n) {
  CUVI_GRID_STRIDE(i, n) y[i] = kern::f32_to_i64(x[i]);
}
__global__ void cast_i64_f32_kernel(const int64_t* x, float* y, int64_t n) {
  CUVI_GRID_STRIDE(i, n) y[i] = static_cast<float>(x[i]);
}

template <kern::UnaryOp op>
__global__ void unary_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n) {
  CUVI_GRID_STRIDE(i, n) y[i] = kern::unary_fwd<op>(x[i]);
}
template <kern::UnaryOp op>
__global__ void unary_backward_kernel(const float* __restrict__ x, const float* __restrict__ y,
                                      const float* __restrict__ g, float* __restrict__ gx, int64_t n) {
  CUVI_GRID_STRIDE(i, n) gx[i] = g[i] * kern::unary_deriv<op>(x[i], y[i]);
}
template <kern::BinaryOp op>
__global__ void binary_kernel(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out,
                              const kern::BcastGeom<2> geom) {
  CUVI_GRID_STRIDE(i, geom.n) out[i] = kern::binary_fwd<op>(a[geom.offset(0, i)], b[geom.offset(1, i)]);
}
template <kern::BinaryOp op>
__global__ void binary_backward_kernel(const float* __restrict__ a, const float* __restrict__ b,
                                       const float* __restrict__ g, float* ga, float* gb,
                                       const kern::BcastGeom<3> geom) {
  CUVI_GRID_STRIDE(i, geom.n) {
    float da, db;
    kern::binary_deriv<op>(a[geom.offset(0, i)], b[geom.offset(1, i)], &da, &db);
    const float gi = g[geom.offset(2, i)];
    if (ga) ga[i] = gi * da;
    if (gb) gb[i] = gi * db;
  }
}
__global__ void where_kernel(const float* c, const float* a, const float* b, float* out,
                             const kern::BcastGeom<3> geom) {
  CUVI_GRID_STRIDE(i, geom.n) out[i] = c[geom.offset(0, i)] != 0.0f ? a[geom.offset(1, i)] : b[geom.offset(2, i)];
}
__global__ void betainc_kernel(const float* a, const float* b, const float* x, float* out,
                               const kern::BcastGeom<3> geom) {
  CUVI_GRID_STRIDE(i, geom.n) out[i] = kern::betainc_f(a[geom.offset(0, i)], b[geom.offset(1, i)], x[geom.offset(2, i)]);
}
__global__ void betainc_backward_kernel(const float* a, const float* b, const float* x, const float* g, float* ga,
                                        float* gb, float* gx, const kern::BcastGeom<4> geom) {
  CUVI_GRID_STRIDE(i, geom.n) {
    float da, db, dx;
    kern::betainc_grad_f(a[geom.offset(0, i)], b[geom.offset(1, i)], x[geom.offset(2, i)], &da, &db, &dx);
    const float gi = g[geom.offset(3, i)];
    if (ga) ga[i] = gi * da;
    if (gb) gb[i] = gi * db;
    if (gx) gx[i] = gi * dx;
  }
}
__global__ void clamp_kernel(const float* x, float* y, int64_t n, float lo, float hi) {
  CUVI_GRID_STRIDE(i, n) y[i] = kern::clamp_f(x[i], lo, hi);
}
__global__ void clamp_backward_kernel(const float* x, const float* g, float* gx, int64_t n, float lo, float hi) {
  CUVI_GRID_STRIDE(i, n) gx[i] = (x[i] >= lo && x[i] <= hi) ? g[i] : 0.0f;
}
template <class T>
__global__ void copy_strided_kernel(const T* src, T* dst, const kern::BcastGeom<2> geom) {
  CUVI_GRID_STRIDE(i, geom.n) dst[geom.offset(1, i)] = src[geom.offset(0, i)];
}

// Deterministic reductions: every output's terms are combined in an order
// fixed by the geometry and the block size alone (no atomics, no SM count).
struct SumOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
  static constexpr float kInit = 0.0f;
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return (a > b || a != a) ? a : b; }
  static constexpr float kInit = -INFINITY;
};

constexpr int kReduceItems = 16;
constexpr int64_t kReduceChunk = static_cast<int64_t>(kThreads) * kReduceItems;

// Pass 1 of a trailing reduction (each output reduces n contiguous inputs):
// block (b, o) reduces the fixed chunk [b*chunk, (b+1)*chunk) of output o's
// row with a fixed thread assignment into partial[o * gridDim.x + b].
template <class Op>
__global__ void reduce_chunks_kernel(const float* __restrict__ x, int64_t n, float* __restrict__ partial) {
  using BlockReduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename BlockReduce::TempStorage tmp;
  Op op;
  x += static_cast<int64_t>(blockIdx.y) * n;
  partial += static_cast<int64_t>(blockIdx.y) * gridDim.x;
  const int64_t base = static_cast<int64_t>(blockIdx.x) * kReduceChunk;
  float acc = Op::kInit;
#pragma unroll
  for (int j = 0; j < kReduceItems; ++j) {
    const int64_t i = base + static_cast<int64_t>(j) * kThreads + threadIdx.x;
    if (i < n) acc = op(acc, x[i]);
  }
  const float r = BlockReduce(tmp).Reduce(acc, op);
  if (threadIdx.x == 0) partial[blockIdx.x] = r;
}

// One block per output over a general geometry (also pass 2 of the above).
template <class Op>
__global__ void reduce_block_per_output_kernel(const float* __restrict__ x, float* __restrict__ out,
                                               const kern::ReduceGeom g) {
  using BlockReduce = cub::BlockReduce<float, kThreads>;
  __shared__ typename BlockReduce::TempStorage tmp;
  Op op;
  for (int64_t o = blockIdx.x; o < g.out_n; o += gridDim.x) {
    const int64_t base = g.base(o);
    float acc = Op::kInit;
    for (int64_t r = threadIdx.x; r < g.red_n; r += kThreads) acc = op(acc, x[base + g.inner(r)]);
    const float res = BlockReduce(tmp).Reduce(acc, op);
    if (threadIdx.x == 0) out[o] = res;
    __syncthreads();
  }
}

// One warp per output, for contiguous trailing rows of 64 < red_n <=
// kReduceChunk (a [N, 256] tensor's row sums or maxima). A block per such
// row would leave most of its 256 threads one element each and spend the
// launch on block-wide reductions; here the 32 lanes read the row
// coalesced (lane, lane + 32, ...) and combine by shuffles, in a fixed
// order: the same bits on every run.
constexpr int kWarpsPerBlock = kThreads / 32;
template <class Op>
__global__ void reduce_warp_per_output_kernel(const float* __restrict__ x, float* __restrict__ out, int64_t out_n,
                                              int64_t red_n) {
  Op op;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  // o is the same for the warp's 32 lanes, so every shuffle has all of them.
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + static_cast<int64_t>(threadIdx.x) / 32;
       o < out_n; o += warps) {
    const float* row = x + o * red_n;
    float acc = Op::kInit;
    for (int64_t r = lane; r < red_n; r += 32) acc = op(acc, row[r]);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc = op(acc, __shfl_xor_sync(0xffffffffu, acc, off));
    if (lane == 0) out[o] = acc;
  }
}

// One thread per output, for short reductions.
template <class Op>
__global__ void reduce_thread_per_output_kernel(const float* __restrict__ x, float* __restrict__ out,
                                                const kern::ReduceGeom g) {
  Op op;
  CUVI_GRID_STRIDE(o, g.out_n) {
    const int64_t base = g.base(o);
    float acc = Op::kInit;
    for (int64_t r = 0; r < g.red_n; ++r) acc = op(acc, x[base + g.inner(r)]);
    out[o] = acc;
  }
}

// Leading layout (input offset r * out_n + o: the reduced dims come first,
// as when a [K] parameter's gradient is summed over a [N, K] plate). A block
// takes 32 adjacent outputs (a warp reads 128 contiguous bytes per row) and
// a fixed chunk of rows, 8 rows at a time; the 8 row-partials of each output
// are combined in order through shared memory, and each chunk's result goes
// to partial[chunk * out_n + o]. Chunk sizes depend on red_n alone, so the
// bits are the same on every run and every GPU.
constexpr int kLeadCols = 32;
constexpr int kLeadRows = kThreads / kLeadCols;
template <class Op>
__global__ void reduce_leading_kernel(const float* __restrict__ x, int64_t red_n, int64_t out_n, int64_t chunk,
                                      float* __restrict__ partial) {
  __shared__ float tile[kLeadRows][kLeadCols + 1];
  Op op;
  const int tx = static_cast<int>(threadIdx.x) % kLeadCols, ty = static_cast<int>(threadIdx.x) / kLeadCols;
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kLeadCols + tx;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk;
  const int64_t r1 = r0 + chunk < red_n ? r0 + chunk : red_n;
  float acc = Op::kInit;
  if (o < out_n)
    for (int64_t r = r0 + ty; r < r1; r += kLeadRows) acc = op(acc, x[r * out_n + o]);
  tile[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && o < out_n) {
    float res = tile[0][tx];
#pragma unroll
    for (int k = 1; k < kLeadRows; ++k) res = op(res, tile[k][tx]);
    partial[static_cast<int64_t>(blockIdx.y) * out_n + o] = res;
  }
}

__global__ void cumsum_kernel(const float* x, float* y, int64_t outer, int64_t n, int64_t inner, bool reverse) {
  CUVI_GRID_STRIDE(oi, outer * inner) {
    const int64_t o = oi / inner, i = oi % inner;
    const int64_t base = o * n * inner + i;
    // Accumulated in double, as the CPU backend does: the same bits.
    double acc = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t jj = reverse ? n - 1 - j : j;
      acc += x[base + jj * inner];
      y[base + jj * inner] = static_cast<float>(acc);
    }
  }
}

// Long lines with few of them (a random walk's cumsum over 1e6 steps): one
// thread per line would be one long serial chain. The line is cut, in scan
// order, into fixed chunks of kScanChunk: pass 1 sums each chunk (double),
// pass 2 turns a line's chunk sums into exclusive offsets in order (one
// thread per line), pass 3 rescans each chunk from its offset. A fixed
// order, so the same bits on every run; the double partials keep it within
// float rounding of the CPU's sequential double sum. Thread t of passes 1
// and 3 is (o, c, i), inner fastest, so inner > 1 reads are coalesced.
constexpr int64_t kScanChunk = 2048;
struct ScanGeom {
  int64_t outer, n, inner, chunks;
  bool reverse;
  __device__ int64_t at(int64_t o, int64_t j, int64_t i) const {  // j: position in scan order
    return (o * n + (reverse ? n - 1 - j : j)) * inner + i;
  }
};
__global__ void scan_chunk_sums_kernel(const float* x, double* sums, const ScanGeom g) {
  CUVI_GRID_STRIDE(t, g.outer * g.chunks * g.inner) {
    const int64_t i = t % g.inner, c = (t / g.inner) % g.chunks, o = t / (g.inner * g.chunks);
    const int64_t lo = c * kScanChunk, hi = lo + kScanChunk < g.n ? lo + kScanChunk : g.n;
    double acc = 0.0;
    for (int64_t j = lo; j < hi; ++j) acc += x[g.at(o, j, i)];
    sums[t] = acc;
  }
}
__global__ void scan_chunk_offsets_kernel(double* sums, const ScanGeom g) {
  CUVI_GRID_STRIDE(line, g.outer * g.inner) {
    const int64_t o = line / g.inner, i = line % g.inner;
    double acc = 0.0;
    for (int64_t c = 0; c < g.chunks; ++c) {
      double& s = sums[(o * g.chunks + c) * g.inner + i];
      const double chunk = s;
      s = acc;
      acc += chunk;
    }
  }
}
__global__ void scan_chunks_kernel(const float* x, float* y, const double* offsets, const ScanGeom g) {
  CUVI_GRID_STRIDE(t, g.outer * g.chunks * g.inner) {
    const int64_t i = t % g.inner, c = (t / g.inner) % g.chunks, o = t / (g.inner * g.chunks);
    const int64_t lo = c * kScanChunk, hi = lo + kScanChunk < g.n ? lo + kScanChunk : g.n;
    double acc = offsets[t];
    for (int64_t j = lo; j < hi; ++j) {
      const int64_t k = g.at(o, j, i);
      acc += x[k];
      y[k] = static_cast<float>(acc);
    }
  }
}

// Up to kMaxSpans tensors per launch, blockIdx.y selecting one: a
// non-finite element of span s raises *first to INT_MAX - (first_span + s),
// so the largest value left names the first such span and 0 (the memset)
// means none.
constexpr int kMaxSpans = 64;
struct SpanPack {
  const float* x[kMaxSpans];
  int64_t n[kMaxSpans];
  int first_span;
};
__global__ void nonfinite_kernel(const SpanPack pack, int* first) {
  const float* x = pack.x[blockIdx.y];
  const int me = pack.first_span + static_cast<int>(blockIdx.y);
  CUVI_GRID_STRIDE(i, pack.n[blockIdx.y]) {
    if (!isfinite(x[i])) {
      atomicMax(first, INT_MAX - me);
      break;
    }
  }
}

template <class T>
__global__ void index_select_kernel(const T* src, const int64_t* idx, T* out, const IndexGeom g, int* flag, int code) {
  const int64_t n = g.outer * g.idx_dim * g.inner;
  CUVI_GRID_STRIDE(t, n) {
    const int64_t i = t % g.inner, j = (t / g.inner) % g.idx_dim, o = t / (g.inner * g.idx_dim);
    const int64_t k = idx[j];
    if (k < 0 || k >= g.src_dim) {
      report(flag, code, static_cast<float>(k));
      out[t] = T(0);
    } else {
      out[t] = src[(o * g.src_dim + k) * g.inner + i];
    }
  }
}

// The index check alone, for an op whose values are empty (outer * inner ==
// 0) while its indices are not: the CPU backend checks them all the same.
__global__ void check_indices_kernel(const int64_t* idx, int64_t n, int64_t bound, int* flag, int code) {
  CUVI_GRID_STRIDE(j, n) {
    const int64_t k = idx[j];
    if (k < 0 || k >= bound) report(flag, code, static_cast<float>(k));
  }
}

__global__ void check_range_kernel(const float* x, int64_t n, float lo, bool lo_open, float hi, int* flag,
                                   int code) {
  CUVI_GRID_STRIDE(i, n) {
    if (!kern::in_range(x[i], lo, lo_open, hi)) report(flag, code, x[i]);
  }
}
__global__ void check_all_kernel(const float* ok, const float* value, int64_t n, int* flag, int code) {
  CUVI_GRID_STRIDE(i, n) {
    if (ok[i] == 0.0f) report(flag, code, value[i]);
  }
}

// index_add / scatter_add without float atomics: every target receives its
// terms in a fixed order, so the result has the same bits on every run, even
// when indices repeat (the backward of index_select/gather of a hierarchical
// model's group parameters). A target with at most kRunChunk terms gets them
// in the CPU backend's order (increasing source position) from one thread:
// the CPU loop's result, bit for bit.
//
// Few indices per column: one thread per (outer, inner) column walks them in
// order; distinct columns never share a target.
constexpr int64_t kColumnLoopMax = 16;
__global__ void index_add_columns_kernel(float* dst, const int64_t* idx, const float* src, const IndexGeom g,
                                         int* flag, int code) {
  CUVI_GRID_STRIDE(c, g.outer * g.inner) {
    const int64_t o = c / g.inner, i = c % g.inner;
    for (int64_t j = 0; j < g.idx_dim; ++j) {
      const int64_t k = idx[j];
      if (k < 0 || k >= g.src_dim) report(flag, code, static_cast<float>(k));
      else dst[(o * g.src_dim + k) * g.inner + i] += src[(o * g.idx_dim + j) * g.inner + i];
    }
  }
}
__global__ void scatter_add_columns_kernel(float* dst, const int64_t* idx, const float* src, const IndexGeom g,
                                           int* flag, int code) {
  CUVI_GRID_STRIDE(c, g.outer * g.inner) {
    const int64_t o = c / g.inner, i = c % g.inner;
    for (int64_t j = 0; j < g.idx_dim; ++j) {
      const int64_t t = (o * g.idx_dim + j) * g.inner + i;
      const int64_t k = idx[t];
      if (k < 0 || k >= g.src_dim) report(flag, code, static_cast<float>(k));
      else dst[(o * g.src_dim + k) * g.inner + i] += src[t];
    }
  }
}

// Row-gradient coalescing (Backend::coalesce_rows): (row key, position)
// pairs are sorted stably, so a run's head holds the row's first position;
// one thread per (sorted position, outer, inner) writes its position once:
// the head the run's terms summed in position order (the CPU's order and
// bits), every other position zero and row -1. Rows outside [0, bound) (an
// index the select already reported) sort last as `bound` and are skipped.
__global__ void coalesce_keys_kernel(const int64_t* idx, int64_t m, int64_t bound, uint64_t* key, int64_t* pos) {
  CUVI_GRID_STRIDE(j, m) {
    const int64_t k = idx[j];
    key[j] = static_cast<uint64_t>(k < 0 || k >= bound ? bound : k);
    pos[j] = j;
  }
}
__global__ void coalesce_runs_kernel(const uint64_t* key, const int64_t* pos, const float* src, const IndexGeom g,
                                     int64_t* rows, float* out) {
  const int64_t m = g.idx_dim;
  CUVI_GRID_STRIDE(e, g.outer * m * g.inner) {
    const int64_t i = e % g.inner, t = (e / g.inner) % m, o = e / (g.inner * m);
    const uint64_t k = key[t];
    const int64_t p = pos[t];
    const bool keep = (t == 0 || key[t - 1] != k) && k < static_cast<uint64_t>(g.src_dim);
    if (o == 0 && i == 0) rows[p] = keep ? static_cast<int64_t>(k) : -1;
    float acc = 0.0f;
    if (keep)
      for (int64_t u = t; u < m && key[u] == k; ++u) acc += src[(o * m + pos[u]) * g.inner + i];
    out[(o * m + p) * g.inner + i] = acc;
  }
}

// The rows alone, when the values are empty (outer * inner == 0) and the
// kernel above has no thread to write them.
__global__ void coalesce_heads_kernel(const uint64_t* key, const int64_t* pos, int64_t bound, int64_t m,
                                      int64_t* rows) {
  CUVI_GRID_STRIDE(t, m) {
    const uint64_t k = key[t];
    const bool keep = (t == 0 || key[t - 1] != k) && k < static_cast<uint64_t>(bound);
    rows[pos[t]] = keep ? static_cast<int64_t>(k) : -1;
  }
}

// Indices known to be pairwise distinct (index_add_distinct): every target
// gets at most one term, from one thread: no sort, one launch, and the CPU's
// result bit for bit (dst + the term).
__global__ void index_add_distinct_kernel(float* dst, const int64_t* idx, const float* src, const IndexGeom g,
                                          int* flag, int code) {
  CUVI_GRID_STRIDE(t, g.outer * g.idx_dim * g.inner) {
    const int64_t i = t % g.inner, j = (t / g.inner) % g.idx_dim, o = t / (g.inner * g.idx_dim);
    const int64_t k = idx[j];
    if (k < 0 || k >= g.src_dim) report(flag, code, static_cast<float>(k));
    else dst[(o * g.src_dim + k) * g.inner + i] += src[t];
  }
}

// Many indices: (target key, source position) pairs are radix-sorted stably
// (positions stay increasing within a key) and the head of each run of equal
// keys adds the run in order. An out-of-range index gets the sentinel key
// `bound`, sorted last and skipped.
__global__ void index_add_keys_kernel(const int64_t* idx, int64_t n, int64_t bound, uint64_t* key, int64_t* pos,
                                      int* flag, int code) {
  CUVI_GRID_STRIDE(j, n) {
    const int64_t k = idx[j];
    const bool bad = k < 0 || k >= bound;
    if (bad) report(flag, code, static_cast<float>(k));
    key[j] = static_cast<uint64_t>(bad ? bound : k);
    pos[j] = j;
  }
}
// A run longer than kRunChunk terms (a target hit by many indices: a group
// parameter of a hierarchical model over many data) would be a long serial
// chain for its head thread. The sorted positions are cut into fixed chunks
// of kRunChunk; a run that continues into chunk c has its terms there (a
// prefix of the chunk) summed in order by one thread of a first pass
// (run_chunk_partials_kernel), and the head adds its run's terms up to the
// end of its own chunk one by one, then those chunk partials in order:
// kRunChunk + len / kRunChunk serial steps, a fixed order (the same bits on
// every run), within float rounding of the CPU's sequential sum.
constexpr int64_t kRunChunk = 128;

// The terms of a column of a sorted index_add: term(q, col) is source row
// pos[q]'s element in column col = o * inner + i.
struct IndexAddTerms {
  const float* src;
  const int64_t* pos;
  int64_t idx_dim, inner;
  __device__ float operator()(int64_t q, int64_t col) const {
    const int64_t o = col / inner, i = col % inner;
    return src[(o * idx_dim + pos[q]) * inner + i];
  }
};
// scatter_add: one column, keys are flat destination offsets.
struct ScatterAddTerms {
  const float* src;
  const int64_t* pos;
  __device__ float operator()(int64_t q, int64_t) const { return src[pos[q]]; }
};

// part[c * cols + col]: the sum, in order, of the prefix of chunk c whose
// key continues a run from chunk c - 1 (unwritten when none does).
template <class Terms>
__global__ void run_chunk_partials_kernel(const uint64_t* key, int64_t n, int64_t cols, const Terms term,
                                          float* part) {
  const int64_t chunks = (n + kRunChunk - 1) / kRunChunk;
  CUVI_GRID_STRIDE(t, chunks * cols) {
    const int64_t c = t / cols, col = t % cols, q0 = c * kRunChunk;
    if (c == 0 || key[q0 - 1] != key[q0]) continue;
    const uint64_t k = key[q0];
    const int64_t end = q0 + kRunChunk < n ? q0 + kRunChunk : n;
    float acc = 0.0f;
    for (int64_t q = q0; q < end && key[q] == k; ++q) acc += term(q, col);
    part[t] = acc;
  }
}

// acc plus the terms of column col of the run starting at sorted position p
// (its head), in the order described above.
template <class Terms>
__device__ float add_run(float acc, const uint64_t* key, int64_t n, int64_t p, int64_t col, int64_t cols,
                         const Terms& term, const float* part) {
  const uint64_t k = key[p];
  if (p + kRunChunk >= n || key[p + kRunChunk] != k) {  // at most kRunChunk terms: one by one
    for (int64_t q = p; q < n && key[q] == k; ++q) acc += term(q, col);
    return acc;
  }
  const int64_t own_end = (p / kRunChunk + 1) * kRunChunk;  // <= p + kRunChunk < n: all of key k
  for (int64_t q = p; q < own_end; ++q) acc += term(q, col);
  for (int64_t c = own_end / kRunChunk; c * kRunChunk < n && key[c * kRunChunk] == k; ++c) acc += part[c * cols + col];
  return acc;
}

// Keys are the rows of idx; thread (o, p, i) adds run p of column (o, i).
__global__ void index_add_runs_kernel(float* dst, const uint64_t* key, const float* part, const IndexGeom g,
                                      const IndexAddTerms term) {
  const int64_t n = g.outer * g.idx_dim * g.inner, cols = g.outer * g.inner;
  CUVI_GRID_STRIDE(t, n) {
    const int64_t i = t % g.inner, p = (t / g.inner) % g.idx_dim, o = t / (g.inner * g.idx_dim);
    const uint64_t k = key[p];
    if (k >= static_cast<uint64_t>(g.src_dim) || (p > 0 && key[p - 1] == k)) continue;
    float* d = dst + (o * g.src_dim + static_cast<int64_t>(k)) * g.inner + i;
    *d = add_run(*d, key, g.idx_dim, p, o * g.inner + i, cols, term, part);
  }
}
// Keys are flat destination offsets; sentinel = the destination's size.
__global__ void scatter_add_keys_kernel(const int64_t* idx, const IndexGeom g, uint64_t* key, int64_t* pos, int* flag,
                                        int code) {
  const int64_t n = g.outer * g.idx_dim * g.inner;
  const int64_t sentinel = g.outer * g.src_dim * g.inner;
  CUVI_GRID_STRIDE(t, n) {
    const int64_t i = t % g.inner, o = t / (g.idx_dim * g.inner);
    const int64_t k = idx[t];
    const bool bad = k < 0 || k >= g.src_dim;
    if (bad) report(flag, code, static_cast<float>(k));
    key[t] = static_cast<uint64_t>(bad ? sentinel : (o * g.src_dim + k) * g.inner + i);
    pos[t] = t;
  }
}
__global__ void scatter_add_runs_kernel(float* dst, const uint64_t* key, const float* part, int64_t n,
                                        uint64_t sentinel, const ScatterAddTerms term) {
  CUVI_GRID_STRIDE(p, n) {
    const uint64_t k = key[p];
    if (k >= sentinel || (p > 0 && key[p - 1] == k)) continue;
    dst[k] = add_run(dst[k], key, n, p, 0, 1, term, part);
  }
}
__global__ void gather_kernel(const float* src, const int64_t* idx, float* out, const IndexGeom g, int* flag,
                              int code) {
  const int64_t n = g.outer * g.idx_dim * g.inner;
  CUVI_GRID_STRIDE(t, n) {
    const int64_t i = t % g.inner, o = t / (g.idx_dim * g.inner);
    const int64_t k = idx[t];
    if (k < 0 || k >= g.src_dim) {
      report(flag, code, static_cast<float>(k));
      out[t] = 0.0f;
    } else {
      out[t] = src[(o * g.src_dim + k) * g.inner + i];
    }
  }
}

// One thread per vector: a MultivariateNormal's event size D is small (tens),
// so the O(D^2) substitution per thread beats a cooperative solve; L rows
// shared by a broadcast matrix are served from L1/L2.
__global__ void trisolve_kernel(const float* __restrict__ L, const float* __restrict__ b, float* __restrict__ z,
                                int64_t batch, int64_t D, int64_t l_batch_stride, bool transpose) {
  CUVI_GRID_STRIDE(i, batch) kern::trisolve_lower(L + i * l_batch_stride, D, b + i * D, z + i * D, D, transpose);
}

// One thread per matrix, as the triangular solve: the D of a
// MultivariateNormal's covariance is small.
__global__ void cholesky_kernel(const float* __restrict__ A, float* __restrict__ L, int64_t batch, int64_t D,
                                int* flag, int check) {
  CUVI_GRID_STRIDE(i, batch) {
    float pivot = 0.0f;
    if (kern::cholesky_lower(A + i * D * D, L + i * D * D, D, &pivot) >= 0) report(flag, check, pivot);
  }
}

__global__ void rand_uniform_kernel(float* out, int64_t n, uint64_t seed, uint32_t offset) {
  CUVI_GRID_STRIDE(i, n) {
    kern::ElemRng rng(seed, static_cast<uint64_t>(i), offset);
    out[i] = rng.uniform();
  }
}
__global__ void rand_normal_kernel(float* out, int64_t n, uint64_t seed, uint32_t offset) {
  CUVI_GRID_STRIDE(i, n) {
    kern::ElemRng rng(seed, static_cast<uint64_t>(i), offset);
    out[i] = rng.normal();
  }
}
__global__ void subsample_kernel(int64_t* out, int64_t N, int64_t B, int hb, uint64_t seed, uint32_t offset,
                                 int64_t base) {
  CUVI_GRID_STRIDE(i, B) out[i] = base + kern::subsample_index(i, N, hb, seed, offset);
}

// Multi-tensor optimizer steps: one launch for every tensor of a step,
// blockIdx.y selects the tensor. Slots and hyper-parameters travel in the
// kernel's parameter space (no host-to-device copy per step): a pack of 32
// fits the classic 4 KiB limit (Adam: an 80-byte slot and 40 bytes of
// hyper-parameters, 120 bytes a tensor, 3840 in all); above 32 tensors a
// pack of 256 (30 KiB: kernel parameters up to 32764 bytes since CUDA 12.1,
// Volta and later), and only beyond 256 a second launch. The asserts hold
// the largest hyper-parameter struct (Adam's) to both limits.
constexpr int kSmallPack = 32;
constexpr int kLargePack = 256;
template <class Hyper, int kCap>
struct SlotPack {
  kern::OptSlot slot[kCap];
  Hyper hyper[kCap];
};
template <class Hyper>
constexpr bool packs_fit() {
  return sizeof(SlotPack<Hyper, kSmallPack>) <= 4096 && sizeof(SlotPack<Hyper, kLargePack>) <= 32764;
}
static_assert(packs_fit<kern::AdamHyper>(), "a pack beyond 4 KiB (small) or 32764 bytes (large) of parameters");
static_assert(packs_fit<kern::SgdHyper>(), "a pack beyond 4 KiB (small) or 32764 bytes (large) of parameters");
static_assert(packs_fit<kern::AdagradHyper>(), "a pack beyond 4 KiB (small) or 32764 bytes (large) of parameters");
static_assert(packs_fit<kern::RmspropHyper>(), "a pack beyond 4 KiB (small) or 32764 bytes (large) of parameters");
static_assert(packs_fit<kern::AdadeltaHyper>(), "a pack beyond 4 KiB (small) or 32764 bytes (large) of parameters");

// Per thread, kOptUnroll elements of slot s (a grid stride apart): every
// load first, then the updates and stores. The stores could alias the loads
// as far as the compiler knows, so a plain loop would keep only one
// element's loads in flight. use_s0 / use_s1 / use_s2: which state buffers
// the update reads and writes (SGD without momentum: neither; state2 is
// RMSprop's centered grad_avg only).
constexpr int kOptUnroll = 4;
// kRows: a row-sparse slot, whose gradient element i updates element
// opt_target(s, i) of param and state (-1: a skipped row); dense: element i.
template <bool kRows, class Update>
__device__ __forceinline__ void update_elems(const kern::OptSlot& s, bool use_s0, bool use_s1, bool use_s2,
                                             Update update) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i0 = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i0 < s.n;
       i0 += kOptUnroll * stride) {
    float p[kOptUnroll], a[kOptUnroll], b[kOptUnroll], c[kOptUnroll], g[kOptUnroll];
    int64_t at[kOptUnroll];
#pragma unroll
    for (int u = 0; u < kOptUnroll; ++u) {
      const int64_t i = i0 + u * stride;
      at[u] = i >= s.n ? -1 : (kRows ? kern::opt_target(s, i) : i);
      if (at[u] >= 0) {
        p[u] = s.param[at[u]];
        g[u] = s.grad[i];
        a[u] = use_s0 ? s.state0[at[u]] : 0.0f;
        b[u] = use_s1 ? s.state1[at[u]] : 0.0f;
        c[u] = use_s2 ? s.state2[at[u]] : 0.0f;
      }
    }
#pragma unroll
    for (int u = 0; u < kOptUnroll; ++u) {
      if (at[u] >= 0) {
        update(&p[u], &a[u], &b[u], &c[u], g[u]);
        s.param[at[u]] = p[u];
        if (use_s0) s.state0[at[u]] = a[u];
        if (use_s1) s.state1[at[u]] = b[u];
        if (use_s2) s.state2[at[u]] = c[u];
      }
    }
  }
}
// The branch is uniform per slot (blockIdx.y); the dense loop has no row arithmetic.
template <class Update>
__device__ __forceinline__ void update_slot(const kern::OptSlot& s, bool use_s0, bool use_s1, bool use_s2,
                                            Update update) {
  if (s.rows) update_elems<true>(s, use_s0, use_s1, use_s2, update);
  else update_elems<false>(s, use_s0, use_s1, use_s2, update);
}

template <int kCap>
__global__ void adam_kernel(const SlotPack<kern::AdamHyper, kCap> pack) {
  const kern::OptSlot& s = pack.slot[blockIdx.y];
  const kern::AdamHyper h = pack.hyper[blockIdx.y];
  update_slot(s, true, true, false,
              [&h](float* p, float* m, float* v, float*, float g) { kern::adam_update(p, m, v, g, h); });
}
template <int kCap>
__global__ void sgd_kernel(const SlotPack<kern::SgdHyper, kCap> pack) {
  const kern::OptSlot& s = pack.slot[blockIdx.y];
  const kern::SgdHyper h = pack.hyper[blockIdx.y];
  update_slot(s, h.momentum != 0.0f, false, false,
              [&h](float* p, float* buf, float*, float*, float g) { kern::sgd_update(p, buf, g, h); });
}
template <int kCap>
__global__ void adagrad_kernel(const SlotPack<kern::AdagradHyper, kCap> pack) {
  const kern::OptSlot& s = pack.slot[blockIdx.y];
  const kern::AdagradHyper h = pack.hyper[blockIdx.y];
  update_slot(s, true, false, false,
              [&h](float* p, float* sum, float*, float*, float g) { kern::adagrad_update(p, sum, g, h); });
}
// The variant's branches are uniform per slot (the hyper-parameters of blockIdx.y).
template <int kCap>
__global__ void rmsprop_kernel(const SlotPack<kern::RmspropHyper, kCap> pack) {
  const kern::OptSlot& s = pack.slot[blockIdx.y];
  const kern::RmspropHyper h = pack.hyper[blockIdx.y];
  update_slot(s, true, h.momentum > 0.0f, h.centered != 0,
              [&h](float* p, float* sq, float* buf, float* ga, float g) {
                kern::rmsprop_update(p, sq, buf, ga, g, h);
              });
}
template <int kCap>
__global__ void adadelta_kernel(const SlotPack<kern::AdadeltaHyper, kCap> pack) {
  const kern::OptSlot& s = pack.slot[blockIdx.y];
  const kern::AdadeltaHyper h = pack.hyper[blockIdx.y];
  update_slot(s, true, true, false,
              [&h](float* p, float* sq, float* acc, float*, float g) { kern::adadelta_update(p, sq, acc, g, h); });
}

// ---- the backend -------------------------------------------------------------

using DeviceBuffer = kern::cuda::AsyncScratch;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index) : index_(index) {
    CUVI_CUDA_CHECK(cudaSetDevice(index_));
    CUVI_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUVI_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool_, index_));
    uint64_t threshold = UINT64_MAX;  // keep freed memory cached in the pool
    CUVI_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &threshold));
    // The deferred-error flag lives in mapped pinned memory: kernels write it
    // through the device alias, the host reads it after a synchronisation
    // without a copy.
    CUVI_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&flag_host_), 2 * sizeof(int), cudaHostAllocMapped));
    flag_host_[0] = 0;
    flag_host_[1] = 0;
    CUVI_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&flag_dev_), flag_host_, 0));
    CUVI_CUBLAS_CHECK(cublasCreate(&blas_));
    CUVI_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    int sms = 0;
    CUVI_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, index_));
    sm_count_ = sms;
  }

  Device device() const override { return Device::cuda(index_); }
  cudaStream_t stream() const { return stream_; }

  void* allocate(size_t bytes) override {
    activate();
    void* p = nullptr;
    if (bytes == 0) bytes = 256;
    const cudaError_t err = cudaMallocAsync(&p, bytes, stream_);
    if (err != cudaSuccess) (void)cudaGetLastError();  // not left for the next launch check
    CUVI_CHECK(err == cudaSuccess, CudaError,
               "cuda:" << index_ << ": allocation of " << bytes << " bytes failed: " << cudaGetErrorString(err));
    return p;
  }
  void deallocate(void* p) noexcept override {
    if (!p) return;
    // May run inside any device's work (a destructor): restore the caller's
    // device. Errors (process teardown) are ignored and cleared, so that the
    // next launch check does not report them.
    int prev = -1;
    bool failed = cudaGetDevice(&prev) != cudaSuccess;
    if (prev != index_) failed |= cudaSetDevice(index_) != cudaSuccess;
    failed |= cudaFreeAsync(p, stream_) != cudaSuccess;
    if (prev >= 0 && prev != index_) failed |= cudaSetDevice(prev) != cudaSuccess;
    if (failed) (void)cudaGetLastError();
  }
  void copy_h2d(void* dst, const void* src, size_t bytes) override {
    activate();
    CUVI_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void copy_d2h(void* dst, const void* src, size_t bytes) override {
    activate();
    CUVI_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    CUVI_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void copy_d2d(void* dst, const void* src, size_t bytes) override {
    activate();
    CUVI_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void synchronize() override {
    activate();
    CUVI_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void raise_deferred_errors() override {
    // Only meaningful after a synchronisation, which every caller does first.
    const int code = __atomic_exchange_n(flag_host_, 0, __ATOMIC_SEQ_CST);
    if (code == 0) return;
    float value;
    std::memcpy(&value, flag_host_ + 1, sizeof(float));
    // ", got <value>" as the cpu's immediate checks say it, so one message
    // reads the same on both backends; the same exception type as well.
    std::ostringstream what;
    what << ", got " << value << " (detected on cuda:" << index_ << " at this synchronisation)";
    checks_.raise(code, "device check failed", what.str());
  }
  int register_check(const std::string& message, CheckKind kind) override { return checks_.add(message, kind); }
  int* check_flag() override { return flag_dev_; }
  void check_range(const float* x, int64_t n, float lo, bool lo_open, float hi, int check) override {
    launch(check_range_kernel, n, x, n, lo, lo_open, hi, flag_dev_, check);
  }
  void check_all(const float* ok, const float* value, int64_t n, int check) override {
    launch(check_all_kernel, n, ok, value, n, flag_dev_, check);
  }

  void fill_f32(float* out, int64_t n, float v) override {
    launch(fill_f32_kernel, n, out, n, v);
  }
  void fill_i64(int64_t* out, int64_t n, int64_t v) override { launch(fill_i64_kernel, n, out, n, v); }
  void arange_f32(float* out, int64_t n) override { launch(arange_f32_kernel, n, out, n); }
  void arange_i64(int64_t* out, int64_t n, int64_t start) override { launch(arange_i64_kernel, n, out, n, start); }
  void cast_f32_to_i64(const float* x, int64_t* y, int64_t n) override { launch(cast_f32_i64_kernel, n, x, y, n); }
  void cast_i64_to_f32(const int64_t* x, float* y, int64_t n) override { launch(cast_i64_f32_kernel, n, x, y, n); }

  void unary(kern::UnaryOp op, const float* x, float* y, int64_t n) override {
    kern::visit_unary(op, [&](auto c) { launch(unary_kernel<decltype(c)::value>, n, x, y, n); });
  }
  void unary_backward(kern::UnaryOp op, const float* x, const float* y, const float* g, float* gx,
                      int64_t n) override {
    kern::visit_unary(op, [&](auto c) { launch(unary_backward_kernel<decltype(c)::value>, n, x, y, g, gx, n); });
  }
  void binary(kern::BinaryOp op, const float* a, const float* b, float* out,
              const kern::BcastGeom<2>& geom) override {
    kern::visit_binary(op, [&](auto c) { launch(binary_kernel<decltype(c)::value>, geom.n, a, b, out, geom); });
  }
  void binary_backward(kern::BinaryOp op, const float* a, const float* b, const float* g, float* ga, float* gb,
                       const kern::BcastGeom<3>& geom) override {
    kern::visit_binary(
        op, [&](auto c) { launch(binary_backward_kernel<decltype(c)::value>, geom.n, a, b, g, ga, gb, geom); });
  }
  void where(const float* cond, const float* a, const float* b, float* out,
             const kern::BcastGeom<3>& geom) override {
    launch(where_kernel, geom.n, cond, a, b, out, geom);
  }
  void betainc(const float* a, const float* b, const float* x, float* out,
               const kern::BcastGeom<3>& geom) override {
    launch(betainc_kernel, geom.n, a, b, x, out, geom);
  }
  void betainc_backward(const float* a, const float* b, const float* x, const float* g, float* ga, float* gb,
                        float* gx, const kern::BcastGeom<4>& geom) override {
    launch(betainc_backward_kernel, geom.n, a, b, x, g, ga, gb, gx, geom);
  }
  void clamp(const float* x, float* y, int64_t n, float lo, float hi) override {
    launch(clamp_kernel, n, x, y, n, lo, hi);
  }
  void clamp_backward(const float* x, const float* g, float* gx, int64_t n, float lo, float hi) override {
    launch(clamp_backward_kernel, n, x, g, gx, n, lo, hi);
  }
  void copy_strided(const void* src, void* dst, size_t elem_size, const kern::BcastGeom<2>& geom) override {
    if (elem_size == 4)
      launch(copy_strided_kernel<float>, geom.n, static_cast<const float*>(src), static_cast<float*>(dst), geom);
    else
      launch(copy_strided_kernel<int64_t>, geom.n, static_cast<const int64_t*>(src), static_cast<int64_t*>(dst),
             geom);
  }

  void reduce_sum(const float* x, float* out, const kern::ReduceGeom& g) override { reduce<SumOp>(x, out, g); }
  void reduce_max(const float* x, float* out, const kern::ReduceGeom& g) override { reduce<MaxOp>(x, out, g); }
  void cumsum(const float* x, float* y, int64_t outer, int64_t n, int64_t inner, bool reverse) override {
    const int64_t lines = outer * inner;
    if (n <= kScanChunk || lines >= 16384) {  // short lines, or enough of them to fill the GPU
      launch(cumsum_kernel, lines, x, y, outer, n, inner, reverse);
      return;
    }
    const ScanGeom g{outer, n, inner, (n + kScanChunk - 1) / kScanChunk, reverse};
    activate();  // the scratch is allocated on this backend's device
    DeviceBuffer sums(static_cast<size_t>(lines * g.chunks) * sizeof(double), stream_);
    launch(scan_chunk_sums_kernel, lines * g.chunks, x, sums.as<double>(), g);
    launch(scan_chunk_offsets_kernel, lines, sums.as<double>(), g);
    launch(scan_chunks_kernel, lines * g.chunks, x, y, static_cast<const double*>(sums.as<double>()), g);
  }
  int64_t first_nonfinite(const std::vector<std::pair<const float*, int64_t>>& spans) override {
    if (spans.empty()) return -1;
    CUVI_CHECK(spans.size() < static_cast<size_t>(INT_MAX), CudaError, "first_nonfinite: too many tensors");
    activate();
    int h = 0;
    {
      DeviceBuffer buf(sizeof(int), stream_);
      int* first = buf.as<int>();
      CUVI_CUDA_CHECK(cudaMemsetAsync(first, 0, sizeof(int), stream_));
      for (size_t begin = 0; begin < spans.size(); begin += kMaxSpans) {
        const size_t count = std::min<size_t>(kMaxSpans, spans.size() - begin);
        SpanPack pack{};
        pack.first_span = static_cast<int>(begin);
        int64_t longest = 0;
        for (size_t k = 0; k < count; ++k) {
          pack.x[k] = spans[begin + k].first;
          pack.n[k] = spans[begin + k].second;
          longest = std::max(longest, pack.n[k]);
        }
        if (longest == 0) continue;
        const dim3 grid(grid_for(longest) < 1024 ? grid_for(longest) : 1024, static_cast<unsigned>(count));
        nonfinite_kernel<<<grid, kThreads, 0, stream_>>>(pack, first);
        CUVI_CUDA_LAUNCH_CHECK(stream_);
      }
      CUVI_CUDA_CHECK(cudaMemcpyAsync(&h, first, sizeof(int), cudaMemcpyDeviceToHost, stream_));
    }
    CUVI_CUDA_CHECK(cudaStreamSynchronize(stream_));
    detail::count_sync();
    return h == 0 ? -1 : static_cast<int64_t>(INT_MAX - h);
  }

  void gemm(const GemmArgs& a) override {
    if (a.batch <= 0 || a.m <= 0 || a.n <= 0) return;
    activate();
    if (a.k <= 0) {  // empty inner dimension: C = 0 (or unchanged when accumulating)
      if (a.accumulate) return;
      if (a.stride_c == a.m * a.n) fill_f32(a.c, a.batch * a.m * a.n, 0.0f);
      else
        for (int64_t b = 0; b < a.batch; ++b) fill_f32(a.c + b * a.stride_c, a.m * a.n, 0.0f);
      return;
    }
    CUVI_CHECK(a.m <= INT_MAX && a.n <= INT_MAX && a.k <= INT_MAX && a.batch <= INT_MAX, CudaError,
               "gemm: sizes (batch " << a.batch << ", m " << a.m << ", n " << a.n << ", k " << a.k
                                     << ") exceed cuBLAS's 32-bit limits");
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap
    // the operands and keep the leading dimensions of the row-major layout.
    const float alpha = 1.0f, beta = a.accumulate ? 1.0f : 0.0f;
    const int lda = static_cast<int>(a.trans_a ? a.m : a.k);
    const int ldb = static_cast<int>(a.trans_b ? a.k : a.n);
    CUVI_CUBLAS_CHECK(cublasSgemmStridedBatched(
        blas_, a.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, a.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(a.n),
        static_cast<int>(a.m), static_cast<int>(a.k), &alpha, a.b, ldb, a.stride_b, a.a, lda, a.stride_a, &beta, a.c,
        static_cast<int>(a.n), a.stride_c, static_cast<int>(a.batch)));
  }

  void trisolve(const float* L, const float* b, float* z, int64_t batch, int64_t D, int64_t l_batch_stride,
                bool transpose) override {
    launch(trisolve_kernel, batch, L, b, z, batch, D, l_batch_stride, transpose);
  }

  void cholesky(const float* A, float* L, int64_t batch, int64_t D, int check) override {
    launch(cholesky_kernel, batch, A, L, batch, D, flag_dev_, check);
  }

  // True when the values are empty: the indices (one row index each) are
  // then only checked, as the CPU backend does.
  bool rows_only(const int64_t* idx, const IndexGeom& g, int check) {
    if (g.outer * g.inner > 0) return false;
    if (g.idx_dim > 0 && check != 0)
      launch(check_indices_kernel, g.idx_dim, idx, g.idx_dim, g.src_dim, flag_dev_, check);
    return true;
  }
  void index_select(const void* src, const int64_t* idx, void* out, size_t elem_size, const IndexGeom& g,
                    int check) override {
    if (rows_only(idx, g, check)) return;
    const int64_t n = g.outer * g.idx_dim * g.inner;
    if (elem_size == 4)
      launch(index_select_kernel<float>, n, static_cast<const float*>(src), idx, static_cast<float*>(out), g, flag_dev_,
             check);
    else
      launch(index_select_kernel<int64_t>, n, static_cast<const int64_t*>(src), idx, static_cast<int64_t*>(out), g,
             flag_dev_, check);
  }
  void index_add(float* dst, const int64_t* idx, const float* src, const IndexGeom& g, int check) override {
    const int64_t n = g.outer * g.idx_dim * g.inner;
    if (rows_only(idx, g, check) || n <= 0) return;
    if (g.idx_dim <= kColumnLoopMax) {
      launch(index_add_columns_kernel, g.outer * g.inner, dst, idx, src, g, flag_dev_, check);
      return;
    }
    const uint64_t* key = nullptr;
    const int64_t* pos = nullptr;
    DeviceBuffer scratch = sorted_runs(
        g.idx_dim, static_cast<uint64_t>(g.src_dim),
        [&](uint64_t* k, int64_t* p) {
          launch(index_add_keys_kernel, g.idx_dim, idx, g.idx_dim, g.src_dim, k, p, flag_dev_, check);
        },
        &key, &pos);
    const IndexAddTerms term{src, pos, g.idx_dim, g.inner};
    const DeviceBuffer part = run_chunk_partials(key, g.idx_dim, g.outer * g.inner, term);
    launch(index_add_runs_kernel, n, dst, key, static_cast<const float*>(part.as<float>()), g, term);
  }
  void index_add_distinct(float* dst, const int64_t* idx, const float* src, const IndexGeom& g,
                          int check) override {
    if (rows_only(idx, g, check)) return;
    launch(index_add_distinct_kernel, g.outer * g.idx_dim * g.inner, dst, idx, src, g, flag_dev_, check);
  }
  void coalesce_rows(const int64_t* idx, const float* src, const IndexGeom& g, int64_t* rows,
                     float* out) override {
    const int64_t m = g.idx_dim;
    if (m <= 0) return;
    const uint64_t* key = nullptr;
    const int64_t* pos = nullptr;
    DeviceBuffer scratch = sorted_runs(
        m, static_cast<uint64_t>(g.src_dim),
        [&](uint64_t* k, int64_t* p) { launch(coalesce_keys_kernel, m, idx, m, g.src_dim, k, p); }, &key, &pos);
    if (g.outer * g.inner > 0) launch(coalesce_runs_kernel, g.outer * m * g.inner, key, pos, src, g, rows, out);
    else launch(coalesce_heads_kernel, m, key, pos, g.src_dim, m, rows);  // no values: the rows alone
  }
  void gather(const float* src, const int64_t* idx, float* out, const IndexGeom& g, int check) override {
    launch(gather_kernel, g.outer * g.idx_dim * g.inner, src, idx, out, g, flag_dev_, check);
  }
  void scatter_add(float* dst, const int64_t* idx, const float* src, const IndexGeom& g, int check) override {
    const int64_t n = g.outer * g.idx_dim * g.inner;
    if (n <= 0) return;
    if (g.idx_dim <= kColumnLoopMax) {
      launch(scatter_add_columns_kernel, g.outer * g.inner, dst, idx, src, g, flag_dev_, check);
      return;
    }
    const uint64_t sentinel = static_cast<uint64_t>(g.outer * g.src_dim * g.inner);
    const uint64_t* key = nullptr;
    const int64_t* pos = nullptr;
    DeviceBuffer scratch = sorted_runs(
        n, sentinel,
        [&](uint64_t* k, int64_t* p) { launch(scatter_add_keys_kernel, n, idx, g, k, p, flag_dev_, check); }, &key,
        &pos);
    const ScatterAddTerms term{src, pos};
    const DeviceBuffer part = run_chunk_partials(key, n, 1, term);
    launch(scatter_add_runs_kernel, n, dst, key, static_cast<const float*>(part.as<float>()), n, sentinel, term);
  }
  // The chunk partials of the sorted runs (run_chunk_partials_kernel): only
  // when a run can be longer than kRunChunk, i.e. there are more positions.
  template <class Terms>
  DeviceBuffer run_chunk_partials(const uint64_t* key, int64_t n, int64_t cols, const Terms& term) {
    const int64_t chunks = (n + kRunChunk - 1) / kRunChunk;
    DeviceBuffer part(n > kRunChunk ? static_cast<size_t>(chunks * cols) * sizeof(float) : 0, stream_);
    if (n > kRunChunk) launch(run_chunk_partials_kernel<Terms>, chunks * cols, key, n, cols, term, part.as<float>());
    return part;
  }

  void rand_uniform(float* out, int64_t n, uint64_t seed, uint32_t offset) override {
    launch(rand_uniform_kernel, n, out, n, seed, offset);
  }
  void rand_normal(float* out, int64_t n, uint64_t seed, uint32_t offset) override {
    launch(rand_normal_kernel, n, out, n, seed, offset);
  }
  void subsample(int64_t* out, int64_t N, int64_t B, uint64_t seed, uint32_t offset, int64_t base) override {
    launch(subsample_kernel, B, out, N, B, kern::subsample_half_bits(static_cast<uint64_t>(N)), seed, offset, base);
  }

  void adam_step(const std::vector<kern::OptSlot>& slots, const std::vector<kern::AdamHyper>& hyper) override {
    multi_step(adam_kernel<kSmallPack>, adam_kernel<kLargePack>, slots, hyper);
  }
  void sgd_step(const std::vector<kern::OptSlot>& slots, const std::vector<kern::SgdHyper>& hyper) override {
    multi_step(sgd_kernel<kSmallPack>, sgd_kernel<kLargePack>, slots, hyper);
  }
  void adagrad_step(const std::vector<kern::OptSlot>& slots, const std::vector<kern::AdagradHyper>& hyper) override {
    multi_step(adagrad_kernel<kSmallPack>, adagrad_kernel<kLargePack>, slots, hyper);
  }
  void rmsprop_step(const std::vector<kern::OptSlot>& slots, const std::vector<kern::RmspropHyper>& hyper) override {
    multi_step(rmsprop_kernel<kSmallPack>, rmsprop_kernel<kLargePack>, slots, hyper);
  }
  void adadelta_step(const std::vector<kern::OptSlot>& slots, const std::vector<kern::AdadeltaHyper>& hyper) override {
    multi_step(adadelta_kernel<kSmallPack>, adadelta_kernel<kLargePack>, slots, hyper);
  }

  // Makes this device current for the calling thread. Asks the runtime
  // (a cheap thread-local read) instead of caching: deallocate(), other
  // backends' constructors and user code change the current device too.
  void activate() {
    int current = -1;
    CUVI_CUDA_CHECK(cudaGetDevice(&current));
    if (current != index_) CUVI_CUDA_CHECK(cudaSetDevice(index_));
  }

 private:
  // Writes m (key, position) pairs with fill(key, pos), then sorts them
  // stably by key over the bits max_key needs. The sorted arrays live in the
  // returned buffer (stream-ordered: free it after queueing their readers).
  template <class Fill>
  DeviceBuffer sorted_runs(int64_t m, uint64_t max_key, Fill&& fill, const uint64_t** key, const int64_t** pos) {
    activate();
    int end_bit = 1;
    while (end_bit < 64 && (max_key >> end_bit) != 0) ++end_bit;
    size_t temp = 0;
    CUVI_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp, static_cast<const uint64_t*>(nullptr),
                                                    static_cast<uint64_t*>(nullptr),
                                                    static_cast<const int64_t*>(nullptr),
                                                    static_cast<int64_t*>(nullptr), m, 0, end_bit, stream_));
    const size_t arr = (static_cast<size_t>(m) * 8 + 255) / 256 * 256;
    DeviceBuffer buf(4 * arr + temp, stream_);
    char* base = buf.as<char>();
    uint64_t* key_in = reinterpret_cast<uint64_t*>(base);
    uint64_t* key_out = reinterpret_cast<uint64_t*>(base + arr);
    int64_t* pos_in = reinterpret_cast<int64_t*>(base + 2 * arr);
    int64_t* pos_out = reinterpret_cast<int64_t*>(base + 3 * arr);
    fill(key_in, pos_in);
    CUVI_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(base + 4 * arr, temp, key_in, key_out, pos_in, pos_out, m, 0,
                                                    end_bit, stream_));
    CUVI_CUDA_LAUNCH_CHECK(stream_);
    *key = key_out;
    *pos = pos_out;
    return buf;
  }

  template <class... KArgs, class... Args>
  void launch(void (*kernel)(KArgs...), int64_t n, Args&&... args) {
    if (n <= 0) return;
    activate();
    kernel<<<grid_for(n), kThreads, 0, stream_>>>(std::forward<Args>(args)...);
    CUVI_CUDA_LAUNCH_CHECK(stream_);
  }

  template <class Op>
  void reduce(const float* x, float* out, const kern::ReduceGeom& g) {
    activate();
    if (g.out_n == 0) return;
    if (g.trailing && g.red_n > kReduceChunk && g.out_n <= 65535) {
      // Two passes over fixed chunks of each output's contiguous row: the
      // same bits on every run and every GPU model, whatever its SM count,
      // and every SM busy even when the outputs are few.
      const int64_t chunks = (g.red_n + kReduceChunk - 1) / kReduceChunk;
      CUVI_CHECK(chunks <= INT_MAX, CudaError, "reduce: " << g.red_n << " inputs per output exceed the grid");
      DeviceBuffer buf(static_cast<size_t>(chunks * g.out_n) * sizeof(float), stream_);
      float* partial = buf.as<float>();
      const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(g.out_n));
      reduce_chunks_kernel<Op><<<grid, kThreads, 0, stream_>>>(x, g.red_n, partial);
      CUVI_CUDA_LAUNCH_CHECK(stream_);
      kern::ReduceGeom g2;
      g2.out_n = g.out_n;
      g2.red_n = chunks;
      g2.trailing = true;
      reduce_block_per_output_kernel<Op><<<static_cast<unsigned>(g.out_n), kThreads, 0, stream_>>>(partial, out, g2);
      CUVI_CUDA_LAUNCH_CHECK(stream_);
      return;
    }
    if (g.leading && g.red_n > 64) {
      reduce_leading<Op>(x, out, g.red_n, g.out_n);
      return;
    }
    if (g.red_n <= 64) {
      reduce_thread_per_output_kernel<Op><<<grid_for(g.out_n), kThreads, 0, stream_>>>(x, out, g);
    } else if (g.trailing && g.red_n <= kReduceChunk) {
      const int64_t blocks = (g.out_n + kWarpsPerBlock - 1) / kWarpsPerBlock;
      const unsigned grid = blocks < 65535 * 16 ? static_cast<unsigned>(blocks) : 65535u * 16u;
      reduce_warp_per_output_kernel<Op><<<grid, kThreads, 0, stream_>>>(x, out, g.out_n, g.red_n);
    } else {
      const int64_t blocks = g.out_n < 65535 * 16 ? g.out_n : 65535 * 16;
      reduce_block_per_output_kernel<Op><<<static_cast<unsigned>(blocks), kThreads, 0, stream_>>>(x, out, g);
    }
    CUVI_CUDA_LAUNCH_CHECK(stream_);
  }

  // Reduces the leading red_n rows of a [red_n, out_n] input (see
  // reduce_leading_kernel): one pass when one chunk holds every row, else
  // the chunk partials [chunks, out_n] are reduced in chunk order by a second
  // pass (one block per output when outputs are few, one thread per output
  // otherwise; both fixed in order).
  template <class Op>
  void reduce_leading(const float* x, float* out, int64_t red_n, int64_t out_n) {
    constexpr int64_t kMinChunk = 512, kMaxChunks = 4096;
    int64_t chunk = kMinChunk;
    if (red_n > chunk * kMaxChunks)  // larger chunks, a multiple of the rows a block reads at once
      chunk = ((red_n + kMaxChunks - 1) / kMaxChunks + kLeadRows - 1) / kLeadRows * kLeadRows;
    const int64_t chunks = (red_n + chunk - 1) / chunk;
    const int64_t col_blocks = (out_n + kLeadCols - 1) / kLeadCols;
    CUVI_CHECK(col_blocks <= INT_MAX, CudaError, "reduce: " << out_n << " outputs exceed the grid");
    const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(chunks));
    if (chunks == 1) {
      reduce_leading_kernel<Op><<<grid, kThreads, 0, stream_>>>(x, red_n, out_n, chunk, out);
      CUVI_CUDA_LAUNCH_CHECK(stream_);
      return;
    }
    DeviceBuffer buf(static_cast<size_t>(chunks * out_n) * sizeof(float), stream_);
    float* partial = buf.as<float>();
    reduce_leading_kernel<Op><<<grid, kThreads, 0, stream_>>>(x, red_n, out_n, chunk, partial);
    CUVI_CUDA_LAUNCH_CHECK(stream_);
    kern::ReduceGeom g2;
    g2.out_n = out_n;
    g2.red_n = chunks;
    g2.leading = true;
    if (out_n < 1024) {
      reduce_block_per_output_kernel<Op><<<static_cast<unsigned>(out_n), kThreads, 0, stream_>>>(partial, out, g2);
    } else {
      reduce_thread_per_output_kernel<Op><<<grid_for(out_n), kThreads, 0, stream_>>>(partial, out, g2);
    }
    CUVI_CUDA_LAUNCH_CHECK(stream_);
  }

  template <class Hyper>
  void multi_step(void (*small)(const SlotPack<Hyper, kSmallPack>), void (*large)(const SlotPack<Hyper, kLargePack>),
                  const std::vector<kern::OptSlot>& slots, const std::vector<Hyper>& hyper) {
    activate();
    if (slots.size() <= static_cast<size_t>(kSmallPack)) {
      launch_pack(small, slots, hyper, 0);
      return;
    }
    for (size_t begin = 0; begin < slots.size(); begin += kLargePack) launch_pack(large, slots, hyper, begin);
  }
  // One launch for slots [begin, begin + kCap) (fewer at the end).
  template <class Hyper, int kCap>
  void launch_pack(void (*kernel)(const SlotPack<Hyper, kCap>), const std::vector<kern::OptSlot>& slots,
                   const std::vector<Hyper>& hyper, size_t begin) {
    const size_t count = std::min<size_t>(kCap, slots.size() - begin);
    SlotPack<Hyper, kCap> pack{};
    int64_t longest = 0;
    for (size_t i = 0; i < count; ++i) {
      pack.slot[i] = slots[begin + i];
      pack.hyper[i] = hyper[begin + i];
      longest = std::max(longest, slots[begin + i].n);
    }
    if (longest == 0) return;
    // Blocks along x cover the longest tensor; shorter ones leave early.
    const dim3 grid(grid_for(longest) < 1024 ? grid_for(longest) : 1024, static_cast<unsigned>(count));
    kernel<<<grid, kThreads, 0, stream_>>>(pack);
    CUVI_CUDA_LAUNCH_CHECK(stream_);
  }

  int index_;
  int sm_count_ = 0;
  cudaStream_t stream_ = nullptr;
  cudaMemPool_t pool_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  int* flag_host_ = nullptr;
  int* flag_dev_ = nullptr;
  CheckRegistry checks_;
};

std::mutex g_backends_mu;

}  // namespace

bool cuda_built() { return true; }

int cuda_backend_device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky "no driver" error
      return 0;
    }
    return n;
  }();
  return count;
}

Backend* cuda_backend(int index) {
  if (index < 0 || index >= cuda_backend_device_count()) return nullptr;
  // Backends live for the whole process (never destroyed: tensors freed
  // during static destruction must still find their stream). The table is
  // leaked too: a static vector would be destroyed at exit before statics
  // constructed earlier (the param store) free their CUDA tensors through it.
  static std::vector<CudaBackend*>& backends =
      *new std::vector<CudaBackend*>(static_cast<size_t>(cuda_backend_device_count()), nullptr);
  std::lock_guard<std::mutex> lock(g_backends_mu);
  CudaBackend*& b = backends[static_cast<size_t>(index)];
  if (!b) b = new CudaBackend(index);
  return b;
}

void* cuda_stream(int device) {
  Backend* b = cuda_backend(device);
  CUVI_CHECK(b != nullptr, DeviceError, "cuda:" << device << " is not available");
  // Callers launch on the returned stream right away (distribution kernels):
  // a launch into another device's stream fails, so make this one current.
  CudaBackend* cb = static_cast<CudaBackend*>(b);
  cb->activate();
  return cb->stream();
}

}  // namespace cuvi
