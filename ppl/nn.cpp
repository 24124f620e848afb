#include "ppl/nn.hpp"

#include <cmath>

#include "ppl/poutine.hpp"
#include "runtime/error.hpp"

namespace cuvi::nn {

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kNone: return "Identity";
    case Activation::kRelu: return "ReLU";
    case Activation::kSoftplus: return "Softplus";
    case Activation::kSigmoid: return "Sigmoid";
    case Activation::kTanh: return "Tanh";
  }
  return "?";
}

Tensor activate(const Tensor& x, Activation a) {
  switch (a) {
    case Activation::kNone: return x;
    case Activation::kRelu: return relu(x);
    case Activation::kSoftplus: return softplus(x);
    case Activation::kSigmoid: return sigmoid(x);
    case Activation::kTanh: return tanh(x);
  }
  CUVI_CHECK(false, ValueError, "nn: unknown activation " << static_cast<int>(a));
  return x;
}

// ---- Module --------------------------------------------------------------------

size_t Module::register_parameter(const std::string& name, const Tensor& value) {
  CUVI_CHECK(value.defined(), ValueError, "nn: parameter '" << name << "' is an undefined tensor");
  CUVI_CHECK(name.find('.') == std::string::npos, ValueError,
             "nn: parameter name '" << name << "' must not contain '.'");
  for (const auto& p : params_)
    CUVI_CHECK(p.first != name, ValueError, "nn: parameter '" << name << "' registered twice");
  Tensor leaf = value.to_float().detach();
  leaf.requires_grad_(true);
  params_.emplace_back(name, leaf);
  return params_.size() - 1;
}

void Module::register_module(const std::string& name, std::shared_ptr<Module> m) {
  CUVI_CHECK(m != nullptr, ValueError, "nn: child module '" << name << "' is null");
  for (const auto& c : children_)
    CUVI_CHECK(c.first != name, ValueError, "nn: child module '" << name << "' registered twice");
  children_.emplace_back(name, std::move(m));
}

void Module::collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& p : params_) out.emplace_back(prefix + p.first, p.second);
  for (const auto& c : children_) c.second->collect(prefix + c.first + ".", out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& p : named_parameters()) out.push_back(p.second);
  return out;
}

Tensor* Module::find(const std::string& name) {
  for (auto& p : params_)
    if (p.first == name) return &p.second;
  const auto dot = name.find('.');
  if (dot == std::string::npos) return nullptr;
  const std::string head = name.substr(0, dot);
  for (auto& c : children_)
    if (c.first == head) return c.second->find(name.substr(dot + 1));
  return nullptr;
}

void Module::set_parameter(const std::string& name, const Tensor& value) {
  Tensor* slot = find(name);
  CUVI_CHECK(slot != nullptr, ValueError, "nn: " << this->name() << " has no parameter named '" << name << "'");
  CUVI_CHECK(value.defined(), ValueError, "nn: parameter '" << name << "' set to an undefined tensor");
  CUVI_CHECK(value.shape() == slot->shape(), ShapeError,
             "nn: parameter '" << name << "' has shape " << shape_str(slot->shape()) << " but was set to shape "
                               << shape_str(value.shape()));
  *slot = value;
}

Module& Module::to(Device dev) {
  for (auto& p : params_) {
    Tensor leaf = p.second.detach().to(dev).detach();
    leaf.requires_grad_(true);
    p.second = leaf;
  }
  for (auto& c : children_) c.second->to(dev);
  return *this;
}

void Module::zero_grad() {
  for (auto& p : params_) p.second.zero_grad();
  for (auto& c : children_) c.second->zero_grad();
}

// ---- Linear --------------------------------------------------------------------

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, Device dev)
    : in_(in_features), out_(out_features), has_bias_(bias) {
  CUVI_CHECK(in_features > 0 && out_features > 0, ValueError,
             "nn.Linear: sizes must be positive, got in " << in_features << ", out " << out_features);
  // torch.nn.Linear.reset_parameters: kaiming_uniform_(a = sqrt(5)) on the
  // weight is U(-1/sqrt(in), 1/sqrt(in)), and the bias uses the same bound.
  const float bound = 1.0f / std::sqrt(static_cast<float>(in_features));
  NoGradGuard ng;
  register_parameter("weight", (rand({out_features, in_features}, dev) * 2.0f - 1.0f) * bound);
  if (bias) register_parameter("bias", (rand({out_features}, dev) * 2.0f - 1.0f) * bound);
}

