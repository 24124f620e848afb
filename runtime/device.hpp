#pragma once

#include <string>

namespace cuvi {

enum class DeviceType : unsigned char { kCPU = 0, kCUDA = 1 };

struct Device {
  DeviceType type = DeviceType::kCPU;
  int index = 0;

  static Device cpu() { return Device{DeviceType::kCPU, 0}; }
  static Device cuda(int i = 0) { return Device{DeviceType::kCUDA, i}; }
  // cuda:0 when the CUDA backend is built and a device is usable, else cpu.
  static Device best();
  // "cpu", "cuda", "cuda:N"; throws DeviceError otherwise.
  static Device parse(const std::string& s);

  bool is_cpu() const { return type == DeviceType::kCPU; }
  bool is_cuda() const { return type == DeviceType::kCUDA; }
  std::string str() const;
  bool operator==(const Device& o) const { return type == o.type && (type == DeviceType::kCPU || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

// Threads of the CPU backend's loops and matrix products (the calling
// thread included; cuvi's own pool, kernels/cpu_parallel.hpp). Default:
// CUVI_NUM_THREADS, else OMP_NUM_THREADS, else the CPUs this process may
// run on. set_num_threads replaces the pool: call it while no cuvi work
// runs on another thread. Every result is the same for any count.
void set_num_threads(int n);
int get_num_threads();

// The calling thread's default device (cpu until set), as PyTorch's
// torch.set_default_device: the tensor factories (tensor, zeros, randn, ...)
// place their result there when no device is given, and so does the PPL for
// what nothing else places (samples of a distribution whose parameters are
// float constants, plate indices, param inits given as floats).
Device default_device();
void set_default_device(Device d);

// Sets the default device for a scope and restores the previous one.
class DefaultDeviceGuard {
 public:
  explicit DefaultDeviceGuard(Device d) : prev_(default_device()) { set_default_device(d); }
  ~DefaultDeviceGuard() { set_default_device(prev_); }
  DefaultDeviceGuard(const DefaultDeviceGuard&) = delete;
  DefaultDeviceGuard& operator=(const DefaultDeviceGuard&) = delete;

 private:
  Device prev_;
};

// Whether the CUDA backend was compiled in, and how many devices it sees
// (0 when not compiled or no driver/device). Never throws.
bool cuda_built();
int cuda_device_count();
inline bool cuda_available() { return cuda_device_count() > 0; }

// Host synchronisations performed by the runtime so far (item, to_vector,
// to(cpu), explicit synchronize). Tests use it to prove a step never waits.
long long sync_count();
// CUDA kernel launches made by cuvi so far: the runtime's and every
// distribution family's kernels, a user's family registered with
// CUVI_REGISTER_CUDA_FAMILY included (one per CUVI_CUDA_LAUNCH_CHECK). A
// CUB device-wide radix sort counts as one launch (whatever number of
// kernels it runs inside); cuBLAS calls, memsets and copies are not counted.
// Tests use it to hold the "one launch per log_prob" design to account;
// benchmarks report it per step.
long long launch_count();
// Blocks until all queued work on `d` is done (counts as a sync).
void synchronize(Device d);

}  // namespace cuvi
