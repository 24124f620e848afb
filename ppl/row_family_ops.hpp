// Tensor-level ops for a row family F (kernels/dist/row_family.hpp): a
// parameter of shape batch + [K]; validation, log_prob with its backward,
// the fused log-prob-sum of the ELBO, sampling (reparameterised for
// Dirichlet) with its pathwise backward. Each is one kernel launch on CUDA
// (plus sum_to_shape when a parameter broadcasts), one loop on the CPU.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "../kernels/dist/row_family.hpp"
#include "../kernels/dist/rows.hpp"
#include "family_ops.hpp"

namespace cuvi::dist {
namespace detail {

template <class B>
const kern::RowsCudaOps<B>& rows_cuda_ops(const char* name) {
  register_builtin_cuda_families();
  CUVI_CHECK(kern::RowsRegistry<B>::cuda != nullptr, DeviceError, name << ": no CUDA kernels are registered");
  return *kern::RowsRegistry<B>::cuda;
}

template <class F>
const kern::RowFamilyCudaOps<F>& row_cuda_ops() {
  register_builtin_cuda_families();
  CUVI_CHECK(kern::RowFamilyRegistry<F>::cuda != nullptr, DeviceError,
             F::kName << ": no CUDA kernels are registered for this family");
  return *kern::RowFamilyRegistry<F>::cuda;
}

// The generic row passes on either backend.
template <class B>
void rows_log_prob_grad(const typename B::Args& a, const float* g, float coef, const typename B::Grads& o, Device dev,
                        const char* name) {
  if (dev.is_cpu()) kern::cpu::rows_log_prob_grad<B>(a, g, coef, o);
  else rows_cuda_ops<B>(name).log_prob_grad(a, g, coef, o, cuda_stream(dev.index));
}
// The validation messages of a row body: `what[k]` says what is wrong for
// B::validate's result 1 + k ("parameter scale_tril must be finite").
// `value_what`, when set, says what a value must be ("must be ... "), in
// place of the generic "outside the support".
struct RowMessages {
  const char* name;
  const std::vector<std::string>& what;
  const char* value_what = nullptr;
  std::string param(int k) const { return std::string(name) + ": " + what[static_cast<size_t>(k)] + site_suffix(); }
  std::string value() const {
    return std::string(name) + ": value " + (value_what ? value_what : "outside the support") + site_suffix();
  }
  template <class B>
  kern::FamilyCheck device(Device dev) const {
    return device_check(
        dev, &kCheckTag<B>, static_cast<int>(what.size()), [this](int k) { return param(k); },
        [this] { return value(); });
  }
  void raise(int r, float bad) const {
    throw_check(r, bad, [this](int k) { return param(k); }, [this] { return value(); });
  }
};

// Writes coef * sum(log_prob) into the 0-d tensor `out` (on dev). With
// `checks` (and validation on), every row and its value are validated in the
// same pass (see rows_validate for the messages).
template <class B>
void rows_log_prob_sum(const typename B::Args& a, float coef, const typename B::Grads& o, bool grads, Tensor& out,
                       Device dev, const char* name, const std::vector<std::string>* checks = nullptr,
                       const char* value_what = nullptr) {
  const bool check = checks != nullptr && validation_enabled();
  if (dev.is_cpu()) {
    kern::FirstBad bad;
    *out.data<float>() = kern::cpu::rows_log_prob_sum<B>(a, coef, o, grads, check ? &bad : nullptr);
    if (check) RowMessages{name, *checks, value_what}.raise(bad.r, bad.value);
    return;
  }
  const kern::FamilyCheck c = check ? RowMessages{name, *checks, value_what}.device<B>(dev) : kern::FamilyCheck{};
  rows_cuda_ops<B>(name).log_prob_sum(a, coef, out.data<float>(), o, grads, check ? &c : nullptr,
                                      cuda_stream(dev.index));
}

// log_prob of every row into `out`. With `checks` (and validation on), each
// row and its value are validated in the same pass, as rows_log_prob_sum.
template <class B>
void rows_log_prob(const typename B::Args& a, float* out, Device dev, const char* name,
                   const std::vector<std::string>* checks = nullptr, const char* value_what = nullptr) {
  const bool check = checks != nullptr && validation_enabled();
  if (dev.is_cpu()) {
    kern::FirstBad bad;
    kern::cpu::rows_log_prob<B>(a, out, check ? &bad : nullptr);
    if (check) RowMessages{name, *checks, value_what}.raise(bad.r, bad.value);
    return;
  }
  const kern::FamilyCheck c = check ? RowMessages{name, *checks, value_what}.device<B>(dev) : kern::FamilyCheck{};
  rows_cuda_ops<B>(name).log_prob(a, out, check ? &c : nullptr, cuda_stream(dev.index));
}

// Runs B::validate over the rows, messages as RowMessages. On a GPU the
// check is queued and raised at the next synchronisation.
template <class B>
void rows_validate(const typename B::Args& a, bool values, Device dev, const char* name,
                   const std::vector<std::string>& what, const char* value_what = nullptr) {
  if (!validation_enabled()) return;
  const RowMessages m{name, what, value_what};
  if (dev.is_cpu()) {
    float bad = 0;
    const int r = kern::cpu::rows_validate<B>(a, values, &bad);
    m.raise(r, bad);
    return;
  }
  rows_cuda_ops<B>(name).validate(a, values, m.device<B>(dev), cuda_stream(dev.index));
}

inline Shape drop_last_dim(const Shape& s) { return Shape(s.begin(), s.end() - 1); }

// The value's batch shape (its event dim dropped for kValueEvent families),
// after checking dtype and event size.
template <class F>
Shape row_value_batch(const Tensor& x, int64_t K) {
  if constexpr (F::kValueEvent) {
    CUVI_CHECK(x.dtype() == DType::kFloat32, DTypeError,
               F::kName << ": values must be float32, got " << dtype_name(x.dtype()) << site_suffix());
    CUVI_CHECK(x.dim() >= 1 && x.size(-1) == K, ShapeError,
               F::kName << ".log_prob: value of shape " << shape_str(x.shape()) << " has no event dim of size " << K
                        << site_suffix());
    return drop_last_dim(x.shape());
  } else {
    // One value per row: float32, or int64 read directly by the kernels.
    CUVI_CHECK(x.dtype() == DType::kFloat32 || x.dtype() == DType::kInt64, DTypeError,
               F::kName << ": values must be float32 or int64, got " << dtype_name(x.dtype()) << site_suffix());
    return x.shape();
  }
}

// rows: the index space; x may be null (sampling), else its batch shape is
// x_batch.
inline kern::RowArgs make_row_args(const Tensor* x, const Shape& x_batch, const Tensor& p, const Shape& rows) {
  kern::RowArgs a;
  const Shape pb = drop_last_dim(p.shape());
  const Shape xb = x ? x_batch : rows;
  a.geom = cuvi::detail::make_geom<2>(rows, {&xb, &pb});
  if (x && x->dtype() == DType::kInt64) a.xi = x->data<int64_t>();
  else a.x = x ? x->data<float>() : nullptr;
  a.p = p.data<float>();
  a.K = static_cast<int>(p.size(-1));
  return a;
}

// Row family F's validation messages (its one parameter).
template <class F>
const std::vector<std::string>& row_checks() {
  static const std::vector<std::string> what{std::string("parameter ") + F::param_name(0) +
                                             " is outside its constraint"};
  return what;
}

template <class F>
void row_validate(const kern::RowArgs& a, bool values, Device dev) {
  rows_validate<kern::RowBody<F>>(a, values, dev, F::kName, row_checks<F>());
}

// The per-row gradient rows for log_prob at (x, p), scaled by g (per row)
// or by coef, reduced to the shapes of x and p. need[0]: value, need[1]:
// parameter.
template <class F>
std::vector<Tensor> row_grads(const Tensor& x, const Shape& x_batch, const Tensor& p, const Shape& rows,
                              const Tensor* g, float coef, Tensor* sum_out, const std::vector<bool>& need) {
  const Device dev = p.device();
  const auto a = make_row_args(&x, x_batch, p, rows);
  Shape full = rows;
  full.push_back(p.size(-1));
  // Only the gradients asked for get a buffer (a value-event family's body
  // skips a null one); a family with index values always has its parameter's.
  kern::RowGrads o;
  Tensor gp, gx;
  if (need[1] || !F::kValueEvent) {
    gp = Tensor::empty(full, DType::kFloat32, dev);
    o.gp = gp.data<float>();
  }
  if (F::kValueEvent && need[0]) {
    gx = Tensor::empty(full, DType::kFloat32, dev);
    o.gx = gx.data<float>();
  }
  using B = kern::RowBody<F>;
  // The fused sum validates as it goes (row_family_log_prob_sum).
  if (sum_out) rows_log_prob_sum<B>(a, coef, o, true, *sum_out, dev, F::kName, &row_checks<F>());
  else rows_log_prob_grad<B>(a, g->data<float>(), coef, o, dev, F::kName);
  std::vector<Tensor> res(2);
  if (need[0] && gx.defined()) res[0] = sum_to_shape(gx, x.shape());
  if (need[1] && gp.defined()) res[1] = sum_to_shape(gp, p.shape());
  return res;
}

}  // namespace detail

// log_prob(x) of shape broadcast(x's batch shape, p's batch shape).
// `batch`: a batch shape the rows also broadcast to (a distribution expanded
// beyond its parameter's batch, which is then read broadcast, not copied).
template <class F>
Tensor row_family_log_prob(const Tensor& x, const Tensor& p, const Shape& batch = {}) {
  CUVI_CHECK(x.defined(), ValueError, F::kName << ".log_prob: undefined value" << detail::site_suffix());
  CUVI_CHECK(x.device() == p.device(), DeviceError,
             F::kName << ": value on " << x.device().str() << " and parameter on " << p.device().str()
                      << detail::site_suffix());
  const Shape xb = detail::row_value_batch<F>(x, p.size(-1));
  const Shape rows =
      broadcast_shapes(broadcast_shapes(xb, detail::drop_last_dim(p.shape()), F::kName), batch, F::kName);
  const auto a = detail::make_row_args(&x, xb, p, rows);
  Tensor out = Tensor::empty(rows, DType::kFloat32, p.device());
  // Validated inside the pass, each row just before its density.
  detail::rows_log_prob<kern::RowBody<F>>(a, out.data<float>(), p.device(), F::kName, &detail::row_checks<F>());
  const bool need_x = F::kValueEvent && grad_enabled() && x.requires_grad();
  const bool need_p = grad_enabled() && p.requires_grad();
  if (!need_x && !need_p) return out;
  Tensor xs = x.detach(), ps = p.detach();
  return cuvi::detail::record_fn(
      out, F::kName,
      [xs, xb, ps, rows](const Tensor& g, const std::vector<bool>& nd) {
        return detail::row_grads<F>(xs, xb, ps, rows, &g, 1.0f, nullptr, nd);
      },
      {x, p});
}

// coef * sum(log_prob(x)) as a 0-d tensor, the gradients written in the
// same pass (as family_log_prob_sum).
template <class F>
Tensor row_family_log_prob_sum(const Tensor& x, const Tensor& p, float coef, const Shape& batch = {}) {
  CUVI_CHECK(x.defined(), ValueError, F::kName << ".log_prob: undefined value" << detail::site_suffix());
  CUVI_CHECK(x.device() == p.device(), DeviceError,
             F::kName << ": value on " << x.device().str() << " and parameter on " << p.device().str()
                      << detail::site_suffix());
  const Device dev = p.device();
  const Shape xb = detail::row_value_batch<F>(x, p.size(-1));
  const Shape rows =
      broadcast_shapes(broadcast_shapes(xb, detail::drop_last_dim(p.shape()), F::kName), batch, F::kName);
  const auto a = detail::make_row_args(&x, xb, p, rows);
  // Validation happens inside the fused pass (rows_log_prob_sum).
  const std::vector<bool> need{F::kValueEvent && grad_enabled() && x.requires_grad(),
                               grad_enabled() && p.requires_grad()};
  Tensor out = Tensor::empty({}, DType::kFloat32, dev);
  if (!need[0] && !need[1]) {
    detail::rows_log_prob_sum<kern::RowBody<F>>(a, coef, kern::RowGrads{}, false, out, dev, F::kName,
                                                &detail::row_checks<F>());
    return out;
  }
  return detail::record_fused_sum(out, F::kName, detail::row_grads<F>(x, xb, p, rows, nullptr, coef, &out, need),
                                  {x, p});
}

// A draw of shape sample_shape + batch_shape: float rows (+ [K]) for
// kValueEvent families, differentiable in p when `reparam` and
// F::kHasRsample; int64 indices for the others (Categorical).
template <class F>
Tensor row_family_sample(const Tensor& p, const Shape& sample_shape, bool reparam, const Shape& batch = {}) {
  const Device dev = p.device();
  Shape rows = sample_shape;
  const Shape pb = broadcast_shapes(detail::drop_last_dim(p.shape()), batch, F::kName);
  rows.insert(rows.end(), pb.begin(), pb.end());
  Shape out_shape = rows;
  if constexpr (F::kValueEvent) out_shape.push_back(p.size(-1));
  const auto a = detail::make_row_args(nullptr, {}, p, rows);
  const bool grad = reparam && F::kHasRsample && grad_enabled() && p.requires_grad();
  // Value-event draws are float rows; index draws (Categorical) are int64.
  Tensor out = Tensor::empty(out_shape, F::kValueEvent ? DType::kFloat32 : DType::kInt64, dev);
  float* outf = F::kValueEvent ? out.data<float>() : nullptr;
  int64_t* outi = F::kValueEvent ? nullptr : out.data<int64_t>();
  Tensor aux = grad ? Tensor::empty(rows, DType::kFloat32, dev) : Tensor();
  float* auxp = grad ? aux.data<float>() : nullptr;
  const RngState s = next_rng();
  if (dev.is_cpu()) kern::cpu::row_sample<F>(a, s.seed, s.offset, outf, outi, auxp);
  else detail::row_cuda_ops<F>().sample(a, s.seed, s.offset, outf, outi, auxp, cuda_stream(dev.index));
  if (!grad) return out;
  Tensor xs = out.detach(), ps = p.detach();
  return cuvi::detail::record_fn(
      out, F::kName,
      [xs, ps, aux, rows](const Tensor& g, const std::vector<bool>& nd) {
        std::vector<Tensor> res(1);
        if (!nd[0]) return res;
        kern::RowArgs args = detail::make_row_args(nullptr, {}, ps, rows);
        args.x = xs.data<float>();
        Tensor gp = Tensor::empty(xs.shape(), DType::kFloat32, g.device());
        if (g.device().is_cpu()) kern::cpu::row_sample_grad<F>(args, aux.data<float>(), g.data<float>(), gp.data<float>());
        else
          detail::row_cuda_ops<F>().sample_grad(args, aux.data<float>(), g.data<float>(), gp.data<float>(),
                                                cuda_stream(g.device().index));
        res[0] = sum_to_shape(gp, ps.shape());
        return res;
      },
      {p});
}

}  // namespace cuvi::dist

namespace cuvi::dist {

// Checks the parameter rows alone (distribution construction).
template <class F>
void row_family_validate_params(const Tensor& p) {
  CUVI_CHECK(p.defined() && p.dim() >= 1, ShapeError,
             F::kName << ": " << F::param_name(0) << " needs at least 1 dim" << detail::site_suffix());
  CUVI_CHECK(p.dtype() == DType::kFloat32, DTypeError,
             F::kName << ": " << F::param_name(0) << " must be float32, got " << dtype_name(p.dtype())
                      << detail::site_suffix());
  CUVI_CHECK(p.size(-1) >= 1, ShapeError,
             F::kName << ": " << F::param_name(0) << " of shape " << shape_str(p.shape())
                      << " has an empty event dim (needs at least 1 category)" << detail::site_suffix());
  if (!validation_enabled()) return;
  const Shape rows = detail::drop_last_dim(p.shape());
  detail::row_validate<F>(detail::make_row_args(nullptr, {}, p, rows), false, p.device());
}

}  // namespace cuvi::dist
