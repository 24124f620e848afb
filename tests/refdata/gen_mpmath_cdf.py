"""Reference values for cuvi's incomplete gamma / beta and Student t ops and
for the cdf / icdf / entropy built on them, computed by mpmath at 150 digits.

Writes mpmath_cdf.csv, one row per evaluation:

  case,args...,value,derivatives...,conditioning...

(case as its index in the list below, 0-based)
with three argument slots (unused ones 0). For each output y (the value
and each derivative) the row also holds its absolute conditioning
  c(y) = sum_k |arg_k * d y / d arg_k|,
the change of y under relative perturbations of size 1 in every argument:
cuvi's float32 evaluation rounds its inputs' intermediate products once or
twice (rate * x, (x - loc) / scale, ...), so the test allows
eps * (C |y| + c(y)) with eps = 2^-24 and a small C for the final roundings.
Every input is a float32 number, so cuvi sees exactly the inputs used here.

cases (arguments in order):
  gammainc a x          regularised lower incomplete gamma P(a, x)
  gammaincc a x         Q(a, x) = 1 - P(a, x)
  betainc a b x         regularised incomplete beta I_x(a, b)
  stdtr df t            Student's t distribution function
  gamma_cdf a rate x    Gamma(a, rate).cdf(x) = P(a, rate x)
  chi2_cdf df x         Chi2(df).cdf(x) = P(df/2, x/2)
  invgamma_cdf a rate x InverseGamma(a, rate).cdf(x) = Q(a, rate / x)
  beta_cdf a b x        Beta(a, b).cdf(x) = I_x(a, b)
  studentt_cdf df loc scale x ... (four arguments: x in the fourth slot)
  cb_cdf l x / cb_icdf l q / cb_entropy l
                        ContinuousBernoulli.from_logits(l)
  cbp_cdf p x / cbp_icdf p q / cbp_entropy p
                        ContinuousBernoulli(probs p)

studentt_cdf has four arguments, so the file has four argument slots.

Run: python gen_mpmath_cdf.py > mpmath_cdf.csv (mpmath 1.3).
"""
import sys

import mpmath as mp
import numpy as np

mp.mp.dps = 150
rng = np.random.default_rng(20261204)
NA = 4


def f32(v):
    return float(np.float32(v))


def P(a, x):
    return mp.gammainc(a, 0, x, regularized=True)


def Q(a, x):
    return mp.gammainc(a, x, mp.inf, regularized=True)


def I(a, b, x):
    return mp.betainc(a, b, 0, x, regularized=True)


def stdtr(df, t):
    z = df / (df + t * t)
    tail = I(df / 2, mp.mpf(1) / 2, z) / 2
    return tail if t < 0 else 1 - tail


def cb_cdf(l, x):
    if l == 0:
        return x
    return mp.expm1(l * x) / mp.expm1(l)


def cb_icdf(l, q):
    if l == 0:
        return q
    return mp.log1p(q * mp.expm1(l)) / l


def cb_entropy(l):
    # -E[log p(X)], log p(x) = l x - softplus(l) + log(l / tanh(l / 2))
    if abs(l) < mp.mpf(10) ** -8:  # the series (next term l^6 / 36288)
        return -l * l / 24 + l ** 4 / 960
    mean = 1 / (1 - mp.exp(-l)) - 1 / l
    return -(l * mean - mp.log1p(mp.exp(l)) + mp.log(l / mp.tanh(l / 2)))


def logit(p):
    return mp.log(p) - mp.log1p(-p)


CASES = ["gammainc", "gammaincc", "betainc", "stdtr", "gamma_cdf", "chi2_cdf", "invgamma_cdf", "beta_cdf",
         "studentt_cdf", "cb_cdf", "cb_icdf", "cb_entropy", "cbp_cdf", "cbp_icdf", "cbp_entropy"]

FUNCS = {
    "gammainc": P,
    "gammaincc": Q,
    "betainc": I,
    "stdtr": stdtr,
    "gamma_cdf": lambda a, r, x: P(a, r * x),
    "chi2_cdf": lambda k, x: P(k / 2, x / 2),
    "invgamma_cdf": lambda a, r, x: Q(a, r / x),
    "beta_cdf": I,
    "studentt_cdf": lambda df, loc, s, x: stdtr(df, (x - loc) / s),
    "cb_cdf": cb_cdf,
    "cb_icdf": cb_icdf,
    "cb_entropy": cb_entropy,
    "cbp_cdf": lambda p, x: cb_cdf(logit(p), x),
    "cbp_icdf": lambda p, q: cb_icdf(logit(p), q),
    "cbp_entropy": lambda p: cb_entropy(logit(p)),
}


def partial(f, args, k):
    h = mp.mpf(10) ** -30 * max(abs(args[k]), mp.mpf(10) ** -20)
    up = list(args)
    dn = list(args)
    up[k] += h
    dn[k] -= h
    return (f(*up) - f(*dn)) / (2 * h)


