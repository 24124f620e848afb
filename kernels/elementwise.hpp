// Per-element math of the runtime's unary and binary ops, forward and
// derivative, shared by the CPU loops and the CUDA kernels.
#pragma once

#include "common.hpp"
#include "special.hpp"

namespace cuvi::kern {

enum class UnaryOp : int {
  kNeg,
  kExp,
  kLog,
  kLog1p,
  kExpm1,
  kSqrt,
  kAbs,
  kSquare,
  kReciprocal,
  kSoftplus,
  kSigmoid,
  kLogSigmoid,
  kTanh,
  kRelu,
  kLgamma,
  kDigamma,
  kTrigamma,
  kSin,
  kCos,
  kErf,
  kErfinv,
  kNdtr,
  kNdtri,
  kAtan,
  kCount
};

enum class BinaryOp : int {
  kAdd,
  kSub,
  kMul,
  kDiv,
  kPow,
  kMaximum,
  kMinimum,
  kLt,
  kLe,
  kGt,
  kGe,
  kEq,
  kNe,
  kGammainc,   // P(a, x), regularised lower incomplete gamma
  kGammaincc,  // Q(a, x) = 1 - P(a, x)
  kStdtr,      // Student's t distribution function F(t; df), (df, t)
  kCount
};

inline const char* unary_name(UnaryOp op) {
  constexpr const char* names[] = {"neg",      "exp",     "log",        "log1p", "expm1", "sqrt",   "abs",
                                   "square",   "reciprocal", "softplus", "sigmoid", "log_sigmoid", "tanh", "relu",
                                   "lgamma",   "digamma", "trigamma",   "sin",   "cos",
                                   "erf",      "erfinv",  "ndtr",       "ndtri", "atan"};
  return names[static_cast<int>(op)];
}

inline const char* binary_name(BinaryOp op) {
  constexpr const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                   "lt",  "le",  "gt",  "ge",  "eq",  "ne",
                                   "gammainc", "gammaincc", "stdtr"};
  return names[static_cast<int>(op)];
}

// float32 -> int64 as both backends convert it: truncation toward zero,
// saturating at the int64 range, NaN -> 0 (a plain cast is undefined there,
// and x86 and CUDA disagree on it).
CUVI_HD int64_t f32_to_i64(float x) {
  if (x != x) return 0;
  if (x >= 9223372036854775808.0f) return INT64_MAX;
  if (x < -9223372036854775808.0f) return INT64_MIN;
  return static_cast<int64_t>(x);
}

// Whether an op has a derivative (comparisons are piecewise constant: zero).
constexpr bool unary_differentiable(UnaryOp op) { return op != UnaryOp::kTrigamma; }

template <UnaryOp op>
CUVI_HD float unary_fwd(float x) {
  if constexpr (op == UnaryOp::kNeg) return -x;
  else if constexpr (op == UnaryOp::kExp) return exp_f(x);
  else if constexpr (op == UnaryOp::kLog) return log_f(x);
  else if constexpr (op == UnaryOp::kLog1p) return log1p_f(x);
  else if constexpr (op == UnaryOp::kExpm1) return ::expm1f(x);
  else if constexpr (op == UnaryOp::kSqrt) return ::sqrtf(x);
  else if constexpr (op == UnaryOp::kAbs) return ::fabsf(x);
  else if constexpr (op == UnaryOp::kSquare) return x * x;
  else if constexpr (op == UnaryOp::kReciprocal) return 1.0f / x;
  else if constexpr (op == UnaryOp::kSoftplus) return softplus_f(x);
  else if constexpr (op == UnaryOp::kSigmoid) return sigmoid_f(x);
  else if constexpr (op == UnaryOp::kLogSigmoid) return log_sigmoid_f(x);
  else if constexpr (op == UnaryOp::kTanh) return tanh_f(x);
  else if constexpr (op == UnaryOp::kRelu) return x > 0.0f ? x : 0.0f;
  else if constexpr (op == UnaryOp::kLgamma) return lgamma_f(x);
  else if constexpr (op == UnaryOp::kDigamma) return digamma_f(x);
  else if constexpr (op == UnaryOp::kTrigamma) return trigamma_f(x);
  else if constexpr (op == UnaryOp::kSin) return ::sinf(x);
  else if constexpr (op == UnaryOp::kCos) return ::cosf(x);
  else if constexpr (op == UnaryOp::kErf) return ::erff(x);
  else if constexpr (op == UnaryOp::kErfinv) return erfinv_f(x);
  else if constexpr (op == UnaryOp::kNdtr) return ndtr_f(x);
  else if constexpr (op == UnaryOp::kNdtri) return ndtri_f(x);
  else return ::atanf(x);
}

