// Tensor-level linear algebra: the batched lower-triangular solve and its
// backward. The per-vector substitution lives in kernels/linalg.hpp; each
// backend runs it over the batch (Backend::trisolve).
#include "ops_util.hpp"

namespace cuvi {

using detail::check_float;
using detail::check_same_device;
using detail::record_fn;

namespace {

// The solve without a tape entry: broadcasts the batch dims of L [..., D, D]
// and b [..., D] and returns z [batch..., D].
Tensor trisolve_raw(const Tensor& L, const Tensor& b, bool transpose) {
  const Shape& sl = L.shape();
  const Shape& sb = b.shape();
  const int64_t D = sl.back();
  const Shape lb(sl.begin(), sl.end() - 2), bb(sb.begin(), sb.end() - 1);
  const Shape batch = broadcast_shapes(lb, bb, "triangular_solve");
  const int64_t nbatch = shape_numel(batch);
  Shape vec_shape = batch;
  vec_shape.push_back(D);
  // One shared matrix is read with batch stride 0; otherwise L is
  // materialised at the full batch (as matmul does).
  int64_t l_stride = 0;
  Tensor le = L.detach();
  if (shape_numel(lb) != 1) {
    l_stride = D * D;
    if (lb != batch) {
      Shape full = batch;
      full.push_back(D);
      full.push_back(D);
      le = expand(le, full);
    }
  }
  Tensor be = sb == vec_shape ? b.detach() : expand(b.detach(), vec_shape);
  Tensor z = Tensor::empty(vec_shape, DType::kFloat32, L.device());
  if (nbatch > 0 && D > 0)
    backend(L.device()).trisolve(le.data<float>(), be.data<float>(), z.data<float>(), nbatch, D, l_stride, transpose);
  return z;
}

}  // namespace

Tensor triangular_solve(const Tensor& L, const Tensor& b, bool transpose) {
  check_float(L, "triangular_solve");
  check_float(b, "triangular_solve");
  check_same_device(L, b, "triangular_solve");
  CUVI_CHECK(L.dim() >= 2 && L.size(-1) == L.size(-2), ShapeError,
             "triangular_solve: L needs square matrices in its last two dims, got " << shape_str(L.shape()));
  CUVI_CHECK(b.dim() >= 1 && b.size(-1) == L.size(-1), ShapeError,
             "triangular_solve: b " << shape_str(b.shape()) << " needs a last dim of " << L.size(-1) << " to match L "
                                    << shape_str(L.shape()));
  Tensor z = trisolve_raw(L, b, transpose);
  const Shape shape_l = L.shape(), shape_b = b.shape();
  Tensor ld = L.detach(), zd = z.detach();
  // With z = L^{-1} b: dz = -L^{-1} dL z, so for an upstream gradient g,
  //   <g, dz> = -<L^{-T} g, dL z>  =>  grad_b = L^{-T} g, grad_L = -grad_b z^T.
  // With z = L^{-T} b: dz = -L^{-T} dL^T z, so
  //   <g, dz> = -<L^{-1} g, dL^T z> = -z^T dL (L^{-1} g)
  //   =>  grad_b = L^{-1} g, grad_L = -z grad_b^T.
  // Only the lower triangle of L is read, so grad_L is its lower triangle;
  // broadcast batch dims are summed away.
  return record_fn(
      z, "triangular_solve",
      [ld, zd, shape_l, shape_b, transpose](const Tensor& g, const std::vector<bool>& need) {
        std::vector<Tensor> res(2);
        Tensor gb = trisolve_raw(ld, g, !transpose);
        if (need[0]) {
          Tensor outer = transpose ? matmul(zd.unsqueeze(-1), gb.unsqueeze(-2))
                                   : matmul(gb.unsqueeze(-1), zd.unsqueeze(-2));
          res[0] = sum_to_shape(neg(tril(outer)), shape_l);
        }
        if (need[1]) res[1] = sum_to_shape(gb, shape_b);
        return res;
      },
      {&L, &b});
}

Tensor cholesky(const Tensor& A) {
  check_float(A, "cholesky");
  CUVI_CHECK(A.dim() >= 2 && A.size(-1) == A.size(-2), ShapeError,
             "cholesky: needs square matrices in the last two dims, got " << shape_str(A.shape()));
  const int64_t D = A.size(-1);
  const int64_t batch = D == 0 ? 0 : A.numel() / (D * D);
  Tensor L = Tensor::empty(A.shape(), DType::kFloat32, A.device());
  const Tensor ad = A.detach();
  if (batch > 0) {
    Backend& be = backend(A.device());
    const int code = be.register_check("cholesky: a matrix of shape " + shape_str(A.shape()) +
                                       " is not positive definite (a pivot is not positive)");
    be.cholesky(ad.data<float>(), L.data<float>(), batch, D, code);
  }
  const Tensor ld = L.detach();
  // With A = L L^T and an upstream gradient G on L (only its lower triangle
  // matters), Phi(M) = the lower triangle of M with its diagonal halved:
  //   S = L^{-T} Phi(L^T G) L^{-1},  grad_A = (S + S^T) / 2
  // (the gradient of a function of a symmetric A, split evenly between the
  // two triangles). The two solves run on the matrices' rows as vectors.
  return record_fn(
      L, "cholesky",
      [ld](const Tensor& g, const std::vector<bool>&) {
        NoGradGuard ng;
        // Phi on the device (no host-built mask copied over every backward).
        const Tensor m = matmul(transpose(ld, -1, -2), tril(g));
        const Tensor phi = tril(m, -1) + diag_embed(diagonal(m)) * 0.5f;
        const Tensor l3 = ld.unsqueeze(-3);  // [..., 1, D, D]: one L for the D rows of its matrix
        // X = L^{-T} Phi: columns of X solve L^T x = phi_col, i.e. rows of X^T.
        const Tensor xt = trisolve_raw(l3, transpose(phi, -1, -2), true);
        // S = X L^{-1}: rows of S solve L^T s = x_row (S L = X <=> L^T S^T = X^T).
        const Tensor sm = trisolve_raw(l3, transpose(xt, -1, -2), true);
        return std::vector<Tensor>{(sm + transpose(sm, -1, -2)) * 0.5f};
      },
      {&A});
}

}  // namespace cuvi
