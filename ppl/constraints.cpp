#include "ppl/constraints.hpp"

#include <cfloat>
#include <charconv>
#include <cmath>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <system_error>
#include <vector>

#include "runtime/ops.hpp"

namespace cuvi::constraints {

namespace {

// ---- helpers ---------------------------------------------------------------

Tensor scalar(const Tensor& like, float v) { return full({}, v, like.device()); }

// 1 where mask (0/1) holds everywhere over the last `ndims` dims.
Tensor all_last(const Tensor& mask, int ndims) {
  std::vector<int64_t> dims;
  for (int d = 1; d <= ndims; ++d) dims.push_back(-d);
  Tensor failures = sum(scalar(mask, 1.0f) - mask, dims);
  return eq(failures, scalar(failures, 0.0f));
}

// A constant tensor the transforms need on every call (index maps, offsets),
// built once per (what, size, device) and kept for the process: no host
// vector, allocation and host-to-device copy per call (per SVI step on a
// GPU). Read-only by construction: only ever an input of out-of-place ops.
Tensor cached_constant(const char* what, int64_t n, Device dev, const std::function<Tensor()>& make) {
  static std::mutex& mu = *new std::mutex();  // leaked with the cache it guards
  static auto& cache = *new std::map<std::tuple<std::string, int64_t, bool, int>, Tensor>();  // leaked: see cuda_backend
  const auto key = std::make_tuple(std::string(what), n, dev.is_cpu(), dev.index);
  {
    const std::lock_guard<std::mutex> lock(mu);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  Tensor t = make();
  const std::lock_guard<std::mutex> lock(mu);
  return cache.emplace(key, std::move(t)).first->second;
}

// Shape of x with its last dim replaced.
Shape with_last(const Shape& s, int64_t last) {
  Shape out = s;
  out.back() = last;
  return out;
}

std::string format_float(float v) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

void require_event_dims(const Tensor& x, int event_dim, const std::string& name, const char* what) {
  CUVI_CHECK(x.defined(), ValueError, "constraint " << name << ": " << what << ": undefined tensor");
  CUVI_CHECK(x.dim() >= event_dim, ShapeError,
             "constraint " << name << ": " << what << ": a tensor of shape " << shape_str(x.shape())
                           << " has fewer than " << event_dim << " event dims");
}

// ---- elementwise (event_dim 0) ---------------------------------------------

class Elementwise : public Constraint {
 public:
  int event_dim() const override { return 0; }
  int transform_sign() const override { return 1; }
  Tensor check(const Tensor& x_in) const override {
    require_event_dims(x_in, 0, name(), "check");
    NoGradGuard ng;
    return holds(x_in.to_float().detach());
  }

 protected:
  virtual Tensor holds(const Tensor& x) const = 0;
};

class Real final : public Elementwise {
 public:
  std::string name() const override { return "real"; }
  Tensor transform(const Tensor& u) const override { return u; }
  Tensor inverse(const Tensor& x) const override { return x; }
  Tensor log_abs_det_jacobian(const Tensor& u, const Tensor&) const override { return zeros_like(u); }

 protected:
  Tensor holds(const Tensor& x) const override { return eq(x, x); }  // not NaN
};

class GreaterThan : public Elementwise {
 public:
  explicit GreaterThan(float lo) : lo_(lo) {}
  std::string name() const override { return "greater_than(" + format_float(lo_) + ")"; }
  Tensor transform(const Tensor& u) const override { return lo_ == 0.0f ? exp(u) : exp(u) + lo_; }
  Tensor inverse(const Tensor& x) const override { return lo_ == 0.0f ? log(x) : log(x - lo_); }
  // d/du (lo + e^u) = e^u.
  Tensor log_abs_det_jacobian(const Tensor& u, const Tensor&) const override { return u; }

 protected:
  Tensor holds(const Tensor& x) const override { return gt(x, scalar(x, lo_)); }
  float lo_;
};

class Positive final : public GreaterThan {
 public:
  Positive() : GreaterThan(0.0f) {}
  std::string name() const override { return "positive"; }
};

class SoftplusPositive final : public Elementwise {
 public:
  std::string name() const override { return "softplus_positive"; }
  Tensor transform(const Tensor& u) const override { return softplus(u); }
  // softplus^-1(x) = x + log(-expm1(-x)). Above 20 the correction is below
  // 2e-9 (under half an ulp of x), so it is evaluated at min(x, 20): no
  // underflow to log(0) for large x, and the value is unchanged.
  Tensor inverse(const Tensor& x) const override { return x + log(-expm1(-clamp(x, -FLT_MAX, 20.0f))); }
  // d softplus / du = sigmoid(u).
  Tensor log_abs_det_jacobian(const Tensor& u, const Tensor&) const override { return log_sigmoid(u); }

 protected:
  Tensor holds(const Tensor& x) const override { return gt(x, scalar(x, 0.0f)); }
};

class Interval : public Elementwise {
 public:
  Interval(float lo, float hi) : lo_(lo), hi_(hi) {}
  std::string name() const override { return "interval(" + format_float(lo_) + ", " + format_float(hi_) + ")"; }
  Tensor transform(const Tensor& u) const override {
    // The clamp only removes a rounding overshoot of lo + (hi - lo) * 1 past hi.
    return clamp(sigmoid(u) * width() + lo_, lo_, hi_);
  }
  Tensor inverse(const Tensor& x) const override {
    Tensor y = clamp((x - lo_) / width(), 0.0f, 1.0f);
    return log(y) - log1p(-y);
  }
  // d/du = (hi - lo) sigmoid(u) sigmoid(-u).
  Tensor log_abs_det_jacobian(const Tensor& u, const Tensor&) const override {
    Tensor l = log_sigmoid(u) + log_sigmoid(-u);
    const float lw = static_cast<float>(std::log(static_cast<double>(hi_) - static_cast<double>(lo_)));
    return lw == 0.0f ? l : l + lw;
  }

 protected:
  Tensor holds(const Tensor& x) const override { return ge(x, scalar(x, lo_)) * le(x, scalar(x, hi_)); }
  float width() const { return static_cast<float>(static_cast<double>(hi_) - static_cast<double>(lo_)); }
  float lo_, hi_;
};

class UnitInterval final : public Interval {
 public:
  UnitInterval() : Interval(0.0f, 1.0f) {}
  std::string name() const override { return "unit_interval"; }
  Tensor transform(const Tensor& u) const override { return sigmoid(u); }
  Tensor inverse(const Tensor& x) const override { return log(x) - log1p(-x); }
};

class Discrete : public Elementwise {
 public:
  bool is_discrete() const override { return true; }
  int transform_sign() const override { return 0; }
  Tensor transform(const Tensor&) const override { fail("transform"); }
  Tensor inverse(const Tensor&) const override { fail("inverse"); }
  Tensor log_abs_det_jacobian(const Tensor&, const Tensor&) const override { fail("log_abs_det_jacobian"); }

 private:
  [[noreturn]] void fail(const char* what) const {
    CUVI_THROW(ValueError, "constraint " << name() << " is discrete: it has no bijection from unconstrained space ("
                                         << what << ")");
  }
};

class Boolean final : public Discrete {
 public:
  std::string name() const override { return "boolean"; }

 protected:
  Tensor holds(const Tensor& x) const override { return eq(x, scalar(x, 0.0f)) + eq(x, scalar(x, 1.0f)); }
};

class NonnegativeInteger final : public Discrete {
 public:
  std::string name() const override { return "nonnegative_integer"; }

 protected:
  Tensor holds(const Tensor& x) const override {
    // Every float32 at or above 2^24 is an integer; below it, truncation to
    // int64 and back is exact only for integers. NaN and inf fail.
    const float big = 16777216.0f;
    Tensor nonneg = ge(x, scalar(x, 0.0f)) * le(x, scalar(x, FLT_MAX));
    Tensor xc = clamp(where(nonneg, x, scalar(x, 0.0f)), 0.0f, big);
    return nonneg * eq(xc.to_int64().to_float(), xc);
  }
};

// ---- simplex ---------------------------------------------------------------

class Simplex final : public Constraint {
 public:
  std::string name() const override { return "simplex"; }
  int event_dim() const override { return 1; }

  Tensor check(const Tensor& x_in) const override {
    require_event_dims(x_in, 1, name(), "check");
    NoGradGuard ng;
    Tensor x = x_in.to_float().detach();
    const int64_t k = x.size(-1);
    // Sum within a few float32 roundings of 1 (torch uses 1e-6, which K
    // rounded float32 terms can exceed for large K).
    const float tol = std::max(1e-6f, 2.0f * static_cast<float>(k) * FLT_EPSILON);
    Tensor nonneg = all_last(ge(x, scalar(x, 0.0f)), 1);
    Tensor dev = abs(sum(x, {-1}) - 1.0f);
    return nonneg * lt(dev, scalar(dev, tol));
  }

  Tensor transform(const Tensor& u) const override {
    require_event_dims(u, 1, name(), "transform");
    const int64_t m = u.size(-1);
    if (m == 0) return ones(with_last(u.shape(), 1), u.device());
    Parts p = parts(u);
    return exp(p.log_x);
  }

  Tensor inverse(const Tensor& x) const override {
    require_event_dims(x, 1, name(), "inverse");
    const int64_t k = x.size(-1);
    CUVI_CHECK(k >= 1, ShapeError, "constraint simplex: inverse: empty last dim in " << shape_str(x.shape()));
    const int64_t m = k - 1;
    if (m == 0) return zeros(with_last(x.shape(), 0), x.device());
    // Remaining stick after component i: sum_{j > i} x_j, summed directly
    // (not 1 - cumsum) so that small remainders keep their relative accuracy.
    const Tensor tail = cached_constant("simplex tail", k, x.device(), [&] {
      std::vector<float> t(static_cast<size_t>(k * m), 0.0f);
      for (int64_t j = 0; j < k; ++j)
        for (int64_t i = 0; i < m; ++i)
          if (j > i) t[static_cast<size_t>(j * m + i)] = 1.0f;
      return tensor(t, {k, m}, x.device());
    });
    Tensor rest = clamp_min(matmul(x, tail), FLT_MIN);
    Tensor head = narrow(x, -1, 0, m);
    return log(head) - log(rest) + offsets(m, x.device());
  }

  // Lower-triangular Jacobian over the free coordinates:
  // dx_i/du_i = z_i (1 - z_i) prod_{j<i} (1 - z_j) = x_i (1 - z_i).
  Tensor log_abs_det_jacobian(const Tensor& u, const Tensor&) const override {
    require_event_dims(u, 1, name(), "log_abs_det_jacobian");
    const int64_t m = u.size(-1);
    Shape batch(u.shape().begin(), u.shape().end() - 1);
    if (m == 0) return zeros(batch, u.device());
    Parts p = parts(u);
    return sum(narrow(p.log_x, -1, 0, m) + p.log1mz, {-1});
  }

  Shape unconstrained_shape(const Shape& c) const override {
    CUVI_CHECK(!c.empty() && c.back() >= 1, ShapeError,
               "constraint simplex: shape " << shape_str(c) << " has no non-empty last dim");
    return with_last(c, c.back() - 1);
  }
  Shape constrained_shape(const Shape& u) const override {
    CUVI_CHECK(!u.empty(), ShapeError, "constraint simplex: an unconstrained value needs at least 1 dim");
    return with_last(u, u.back() + 1);
  }

 private:
  struct Parts {
    Tensor log_x;   // [..., K]
    Tensor log1mz;  // [..., K-1]
  };

  // log(K-1-i) for i = 0..K-2 (m = K-1 entries).
  static Tensor offsets(int64_t m, Device dev) {
    return cached_constant("simplex offsets", m, dev, [&] {
      std::vector<float> off(static_cast<size_t>(m));
      for (int64_t i = 0; i < m; ++i)
        off[static_cast<size_t>(i)] = static_cast<float>(std::log(static_cast<double>(m - i)));
      return tensor(off, {m}, dev);
    });
  }

  static Parts parts(const Tensor& u) {
    const int64_t m = u.size(-1);
    Tensor s = u - offsets(m, u.device());
    Tensor log_z = log_sigmoid(s);
    Tensor log1mz = log_sigmoid(-s);
    Tensor z0 = zeros(with_last(u.shape(), 1), u.device());
    // log x_i = log z_i + sum_{j<i} log(1 - z_j); log x_{K-1} = sum_j log(1 - z_j).
    Tensor log_x = cat({log_z, z0}, -1) + cat({z0, cumsum(log1mz, -1)}, -1);
    return {log_x, log1mz};
  }
};

// ---- ordered_vector --------------------------------------------------------

class OrderedVector final : public Constraint {
 public:
  std::string name() const override { return "ordered_vector"; }
  int event_dim() const override { return 1; }

  Tensor check(const Tensor& x_in) const override {
    require_event_dims(x_in, 1, name(), "check");
    NoGradGuard ng;
    const Tensor x = x_in.to_float().detach();
    const int64_t k = x.size(-1);
    const Tensor finite = all_last(lt(abs(x), scalar(x, INFINITY)), 1);  // NaN fails too
    if (k < 2) return finite;
    return finite * all_last(gt(narrow(x, -1, 1, k - 1), narrow(x, -1, 0, k - 1)), 1);
  }

  Tensor transform(const Tensor& u) const override {
    require_event_dims(u, 1, name(), "transform");
    const int64_t k = u.size(-1);
    if (k < 2) return u * 1.0f;
    return cumsum(cat({narrow(u, -1, 0, 1), exp(narrow(u, -1, 1, k - 1))}, -1), -1);
  }

  Tensor inverse(const Tensor& x) const override {
    require_event_dims(x, 1, name(), "inverse");
    const int64_t k = x.size(-1);
    if (k < 2) return x * 1.0f;
    return cat({narrow(x, -1, 0, 1), log(narrow(x, -1, 1, k - 1) - narrow(x, -1, 0, k - 1))}, -1);
  }

  // Triangular Jacobian with diagonal (1, e^u_1, ..., e^u_{K-1}).
  Tensor log_abs_det_jacobian(const Tensor& u, const Tensor&) const override {
    require_event_dims(u, 1, name(), "log_abs_det_jacobian");
    const int64_t k = u.size(-1);
    if (k < 2) return zeros(Shape(u.shape().begin(), u.shape().end() - 1), u.device());
    return sum(narrow(u, -1, 1, k - 1), {-1});
  }
};

// ---- lower_cholesky --------------------------------------------------------

// 1 where a [..., n, n] matrix is lower triangular with a positive diagonal.
Tensor lower_with_positive_diagonal(const Tensor& x) {
  return all_last(eq(tril(x), x), 2) * all_last(gt(diagonal(x), scalar(x, 0.0f)), 1);
}

// Constraints on [..., n, n] matrices whose unconstrained value packs a
// triangle row by row: n(n+1)/2 entries with the diagonal (lower_cholesky),
// n(n-1)/2 without it (corr_cholesky, n >= 2). The shape maps and their
// errors live here once.
class PackedTriangle : public Constraint {
 public:
  int event_dim() const override { return 2; }
  Shape unconstrained_shape(const Shape& c) const override {
    require_square(c, "unconstrained_shape");
    Shape out(c.begin(), c.end() - 1);
    out.back() = count(c.back());
    return out;
  }
  Shape constrained_shape(const Shape& u) const override {
    CUVI_CHECK(!u.empty(), ShapeError, "constraint " << name() << ": an unconstrained value needs at least 1 dim");
    const int64_t n = side(u.back());
    Shape out = u;
    out.back() = n;
    out.push_back(n);
    return out;
  }

 protected:
  explicit PackedTriangle(bool with_diagonal) : diag_(with_diagonal) {}
  int64_t min_side() const { return diag_ ? 1 : 2; }
  int64_t count(int64_t n) const { return diag_ ? n * (n + 1) / 2 : n * (n - 1) / 2; }
  // n with count(n) == m (n >= min_side()), else ShapeError.
  int64_t side(int64_t m) const {
    const double r = std::sqrt(8.0 * static_cast<double>(m) + 1.0);
    const int64_t n = static_cast<int64_t>(std::llround(diag_ ? (r - 1.0) / 2.0 : (r + 1.0) / 2.0));
    CUVI_CHECK(m >= 1 && n >= min_side() && count(n) == m, ShapeError,
               "constraint " << name() << ": last dim " << m << " of an unconstrained value is not "
                             << (diag_ ? "n(n+1)/2" : "n(n-1)/2") << " for any n >= " << min_side());
    return n;
  }
  void require_square(const Shape& s, const char* what) const {
    CUVI_CHECK(s.size() >= 2 && s[s.size() - 1] == s[s.size() - 2] && s.back() >= min_side(), ShapeError,
               "constraint " << name() << ": " << what << ": shape " << shape_str(s)
                             << " does not end in a square matrix of side >= " << min_side());
  }

 private:
  bool diag_;
};

class LowerCholesky final : public PackedTriangle {
 public:
  LowerCholesky() : PackedTriangle(true) {}
  std::string name() const override { return "lower_cholesky"; }

  Tensor check(const Tensor& x_in) const override {
    require_event_dims(x_in, 2, name(), "check");
    require_square(x_in.shape(), "check");
    NoGradGuard ng;
    return lower_with_positive_diagonal(x_in.to_float().detach());
  }

  Tensor transform(const Tensor& u) const override {
    require_event_dims(u, 1, name(), "transform");
    const int64_t m = u.size(-1);
    const int64_t n = side(m);
    const Device dev = u.device();
    Tensor d = exp(index_select(u, -1, diag_index(n, dev)));
    Tensor ext = cat({u, d, zeros(with_last(u.shape(), 1), dev)}, -1);  // [..., m + n + 1]
    const Tensor map = cached_constant("lower_cholesky transform", n, dev, [&] {
      std::vector<int64_t> idx(static_cast<size_t>(n * n));
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
          idx[static_cast<size_t>(i * n + j)] = j < i ? packed(i, j) : (j == i ? m + i : m + n);
      return tensor_i64(idx, {n * n}, dev);
    });
    Tensor flat = index_select(ext, -1, map);
    Shape out(u.shape().begin(), u.shape().end() - 1);
    out.push_back(n);
    out.push_back(n);
    return reshape(flat, out);
  }

  Tensor inverse(const Tensor& x) const override {
    require_event_dims(x, 2, name(), "inverse");
    require_square(x.shape(), "inverse");
    const int64_t n = x.size(-1);
    const Device dev = x.device();
    Shape flat_shape(x.shape().begin(), x.shape().end() - 1);
    flat_shape.back() = n * n;
    Tensor ext = cat({reshape(x, flat_shape), log(diagonal(x))}, -1);  // [..., n*n + n]
    const Tensor map = cached_constant("lower_cholesky inverse", n, dev, [&] {
      std::vector<int64_t> idx;
      idx.reserve(static_cast<size_t>(n * (n + 1) / 2));
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j <= i; ++j) idx.push_back(j < i ? i * n + j : n * n + i);
      return tensor_i64(idx, {static_cast<int64_t>(idx.size())}, dev);
    });
    return index_select(ext, -1, map);
  }

  // The diagonal is exp(u_ii), the rest is linear: log|det J| = sum_i u_ii.
  Tensor log_abs_det_jacobian(const Tensor& u, const Tensor&) const override {
    require_event_dims(u, 1, name(), "log_abs_det_jacobian");
    const int64_t n = side(u.size(-1));
    return sum(index_select(u, -1, diag_index(n, u.device())), {-1});
  }


 private:
  static int64_t packed(int64_t i, int64_t j) { return i * (i + 1) / 2 + j; }

  static Tensor diag_index(int64_t n, Device dev) {
    return cached_constant("lower_cholesky diagonal", n, dev, [&] {
      std::vector<int64_t> idx(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = packed(i, i);
      return tensor_i64(idx, {n}, dev);
    });
  }
};

// Cholesky factors of correlation matrices (torch's CorrCholeskyTransform):
// the D(D-1)/2 unconstrained values u, packed row by row over the strictly
// lower triangle ((1,0), (2,0), (2,1), ...), become partial correlations
// z = tanh(u) in (-1, 1); row i of L is then stick-breaking of unit length:
//   L_ij = z_ij sqrt(prod_{k<j} (1 - z_ik^2))  (j < i),
//   L_ii = sqrt(prod_{k<i} (1 - z_ik^2)),
// so every row has unit norm and a positive diagonal (L L^T has ones on the
// diagonal). Computed in log space, log(1 - tanh^2 u) = 2 (log 2 - |u| -
// softplus(-2|u|)), so z near +-1 stays finite. L_ij depends only on z_ik
// with k <= j, so the Jacobian of the strictly lower entries in packed
// order is triangular: log|det J| = sum_{i>j} [log(1 - z_ij^2) + (1/2)
// sum_{k<j} log(1 - z_ik^2)].
class CorrCholesky final : public PackedTriangle {
 public:
  CorrCholesky() : PackedTriangle(false) {}
  std::string name() const override { return "corr_cholesky"; }

  // Lower triangular, positive diagonal, rows of unit norm within 1e-4.
  Tensor check(const Tensor& x_in) const override {
    require_event_dims(x_in, 2, name(), "check");
    require_square(x_in.shape(), "check");
    NoGradGuard ng;
    const Tensor x = x_in.to_float().detach();
    const Tensor unit = all_last(lt(abs(sum(x * x, {-1}) - 1.0f), scalar(x, 1e-4f)), 1);
    return lower_with_positive_diagonal(x) * unit;
  }

  Tensor transform(const Tensor& u) const override {
    require_event_dims(u, 1, name(), "transform");
    const int64_t n = side(u.size(-1));
    const Tensor zm = to_matrix(tanh(u), n);                     // z at the strictly lower entries, else 0
    const Tensor t = to_matrix(log_sech2(u), n);                 // log(1 - z^2) there, else 0
    const Tensor excl = cumsum(t, -1) - t;                       // sum_{k<j} log(1 - z_ik^2)
    const Tensor off = zm * exp(0.5f * excl);                    // strictly lower part
    const Tensor diag = exp(0.5f * sum(t, {-1}));                // [..., n]
    return off + diag_embed(diag);
  }

  Tensor inverse(const Tensor& x) const override {
    require_event_dims(x, 2, name(), "inverse");
    require_square(x.shape(), "inverse");
    const int64_t n = x.size(-1);
    const Tensor l = tril(x, -1);
    const Tensor sq = l * l;
    const Tensor rest = 1.0f - (cumsum(sq, -1) - sq);  // 1 - sum_{k<j} L_ik^2 = prod_{k<j} (1 - z_ik^2)
    const float lim = 1.0f - 1e-7f;
    const Tensor z = clamp(l / sqrt(clamp_min(rest, 1e-30f)), -lim, lim);
    const Tensor u = 0.5f * (log1p(z) - log1p(-z));  // atanh
    return from_matrix(u, n);
  }

  Tensor log_abs_det_jacobian(const Tensor& u, const Tensor&) const override {
    require_event_dims(u, 1, name(), "log_abs_det_jacobian");
    const int64_t n = side(u.size(-1));
    const Tensor t = to_matrix(log_sech2(u), n);
    const Tensor excl = cumsum(t, -1) - t;
    const Tensor below = cached_constant("corr_cholesky strictly lower", n, u.device(), [&] {
      return tril(ones({n, n}, u.device()), -1);  // 1 at the strictly lower entries
    });
    return sum(t, {-1, -2}) + 0.5f * sum(excl * below, {-1, -2});
  }


 private:
  // log(1 - tanh(u)^2) = log sech^2 u, stable for large |u|.
  static Tensor log_sech2(const Tensor& u) {
    const Tensor a = abs(u);
    return 2.0f * (static_cast<float>(std::log(2.0)) - a - softplus(-2.0f * a));
  }

 private:  // [..., m] packed strictly lower -> [..., n, n] with zeros elsewhere.
  static Tensor to_matrix(const Tensor& v, int64_t n) {
    const int64_t m = n * (n - 1) / 2;
    const Device dev = v.device();
    const Tensor ext = cat({v, zeros(with_last(v.shape(), 1), dev)}, -1);
    const Tensor map = cached_constant("corr_cholesky to_matrix", n, dev, [&] {
      std::vector<int64_t> idx(static_cast<size_t>(n * n));
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) idx[static_cast<size_t>(i * n + j)] = j < i ? i * (i - 1) / 2 + j : m;
      return tensor_i64(idx, {n * n}, dev);
    });
    Shape out(v.shape().begin(), v.shape().end() - 1);
    out.push_back(n);
    out.push_back(n);
    return reshape(index_select(ext, -1, map), out);
  }
  // The inverse of to_matrix (the strictly lower entries, packed).
  static Tensor from_matrix(const Tensor& x, int64_t n) {
    Shape flat(x.shape().begin(), x.shape().end() - 1);
    flat.back() = n * n;
    const Tensor map = cached_constant("corr_cholesky from_matrix", n, x.device(), [&] {
      std::vector<int64_t> idx;
      for (int64_t i = 1; i < n; ++i)
        for (int64_t j = 0; j < i; ++j) idx.push_back(i * n + j);
      return tensor_i64(idx, {static_cast<int64_t>(idx.size())}, x.device());
    });
    return index_select(reshape(x, flat), -1, map);
  }
};

// ---- parsing -----------------------------------------------------------------

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

bool parse_float(std::string_view s, float* out) {
  s = trim(s);
  if (s.empty()) return false;
  const auto res = std::from_chars(s.data(), s.data() + s.size(), *out);
  return res.ec == std::errc() && res.ptr == s.data() + s.size() && std::isfinite(*out);
}

// Arguments of "fn(args)" when s has that form.
bool call_args(std::string_view s, std::string_view fn, std::string_view* args) {
  if (s.size() < fn.size() + 2 || s.substr(0, fn.size()) != fn || s[fn.size()] != '(' || s.back() != ')') return false;
  *args = s.substr(fn.size() + 1, s.size() - fn.size() - 2);
  return true;
}

}  // namespace

const ConstraintPtr real = std::make_shared<const Real>();
const ConstraintPtr positive = std::make_shared<const Positive>();
const ConstraintPtr softplus_positive = std::make_shared<const SoftplusPositive>();
const ConstraintPtr unit_interval = std::make_shared<const UnitInterval>();
const ConstraintPtr simplex = std::make_shared<const Simplex>();
const ConstraintPtr ordered_vector = std::make_shared<const OrderedVector>();
const ConstraintPtr lower_cholesky = std::make_shared<const LowerCholesky>();
const ConstraintPtr corr_cholesky = std::make_shared<const CorrCholesky>();
const ConstraintPtr boolean = std::make_shared<const Boolean>();
const ConstraintPtr nonnegative_integer = std::make_shared<const NonnegativeInteger>();

ConstraintPtr interval(float lo, float hi) {
  CUVI_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo < hi, ValueError,
             "constraints::interval: need finite lo < hi, got lo = " << lo << ", hi = " << hi);
  return std::make_shared<const Interval>(lo, hi);
}

