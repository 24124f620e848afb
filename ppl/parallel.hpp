// Data-parallel SVI (DESIGN.md, "Scale beyond one GPU"): W processes
// (ranks) train one model together, as Pyro does with Horovod. Each rank
// runs the same model and guide on its own block of the data
// (poutine::shard splits a plate's rows among the ranks), and
// optim::DistributedOptimizer replaces every gradient with the mean over
// ranks before the update, so all ranks keep identical parameters and
// optimizer state. The transport is MPI on CPUs and NCCL on GPUs (no
// home-made one); Communicator is the seam between them.
//
//   auto comm = parallel::mpi_world();             // run under mpiexec -n W
//   set_seed(1234 + comm->rank());                 // each rank draws its own noise
//   auto m = poutine::shard(model, comm->rank(), comm->size(), {"data"});
//   auto g = poutine::shard(guide, comm->rank(), comm->size(), {"data"});
//   infer::SVI svi(m, g, optim::DistributedOptimizer(optim::Adam({.lr = 1e-3f}), comm),
//                  infer::Trace_ELBO());
//   for (...) svi.step(data);                      // the rank's own loss
//
// A step is all-or-nothing on every rank: a rank whose step fails (its
// model threw, or its loss or a gradient was not finite with
// SVIOptions::check_finite) tells the others in the step's first exchange,
// every rank throws, and no rank changes its parameters or optimizer
// state. The ranks must run the same parameters (by name and shape);
// otherwise every rank raises an error that says so.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "optim.hpp"

namespace cuvi::parallel {

// A fixed group of ranks. Collectives are called by every rank in the same
// order with matching sizes (as MPI's); counts are host-known.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;  // "self", "mpi", "nccl"
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // This rank's number among the ranks on its machine (MPI: those sharing
  // its memory): which GPU it should take, cuda:(local_rank % devices).
  virtual int local_rank() const { return rank(); }

  // Control messages, host memory only (no device work, no device wait).
  // Element-wise maximum over ranks, in place.
  virtual void max_host(std::vector<int64_t>& v) = 0;
  // Every rank's v (one length on all ranks), concatenated in rank order.
  virtual std::vector<int64_t> all_gather_host(const std::vector<int64_t>& v) = 0;

  // Data on device dev, queued in the device's stream order. The sum over
  // ranks of n floats at p, in place: the same bits on every rank and from
  // run to run (MPI: each element added once, in rank order; NCCL: its
  // fixed reduction order for one configuration).
  virtual void sum(float* p, int64_t n, Device dev) = 0;
  // Rank root's bytes at p to every rank, in place.
  virtual void broadcast(void* p, int64_t bytes, Device dev, int root) = 0;
  // Rank r's bytes[r] bytes at in, concatenated in rank order into out
  // (sum of bytes); bytes is the same vector on every rank.
  virtual void all_gather_v(const void* in, void* out, const std::vector<int64_t>& bytes, Device dev) = 0;
};

using CommPtr = std::shared_ptr<Communicator>;

// One rank: every collective leaves its data as it is. Code written for W
// ranks runs unchanged in one process.
CommPtr self();

// Whether this build of cuvi has MPI (CMake option CUVI_MPI).
bool mpi_available();
// The ranks of MPI_COMM_WORLD (a duplicate of it). Initialises MPI
// (MPI_THREAD_FUNNELED) when the program has not, and then finalises it at
// exit. Device data is staged through host memory (each collective on a
// GPU tensor waits for the device): use nccl() on GPUs.
CommPtr mpi_world();

// Whether this build of cuvi has NCCL (CUDA builds that found it; CMake
// option CUVI_NCCL).
bool nccl_available();
// An NCCL communicator over bootstrap's ranks for device dev (a cuda
// device, one per rank): rank 0's unique id travels through bootstrap,
// which also carries the host control messages. Its collectives run on the
// device's stream without waiting for it, so a data-parallel SVI step stays
// free of host synchronisation.
CommPtr nccl(const CommPtr& bootstrap, Device dev);

// The sum (or mean) over ranks of a float32 tensor, as a new tensor on its
// device (no autodiff): e.g. the mean loss for a progress line.
Tensor all_reduce_sum(const Tensor& t, Communicator& comm);
Tensor all_reduce_mean(const Tensor& t, Communicator& comm);
// Rank root's values of t written into t on every rank (same shape on all).
void broadcast_(const Tensor& t, Communicator& comm, int root = 0);

}  // namespace cuvi::parallel

namespace cuvi::optim {

// Horovod's DistributedOptimizer (pyro.optim.HorovodOptimizer): wraps an
// optimizer; before each update every gradient becomes its mean over the
// ranks, and a parameter seen for the first time takes rank 0's value
// (ranks may initialise differently: seeds per rank, init_to_sample), so
// all ranks hold the same parameters and optimizer state throughout.
//
// Through SVI the exchange happens in reduce_gradients() (svi_step calls
// it after backward, on success and on failure, so that a failing rank
// never leaves the others waiting). Called directly, step() exchanges first
// if reduce_gradients() was not called for this step.
//
// Dense gradients go in one flat buffer per step (one sum). Row-sparse
// gradients (rows of per-datapoint params a subsampled plate took; see
// Optimizer::accepts_row_grads) stay row-sparse when the wrapped optimizer
// takes them: the ranks' rows are gathered (O(W B) data, not O(N)) and
// each rank's values divided by W, then the wrapped optimizer coalesces
// them. A parameter with a dense gradient on one rank and rows on another
// is exchanged densely; one without a gradient on a rank counts as zero
// there. state()/load_state() are the wrapped optimizer's.
class DistributedOptimizer : public Optimizer {
 public:
  DistributedOptimizer(const Optimizer& inner, parallel::CommPtr comm);
  DistributedOptimizer(const DistributedOptimizer& o);
  DistributedOptimizer& operator=(const DistributedOptimizer&) = delete;
  std::string name() const override { return "Distributed(" + inner_->name() + ")"; }
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<DistributedOptimizer>(*this); }
  void reduce_gradients(const NamedParams& params, bool failed_here) override;
  void step(const NamedParams& params) override;
  OptimizerState state() const override { return inner_->state(); }
  void load_state(const OptimizerState& s) override { inner_->load_state(s); }
  bool accepts_row_grads() const override { return inner_->accepts_row_grads(); }
  std::optional<double> base_lr() const override { return inner_->base_lr(); }
  Optimizer& optimizer() { return *inner_; }
  parallel::Communicator& communicator() { return *comm_; }

 private:
  std::shared_ptr<Optimizer> inner_;
  parallel::CommPtr comm_;
  std::set<std::string> seen_;  // parameters already aligned with rank 0
  bool reduced_ = false;        // reduce_gradients ran for the coming step
};

}  // namespace cuvi::optim
