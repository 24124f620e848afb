// Data-parallel SVI: the single-rank communicator, tensor helpers and
// DistributedOptimizer (transport-independent; MPI and NCCL live in
// parallel_mpi.cpp and parallel_nccl.cpp).
#include "parallel.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <sstream>

#include "../runtime/backend.hpp"
#include "../runtime/ops.hpp"

namespace cuvi::parallel {

namespace {

class SelfCommunicator final : public Communicator {
 public:
  std::string name() const override { return "self"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void max_host(std::vector<int64_t>&) override {}
  std::vector<int64_t> all_gather_host(const std::vector<int64_t>& v) override { return v; }
  void sum(float*, int64_t, Device) override {}
  void broadcast(void*, int64_t, Device, int root) override {
    CUVI_CHECK(root == 0, ValueError, "broadcast: root " << root << " is not a rank of 1");
  }
  void all_gather_v(const void* in, void* out, const std::vector<int64_t>& bytes, Device dev) override {
    CUVI_CHECK(bytes.size() == 1, ValueError, "all_gather_v: " << bytes.size() << " counts for 1 rank");
    if (bytes[0] > 0 && in != out) backend(dev).copy_d2d(out, in, static_cast<size_t>(bytes[0]));
  }
};

void check_float(const Tensor& t, const char* op) {
  CUVI_CHECK(t.defined() && t.dtype() == DType::kFloat32, ValueError,
             "parallel::" << op << ": needs a defined float32 tensor");
}

}  // namespace

CommPtr self() {
  static const CommPtr c = std::make_shared<SelfCommunicator>();
  return c;
}

Tensor all_reduce_sum(const Tensor& t, Communicator& comm) {
  check_float(t, "all_reduce_sum");
  Tensor out = t.detach().clone();
  comm.sum(out.data<float>(), out.numel(), out.device());
  return out;
}

Tensor all_reduce_mean(const Tensor& t, Communicator& comm) {
  NoGradGuard ng;
  return all_reduce_sum(t, comm) / static_cast<float>(comm.size());
}

void broadcast_(const Tensor& t, Communicator& comm, int root) {
  CUVI_CHECK(t.defined(), ValueError, "parallel::broadcast_: undefined tensor");
  const int64_t elem = t.dtype() == DType::kInt64 ? 8 : 4;
  comm.broadcast(t.data<void>(), t.numel() * elem, t.device(), root);
}

}  // namespace cuvi::parallel

namespace cuvi::optim {

namespace {

using Entry = const std::pair<std::string, Tensor>*;

// FNV-1a over the names and shapes, folded to 62 bits (so that its
// negation fits the max-only header exchange).
int64_t signature(const std::vector<Entry>& ps) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ull;
  };
  for (Entry e : ps) {
    mix(e->first.data(), e->first.size() + 1);
    for (int64_t d : e->second.shape()) mix(&d, sizeof d);
    const int64_t end = -1;
    mix(&end, sizeof end);
  }
  return static_cast<int64_t>(h >> 2);
}

// The dim every row-sparse part of p lies along, or -1 (parts along
// several dims, or a dense gradient too, or none).
int64_t rows_dim(const Tensor& p) {
  const auto& parts = p.row_grads();
  if (parts.empty() || p.impl()->grad != nullptr) return -1;
  for (const RowGrad& r : parts)
    if (r.dim != parts.front().dim) return -1;
  return parts.front().dim;
}

// t with dims 0 and d swapped (a copy unless d is 0).
Tensor swap_first(const Tensor& t, int64_t d) { return d == 0 ? t : t.transpose(0, d); }

// The one device of the params es (a ValueError naming two that differ).
Device common_device(const std::vector<Entry>& es) {
  const Device dev = es.front()->second.device();
  for (Entry e : es)
    CUVI_CHECK(e->second.device() == dev, ValueError,
               "DistributedOptimizer: parameters on two devices (" << es.front()->first << " on " << dev.str() << ", "
                                                                   << e->first << " on "
                                                                   << e->second.device().str() << ")");
  return dev;
}

bool has_grad(const Tensor& p) { return p.impl()->grad != nullptr || !p.row_grads().empty(); }

}  // namespace

DistributedOptimizer::DistributedOptimizer(const Optimizer& inner, parallel::CommPtr comm)
    : inner_(inner.clone()), comm_(std::move(comm)) {
  CUVI_CHECK(comm_ != nullptr, ValueError, "DistributedOptimizer: no communicator");
}

DistributedOptimizer::DistributedOptimizer(const DistributedOptimizer& o)
    : Optimizer(o), inner_(o.inner_->clone()), comm_(o.comm_), seen_(o.seen_), reduced_(false) {}

