// The NCCL transport of data-parallel SVI (CUDA builds that find NCCL).
// Collectives are queued on the device's stream: nothing here waits for the
// GPU, so a data-parallel step stays free of host synchronisation. Host
// control messages and the unique id travel through the bootstrap
// communicator (MPI, or self for one rank).
#include <cuda_runtime.h>
#include <nccl.h>

#include <vector>

#include "../runtime/cuda_context.hpp"
#include "parallel.hpp"

namespace cuvi::parallel {

namespace {

// A failed runtime call is reported here, not left as a sticky error for
// the next launch check to misattribute.
void check_cuda(cudaError_t rc, const char* what) {
  CUVI_CHECK(rc == cudaSuccess, Error, "parallel::nccl: " << what << " failed: " << cudaGetErrorString(rc));
}

void check_nccl(ncclResult_t rc, const char* what) {
  CUVI_CHECK(rc == ncclSuccess, Error, "NCCL " << what << " failed: " << ncclGetErrorString(rc));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(CommPtr boot, Device dev) : boot_(std::move(boot)), dev_(dev) {
    CUVI_CHECK(boot_ != nullptr, ValueError, "parallel::nccl: no bootstrap communicator");
    CUVI_CHECK(dev.is_cuda(), ValueError, "parallel::nccl: needs a cuda device, got " << dev.str());
    stream_ = static_cast<cudaStream_t>(cuda_stream(dev.index));  // checks the device is usable
    ncclUniqueId id{};
    if (boot_->rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    boot_->broadcast(&id, sizeof id, Device::cpu(), 0);
    int prev = 0;
    check_cuda(cudaGetDevice(&prev), "cudaGetDevice");
    check_cuda(cudaSetDevice(dev.index), "cudaSetDevice");
    const ncclResult_t rc = ncclCommInitRank(&comm_, boot_->size(), id, boot_->rank());
    const cudaError_t back = cudaSetDevice(prev);
    check_nccl(rc, "ncclCommInitRank");
    check_cuda(back, "cudaSetDevice (restoring the current device)");
  }
  ~NcclCommunicator() override { ncclCommDestroy(comm_); }
  std::string name() const override { return "nccl"; }
  int rank() const override { return boot_->rank(); }
  int size() const override { return boot_->size(); }
  int local_rank() const override { return boot_->local_rank(); }
  void max_host(std::vector<int64_t>& v) override { boot_->max_host(v); }
  std::vector<int64_t> all_gather_host(const std::vector<int64_t>& v) override { return boot_->all_gather_host(v); }

  void sum(float* p, int64_t n, Device dev) override {
    on(dev, "sum");
    check_nccl(ncclAllReduce(p, p, static_cast<size_t>(n), ncclFloat32, ncclSum, comm_, stream_), "ncclAllReduce");
  }
  void broadcast(void* p, int64_t bytes, Device dev, int root) override {
    on(dev, "broadcast");
    check_nccl(ncclBroadcast(p, p, static_cast<size_t>(bytes), ncclInt8, root, comm_, stream_), "ncclBroadcast");
  }
  void all_gather_v(const void* in, void* out, const std::vector<int64_t>& bytes, Device dev) override {
    on(dev, "all_gather_v");
    CUVI_CHECK(static_cast<int>(bytes.size()) == size(), ValueError,
               "all_gather_v: " << bytes.size() << " counts for " << size() << " ranks");
    // One broadcast per rank, fused into one group.
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    int64_t at = 0;
    ncclResult_t rc = ncclSuccess;
    for (int r = 0; r < size() && rc == ncclSuccess; ++r) {
      char* dst = static_cast<char*>(out) + at;
      if (bytes[static_cast<size_t>(r)] > 0)
        rc = ncclBroadcast(r == rank() ? in : dst, dst, static_cast<size_t>(bytes[static_cast<size_t>(r)]), ncclInt8,
                           r, comm_, stream_);
      at += bytes[static_cast<size_t>(r)];
    }
    const ncclResult_t end = ncclGroupEnd();
    check_nccl(rc, "ncclBroadcast");
    check_nccl(end, "ncclGroupEnd");
  }

 private:
  void on(Device dev, const char* op) const {
    CUVI_CHECK(dev == dev_, ValueError, "parallel::nccl " << op << ": data on " << dev.str() << ", communicator on "
                                                          << dev_.str());
  }
  CommPtr boot_;
  Device dev_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

bool nccl_available() { return true; }

CommPtr nccl(const CommPtr& bootstrap, Device dev) { return std::make_shared<NcclCommunicator>(bootstrap, dev); }

}  // namespace cuvi::parallel
