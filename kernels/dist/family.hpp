// Generic batched kernels for any elementwise distribution family F (a
// struct of CUVI_HD functions, see kernels/dist/normal.hpp): the CPU loops
// here and the CUDA kernels in kernels/cuda/family_kernels.cuh instantiate the
// same per-element functions. A user-defined family gets all of them by
// writing the struct.
//
// Index space: the output shape (sample_shape + batch_shape, or the
// broadcast of value and parameters). Input 0 is the value, input k+1 is
// parameter k. A parameter given as a float constant has p[k] == nullptr and
// its value in pval[k]: constants never occupy device memory.
#pragma once

#include <cstdint>
#include <vector>

#include "../cpu_parallel.hpp"
#include "../indexing.hpp"
#include "../philox.hpp"

namespace cuvi::kern {

template <int NP>
struct FamilyArgs {
  const float* x = nullptr;
  const float* p[NP] = {};
  float pval[NP] = {};
  BcastGeom<NP + 1> geom;

  CUVI_HD float value(int64_t i) const { return x[geom.offset(0, i)]; }
  CUVI_HD void params(int64_t i, float* out) const {
    for (int k = 0; k < NP; ++k) out[k] = p[k] ? p[k][geom.offset(k + 1, i)] : pval[k];
  }

  // Every input is read at the element's own index or at 0 (the index
  // space's shape, one element, or a constant): no broadcasting strides.
  bool flat() const {
    for (int k = 0; k <= NP; ++k)
      if (geom.kind[k] == InKind::kGeneral && (k == 0 || p[k - 1] != nullptr)) return false;
    return true;
  }
  // value(i) and params(i, out), the index arithmetic skipped when kFlat
  // (only valid when flat()).
  template <bool kFlat>
  CUVI_HD int64_t at(int k, int64_t i) const {
    if constexpr (kFlat) return geom.kind[k] == InKind::kScalar ? 0 : i;
    else return geom.offset(k, i);
  }
  template <bool kFlat>
  CUVI_HD float value_at(int64_t i) const {
    return x[at<kFlat>(0, i)];
  }
  template <bool kFlat>
  CUVI_HD void params_at(int64_t i, float* out) const {
    for (int k = 0; k < NP; ++k) out[k] = p[k] ? p[k][at<kFlat>(k + 1, i)] : pval[k];
  }
};

// Outputs of a gradient pass; null pointers are skipped. Gradients are
// written per element of the index space (the caller sums broadcast dims).
template <int NP>
struct FamilyGrads {
  float* gx = nullptr;
  float* gp[NP] = {};
};

// Validation failure codes written to the device flag (or thrown on the CPU).
struct FamilyCheck {
  int* flag = nullptr;   // device flag (CUDA); unused on the CPU
  float* bad = nullptr;  // where the offending value goes
  int param_code[8] = {};  // one code per parameter
  int value_code = 0;
};

// ---- per-element bodies shared by the CPU loops and the CUDA kernels -------

// a[k] for a runtime k in [0, N), read through compile-time indices only. A
// runtime index into a CUDA thread's array (its loaded parameters, a kernel
// parameter's codes) keeps the whole array in local memory instead of
// registers, in every kernel whose code can reach the read; and a loop
// `if (j == k) ... a[j]` is folded back into a[k] by the optimiser.
template <int N, int J = 0, class T>
CUVI_HD T pick_at(const T* a, int k) {
  if constexpr (J + 1 >= N) return a[J];
  else return k == J ? a[J] : pick_at<N, J + 1>(a, k);
}

// log_prob of value x with parameters p (element i's) and, scaled by s, its
// gradients into `out` at i.
template <class F>
CUVI_HD float elem_log_prob_grad_of(float x, const float* p, int64_t i, float s,
                                    const FamilyGrads<F::kNumParams>& out) {
  float dp[F::kNumParams], dx;
  const float l = F::log_prob_grad(x, p, &dx, dp);
  if (out.gx) out.gx[i] = s * dx;
  for (int k = 0; k < F::kNumParams; ++k)
    if (out.gp[k]) out.gp[k][i] = s * dp[k];
  return l;
}

// log_prob at element i and, scaled by s, its gradients into `out`.
template <class F>
CUVI_HD float elem_log_prob_grad(const FamilyArgs<F::kNumParams>& a, int64_t i, float s,
                                 const FamilyGrads<F::kNumParams>& out) {
  float p[F::kNumParams];
  a.params(i, p);
  return elem_log_prob_grad_of<F>(a.value(i), p, i, s, out);
}

template <class F>
CUVI_HD float elem_log_prob(const FamilyArgs<F::kNumParams>& a, int64_t i) {
  float p[F::kNumParams];
  a.params(i, p);
  return F::log_prob(a.value(i), p);
}

template <class F>
CUVI_HD float elem_sample(const FamilyArgs<F::kNumParams>& a, int64_t i, uint64_t seed, uint32_t offset) {
  float p[F::kNumParams];
  a.params(i, p);
  ElemRng rng(seed, static_cast<uint64_t>(i), offset);
  return F::sample(p, rng);
}

// g[i] * dx_i/dp_k into out.gp[k].
template <class F>
CUVI_HD void elem_sample_grad(const FamilyArgs<F::kNumParams>& a, int64_t i, const float* g,
                              const FamilyGrads<F::kNumParams>& out) {
  float p[F::kNumParams], d[F::kNumParams];
  a.params(i, p);
  F::sample_grad(a.value(i), p, d);
  for (int k = 0; k < F::kNumParams; ++k)
    if (out.gp[k]) out.gp[k][i] = g[i] * d[k];
}

template <class F>
CUVI_HD void elem_moments(const FamilyArgs<F::kNumParams>& a, int64_t i, float* mean, float* var) {
  float p[F::kNumParams];
  a.params(i, p);
  if (mean) mean[i] = F::mean(p);
  if (var) var[i] = F::variance(p);
}

// 0 when valid; else 1 + the bad parameter's index (parameters first) or -1
// for a value outside the support; *bad gets the offending number. The
// _of form takes an element already loaded (the fused sums check as they go).
template <class F>
CUVI_HD int elem_validate_of(float x, const float* p, bool values, float* bad) {
  const int k = F::bad_param(p);
  if (k >= 0) {
    *bad = pick_at<F::kNumParams>(p, k);
    return 1 + k;
  }
  if (values && !F::support_ok(x, p)) {
    *bad = x;
    return -1;
  }
  return 0;
}

// log_prob of element i, its parameters and value validated as they are
// loaded: *r gets elem_validate's result and *bad the offending number.
template <class F>
CUVI_HD float elem_log_prob_checked(const FamilyArgs<F::kNumParams>& a, int64_t i, int* r, float* bad) {
  float p[F::kNumParams];
  a.params(i, p);
  const float x = a.value(i);
  *r = elem_validate_of<F>(x, p, true, bad);
  return F::log_prob(x, p);
}

template <class F>
CUVI_HD int elem_validate(const FamilyArgs<F::kNumParams>& a, int64_t i, bool values, float* bad) {
  float p[F::kNumParams];
  a.params(i, p);
  return elem_validate_of<F>(values ? a.value(i) : 0.0f, p, values, bad);
}

// The first invalid element a CPU pass met (smallest index), with its
// elem_validate result and offending number; r == 0: none.
struct FirstBad {
  int64_t index = -1;
  int r = 0;
  float value = 0.0f;
  void offer(int64_t i, int res, float v) {
    if (res != 0 && (index < 0 || i < index)) {
      index = i;
      r = res;
      value = v;
    }
  }
};

// ---- CPU implementations -------------------------------------------------

namespace cpu {

constexpr int64_t kGrain = 1 << 14;
constexpr int64_t kChunk = 1 << 14;

// The density loops below work in blocks of kBlock elements: the value and
// parameters are first copied into contiguous block buffers (a memcpy for an
// input at the element's own index, a fill for a scalar or constant, the
// broadcast index arithmetic otherwise), then one loop over the block calls
// the family's functions on plain arrays and writes plain arrays. With
// branch-free family functions (select, exp_f, log1p_f, ...) GCC vectorises
// that loop; glibc calls or branches still run, scalar. Gradients are
// written from the block buffers to the outputs that are not null.
constexpr int kBlock = 256;

template <int NP>
struct FamilyBlock {
  float x[kBlock];
  float p[NP > 0 ? NP : 1][kBlock];
  float lp[kBlock];
  float gx[kBlock];
  float gp[NP > 0 ? NP : 1][kBlock];
};

// One input (k = 0 the value, k >= 1 parameter k - 1) of elements
// [lo, lo + m) into dst.
template <int NP>
inline void load_block_input(const FamilyArgs<NP>& a, int k, int64_t lo, int m, float* dst) {
  const float* src = k == 0 ? a.x : a.p[k - 1];
  if (src == nullptr) {  // a float constant
    const float v = a.pval[k > 0 ? k - 1 : 0];  // (k == 0, the value, is never a constant)
    for (int j = 0; j < m; ++j) dst[j] = v;
    return;
  }
  switch (a.geom.kind[k]) {
    case InKind::kSame:
      for (int j = 0; j < m; ++j) dst[j] = src[lo + j];
      return;
    case InKind::kScalar: {
      const float v = src[0];
      for (int j = 0; j < m; ++j) dst[j] = v;
      return;
    }
    default: {
      // Broadcast strides: the offset of lo once, then an odometer over the
      // multi-index (last dim fastest, as BcastGeom::offset) instead of a
      // division per dim per element.
      const auto& g = a.geom;
      int64_t idx[kMaxDims];
      int64_t rem = lo, off = 0;
      for (int d = g.ndim - 1; d >= 0; --d) {
        idx[d] = rem % g.size[d];
        rem /= g.size[d];
        off += idx[d] * g.stride[k][d];
      }
      for (int j = 0; j < m; ++j) {
        dst[j] = src[off];
        for (int d = g.ndim - 1; d >= 0; --d) {
          off += g.stride[k][d];
          if (++idx[d] < g.size[d]) break;
          off -= g.stride[k][d] * g.size[d];
          idx[d] = 0;
        }
      }
    }
  }
}
template <int NP>
inline void load_block(const FamilyArgs<NP>& a, int64_t lo, int m, FamilyBlock<NP>& b) {
  load_block_input(a, 0, lo, m, b.x);
  for (int k = 0; k < NP; ++k) load_block_input(a, k + 1, lo, m, b.p[k]);
}

// b.lp[j] = log_prob of element lo + j of the block (and, when kGrads, its
// gradients into b.gx, b.gp, unscaled).
template <class F, bool kGrads>
inline void block_log_prob(FamilyBlock<F::kNumParams>& b, int m) {
  constexpr int NP = F::kNumParams;
  for (int j = 0; j < m; ++j) {
    float p[NP];
    for (int k = 0; k < NP; ++k) p[k] = b.p[k][j];
    if constexpr (kGrads) {
      float dp[NP];
      b.lp[j] = F::log_prob_grad(b.x[j], p, &b.gx[j], dp);
      for (int k = 0; k < NP; ++k) b.gp[k][j] = dp[k];
    } else {
      b.lp[j] = F::log_prob(b.x[j], p);
    }
  }
}
// out.gx[i] = s_j * b.gx[j] for the block (s_j = s, or s * g[lo + j]), and the same for
// every parameter gradient that is asked for.
template <int NP>
inline void store_block_grads(const FamilyBlock<NP>& b, int64_t lo, int m, float s, const float* g,
                              const FamilyGrads<NP>& out) {
  auto put = [&](float* dst, const float* src) {
    if (!dst) return;
    if (g) {
      for (int j = 0; j < m; ++j) dst[lo + j] = s * g[lo + j] * src[j];
    } else {
      for (int j = 0; j < m; ++j) dst[lo + j] = s * src[j];
    }
  };
  put(out.gx, b.gx);
  for (int k = 0; k < NP; ++k) put(out.gp[k], b.gp[k]);
}
// The first invalid element of the block into f (parameters and value,
// read from the block buffers).
template <class F>
inline void block_validate(const FamilyBlock<F::kNumParams>& b, int64_t lo, int m, FirstBad& f) {
  constexpr int NP = F::kNumParams;
  for (int j = 0; j < m; ++j) {
    if (f.index >= 0) return;  // (not in the loop condition: nvcc's front end misparses `f.index < 0` there)
    float p[NP];
    for (int k = 0; k < NP; ++k) p[k] = b.p[k][j];
    float v = 0.0f;
    const int r = elem_validate_of<F>(b.x[j], p, true, &v);
    if (r != 0) f.offer(lo + j, r, v);
  }
}

// The smallest i in [0, n) with visit(i, &v) != 0, its result and v, over
// chunks of `chunk` in parallel (when n > grain; pass chunk <= grain so that
// a parallel scan has at least two chunks). kVisitAll: every i is visited
// (visit does the pass's work as well as the check); else each chunk stops
// at its first hit (a check alone).
template <bool kVisitAll, class Visit>
FirstBad scan_first_bad(int64_t n, int64_t grain, int64_t chunk, Visit&& visit) {
  const int64_t chunks = (n + chunk - 1) / chunk;
  std::vector<FirstBad> first(static_cast<size_t>(chunks > 0 ? chunks : 1));
  ::cuvi::kern::cpu::parallel_for(n > grain, chunks, [&](int64_t c) {
    const int64_t lo = c * chunk, hi = (lo + chunk < n) ? lo + chunk : n;
    FirstBad& f = first[static_cast<size_t>(c)];
    for (int64_t i = lo; i < hi; ++i) {
      float v = 0.0f;
      const int r = visit(i, &v);
      if (r != 0 && f.index < 0) {
        f.offer(i, r, v);
        if constexpr (!kVisitAll) return;
      }
    }
  });
  FirstBad f;
  for (const FirstBad& c : first) f.offer(c.index, c.r, c.value);
  return f;
}
template <class Visit>
FirstBad first_bad_over(int64_t n, int64_t grain, Visit&& visit) {
  return scan_first_bad<true>(n, grain, grain, visit);
}
template <class Check>
FirstBad first_bad(int64_t n, int64_t grain, Check&& check) {
  return scan_first_bad<false>(n, grain, grain, check);
}

// With `bad`, each element's parameters and value are validated as they are
// loaded for the density (no second read of the inputs), and *bad gets the
// first invalid element by index (outputs are then meaningless).
template <class F>
void log_prob(const FamilyArgs<F::kNumParams>& a, float* out, FirstBad* bad = nullptr) {
  const int64_t n = a.geom.n;
  // Tasks of kChunk elements (one FirstBad each), blocks of kBlock inside.
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<FirstBad> first(bad ? static_cast<size_t>(chunks) : 0);
  ::cuvi::kern::cpu::parallel_for(n > kGrain, chunks, [&](int64_t c) {
    const int64_t hi = (c + 1) * kChunk < n ? (c + 1) * kChunk : n;
    FamilyBlock<F::kNumParams> b;
    for (int64_t lo = c * kChunk; lo < hi; lo += kBlock) {
      const int m = static_cast<int>(lo + kBlock < hi ? kBlock : hi - lo);
      load_block(a, lo, m, b);
      if (bad) block_validate<F>(b, lo, m, first[static_cast<size_t>(c)]);
      block_log_prob<F, false>(b, m);
      for (int j = 0; j < m; ++j) out[lo + j] = b.lp[j];
    }
  });
  if (bad) {
    *bad = FirstBad{};
    for (const FirstBad& f : first) bad->offer(f.index, f.r, f.value);
  }
}

// coef * (g ? g[i] : 1) times the gradients; lp (per element) optional.
template <class F>
void log_prob_grad(const FamilyArgs<F::kNumParams>& a, const float* g, float coef, float* lp,
                   const FamilyGrads<F::kNumParams>& out) {
  const int64_t n = a.geom.n;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  ::cuvi::kern::cpu::parallel_for(n > kGrain, blocks, [&](int64_t c) {
    const int64_t lo = c * kBlock;
    const int m = static_cast<int>(lo + kBlock < n ? kBlock : n - lo);
    FamilyBlock<F::kNumParams> b;
    load_block(a, lo, m, b);
    block_log_prob<F, true>(b, m);
    store_block_grads(b, lo, m, coef, g, out);
    if (lp)
      for (int j = 0; j < m; ++j) lp[lo + j] = b.lp[j];
  });
}

// Fused: returns coef * sum(log_prob) (fixed chunks, double partials, added
// in order: independent of the thread count) and writes coef * gradients.
// With `bad`, every element is also validated in the same pass (parameters
// and value: no second read of the inputs); *bad gets the first invalid one,
// as a sequential validate() would report it. Outputs are then meaningless.
template <class F>
float log_prob_sum(const FamilyArgs<F::kNumParams>& a, float coef, const FamilyGrads<F::kNumParams>& out,
                   FirstBad* bad = nullptr) {
  constexpr int NP = F::kNumParams;
  const int64_t n = a.geom.n;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks > 0 ? chunks : 1), 0.0);
  std::vector<FirstBad> first(bad ? partial.size() : 0);
  const bool grads = out.gx != nullptr || [&] {
    for (int k = 0; k < NP; ++k)
      if (out.gp[k]) return true;
    return false;
  }();
  ::cuvi::kern::cpu::parallel_for(n > kGrain, chunks, [&](int64_t c) {
    const int64_t lo = c * kChunk, hi = (lo + kChunk < n) ? lo + kChunk : n;
    double acc = 0.0;
    FamilyBlock<NP> b;
    for (int64_t b0 = lo; b0 < hi; b0 += kBlock) {
      const int m = static_cast<int>(b0 + kBlock < hi ? kBlock : hi - b0);
      load_block(a, b0, m, b);
      if (bad) block_validate<F>(b, b0, m, first[static_cast<size_t>(c)]);
      if (grads) {
        block_log_prob<F, true>(b, m);
        store_block_grads(b, b0, m, coef, nullptr, out);
      } else {
        block_log_prob<F, false>(b, m);
      }
      for (int j = 0; j < m; ++j) acc += b.lp[j];  // in element order, as before blocking
    }
    partial[static_cast<size_t>(c)] = acc;
  });
  if (bad)
    for (const FirstBad& f : first) bad->offer(f.index, f.r, f.value);
  double total = 0.0;
  for (double v : partial) total += v;
  return static_cast<float>(coef * total);
}

