// The op table shared by the CPU tests (forward against float64 references,
// finite-difference gradients) and the GPU tests (CUDA against CPU on the
// same inputs). One entry per op and broadcasting pattern.
#pragma once

#include "bisect.hpp"
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <cuvi.hpp>

namespace cuvi::testing {

using HostArrays = std::vector<std::vector<double>>;

struct InputSpec {
  Shape shape;
  float lo, hi;
};

struct OpCase {
  std::string name;
  std::vector<InputSpec> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> fn;
  // Float64 reference of the output (row-major), or empty when the op is
  // checked by identities elsewhere.
  std::function<std::vector<double>(const HostArrays&, const std::vector<Shape>&)> ref;
  bool differentiable = true;
};

inline std::vector<double> broadcast_apply(const std::vector<Shape>& shapes, const HostArrays& xs,
                                           const std::function<double(const std::vector<double>&)>& f) {
  Shape out;
  for (const Shape& s : shapes) out = broadcast_shapes(out, s, "ref");
  const int64_t n = shape_numel(out);
  std::vector<double> res(static_cast<size_t>(n));
  std::vector<double> args(xs.size());
  for (int64_t i = 0; i < n; ++i) {
    for (size_t k = 0; k < xs.size(); ++k) {
      const Shape& s = shapes[k];
      int64_t rem = i, off = 0, stride = 1;
      for (int64_t d = static_cast<int64_t>(out.size()) - 1; d >= 0; --d) {
        const int64_t idx = rem % out[static_cast<size_t>(d)];
        rem /= out[static_cast<size_t>(d)];
        const int64_t sd = d - static_cast<int64_t>(out.size() - s.size());
        if (sd >= 0) {
          const int64_t sz = s[static_cast<size_t>(sd)];
          if (sz != 1) off += idx * stride;
          stride *= sz;
        }
      }
      args[k] = xs[k][static_cast<size_t>(off)];
    }
    res[static_cast<size_t>(i)] = f(args);
  }
  return res;
}

inline double digamma_ref(double x) {
  // Central difference of glibc's double lgamma: error ~1e-9, far below float.
  const double h = 1e-5 * std::max(1.0, x);
  return (std::lgamma(x + h) - std::lgamma(x - h)) / (2 * h);
}

inline double ndtr_ref(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }
inline double ndtri_ref(double p) { return cuvi::testing::invert_increasing(ndtr_ref, p, -40.0, 40.0); }
inline double erfinv_ref(double y) {
  return cuvi::testing::invert_increasing([](double x) { return std::erf(x); }, y, -7.0, 7.0);
}

// References for the incomplete gamma / beta ops, by power series in long
// double (not the continued fractions the kernels use for part of the range):
// P(a, x) = x^a e^-x / Gamma(a + 1) sum_n x^n / ((a+1)...(a+n));
// I_x(a, b) = x^a (1-x)^b / (a B(a, b)) sum_n (a+b)_n / (a+1)_n x^n, applied
// to the smaller of x and 1 - x (I_x(a, b) = 1 - I_{1-x}(b, a)); Student's t
// through I.
inline double gammainc_ref(double a, double x) {
  long double term = 1, sum = 1;
  for (int n = 1; n < 100000 && term > 1e-22L * sum; ++n) {
    term *= static_cast<long double>(x) / (a + n);
    sum += term;
  }
  return static_cast<double>(sum * std::exp(static_cast<long double>(a) * std::log(static_cast<long double>(x)) - x -
                                            std::lgamma(static_cast<long double>(a) + 1)));
}
inline double betainc_ref(double a, double b, double x) {
  if (x > 0.5) return 1.0 - betainc_ref(b, a, 1.0 - x);
  long double term = 1, sum = 1;
  for (int n = 0; n < 100000 && term > 1e-22L * sum; ++n) {
    term *= (a + b + n) / (a + 1.0L + n) * x;
    sum += term;
  }
  const long double la = a, lb = b;
  const long double lpre = la * std::log(static_cast<long double>(x)) + lb * std::log1p(-static_cast<long double>(x)) -
                           std::log(la) - (std::lgamma(la) + std::lgamma(lb) - std::lgamma(la + lb));
  return static_cast<double>(sum * std::exp(lpre));
}
inline double stdtr_ref(double df, double t) {
  const double tail = 0.5 * betainc_ref(0.5 * df, 0.5, df / (df + t * t));
  return t < 0 ? tail : 1.0 - tail;
}

inline std::vector<OpCase> op_cases() {
  std::vector<OpCase> c;
  auto unary = [&](const std::string& name, Tensor (*f)(const Tensor&), double (*r)(double), float lo, float hi,
                   bool diff = true) {
    c.push_back({name, {{{3, 4}, lo, hi}}, [f](const std::vector<Tensor>& x) { return f(x[0]); },
                 [r](const HostArrays& x, const std::vector<Shape>& s) {
                   return broadcast_apply(s, x, [r](const std::vector<double>& a) { return r(a[0]); });
                 },
                 diff});
  };
  unary("neg", cuvi::neg, [](double x) { return -x; }, -2, 2);
  unary("exp", cuvi::exp, [](double x) { return std::exp(x); }, -2, 2);
  unary("log", cuvi::log, [](double x) { return std::log(x); }, 0.2f, 3);
  unary("log1p", cuvi::log1p, [](double x) { return std::log1p(x); }, -0.5f, 3);
  unary("expm1", cuvi::expm1, [](double x) { return std::expm1(x); }, -2, 2);
  unary("sqrt", cuvi::sqrt, [](double x) { return std::sqrt(x); }, 0.2f, 4);
  unary("abs", cuvi::abs, [](double x) { return std::fabs(x); }, 0.1f, 2);
  unary("square", cuvi::square, [](double x) { return x * x; }, -2, 2);
  unary("reciprocal", cuvi::reciprocal, [](double x) { return 1 / x; }, 0.5f, 3);
  unary("softplus", cuvi::softplus, [](double x) { return std::log1p(std::exp(x)); }, -4, 4);
  unary("sigmoid", cuvi::sigmoid, [](double x) { return 1 / (1 + std::exp(-x)); }, -4, 4);
  unary("log_sigmoid", cuvi::log_sigmoid, [](double x) { return -std::log1p(std::exp(-x)); }, -4, 4);
  unary("tanh", cuvi::tanh, [](double x) { return std::tanh(x); }, -2, 2);
  unary("relu", cuvi::relu, [](double x) { return x > 0 ? x : 0; }, 0.1f, 2);
  unary("lgamma", cuvi::lgamma, [](double x) { return std::lgamma(x); }, 0.3f, 6);
  unary("digamma", cuvi::digamma, digamma_ref, 0.3f, 6);
  unary("sin", cuvi::sin, [](double x) { return std::sin(x); }, -3, 3);
  unary("cos", cuvi::cos, [](double x) { return std::cos(x); }, -3, 3);
  unary("erf", cuvi::erf, [](double x) { return std::erf(x); }, -2, 2);
  unary("erfinv", cuvi::erfinv, erfinv_ref, -0.95f, 0.95f);
  unary("ndtr", cuvi::ndtr, ndtr_ref, -4, 4);
  unary("ndtri", cuvi::ndtri, ndtri_ref, 0.02f, 0.98f);
  unary("atan", cuvi::atan, [](double x) { return std::atan(x); }, -3, 3);

  using BinFn = Tensor (*)(const Tensor&, const Tensor&);
  auto binary = [&](const std::string& name, BinFn f, double (*r)(double, double), float lo, float hi) {
    const std::vector<std::pair<Shape, Shape>> patterns = {
        {{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{2, 1, 4}, {3, 1}}, {{5}, {}}, {{}, {2, 3}}};
    for (const auto& [sa, sb] : patterns) {
      c.push_back({name + shape_str(sa) + shape_str(sb), {{sa, lo, hi}, {sb, lo, hi}},
                   [f](const std::vector<Tensor>& x) { return f(x[0], x[1]); },
                   [r](const HostArrays& x, const std::vector<Shape>& s) {
                     return broadcast_apply(s, x, [r](const std::vector<double>& a) { return r(a[0], a[1]); });
                   }});
    }
  };
  binary("add", cuvi::add, [](double a, double b) { return a + b; }, -2, 2);
  binary("sub", cuvi::sub, [](double a, double b) { return a - b; }, -2, 2);
  binary("mul", cuvi::mul, [](double a, double b) { return a * b; }, -2, 2);
  binary("div", cuvi::div, [](double a, double b) { return a / b; }, 0.5f, 2);
  binary("pow", static_cast<BinFn>(cuvi::pow), [](double a, double b) { return std::pow(a, b); }, 0.5f, 2);
  binary("gammainc", cuvi::gammainc, gammainc_ref, 0.3f, 6);
  binary("gammaincc", cuvi::gammaincc, [](double a, double x) { return 1.0 - gammainc_ref(a, x); }, 0.3f, 6);
  binary("stdtr", cuvi::stdtr, stdtr_ref, 0.4f, 5);
  c.push_back({"betainc", {{{3, 1}, 0.4f, 5}, {{4}, 0.4f, 5}, {{3, 4}, 0.05f, 0.95f}},
               [](const std::vector<Tensor>& x) { return betainc(x[0], x[1], x[2]); },
               [](const HostArrays& x, const std::vector<Shape>& s) {
                 return broadcast_apply(s, x, [](const std::vector<double>& a) { return betainc_ref(a[0], a[1], a[2]); });
               }});

  c.push_back({"maximum", {{{3, 4}, -2, 2}, {{4}, -2, 2}},
               [](const std::vector<Tensor>& x) { return maximum(x[0], x[1]); },
               [](const HostArrays& x, const std::vector<Shape>& s) {
                 return broadcast_apply(s, x, [](const std::vector<double>& a) { return std::max(a[0], a[1]); });
               }});
  c.push_back({"minimum", {{{3, 4}, -2, 2}, {{3, 1}, -2, 2}},
               [](const std::vector<Tensor>& x) { return minimum(x[0], x[1]); },
               [](const HostArrays& x, const std::vector<Shape>& s) {
                 return broadcast_apply(s, x, [](const std::vector<double>& a) { return std::min(a[0], a[1]); });
               }});
  c.push_back({"where", {{{3, 4}, -1, 1}, {{3, 4}, -2, 2}, {{4}, -2, 2}},
               [](const std::vector<Tensor>& x) {
                 return where(gt(x[0].detach(), zeros({}, x[0].device())), x[1], x[2]);
               },
               [](const HostArrays& x, const std::vector<Shape>& s) {
                 return broadcast_apply(s, x, [](const std::vector<double>& a) { return a[0] > 0 ? a[1] : a[2]; });
               }});
  c.push_back({"clamp", {{{3, 4}, -2, 2}}, [](const std::vector<Tensor>& x) { return clamp(x[0], -1.0f, 1.0f); },
               [](const HostArrays& x, const std::vector<Shape>& s) {
                 return broadcast_apply(s, x, [](const std::vector<double>& a) { return std::clamp(a[0], -1.0, 1.0); });
               },
               false});

  // Reductions.
  c.push_back({"sum_all", {{{4, 5, 3}, -1, 1}}, [](const std::vector<Tensor>& x) { return sum(x[0]); },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 double s = 0;
                 for (double v : x[0]) s += v;
                 return std::vector<double>{s};
               }});
  c.push_back({"sum_dim1", {{{4, 5, 3}, -1, 1}}, [](const std::vector<Tensor>& x) { return sum(x[0], {1}); },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r(12, 0.0);
                 for (int i = 0; i < 4; ++i)
                   for (int j = 0; j < 5; ++j)
                     for (int k = 0; k < 3; ++k) r[i * 3 + k] += x[0][(i * 5 + j) * 3 + k];
                 return r;
               }});
  c.push_back({"sum_dims02_keep", {{{4, 5, 3}, -1, 1}},
               [](const std::vector<Tensor>& x) { return sum(x[0], {0, -1}, true); },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r(5, 0.0);
                 for (int i = 0; i < 4; ++i)
                   for (int j = 0; j < 5; ++j)
                     for (int k = 0; k < 3; ++k) r[j] += x[0][(i * 5 + j) * 3 + k];
                 return r;
               }});
  c.push_back({"sum_dim0", {{{6, 4}, -1, 1}}, [](const std::vector<Tensor>& x) { return sum(x[0], {0}); },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r(4, 0.0);
                 for (int i = 0; i < 6; ++i)
                   for (int j = 0; j < 4; ++j) r[j] += x[0][i * 4 + j];
                 return r;
               }});
  c.push_back({"mean_dim", {{{4, 5}, -1, 1}}, [](const std::vector<Tensor>& x) { return mean(x[0], {-1}); },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r(4, 0.0);
                 for (int i = 0; i < 4; ++i)
                   for (int j = 0; j < 5; ++j) r[i] += x[0][i * 5 + j] / 5;
                 return r;
               }});
  c.push_back({"logsumexp", {{{3, 6}, -5, 5}}, [](const std::vector<Tensor>& x) { return logsumexp(x[0], {1}); },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r(3, 0.0);
                 for (int i = 0; i < 3; ++i) {
                   double s = 0;
                   for (int j = 0; j < 6; ++j) s += std::exp(x[0][i * 6 + j]);
                   r[i] = std::log(s);
                 }
                 return r;
               }});
  c.push_back({"softmax", {{{2, 5}, -3, 3}}, [](const std::vector<Tensor>& x) { return softmax(x[0], -1); },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r(10);
                 for (int i = 0; i < 2; ++i) {
                   double s = 0;
                   for (int j = 0; j < 5; ++j) s += std::exp(x[0][i * 5 + j]);
                   for (int j = 0; j < 5; ++j) r[i * 5 + j] = std::exp(x[0][i * 5 + j]) / s;
                 }
                 return r;
               }});
  c.push_back({"cumsum", {{{3, 4}, -1, 1}}, [](const std::vector<Tensor>& x) { return cumsum(x[0], 1); },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r(12);
                 for (int i = 0; i < 3; ++i) {
                   double s = 0;
                   for (int j = 0; j < 4; ++j) r[i * 4 + j] = (s += x[0][i * 4 + j]);
                 }
                 return r;
               }});

  // Matrix products (2-D, batched, broadcast batch, vector forms).
  auto mm_ref = [](const HostArrays& x, int64_t batch_a, int64_t batch_b, int64_t m, int64_t k, int64_t n) {
    const int64_t batch = std::max(batch_a, batch_b);
    std::vector<double> r(static_cast<size_t>(batch * m * n), 0.0);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double s = 0;
          for (int64_t l = 0; l < k; ++l)
            s += x[0][static_cast<size_t>((batch_a > 1 ? b : 0) * m * k + i * k + l)] *
                 x[1][static_cast<size_t>((batch_b > 1 ? b : 0) * k * n + l * n + j)];
          r[static_cast<size_t>(b * m * n + i * n + j)] = s;
        }
    return r;
  };
  c.push_back({"matmul2d", {{{3, 5}, -1, 1}, {{5, 4}, -1, 1}},
               [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); },
               [mm_ref](const HostArrays& x, const std::vector<Shape>&) { return mm_ref(x, 1, 1, 3, 5, 4); }});
  c.push_back({"matmul_batched", {{{2, 3, 5}, -1, 1}, {{2, 5, 4}, -1, 1}},
               [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); },
               [mm_ref](const HostArrays& x, const std::vector<Shape>&) { return mm_ref(x, 2, 2, 3, 5, 4); }});
  c.push_back({"matmul_bcast", {{{3, 5}, -1, 1}, {{2, 5, 4}, -1, 1}},
               [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); },
               [mm_ref](const HostArrays& x, const std::vector<Shape>&) { return mm_ref(x, 1, 2, 3, 5, 4); }});
  c.push_back({"matvec", {{{3, 5}, -1, 1}, {{5}, -1, 1}},
               [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); },
               [mm_ref](const HostArrays& x, const std::vector<Shape>&) { return mm_ref(x, 1, 1, 3, 5, 1); }});

  // linear: x @ W^T + b over every leading dim of x.
  auto lin_ref = [](const HostArrays& x, int64_t rows, int64_t k, int64_t n, bool bias) {
    std::vector<double> r(static_cast<size_t>(rows * n));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = bias ? x[2][static_cast<size_t>(j)] : 0.0;
        for (int64_t q = 0; q < k; ++q)
          acc += x[0][static_cast<size_t>(i * k + q)] * x[1][static_cast<size_t>(j * k + q)];
        r[static_cast<size_t>(i * n + j)] = acc;
      }
    return r;
  };
  c.push_back({"linear", {{{2, 3, 5}, -1, 1}, {{4, 5}, -1, 1}, {{4}, -1, 1}},
               [](const std::vector<Tensor>& x) { return linear(x[0], x[1], x[2]); },
               [lin_ref](const HostArrays& x, const std::vector<Shape>&) { return lin_ref(x, 6, 5, 4, true); }});
  c.push_back({"linear_nobias_1d", {{{5}, -1, 1}, {{3, 5}, -1, 1}},
               [](const std::vector<Tensor>& x) { return linear(x[0], x[1]); },
               [lin_ref](const HostArrays& x, const std::vector<Shape>&) { return lin_ref(x, 1, 5, 3, false); }});

  // cholesky of A = B B^T + 3 I (positive definite for any B): [2] batch of 3 x 3.
  c.push_back({"cholesky", {{{2, 3, 3}, -1, 1}},
               [](const std::vector<Tensor>& x) {
                 const Tensor a = matmul(x[0], transpose(x[0], -1, -2)) + diag_embed(full({3}, 3.0f, x[0].device()));
                 return cholesky(a);
               },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r(18, 0.0);
                 for (int b = 0; b < 2; ++b) {
                   const double* B = x[0].data() + b * 9;
                   double A[9], L[9] = {0};
                   for (int i = 0; i < 3; ++i)
                     for (int j = 0; j < 3; ++j) {
                       A[i * 3 + j] = i == j ? 3.0 : 0.0;
                       for (int k = 0; k < 3; ++k) A[i * 3 + j] += B[i * 3 + k] * B[j * 3 + k];
                     }
                   for (int i = 0; i < 3; ++i)
                     for (int j = 0; j <= i; ++j) {
                       double v = A[i * 3 + j];
                       for (int k = 0; k < j; ++k) v -= L[i * 3 + k] * L[j * 3 + k];
                       L[i * 3 + j] = i == j ? std::sqrt(v) : v / L[j * 3 + j];
                     }
                   for (int i = 0; i < 9; ++i) r[static_cast<size_t>(b * 9 + i)] = L[i];
                 }
                 return r;
               }});

  // Shape and index ops.
  c.push_back({"transpose", {{{3, 4}, -1, 1}}, [](const std::vector<Tensor>& x) { return x[0].t(); },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r(12);
                 for (int i = 0; i < 3; ++i)
                   for (int j = 0; j < 4; ++j) r[j * 3 + i] = x[0][i * 4 + j];
                 return r;
               }});
  c.push_back({"expand", {{{3, 1}, -1, 1}}, [](const std::vector<Tensor>& x) { return x[0].expand({2, 3, 4}); },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r(24);
                 for (int b = 0; b < 2; ++b)
                   for (int i = 0; i < 3; ++i)
                     for (int j = 0; j < 4; ++j) r[(b * 3 + i) * 4 + j] = x[0][i];
                 return r;
               }});
  c.push_back({"cat", {{{2, 3}, -1, 1}, {{2, 2}, -1, 1}},
               [](const std::vector<Tensor>& x) { return cat({x[0], x[1]}, 1); },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r;
                 for (int i = 0; i < 2; ++i) {
                   for (int j = 0; j < 3; ++j) r.push_back(x[0][i * 3 + j]);
                   for (int j = 0; j < 2; ++j) r.push_back(x[1][i * 2 + j]);
                 }
                 return r;
               }});
  c.push_back({"narrow", {{{3, 5}, -1, 1}}, [](const std::vector<Tensor>& x) { return x[0].narrow(1, 1, 3); },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r;
                 for (int i = 0; i < 3; ++i)
                   for (int j = 1; j < 4; ++j) r.push_back(x[0][i * 5 + j]);
                 return r;
               }});
  c.push_back({"index_select", {{{5, 3}, -1, 1}},
               [](const std::vector<Tensor>& x) {
                 return x[0].index_select(0, tensor_i64({4, 0, 4, 2}, x[0].device()));
               },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r;
                 for (int i : {4, 0, 4, 2})
                   for (int j = 0; j < 3; ++j) r.push_back(x[0][i * 3 + j]);
                 return r;
               }});
  c.push_back({"gather", {{{3, 4}, -1, 1}},
               [](const std::vector<Tensor>& x) {
                 return gather(x[0], 1, tensor_i64({3, 0, 1, 1, 2, 2}, {3, 2}, x[0].device()));
               },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 const int idx[6] = {3, 0, 1, 1, 2, 2};
                 std::vector<double> r;
                 for (int i = 0; i < 3; ++i)
                   for (int j = 0; j < 2; ++j) r.push_back(x[0][i * 4 + idx[i * 2 + j]]);
                 return r;
               }});
  c.push_back({"diag_embed", {{{2, 3}, -1, 1}}, [](const std::vector<Tensor>& x) { return diag_embed(x[0]); },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r(18, 0.0);
                 for (int b = 0; b < 2; ++b)
                   for (int i = 0; i < 3; ++i) r[b * 9 + i * 4] = x[0][b * 3 + i];
                 return r;
               }});
  c.push_back({"tril", {{{3, 3}, -1, 1}}, [](const std::vector<Tensor>& x) { return tril(x[0]); },
               [](const HostArrays& x, const std::vector<Shape>&) {
                 std::vector<double> r(9, 0.0);
                 for (int i = 0; i < 3; ++i)
                   for (int j = 0; j <= i; ++j) r[i * 3 + j] = x[0][i * 3 + j];
                 return r;
               }});

  // Triangular solves. The input x is drawn in [-0.5, 0.5] and the case uses
  // L = tril(x) + 1.5 I: strictly-lower entries in [-0.5, 0.5], diagonal in
  // [1, 2], so cond(L) stays small. tril() first also makes the finite
  // differences of the (ignored) upper triangle zero, as the analytic ones.
  auto trisolve_case = [&](const std::string& name, const Shape& sl, const Shape& sb, bool transpose) {
    const int64_t D = sl.back();
    c.push_back({name, {{sl, -0.5f, 0.5f}, {sb, -1, 1}},
                 [transpose, D](const std::vector<Tensor>& x) {
                   Tensor L = tril(x[0]) + diag_embed(full({D}, 1.5f, x[0].device()));
                   return triangular_solve(L, x[1], transpose);
                 },
                 [sl, sb, transpose, D](const HostArrays& x, const std::vector<Shape>&) {
                   const Shape lb(sl.begin(), sl.end() - 2), bb(sb.begin(), sb.end() - 1);
                   const Shape batch = broadcast_shapes(lb, bb, "ref");
                   const int64_t n = shape_numel(batch);
                   // Flat index of batch element i in an operand with batch shape s.
                   auto operand_index = [&batch](const Shape& s, int64_t i) {
                     int64_t off = 0, stride = 1;
                     for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
                       const int64_t idx = i % batch[static_cast<size_t>(d)];
                       i /= batch[static_cast<size_t>(d)];
                       const int64_t sd = d - static_cast<int64_t>(batch.size() - s.size());
                       if (sd < 0) continue;
                       const int64_t sz = s[static_cast<size_t>(sd)];
                       if (sz != 1) off += idx * stride;
                       stride *= sz;
                     }
                     return off;
                   };
                   std::vector<double> r(static_cast<size_t>(n * D));
                   for (int64_t i = 0; i < n; ++i) {
                     const double* xl = x[0].data() + operand_index(lb, i) * D * D;
                     const double* xb = x[1].data() + operand_index(bb, i) * D;
                     auto L = [&](int64_t row, int64_t col) { return xl[row * D + col] + (row == col ? 1.5 : 0.0); };
                     double* z = r.data() + i * D;
                     if (!transpose) {
                       for (int64_t k = 0; k < D; ++k) {
                         double acc = xb[k];
                         for (int64_t j = 0; j < k; ++j) acc -= L(k, j) * z[j];
                         z[k] = acc / L(k, k);
                       }
                     } else {
                       for (int64_t k = D - 1; k >= 0; --k) {
                         double acc = xb[k];
                         for (int64_t j = k + 1; j < D; ++j) acc -= L(j, k) * z[j];
                         z[k] = acc / L(k, k);
                       }
                     }
                   }
                   return r;
                 }});
  };
  trisolve_case("trisolve_bcast", {3, 4, 4}, {2, 1, 4}, false);
  trisolve_case("trisolve_vec", {5, 5}, {5}, false);
  trisolve_case("trisolve_T_shared", {4, 4}, {3, 4}, true);
  trisolve_case("trisolve_T_bcast", {2, 1, 3, 3}, {3, 3}, true);
  return c;
}

}  // namespace cuvi::testing
