// Generic batched kernels for a distribution family whose parameter is a
// row of K numbers per batch element (Dirichlet's concentration,
// Categorical's logits or probs). F is a struct of CUVI_HD functions on ONE
// row (kernels/dist/dirichlet.hpp, categorical.hpp) with
//   kValueEvent: true when a value is a row of K (Dirichlet), false when it
//                is one number per row (Categorical's index);
//   log_prob, log_prob_grad, bad_param, check_value, sample
//   (+ sample_grad for kValueEvent families with kHasRsample).
// The CPU loops here and the CUDA kernels in
// kernels/cuda/row_family_kernels.cuh instantiate the same bodies; each row
// is one thread's work (K is small in SVI models: topics, mixture
// components, classes), so a log_prob or its backward is one launch.
//
// Index space: rows, i.e. the broadcast of the value's and the parameter's
// batch shapes (for sampling: sample_shape + batch_shape). Both inputs are
// contiguous; offsets from the geometry are in rows.
#pragma once

#include <cstdint>
#include <vector>

#include "../indexing.hpp"
#include "../philox.hpp"
#include "family.hpp"

namespace cuvi::kern {

struct RowArgs {
  const float* x = nullptr;  // values (rows of K, or one per row)
  const float* p = nullptr;  // parameter rows of K
  int K = 0;
  BcastGeom<2> geom;  // input 0: value, input 1: parameter

  CUVI_HD const float* prow(int64_t r) const { return p + geom.offset(1, r) * K; }
  template <class F>
  CUVI_HD const float* xrow(int64_t r) const {
    return x + geom.offset(0, r) * (F::kValueEvent ? K : 1);
  }
};

// Per-row gradient rows (K each), in the index space; null: not wanted.
// For kValueEvent families both are written whenever either is set, so a
// caller that wants one of them passes scratch for the other.
struct RowGrads {
  float* gx = nullptr;
  float* gp = nullptr;
};

// ---- per-row bodies ---------------------------------------------------------

template <class F>
CUVI_HD float row_log_prob(const RowArgs& a, int64_t r) {
  if constexpr (F::kValueEvent) return F::log_prob(a.xrow<F>(r), a.prow(r), a.K);
  else return F::log_prob(*a.xrow<F>(r), a.prow(r), a.K);
}

// log_prob of row r; its gradients times s into the rows of `out`.
template <class F>
CUVI_HD float row_log_prob_grad(const RowArgs& a, int64_t r, float s, const RowGrads& out) {
  const int K = a.K;
  float* gp = out.gp + r * K;
  float l;
  if constexpr (F::kValueEvent) {
    float* gx = out.gx + r * K;
    l = F::log_prob_grad(a.xrow<F>(r), a.prow(r), K, gx, gp);
    for (int k = 0; k < K; ++k) {
      gx[k] *= s;
      gp[k] *= s;
    }
  } else {
    l = F::log_prob_grad(*a.xrow<F>(r), a.prow(r), K, gp);
    for (int k = 0; k < K; ++k) gp[k] *= s;
  }
  return l;
}

// A draw for row r into out (K numbers, or one); for kValueEvent families
// with a reparameterised sampler, *aux gets what sample_grad needs.
template <class F>
CUVI_HD void row_sample(const RowArgs& a, int64_t r, uint64_t seed, uint32_t offset, float* out, float* aux) {
  ElemRng rng(seed, static_cast<uint64_t>(r), offset);
  if constexpr (F::kValueEvent) {
    const float v = F::sample(a.prow(r), a.K, rng, out + r * a.K);
    if (aux) aux[r] = v;
  } else {
    (void)aux;
    out[r] = F::sample(a.prow(r), a.K, rng);
  }
}

// Pathwise backward of a draw: with the draw in a.x (rows of K, index
// space layout) and its aux, writes g . dx/dp into gp's row r.
template <class F>
CUVI_HD void row_sample_grad(const RowArgs& a, int64_t r, const float* aux, const float* g, float* gp) {
  if constexpr (F::kValueEvent && F::kHasRsample)
    F::sample_grad(a.x + r * a.K, a.prow(r), aux[r], a.K, g + r * a.K, gp + r * a.K);
}

// 0 when row r is valid; 1 for a bad parameter, -1 for a value outside the
// support; *bad gets the offending number.
template <class F>
CUVI_HD int row_validate(const RowArgs& a, int64_t r, bool values, float* bad) {
  const float* p = a.prow(r);
  const int k = F::bad_param(p, a.K);
  if (k >= 0) {
    *bad = p[k];
    return 1;
  }
  if (values && !F::check_value(a.xrow<F>(r), a.K, bad)) return -1;
  return 0;
}

// ---- CPU implementations -------------------------------------------------

namespace cpu {

constexpr int64_t kRowGrain = 1 << 12;

template <class F>
void row_log_prob(const RowArgs& a, float* out) {
  const int64_t n = a.geom.n;
#pragma omp parallel for schedule(static) if (n > kRowGrain)
  for (int64_t r = 0; r < n; ++r) out[r] = kern::row_log_prob<F>(a, r);
}

// Gradients of sum_r c_r log_prob_r with c_r = coef * (g ? g[r] : 1).
template <class F>
void row_log_prob_grad(const RowArgs& a, const float* g, float coef, const RowGrads& out) {
  const int64_t n = a.geom.n;
#pragma omp parallel for schedule(static) if (n > kRowGrain)
  for (int64_t r = 0; r < n; ++r) kern::row_log_prob_grad<F>(a, r, coef * (g ? g[r] : 1.0f), out);
}

// coef * sum(log_prob) over fixed chunks of rows (double partials added in
// order), gradients (coef times) in the same pass when out.gp is set.
template <class F>
float row_log_prob_sum(const RowArgs& a, float coef, const RowGrads& out) {
  const int64_t n = a.geom.n;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks > 0 ? chunks : 1), 0.0);
  const bool grads = out.gp != nullptr;
#pragma omp parallel for schedule(static) if (n > kRowGrain)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t lo = c * kChunk, hi = (lo + kChunk < n) ? lo + kChunk : n;
    double acc = 0.0;
    for (int64_t r = lo; r < hi; ++r)
      acc += grads ? kern::row_log_prob_grad<F>(a, r, coef, out) : kern::row_log_prob<F>(a, r);
    partial[static_cast<size_t>(c)] = acc;
  }
  double total = 0.0;
  for (double v : partial) total += v;
  return static_cast<float>(coef * total);
}