// d y / d x given x and y = f(x).
template <UnaryOp op>
CUVI_HD float unary_deriv(float x, float y) {
  if constexpr (op == UnaryOp::kNeg) return -1.0f;
  else if constexpr (op == UnaryOp::kExp) return y;
  else if constexpr (op == UnaryOp::kLog) return 1.0f / x;
  else if constexpr (op == UnaryOp::kLog1p) return 1.0f / (1.0f + x);
  else if constexpr (op == UnaryOp::kExpm1) return y + 1.0f;
  else if constexpr (op == UnaryOp::kSqrt) return 0.5f / y;
  else if constexpr (op == UnaryOp::kAbs) return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
  else if constexpr (op == UnaryOp::kSquare) return 2.0f * x;
  else if constexpr (op == UnaryOp::kReciprocal) return -y * y;
  else if constexpr (op == UnaryOp::kSoftplus) return sigmoid_f(x);
  else if constexpr (op == UnaryOp::kSigmoid) return y * (1.0f - y);
  else if constexpr (op == UnaryOp::kLogSigmoid) return sigmoid_f(-x);
  else if constexpr (op == UnaryOp::kTanh) return 1.0f - y * y;
  else if constexpr (op == UnaryOp::kRelu) return x > 0.0f ? 1.0f : 0.0f;
  else if constexpr (op == UnaryOp::kLgamma) return digamma_f(x);
  else if constexpr (op == UnaryOp::kDigamma) return trigamma_f(x);
  else if constexpr (op == UnaryOp::kSin) return ::cosf(x);
  else if constexpr (op == UnaryOp::kCos) return -::sinf(x);
  // erf' = 2/sqrt(pi) e^-x^2; (erf^-1)' = sqrt(pi)/2 e^(y^2); Phi' = phi(x);
  // (Phi^-1)' = 1 / phi(y) = sqrt(2 pi) e^(y^2 / 2) (+inf at the ends).
  else if constexpr (op == UnaryOp::kErf) return 1.12837916709551257390f * exp_f(-x * x);
  else if constexpr (op == UnaryOp::kErfinv) return 0.88622692545275801365f * exp_f(y * y);
  else if constexpr (op == UnaryOp::kNdtr) return 0.39894228040143267794f * exp_f(-0.5f * x * x);
  else if constexpr (op == UnaryOp::kNdtri) return 2.50662827463100050242f * exp_f(0.5f * y * y);
  else if constexpr (op == UnaryOp::kAtan) return 1.0f / (1.0f + x * x);
  else return 0.0f;  // trigamma: not differentiable here (rejected before launch)
}

template <BinaryOp op>
CUVI_HD float binary_fwd(float a, float b) {
  if constexpr (op == BinaryOp::kAdd) return a + b;
  else if constexpr (op == BinaryOp::kSub) return a - b;
  else if constexpr (op == BinaryOp::kMul) return a * b;
  else if constexpr (op == BinaryOp::kDiv) return a / b;
  else if constexpr (op == BinaryOp::kPow) return ::powf(a, b);
  else if constexpr (op == BinaryOp::kMaximum) return a >= b ? a : b;
  else if constexpr (op == BinaryOp::kMinimum) return a <= b ? a : b;
  else if constexpr (op == BinaryOp::kLt) return a < b ? 1.0f : 0.0f;
  else if constexpr (op == BinaryOp::kLe) return a <= b ? 1.0f : 0.0f;
  else if constexpr (op == BinaryOp::kGt) return a > b ? 1.0f : 0.0f;
  else if constexpr (op == BinaryOp::kGe) return a >= b ? 1.0f : 0.0f;
  else if constexpr (op == BinaryOp::kEq) return a == b ? 1.0f : 0.0f;
  else if constexpr (op == BinaryOp::kNe) return a != b ? 1.0f : 0.0f;
  else if constexpr (op == BinaryOp::kGammainc) return gammainc_f(a, b);
  else if constexpr (op == BinaryOp::kGammaincc) return gammaincc_f(a, b);
  else return stdtr_f(a, b);
}

