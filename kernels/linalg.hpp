// Small dense linear algebra on one row at a time: the per-vector math of the
// batched triangular solve (runtime triangular_solve), shared by the CPU loop
// and the CUDA kernel.
#pragma once

#include <limits>

#include "common.hpp"

namespace cuvi::kern {

// Solves L z = b (transpose = false, forward substitution) or L^T z = b
// (transpose = true, back substitution) for one D-vector. L is lower
// triangular, row-major with row stride `ld`; only its lower triangle and
// diagonal are read (the upper triangle is ignored, as in
// torch.linalg.solve_triangular(upper=False)). b and z are contiguous and
// must not alias. Accumulates in float: D multiply-adds per row, so the
// rounding error grows like D * eps * cond(L), fine for the small event
// sizes of a MultivariateNormal.
CUVI_HD void trisolve_lower(const float* L, int64_t ld, const float* b, float* z, int64_t D, bool transpose) {
  if (!transpose) {
    for (int64_t i = 0; i < D; ++i) {
      float acc = b[i];
      for (int64_t j = 0; j < i; ++j) acc -= L[i * ld + j] * z[j];
      z[i] = acc / L[i * ld + i];
    }
  } else {
    // (L^T)[i][j] = L[j][i], non-zero for j >= i: walk up from the last row.
    for (int64_t i = D; i-- > 0;) {
      float acc = b[i];
      for (int64_t j = i + 1; j < D; ++j) acc -= L[j * ld + i] * z[j];
      z[i] = acc / L[i * ld + i];
    }
  }
}

// A namespace constant, usable in device code without nvcc's
// relaxed-constexpr flag (unlike a numeric_limits call in the function).
constexpr float kCholeskyNan = std::numeric_limits<float>::quiet_NaN();

// Cholesky factor of one symmetric positive-definite D x D matrix A
// (row-major, row stride D; only its lower triangle and diagonal are read):
// writes the lower-triangular L with A = L L^T into L (zeros above the
// diagonal), accumulating each entry's dot product in double. Returns -1 on
// success, else the index of the first pivot that is not positive (its
// value in *pivot; L is then NaN from that row on).
CUVI_HD int64_t cholesky_lower(const float* A, float* L, int64_t D, float* pivot) {
  for (int64_t i = 0; i < D; ++i) {
    for (int64_t j = 0; j <= i; ++j) {
      double s = static_cast<double>(A[i * D + j]);
      for (int64_t k = 0; k < j; ++k) s -= static_cast<double>(L[i * D + k]) * static_cast<double>(L[j * D + k]);
      if (i == j) {
        if (!(s > 0.0)) {
          *pivot = static_cast<float>(s);
          for (int64_t r = i; r < D; ++r)
            for (int64_t c = 0; c < D; ++c) L[r * D + c] = kCholeskyNan;
          return i;
        }
        L[i * D + i] = static_cast<float>(::sqrt(s));
      } else {
        L[i * D + j] = static_cast<float>(s / static_cast<double>(L[j * D + j]));
      }
    }
    for (int64_t j = i + 1; j < D; ++j) L[i * D + j] = 0.0f;
  }
  return -1;
}

}  // namespace cuvi::kern