template <class F>
void row_sample(const RowArgs& a, uint64_t seed, uint32_t offset, float* out, float* aux) {
  const int64_t n = a.geom.n;
#pragma omp parallel for schedule(static) if (n > kRowGrain / 16)
  for (int64_t r = 0; r < n; ++r) kern::row_sample<F>(a, r, seed, offset, out, aux);
}

template <class F>
void row_sample_grad(const RowArgs& a, const float* aux, const float* g, float* gp) {
  const int64_t n = a.geom.n;
#pragma omp parallel for schedule(static) if (n > kRowGrain / 16)
  for (int64_t r = 0; r < n; ++r) kern::row_sample_grad<F>(a, r, aux, g, gp);
}

// The first invalid row's row_validate result, or 0.
template <class F>
int row_validate(const RowArgs& a, bool values, float* bad) {
  for (int64_t r = 0; r < a.geom.n; ++r)
    if (const int v = kern::row_validate<F>(a, r, values, bad); v != 0) return v;
  return 0;
}

}  // namespace cpu

// The CUDA side of a row family (see FamilyCudaOps); filled by
// CUVI_REGISTER_CUDA_ROW_FAMILY(F) in a .cu file.
struct RowFamilyCudaOps {
  void (*log_prob)(const RowArgs&, float* out, void* stream);
  void (*log_prob_grad)(const RowArgs&, const float* g, float coef, const RowGrads&, void* stream);
  void (*log_prob_sum)(const RowArgs&, float coef, float* sum, const RowGrads&, void* stream);
  void (*sample)(const RowArgs&, uint64_t seed, uint32_t offset, float* out, float* aux, void* stream);
  void (*sample_grad)(const RowArgs&, const float* aux, const float* g, float* gp, void* stream);
  // Validation codes: param_code[0] for a bad parameter, value_code.
  void (*validate)(const RowArgs&, bool values, const FamilyCheck&, void* stream);
};

template <class F>
struct RowFamilyRegistry {
  static inline const RowFamilyCudaOps* cuda = nullptr;
};

}  // namespace cuvi::kern
