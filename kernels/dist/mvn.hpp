// cuvi kernels: MultivariateNormal(loc, scale_tril) as a row body for the
// generic row kernels (rows.hpp). With Sigma = L L^T and z = L^{-1}(x - loc),
//   log p(x) = -0.5 z.z - sum_i log L_ii - D log sqrt(2 pi);
// with w = L^{-T} z the gradients are
//   d/dx = -w,  d/dloc = w,  d/dL_ij = w_i z_j - [i == j] / L_ii  (j <= i),
// and 0 above the diagonal (only the lower triangle is read). One thread
// solves one row's system in registers, so D is capped at kMvnMaxD; larger
// events go through the runtime's batched triangular solve instead.
#pragma once

#include "../indexing.hpp"
#include "../linalg.hpp"
#include "support.hpp"

namespace cuvi::kern {

constexpr int kMvnMaxD = 32;

struct MvnArgs {
  const float* x = nullptr;
  const float* loc = nullptr;
  const float* L = nullptr;
  int D = 0;
  BcastGeom<3> geom;  // rows; input 0 value, 1 loc, 2 scale_tril (offsets in rows)

  CUVI_HD const float* xrow(int64_t r) const { return x + geom.offset(0, r) * D; }
  CUVI_HD const float* locrow(int64_t r) const { return loc + geom.offset(1, r) * D; }
  CUVI_HD const float* Lrow(int64_t r) const { return L + geom.offset(2, r) * D * D; }
};

// Rows of D (gx, gloc) and D*D (gL) in the index space; all three are
// written by log_prob_grad.
struct MvnGrads {
  float* gx = nullptr;
  float* gloc = nullptr;
  float* gL = nullptr;
};

struct MvnBody {
  using Args = MvnArgs;
  using Grads = MvnGrads;
  static constexpr const char* kName = "MultivariateNormal";

  CUVI_HD static int64_t rows(const MvnArgs& a) { return a.geom.n; }

  // Forward substitution for z (into z[0..D)); returns log p.
  CUVI_HD static float solve(const MvnArgs& a, int64_t r, float* z) {
    const int D = a.D;
    const float *x = a.xrow(r), *m = a.locrow(r), *L = a.Lrow(r);
    float q = 0.0f, log_det = 0.0f;
    for (int i = 0; i < D; ++i) {
      float acc = x[i] - m[i];
      for (int j = 0; j < i; ++j) acc -= L[i * D + j] * z[j];
      const float Lii = L[i * D + i];
      z[i] = acc / Lii;
      q += z[i] * z[i];
      log_det += ::logf(Lii);
    }
    return -0.5f * q - log_det - static_cast<float>(D) * kLogSqrt2Pi;
  }

  CUVI_HD static float log_prob(const MvnArgs& a, int64_t r) {
    float z[kMvnMaxD];
    return solve(a, r, z);
  }

  CUVI_HD static float log_prob_grad(const MvnArgs& a, int64_t r, float s, const MvnGrads& out) {
    const int D = a.D;
    float z[kMvnMaxD], w[kMvnMaxD];
    const float l = solve(a, r, z);
    const float* L = a.Lrow(r);
    trisolve_lower(L, D, z, w, D, true);
    float* gx = out.gx + r * D;
    float* gloc = out.gloc + r * D;
    float* gL = out.gL + r * D * D;
    for (int i = 0; i < D; ++i) {
      gx[i] = -s * w[i];
      gloc[i] = s * w[i];
      for (int j = 0; j < D; ++j)
        gL[i * D + j] = j > i ? 0.0f : s * (w[i] * z[j] - (i == j ? 1.0f / L[i * D + i] : 0.0f));
    }
    return l;
  }

  // Codes (1 + k): 1 loc not real (NaN), 2 scale_tril not finite, 3 a
  // non-positive diagonal, 4 non-zero above the diagonal; -1 a NaN value.
  CUVI_HD static int validate(const MvnArgs& a, int64_t r, bool values, float* bad) {
    const int D = a.D;
    const float* m = a.locrow(r);
    for (int i = 0; i < D; ++i)
      if (m[i] != m[i]) {
        *bad = m[i];
        return 1;
      }
    const float* L = a.Lrow(r);
    for (int i = 0; i < D; ++i)
      for (int j = 0; j < D; ++j) {
        const float v = L[i * D + j];
        if (!(v >= -kFltMax && v <= kFltMax)) {
          *bad = v;
          return 2;
        }
        if (i == j && !(v > 0.0f)) {
          *bad = v;
          return 3;
        }
        if (j > i && v != 0.0f) {
          *bad = v;
          return 4;
        }
      }
    if (values) {
      const float* x = a.xrow(r);
      for (int i = 0; i < D; ++i)
        if (x[i] != x[i]) {
          *bad = x[i];
          return -1;
        }
    }
    return 0;
  }
};

}  // namespace cuvi::kern
