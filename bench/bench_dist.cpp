// Distribution kernels per family and backend: rsample, log_prob, and the
// fused log-prob-sum with gradients (the ELBO's per-site pass). Names read
// op/family/backend/size.
//
// Parameters are full-shape tensors (a mean-field site: one loc and one scale
// per element), which is the bandwidth-heavy case. Bytes counted:
//   rsample           reads P params, writes the draw:            4(P + 1) N
//   log_prob          reads value and P params, writes log_prob:  4(P + 2) N
//   log_prob_sum+grad reads value and P params once, writes the P + 1
//                     gradients once (the 0-d sum is negligible): 8(P + 1) N
// The target: fused Normal log-prob-sum with gradients at 1e8
// elements at >= 80% of copy bandwidth (frac_of_copy >= 0.8), see
// fused_normal_1e8/cuda. Timing method and frac_of_copy: bench_common.hpp.
#include "bench_common.hpp"

namespace {

using namespace cuvi_bench;
using cuvi::Tensor;

constexpr int64_t kMaxCpu = int64_t{1} << 22;
constexpr int64_t kMaxCuda = int64_t{1} << 26;

struct Params {
  std::vector<Tensor> p;  // leaves requiring grad
  Tensor x;
};

// Value and parameters inside each family's support, built on device.
Params make(const std::string& fam, int64_t n, Device dev) {
  cuvi::set_seed(7);
  auto u = [&](float lo, float hi) { return (cuvi::rand({n}, dev) * (hi - lo) + lo).detach(); };
  Params r;
  if (fam == "Normal") r.p = {u(-1, 1), u(0.5f, 2)}, r.x = u(-2, 2);
  else if (fam == "Gamma") r.p = {u(0.5f, 3), u(0.5f, 2)}, r.x = u(0.1f, 3);
  else if (fam == "Beta") r.p = {u(0.5f, 3), u(0.5f, 3)}, r.x = u(0.05f, 0.95f);
  else if (fam == "StudentT") r.p = {u(2, 10), u(-1, 1), u(0.5f, 2)}, r.x = u(-2, 2);
  else if (fam == "Bernoulli") r.p = {u(-3, 3)}, r.x = cuvi::gt(u(0, 1), cuvi::full({}, 0.5f, dev));
  else r.p = {u(0.5f, 10)}, r.x = cuvi::Tensor(u(0, 10)).to_int64().to_float();  // counts
  for (auto& t : r.p) t.requires_grad_();
  r.x.requires_grad_(fam != "Bernoulli" && fam != "Poisson");
  return r;
}

cuvi::dist::Dist build(const std::string& fam, const Params& a) {
  using namespace cuvi::dist;
  if (fam == "Normal") return Dist(std::make_shared<Normal>(a.p[0], a.p[1]));
  if (fam == "Gamma") return Dist(std::make_shared<Gamma>(a.p[0], a.p[1]));
  if (fam == "Beta") return Dist(std::make_shared<Beta>(a.p[0], a.p[1]));
  if (fam == "StudentT") return Dist(std::make_shared<StudentT>(a.p[0], a.p[1], a.p[2]));
  if (fam == "Bernoulli") return Bernoulli::from_logits(a.p[0]);
  return Dist(std::make_shared<Poisson>(a.p[0]));
}

void bm_rsample(benchmark::State& state, std::string fam, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const int64_t n = state.range(0);
  const Params a = make(fam, n, *dev);
  const auto d = build(fam, a);
  const double s = run_timed(state, *dev, [&] { return d.has_rsample() ? d.rsample() : d.sample(); });
  report(state, *dev, s, kF32 * static_cast<int64_t>(a.p.size() + 1) * n, n);
}

void bm_log_prob(benchmark::State& state, std::string fam, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const cuvi::NoGradGuard ng;
  const int64_t n = state.range(0);
  const Params a = make(fam, n, *dev);
  const auto d = build(fam, a);
  const double s = run_timed(state, *dev, [&] { return d.log_prob(a.x); });
  report(state, *dev, s, kF32 * static_cast<int64_t>(a.p.size() + 2) * n, n);
}

void bm_fused(benchmark::State& state, std::string fam, Which which) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const int64_t n = state.range(0);
  const Params a = make(fam, n, *dev);
  const auto d = build(fam, a);
  const int64_t grads = static_cast<int64_t>(a.p.size()) + (a.x.requires_grad() ? 1 : 0);
  const double s = run_timed(state, *dev, [&] { return d.log_prob_sum(a.x, -1.0f); });
  report(state, *dev, s, kF32 * (static_cast<int64_t>(a.p.size()) + 1 + grads) * n, n);
}

void register_all() {
  for (const char* fam : {"Normal", "Gamma", "Beta", "StudentT", "Bernoulli", "Poisson"}) {
    for (auto which : {Which::kCpu, Which::kCuda}) {
      const std::string be = which == Which::kCpu ? "cpu" : "cuda";
      const int64_t hi = which == Which::kCpu ? kMaxCpu : kMaxCuda;
      auto reg = [&](const char* op, void (*fn)(benchmark::State&, std::string, Which)) {
        benchmark::RegisterBenchmark((std::string(op) + "/" + fam + "/" + be).c_str(), fn, std::string(fam), which)
            ->RangeMultiplier(16)
            ->Range(int64_t{1} << 14, hi)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      };
      reg("rsample", bm_rsample);
      reg("log_prob", bm_log_prob);
      reg("log_prob_sum_grad", bm_fused);
    }
  }
  benchmark::RegisterBenchmark("fused_normal_1e8/cuda", bm_fused, std::string("Normal"), Which::kCuda)
      ->Arg(100000000)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
