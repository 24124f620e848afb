// Tensor-level ops: check shapes, dtypes and devices, allocate the result,
// dispatch to the device's backend, and record the backward on the tape.
// Binary ops broadcast as NumPy does. All differentiable unless noted.
#pragma once

#include <optional>
#include <vector>

#include "tensor.hpp"

namespace cuvi {

// Elementwise unary.
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor expm1(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor square(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor softplus(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor log_sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor lgamma(const Tensor& x);
Tensor digamma(const Tensor& x);
Tensor trigamma(const Tensor& x);  // not differentiable
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
// erf and its inverse (on [-1, 1]); the standard normal distribution
// function Phi (torch.special.ndtr) and its inverse on [0, 1] (ndtri; -inf
// and +inf at the ends); atan. Accurate in the tails (evaluated in double).
Tensor erf(const Tensor& x);
Tensor erfinv(const Tensor& x);
Tensor ndtr(const Tensor& x);
Tensor ndtri(const Tensor& x);
Tensor atan(const Tensor& x);

// Elementwise binary (broadcasting).
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, float b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
// Comparisons give 0/1 float32 and carry no gradient.
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);

// Special functions of two and three arguments, differentiable in every
// argument (the shape parameters too, which torch's are not):
//   gammainc(a, x)    regularised lower incomplete gamma P(a, x)
//                     (torch.special.gammainc); gammaincc = 1 - P, kept
//                     accurate where P is near 1
//   betainc(a, b, x)  regularised incomplete beta I_x(a, b) (scipy.special.betainc)
//   stdtr(df, t)      Student's t distribution function (scipy.special.stdtr)
// Evaluated in double (series and continued fractions) and rounded once.
// Arguments outside the domain (a, b, df <= 0; x < 0; x > 1 for betainc)
// give NaN.
Tensor gammainc(const Tensor& a, const Tensor& x);
Tensor gammaincc(const Tensor& a, const Tensor& x);
Tensor betainc(const Tensor& a, const Tensor& b, const Tensor& x);
Tensor stdtr(const Tensor& df, const Tensor& t);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, float b);
Tensor operator-(const Tensor& a, float b);
Tensor operator*(const Tensor& a, float b);
Tensor operator/(const Tensor& a, float b);
Tensor operator+(float a, const Tensor& b);
Tensor operator-(float a, const Tensor& b);
Tensor operator*(float a, const Tensor& b);
Tensor operator/(float a, const Tensor& b);

// where(cond, a, b): cond is a 0/1 float32 (or int64) tensor; broadcasting.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor clamp(const Tensor& x, float lo, float hi);  // gradient 1 inside, 0 outside
Tensor clamp_min(const Tensor& x, float lo);

// Reductions. `dims` may be negative; empty dims with keepdim=false over
// all. Sums are deterministic: a fixed order independent of thread counts.
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
// Sums the rightmost n dims (event dims of a log-density); n <= 0: x itself.
Tensor sum_rightmost(const Tensor& x, int64_t n);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);  // no gradient
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
Tensor cumsum(const Tensor& x, int64_t dim);
// Sums broadcast dimensions away so the result has `shape` (the adjoint of
// broadcasting `shape` up to x's shape).
Tensor sum_to_shape(const Tensor& x, const Shape& shape);

// Matrix products: 2-D, and batched with broadcast batch dims (as torch.matmul
// for dims >= 2; a 1-D operand is treated as a row/column and squeezed).
Tensor matmul(const Tensor& a, const Tensor& b);
// torch.nn.functional.linear: x @ weight^T (+ bias), x [..., in], weight
// [out, in], bias [out] (optional). One GEMM over all of x's leading dims
// with the weight read transposed in place (no transpose copy), and one GEMM
// per gradient.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// Solves L z = b (or L^T z = b with transpose) for lower-triangular L
// [..., D, D] and vectors b [..., D]; batch dims broadcast. Only the lower
// triangle of L is read, and its gradient is lower triangular
// (torch.linalg.solve_triangular(L, b.unsqueeze(-1), upper=False) semantics).
Tensor triangular_solve(const Tensor& L, const Tensor& b, bool transpose = false);
// torch.linalg.cholesky: the lower-triangular L with A = L L^T for
// symmetric positive-definite matrices A [..., D, D] (only A's lower
// triangle is read), each entry accumulated in double. A matrix that is not
// positive definite raises ValueError naming the shape and the pivot (on a
// GPU at the next synchronisation; its L is NaN). Differentiable: the
// gradient is symmetric.
Tensor cholesky(const Tensor& A);

// Shape ops (also as Tensor methods).
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor unsqueeze(const Tensor& x, int64_t d);
Tensor squeeze(const Tensor& x, int64_t d);
Tensor transpose(const Tensor& x, int64_t a, int64_t b);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);

// Indexing with int64 indices (range-checked; on CUDA the check is reported
// at the next synchronisation of the device, with the op's name).
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& idx);
// With sparse_grad (torch.gather's flag, nn.Embedding's sparse=True): when x
// is a leaf that requires grad, backward gives x a row-sparse part (RowGrad:
// the indices and the B rows of gradient) instead of adding into a dense
// N-row gradient; x.grad() still returns the dense sum, and optimizers that
// can update only those rows do (optim.hpp). Otherwise as index_select.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& idx, bool sparse_grad);
// The dense sum of gradient parts: `base` (when defined; never modified)
// plus each part's rows, part by part in order (the bits of the dense
// backward when there is no base). No autodiff.
Tensor add_row_grads(const Tensor& base, const Shape& shape, Device dev, const std::vector<RowGrad>& parts);
// One part with no repeated row, from parts of one leaf (same dim; that
// dim's size `dim_size`): indices and values are concatenated, and each
// row's terms summed in order of appearance at the row's first position;
// the other positions of a repeated row get index -1 (a row to skip) and
// zeros. A single part already marked distinct comes back as it is. No
// autodiff; the same bits on every backend.
RowGrad coalesce_row_grads(const std::vector<RowGrad>& parts, int64_t dim_size);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& idx);  // idx has x's rank
// Returns a copy of `x` with src added at idx along dim (torch scatter_add).
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& idx, const Tensor& src);
// Returns a copy of `x` with src rows added at idx along dim (torch index_add).
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& idx, const Tensor& src);
// Lower triangle (k = 0: with diagonal). Differentiable.
Tensor tril(const Tensor& x, int64_t k = 0);
// Diagonal embedding of the last dim / extraction of the diagonal of the last two dims.
Tensor diag_embed(const Tensor& x);
Tensor diagonal(const Tensor& x);

// Copies data between devices / casts; differentiable for float32.
Tensor to_device(const Tensor& x, Device dev);

// Shape helpers.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
int64_t normalize_dim(int64_t d, int64_t ndim, const char* op);

}  // namespace cuvi