Tensor Linear::forward(const Tensor& x) {
  CUVI_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == in_, ShapeError,
             "nn.Linear(" << in_ << ", " << out_ << "): input of shape "
                          << (x.defined() ? shape_str(x.shape()) : std::string("<undefined>")) << " does not end in "
                          << in_);
  return has_bias_ ? linear(x, weight(), param(1)) : linear(x, weight());
}

std::string Linear::name() const {
  return "Linear(in_features=" + std::to_string(in_) + ", out_features=" + std::to_string(out_) +
         ", bias=" + (has_bias_ ? "True" : "False") + ")";
}

// ---- Sequential ------------------------------------------------------------------

Sequential::Sequential(std::vector<ModulePtr> layers) {
  for (auto& l : layers) push_back(std::move(l));
}

Sequential& Sequential::push_back(ModulePtr layer) {
  register_module(std::to_string(n_++), std::move(layer));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& c : children()) y = c.second->forward(y);
  return y;
}

std::shared_ptr<Sequential> mlp(const std::vector<int64_t>& sizes, Activation hidden, Activation output_activation,
                                bool bias, Device dev) {
  CUVI_CHECK(sizes.size() >= 2, ValueError, "nn.mlp: needs at least an input and an output size, got "
                                                << sizes.size() << " sizes");
  auto net = std::make_shared<Sequential>();
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    net->push_back(std::make_shared<Linear>(sizes[i], sizes[i + 1], bias, dev));
    const bool last = i + 2 == sizes.size();
    const Activation a = last ? output_activation : hidden;
    if (a != Activation::kNone) net->push_back(std::make_shared<ActivationLayer>(a));
  }
  return net;
}

// ---- MaskedLinear / AutoRegressiveNN ----------------------------------------------

MaskedLinear::MaskedLinear(int64_t in_features, int64_t out_features, Tensor mask, Device dev)
    : in_(in_features), out_(out_features) {
  CUVI_CHECK(in_features > 0 && out_features > 0, ValueError,
             "nn.MaskedLinear: sizes must be positive, got in " << in_features << ", out " << out_features);
  CUVI_CHECK(mask.defined() && mask.shape() == Shape({out_features, in_features}), ShapeError,
             "nn.MaskedLinear(" << in_features << ", " << out_features << "): mask must have shape "
                                << shape_str({out_features, in_features}) << ", got "
                                << (mask.defined() ? shape_str(mask.shape()) : std::string("<undefined>")));
  mask_ = mask.to_float().detach().to(dev).detach();
  const float bound = 1.0f / std::sqrt(static_cast<float>(in_features));
  NoGradGuard ng;
  register_parameter("weight", (rand({out_features, in_features}, dev) * 2.0f - 1.0f) * bound);
  register_parameter("bias", (rand({out_features}, dev) * 2.0f - 1.0f) * bound);
}

Tensor MaskedLinear::forward(const Tensor& x) {
  CUVI_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == in_, ShapeError,
             "nn.MaskedLinear(" << in_ << ", " << out_ << "): input of shape "
                                << (x.defined() ? shape_str(x.shape()) : std::string("<undefined>"))
                                << " does not end in " << in_);
  return linear(x, weight() * mask_, bias());
}

std::string MaskedLinear::name() const {
  return "MaskedLinear(in_features=" + std::to_string(in_) + ", out_features=" + std::to_string(out_) + ")";
}