// Partial derivatives (d out/d a, d out/d b) at (a, b).
template <BinaryOp op>
CUVI_HD void binary_deriv(float a, float b, float* da, float* db) {
  if constexpr (op == BinaryOp::kAdd) { *da = 1.0f; *db = 1.0f; }
  else if constexpr (op == BinaryOp::kSub) { *da = 1.0f; *db = -1.0f; }
  else if constexpr (op == BinaryOp::kMul) { *da = b; *db = a; }
  else if constexpr (op == BinaryOp::kDiv) { *da = 1.0f / b; *db = -a / (b * b); }
  else if constexpr (op == BinaryOp::kPow) {
    // d/da a^b = b a^(b-1); d/db a^b = a^b log a (0 where a = 0, as torch).
    *da = b == 0.0f ? 0.0f : b * ::powf(a, b - 1.0f);
    *db = a > 0.0f ? ::powf(a, b) * ::logf(a) : 0.0f;
  }
  else if constexpr (op == BinaryOp::kMaximum) { *da = a >= b ? 1.0f : 0.0f; *db = a >= b ? 0.0f : 1.0f; }
  else if constexpr (op == BinaryOp::kMinimum) { *da = a <= b ? 1.0f : 0.0f; *db = a <= b ? 0.0f : 1.0f; }
  else if constexpr (op == BinaryOp::kGammainc) gammainc_grad_f(a, b, da, db);
  else if constexpr (op == BinaryOp::kGammaincc) {
    gammainc_grad_f(a, b, da, db);
    *da = -*da;
    *db = -*db;
  }
  else if constexpr (op == BinaryOp::kStdtr) stdtr_grad_f(a, b, da, db);
  else { *da = 0.0f; *db = 0.0f; }
}

template <BinaryOp op>
constexpr bool binary_differentiable() {
  return op == BinaryOp::kAdd || op == BinaryOp::kSub || op == BinaryOp::kMul || op == BinaryOp::kDiv ||
         op == BinaryOp::kPow || op == BinaryOp::kMaximum || op == BinaryOp::kMinimum ||
         op == BinaryOp::kGammainc || op == BinaryOp::kGammaincc || op == BinaryOp::kStdtr;
}

// g + wd * p with the product rounded on its own. nvcc contracts a * b + c
// into one fma by default and the host build (baseline x86-64) never does;
// elsewhere that is an ulp, but where the gradient cancels the decay term
// (g ~ -wd p) the sum keeps only the product's rounding error, which the
// fma does not make. The optimizers then divide by a running RMS near eps
// and the backends took visibly different steps (seen on an H200: RMSprop's
// momentum buffer off by 8e-5 relative after 4 steps). __fmul_rn is never
// contracted, so both backends compute the same bits here.
CUVI_HD float add_decay(float g, float weight_decay, float p) {
#ifdef __CUDA_ARCH__
  return g + __fmul_rn(weight_decay, p);
#else
  return g + weight_decay * p;
#endif
}

// Adam / ClippedAdam / SGD / Adagrad / RMSprop / Adadelta per-element
// updates (torch.optim and pyro.optim.ClippedAdam semantics; see KERNELS.md). `bc1 = 1 - b1^t`,
// `bc2 = 1 - b2^t` are computed once per step on the host side of the launch.
struct AdamHyper {
  float lr, b1, b2, eps, weight_decay, bc1, bc2, clip;  // clip <= 0: no clipping
  int clipped_form;                                     // 1: ClippedAdam's update form
  float keep = 1.0f;  // AdamW's decoupled decay: the param is first scaled by 1 - lr wd
};

