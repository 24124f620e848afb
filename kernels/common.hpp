// cuvi kernels layer: shared macros and tiny math helpers.
//
// Everything under kernels/ is header-only math that compiles both under a
// plain C++ compiler (CPU backend, OpenMP loops) and under nvcc (CUDA
// backend). Functions that must run on both sides are marked CUVI_HD. Never
// let a formula differ between the two: no `#ifdef __CUDACC__` inside math.
#pragma once

#include <cmath>
#include <cstdint>

// CUVI_HD_FLAT: small math that must inline on the host too (exp_f, log1p_f,
// ...): a call left out of line keeps the loop around it from vectorising,
// and GCC's inliner gives up on them in the larger backend files.
#if defined(__CUDACC__)
#define CUVI_HD_FLAT __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define CUVI_HD_FLAT inline __attribute__((always_inline))
#else
#define CUVI_HD_FLAT inline
#endif

#if defined(__CUDACC__)
#define CUVI_HD __host__ __device__ __forceinline__
#define CUVI_HD_NOINLINE __host__ __device__
#define CUVI_UNROLL _Pragma("unroll")
#else
#define CUVI_HD inline
#define CUVI_HD_NOINLINE inline
#define CUVI_UNROLL
#endif

namespace cuvi::kern {

// Float constants written out so host and device agree exactly.
constexpr float kPi = 3.14159265358979323846f;
constexpr float kLogSqrt2Pi = 0.91893853320467274178f;  // log(sqrt(2*pi))
constexpr float kLog2 = 0.69314718055994530942f;
constexpr double kPiD = 3.14159265358979323846;

CUVI_HD float clamp_f(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }
CUVI_HD float max_f(float a, float b) { return a > b ? a : b; }
CUVI_HD float min_f(float a, float b) { return a < b ? a : b; }

}  // namespace cuvi::kern
