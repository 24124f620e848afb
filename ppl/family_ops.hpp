// Tensor-level ops for an elementwise family F: validation, log_prob with its
// backward, the fused log-prob-sum of the ELBO, reparameterised sampling with
// its pathwise backward, moments. Templates, so that a user family gets them
// by instantiation; the CPU path runs the loops of kernels/dist/family.hpp,
// the CUDA path the kernels registered with CUVI_REGISTER_CUDA_FAMILY.
#pragma once

#include <array>
#include <functional>
#include <sstream>
#include <string>

#include "../kernels/dist/family.hpp"
#include "../runtime/cuda_context.hpp"
#include "../runtime/ops_util.hpp"
#include "../runtime/rng.hpp"

namespace cuvi {

namespace dist {

bool validation_enabled();
void set_validation(bool on);

// A distribution parameter: a tensor, or a float constant passed to kernels
// by value (never copied to a device).
struct Arg {
  Tensor t;
  float v = 0.0f;
  Arg(float x) : v(x) {}                       // NOLINT(implicit)
  Arg(double x) : v(static_cast<float>(x)) {}  // NOLINT(implicit)
  Arg(int x) : v(static_cast<float>(x)) {}     // NOLINT(implicit)
  Arg(const Tensor& x) : t(x) {}               // NOLINT(implicit)
  bool is_const() const { return !t.defined(); }
  Shape shape() const { return is_const() ? Shape{} : t.shape(); }
  Tensor as_tensor(Device dev) const { return is_const() ? full({}, v, dev) : t; }
};

namespace detail {

// The site being evaluated, for error messages (set by the primitives and
// the ELBO).
const std::string& current_site();
class SiteScope {
 public:
  explicit SiteScope(const std::string& name);
  ~SiteScope();