void DistributedOptimizer::reduce_gradients(const NamedParams& params, bool failed_here) {
  const int W = comm_->size(), R = comm_->rank();
  std::vector<Entry> ps;
  for (const auto& e : params) ps.push_back(&e);
  std::sort(ps.begin(), ps.end(), [](Entry a, Entry b) { return a->first < b->first; });

  // 1. Did any rank fail, and do all run the same parameters? One exchange
  //    of a fixed size, whatever state the rank is in.
  const int64_t n = failed_here ? 0 : static_cast<int64_t>(ps.size());
  const int64_t sig = failed_here ? 0 : signature(ps);
  std::vector<int64_t> head{failed_here ? R + 1 : 0, n, sig, -n, -sig};
  comm_->max_host(head);
  if (head[0] > 0) {
    reduced_ = false;
    if (failed_here) return;  // the caller raises this rank's own error
    CUVI_THROW(Error, "SVI.step: the step failed on rank " << head[0] - 1 << " of " << W
                                                           << " (data-parallel); parameters left unchanged");
  }
  if (head[1] != -head[3] || head[2] != -head[4]) {
    std::ostringstream os;
    for (Entry e : ps) os << " " << e->first << shape_str(e->second.shape());
    CUVI_THROW(ValueError, "DistributedOptimizer: the ranks' parameters differ (names or shapes); rank "
                               << R << " has " << ps.size() << ":" << os.str());
  }
  reduced_ = true;
  // One rank goes the whole way too (self(), or NCCL over one GPU): the
  // exchange is then the identity, which the tests hold it to.
  if (ps.empty()) return;

  // 2. How each gradient travels: densely, as rows along one dim (every
  //    rank that has one has rows along that dim, and the wrapped
  //    optimizer takes rows), or not at all (no rank has one).
  constexpr int64_t kNone = std::numeric_limits<int64_t>::min() / 4;
  const bool rows_ok = inner_->accepts_row_grads();
  std::vector<int64_t> mode(3 * ps.size());
  for (size_t j = 0; j < ps.size(); ++j) {
    const Tensor& p = ps[j]->second;
    const int64_t d = rows_ok ? rows_dim(p) : -1;
    const bool dense = has_grad(p) && d < 0;
    mode[3 * j] = dense ? 1 : 0;
    mode[3 * j + 1] = d >= 0 ? d + 1 : 0;
    mode[3 * j + 2] = d >= 0 ? -(d + 1) : kNone;
  }
  comm_->max_host(mode);
  std::vector<size_t> dense, rows;
  for (size_t j = 0; j < ps.size(); ++j) {
    const bool any_rows = mode[3 * j + 1] > 0;
    if (mode[3 * j] || (any_rows && mode[3 * j + 1] != -mode[3 * j + 2]))
      dense.push_back(j);
    else if (any_rows)
      rows.push_back(j);
  }
  std::vector<size_t> all = dense;
  all.insert(all.end(), rows.begin(), rows.end());
  if (all.empty()) return;
  std::vector<Entry> exchanged;
  for (size_t j : all) exchanged.push_back(ps[j]);
  const Device dev = common_device(exchanged);
  NoGradGuard ng;
  const float wf = static_cast<float>(W);

  // 3. Dense gradients: one flat buffer, one sum, the mean written back.
  if (!dense.empty()) {
    int64_t total = 0;
    for (size_t j : dense) total += ps[j]->second.numel();
    Tensor flat = Tensor::empty({total}, DType::kFloat32, dev);
    Backend& be = backend(dev);
    int64_t off = 0;
    for (size_t j : dense) {
      const Tensor& p = ps[j]->second;
      if (has_grad(p))
        be.copy_d2d(flat.data<float>() + off, p.grad().data<float>(), static_cast<size_t>(p.numel()) * 4);
      else
        be.fill_f32(flat.data<float>() + off, p.numel(), 0.0f);
      off += p.numel();
    }
    comm_->sum(flat.data<float>(), total, dev);
    const Tensor mean = flat / wf;
    off = 0;
    for (size_t j : dense) {
      const Tensor& p = ps[j]->second;
      p.set_grad(narrow(mean, 0, off, p.numel()).reshape(p.shape()));
      off += p.numel();
    }
  }

  // 4. Row-sparse gradients: every rank's rows gathered (indices and
  //    values in two buffers), one part per rank, values divided by W.
  if (!rows.empty()) {
    // Per param: the rank's row count and whether its rows are one part
    // without repeats (the wrapped optimizer then need not coalesce).
    std::vector<int64_t> k_local(2 * rows.size(), 0), inner(rows.size(), 1);
    std::vector<Tensor> idx_parts, val_parts;
    for (size_t q = 0; q < rows.size(); ++q) {
      const Tensor& p = ps[rows[q]]->second;
      const int64_t d = mode[3 * rows[q] + 1] - 1;
      inner[q] = p.numel() / std::max<int64_t>(1, p.size(d));  // outer * inner: elements per row index
      k_local[2 * q + 1] = p.row_grads().size() == 1 && p.row_grads()[0].distinct;
      for (const RowGrad& part : p.row_grads()) {
        k_local[2 * q] += part.indices.numel();
        idx_parts.push_back(part.indices.reshape({part.indices.numel()}));
        // Rows first so each rank's block is [k, rest] whatever d is.
        val_parts.push_back(swap_first(part.values, d).reshape({part.values.numel()}));
      }
    }
    const std::vector<int64_t> k_all = comm_->all_gather_host(k_local);  // [W][rows][2]
    auto k_of = [&](int r, size_t q) { return k_all[2 * (r * rows.size() + q)]; };
    std::vector<int64_t> idx_bytes(W, 0), val_bytes(W, 0);
    for (int r = 0; r < W; ++r)
      for (size_t q = 0; q < rows.size(); ++q) {
        idx_bytes[r] += 8 * k_of(r, q);
        val_bytes[r] += 4 * k_of(r, q) * inner[q];
      }
    int64_t idx_total = 0, val_total = 0;
    for (int r = 0; r < W; ++r) {
      idx_total += idx_bytes[r] / 8;
      val_total += val_bytes[r] / 4;
    }
    const Tensor idx_send = idx_parts.empty() ? Tensor::empty({0}, DType::kInt64, dev) : cat(idx_parts, 0);
    const Tensor val_send = val_parts.empty() ? Tensor::empty({0}, DType::kFloat32, dev) : cat(val_parts, 0);
    Tensor idx_all = Tensor::empty({idx_total}, DType::kInt64, dev);
    Tensor val_all = Tensor::empty({val_total}, DType::kFloat32, dev);
    comm_->all_gather_v(idx_send.data<void>(), idx_all.data<void>(), idx_bytes, dev);
    comm_->all_gather_v(val_send.data<void>(), val_all.data<void>(), val_bytes, dev);
    const Tensor val_mean = val_all / wf;
    std::vector<std::vector<RowGrad>> parts(rows.size());
    int64_t io = 0, vo = 0;
    for (int r = 0; r < W; ++r)
      for (size_t q = 0; q < rows.size(); ++q) {
        const int64_t k = k_of(r, q);
        if (k == 0) continue;
        const Tensor& p = ps[rows[q]]->second;
        const int64_t d = mode[3 * rows[q] + 1] - 1;
        Shape moved = p.shape();  // the values' shape with dim d first
        moved[static_cast<size_t>(d)] = p.shape()[0];
        moved[0] = k;
        RowGrad g;
        g.dim = d;
        g.indices = narrow(idx_all, 0, io, k);
        g.distinct = k_all[2 * (r * rows.size() + q) + 1] != 0;
        g.values = swap_first(narrow(val_mean, 0, vo, k * inner[q]).reshape(moved), d);
        parts[q].push_back(std::move(g));
        io += k;
        vo += k * inner[q];
      }
    for (size_t q = 0; q < rows.size(); ++q) {
      TensorImpl* impl = ps[rows[q]]->second.impl();
      impl->grad = nullptr;
      impl->row_grads = std::move(parts[q]);
    }
  }
}

