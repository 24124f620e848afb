// Generic batched kernels for a distribution family whose parameter is a
// row of K numbers per batch element (Dirichlet's concentration,
// Categorical's logits or probs). F is a struct of CUVI_HD functions on ONE
// row (kernels/dist/dirichlet.hpp, categorical.hpp) with
//   kValueEvent: true when a value is a row of K (Dirichlet), false when it
//                is one number per row (Categorical's index);
//   log_prob, log_prob_grad, bad_param, check_value, sample
//   (+ sample_grad for kValueEvent families with kHasRsample).
//   A kValueEvent family's log_prob_grad(x, p, K, dx, dparam) gets a null dx
//   or a null dparam when that gradient is not wanted and must skip it
//   (writing through neither); an index-valued family's dparam is never null.
// RowBody<F> adapts F to the generic row kernels of rows.hpp (log_prob, its
// backward, the fused sum, validation); sampling lives here. The CPU loops
// and the CUDA kernels (kernels/cuda/rows_kernels.cuh) instantiate the same
// bodies; each row is one thread's work (K is small in SVI models: topics,
// mixture components, classes).
//
// Index space: rows, i.e. the broadcast of the value's and the parameter's
// batch shapes (for sampling: sample_shape + batch_shape). Both inputs are
// contiguous; offsets from the geometry are in rows.
#pragma once

#include <cstdint>
#include <vector>

#include "../cpu_parallel.hpp"
#include "../indexing.hpp"
#include "../philox.hpp"
#include "family.hpp"
#include "rows.hpp"

namespace cuvi::kern {

struct RowArgs {
  const float* x = nullptr;     // values (rows of K, or one per row)
  const int64_t* xi = nullptr;  // int64 values instead of x (one per row: category indices)
  const float* p = nullptr;  // parameter rows of K
  int K = 0;
  BcastGeom<2> geom;  // input 0: value, input 1: parameter

  CUVI_HD const float* prow(int64_t r) const { return p + geom.offset(1, r) * K; }
  template <class F>
  CUVI_HD const float* xrow(int64_t r) const {
    return x + geom.offset(0, r) * (F::kValueEvent ? K : 1);
  }
  // The value of row r for families with one value per row, read from
  // whichever of x and xi is set (no conversion pass for int64 indices).
  CUVI_HD float xscalar(int64_t r) const {
    const int64_t o = geom.offset(0, r);
    return xi ? static_cast<float>(xi[o]) : x[o];
  }
};

// Per-row gradient rows (K each), in the index space; null: not wanted, and
// then not written (F::log_prob_grad skips a null row, see the contract
// above). gx is only used by kValueEvent families; an index-valued family
// always needs gp.
struct RowGrads {
  float* gx = nullptr;
  float* gp = nullptr;
};

// ---- per-row bodies ---------------------------------------------------------

template <class F>
struct RowBody {
  using Args = RowArgs;
  using Grads = RowGrads;
  CUVI_HD static int64_t rows(const RowArgs& a) { return a.geom.n; }

  CUVI_HD static float log_prob(const RowArgs& a, int64_t r) {
    if constexpr (F::kValueEvent) return F::log_prob(a.xrow<F>(r), a.prow(r), a.K);
    else return F::log_prob(a.xscalar(r), a.prow(r), a.K);
  }

  // log_prob of row r; its gradients times s into the rows of `out`.
  CUVI_HD static float log_prob_grad(const RowArgs& a, int64_t r, float s, const RowGrads& out) {
    const int K = a.K;
    float* gp = out.gp ? out.gp + r * K : nullptr;
    float l;
    if constexpr (F::kValueEvent) {
      // Either gradient may be null (not asked for): F skips it.
      float* gx = out.gx ? out.gx + r * K : nullptr;
      l = F::log_prob_grad(a.xrow<F>(r), a.prow(r), K, gx, gp);
      if (gx)
        for (int k = 0; k < K; ++k) gx[k] *= s;
      if (gp)
        for (int k = 0; k < K; ++k) gp[k] *= s;
    } else {
      l = F::log_prob_grad(a.xscalar(r), a.prow(r), K, gp);
      for (int k = 0; k < K; ++k) gp[k] *= s;
    }
    return l;
  }

