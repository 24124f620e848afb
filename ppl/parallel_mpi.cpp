// The MPI transport of data-parallel SVI (built when CMake finds MPI).
// Errors come back as cuvi exceptions: the communicator uses
// MPI_ERRORS_RETURN instead of MPI's default, which aborts the program.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "../runtime/backend.hpp"
#include "parallel.hpp"

namespace cuvi::parallel {

namespace {

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  CUVI_THROW(Error, "MPI " << what << " failed: " << std::string(msg, static_cast<size_t>(len)));
}

bool finalized() {
  int f = 0;
  MPI_Finalized(&f);
  return f != 0;
}

// Finalises MPI at exit when cuvi initialised it.
struct MpiSession {
  bool owned = false;
  MpiSession() {
    int init = 0;
    MPI_Initialized(&init);
    CUVI_CHECK(!finalized(), Error, "MPI: mpi_world() called after MPI_Finalize");
    if (!init) {
      int provided = 0;
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owned = true;
    }
  }
  ~MpiSession() {
    if (owned && !finalized()) MPI_Finalize();
  }
};

constexpr int64_t kChunk = int64_t{1} << 30;  // MPI counts are int

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    MPI_Comm node = MPI_COMM_NULL;
    check_mpi(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
    check_mpi(MPI_Comm_rank(node, &local_rank_), "MPI_Comm_rank");
    MPI_Comm_free(&node);
  }
  ~MpiCommunicator() override {
    if (finalized()) return;
    MPI_Comm_free(&comm_);
  }
  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }

  void max_host(std::vector<int64_t>& v) override {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_INT64_T, MPI_MAX, comm_),
              "MPI_Allreduce");
  }
  std::vector<int64_t> all_gather_host(const std::vector<int64_t>& v) override {
    std::vector<int64_t> out(v.size() * static_cast<size_t>(size_));
    check_mpi(MPI_Allgather(v.data(), static_cast<int>(v.size()), MPI_INT64_T, out.data(), static_cast<int>(v.size()),
                            MPI_INT64_T, comm_),
              "MPI_Allgather");
    return out;
  }

  void sum(float* p, int64_t n, Device dev) override {
    if (size_ == 1 || n == 0) return;
    Staged s(p, n * 4, dev);
    float* h = static_cast<float*>(s.host());
    // Each rank sums one slice of the buffer: it receives that slice from
    // every rank (all-to-all), adds the W copies in rank order, and the
    // summed slices are gathered back to all (the bandwidth of a ring
    // all-reduce, with built-in operations only). Every element is added
    // once, in rank order, so every rank ends with the same bits, run after
    // run, whatever algorithms MPI picks.
    const int64_t W = size_;
    const int64_t block = std::min<int64_t>(n, kChunk / W);
    std::vector<float> recv;
    std::vector<int> scount(static_cast<size_t>(W)), sdispl(scount), rcount(scount), rdispl(scount);
    for (int64_t at = 0; at < n; at += block) {
      const int64_t len = std::min(block, n - at), slice = (len + W - 1) / W;
      auto begin = [&](int64_t r) { return std::min(len, r * slice); };
      const int64_t mine = begin(rank_ + 1) - begin(rank_);
      for (int64_t r = 0; r < W; ++r) {
        scount[static_cast<size_t>(r)] = static_cast<int>(begin(r + 1) - begin(r));
        sdispl[static_cast<size_t>(r)] = static_cast<int>(begin(r));
        rcount[static_cast<size_t>(r)] = static_cast<int>(mine);
        rdispl[static_cast<size_t>(r)] = static_cast<int>(r * mine);
      }
      recv.resize(static_cast<size_t>(W * mine));
      check_mpi(MPI_Alltoallv(h + at, scount.data(), sdispl.data(), MPI_FLOAT, recv.data(), rcount.data(),
                              rdispl.data(), MPI_FLOAT, comm_),
                "MPI_Alltoallv");
      float* out = h + at + begin(rank_);
      for (int64_t i = 0; i < mine; ++i) {
        float acc = recv[static_cast<size_t>(i)];
        for (int64_t r = 1; r < W; ++r) acc += recv[static_cast<size_t>(r * mine + i)];
        out[i] = acc;
      }
      check_mpi(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, h + at, scount.data(), sdispl.data(), MPI_FLOAT, comm_),
                "MPI_Allgatherv");
    }
    s.write_back();
  }

  void broadcast(void* p, int64_t bytes, Device dev, int root) override {
    CUVI_CHECK(root >= 0 && root < size_, ValueError, "broadcast: root " << root << " is not a rank of " << size_);
    Staged s(p, bytes, dev);
    char* h = static_cast<char*>(s.host());
    for (int64_t at = 0; at < bytes; at += kChunk)
      check_mpi(MPI_Bcast(h + at, static_cast<int>(std::min(kChunk, bytes - at)), MPI_BYTE, root, comm_), "MPI_Bcast");
    s.write_back();
  }

  void all_gather_v(const void* in, void* out, const std::vector<int64_t>& bytes, Device dev) override {
    CUVI_CHECK(static_cast<int>(bytes.size()) == size_, ValueError,
               "all_gather_v: " << bytes.size() << " counts for " << size_ << " ranks");
    std::vector<int> counts(bytes.size()), displs(bytes.size());
    int64_t total = 0;
    for (size_t r = 0; r < bytes.size(); ++r) {
      CUVI_CHECK(bytes[r] >= 0 && total + bytes[r] <= INT_MAX, ValueError,
                 "all_gather_v: " << total + bytes[r] << " bytes exceed MPI's int counts");
      counts[r] = static_cast<int>(bytes[r]);
      displs[r] = static_cast<int>(total);
      total += bytes[r];
    }
    Staged src(const_cast<void*>(in), bytes[static_cast<size_t>(rank_)], dev);
    Staged dst(out, total, dev, /*read=*/false);
    check_mpi(MPI_Allgatherv(src.host(), counts[static_cast<size_t>(rank_)], MPI_BYTE, dst.host(), counts.data(),
                             displs.data(), MPI_BYTE, comm_),
              "MPI_Allgatherv");
    dst.write_back();
  }

 private:
  // Host memory for device data: the data itself on the cpu, else a copy
  // (the copy from the device waits for it).
  class Staged {
   public:
    Staged(void* p, int64_t bytes, Device dev, bool read = true) : p_(p), bytes_(bytes), dev_(dev) {
      if (dev.is_cpu()) return;
      buf_.resize(static_cast<size_t>(bytes));
      if (read && bytes > 0) backend(dev).copy_d2h(buf_.data(), p, static_cast<size_t>(bytes));
    }
    void* host() { return dev_.is_cpu() ? p_ : buf_.data(); }
    void write_back() {
      if (!dev_.is_cpu() && bytes_ > 0) backend(dev_).copy_h2d(p_, buf_.data(), static_cast<size_t>(bytes_));
    }

   private:
    void* p_;
    int64_t bytes_;
    Device dev_;
    std::vector<char> buf_;
  };

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
};

}  // namespace

bool mpi_available() { return true; }

CommPtr mpi_world() {
  static MpiSession session;  // destroyed after the communicator below
  static const CommPtr world = std::make_shared<MpiCommunicator>();
  return world;
}

}  // namespace cuvi::parallel