void DistributedOptimizer::step(const NamedParams& params) {
  if (!reduced_) reduce_gradients(params, false);
  reduced_ = false;
  if (inner_->lr_scale() != lr_scale_) inner_->set_lr_scale(lr_scale_);
  // Parameters new to this optimizer take rank 0's values (in one buffer).
  std::vector<Entry> fresh;
  for (const auto& e : params)
    if (!seen_.count(e.first)) fresh.push_back(&e);
  std::sort(fresh.begin(), fresh.end(), [](Entry a, Entry b) { return a->first < b->first; });
  std::vector<Tensor> before;
  if (!fresh.empty()) {
    NoGradGuard ng;
    const Device dev = common_device(fresh);
    std::vector<Tensor> flat;
    for (Entry e : fresh) {
      before.push_back(e->second.detach().clone());
      flat.push_back(e->second.detach().reshape({e->second.numel()}));
    }
    Tensor buf = cat(flat, 0);
    comm_->broadcast(buf.data<void>(), buf.numel() * 4, dev, 0);
    int64_t off = 0;
    for (Entry e : fresh) {
      backend(dev).copy_d2d(e->second.data<float>(), buf.data<float>() + off, static_cast<size_t>(e->second.numel()) * 4);
      off += e->second.numel();
    }
  }
  try {
    inner_->step(params);
  } catch (...) {
    for (size_t i = 0; i < before.size(); ++i)
      backend(before[i].device())
          .copy_d2d(fresh[i]->second.data<float>(), before[i].data<float>(), static_cast<size_t>(before[i].numel()) * 4);
    throw;
  }
  for (Entry e : fresh) seen_.insert(e->first);
}

}  // namespace cuvi::optim

// Transports this build lacks.
namespace cuvi::parallel {
#ifndef CUVI_WITH_MPI
bool mpi_available() { return false; }
CommPtr mpi_world() {
  CUVI_THROW(Error, "parallel::mpi_world: cuvi was built without MPI (install an MPI, e.g. Debian's libopenmpi-dev, "
                    "and configure with -DCUVI_MPI=ON)");
}
#endif
#ifndef CUVI_WITH_NCCL
bool nccl_available() { return false; }
CommPtr nccl(const CommPtr&, Device) {
  CUVI_THROW(Error, "parallel::nccl: cuvi was built without NCCL (a CUDA build finds it in the CUDA toolkit or "
                    "through -DCUVI_NCCL_ROOT=...)");
}
#endif
}  // namespace cuvi::parallel