ConstraintPtr greater_than(float lo) {
  CUVI_CHECK(std::isfinite(lo), ValueError, "constraints::greater_than: lower bound " << lo << " is not finite");
  return std::make_shared<const GreaterThan>(lo);
}

ConstraintPtr from_name(const std::string& name) {
  for (const ConstraintPtr* c : {&real, &positive, &softplus_positive, &unit_interval, &simplex, &ordered_vector,
                                 &lower_cholesky, &corr_cholesky, &boolean, &nonnegative_integer})
    if ((*c)->name() == name) return *c;
  const std::string_view s = name;
  std::string_view args;
  if (call_args(s, "interval", &args)) {
    const size_t comma = args.find(',');
    float lo = 0, hi = 0;
    if (comma != std::string_view::npos && parse_float(args.substr(0, comma), &lo) &&
        parse_float(args.substr(comma + 1), &hi) && lo < hi)
      return interval(lo, hi);
  } else if (call_args(s, "greater_than", &args)) {
    float lo = 0;
    if (parse_float(args, &lo)) return greater_than(lo);
  }
  CUVI_THROW(ValueError, "constraints::from_name: unknown constraint '"
                             << name
                             << "' (known: real, positive, softplus_positive, unit_interval, interval(lo, hi), "
                                "greater_than(lo), simplex, ordered_vector, lower_cholesky, corr_cholesky, boolean, "
                                "nonnegative_integer)");
}

}  // namespace cuvi::constraints
