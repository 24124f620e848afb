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
//
// Row families (one thread per batch row; n counts rows): Dirichlet and
// Categorical(logits) with K = 8, MultivariateNormal with D = 4, every row
// with its own parameters. Bytes counted per row:
//   Dirichlet    rsample 8K, log_prob 4(2K + 1), log_prob_sum+grad 16K
//   Categorical  sample 4(K + 1), log_prob 4(K + 2), log_prob_sum+grad 4(2K + 1)
//   MVN          rsample 4(2D + D^2), log_prob 4(2D + D^2 + 1),
//                log_prob_sum+grad 8(2D + D^2)
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
  else if (fam == "ZeroInflatedNegativeBinomial")  // scVI's parameterisation: logits and gate logits
    r.p = {u(0.5f, 6), u(-3, 2), u(-3, 3)}, r.x = cuvi::Tensor(u(0, 10)).to_int64().to_float();
  else r.p = {u(0.5f, 10)}, r.x = cuvi::Tensor(u(0, 10)).to_int64().to_float();  // counts
  for (auto& t : r.p) t.requires_grad_();
  r.x.requires_grad_(fam != "Bernoulli" && fam != "Poisson" && fam != "ZeroInflatedNegativeBinomial");
  return r;
}

cuvi::dist::Dist build(const std::string& fam, const Params& a) {
  using namespace cuvi::dist;
  if (fam == "Normal") return Dist(std::make_shared<Normal>(a.p[0], a.p[1]));
  if (fam == "Gamma") return Dist(std::make_shared<Gamma>(a.p[0], a.p[1]));
  if (fam == "Beta") return Dist(std::make_shared<Beta>(a.p[0], a.p[1]));
  if (fam == "StudentT") return Dist(std::make_shared<StudentT>(a.p[0], a.p[1], a.p[2]));
  if (fam == "Bernoulli") return Bernoulli::from_logits(a.p[0]);
  if (fam == "ZeroInflatedNegativeBinomial") return ZeroInflatedNegativeBinomial::from_logits(a.p[0], a.p[1], a.p[2]);
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

constexpr int64_t kRowK = 8, kMvnD = 4;

struct RowCase {
  cuvi::dist::Dist d;
  Tensor x;
  std::vector<Tensor> leaves;
};

RowCase make_rows(const std::string& fam, int64_t n, Device dev) {
  cuvi::set_seed(7);
  RowCase c{cuvi::dist::Dist(std::make_shared<cuvi::dist::Normal>(0.0f, 1.0f)), Tensor(), {}};
  if (fam == "Dirichlet") {
    Tensor conc = (cuvi::rand({n, kRowK}, dev) * 3.0f + 0.5f).detach().requires_grad_();
    c.d = cuvi::dist::Dist(std::make_shared<cuvi::dist::Dirichlet>(conc));
    {
      const cuvi::NoGradGuard ng;
      c.x = c.d.sample();
    }
    c.leaves = {conc};
  } else if (fam == "Categorical") {
    Tensor logits = (cuvi::rand({n, kRowK}, dev) * 4.0f - 2.0f).detach().requires_grad_();
    c.d = cuvi::dist::Dist(cuvi::dist::Categorical::from_logits(logits).clone());
    c.x = c.d.sample().to_float();
    c.leaves = {logits};
  } else {
    Tensor loc = cuvi::randn({n, kMvnD}, dev).requires_grad_();
    Tensor L = (cuvi::tril(cuvi::rand({n, kMvnD, kMvnD}, dev) * 0.5f) +
                cuvi::diag_embed(cuvi::ones({n, kMvnD}, dev)))
                   .detach()
                   .requires_grad_();
    c.d = cuvi::dist::Dist(std::make_shared<cuvi::dist::MultivariateNormal>(loc, L));
    c.x = cuvi::randn({n, kMvnD}, dev).requires_grad_();
    c.leaves = {loc, L};
  }
  return c;
}

// op 0 rsample/sample, 1 log_prob, 2 log_prob_sum+grad.
void bm_rows(benchmark::State& state, std::string fam, Which which, int op) {
  const auto dev = acquire(state, which);
  if (!dev) return;
  const int64_t n = state.range(0);
  const RowCase c = make_rows(fam, n, *dev);
  const int64_t K = kRowK, D = kMvnD;
  int64_t per_row = 0;
  double s = 0;
  if (op == 0) {
    s = run_timed(state, *dev, [&] { return c.d.has_rsample() ? c.d.rsample() : c.d.sample(); });
    per_row = fam == "Dirichlet" ? 8 * K : fam == "Categorical" ? 4 * (K + 1) : 4 * (2 * D + D * D);
  } else if (op == 1) {
    const cuvi::NoGradGuard ng;
    s = run_timed(state, *dev, [&] { return c.d.log_prob(c.x); });
    per_row = fam == "Dirichlet" ? 4 * (2 * K + 1) : fam == "Categorical" ? 4 * (K + 2) : 4 * (2 * D + D * D + 1);
  } else {
    s = run_timed(state, *dev, [&] { return c.d.log_prob_sum(c.x, -1.0f); });
    per_row = fam == "Dirichlet" ? 16 * K : fam == "Categorical" ? 4 * (2 * K + 1) : 8 * (2 * D + D * D);
  }
  report(state, *dev, s, per_row * n, n);
}

void register_all() {
  for (const char* fam : {"Dirichlet", "Categorical", "MultivariateNormal"})
    for (auto which : {Which::kCpu, Which::kCuda}) {
      const std::string be = which == Which::kCpu ? "cpu" : "cuda";
      const int64_t hi = which == Which::kCpu ? kMaxCpu / 8 : kMaxCuda / 8;
      const char* names[3] = {"rsample", "log_prob", "log_prob_sum_grad"};
      for (int op = 0; op < 3; ++op)
        benchmark::RegisterBenchmark((std::string(names[op]) + "/" + fam + "/" + be).c_str(), bm_rows,
                                     std::string(fam), which, op)
            ->RangeMultiplier(16)
            ->Range(int64_t{1} << 12, hi)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
    }
  for (const char* fam : {"Normal", "Gamma", "Beta", "StudentT", "Bernoulli", "Poisson", "ZeroInflatedNegativeBinomial"}) {
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