 private:
  std::string prev_;
};
std::string site_suffix();  // " (site 'x')" or ""

// Validation from tensor ops, without a host read: `ok` (0/1, any shape
// `value` broadcasts to) must be nonzero everywhere; else `message` (the
// site appended) with ", got <value>": at once on the cpu, at the next
// synchronisation on a GPU, so a step that constructs the distribution
// still never waits. No-op with validation off.
void check_values(const Tensor& ok, const Tensor& value, const std::string& message);
// The same for a range, in one pass over x (no mask): every element must
// satisfy (lo_open ? x > lo : x >= lo) and x <= hi.
void check_in_range(const Tensor& x, float lo, bool lo_open, float hi, const std::string& message);

// Codes of a distribution's deferred check messages (up to 8 parameter
// messages, then the value message) on a GPU, registered with the device's
// backend once per (kind, site, device) and then looked up without building
// a string: validation runs at every site of every SVI step. `kind`
// identifies the message set (the address of a per-family tag); make()
// returns the messages on a miss.
struct CheckCodes {
  int param[8] = {};
  int value = 0;
};
const CheckCodes& check_codes(Device dev, const void* kind, const std::function<std::vector<std::string>()>& make);
template <class T>
inline const char kCheckTag = 0;

// Registers the built-in families' CUDA kernels, once per process (a
// std::call_once, so threads meeting their first CUDA distribution together
// neither race on the registries nor pay more than an atomic load after).
void register_builtin_cuda_families();

template <class F>
const kern::FamilyCudaOps<F::kNumParams>& cuda_ops() {
  register_builtin_cuda_families();
  CUVI_CHECK(kern::FamilyRegistry<F>::cuda != nullptr, DeviceError,
             F::kName << ": no CUDA kernels are registered for this family; add CUVI_REGISTER_CUDA_FAMILY("
                      << F::kName << ") to a .cu file of the program");
  return *kern::FamilyRegistry<F>::cuda;
}

template <int NP>
Device params_device(const std::array<Arg, NP>& p, const Tensor* x, const char* name) {
  const Tensor* first = (x && x->defined()) ? x : nullptr;
  for (const Arg& a : p) {
    if (a.is_const()) continue;
    CUVI_CHECK(a.t.dtype() == DType::kFloat32, DTypeError,
               name << ": parameters must be float32, got " << dtype_name(a.t.dtype()) << site_suffix());
    if (!first) first = &a.t;
    CUVI_CHECK(a.t.device() == first->device(), DeviceError,
               name << ": parameter on " << a.t.device().str() << " and " << first->device().str() << site_suffix());
  }
  return first ? first->device() : default_device();
}

template <class F>
kern::FamilyArgs<F::kNumParams> make_args(const Tensor* x, const std::array<Arg, F::kNumParams>& p,
                                          const Shape& out_shape) {
  constexpr int NP = F::kNumParams;
  kern::FamilyArgs<NP> a;
  std::array<Shape, NP + 1> shapes;
  shapes[0] = (x && x->defined()) ? x->shape() : Shape{};
  for (int k = 0; k < NP; ++k) shapes[static_cast<size_t>(k + 1)] = p[static_cast<size_t>(k)].shape();
  std::array<const Shape*, NP + 1> ptrs;
  for (int k = 0; k <= NP; ++k) ptrs[static_cast<size_t>(k)] = &shapes[static_cast<size_t>(k)];
  a.geom = cuvi::detail::make_geom<NP + 1>(out_shape, ptrs);
  a.x = (x && x->defined()) ? x->data<float>() : nullptr;
  for (int k = 0; k < NP; ++k) {
    const Arg& arg = p[static_cast<size_t>(k)];
    a.p[k] = arg.is_const() ? nullptr : arg.t.data<float>();
    a.pval[k] = arg.v;
  }
  return a;
}

// Throws for a validation result r (0: valid; 1 + k: parameter k; -1: the
// value), naming the offending number.
template <class PM, class VM>
void throw_check(int r, float bad, PM&& param_msg, VM&& value_msg) {
  if (r > 0) CUVI_THROW(ValueError, param_msg(r - 1) << ", got " << bad);
  if (r < 0) CUVI_THROW(ValueError, value_msg() << ", got " << bad);
}

// The device side of a deferred validation: the backend's flag, the slot
// for the offending number, and the codes of `kind`'s messages
// (param_msg(k) for k < n_params, then value_msg()).
template <class PM, class VM>
kern::FamilyCheck device_check(Device dev, const void* kind, int n_params, PM&& param_msg, VM&& value_msg) {
  const CheckCodes& codes = check_codes(dev, kind, [&] {
    std::vector<std::string> m;
    for (int k = 0; k < n_params; ++k) m.push_back(param_msg(k));
    m.push_back(value_msg());
    return m;
  });
  Backend& b = backend(dev);
  kern::FamilyCheck c;
  c.flag = b.check_flag();
  c.bad = reinterpret_cast<float*>(c.flag + 1);
  for (int k = 0; k < n_params; ++k) c.param_code[k] = codes.param[k];
  c.value_code = codes.value;
  return c;
}

// The validation messages of family F (at the current site).
template <class F>
std::string param_msg(int k) {
  std::ostringstream os;
  os << F::kName << ": parameter " << F::param_name(k) << " is outside its constraint" << site_suffix();
  return os.str();
}
template <class F>
std::string value_msg() {
  std::ostringstream os;
  os << F::kName << ": value outside the support" << site_suffix();
  return os.str();
}

// The device side of F's deferred checks on `dev`.
template <class F>
kern::FamilyCheck family_device_check(Device dev) {
  return device_check(dev, &kCheckTag<F>, F::kNumParams, param_msg<F>, value_msg<F>);
}

template <class F>
void check_value_dtype(const Tensor* x) {
  if (x && x->defined())
    CUVI_CHECK(x->dtype() == DType::kFloat32, DTypeError,
               F::kName << ": values must be float32, got " << dtype_name(x->dtype()) << site_suffix());
}

template <class F>
void validate(const std::array<Arg, F::kNumParams>& p, const Tensor* x, const Shape& out_shape, Device dev) {
  if (!validation_enabled()) return;
  check_value_dtype<F>(x);
  const auto a = make_args<F>(x, p, out_shape);
  const bool values = x && x->defined();
  if (dev.is_cpu()) {
    float bad = 0;
    const int r = kern::cpu::validate<F>(a, values, &bad);
    throw_check(r, bad, param_msg<F>, value_msg<F>);
    return;
  }
  // On a GPU the check is queued: the error is raised at the next
  // synchronisation, naming the distribution, the argument and the site.
  cuda_ops<F>().validate(a, values, family_device_check<F>(dev), cuda_stream(dev.index));
}

template <int NP>
bool any_param_grad(const std::array<Arg, NP>& p) {
  if (!grad_enabled()) return false;
  for (const Arg& a : p)
    if (!a.is_const() && a.t.requires_grad()) return true;
  return false;
}

template <int NP>
std::vector<Tensor> tensor_inputs(const Tensor* x, const std::array<Arg, NP>& p) {
  std::vector<Tensor> in;
  in.push_back(x ? *x : Tensor());
  for (const Arg& a : p) in.push_back(a.t);
  return in;
}

// Per-element gradient buffers (out shape) for the inputs that need one:
// index 0 the value, k + 1 parameter k; wired into `o`.
template <int NP>
std::vector<Tensor> alloc_grads(const std::vector<bool>& need, const Shape& out_shape, Device dev,
                                kern::FamilyGrads<NP>* o) {
  std::vector<Tensor> full(NP + 1);
  for (int k = 0; k <= NP; ++k) {
    if (!need[static_cast<size_t>(k)]) continue;
    full[static_cast<size_t>(k)] = Tensor::empty(out_shape, DType::kFloat32, dev);
    if (k == 0) o->gx = full[0].data<float>();
    else o->gp[k - 1] = full[static_cast<size_t>(k)].data<float>();
  }
  return full;
}

// Sums each per-element gradient down to its input's shape.
template <int NP>
std::vector<Tensor> reduce_grads(std::vector<Tensor> full, const Shape& x_shape, const std::array<Arg, NP>& ps) {
  for (int k = 0; k <= NP; ++k) {
    Tensor& g = full[static_cast<size_t>(k)];
    if (g.defined()) g = sum_to_shape(g, k == 0 ? x_shape : ps[static_cast<size_t>(k - 1)].t.shape());
  }
  return full;
}

// Runs the per-element gradient pass and reduces each gradient to its
// input's shape.
template <class F>
std::vector<Tensor> family_grads(const Tensor& xs, const std::array<Arg, F::kNumParams>& ps, const Shape& out_shape,
                                 const Tensor& g, const std::vector<bool>& need) {
  constexpr int NP = F::kNumParams;
  const Device dev = g.device();
  const auto a = make_args<F>(&xs, ps, out_shape);
  kern::FamilyGrads<NP> o;
  std::vector<Tensor> full = alloc_grads<NP>(need, out_shape, dev, &o);
  if (dev.is_cpu()) kern::cpu::log_prob_grad<F>(a, g.data<float>(), 1.0f, nullptr, o);
  else cuda_ops<F>().log_prob_grad(a, g.data<float>(), 1.0f, nullptr, o, cuda_stream(dev.index));
  return reduce_grads<NP>(std::move(full), xs.shape(), ps);
}

// Records a fused log-prob-sum `out` whose gradients with respect to
// `inputs` were written by the forward pass: backward only rescales them by
// the upstream gradient, and not even that when the upstream is the loss
// root.
inline Tensor record_fused_sum(const Tensor& out, const char* name, std::vector<Tensor> grads,
                               std::vector<Tensor> inputs) {
  return cuvi::detail::record_fn(
      out, name,
      [grads = std::move(grads)](const Tensor& g, const std::vector<bool>& nd) {
        std::vector<Tensor> res(grads.size());
        const bool unit = is_unit_grad(g);
        for (size_t k = 0; k < grads.size(); ++k)
          if (nd[k] && grads[k].defined()) res[k] = unit ? grads[k] : grads[k] * g;
        return res;
      },
      std::move(inputs));
}

template <int NP>
std::array<Arg, NP> detached(const std::array<Arg, NP>& p) {
  std::array<Arg, NP> d = p;
  for (Arg& a : d)
    if (!a.is_const()) a.t = a.t.detach();
  return d;
}

}  // namespace detail

// log_prob(x) with out shape broadcast(x, batch_shape).
template <class F>
Tensor family_log_prob(const Tensor& x, const std::array<Arg, F::kNumParams>& p, const Shape& batch_shape) {
  CUVI_CHECK(x.defined(), ValueError, F::kName << ".log_prob: undefined value" << detail::site_suffix());
  const Device dev = detail::params_device<F::kNumParams>(p, &x, F::kName);
  const Shape out_shape = broadcast_shapes(x.shape(), batch_shape, F::kName);
  // Validation happens inside the pass: each element's parameters and value
  // are checked as they are loaded for the density.
  const bool check = validation_enabled();
  if (check) detail::check_value_dtype<F>(&x);
  Tensor out = Tensor::empty(out_shape, DType::kFloat32, dev);
  const auto a = detail::make_args<F>(&x, p, out_shape);
  if (dev.is_cpu()) {
    kern::FirstBad bad;
    kern::cpu::log_prob<F>(a, out.data<float>(), check ? &bad : nullptr);
    detail::throw_check(bad.r, bad.value, detail::param_msg<F>, detail::value_msg<F>);
  } else {
    const kern::FamilyCheck c = check ? detail::family_device_check<F>(dev) : kern::FamilyCheck{};
    detail::cuda_ops<F>().log_prob(a, out.data<float>(), check ? &c : nullptr, cuda_stream(dev.index));
  }
  const bool need = (grad_enabled() && x.requires_grad()) || detail::any_param_grad<F::kNumParams>(p);
  if (!need) return out;
  Tensor xs = x.detach();
  const auto ps = detail::detached<F::kNumParams>(p);
  return cuvi::detail::record_fn(
      out, F::kName,
      [xs, ps, out_shape](const Tensor& g, const std::vector<bool>& nd) {
        return detail::family_grads<F>(xs, ps, out_shape, g, nd);
      },
      detail::tensor_inputs<F::kNumParams>(&x, p));
}

// coef * sum(log_prob(x)) as a 0-d tensor, its gradients written in the same
// pass (DESIGN.md, fused ELBO gradients). Backward only rescales them by the
// upstream gradient, and not even that when the upstream is the loss root.
template <class F>
Tensor family_log_prob_sum(const Tensor& x, const std::array<Arg, F::kNumParams>& p, const Shape& batch_shape,
                           float coef) {
  constexpr int NP = F::kNumParams;
  CUVI_CHECK(x.defined(), ValueError, F::kName << ".log_prob: undefined value" << detail::site_suffix());
  const Device dev = detail::params_device<NP>(p, &x, F::kName);
  const Shape out_shape = broadcast_shapes(x.shape(), batch_shape, F::kName);
  // Validation happens inside the fused pass, on the elements it loads anyway.
  const bool check = validation_enabled();
  if (check) detail::check_value_dtype<F>(&x);
  const auto a = detail::make_args<F>(&x, p, out_shape);
  std::vector<bool> need(NP + 1, false);
  need[0] = grad_enabled() && x.requires_grad();
  for (int k = 0; k < NP; ++k) {
    const Arg& arg = p[static_cast<size_t>(k)];
    need[static_cast<size_t>(k + 1)] = grad_enabled() && !arg.is_const() && arg.t.requires_grad();
  }
  kern::FamilyGrads<NP> o;
  std::vector<Tensor> full = detail::alloc_grads<NP>(need, out_shape, dev, &o);
  Tensor out = Tensor::empty({}, DType::kFloat32, dev);
  if (dev.is_cpu()) {
    kern::FirstBad bad;
    *out.data<float>() = kern::cpu::log_prob_sum<F>(a, coef, o, check ? &bad : nullptr);
    detail::throw_check(bad.r, bad.value, detail::param_msg<F>, detail::value_msg<F>);
  } else {
    const kern::FamilyCheck c = check ? detail::family_device_check<F>(dev) : kern::FamilyCheck{};
    detail::cuda_ops<F>().log_prob_sum(a, coef, out.data<float>(), o, check ? &c : nullptr, cuda_stream(dev.index));
  }
  bool any = false;
  for (bool b : need) any = any || b;
  if (!any) return out;
  // Reduce broadcast parameters now: the gradient tensors are final.
  return detail::record_fused_sum(out, F::kName, detail::reduce_grads<NP>(std::move(full), x.shape(), p),
                                  detail::tensor_inputs<NP>(&x, p));
}

// A draw of shape `out_shape` (sample_shape + batch_shape); differentiable
// with respect to the parameters when `reparam` and F::kHasRsample.
template <class F>
Tensor family_sample(const std::array<Arg, F::kNumParams>& p, const Shape& out_shape, bool reparam) {
  constexpr int NP = F::kNumParams;
  const Device dev = detail::params_device<NP>(p, nullptr, F::kName);
  const auto a = detail::make_args<F>(nullptr, p, out_shape);
  Tensor out = Tensor::empty(out_shape, DType::kFloat32, dev);
  const RngState s = next_rng();
  if (dev.is_cpu()) kern::cpu::sample<F>(a, s.seed, s.offset, out.data<float>());
  else detail::cuda_ops<F>().sample(a, s.seed, s.offset, out.data<float>(), cuda_stream(dev.index));
  if (!(reparam && F::kHasRsample && detail::any_param_grad<NP>(p))) return out;
  Tensor xs = out.detach();
  const auto ps = detail::detached<NP>(p);
  std::vector<Tensor> inputs;
  for (const Arg& arg : p) inputs.push_back(arg.t);
  return cuvi::detail::record_fn(
      out, F::kName,
      [xs, ps, out_shape](const Tensor& g, const std::vector<bool>& nd) {
        const Device d = g.device();
        const auto args = detail::make_args<F>(&xs, ps, out_shape);
        kern::FamilyGrads<NP> o;
        std::vector<Tensor> full(NP);
        for (int k = 0; k < NP; ++k) {
          if (!nd[static_cast<size_t>(k)]) continue;
          full[static_cast<size_t>(k)] = Tensor::empty(out_shape, DType::kFloat32, d);
          o.gp[k] = full[static_cast<size_t>(k)].data<float>();
        }
        if (d.is_cpu()) kern::cpu::sample_grad<F>(args, g.data<float>(), o);
        else detail::cuda_ops<F>().sample_grad(args, g.data<float>(), o, cuda_stream(d.index));
        std::vector<Tensor> res(NP);
        for (int k = 0; k < NP; ++k)
          if (nd[static_cast<size_t>(k)])
            res[static_cast<size_t>(k)] = sum_to_shape(full[static_cast<size_t>(k)], ps[static_cast<size_t>(k)].t.shape());
        return res;
      },
      inputs);
}

template <class F>
Tensor family_moment(const std::array<Arg, F::kNumParams>& p, const Shape& batch_shape, bool variance) {
  const Device dev = detail::params_device<F::kNumParams>(p, nullptr, F::kName);
  const auto a = detail::make_args<F>(nullptr, p, batch_shape);
  Tensor out = Tensor::empty(batch_shape, DType::kFloat32, dev);
  float* m = variance ? nullptr : out.data<float>();
  float* v = variance ? out.data<float>() : nullptr;
  if (dev.is_cpu()) kern::cpu::moments<F>(a, m, v);
  else detail::cuda_ops<F>().moments(a, m, v, cuda_stream(dev.index));
  return out;
}

}  // namespace dist
}  // namespace cuvi
