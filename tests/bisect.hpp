// Inverse of an increasing double function by bisection: the reference the
// tests hold the inverse functions (ndtri, erfinv, icdf, quantiles) to,
// sharing no code with their Halley iterations.
#pragma once

namespace cuvi::testing {

// x in [lo, hi] with f(x) = y for an increasing f, halving until the
// midpoint repeats (double resolution).
template <class F>
double invert_increasing(F&& f, double y, double lo, double hi) {
  for (int i = 0; i < 4000; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mid == lo || mid == hi) break;
    (f(mid) < y ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace cuvi::testing