template <class F>
void sample(const FamilyArgs<F::kNumParams>& a, uint64_t seed, uint32_t offset, float* out) {
  const int64_t n = a.geom.n;
  ::cuvi::kern::cpu::parallel_for(n > kGrain / 16, n, [&](int64_t i) { out[i] = elem_sample<F>(a, i, seed, offset); });
}

// gp[k][i] = g[i] * dx_i/dp_k for a sample x (a.x) of the family.
template <class F>
void sample_grad(const FamilyArgs<F::kNumParams>& a, const float* g, const FamilyGrads<F::kNumParams>& out) {
  const int64_t n = a.geom.n;
  ::cuvi::kern::cpu::parallel_for(n > kGrain / 16, n, [&](int64_t i) { elem_sample_grad<F>(a, i, g, out); });
}

template <class F>
void moments(const FamilyArgs<F::kNumParams>& a, float* mean, float* var) {
  for (int64_t i = 0; i < a.geom.n; ++i) elem_moments<F>(a, i, mean, var);
}

// The first invalid element's elem_validate result (smallest index), or 0.
template <class F>
int validate(const FamilyArgs<F::kNumParams>& a, bool values, float* bad) {
  const FirstBad f =
      first_bad(a.geom.n, kGrain, [&](int64_t i, float* v) { return elem_validate<F>(a, i, values, v); });
  *bad = f.value;
  return f.r;
}

}  // namespace cpu
}  // namespace cuvi::kern

