// Registers the CUDA kernels of the built-in families (built with CUDA
// only; dist_cuda_stub.cpp otherwise). The kernels are instantiated in
// ppl/cuda/*.cu, a few families per translation unit: one file holding them
// all was the build's critical path (minutes of nvcc on one core while the
// others waited for the library).
#include "family_ops.hpp"

#include <mutex>

namespace cuvi::dist::detail {

void register_cuda_normal();          // Normal and LogNormal
void register_cuda_laplace_uniform(); // Laplace and Uniform
void register_cuda_gamma();           // Gamma and Exponential
void register_cuda_beta();            // Beta
void register_cuda_studentt();        // StudentT
void register_cuda_discrete();        // Poisson and Bernoulli (probs and logits)
void register_cuda_dirichlet();       // Dirichlet
void register_cuda_categorical_mvn(); // Categorical (probs and logits) and MultivariateNormal
void register_cuda_cauchy_halfs();    // Cauchy, HalfCauchy and HalfNormal
void register_cuda_counts();          // Binomial (probs and logits), Geometric and NegativeBinomial
void register_cuda_positive();        // InverseGamma and Weibull
void register_cuda_multinomial();     // OneHotCategorical, Multinomial, RelaxedOneHotCategorical's checks
void register_cuda_gumbel_logistic_pareto();  // Gumbel, Logistic, Pareto and Chi2
void register_cuda_vonmises_relaxed();  // VonMises, ContinuousBernoulli and RelaxedBernoulli
void register_cuda_compound();        // BetaBinomial, GammaPoisson, NegativeBinomial (logits), AsymmetricLaplace
void register_cuda_zero_inflated();   // ZeroInflatedPoisson and ZeroInflatedNegativeBinomial (probs and logits)

void register_builtin_cuda_families() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_cuda_normal();
    register_cuda_laplace_uniform();
    register_cuda_gamma();
    register_cuda_beta();
    register_cuda_studentt();
    register_cuda_discrete();
    register_cuda_dirichlet();
    register_cuda_categorical_mvn();
    register_cuda_cauchy_halfs();
    register_cuda_counts();
    register_cuda_positive();
    register_cuda_multinomial();
    register_cuda_gumbel_logistic_pareto();
    register_cuda_vonmises_relaxed();
    register_cuda_compound();
    register_cuda_zero_inflated();
  });
}

}  // namespace cuvi::dist::detail
