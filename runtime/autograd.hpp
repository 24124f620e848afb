// Reverse-mode autodiff. Every differentiable op records a Node holding what
// its backward needs; Node edges point at the nodes that produced its inputs,
// or at the leaf tensors that accumulate gradients. backward() walks the
// recorded graph once in reverse topological order.
#pragma once

#include <memory>
#include <vector>

#include "tensor.hpp"

namespace cuvi {

struct Edge {
  std::shared_ptr<Node> fn;            // producer of a non-leaf input
  std::shared_ptr<TensorImpl> leaf;    // a leaf that requires grad
  Shape shape;                         // the input's shape (grads must match)
  bool active() const { return fn || leaf; }
};

class Node {
 public:
  virtual ~Node() = default;
  // One gradient per input edge, same order; undefined where none flows.
  virtual std::vector<Tensor> backward(const Tensor& grad_out) = 0;
  virtual const char* name() const = 0;
  std::vector<Edge> edges;
};

// Wires `out` to `node` if recording is on and any input requires grad.
// Returns out (for chaining).
Tensor record(Tensor out, std::shared_ptr<Node> node, std::initializer_list<const Tensor*> inputs);
Tensor record(Tensor out, std::shared_ptr<Node> node, const std::vector<Tensor>& inputs);
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);

// Runs backward from `root` with the given upstream gradient. `unit` says
// the gradient is exactly one (backward() of a scalar), so that nodes whose
// backward would only multiply by it (fused log-prob sums) can skip that.
void run_backward(const Tensor& root, const Tensor& grad, bool unit = false);
// Whether g is the unit root gradient of the backward pass in progress.
bool is_unit_grad(const Tensor& g);

}  // namespace cuvi