def row(case, args):
    f = FUNCS[case]
    a = [mp.mpf(v) for v in args]
    n = len(a)
    y = f(*a)
    d = [partial(f, a, k) for k in range(n)]
    cond_y = sum(abs(a[k] * d[k]) for k in range(n))
    cond_d = []
    for j in range(n):
        dj = lambda *b, j=j: partial(f, list(b), j)
        cond_d.append(sum(abs(a[k] * partial(dj, a, k)) for k in range(n)))
    if case in ("cb_icdf", "cbp_icdf"):
        # cuvi's icdf gradients are functions of the float32 value x it
        # returns, evaluated (as its sampler's are) through x or 1 - x; that
        # value is ~4 float roundings deep (expm1, product, log1p, quotient),
        # so absolute ~4 eps: add 4 |dg_k/dx| at fixed theta, with
        # g_0 = dx/dtheta = -(dF/dtheta) / p(x), g_1 = dx/dq = 1 / p(x).
        cdf = FUNCS[case.replace("icdf", "cdf")]
        x = y
        pdf = lambda xx: partial(cdf, [a[0], xx], 1)
        g0 = lambda xx: -partial(cdf, [a[0], xx], 0) / pdf(xx)
        g1 = lambda xx: 1 / pdf(xx)
        for k, g in enumerate((g0, g1)):
            cond_d[k] += 4 * abs(partial(lambda xx: g(xx), [x], 0))
    pad = lambda v: [float(x) for x in v] + [0.0] * (NA - n)
    return [case] + pad(args) + [float(y)] + pad(d) + [float(cond_y)] + pad(cond_d)


def loguni(lo, hi):
    return f32(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def main():
    mp.mp.dps = 150
    rows = []
    for a in [0.05, 0.3, 1.0, 2.5, 10.0, 100.0, 2000.0]:
        for _ in range(5):
            x = f32(a * np.exp(rng.uniform(-4, 1.6)) if a >= 1 else np.exp(rng.uniform(-6, 2)))
            rows.append(row("gammainc", [f32(a), x]))
            rows.append(row("gammaincc", [f32(a), x]))
    for _ in range(30):
        a, b = loguni(0.1, 300), loguni(0.1, 300)
        m = a / (a + b)
        x = f32(min(max(m + rng.normal() * np.sqrt(m * (1 - m) / (a + b + 1)) * 2, 1e-6), 1 - 1e-6))
        rows.append(row("betainc", [a, b, x]))
    for x in [1e-5, 0.02, 0.5, 0.98, 0.99999]:
        rows.append(row("betainc", [0.5, 3.0, f32(x)]))
    for _ in range(30):
        df = loguni(0.3, 3000)
        t = f32(rng.standard_cauchy() * loguni(0.1, 3))
        rows.append(row("stdtr", [df, t]))
    for t in [0.0, 1e-6, -1e-6, -1e3, 1e3, -40.0]:
        rows.append(row("stdtr", [4.0, f32(t)]))
    for _ in range(12):
        a, r = loguni(0.2, 50), loguni(0.1, 10)
        x = f32(a / r * np.exp(rng.uniform(-2, 1)))
        rows.append(row("gamma_cdf", [a, r, x]))
        rows.append(row("invgamma_cdf", [a, r, f32(r / a * np.exp(rng.uniform(-1, 2)))]))
        k = loguni(0.3, 40)
        rows.append(row("chi2_cdf", [k, f32(k * np.exp(rng.uniform(-2, 1)))]))
        a, b = loguni(0.2, 20), loguni(0.2, 20)
        rows.append(row("beta_cdf", [a, b, f32(rng.uniform(0.01, 0.99))]))
        df, loc, s = loguni(0.5, 60), f32(rng.uniform(-2, 2)), loguni(0.2, 3)
        rows.append(row("studentt_cdf", [df, loc, s, f32(loc + s * rng.standard_t(df) * 1.5)]))
    ls = [0.0, 1e-5, -1e-5, 5e-4, -5e-4, 2e-3, -2e-3, 0.1, -0.1, 0.9, 1.9, -1.9, 2.1, -2.1, 5.0, -5.0, 19.0,
          25.0, -25.0, 90.0, -90.0]
    for l in ls:
        l = f32(l)
        rows.append(row("cb_entropy", [l]))
        for v in [0.0, 0.03, 0.3, 0.5, 0.77, 0.999, 1.0]:
            rows.append(row("cb_cdf", [l, f32(v)]))
        for q in [0.001, 0.1, 0.5, 0.9, 0.999]:
            rows.append(row("cb_icdf", [l, f32(q)]))
    for p in [0.001, 0.1, 0.4999, 0.5, 0.5003, 0.7, 0.95, 0.9999]:
        p = f32(p)
        rows.append(row("cbp_entropy", [p]))
        for v in [0.03, 0.5, 0.9]:
            rows.append(row("cbp_cdf", [p, f32(v)]))
        for q in [0.05, 0.5, 0.95]:
            rows.append(row("cbp_icdf", [p, f32(q)]))

    head = ["case"] + [f"a{k}" for k in range(NA)] + ["value"] + [f"d{k}" for k in range(NA)] + ["cond_value"] + [
        f"cond_d{k}" for k in range(NA)]
    out = sys.stdout
    out.write(",".join(head) + "\n")
    for r in rows:
        out.write(",".join([str(CASES.index(r[0]))] + [repr(v) for v in r[1:]]) + "\n")


if __name__ == "__main__":
    main()
