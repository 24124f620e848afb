// Neural-network building blocks (a small torch.nn) and the module()
// primitive (Pyro's pyro.module).
//
// A Module owns named parameters in registration order ("weight", "bias")
// and named children; named_parameters() lists them depth-first with the
// children's names prefixed as PyTorch does ("0.weight", "2.bias", ...).
// Parameters are float32 leaves that require grad, so a net is usable on its
// own with Tensor::backward().
//
// module(prefix, net) registers every parameter of net as a param site named
// prefix + "$$$" + name (Pyro's naming: pyro.params.param_with_module_name
// joins with "$$$", e.g. "decoder$$$0.weight"). The first call creates the
// store's leaves from the net's current values; every call then points the
// net's parameters at the values the param sites returned for this run (the
// store's leaves, or whatever a handler such as substitute put there), so
// gradients of anything the net computes reach the store's leaves and SVI's
// optimizer updates them. Optimizers update the leaves in place, so the net
// keeps seeing the current values between runs.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/ops.hpp"
#include "runtime/tensor.hpp"

namespace cuvi::nn {

enum class Activation { kNone, kRelu, kSoftplus, kSigmoid, kTanh };
const char* activation_name(Activation a);
// Applies an activation elementwise (kNone: identity).
Tensor activate(const Tensor& x, Activation a);

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
  virtual std::string name() const = 0;

  // Every parameter, depth-first in registration order, children's names
  // prefixed with "<child name>.".
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  // Replaces the parameter of that (dotted) name; the value must have the
  // registered shape (ShapeError otherwise, ValueError for an unknown name).
  void set_parameter(const std::string& name, const Tensor& value);
  // Moves every parameter to dev as a fresh leaf that requires grad. Call it
  // before the first module() call: afterwards the store owns the values,
  // and the next module() call points the net back at the store's leaves.
  Module& to(Device dev);
  // Drops the gradients of every parameter.
  void zero_grad();
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }

 protected:
  // Registers a parameter (made a float32 leaf that requires grad); returns
  // its index for param(i).
  size_t register_parameter(const std::string& name, const Tensor& value);
  void register_module(const std::string& name, std::shared_ptr<Module> m);
  const Tensor& param(size_t i) const { return params_[i].second; }

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const;
  Tensor* find(const std::string& name);

  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

using ModulePtr = std::shared_ptr<Module>;

// y = x W^T + b, W stored [out, in]; x [..., in] -> y [..., out].
// Initialised as torch.nn.Linear: W and b ~ U(-1/sqrt(in), 1/sqrt(in)),
// drawn with cuvi::rand (set_seed reproduces them).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Device dev = default_device());
  Tensor forward(const Tensor& x) override;
  std::string name() const override;
  const Tensor& weight() const { return param(0); }
  Tensor bias() const { return has_bias_ ? param(1) : Tensor(); }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

 private:
  int64_t in_, out_;
  bool has_bias_;
};

// An activation as a layer (no parameters).
class ActivationLayer : public Module {
 public:
  explicit ActivationLayer(Activation a) : a_(a) {}
  Tensor forward(const Tensor& x) override { return activate(x, a_); }
  std::string name() const override { return activation_name(a_); }
  Activation activation() const { return a_; }

 private:
  Activation a_;
};

// Runs its children in order; they are named "0", "1", ... as in
// torch.nn.Sequential.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<ModulePtr> layers);
  Sequential& push_back(ModulePtr layer);
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "Sequential"; }
  size_t size() const { return children().size(); }

 private:
  size_t n_ = 0;
};

// A multilayer perceptron: Linear(sizes[0], sizes[1]), hidden activation,
// ..., Linear(sizes[n-2], sizes[n-1]), then output_activation when it is not
// kNone. Activations are layers of their own, so the Linear layers are named
// "0", "2", "4", ... as in the equivalent torch.nn.Sequential.
std::shared_ptr<Sequential> mlp(const std::vector<int64_t>& sizes, Activation hidden = Activation::kRelu,
                                Activation output_activation = Activation::kNone, bool bias = true,
                                Device dev = default_device());

// y = x (W * mask)^T + b: a Linear whose weight is multiplied by a fixed
// 0/1 mask [out, in] (the mask is a constant, not a parameter), so the
// masked-out weights never affect the output and get zero gradient.
// Initialised as Linear (torch's bound 1/sqrt(in) over all in features).
class MaskedLinear : public Module {
 public:
  MaskedLinear(int64_t in_features, int64_t out_features, Tensor mask, Device dev = default_device());
  Tensor forward(const Tensor& x) override;
  std::string name() const override;
  const Tensor& weight() const { return param(0); }
  const Tensor& bias() const { return param(1); }
  const Tensor& mask() const { return mask_; }

 private:
  int64_t in_, out_;
  Tensor mask_;
};