// kClippedForm: ClippedAdam's form of the step. Selects rather than branches
// on the hyper-parameters, so that the CPU loop over a tensor (which picks
// the form once per tensor) vectorises; the arithmetic is the same.
template <int kClippedForm>
CUVI_HD void adam_update_form(float* p, float* m, float* v, float g, const AdamHyper& h) {
  const float pv = *p * h.keep;  // keep is 1 (exactly: the same bits) but for AdamW
  g = h.clip > 0.0f ? clamp_f(g, -h.clip, h.clip) : g;
  g = h.weight_decay != 0.0f ? add_decay(g, h.weight_decay, pv) : g;
  const float mm = h.b1 * *m + (1.0f - h.b1) * g;
  const float vv = h.b2 * *v + (1.0f - h.b2) * g * g;
  *m = mm;
  *v = vv;
  if constexpr (kClippedForm != 0)
    *p = pv - h.lr * ::sqrtf(h.bc2) / h.bc1 * mm / (::sqrtf(vv) + h.eps);
  else
    *p = pv - (h.lr / h.bc1) * mm / (::sqrtf(vv) / ::sqrtf(h.bc2) + h.eps);
}

CUVI_HD void adam_update(float* p, float* m, float* v, float g, const AdamHyper& h) {
  if (h.clipped_form) adam_update_form<1>(p, m, v, g, h);
  else adam_update_form<0>(p, m, v, g, h);
}

struct SgdHyper {
  float lr, momentum, dampening, weight_decay;
  int nesterov, first_step;
};

CUVI_HD void sgd_update(float* p, float* buf, float g, const SgdHyper& h) {
  if (h.weight_decay != 0.0f) g = add_decay(g, h.weight_decay, *p);
  if (h.momentum != 0.0f) {
    const float b = h.first_step ? g : h.momentum * *buf + (1.0f - h.dampening) * g;
    *buf = b;
    g = h.nesterov ? g + h.momentum * b : b;
  }
  *p -= h.lr * g;
}

struct AdagradHyper {
  float lr, eps, weight_decay;
};

CUVI_HD void adagrad_update(float* p, float* sum, float g, const AdagradHyper& h) {
  const float pv = *p;
  g = h.weight_decay != 0.0f ? add_decay(g, h.weight_decay, pv) : g;  // a select: see adam_update_form
  const float s = *sum + g * g;
  *sum = s;
  *p = pv - h.lr * g / (::sqrtf(s) + h.eps);
}

// torch.optim.RMSprop. centered: the denominator uses the running variance
// v - ga^2 instead of the raw second moment v. By construction v >= ga^2
// (both are averages with the same weights, and a mean square bounds the
// squared mean), but roundings can leave v - ga^2 a few ulps below 0 when
// the gradient barely varies; there the clamp keeps sqrt off NaN (torch
// would produce one) and the update is the one the exact 0 gives.
struct RmspropHyper {
  float lr, alpha, eps, weight_decay, momentum;  // momentum 0: plain RMSprop
  int centered;
};

// kCentered / kMomentum (centered, momentum > 0) fixed at compile time, as
// adam_update_form's form: the CPU loop picks them once per tensor and
// vectorises, and the buffers a variant does not keep (buf: the momentum
// buffer, ga: the gradient average) are never touched, so they may be null.
template <bool kCentered, bool kMomentum>
CUVI_HD void rmsprop_update_form(float* p, float* sq, float* buf, float* ga, float g, const RmspropHyper& h) {
  const float pv = *p;
  g = h.weight_decay != 0.0f ? add_decay(g, h.weight_decay, pv) : g;  // a select: see adam_update_form
  const float v = h.alpha * *sq + (1.0f - h.alpha) * g * g;
  *sq = v;
  float var = v;
  if constexpr (kCentered) {
    const float a = h.alpha * *ga + (1.0f - h.alpha) * g;
    *ga = a;
    var = v - a * a;
    var = var > 0.0f ? var : 0.0f;
  }
  const float avg = ::sqrtf(var) + h.eps;
  if constexpr (kMomentum) {
    const float b = h.momentum * *buf + g / avg;
    *buf = b;
    *p = pv - h.lr * b;
  } else {
    *p = pv - h.lr * g / avg;
  }
}

