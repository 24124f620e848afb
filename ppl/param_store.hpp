// The parameter store: named, constrained, learnable tensors (Pyro's
// ParamStoreDict). Each parameter is kept as an unconstrained float32 leaf
// that requires grad; param()/get() return its constrained value
// constraint->transform(leaf). Optimizers update the leaves
// (unconstrained(name)).
//
// Not thread-safe: one thread at a time may use a store, including the
// global param_store(). (Grad mode, which param() follows, is thread-local.)
//
// Save/load file format (version 1, all integers and floats little-endian):
//
//   magic       8 bytes  "CUVIPARM"
//   version     u32      1
//   n_params    u64
//   n_params times, in creation order:
//     name        str    (u32 byte count, then the bytes)
//     constraint  str    (Constraint::name(), e.g. "interval(-1, 2.5)")
//     tensor             the unconstrained leaf (dtype must be float32)
//   has_optimizer  u8    0 or 1; if 1, an OptimizerState:
//     optimizer   str
//     n           u64    params with tensors; each: name str, count u32,
//                        then count times (key str, tensor)
//     n           u64    params with scalars; each: name str, count u32,
//                        then count times (key str, f64)
//   checksum    u64      FNV-1a 64 of every byte before it
//
//   tensor: dtype u8 (0 float32, 1 int64), ndim u8 (<= 8), ndim x i64 dims
//           (each >= 0), then numel values (f32 or i64), row-major.
//
// The values saved are the unconstrained leaves, so a save/load round trip
// restores every leaf bit for bit (and optimizer state that refers to them
// stays valid).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ppl/constraints.hpp"
#include "runtime/tensor.hpp"

namespace cuvi {

// Optimizer state exported/imported by optimizers for save/load.
struct OptimizerState {
  std::string optimizer;                                          // e.g. "Adam"
  std::map<std::string, std::map<std::string, Tensor>> tensors;   // per param name: "exp_avg" -> tensor ...
  std::map<std::string, std::map<std::string, double>> scalars;   // per param name: "step" -> 12, "lr" -> ...
};

class ParamStore {
 public:
  // On the first call for `name`: evaluates init(), stores
  // c->inverse(init) as a fresh float32 leaf that requires grad, on init's
  // device. Later calls do not evaluate init (a lazy init may be costly or
  // draw random numbers) and return c->transform(leaf), recorded on the tape
  // when grad mode is on. A later call with a constraint of another name
  // throws ValueError naming the param and both constraints. A null c means
  // constraints::real. Discrete constraints throw ValueError.
  Tensor param(const std::string& name, const std::function<Tensor()>& init,
               const constraints::ConstraintPtr& c = constraints::real);
  // The same with an already computed init: also checks, on later calls,
  // that init has the shape of the stored (constrained) value, else
  // ValueError naming the param and both shapes.
  Tensor param(const std::string& name, const Tensor& init, const constraints::ConstraintPtr& c = constraints::real);
  // What param() does (create on the first call, the same checks on later
  // ones) but returns the unconstrained leaf itself, untransformed: for a
  // caller that transforms only part of it (the rows of a subsampled plate).
  // init_value, when given, is the Tensor init (and init is not used).
  Tensor declare(const std::string& name, const std::function<Tensor()>& init, const Tensor* init_value,
                 const constraints::ConstraintPtr& c = constraints::real);

  bool contains(const std::string& name) const;
  // The constrained value, not recorded on the tape and never sharing memory
  // with the leaf. ValueError "no param named ..." when absent (also for
  // unconstrained() and constraint()).
  Tensor get(const std::string& name) const;
  Tensor unconstrained(const std::string& name) const;  // the leaf itself
  constraints::ConstraintPtr constraint(const std::string& name) const;
  std::vector<std::string> names() const;  // creation order
  // Replaces the value with inverse(constrained_value) as a new leaf on the
  // value's device, keeping the constraint (and the position in names()).
  // An absent name is created with constraints::real.
  void set(const std::string& name, const Tensor& constrained_value);
  void erase(const std::string& name);  // no-op when absent
  void clear();
  // Every param created (by param(), declare(), set() of a new name, or a
  // load that adds it) gets the next creation number. A caller that must
  // undo what a failed evaluation added (SVI.step) notes creation_mark()
  // before and calls erase_created_since(mark) after the failure.
  uint64_t creation_mark() const { return next_serial_; }
  void erase_created_since(uint64_t mark);
  size_t size() const;

  // Writes the store (and *opt when given) to `path` atomically: the bytes
  // go to path + ".tmp.<pid>", are fsync'ed, and the temp file is renamed
  // over path. On any failure the temp file is removed, an existing file at
  // path is untouched, and IOError names the path. Values are copied to the
  // host here (the only place they are).
  void save(const std::string& path, const OptimizerState* opt = nullptr) const;

  // Reads and validates the whole file first (magic, version, every size
  // against the file length, checksum, constraint names, dims <= 8, value
  // counts, shapes valid for their constraints, no duplicate names), and only
  // then merges it into the store, as Pyro's load does: params in the file
  // replace same-named ones (as new leaves, keeping their place in names()),
  // new ones are appended in file order, others are kept. Values are created
  // on `device`, by default the device of an existing param of that name,
  // else the default device (default_device(), the cpu unless set);
  // optimizer tensors go where the param of their name goes.
  // *opt is set to the file's optimizer state (empty if it has none).
  // Any problem with the file, and (strict) a param in the store with the
  // same name but another shape or constraint, throws IOError naming the path
  // and the problem, leaving the store and *opt exactly as they were.
  void load(const std::string& path, OptimizerState* opt = nullptr, std::optional<Device> device = std::nullopt,
            bool strict = true);

 private:
  struct Entry {
    Tensor leaf;
    constraints::ConstraintPtr constraint;
    uint64_t serial = 0;  // creation number (see creation_mark)
  };
  const Entry& entry(const std::string& name, const char* what) const;
  Tensor create(const std::string& name, const Tensor& init, const constraints::ConstraintPtr& c);

  std::vector<std::string> order_;
  std::unordered_map<std::string, Entry> entries_;
  uint64_t next_serial_ = 1;
};

// The global store (one per process; not thread-safe, see above).
ParamStore& param_store();

}  // namespace cuvi