namespace cuvi::kern {

// The CUDA side of a family, as function pointers so that code compiled by a
// plain C++ compiler (ppl/) can launch kernels instantiated in a .cu file.
// `stream` is a cudaStream_t. Filled by CUVI_REGISTER_CUDA_FAMILY(F) (see
// kernels/cuda/family_kernels.cuh) in any .cu file linked into the program.
template <int NP>
struct FamilyCudaOps {
  // With `check`, validates every element in the same pass (deferred).
  void (*log_prob)(const FamilyArgs<NP>&, float* out, const FamilyCheck* check, void* stream);
  void (*log_prob_grad)(const FamilyArgs<NP>&, const float* g, float coef, float* lp, const FamilyGrads<NP>&,
                        void* stream);
  // Writes coef * sum(log_prob) into the device scalar `sum`; with `check`,
  // validates every element in the same pass (deferred, as validate).
  void (*log_prob_sum)(const FamilyArgs<NP>&, float coef, float* sum, const FamilyGrads<NP>&,
                       const FamilyCheck* check, void* stream);
  void (*sample)(const FamilyArgs<NP>&, uint64_t seed, uint32_t offset, float* out, void* stream);
  void (*sample_grad)(const FamilyArgs<NP>&, const float* g, const FamilyGrads<NP>&, void* stream);
  void (*moments)(const FamilyArgs<NP>&, float* mean, float* var, void* stream);
  void (*validate)(const FamilyArgs<NP>&, bool values, const FamilyCheck&, void* stream);
};

template <class F>
struct FamilyRegistry {
  static inline const FamilyCudaOps<F::kNumParams>* cuda = nullptr;
};

}  // namespace cuvi::kern