CUVI_HD void rmsprop_update(float* p, float* sq, float* buf, float* ga, float g, const RmspropHyper& h) {
  if (h.centered) {
    if (h.momentum > 0.0f) rmsprop_update_form<true, true>(p, sq, buf, ga, g, h);
    else rmsprop_update_form<true, false>(p, sq, buf, ga, g, h);
  } else {
    if (h.momentum > 0.0f) rmsprop_update_form<false, true>(p, sq, buf, ga, g, h);
    else rmsprop_update_form<false, false>(p, sq, buf, ga, g, h);
  }
}

// torch.optim.Adadelta: the step is the gradient scaled by the ratio of the
// running RMS of past steps (acc_delta) to that of the gradients
// (square_avg), each with eps inside the square root; lr multiplies the
// step (1 in Zeiler's paper) but not what acc_delta accumulates.
struct AdadeltaHyper {
  float lr, rho, eps, weight_decay;
};

CUVI_HD void adadelta_update(float* p, float* sq, float* acc_delta, float g, const AdadeltaHyper& h) {
  const float pv = *p;
  g = h.weight_decay != 0.0f ? add_decay(g, h.weight_decay, pv) : g;
  const float v = h.rho * *sq + (1.0f - h.rho) * g * g;
  *sq = v;
  const float delta = ::sqrtf(*acc_delta + h.eps) / ::sqrtf(v + h.eps) * g;
  *acc_delta = h.rho * *acc_delta + (1.0f - h.rho) * delta * delta;
  *p = pv - h.lr * delta;
}

}  // namespace cuvi::kern

#include <type_traits>

namespace cuvi::kern {

// Host-side visitors turning a runtime op code into a compile-time one, so a
// launcher instantiates one specialised kernel per op.
template <class F>
void visit_unary(UnaryOp op, F&& f) {
  switch (op) {
#define CUVI_UNARY_CASE(X) \
  case UnaryOp::X:         \
    f(std::integral_constant<UnaryOp, UnaryOp::X>{}); \
    break;
    CUVI_UNARY_CASE(kNeg) CUVI_UNARY_CASE(kExp) CUVI_UNARY_CASE(kLog) CUVI_UNARY_CASE(kLog1p)
    CUVI_UNARY_CASE(kExpm1) CUVI_UNARY_CASE(kSqrt) CUVI_UNARY_CASE(kAbs) CUVI_UNARY_CASE(kSquare)
    CUVI_UNARY_CASE(kReciprocal) CUVI_UNARY_CASE(kSoftplus) CUVI_UNARY_CASE(kSigmoid)
    CUVI_UNARY_CASE(kLogSigmoid) CUVI_UNARY_CASE(kTanh) CUVI_UNARY_CASE(kRelu) CUVI_UNARY_CASE(kLgamma)
    CUVI_UNARY_CASE(kDigamma) CUVI_UNARY_CASE(kTrigamma) CUVI_UNARY_CASE(kSin) CUVI_UNARY_CASE(kCos)
    CUVI_UNARY_CASE(kErf) CUVI_UNARY_CASE(kErfinv) CUVI_UNARY_CASE(kNdtr) CUVI_UNARY_CASE(kNdtri)
    CUVI_UNARY_CASE(kAtan)
#undef CUVI_UNARY_CASE
    default:
      break;
  }
}

template <class F>
void visit_binary(BinaryOp op, F&& f) {
  switch (op) {
#define CUVI_BINARY_CASE(X) \
  case BinaryOp::X:         \
    f(std::integral_constant<BinaryOp, BinaryOp::X>{}); \
    break;
    CUVI_BINARY_CASE(kAdd) CUVI_BINARY_CASE(kSub) CUVI_BINARY_CASE(kMul) CUVI_BINARY_CASE(kDiv)
    CUVI_BINARY_CASE(kPow) CUVI_BINARY_CASE(kMaximum) CUVI_BINARY_CASE(kMinimum) CUVI_BINARY_CASE(kLt)
    CUVI_BINARY_CASE(kLe) CUVI_BINARY_CASE(kGt) CUVI_BINARY_CASE(kGe) CUVI_BINARY_CASE(kEq)
    CUVI_BINARY_CASE(kNe) CUVI_BINARY_CASE(kGammainc) CUVI_BINARY_CASE(kGammaincc) CUVI_BINARY_CASE(kStdtr)
#undef CUVI_BINARY_CASE
    default:
      break;
  }
}

}  // namespace cuvi::kern
