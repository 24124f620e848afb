// Generic batched log-density kernels over an index space of rows, for
// distributions whose batch element is a small vector problem (Dirichlet,
// Categorical, MultivariateNormal). A body B provides
//   using Args;  using Grads;                  (plain structs, passed by value)
//   static int64_t rows(const Args&);
//   static float log_prob(const Args&, int64_t r);
//   static float log_prob_grad(const Args&, int64_t r, float s, const Grads&);
//                                              (writes s * gradients of row r)
//   static int validate(const Args&, int64_t r, bool values, float* bad);
//                                              (0; 1 + k for parameter k; -1
//                                               for a value outside the support)
// as CUVI_HD functions; the CPU loops here and the CUDA kernels in
// kernels/cuda/rows_kernels.cuh instantiate the same bodies, one row per
// thread, so a log_prob, its backward and the fused log-prob-sum are one
// launch each.
#pragma once

#include <cstdint>
#include <vector>

#include "../cpu_parallel.hpp"
#include "family.hpp"

namespace cuvi::kern {
namespace cpu {

constexpr int64_t kRowGrain = 1 << 12;

// With `bad`, each row is validated just before its density and *bad gets
// the first invalid row by index (outputs are then meaningless).
template <class B>
void rows_log_prob(const typename B::Args& a, float* out, FirstBad* bad = nullptr) {
  const int64_t n = B::rows(a);
  if (!bad) {
    ::cuvi::kern::cpu::parallel_for(n > kRowGrain, n, [&](int64_t r) { out[r] = B::log_prob(a, r); });
    return;
  }
  *bad = first_bad_over(n, kRowGrain, [&](int64_t r, float* v) {
    const int res = B::validate(a, r, true, v);
    out[r] = B::log_prob(a, r);
    return res;
  });
}

// Gradients of sum_r c_r log_prob_r with c_r = coef * (g ? g[r] : 1).
template <class B>
void rows_log_prob_grad(const typename B::Args& a, const float* g, float coef, const typename B::Grads& out) {
  const int64_t n = B::rows(a);
  ::cuvi::kern::cpu::parallel_for(n > kRowGrain, n,
                                  [&](int64_t r) { B::log_prob_grad(a, r, coef * (g ? g[r] : 1.0f), out); });
}

// coef * sum(log_prob) over fixed chunks of rows (double partials added in
// order: independent of the thread count); gradients in the same pass when
// `grads`. With `bad`, each row is validated just before it is used (its
// data still in cache) and *bad gets the first invalid row by index.
template <class B>
float rows_log_prob_sum(const typename B::Args& a, float coef, const typename B::Grads& out, bool grads,
                        FirstBad* bad = nullptr) {
  const int64_t n = B::rows(a);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks > 0 ? chunks : 1), 0.0);
  std::vector<FirstBad> first(bad ? partial.size() : 0);
  ::cuvi::kern::cpu::parallel_for(n > kRowGrain, chunks, [&](int64_t c) {
    const int64_t lo = c * kChunk, hi = (lo + kChunk < n) ? lo + kChunk : n;
    double acc = 0.0;
    for (int64_t r = lo; r < hi; ++r) {
      if (bad) {
        float v = 0.0f;
        const int res = B::validate(a, r, true, &v);
        first[static_cast<size_t>(c)].offer(r, res, v);
      }
      acc += grads ? B::log_prob_grad(a, r, coef, out) : B::log_prob(a, r);
    }
    partial[static_cast<size_t>(c)] = acc;
  });
  if (bad)
    for (const FirstBad& f : first) bad->offer(f.index, f.r, f.value);
  double total = 0.0;
  for (double v : partial) total += v;
  return static_cast<float>(coef * total);
}

// The first invalid row's validate result (smallest index), or 0.
template <class B>
int rows_validate(const typename B::Args& a, bool values, float* bad) {
  const FirstBad f =
      first_bad(B::rows(a), kRowGrain, [&](int64_t r, float* v) { return B::validate(a, r, values, v); });
  *bad = f.value;
  return f.r;
}

}  // namespace cpu

// The CUDA side of a body, as function pointers (see FamilyCudaOps).
template <class B>
struct RowsCudaOps {
  // With `check`, validates each row in the same pass (deferred).
  void (*log_prob)(const typename B::Args&, float* out, const FamilyCheck* check, void* stream);
  void (*log_prob_grad)(const typename B::Args&, const float* g, float coef, const typename B::Grads&, void* stream);
  // Writes coef * sum(log_prob) into the device scalar `sum`; with `check`,
  // validates each row in the same pass (deferred, as validate).
  void (*log_prob_sum)(const typename B::Args&, float coef, float* sum, const typename B::Grads&, bool grads,
                       const FamilyCheck* check, void* stream);
  void (*validate)(const typename B::Args&, bool values, const FamilyCheck&, void* stream);
};

template <class B>
struct RowsRegistry {
  static inline const RowsCudaOps<B>* cuda = nullptr;
};

}  // namespace cuvi::kern
