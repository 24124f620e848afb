// cuvi kernels: support kinds of the distribution structs and the checks the
// structs share for their parameter constraints.
#pragma once

#include "../special.hpp"

namespace cuvi::kern {

namespace support {
constexpr int kReal = 0;
constexpr int kPositive = 1;
constexpr int kUnitInterval = 2;
constexpr int kInterval = 3;  // Uniform: [low, high], depends on the parameters
constexpr int kBoolean = 4;
constexpr int kNonNegInteger = 5;
constexpr int kSimplex = 6;
constexpr int kIntegerInterval = 7;  // Categorical: {0, ..., K-1}
constexpr int kGreaterThan = 8;      // Pareto: x >= p[0], depends on the parameters
}  // namespace support

// lo < x (lo_open) or lo <= x, and x <= hi; NaN is never in range.
CUVI_HD bool in_range(float x, float lo, bool lo_open, float hi) { return (lo_open ? x > lo : x >= lo) && x <= hi; }

namespace check {
// A real parameter must be finite (NaN and +-inf are rejected).
CUVI_HD bool real(float v) { return finite_f(v); }
// A positive parameter must be finite and > 0.
CUVI_HD bool positive(float v) { return v > 0.0f && v <= kFltMax; }
// A probability must lie in [0, 1] (NaN rejected).
CUVI_HD bool unit(float v) { return v >= 0.0f && v <= 1.0f; }
// A count: finite, >= 0, integral.
CUVI_HD bool nonneg_integer(float v) { return v >= 0.0f && v <= kFltMax && k_floor(v) == v; }
CUVI_HD bool boolean(float v) { return v == 0.0f || v == 1.0f; }
// A real value (not a parameter): anything but NaN (log_prob of +-inf is -inf).
CUVI_HD bool real_value(float v) { return v == v; }
// The index of the first of n parameters that is not positive, or -1.
CUVI_HD int first_nonpositive(const float* p, int n) {
  for (int i = 0; i < n; ++i)
    if (!positive(p[i])) return i;
  return -1;
}
// A (real, positive) parameter pair, as a location and a scale: the index
// of the first bad one, or -1.
CUVI_HD int first_bad_loc_scale(const float* p) { return !real(p[0]) ? 0 : !positive(p[1]) ? 1 : -1; }
}  // namespace check

}  // namespace cuvi::kern