  // 0 when row r is valid; 1 for a bad parameter, -1 for a value outside the
  // support; *bad gets the offending number.
  CUVI_HD static int validate(const RowArgs& a, int64_t r, bool values, float* bad) {
    const float* p = a.prow(r);
    const int k = F::bad_param(p, a.K);
    if (k >= 0) {
      *bad = p[k];
      return 1;
    }
    if (!values) return 0;
    if constexpr (F::kValueEvent) {
      if (!F::check_value(a.xrow<F>(r), a.K, bad)) return -1;
    } else {
      const float v = a.xscalar(r);
      if (!F::check_value(&v, a.K, bad)) return -1;
    }
    return 0;
  }
};

// A draw for row r. kValueEvent families write K numbers into out's row r
// and, with a reparameterised sampler, what sample_grad needs into aux[r];
// the others draw an index (Categorical), written into idx[r] as an int64.
template <class F>
CUVI_HD void row_sample(const RowArgs& a, int64_t r, uint64_t seed, uint32_t offset, float* out, int64_t* idx,
                        float* aux) {
  ElemRng rng(seed, static_cast<uint64_t>(r), offset);
  if constexpr (F::kValueEvent) {
    (void)idx;
    const float v = F::sample(a.prow(r), a.K, rng, out + r * a.K);
    if (aux) aux[r] = v;
  } else {
    (void)out;
    (void)aux;
    idx[r] = static_cast<int64_t>(F::sample(a.prow(r), a.K, rng));
  }
}

// Pathwise backward of a draw: with the draw in a.x (rows of K, index
// space layout) and its aux, writes g . dx/dp into gp's row r.
template <class F>
CUVI_HD void row_sample_grad(const RowArgs& a, int64_t r, const float* aux, const float* g, float* gp) {
  if constexpr (F::kValueEvent && F::kHasRsample)
    F::sample_grad(a.x + r * a.K, a.prow(r), aux[r], a.K, g + r * a.K, gp + r * a.K);
}

// ---- CPU sampling -------------------------------------------------------------

namespace cpu {

template <class F>
void row_sample(const RowArgs& a, uint64_t seed, uint32_t offset, float* out, int64_t* idx, float* aux) {
  const int64_t n = a.geom.n;
  ::cuvi::kern::cpu::parallel_for(n > kRowGrain / 16, n,
                                  [&](int64_t r) { kern::row_sample<F>(a, r, seed, offset, out, idx, aux); });
}

template <class F>
void row_sample_grad(const RowArgs& a, const float* aux, const float* g, float* gp) {
  const int64_t n = a.geom.n;
  ::cuvi::kern::cpu::parallel_for(n > kRowGrain / 16, n,
                                  [&](int64_t r) { kern::row_sample_grad<F>(a, r, aux, g, gp); });
}

}  // namespace cpu

// The CUDA sampling of a row family (its log_prob, backward, fused sum and
// validation are RowsRegistry<RowBody<F>>'s); both are filled by
// CUVI_REGISTER_CUDA_ROW_FAMILY(F) in a .cu file.
template <class F>
struct RowFamilyCudaOps {
  void (*sample)(const RowArgs&, uint64_t seed, uint32_t offset, float* out, int64_t* idx, float* aux,
                 void* stream);
  void (*sample_grad)(const RowArgs&, const float* aux, const float* g, float* gp, void* stream);
};

template <class F>
struct RowFamilyRegistry {
  static inline const RowFamilyCudaOps<F>* cuda = nullptr;
};

}  // namespace cuvi::kern
