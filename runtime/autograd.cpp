#include "autograd.hpp"

#include <unordered_map>
#include <unordered_set>

#include "ops.hpp"

namespace cuvi {

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

namespace {
Edge edge_for(const Tensor& t) {
  Edge e;
  if (!t.defined() || !t.requires_grad()) return e;
  e.shape = t.shape();
  if (t.grad_fn()) e.fn = t.grad_fn();
  else e.leaf = t.impl_ptr();
  return e;
}

Tensor wire(Tensor out, std::shared_ptr<Node> node, const std::vector<const Tensor*>& inputs) {
  bool any = false;
  if (grad_enabled())
    for (const Tensor* t : inputs) any = any || (t && t->defined() && t->requires_grad());
  if (!any) return out;
  node->edges.clear();
  for (const Tensor* t : inputs) node->edges.push_back(t ? edge_for(*t) : Edge{});
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
  return out;
}
}  // namespace

Tensor record(Tensor out, std::shared_ptr<Node> node, std::initializer_list<const Tensor*> inputs) {
  return wire(std::move(out), std::move(node), std::vector<const Tensor*>(inputs));
}

Tensor record(Tensor out, std::shared_ptr<Node> node, const std::vector<Tensor>& inputs) {
  std::vector<const Tensor*> ptrs;
  for (const Tensor& t : inputs) ptrs.push_back(&t);
  return wire(std::move(out), std::move(node), ptrs);
}

namespace {
void accumulate_leaf(TensorImpl* leaf, const Tensor& g) {
  CUVI_CHECK(g.shape() == leaf->shape, ShapeError,
             "backward: gradient of shape " << shape_str(g.shape()) << " for a leaf of shape "
                                            << shape_str(leaf->shape));
  if (leaf->grad) leaf->grad = add(Tensor(leaf->grad), g).impl_ptr();
  else leaf->grad = g.impl_ptr();
}
}  // namespace

namespace {
thread_local const TensorImpl* t_unit_grad = nullptr;
struct UnitScope {
  const TensorImpl* prev;
  explicit UnitScope(const TensorImpl* g) : prev(t_unit_grad) { t_unit_grad = g; }
  ~UnitScope() { t_unit_grad = prev; }
};
}  // namespace

bool is_unit_grad(const Tensor& g) { return g.defined() && t_unit_grad != nullptr && g.impl() == t_unit_grad; }

void run_backward(const Tensor& root, const Tensor& grad, bool unit) {
  UnitScope unit_scope(unit ? grad.impl() : nullptr);
  CUVI_CHECK(root.requires_grad(), AutogradError,
             "backward: tensor of shape " << shape_str(root.shape())
                                          << " does not require grad (no parameter or requires_grad_ leaf "
                                             "contributed to it)");
  NoGradGuard no_grad;
  if (!root.grad_fn()) {
    accumulate_leaf(root.impl(), grad);
    return;
  }
  // Dependency counts over the graph reachable from the root.
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack{root.grad_fn().get()};
  std::unordered_set<Node*> seen{root.grad_fn().get()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->edges) {
      if (!e.fn) continue;
      ++deps[e.fn.get()];
      if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
    }
  }
  std::unordered_map<Node*, Tensor> grads;
  grads[root.grad_fn().get()] = grad;
  std::vector<Node*> ready{root.grad_fn().get()};
  // Keep nodes alive while processing even if tensors drop them.
  std::vector<std::shared_ptr<Node>> keep{root.grad_fn()};
  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    Tensor g;
    if (auto it = grads.find(n); it != grads.end()) {
      g = std::move(it->second);
      grads.erase(it);
    }
    // A node no gradient reached still releases its inputs' dependencies.
    std::vector<Tensor> in_grads = g.defined() ? n->backward(g) : std::vector<Tensor>(n->edges.size());
    CUVI_CHECK(in_grads.size() == n->edges.size(), AutogradError,
               "backward of " << n->name() << " returned " << in_grads.size() << " gradients for "
                              << n->edges.size() << " inputs");
    for (size_t i = 0; i < n->edges.size(); ++i) {
      const Edge& e = n->edges[i];
      const Tensor& gi = in_grads[i];
      if (e.fn) {
        Node* next = e.fn.get();
        if (gi.defined()) {
          CUVI_CHECK(gi.shape() == e.shape, ShapeError,
                     "backward of " << n->name() << ": gradient " << i << " has shape " << shape_str(gi.shape())
                                    << ", input has " << shape_str(e.shape));
          auto it = grads.find(next);
          if (it == grads.end() || !it->second.defined()) grads[next] = gi;
          else it->second = add(it->second, gi);
        }
        if (--deps[next] == 0) {
          keep.push_back(e.fn);
          ready.push_back(next);
        }
      } else if (e.leaf && gi.defined()) {
        accumulate_leaf(e.leaf.get(), gi);
      }
    }
  }
}

}  // namespace cuvi
