// Internal helpers shared by the tensor-level op files (not installed API).
#pragma once

#include <array>
#include <functional>
#include <initializer_list>
#include <vector>

#include "autograd.hpp"
#include "backend.hpp"
#include "ops.hpp"

namespace cuvi::detail {

// A tape node whose backward is a closure. `need[i]` says whether input i
// wants a gradient. Closures capture detached tensors only (capturing the
// output itself would make a reference cycle).
class FnNode final : public Node {
 public:
  using Fn = std::function<std::vector<Tensor>(const Tensor& g, const std::vector<bool>& need)>;
  FnNode(const char* name, Fn fn) : name_(name), fn_(std::move(fn)) {}
  std::vector<Tensor> backward(const Tensor& g) override {
    std::vector<bool> need(edges.size());
    for (size_t i = 0; i < edges.size(); ++i) need[i] = edges[i].active();
    return fn_(g, need);
  }
  const char* name() const override { return name_; }

 private:
  const char* name_;
  Fn fn_;
};

inline Tensor record_fn(Tensor out, const char* name, FnNode::Fn fn, std::initializer_list<const Tensor*> inputs) {
  if (!any_requires_grad(inputs)) return out;
  return record(std::move(out), std::make_shared<FnNode>(name, std::move(fn)), inputs);
}
inline Tensor record_fn(Tensor out, const char* name, FnNode::Fn fn, const std::vector<Tensor>& inputs) {
  bool any = false;
  if (grad_enabled())
    for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return out;
  return record(std::move(out), std::make_shared<FnNode>(name, std::move(fn)), inputs);
}

void check_float(const Tensor& t, const char* op);
void check_same_device(const Tensor& a, const Tensor& b, const char* op);
Shape contiguous_strides(const Shape& s);

template <int N>
kern::BcastGeom<N> make_geom(const Shape& out, const std::array<const Shape*, N>& ins) {
  // Each input is at most out's rank (out is their broadcast), so this one
  // check keeps every write below inside the geometry's arrays.
  CUVI_CHECK(out.size() <= static_cast<size_t>(kern::kMaxDims), ShapeError,
             "shape " << shape_str(out) << " has " << out.size() << " dims, more than the " << kern::kMaxDims
                      << " supported");
  kern::BcastGeom<N> g;
  g.ndim = static_cast<int>(out.size());
  g.n = shape_numel(out);
  for (int d = 0; d < g.ndim; ++d) g.size[d] = out[static_cast<size_t>(d)];
  for (int k = 0; k < N; ++k) {
    const Shape& s = *ins[static_cast<size_t>(k)];
    const Shape st = contiguous_strides(s);
    const int off = g.ndim - static_cast<int>(s.size());
    for (int d = 0; d < g.ndim; ++d) {
      const int sd = d - off;
      g.stride[k][d] = (sd < 0 || s[static_cast<size_t>(sd)] == 1) ? 0 : st[static_cast<size_t>(sd)];
    }
    g.kind[k] = (s == out) ? kern::InKind::kSame : (shape_numel(s) == 1 ? kern::InKind::kScalar : kern::InKind::kGeneral);
  }
  return g;
}

// Geometry for reducing `in` over the dims flagged in `reduce`.
kern::ReduceGeom make_reduce_geom(const Shape& in, const std::vector<bool>& reduce);

}  // namespace cuvi::detail
