// Small dense linear algebra on one row at a time: the per-vector math of the
// batched triangular solve (runtime triangular_solve), shared by the CPU loop
// and the CUDA kernel.
#pragma once

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

}  // namespace cuvi::kern
