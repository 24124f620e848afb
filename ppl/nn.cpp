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
