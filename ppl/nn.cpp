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
