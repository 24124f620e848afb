// Broadcasting geometry for n-ary elementwise kernels on raw pointers.
//
// The output is contiguous with `n` elements; input k is read at
// sum_d idx_d * stride[k][d], where a broadcast dimension has stride 0. Two
// fast paths skip the index arithmetic: an input with the output's full
// contiguous layout (offset = i) and a single-element input (offset = 0).
#pragma once

#include "common.hpp"

namespace cuvi::kern {

constexpr int kMaxDims = 8;

enum class InKind : int8_t { kGeneral = 0, kSame = 1, kScalar = 2 };

template <int NIN>
struct BcastGeom {
  int ndim = 0;
  int64_t n = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[NIN > 0 ? NIN : 1][kMaxDims] = {};
  InKind kind[NIN > 0 ? NIN : 1] = {};

  CUVI_HD int64_t offset(int k, int64_t i) const {
    if (kind[k] == InKind::kSame) return i;
    if (kind[k] == InKind::kScalar) return 0;
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t idx = i % size[d];
      i /= size[d];
      off += idx * stride[k][d];
    }
    return off;
  }
};

}  // namespace cuvi::kern

namespace cuvi::kern {

// Reduction geometry: outputs are indexed row-major over the kept dims;
// each output sums (or maxes) `red_n` inputs in a fixed order. Offsets are in
// elements of the contiguous input.
struct ReduceGeom {
  int64_t out_n = 1;
  int64_t red_n = 1;
  int kdims = 0;
  int64_t ksize[kMaxDims] = {};
  int64_t kstride[kMaxDims] = {};
  int rdims = 0;
  int64_t rsize[kMaxDims] = {};
  int64_t rstride[kMaxDims] = {};
  // Layout fast paths: the reduced block is the trailing (offset o*red_n + r)
  // or the leading (offset r*out_n + o) part of the input.
  bool trailing = false;
  bool leading = false;

  CUVI_HD int64_t base(int64_t o) const {
    if (trailing) return o * red_n;
    if (leading) return o;
    int64_t off = 0;
    for (int d = kdims - 1; d >= 0; --d) {
      off += (o % ksize[d]) * kstride[d];
      o /= ksize[d];
    }
    return off;
  }
  CUVI_HD int64_t inner(int64_t r) const {
    if (trailing) return r;
    if (leading) return r * out_n;
    int64_t off = 0;
    for (int d = rdims - 1; d >= 0; --d) {
      off += (r % rsize[d]) * rstride[d];
      r /= rsize[d];
    }
    return off;
  }
};

// One tensor of a multi-tensor optimizer step.
// Dense (rows null): element i of grad updates element i of param and the
// state buffers, i < n. Row-sparse (a RowGrad): grad holds n = outer * k *
// inner values, the gradient of rows `rows` (k of them, each in [0,
// dim_size), -1 for a row to skip, none repeated) of a dim of size dim_size;
// element i updates element opt_target(slot, i) (-1: skipped).
struct OptSlot {
  float* param;
  const float* grad;
  float* state0;  // Adam m, SGD momentum buffer, Adagrad sum, RMSprop / Adadelta square_avg
  float* state1;  // Adam v, RMSprop momentum_buffer, Adadelta acc_delta (else null)
  int64_t n;
  const int64_t* rows = nullptr;
  int64_t k = 0, inner = 1, dim_size = 0;
  // Last, so that {param, grad, state0, state1, n} still reads as before.
  float* state2 = nullptr;  // RMSprop grad_avg (centered; else null)
};

CUVI_HD int64_t opt_target(const OptSlot& s, int64_t i) {
  if (!s.rows) return i;
  const int64_t j = i % s.inner, kr = i / s.inner;
  const int64_t r = kr % s.k, o = kr / s.k;
  const int64_t row = s.rows[r];
  return row < 0 ? -1 : (o * s.dim_size + row) * s.inner + j;
}

}  // namespace cuvi::kern
