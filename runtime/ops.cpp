#include "ops.hpp"

#include <algorithm>
#include <array>
#include <cfloat>
#include <numeric>

#include "ops_util.hpp"

namespace cuvi {

using detail::check_float;
using detail::check_same_device;
using detail::record_fn;

namespace detail {

void check_float(const Tensor& t, const char* op) {
  CUVI_CHECK(t.defined(), ValueError, op << ": undefined tensor");
  CUVI_CHECK(t.dtype() == DType::kFloat32, DTypeError,
             op << ": expected float32, got " << dtype_name(t.dtype()) << " tensor of shape " << shape_str(t.shape()));
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  CUVI_CHECK(a.device() == b.device(), DeviceError,
             op << ": tensors on different devices (" << a.device().str() << " " << shape_str(a.shape()) << " and "
                << b.device().str() << " " << shape_str(b.shape()) << ")");
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

kern::ReduceGeom make_reduce_geom(const Shape& in, const std::vector<bool>& reduce) {
  kern::ReduceGeom g;
  const Shape st = contiguous_strides(in);
  const int nd = static_cast<int>(in.size());
  for (int d = 0; d < nd; ++d) {
    if (reduce[static_cast<size_t>(d)]) {
      g.rsize[g.rdims] = in[static_cast<size_t>(d)];
      g.rstride[g.rdims++] = st[static_cast<size_t>(d)];
    } else {
      g.ksize[g.kdims] = in[static_cast<size_t>(d)];
      g.kstride[g.kdims++] = st[static_cast<size_t>(d)];
    }
  }
  g.out_n = 1;
  for (int d = 0; d < g.kdims; ++d) g.out_n *= g.ksize[d];
  g.red_n = 1;
  for (int d = 0; d < g.rdims; ++d) g.red_n *= g.rsize[d];
  // Fast layouts: reduced dims all after (or all before) the kept ones.
  int last_kept = -1, first_kept = nd, last_red = -1, first_red = nd;
  for (int d = 0; d < nd; ++d) {
    if (reduce[static_cast<size_t>(d)]) {
      last_red = d;
      first_red = std::min(first_red, d);
    } else {
      last_kept = d;
      first_kept = std::min(first_kept, d);
    }
  }
  g.trailing = g.kdims == 0 || g.rdims == 0 || last_kept < first_red;
  g.leading = !g.trailing && last_red < first_kept;
  return g;
}

}  // namespace detail

int64_t normalize_dim(int64_t d, int64_t ndim, const char* op) {
  CUVI_CHECK(d >= -ndim && d < std::max<int64_t>(ndim, 1), IndexError,
             op << ": dim " << d << " out of range for a tensor with " << ndim << " dims");
  return d < 0 ? d + ndim : d;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    CUVI_CHECK(da == db || da == 1 || db == 1, ShapeError,
               op << ": shapes " << shape_str(a) << " and " << shape_str(b) << " cannot be broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// ---- unary ---------------------------------------------------------------

namespace {

Tensor unary_op(kern::UnaryOp op, const Tensor& x) {
  const char* name = kern::unary_name(op);
  check_float(x, name);
  Tensor y = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  backend(x.device()).unary(op, x.data<float>(), y.data<float>(), x.numel());
  if (!any_requires_grad({&x})) return y;
  CUVI_CHECK(kern::unary_differentiable(op), AutogradError, name << ": no gradient is implemented");
  Tensor xs = x.detach(), ys = y.detach();
  return record_fn(
      y, name,
      [op, xs, ys](const Tensor& g, const std::vector<bool>&) {
        Tensor gx = Tensor::empty(xs.shape(), DType::kFloat32, xs.device());
        backend(xs.device()).unary_backward(op, xs.data<float>(), ys.data<float>(), g.data<float>(),
                                            gx.data<float>(), xs.numel());
        return std::vector<Tensor>{gx};
      },
      {&x});
}

}  // namespace

Tensor neg(const Tensor& x) { return unary_op(kern::UnaryOp::kNeg, x); }
Tensor exp(const Tensor& x) { return unary_op(kern::UnaryOp::kExp, x); }
Tensor log(const Tensor& x) { return unary_op(kern::UnaryOp::kLog, x); }
Tensor log1p(const Tensor& x) { return unary_op(kern::UnaryOp::kLog1p, x); }
Tensor expm1(const Tensor& x) { return unary_op(kern::UnaryOp::kExpm1, x); }
Tensor sqrt(const Tensor& x) { return unary_op(kern::UnaryOp::kSqrt, x); }
Tensor abs(const Tensor& x) { return unary_op(kern::UnaryOp::kAbs, x); }
Tensor square(const Tensor& x) { return unary_op(kern::UnaryOp::kSquare, x); }
Tensor reciprocal(const Tensor& x) { return unary_op(kern::UnaryOp::kReciprocal, x); }
Tensor softplus(const Tensor& x) { return unary_op(kern::UnaryOp::kSoftplus, x); }
Tensor sigmoid(const Tensor& x) { return unary_op(kern::UnaryOp::kSigmoid, x); }
Tensor log_sigmoid(const Tensor& x) { return unary_op(kern::UnaryOp::kLogSigmoid, x); }
Tensor tanh(const Tensor& x) { return unary_op(kern::UnaryOp::kTanh, x); }
Tensor relu(const Tensor& x) { return unary_op(kern::UnaryOp::kRelu, x); }
Tensor lgamma(const Tensor& x) { return unary_op(kern::UnaryOp::kLgamma, x); }
Tensor digamma(const Tensor& x) { return unary_op(kern::UnaryOp::kDigamma, x); }
Tensor trigamma(const Tensor& x) { return unary_op(kern::UnaryOp::kTrigamma, x); }
Tensor sin(const Tensor& x) { return unary_op(kern::UnaryOp::kSin, x); }
Tensor cos(const Tensor& x) { return unary_op(kern::UnaryOp::kCos, x); }
Tensor erf(const Tensor& x) { return unary_op(kern::UnaryOp::kErf, x); }
Tensor erfinv(const Tensor& x) { return unary_op(kern::UnaryOp::kErfinv, x); }
Tensor ndtr(const Tensor& x) { return unary_op(kern::UnaryOp::kNdtr, x); }
Tensor ndtri(const Tensor& x) { return unary_op(kern::UnaryOp::kNdtri, x); }
Tensor atan(const Tensor& x) { return unary_op(kern::UnaryOp::kAtan, x); }

// ---- binary --------------------------------------------------------------

namespace {

Tensor binary_op(kern::BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = kern::binary_name(op);
  check_float(a, name);
  check_float(b, name);
  check_same_device(a, b, name);
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(out_shape, DType::kFloat32, a.device());
  const auto geom = detail::make_geom<2>(out_shape, {&a.shape(), &b.shape()});
  backend(a.device()).binary(op, a.data<float>(), b.data<float>(), out.data<float>(), geom);
  if (!any_requires_grad({&a, &b})) return out;
  Tensor as = a.detach(), bs = b.detach();
  return record_fn(
      out, name,
      [op, as, bs, out_shape](const Tensor& g, const std::vector<bool>& need) {
        std::vector<Tensor> res(2);
        if (op == kern::BinaryOp::kAdd || op == kern::BinaryOp::kSub) {
          if (need[0]) res[0] = sum_to_shape(g, as.shape());
          if (need[1]) res[1] = op == kern::BinaryOp::kAdd ? sum_to_shape(g, bs.shape()) : neg(sum_to_shape(g, bs.shape()));
          return res;
        }
        Tensor ga = need[0] ? Tensor::empty(out_shape, DType::kFloat32, g.device()) : Tensor();
        Tensor gb = need[1] ? Tensor::empty(out_shape, DType::kFloat32, g.device()) : Tensor();
        const auto geom3 = detail::make_geom<3>(out_shape, {&as.shape(), &bs.shape(), &g.shape()});
        backend(g.device()).binary_backward(op, as.data<float>(), bs.data<float>(), g.data<float>(),
                                            need[0] ? ga.data<float>() : nullptr,
                                            need[1] ? gb.data<float>() : nullptr, geom3);
        if (need[0]) res[0] = sum_to_shape(ga, as.shape());
        if (need[1]) res[1] = sum_to_shape(gb, bs.shape());
        return res;
      },
      {&a, &b});
}

Tensor scalar_like(const Tensor& t, float v) {
  CUVI_CHECK(t.defined(), ValueError, "scalar op: undefined tensor");
  return full({}, v, t.device());
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary_op(kern::BinaryOp::kAdd, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary_op(kern::BinaryOp::kSub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op(kern::BinaryOp::kMul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary_op(kern::BinaryOp::kDiv, a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary_op(kern::BinaryOp::kPow, a, b); }
Tensor pow(const Tensor& a, float b) { return binary_op(kern::BinaryOp::kPow, a, scalar_like(a, b)); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary_op(kern::BinaryOp::kMaximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary_op(kern::BinaryOp::kMinimum, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { NoGradGuard ng; return binary_op(kern::BinaryOp::kLt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { NoGradGuard ng; return binary_op(kern::BinaryOp::kLe, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { NoGradGuard ng; return binary_op(kern::BinaryOp::kGt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { NoGradGuard ng; return binary_op(kern::BinaryOp::kGe, a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { NoGradGuard ng; return binary_op(kern::BinaryOp::kEq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { NoGradGuard ng; return binary_op(kern::BinaryOp::kNe, a, b); }
Tensor gammainc(const Tensor& a, const Tensor& x) { return binary_op(kern::BinaryOp::kGammainc, a, x); }
Tensor gammaincc(const Tensor& a, const Tensor& x) { return binary_op(kern::BinaryOp::kGammaincc, a, x); }
Tensor stdtr(const Tensor& df, const Tensor& t) { return binary_op(kern::BinaryOp::kStdtr, df, t); }

Tensor betainc(const Tensor& a, const Tensor& b, const Tensor& x) {
  for (const Tensor* t : {&a, &b, &x}) check_float(*t, "betainc");
  check_same_device(a, b, "betainc");
  check_same_device(a, x, "betainc");
  const Shape out_shape =
      broadcast_shapes(broadcast_shapes(a.shape(), b.shape(), "betainc"), x.shape(), "betainc");
  Tensor out = Tensor::empty(out_shape, DType::kFloat32, a.device());
  const auto geom = detail::make_geom<3>(out_shape, {&a.shape(), &b.shape(), &x.shape()});
  backend(a.device()).betainc(a.data<float>(), b.data<float>(), x.data<float>(), out.data<float>(), geom);
  if (!any_requires_grad({&a, &b, &x})) return out;
  Tensor as = a.detach(), bs = b.detach(), xs = x.detach();
  return record_fn(
      out, "betainc",
      [as, bs, xs, out_shape](const Tensor& g, const std::vector<bool>& need) {
        std::vector<Tensor> grads(3);
        for (size_t k = 0; k < 3; ++k)
          if (need[k]) grads[k] = Tensor::empty(out_shape, DType::kFloat32, g.device());
        auto ptr = [&](size_t k) { return need[k] ? grads[k].data<float>() : nullptr; };
        const auto geom4 = detail::make_geom<4>(out_shape, {&as.shape(), &bs.shape(), &xs.shape(), &g.shape()});
        backend(g.device()).betainc_backward(as.data<float>(), bs.data<float>(), xs.data<float>(), g.data<float>(),
                                             ptr(0), ptr(1), ptr(2), geom4);
        const Shape* shapes[3] = {&as.shape(), &bs.shape(), &xs.shape()};
        for (size_t k = 0; k < 3; ++k)
          if (need[k]) grads[k] = sum_to_shape(grads[k], *shapes[k]);
        return grads;
      },
      {&a, &b, &x});
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, float b) { return add(a, scalar_like(a, b)); }
Tensor operator-(const Tensor& a, float b) { return sub(a, scalar_like(a, b)); }
Tensor operator*(const Tensor& a, float b) { return mul(a, scalar_like(a, b)); }
Tensor operator/(const Tensor& a, float b) { return div(a, scalar_like(a, b)); }
Tensor operator+(float a, const Tensor& b) { return add(scalar_like(b, a), b); }
Tensor operator-(float a, const Tensor& b) { return sub(scalar_like(b, a), b); }
Tensor operator*(float a, const Tensor& b) { return mul(scalar_like(b, a), b); }
Tensor operator/(float a, const Tensor& b) { return div(scalar_like(b, a), b); }

Tensor where(const Tensor& cond_in, const Tensor& a, const Tensor& b) {
  const Tensor cond = cond_in.to_float();
  check_float(a, "where");
  check_float(b, "where");
  check_same_device(cond, a, "where");
  check_same_device(a, b, "where");
  const Shape out_shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(out_shape, DType::kFloat32, a.device());
  const auto geom = detail::make_geom<3>(out_shape, {&cond.shape(), &a.shape(), &b.shape()});
  backend(a.device()).where(cond.data<float>(), a.data<float>(), b.data<float>(), out.data<float>(), geom);
  Tensor cs = cond.detach();
  const Shape sa = a.shape(), sb = b.shape();
  return record_fn(
      out, "where",
      [cs, sa, sb](const Tensor& g, const std::vector<bool>& need) {
        std::vector<Tensor> res(2);
        const Tensor z = zeros({}, g.device());
        if (need[0]) res[0] = sum_to_shape(where(cs, g, z), sa);
        if (need[1]) res[1] = sum_to_shape(where(cs, z, g), sb);
        return res;
      },
      {&a, &b});
}

Tensor clamp(const Tensor& x, float lo, float hi) {
  check_float(x, "clamp");
  CUVI_CHECK(lo <= hi, ValueError, "clamp: lo " << lo << " > hi " << hi);
  Tensor y = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  backend(x.device()).clamp(x.data<float>(), y.data<float>(), x.numel(), lo, hi);
  Tensor xs = x.detach();
  return record_fn(
      y, "clamp",
      [xs, lo, hi](const Tensor& g, const std::vector<bool>&) {
        Tensor gx = Tensor::empty(xs.shape(), DType::kFloat32, xs.device());
        backend(xs.device()).clamp_backward(xs.data<float>(), g.data<float>(), gx.data<float>(), xs.numel(), lo, hi);
        return std::vector<Tensor>{gx};
      },
      {&x});
}

Tensor clamp_min(const Tensor& x, float lo) { return clamp(x, lo, FLT_MAX); }

// ---- reductions ----------------------------------------------------------

namespace {

std::vector<bool> reduce_mask(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  std::vector<bool> mask(static_cast<size_t>(x.dim()), dims.empty());
  for (int64_t d : dims) {
    const int64_t nd = normalize_dim(d, x.dim(), op);
    CUVI_CHECK(!mask[static_cast<size_t>(nd)] || dims.empty(), ValueError, op << ": dim " << d << " repeated");
    mask[static_cast<size_t>(nd)] = true;
  }
  return mask;
}

Shape reduced_shape(const Shape& in, const std::vector<bool>& mask, bool keepdim) {
  Shape out;
  for (size_t d = 0; d < in.size(); ++d) {
    if (!mask[d]) out.push_back(in[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

Tensor reduce_raw(const Tensor& x, const std::vector<bool>& mask, bool keepdim, bool is_max) {
  const Shape out_shape = reduced_shape(x.shape(), mask, keepdim);
  Tensor out = Tensor::empty(out_shape, DType::kFloat32, x.device());
  const kern::ReduceGeom g = detail::make_reduce_geom(x.shape(), mask);
  if (is_max) backend(x.device()).reduce_max(x.data<float>(), out.data<float>(), g);
  else backend(x.device()).reduce_sum(x.data<float>(), out.data<float>(), g);
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_float(x, "sum");
  const auto mask = reduce_mask(x, dims, "sum");
  Tensor out = reduce_raw(x, mask, keepdim, false);
  const Shape in_shape = x.shape();
  const Shape keep_shape = reduced_shape(in_shape, mask, true);
  return record_fn(
      out, "sum",
      [in_shape, keep_shape](const Tensor& g, const std::vector<bool>&) {
        return std::vector<Tensor>{expand(reshape(g, keep_shape), in_shape)};
      },
      {&x});
}

Tensor sum(const Tensor& x) { return sum(x, {}, false); }

Tensor sum_rightmost(const Tensor& x, int64_t n) {
  if (n <= 0) return x;
  CUVI_CHECK(n <= x.dim(), ShapeError, "sum_rightmost: " << n << " dims of a tensor of shape " << shape_str(x.shape()));
  std::vector<int64_t> dims;
  for (int64_t i = 1; i <= n; ++i) dims.push_back(-i);
  return sum(x, dims);
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_float(x, "mean");
  const auto mask = reduce_mask(x, dims, "mean");
  int64_t count = 1;
  for (size_t d = 0; d < mask.size(); ++d)
    if (mask[d]) count *= x.shape()[d];
  CUVI_CHECK(count > 0, ShapeError, "mean: reducing an empty tensor of shape " << shape_str(x.shape()));
  return sum(x, dims, keepdim) * (1.0f / static_cast<float>(count));
}

Tensor mean(const Tensor& x) { return mean(x, {}, false); }

Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_float(x, "amax");
  return reduce_raw(x, reduce_mask(x, dims, "amax"), keepdim, true);
}

Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_float(x, "logsumexp");
  // Shift by the (finite-clamped, constant) max so exp never overflows.
  Tensor m = clamp(amax(x, dims, true), -FLT_MAX, FLT_MAX);
  Tensor s = log(sum(exp(x - m), dims, true)) + m;
  if (keepdim) return s;
  return reshape(s, reduced_shape(x.shape(), reduce_mask(x, dims, "logsumexp"), false));
}

Tensor log_softmax(const Tensor& x, int64_t dim) { return x - logsumexp(x, {dim}, true); }
Tensor softmax(const Tensor& x, int64_t dim) { return exp(log_softmax(x, dim)); }

Tensor cumsum(const Tensor& x, int64_t dim) {
  check_float(x, "cumsum");
  const int64_t d = normalize_dim(dim, x.dim(), "cumsum");
  Tensor y = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  if (x.dim() == 0) {
    backend(x.device()).copy_d2d(y.data<float>(), x.data<float>(), sizeof(float));
    return record_fn(y, "cumsum", [](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{g}; }, {&x});
  }
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= x.shape()[static_cast<size_t>(i)];
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.shape()[static_cast<size_t>(i)];
  const int64_t n = x.shape()[static_cast<size_t>(d)];
  backend(x.device()).cumsum(x.data<float>(), y.data<float>(), outer, n, inner, false);
  return record_fn(
      y, "cumsum",
      [outer, n, inner](const Tensor& g, const std::vector<bool>&) {
        Tensor gx = Tensor::empty(g.shape(), DType::kFloat32, g.device());
        backend(g.device()).cumsum(g.data<float>(), gx.data<float>(), outer, n, inner, true);
        return std::vector<Tensor>{gx};
      },
      {&x});
}

Tensor sum_to_shape(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const Shape& xs = x.shape();
  CUVI_CHECK(xs.size() >= shape.size(), ShapeError,
             "sum_to_shape: cannot reduce " << shape_str(xs) << " to " << shape_str(shape));
  const size_t lead = xs.size() - shape.size();
  std::vector<int64_t> dims;
  for (size_t d = 0; d < xs.size(); ++d) {
    if (d < lead) {
      dims.push_back(static_cast<int64_t>(d));
    } else {
      const int64_t want = shape[d - lead];
      CUVI_CHECK(want == xs[d] || want == 1, ShapeError,
                 "sum_to_shape: cannot reduce " << shape_str(xs) << " to " << shape_str(shape));
      if (want == 1 && xs[d] != 1) dims.push_back(static_cast<int64_t>(d));
    }
  }
  if (dims.empty()) return reshape(x, shape);
  return reshape(sum(x, dims, true), shape);
}

// ---- matmul --------------------------------------------------------------

namespace {

// a: [..., m, k] and b: [..., k, n], both already >= 2-D.
Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  const int64_t m = sa[sa.size() - 2], k = sa.back(), kb = sb[sb.size() - 2], n = sb.back();
  CUVI_CHECK(k == kb, ShapeError,
             "matmul: inner dimensions differ: " << shape_str(sa) << " @ " << shape_str(sb));
  const Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  const Shape batch = broadcast_shapes(ba, bb, "matmul");
  const int64_t nbatch = shape_numel(batch);
  auto operand = [&](const Tensor& t, const Shape& tb, int64_t rows, int64_t cols, int64_t* stride) {
    if (shape_numel(tb) == 1) {
      *stride = 0;
      return t;
    }
    *stride = rows * cols;
    if (tb == batch) return t;
    Shape full = batch;
    full.push_back(rows);
    full.push_back(cols);
    return expand(t, full);
  };
  GemmArgs args;
  Tensor ae = operand(a.detach(), ba, m, k, &args.stride_a);
  Tensor be = operand(b.detach(), bb, k, n, &args.stride_b);
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor out = Tensor::empty(out_shape, DType::kFloat32, a.device());
  args.batch = nbatch;
  args.m = m;
  args.n = n;
  args.k = k;
  args.a = ae.data<float>();
  args.b = be.data<float>();
  args.c = out.data<float>();
  args.stride_c = m * n;
  if (nbatch > 0 && m > 0 && n > 0) {
    if (k == 0) backend(a.device()).fill_f32(out.data<float>(), out.numel(), 0.0f);
    else backend(a.device()).gemm(args);
  }
  const Shape shape_a = sa, shape_b = sb;
  return record_fn(
      out, "matmul",
      [ae, be, shape_a, shape_b, nbatch, m, n, k, args](const Tensor& g, const std::vector<bool>& need) {
        std::vector<Tensor> res(2);
        if (need[0]) {
          // dA[b] = G[b] (m x n) * B[b]^T (n x k)
          Shape full = g.shape();
          full.back() = k;
          Tensor ga = Tensor::empty(full, DType::kFloat32, g.device());
          GemmArgs ga_args;
          ga_args.batch = nbatch;
          ga_args.m = m;
          ga_args.n = k;
          ga_args.k = n;
          ga_args.trans_b = true;
          ga_args.a = g.data<float>();
          ga_args.stride_a = m * n;
          ga_args.b = be.data<float>();
          ga_args.stride_b = args.stride_b;
          ga_args.c = ga.data<float>();
          ga_args.stride_c = m * k;
          if (ga.numel() > 0) backend(g.device()).gemm(ga_args);
          res[0] = sum_to_shape(ga, shape_a);
        }
        if (need[1]) {
          // dB[b] = A[b]^T (k x m) * G[b] (m x n)
          Shape full = g.shape();
          full[full.size() - 2] = k;
          Tensor gb = Tensor::empty(full, DType::kFloat32, g.device());
          GemmArgs gb_args;
          gb_args.batch = nbatch;
          gb_args.m = k;
          gb_args.n = n;
          gb_args.k = m;
          gb_args.trans_a = true;
          gb_args.a = ae.data<float>();
          gb_args.stride_a = args.stride_a;
          gb_args.b = g.data<float>();
          gb_args.stride_b = m * n;
          gb_args.c = gb.data<float>();
          gb_args.stride_c = k * n;
          if (gb.numel() > 0) backend(g.device()).gemm(gb_args);
          res[1] = sum_to_shape(gb, shape_b);
        }
        return res;
      },
      {&a, &b});
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_float(a, "matmul");
  check_float(b, "matmul");
  check_same_device(a, b, "matmul");
  CUVI_CHECK(a.dim() >= 1 && b.dim() >= 1, ShapeError,
             "matmul: 0-d operand (" << shape_str(a.shape()) << " @ " << shape_str(b.shape()) << ")");
  if (a.dim() == 1 && b.dim() == 1) return reshape(matmul_nd(a.unsqueeze(0), b.unsqueeze(1)), {});
  if (a.dim() == 1) return matmul_nd(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul_nd(a, b.unsqueeze(1)).squeeze(-1);
  return matmul_nd(a, b);
}

namespace {
// A new tensor of `shape` holding op(A) (m x k) * op(B) (k x n), row-major,
// one GEMM; zeros when k == 0 (no GEMM with an empty inner dim).
Tensor gemm_new(const Shape& shape, int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b, const float* a,
                const float* b, Device dev) {
  Tensor out = Tensor::empty(shape, DType::kFloat32, dev);
  if (out.numel() == 0) return out;
  if (k == 0) {
    backend(dev).fill_f32(out.data<float>(), out.numel(), 0.0f);
    return out;
  }
  GemmArgs g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.trans_a = trans_a;
  g.trans_b = trans_b;
  g.a = a;
  g.b = b;
  g.c = out.data<float>();
  backend(dev).gemm(g);
  return out;
}
}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_float(x, "linear");
  check_float(weight, "linear");
  check_same_device(x, weight, "linear");
  CUVI_CHECK(weight.dim() == 2, ShapeError, "linear: weight must be 2-D [out, in], got " << shape_str(weight.shape()));
  const int64_t n = weight.size(0), k = weight.size(1);
  CUVI_CHECK(x.dim() >= 1 && x.size(-1) == k, ShapeError,
             "linear: input of shape " << shape_str(x.shape()) << " does not end in " << k << " (weight "
                                       << shape_str(weight.shape()) << ")");
  Shape out_shape = x.shape();
  out_shape.back() = n;
  const int64_t rows = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  const Tensor xd = x.detach(), wd = weight.detach();
  // out (rows x n) = x (rows x k) * W^T
  Tensor out = gemm_new(out_shape, rows, n, k, false, true, xd.data<float>(), wd.data<float>(), x.device());
  Tensor y = record_fn(
      out, "linear",
      [xd, wd, rows, n, k](const Tensor& g, const std::vector<bool>& need) {
        std::vector<Tensor> res(2);
        // dx (rows x k) = G (rows x n) * W (n x k); dW (n x k) = G^T (n x rows) * x (rows x k)
        if (need[0]) res[0] = gemm_new(xd.shape(), rows, k, n, false, false, g.data<float>(), wd.data<float>(), g.device());
        if (need[1]) res[1] = gemm_new(wd.shape(), n, k, rows, true, false, g.data<float>(), xd.data<float>(), g.device());
        return res;
      },
      {&x, &weight});
  if (!bias.defined()) return y;
  CUVI_CHECK(bias.dim() == 1 && bias.size(0) == n, ShapeError,
             "linear: bias of shape " << shape_str(bias.shape()) << " for a weight of shape "
                                      << shape_str(weight.shape()) << " (want [" << n << "])");
  return y + bias;
}

// ---- shape ops -----------------------------------------------------------

namespace {

Tensor view_of(const Tensor& x, const Shape& shape) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = x.impl()->storage;
  impl->offset = x.impl()->offset;
  impl->shape = shape;
  impl->dtype = x.dtype();
  return Tensor(std::move(impl));
}

// Copies x read with `src_strides` over index space `space` into a new
// contiguous tensor of shape `space`.
Tensor strided_copy(const Tensor& x, const Shape& space, const Shape& src_strides, int64_t src_offset = 0) {
  Tensor out = Tensor::empty(space, x.dtype(), x.device());
  if (out.numel() == 0) return out;
  kern::BcastGeom<2> g;
  g.ndim = static_cast<int>(space.size());
  g.n = shape_numel(space);
  const Shape dst_strides = detail::contiguous_strides(space);
  for (int d = 0; d < g.ndim; ++d) {
    g.size[d] = space[static_cast<size_t>(d)];
    g.stride[0][d] = src_strides[static_cast<size_t>(d)];
    g.stride[1][d] = dst_strides[static_cast<size_t>(d)];
  }
  g.kind[0] = kern::InKind::kGeneral;
  g.kind[1] = kern::InKind::kSame;
  const size_t es = dtype_size(x.dtype());
  const char* src = static_cast<const char*>(static_cast<const void*>(x.data<char>())) + src_offset * static_cast<int64_t>(es);
  backend(x.device()).copy_strided(src, out.data<char>(), es, g);
  return out;
}

// Writes src (contiguous, shape `space`) into dst at `dst_offset` with strides.
void strided_write(const Tensor& src, Tensor& dst, const Shape& space, const Shape& dst_strides, int64_t dst_offset) {
  if (shape_numel(space) == 0) return;
  kern::BcastGeom<2> g;
  g.ndim = static_cast<int>(space.size());
  g.n = shape_numel(space);
  const Shape src_strides = detail::contiguous_strides(space);
  for (int d = 0; d < g.ndim; ++d) {
    g.size[d] = space[static_cast<size_t>(d)];
    g.stride[0][d] = src_strides[static_cast<size_t>(d)];
    g.stride[1][d] = dst_strides[static_cast<size_t>(d)];
  }
  g.kind[0] = kern::InKind::kSame;
  g.kind[1] = kern::InKind::kGeneral;
  const size_t es = dtype_size(dst.dtype());
  backend(dst.device()).copy_strided(src.data<char>(), dst.data<char>() + dst_offset * static_cast<int64_t>(es), es, g);
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape_in) {
  CUVI_CHECK(x.defined(), ValueError, "reshape: undefined tensor");
  Shape shape = shape_in;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      CUVI_CHECK(infer < 0, ShapeError, "reshape: more than one -1 in " << shape_str(shape_in));
      infer = static_cast<int>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    CUVI_CHECK(known != 0 && x.numel() % known == 0, ShapeError,
               "reshape: cannot reshape " << shape_str(x.shape()) << " to " << shape_str(shape_in));
    shape[static_cast<size_t>(infer)] = x.numel() / known;
  }
  CUVI_CHECK(shape_numel(shape) == x.numel() && shape.size() <= static_cast<size_t>(kMaxDims), ShapeError,
             "reshape: cannot reshape " << shape_str(x.shape()) << " (" << x.numel() << " elements) to "
                                        << shape_str(shape_in));
  if (shape == x.shape()) return x;
  Tensor out = view_of(x, shape);
  const Shape in_shape = x.shape();
  if (x.dtype() != DType::kFloat32) return out;
  return record_fn(
      out, "reshape",
      [in_shape](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{reshape(g, in_shape)}; },
      {&x});
}

Tensor unsqueeze(const Tensor& x, int64_t d) {
  const int64_t nd = normalize_dim(d, x.dim() + 1, "unsqueeze");
  Shape s = x.shape();
  s.insert(s.begin() + nd, 1);
  return reshape(x, s);
}

Tensor squeeze(const Tensor& x, int64_t d) {
  const int64_t nd = normalize_dim(d, x.dim(), "squeeze");
  Shape s = x.shape();
  if (s[static_cast<size_t>(nd)] != 1) return x;
  s.erase(s.begin() + nd);
  return reshape(x, s);
}

Tensor expand(const Tensor& x, const Shape& shape_in) {
  CUVI_CHECK(x.defined(), ValueError, "expand: undefined tensor");
  const Shape& xs = x.shape();
  CUVI_CHECK(shape_in.size() >= xs.size(), ShapeError,
             "expand: cannot expand " << shape_str(xs) << " to " << shape_str(shape_in));
  Shape shape = shape_in;
  const size_t lead = shape.size() - xs.size();
  const Shape st = detail::contiguous_strides(xs);
  Shape src_strides(shape.size(), 0);
  for (size_t d = 0; d < shape.size(); ++d) {
    if (d < lead) continue;
    const int64_t have = xs[d - lead];
    if (shape[d] == -1) shape[d] = have;
    CUVI_CHECK(have == shape[d] || have == 1, ShapeError,
               "expand: cannot expand " << shape_str(xs) << " to " << shape_str(shape_in));
    src_strides[d] = have == 1 ? 0 : st[d - lead];
  }
  if (shape == xs) return x;
  Tensor out = strided_copy(x, shape, src_strides);
  if (x.dtype() != DType::kFloat32) return out;
  return record_fn(
      out, "expand",
      [xs](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{sum_to_shape(g, xs)}; }, {&x});
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  CUVI_CHECK(static_cast<int64_t>(dims.size()) == x.dim(), ShapeError,
             "permute: " << dims.size() << " dims for a tensor of shape " << shape_str(x.shape()));
  std::vector<int64_t> p(dims.size());
  std::vector<bool> used(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    p[i] = normalize_dim(dims[i], x.dim(), "permute");
    CUVI_CHECK(!used[static_cast<size_t>(p[i])], ShapeError, "permute: dim " << dims[i] << " repeated");
    used[static_cast<size_t>(p[i])] = true;
  }
  const Shape st = detail::contiguous_strides(x.shape());
  Shape space(p.size()), src_strides(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    space[i] = x.shape()[static_cast<size_t>(p[i])];
    src_strides[i] = st[static_cast<size_t>(p[i])];
  }
  Tensor out = strided_copy(x, space, src_strides);
  if (x.dtype() != DType::kFloat32) return out;
  std::vector<int64_t> inv(p.size());
  for (size_t i = 0; i < p.size(); ++i) inv[static_cast<size_t>(p[i])] = static_cast<int64_t>(i);
  return record_fn(
      out, "permute",
      [inv](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{permute(g, inv)}; }, {&x});
}

Tensor transpose(const Tensor& x, int64_t a, int64_t b) {
  std::vector<int64_t> p(static_cast<size_t>(x.dim()));
  std::iota(p.begin(), p.end(), 0);
  const int64_t da = normalize_dim(a, x.dim(), "transpose"), db = normalize_dim(b, x.dim(), "transpose");
  std::swap(p[static_cast<size_t>(da)], p[static_cast<size_t>(db)]);
  return permute(x, p);
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  const int64_t d = normalize_dim(dim, x.dim(), "narrow");
  const int64_t n = x.shape()[static_cast<size_t>(d)];
  CUVI_CHECK(start >= 0 && length >= 0 && start + length <= n, IndexError,
             "narrow: range [" << start << ", " << start + length << ") out of bounds for dim " << dim << " of size "
                               << n << " in " << shape_str(x.shape()));
  Shape space = x.shape();
  space[static_cast<size_t>(d)] = length;
  const Shape st = detail::contiguous_strides(x.shape());
  const int64_t off = start * st[static_cast<size_t>(d)];
  int64_t outer = 1;
  for (int64_t i = 0; i < d; ++i) outer *= x.shape()[static_cast<size_t>(i)];
  Tensor out;
  if (outer == 1) {
    out = view_of(x, space);  // contiguous slab: share storage
    out.impl()->offset += off;
  } else {
    out = strided_copy(x, space, st, off);
  }
  if (x.dtype() != DType::kFloat32) return out;
  const Shape in_shape = x.shape();
  return record_fn(
      out, "narrow",
      [in_shape, space, st, off](const Tensor& g, const std::vector<bool>&) {
        Tensor gx = zeros(in_shape, g.device());
        strided_write(g, gx, space, st, off);
        return std::vector<Tensor>{gx};
      },
      {&x});
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  CUVI_CHECK(!xs.empty(), ValueError, "cat: no tensors");
  const Tensor& first = xs[0];
  const int64_t d = normalize_dim(dim, first.dim(), "cat");
  Shape out_shape = first.shape();
  int64_t total = 0;
  for (const Tensor& t : xs) {
    CUVI_CHECK(t.dtype() == first.dtype(), DTypeError, "cat: mixed dtypes");
    check_same_device(first, t, "cat");
    CUVI_CHECK(t.dim() == first.dim(), ShapeError,
               "cat: shapes " << shape_str(first.shape()) << " and " << shape_str(t.shape()) << " differ in rank");
    for (int64_t i = 0; i < t.dim(); ++i)
      CUVI_CHECK(i == d || t.shape()[static_cast<size_t>(i)] == first.shape()[static_cast<size_t>(i)], ShapeError,
                 "cat: shapes " << shape_str(first.shape()) << " and " << shape_str(t.shape())
                                << " differ outside dim " << dim);
    total += t.shape()[static_cast<size_t>(d)];
  }
  out_shape[static_cast<size_t>(d)] = total;
  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device());
  const Shape st = detail::contiguous_strides(out_shape);
  int64_t pos = 0;
  std::vector<int64_t> sizes;
  for (const Tensor& t : xs) {
    const int64_t len = t.shape()[static_cast<size_t>(d)];
    strided_write(t, out, t.shape(), st, pos * st[static_cast<size_t>(d)]);
    sizes.push_back(len);
    pos += len;
  }
  if (first.dtype() != DType::kFloat32) return out;
  return record_fn(
      out, "cat",
      [sizes, d](const Tensor& g, const std::vector<bool>& need) {
        std::vector<Tensor> res(sizes.size());
        int64_t p = 0;
        for (size_t i = 0; i < sizes.size(); ++i) {
          if (need[i]) res[i] = narrow(g, d, p, sizes[i]);
          p += sizes[i];
        }
        return res;
      },
      xs);
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  CUVI_CHECK(!xs.empty(), ValueError, "stack: no tensors");
  std::vector<Tensor> u;
  for (const Tensor& t : xs) u.push_back(unsqueeze(t, dim < 0 ? dim + t.dim() + 1 : dim));
  return cat(u, dim < 0 ? dim + xs[0].dim() + 1 : dim);
}

// ---- indexing ------------------------------------------------------------

namespace {

IndexGeom index_geom(const Shape& s, int64_t d, int64_t idx_dim) {
  IndexGeom g;
  for (int64_t i = 0; i < d; ++i) g.outer *= s[static_cast<size_t>(i)];
  g.src_dim = s[static_cast<size_t>(d)];
  g.idx_dim = idx_dim;
  for (size_t i = static_cast<size_t>(d) + 1; i < s.size(); ++i) g.inner *= s[i];
  return g;
}

void check_index_tensor(const Tensor& idx, const char* op) {
  CUVI_CHECK(idx.defined(), ValueError, op << ": undefined index tensor");
  CUVI_CHECK(idx.dtype() == DType::kInt64, DTypeError,
             op << ": indices must be int64, got " << dtype_name(idx.dtype()) << " of shape "
                << shape_str(idx.shape()));
}

// The code of an index check (IndexError when it fails, on every backend).
int check_code(Device dev, const std::string& msg) { return backend(dev).register_check(msg, CheckKind::kIndex); }

}  // namespace

namespace {
// out (contiguous, float32) += src's rows at idx along dim d, in place, no
// autodiff; shapes checked by the caller.
// `distinct`: idx holds no repeated index (TensorImpl::distinct_indices).
void index_add_into(Tensor& out, int64_t d, int64_t shown_dim, const Tensor& idx, const Tensor& src,
                    bool distinct = false) {
  const IndexGeom g = index_geom(out.shape(), d, idx.numel());
  if (idx.numel() == 0) return;  // empty values with indices: the indices are still checked
  std::ostringstream msg;
  msg << "index_add: index out of range for dim " << shown_dim << " of size " << g.src_dim;
  Backend& b = backend(out.device());
  const int code = check_code(out.device(), msg.str());
  if (distinct) b.index_add_distinct(out.data<float>(), idx.data<int64_t>(), src.data<float>(), g, code);
  else b.index_add(out.data<float>(), idx.data<int64_t>(), src.data<float>(), g, code);
}
}  // namespace

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& idx) {
  check_index_tensor(idx, "index_select");
  check_same_device(x, idx, "index_select");
  CUVI_CHECK(idx.dim() <= 1, ShapeError, "index_select: indices must be 1-D, got " << shape_str(idx.shape()));
  const int64_t d = normalize_dim(dim, x.dim(), "index_select");
  const IndexGeom g = index_geom(x.shape(), d, idx.numel());
  Shape out_shape = x.shape();
  out_shape[static_cast<size_t>(d)] = idx.numel();
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  std::ostringstream msg;
  msg << "index_select: index out of range for dim " << dim << " of size " << g.src_dim << " (input "
      << shape_str(x.shape()) << ")";
  const int code = check_code(x.device(), msg.str());
  if (idx.numel() > 0)  // empty rows with indices: the indices are still checked
    backend(x.device()).index_select(x.data<char>(), idx.data<int64_t>(), out.data<char>(), dtype_size(x.dtype()), g,
                                     code);
  if (x.dtype() != DType::kFloat32) return out;
  Tensor is = idx.detach();
  const Shape in_shape = x.shape();
  const bool distinct = idx.impl()->distinct_indices;
  return record_fn(
      out, "index_select",
      [is, in_shape, d, distinct](const Tensor& gr, const std::vector<bool>&) {
        // Into fresh zeros directly: index_add(zeros, ...) would copy them first.
        Tensor gx = zeros(in_shape, gr.device());
        index_add_into(gx, d, d, is, gr, distinct);
        return std::vector<Tensor>{gx};
      },
      {&x});
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& idx, bool sparse_grad) {
  if (!sparse_grad || !x.defined() || !x.is_leaf() || !any_requires_grad({&x}) || x.dtype() != DType::kFloat32)
    return index_select(x, dim, idx);
  Tensor out;
  {
    NoGradGuard ng;
    out = index_select(x, dim, idx);
  }
  // The output's gradient goes to the leaf as a row part when this node
  // runs; it returns no dense gradient for its edge, so the engine adds
  // nothing there.
  RowGrad part;
  part.dim = normalize_dim(dim, x.dim(), "index_select");
  part.indices = idx.detach();
  part.distinct = idx.impl()->distinct_indices;
  std::shared_ptr<TensorImpl> leaf = x.impl_ptr();
  return record_fn(
      out, "index_select(sparse_grad)",
      [part, leaf](const Tensor& gr, const std::vector<bool>&) {
        RowGrad p = part;
        p.values = gr;
        leaf->row_grads.push_back(std::move(p));
        return std::vector<Tensor>{Tensor()};
      },
      {&x});
}

Tensor add_row_grads(const Tensor& base, const Shape& shape, Device dev, const std::vector<RowGrad>& parts) {
  // Each part into zeros, then the parts added in order, as the engine
  // accumulates dense gradients: a leaf that got only parts ends with the
  // bits of index_select's dense backward.
  Tensor total = base;
  for (const RowGrad& p : parts) {
    Tensor dense = zeros(shape, dev);
    index_add_into(dense, p.dim, p.dim, p.indices, p.values, p.distinct);
    total = total.defined() ? add(total, dense) : dense;
  }
  return total.defined() ? total : zeros(shape, dev);
}

RowGrad coalesce_row_grads(const std::vector<RowGrad>& parts, int64_t dim_size) {
  CUVI_CHECK(!parts.empty(), ValueError, "coalesce_row_grads: no parts");
  if (parts.size() == 1 && parts[0].distinct) return parts[0];
  const int64_t d = parts[0].dim;
  std::vector<Tensor> idx, vals;
  for (const RowGrad& p : parts) {
    CUVI_CHECK(p.dim == d, ShapeError, "coalesce_row_grads: parts along dims " << d << " and " << p.dim);
    idx.push_back(p.indices.reshape({p.indices.numel()}));
    vals.push_back(p.values);
  }
  const Tensor all_idx = idx.size() == 1 ? idx[0] : cat(idx, 0);
  const Tensor all_vals = vals.size() == 1 ? vals[0] : cat(vals, d);
  RowGrad out;
  out.dim = d;
  out.distinct = true;
  out.indices = Tensor::empty(all_idx.shape(), DType::kInt64, all_idx.device());
  out.values = Tensor::empty(all_vals.shape(), DType::kFloat32, all_vals.device());
  IndexGeom g = index_geom(all_vals.shape(), d, all_idx.numel());
  g.src_dim = dim_size;
  if (all_idx.numel() > 0)
    backend(all_vals.device())
        .coalesce_rows(all_idx.data<int64_t>(), all_vals.data<float>(), g, out.indices.data<int64_t>(),
                       out.values.data<float>());
  return out;
}

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& idx, const Tensor& src) {
  check_float(x, "index_add");
  check_float(src, "index_add");
  check_index_tensor(idx, "index_add");
  check_same_device(x, src, "index_add");
  check_same_device(x, idx, "index_add");
  const int64_t d = normalize_dim(dim, x.dim(), "index_add");
  Shape want = x.shape();
  want[static_cast<size_t>(d)] = idx.numel();
  CUVI_CHECK(src.shape() == want && idx.dim() <= 1, ShapeError,
             "index_add: source of shape " << shape_str(src.shape()) << " and indices " << shape_str(idx.shape())
                                           << " do not fit " << shape_str(x.shape()) << " at dim " << dim);
  Tensor out = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  backend(x.device()).copy_d2d(out.data<float>(), x.data<float>(), static_cast<size_t>(x.numel()) * 4);
  index_add_into(out, d, dim, idx, src);
  Tensor is = idx.detach();
  return record_fn(
      out, "index_add",
      [is, d](const Tensor& gr, const std::vector<bool>& need) {
        std::vector<Tensor> res(2);
        if (need[0]) res[0] = gr;
        if (need[1]) res[1] = index_select(gr, d, is);
        return res;
      },
      {&x, &src});
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& idx) {
  check_float(x, "gather");
  check_index_tensor(idx, "gather");
  check_same_device(x, idx, "gather");
  const int64_t d = normalize_dim(dim, x.dim(), "gather");
  bool ok = idx.dim() == x.dim();
  for (int64_t i = 0; ok && i < x.dim(); ++i)
    ok = i == d || idx.shape()[static_cast<size_t>(i)] == x.shape()[static_cast<size_t>(i)];
  CUVI_CHECK(ok, ShapeError,
             "gather: indices of shape " << shape_str(idx.shape()) << " must match input " << shape_str(x.shape())
                                         << " outside dim " << dim);
  const IndexGeom g = index_geom(x.shape(), d, idx.shape()[static_cast<size_t>(d)]);
  Tensor out = Tensor::empty(idx.shape(), DType::kFloat32, x.device());
  std::ostringstream msg;
  msg << "gather: index out of range for dim " << dim << " of size " << g.src_dim << " (input "
      << shape_str(x.shape()) << ")";
  if (out.numel() > 0)
    backend(x.device()).gather(x.data<float>(), idx.data<int64_t>(), out.data<float>(), g,
                               check_code(x.device(), msg.str()));
  Tensor is = idx.detach();
  const Shape in_shape = x.shape();
  return record_fn(
      out, "gather",
      [is, in_shape, d](const Tensor& gr, const std::vector<bool>&) {
        return std::vector<Tensor>{scatter_add(zeros(in_shape, gr.device()), d, is, gr)};
      },
      {&x});
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& idx, const Tensor& src) {
  check_float(x, "scatter_add");
  check_float(src, "scatter_add");
  check_index_tensor(idx, "scatter_add");
  check_same_device(x, src, "scatter_add");
  check_same_device(x, idx, "scatter_add");
  const int64_t d = normalize_dim(dim, x.dim(), "scatter_add");
  bool ok = idx.shape() == src.shape() && idx.dim() == x.dim();
  for (int64_t i = 0; ok && i < x.dim(); ++i)
    ok = i == d || idx.shape()[static_cast<size_t>(i)] == x.shape()[static_cast<size_t>(i)];
  CUVI_CHECK(ok, ShapeError,
             "scatter_add: indices " << shape_str(idx.shape()) << " and source " << shape_str(src.shape())
                                     << " do not fit " << shape_str(x.shape()) << " at dim " << dim);
  Tensor out = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  backend(x.device()).copy_d2d(out.data<float>(), x.data<float>(), static_cast<size_t>(x.numel()) * 4);
  const IndexGeom g = index_geom(x.shape(), d, idx.shape()[static_cast<size_t>(d)]);
  std::ostringstream msg;
  msg << "scatter_add: index out of range for dim " << dim << " of size " << g.src_dim;
  if (src.numel() > 0)
    backend(x.device()).scatter_add(out.data<float>(), idx.data<int64_t>(), src.data<float>(), g,
                                    check_code(x.device(), msg.str()));
  Tensor is = idx.detach();
  return record_fn(
      out, "scatter_add",
      [is, d](const Tensor& gr, const std::vector<bool>& need) {
        std::vector<Tensor> res(2);
        if (need[0]) res[0] = gr;
        if (need[1]) res[1] = gather(gr, d, is);
        return res;
      },
      {&x, &src});
}

Tensor tril(const Tensor& x, int64_t k) {
  check_float(x, "tril");
  CUVI_CHECK(x.dim() >= 2, ShapeError, "tril: needs at least 2 dims, got " << shape_str(x.shape()));
  const int64_t r = x.size(-2), c = x.size(-1);
  std::vector<float> mask(static_cast<size_t>(r * c));
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) mask[static_cast<size_t>(i * c + j)] = (j - i <= k) ? 1.0f : 0.0f;
  return x * tensor(mask, {r, c}, x.device());
}

Tensor diagonal(const Tensor& x) {
  check_float(x, "diagonal");
  CUVI_CHECK(x.dim() >= 2 && x.size(-1) == x.size(-2), ShapeError,
             "diagonal: needs square matrices in the last two dims, got " << shape_str(x.shape()));
  const int64_t n = x.size(-1);
  Shape space(x.shape().begin(), x.shape().end() - 1);
  const Shape st = detail::contiguous_strides(x.shape());
  Shape src(space.size());
  for (size_t i = 0; i + 1 < space.size(); ++i) src[i] = st[i];
  src.back() = n + 1;
  Tensor out = strided_copy(x, space, src);
  return record_fn(
      out, "diagonal", [](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{diag_embed(g)}; },
      {&x});
}

Tensor diag_embed(const Tensor& x) {
  check_float(x, "diag_embed");
  CUVI_CHECK(x.dim() >= 1, ShapeError, "diag_embed: needs at least 1 dim");
  const int64_t n = x.size(-1);
  Shape out_shape = x.shape();
  out_shape.push_back(n);
  Tensor out = zeros(out_shape, x.device());
  const Shape st = detail::contiguous_strides(out_shape);
  Shape dst(x.shape().size());
  for (size_t i = 0; i + 1 < dst.size(); ++i) dst[i] = st[i];
  dst.back() = n + 1;
  strided_write(x, out, x.shape(), dst, 0);
  return record_fn(
      out, "diag_embed", [](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{diagonal(g)}; },
      {&x});
}

// ---- devices -------------------------------------------------------------

namespace detail {
void count_sync();
}

Tensor to_device(const Tensor& x, Device dev) {
  CUVI_CHECK(x.defined(), ValueError, "to: undefined tensor");
  if (x.device() == dev) return x;
  Tensor out = Tensor::empty(x.shape(), x.dtype(), dev);
  const size_t bytes = static_cast<size_t>(x.numel()) * dtype_size(x.dtype());
  if (bytes > 0) {
    if (x.device().is_cpu()) {
      backend(dev).copy_h2d(out.data<char>(), x.data<char>(), bytes);
    } else if (dev.is_cpu()) {
      backend(x.device()).copy_d2h(out.data<char>(), x.data<char>(), bytes);
      detail::count_sync();
      backend(x.device()).raise_deferred_errors();
    } else {
      std::vector<char> host(bytes);
      backend(x.device()).copy_d2h(host.data(), x.data<char>(), bytes);
      detail::count_sync();
      backend(dev).copy_h2d(out.data<char>(), host.data(), bytes);
    }
  } else if (dev.is_cpu()) {
    // Nothing to copy, but to(cpu) still waits, and raises what queued
    // checks found, as with any other size.
    backend(x.device()).synchronize();
    detail::count_sync();
    backend(x.device()).raise_deferred_errors();
  }
  if (x.dtype() != DType::kFloat32) return out;
  const Device src = x.device();
  return record_fn(
      out, "to",
      [src](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{to_device(g, src)}; }, {&x});
}

}  // namespace cuvi