AutoRegressiveNN::AutoRegressiveNN(int64_t input_dim, std::vector<int64_t> hidden_dims, AutoRegressiveNNOptions o,
                                   Device dev)
    : d_(input_dim), hidden_(std::move(hidden_dims)), perm_(std::move(o.permutation)), o_(std::move(o)) {
  CUVI_CHECK(d_ > 0, ValueError, "nn.AutoRegressiveNN: input_dim must be positive, got " << d_);
  if (hidden_.empty()) hidden_ = {3 * d_ + 1};
  for (int64_t h : hidden_)
    CUVI_CHECK(h > 0, ValueError, "nn.AutoRegressiveNN: hidden sizes must be positive, got " << h);
  CUVI_CHECK(!o_.param_dims.empty(), ValueError, "nn.AutoRegressiveNN: param_dims is empty");
  int64_t outputs = 0;
  for (int64_t p : o_.param_dims) {
    CUVI_CHECK(p > 0, ValueError, "nn.AutoRegressiveNN: param_dims entries must be positive, got " << p);
    outputs += p;
  }
  if (perm_.empty())
    for (int64_t i = 0; i < d_; ++i) perm_.push_back(i);
  CUVI_CHECK(static_cast<int64_t>(perm_.size()) == d_, ValueError,
             "nn.AutoRegressiveNN: permutation has " << perm_.size() << " entries for input_dim " << d_);
  degree_.assign(d_, 0);
  for (int64_t r = 0; r < d_; ++r) {
    const int64_t i = perm_[r];
    CUVI_CHECK(i >= 0 && i < d_ && degree_[i] == 0, ValueError,
               "nn.AutoRegressiveNN: permutation is not a permutation of 0.." << d_ - 1 << " (entry " << i << ")");
    degree_[i] = r + 1;
  }
  // Masks built on the host, then each layer copies its own to dev.
  auto hidden_degrees = [&](int64_t h) {
    std::vector<int64_t> m(h);
    const int64_t span = std::max<int64_t>(d_ - 1, 1);
    for (int64_t k = 0; k < h; ++k) m[k] = 1 + k % span;
    return m;
  };
  // The layers live in a container child "layers" (named "0", "1", ...), so
  // their parameters are "layers.0.weight", ... as under torch's ModuleList.
  auto container = std::make_shared<Sequential>();
  std::vector<int64_t> prev = degree_;
  for (size_t l = 0; l <= hidden_.size(); ++l) {
    const bool out_layer = l == hidden_.size();
    std::vector<int64_t> cur;
    if (out_layer) {
      for (int64_t j = 0; j < outputs; ++j) cur.insert(cur.end(), degree_.begin(), degree_.end());
    } else {
      cur = hidden_degrees(hidden_[l]);
    }
    const int64_t in = static_cast<int64_t>(prev.size()), out = static_cast<int64_t>(cur.size());
    std::vector<float> mask(static_cast<size_t>(in * out));
    for (int64_t a = 0; a < out; ++a)
      for (int64_t b = 0; b < in; ++b)
        mask[static_cast<size_t>(a * in + b)] = (out_layer ? cur[a] > prev[b] : cur[a] >= prev[b]) ? 1.0f : 0.0f;
    auto layer = std::make_shared<MaskedLinear>(in, out, tensor(mask, {out, in}, Device::cpu()), dev);
    container->push_back(layer);
    layers_.push_back(layer);
    prev = std::move(cur);
  }
  register_module("layers", container);
}

Tensor AutoRegressiveNN::forward(const Tensor& x) {
  CUVI_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == d_, ShapeError,
             "nn.AutoRegressiveNN(" << d_ << "): input of shape "
                                    << (x.defined() ? shape_str(x.shape()) : std::string("<undefined>"))
                                    << " does not end in " << d_);
  Tensor h = x;
  for (size_t l = 0; l < layers_.size(); ++l) {
    h = layers_[l]->forward(h);
    if (l + 1 < layers_.size()) h = activate(h, o_.nonlinearity);
  }
  return h;
}

std::vector<Tensor> AutoRegressiveNN::params(const Tensor& x) {
  const Tensor out = forward(x);
  std::vector<Tensor> blocks;
  int64_t off = 0;
  for (int64_t p : o_.param_dims) {
    blocks.push_back(narrow(out, -1, off, p * d_));
    off += p * d_;
  }
  return blocks;
}