// Recurrent layers as PyTorch's nn.RNN and nn.GRU with num_layers = 1, one
// direction and batch_first = true: x [B, T, input_size] -> outputs
// [B, T, hidden_size] (the state after each step) and the last state
// [B, hidden_size]; h0 [B, hidden_size] (or [1, B, hidden_size], PyTorch's
// layout; undefined: zeros). Parameters as PyTorch's, initialised
// U(-1/sqrt(H), 1/sqrt(H)): weight_ih_l0 [G H, I], weight_hh_l0 [G H, H],
// bias_ih_l0 and bias_hh_l0 [G H] (G = 1 for RNN, 3 for GRU, gates in
// PyTorch's order r, z, n). The input projection of all T steps is one
// matrix product; each step then adds h W_hh^T + b_hh (one product) and
// applies the cell:
//   RNN: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or relu;
//   GRU: r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z),
//        n = tanh(x_n + r * h_n), h' = (1 - z) n + z h
//        (x_* and h_* the gate's slices of the two projections, biases in).
// Sequences of different lengths in one batch: run them padded at the end
// (later steps never change earlier outputs); reverse_padded() reverses
// each within its length (Pyro's DMM runs its guide's RNN backwards so).
class RecurrentBase : public Module {
 public:
  // Outputs [B, T, H] (h0 = zeros).
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()).first; }
  // {outputs [B, T, H], last state [B, H]}.
  std::pair<Tensor, Tensor> forward(const Tensor& x, const Tensor& h0);
  using Module::operator();
  std::pair<Tensor, Tensor> operator()(const Tensor& x, const Tensor& h0) { return forward(x, h0); }
  int64_t input_size() const { return in_; }
  int64_t hidden_size() const { return hidden_; }

 protected:
  RecurrentBase(int64_t input_size, int64_t hidden_size, int64_t gates, bool bias, Device dev);
  // One step from the input projection xp [B, G H] and the state h [B, H].
  virtual Tensor cell(const Tensor& xp, const Tensor& h) const = 0;
  // h W_hh^T + b_hh.
  Tensor hidden_projection(const Tensor& h) const;
  std::string describe(const char* kind) const;
  int64_t in_, hidden_, gates_;
  bool bias_;
};

class RNN : public RecurrentBase {
 public:
  // nonlinearity: kTanh (PyTorch's default) or kRelu.
  RNN(int64_t input_size, int64_t hidden_size, Activation nonlinearity = Activation::kTanh, bool bias = true,
      Device dev = default_device());
  std::string name() const override;
  Activation nonlinearity() const { return act_; }

 protected:
  Tensor cell(const Tensor& xp, const Tensor& h) const override;

 private:
  Activation act_;
};

class GRU : public RecurrentBase {
 public:
  GRU(int64_t input_size, int64_t hidden_size, bool bias = true, Device dev = default_device());
  std::string name() const override;

 protected:
  Tensor cell(const Tensor& xp, const Tensor& h) const override;
};

// x [B, T, ...] with each row b's first lengths[b] steps reversed in place
// and its padding (steps >= lengths[b]) left where it is: Pyro's DMM's
// reverse_sequences / pad_and_reverse. lengths: int64 [B] (host or device
// tensor on x's device) with 1 <= lengths[b] <= T. One gather
// (index_select over B * T rows), differentiable in x. Its own inverse.
Tensor reverse_padded(const Tensor& x, const Tensor& lengths);

// A MADE (Germain et al. 2015), Pyro's AutoRegressiveNN: an MLP from x [...,
// D] to param_dims.size() outputs of shape [..., D * param_dims[k]] in which
// output i of every block depends only on the inputs that precede x_i in
// `permutation` (the order in which the D coordinates are generated).
//   Degrees: input permutation[r] has degree r + 1 (1..D); hidden unit k
//   of every layer has degree 1 + k mod max(D - 1, 1). A connection to a
//   hidden unit of degree m is kept from units of degree <= m, and a
//   connection to output i from hidden units of degree < degree(i). So the
//   first coordinate of the order gets constant outputs (its biases), and
//   the Jacobian of every output with respect to x is strictly triangular
//   in the order.
// Layers: MaskedLinear children "layers.0", "layers.1", ... (the last one
// the output layer, D * sum(param_dims) units laid out block by block),
// with `nonlinearity` between them (ReLU, as Pyro's default).
// Empty hidden_dims: Pyro's default [3 D + 1]; empty permutation: identity.
struct AutoRegressiveNNOptions {
  std::vector<int64_t> param_dims = {1, 1};
  std::vector<int64_t> permutation = {};
  Activation nonlinearity = Activation::kRelu;
};

class AutoRegressiveNN : public Module {
 public:
  AutoRegressiveNN(int64_t input_dim, std::vector<int64_t> hidden_dims = {}, AutoRegressiveNNOptions o = {},
                   Device dev = default_device());
  // The concatenated output [..., D * sum(param_dims)].
  Tensor forward(const Tensor& x) override;
  // The output split into its blocks: block k is [..., D * param_dims[k]],
  // column j * D + i holding the block's j-th value for coordinate i.
  std::vector<Tensor> params(const Tensor& x);
  std::string name() const override;
  int64_t input_dim() const { return d_; }
  const std::vector<int64_t>& hidden_dims() const { return hidden_; }
  const std::vector<int64_t>& permutation() const { return perm_; }
  // Degree (1..D) of each input coordinate.
  const std::vector<int64_t>& input_degrees() const { return degree_; }

 private:
  int64_t d_;
  std::vector<int64_t> hidden_, perm_, degree_;
  AutoRegressiveNNOptions o_;
  std::vector<std::shared_ptr<MaskedLinear>> layers_;
};

}  // namespace cuvi::nn

namespace cuvi {

// The separator Pyro puts between a module's name and its parameter names.
inline constexpr const char* kModuleNameSeparator = "$$$";

// pyro.module: see the top of this file. Returns net.
nn::Module& module(const std::string& prefix, nn::Module& net);
template <class M>
std::shared_ptr<M> module(const std::string& prefix, const std::shared_ptr<M>& net) {
  ::cuvi::module(prefix, static_cast<nn::Module&>(*net));
  return net;
}

}  // namespace cuvi
