// cuvi kernels: row bodies (rows.hpp) for the families whose parameter is a
// Categorical's row of K probs or logits and whose value is a row of K:
//   OneHotCategorical       log p(x) = sum_k x_k log pi_k            (x one-hot)
//   Multinomial(n)          log p(x) = lgamma(s + 1) - sum_k lgamma(x_k + 1)
//                                      + sum_k x_k log pi_k,  s = sum_k x_k
//                           (x: non-negative integers with s = n)
//   RelaxedOneHotCategorical  validation only (parameter row, simplex value):
//                           its density needs the temperature and is
//                           composed of runtime ops (ppl/multivariate.cpp).
// pi = softmax(logits), or probs / sum(probs). A term with x_k = 0 is 0 even
// where pi_k = 0 (a masked category). Gradients (the parameter's only; the
// values are discrete):
//   logits: d/dl_j = x_j - s softmax(l)_j
//   probs:  d/dp_j = x_j / p_j - s / sum(p)     (x_j / p_j read as 0 when x_j = 0)
// One thread per row, as the other row families.
#pragma once

#include <type_traits>

#include "../indexing.hpp"
#include "categorical.hpp"
#include "dirichlet.hpp"

namespace cuvi::kern {

namespace count_rows {
constexpr int kOneHot = 0;
constexpr int kMultinomial = 1;
constexpr int kRelaxed = 2;
}  // namespace count_rows

struct CountRowArgs {
  const float* x = nullptr;  // value rows of K (null when only parameters are validated)
  const float* p = nullptr;  // parameter rows of K
  int K = 0;
  int n = 1;          // Multinomial's total_count (1 for OneHotCategorical)
  BcastGeom<2> geom;  // input 0: value, input 1: parameter (offsets in rows)

  CUVI_HD const float* xrow(int64_t r) const { return x + geom.offset(0, r) * K; }
  CUVI_HD const float* prow(int64_t r) const { return p + geom.offset(1, r) * K; }
};

struct CountRowGrads {
  float* gp = nullptr;  // rows of K in the index space
};

template <int kKind, bool kLogits>
struct CountRowsBody {
  using Args = CountRowArgs;
  using Grads = CountRowGrads;
  static constexpr int kFamily = kKind;
  static constexpr const char* kName = kKind == count_rows::kOneHot        ? "OneHotCategorical"
                                       : kKind == count_rows::kMultinomial ? "Multinomial"
                                                                           : "RelaxedOneHotCategorical";
  using Param = typename std::conditional<kLogits, CategoricalLogits, CategoricalProbs>::type;

  CUVI_HD static int64_t rows(const CountRowArgs& a) { return a.geom.n; }

  // log pi_k up to the row's normaliser c: log pi_k = v_k - c.
  CUVI_HD static float normaliser(const float* p, int K) {
    if constexpr (kLogits) return Param::logsumexp(p, K);
    else return ::logf(Param::total(p, K));
  }
  CUVI_HD static float log_weight(const float* p, int k) {
    if constexpr (kLogits) return p[k];
    else return ::logf(p[k]);
  }

  CUVI_HD static float log_prob(const CountRowArgs& a, int64_t r) {
    if constexpr (kKind == count_rows::kRelaxed) {
      (void)a;
      (void)r;
      return kInfF - kInfF;  // NaN: never used (see above)
    } else {
      const int K = a.K;
      const float *x = a.xrow(r), *p = a.prow(r);
      const float c = normaliser(p, K);
      double acc = 0.0, s = 0.0, lg = 0.0;
      for (int k = 0; k < K; ++k) {
        if (x[k] == 0.0f) continue;
        acc += static_cast<double>(x[k]) * static_cast<double>(log_weight(p, k) - c);
        s += static_cast<double>(x[k]);
        if constexpr (kKind == count_rows::kMultinomial) lg -= lgamma_d(static_cast<double>(x[k]) + 1.0);
      }
      if constexpr (kKind == count_rows::kMultinomial) acc += lg + lgamma_d(s + 1.0);
      return static_cast<float>(acc);
    }
  }

  CUVI_HD static float log_prob_grad(const CountRowArgs& a, int64_t r, float scale, const CountRowGrads& out) {
    const int K = a.K;
    const float l = log_prob(a, r);
    if (!out.gp) return l;
    float* g = out.gp + r * K;
    if constexpr (kKind == count_rows::kRelaxed) {
      for (int k = 0; k < K; ++k) g[k] = 0.0f;
    } else {
      const float *x = a.xrow(r), *p = a.prow(r);
      float s = 0.0f;
      for (int k = 0; k < K; ++k) s += x[k];
      if constexpr (kLogits) {
        const float c = Param::logsumexp(p, K);
        for (int k = 0; k < K; ++k) g[k] = scale * (x[k] - s * ::expf(p[k] - c));
      } else {
        const float tot = Param::total(p, K);
        for (int k = 0; k < K; ++k) g[k] = scale * ((x[k] == 0.0f ? 0.0f : x[k] / p[k]) - s / tot);
      }
    }
    return l;
  }

  // The value row's check, naming the offending number in *bad: for counts
  // the first entry that is not a non-negative integer, else the row's sum
  // when it is not n; for Relaxed the simplex check of Dirichlet.
  CUVI_HD static bool check_value(const CountRowArgs& a, const float* x, float* bad) {
    if constexpr (kKind == count_rows::kRelaxed) {
      return Dirichlet::check_value(x, a.K, bad);
    } else {
      double s = 0.0;
      for (int k = 0; k < a.K; ++k) {
        if (!check::nonneg_integer(x[k])) {
          *bad = x[k];
          return false;
        }
        s += static_cast<double>(x[k]);
      }
      if (s != static_cast<double>(a.n)) {
        *bad = static_cast<float>(s);
        return false;
      }
      return true;
    }
  }

  CUVI_HD static int validate(const CountRowArgs& a, int64_t r, bool values, float* bad) {
    const float* p = a.prow(r);
    const int k = Param::bad_param(p, a.K);
    if (k >= 0) {
      *bad = p[k];
      return 1;
    }
    if (!values) return 0;
    return check_value(a, a.xrow(r), bad) ? 0 : -1;
  }
};

using OneHotCategoricalProbsBody = CountRowsBody<count_rows::kOneHot, false>;
using OneHotCategoricalLogitsBody = CountRowsBody<count_rows::kOneHot, true>;
using MultinomialProbsBody = CountRowsBody<count_rows::kMultinomial, false>;
using MultinomialLogitsBody = CountRowsBody<count_rows::kMultinomial, true>;
using RelaxedProbsBody = CountRowsBody<count_rows::kRelaxed, false>;
using RelaxedLogitsBody = CountRowsBody<count_rows::kRelaxed, true>;

}  // namespace cuvi::kern