std::string AutoRegressiveNN::name() const {
  std::string h;
  for (int64_t v : hidden_) h += (h.empty() ? "" : ", ") + std::to_string(v);
  return "AutoRegressiveNN(input_dim=" + std::to_string(d_) + ", hidden_dims=[" + h + "])";
}

}  // namespace cuvi::nn

namespace cuvi {

nn::Module& module(const std::string& prefix, nn::Module& net) {
  CUVI_CHECK(!prefix.empty(), ValueError, "module: the prefix (Pyro's module name) must not be empty");
  for (const auto& [pname, value] : net.named_parameters()) {
    const std::string site = prefix + kModuleNameSeparator + pname;
    // The store copies the init into its own leaf on the first call; later
    // calls only check the shape and return the store's value (no re-init).
    Tensor v = param(site, value.detach());
    if (v.impl() != value.impl()) net.set_parameter(pname, v);
  }
  return net;
}

}  // namespace cuvi

// ---- recurrent layers ---------------------------------------------------------------

namespace cuvi::nn {

RecurrentBase::RecurrentBase(int64_t input_size, int64_t hidden_size, int64_t gates, bool bias, Device dev)
    : in_(input_size), hidden_(hidden_size), gates_(gates), bias_(bias) {
  CUVI_CHECK(input_size > 0 && hidden_size > 0, ValueError,
             "nn: a recurrent layer needs positive sizes, got input_size " << input_size << ", hidden_size "
                                                                           << hidden_size);
  // torch.nn.RNNBase.reset_parameters: every weight and bias U(-k, k), k = 1/sqrt(H).
  const float k = 1.0f / std::sqrt(static_cast<float>(hidden_size));
  const int64_t g = gates * hidden_size;
  NoGradGuard ng;
  register_parameter("weight_ih_l0", (rand({g, input_size}, dev) * 2.0f - 1.0f) * k);
  register_parameter("weight_hh_l0", (rand({g, hidden_size}, dev) * 2.0f - 1.0f) * k);
  if (bias) {
    register_parameter("bias_ih_l0", (rand({g}, dev) * 2.0f - 1.0f) * k);
    register_parameter("bias_hh_l0", (rand({g}, dev) * 2.0f - 1.0f) * k);
  }
}

Tensor RecurrentBase::hidden_projection(const Tensor& h) const {
  return bias_ ? linear(h, param(1), param(3)) : linear(h, param(1));
}

std::pair<Tensor, Tensor> RecurrentBase::forward(const Tensor& x, const Tensor& h0) {
  const std::string who = name();
  CUVI_CHECK(x.defined() && x.dim() == 3 && x.size(2) == in_, ShapeError,
             who << ": input of shape " << (x.defined() ? shape_str(x.shape()) : std::string("<undefined>"))
                 << " is not [batch, time, " << in_ << "] (batch_first)");
  const int64_t b = x.size(0), t_max = x.size(1);
  CUVI_CHECK(t_max > 0, ShapeError, who << ": input of shape " << shape_str(x.shape()) << " has no time steps");
  Tensor h;
  if (h0.defined()) {
    const bool ok = (h0.dim() == 2 && h0.size(0) == b && h0.size(1) == hidden_) ||
                    (h0.dim() == 3 && h0.size(0) == 1 && h0.size(1) == b && h0.size(2) == hidden_);
    CUVI_CHECK(ok, ShapeError,
               who << ": h0 of shape " << shape_str(h0.shape()) << " is neither [" << b << ", " << hidden_
                   << "] nor [1, " << b << ", " << hidden_ << "] for an input of shape " << shape_str(x.shape()));
    h = h0.dim() == 3 ? squeeze(h0, 0) : h0;
  } else {
    h = zeros({b, hidden_}, x.device());
  }
  // All T input projections in one product: [B, T, G H].
  const Tensor xp = bias_ ? linear(x, param(0), param(2)) : linear(x, param(0));
  std::vector<Tensor> outs;
  outs.reserve(static_cast<size_t>(t_max));
  for (int64_t t = 0; t < t_max; ++t) {
    h = cell(squeeze(narrow(xp, 1, t, 1), 1), h);
    outs.push_back(h);
  }
  return {stack(outs, 1), h};
}

std::string RecurrentBase::describe(const char* kind) const {
  return std::string(kind) + "(" + std::to_string(in_) + ", " + std::to_string(hidden_) +
         (bias_ ? "" : ", bias=False") + ", batch_first=True";
}

RNN::RNN(int64_t input_size, int64_t hidden_size, Activation nonlinearity, bool bias, Device dev)
    : RecurrentBase(input_size, hidden_size, 1, bias, dev), act_(nonlinearity) {
  CUVI_CHECK(nonlinearity == Activation::kTanh || nonlinearity == Activation::kRelu, ValueError,
             "nn.RNN: nonlinearity must be tanh or relu, got " << activation_name(nonlinearity));
}

std::string RNN::name() const {
  return describe("RNN") + (act_ == Activation::kRelu ? ", nonlinearity='relu')" : ")");
}

Tensor RNN::cell(const Tensor& xp, const Tensor& h) const { return activate(xp + hidden_projection(h), act_); }

GRU::GRU(int64_t input_size, int64_t hidden_size, bool bias, Device dev)
    : RecurrentBase(input_size, hidden_size, 3, bias, dev) {}

std::string GRU::name() const { return describe("GRU") + ")"; }

Tensor GRU::cell(const Tensor& xp, const Tensor& h) const {
  const int64_t hs = hidden_;
  const Tensor hp = hidden_projection(h);
  const Tensor r = sigmoid(narrow(xp, 1, 0, hs) + narrow(hp, 1, 0, hs));
  const Tensor z = sigmoid(narrow(xp, 1, hs, hs) + narrow(hp, 1, hs, hs));
  const Tensor n = tanh(narrow(xp, 1, 2 * hs, hs) + r * narrow(hp, 1, 2 * hs, hs));
  return n + z * (h - n);  // (1 - z) n + z h
}

Tensor reverse_padded(const Tensor& x, const Tensor& lengths) {
  CUVI_CHECK(x.defined() && x.dim() >= 2, ShapeError,
             "nn::reverse_padded: x of shape " << (x.defined() ? shape_str(x.shape()) : std::string("<undefined>"))
                                               << " is not [batch, time, ...]");
  const int64_t b = x.size(0), t_max = x.size(1);
  CUVI_CHECK(lengths.defined() && lengths.dim() == 1 && lengths.size(0) == b, ShapeError,
             "nn::reverse_padded: lengths of shape "
                 << (lengths.defined() ? shape_str(lengths.shape()) : std::string("<undefined>"))
                 << " is not [" << b << "] for x of shape " << shape_str(x.shape()));
  if (lengths.device().is_cpu()) {  // on the host the check is free; on a device it would wait for it
    const std::vector<float> l = lengths.to_float().to_vector();
    for (int64_t i = 0; i < b; ++i)
      CUVI_CHECK(l[static_cast<size_t>(i)] >= 1 && l[static_cast<size_t>(i)] <= static_cast<float>(t_max),
                 ValueError,
                 "nn::reverse_padded: lengths[" << i << "] = " << l[static_cast<size_t>(i)] << " is not in [1, "
                                                << t_max << "]");
  }
  const Device dev = x.device();
  CUVI_CHECK(b * t_max < (int64_t{1} << 24), ValueError,
             "nn::reverse_padded: " << b << " x " << t_max << " rows is more than 2^24");
  const Tensor idx = [&] {
    // Row index b T + (t < L_b ? L_b - 1 - t : t), in float32 (exact below 2^24 rows).
    NoGradGuard ng;
    const Tensor t = reshape(arange(t_max, dev), {1, t_max});
    const Tensor len = reshape(lengths.to(dev).to_float(), {b, 1});
    const Tensor within = where(lt(t, len), len - 1.0f - t, t + 0.0f * len);
    const Tensor rows = within + reshape(arange(b, dev), {b, 1}) * static_cast<float>(t_max);
    return reshape(rows, {b * t_max}).to_int64();
  }();
  Shape flat = x.shape();
  flat.erase(flat.begin());
  flat[0] = b * t_max;
  return reshape(index_select(reshape(x, flat), 0, idx), x.shape());
}

}  // namespace cuvi::nn
