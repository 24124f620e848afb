"""Reference values for cuvi's closed-form cdf, icdf and entropy, computed by
PyTorch's / Pyro's own distributions in float64 with torch autograd.

Writes torch_cdf_entropy.csv: one row per (family, what, parameters, argument)
with the value and its derivatives with respect to the argument (x for cdf,
q for icdf; 0 for entropy) and to each parameter. Every input is a float32
number (rounded before use), so cuvi's float32 evaluation sees exactly the
inputs the reference used. Unused parameter columns are 0.

what: 0 cdf, 1 icdf, 2 entropy. Family codes (parameters in cuvi's order):
   0 Normal(loc, scale)          1 LogNormal(loc, scale)    2 HalfNormal(scale)
   3 Laplace(loc, scale)         4 Cauchy(loc, scale)       5 HalfCauchy(scale)
   6 Uniform(low, high)          7 Exponential(rate)        8 Gumbel(loc, scale)
   9 Logistic(loc, scale)       10 Pareto(scale, alpha)    11 Weibull(scale, k)
  12 Gamma(concentration, rate) 13 Chi2(df)                14 InverseGamma(conc, rate)
  15 Beta(c1, c0)               16 StudentT(df, loc, scale) 17 Bernoulli(probs)
  18 Bernoulli(logits)          19 Geometric(probs)        20 Dirichlet(c0, c1, c2)
  21 Categorical(probs p0..p2, unnormalised)   22 Categorical(logits p0..p2)
  23 MultivariateNormal(loc 0, scale_tril [[p0, 0], [p1, p2]])
  24 LowRankMultivariateNormal(loc 0, cov_factor [p0, p1]^T, cov_diag [p2, p3])

Run: python gen_torch_cdf_entropy.py > torch_cdf_entropy.csv (Pyro 1.9.2, torch 2.x).
"""
import numpy as np
import torch
import pyro.distributions as dist

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261204)
NP = 4
CDF_FAMILIES = range(12)


def f32(v):
    return float(np.float32(v))


def make(code, p):
    if code == 0:
        return dist.Normal(p[0], p[1])
    if code == 1:
        return dist.LogNormal(p[0], p[1])
    if code == 2:
        return dist.HalfNormal(p[0])
    if code == 3:
        return dist.Laplace(p[0], p[1])
    if code == 4:
        return dist.Cauchy(p[0], p[1])
    if code == 5:
        return dist.HalfCauchy(p[0])
    if code == 6:
        return dist.Uniform(p[0], p[1])
    if code == 7:
        return dist.Exponential(p[0])
    if code == 8:
        return dist.Gumbel(p[0], p[1])
    if code == 9:
        return dist.Logistic(p[0], p[1])
    if code == 10:
        return dist.Pareto(p[0], p[1])
    if code == 11:
        return dist.Weibull(p[0], p[1])
    if code == 12:
        return dist.Gamma(p[0], p[1])
    if code == 13:
        return dist.Chi2(p[0])
    if code == 14:
        return dist.InverseGamma(p[0], p[1])
    if code == 15:
        return dist.Beta(p[0], p[1])
    if code == 16:
        return dist.StudentT(p[0], p[1], p[2])
    if code == 17:
        return dist.Bernoulli(probs=p[0])
    if code == 18:
        return dist.Bernoulli(logits=p[0])
    if code == 19:
        return dist.Geometric(probs=p[0])
    if code == 20:
        return dist.Dirichlet(torch.stack(p[:3]))
    if code == 21:
        return dist.Categorical(probs=torch.stack(p[:3]))
    if code == 22:
        return dist.Categorical(logits=torch.stack(p[:3]))
    zero = torch.zeros(2)
    if code == 23:
        L = torch.stack([torch.stack([p[0], torch.zeros(())]), torch.stack([p[1], p[2]])])
        return dist.MultivariateNormal(zero, scale_tril=L)
    return dist.LowRankMultivariateNormal(zero, torch.stack(p[:2]).unsqueeze(-1), torch.stack(p[2:4]))


def params(code):
    u = rng.uniform
    if code in (0, 3, 4, 8, 9):
        return [u(-3, 3), u(0.2, 4)]
    if code == 1:
        return [u(-1, 1.5), u(0.2, 1.5)]
    if code in (2, 5):
        return [u(0.2, 4)]
    if code == 6:
        lo = u(-3, 2)
        return [lo, lo + u(0.3, 5)]
    if code == 7:
        return [u(0.2, 5)]
    if code == 10:
        return [u(0.3, 3), u(0.5, 6)]
    if code == 11:
        return [u(0.3, 3), u(0.4, 5)]
    if code in (12, 14):
        return [u(0.2, 8), u(0.2, 5)]
    if code == 13:
        return [u(0.3, 12)]
    if code == 15:
        return [u(0.2, 8), u(0.2, 8)]
    if code == 16:
        return [u(0.5, 30), u(-2, 2), u(0.2, 3)]
    if code in (17, 19):
        return [u(0.02, 0.98)]
    if code == 18:
        return [u(-12, 12)]
    if code == 20:
        return [u(0.2, 6) for _ in range(3)]
    if code == 21:
        return [u(0.05, 3) for _ in range(3)]
    if code == 22:
        return [u(-4, 4) for _ in range(3)]
    if code == 23:
        return [u(0.3, 3), u(-2, 2), u(0.3, 3)]
    return [u(-2, 2), u(-2, 2), u(0.2, 3), u(0.2, 3)]


def row(code, what, p, arg):
    pt = [torch.tensor(f32(v), requires_grad=True) for v in p]
    d = make(code, pt)
    a = torch.tensor(f32(arg), requires_grad=True)
    if what == 0:
        out = d.cdf(a)
    elif what == 1:
        out = d.icdf(a)
    else:
        out = d.entropy()
    grads = torch.autograd.grad(out, [a] + pt, allow_unused=True)
    g = [0.0 if x is None else float(x) for x in grads]
    pv = [f32(v) for v in p] + [0.0] * (NP - len(p))
    gp = g[1:] + [0.0] * (NP - len(p))
    return [code, what] + pv + [f32(arg) if what < 2 else 0.0, float(out), g[0]] + gp


rows = []
for code in range(25):
    for _ in range(6):
        p = params(code)
        rows.append(row(code, 2, p, 0.0))
        if code not in CDF_FAMILIES:
            continue
        d = make(code, [torch.tensor(f32(v)) for v in p])
        qs = [0.001, 0.03, 0.2, 0.5, 0.77, 0.97, 0.999]
        for q in qs:
            rows.append(row(code, 1, p, q))
        # cdf at the quantiles' points (inside the support) and at two draws.
        xs = [float(d.icdf(torch.tensor(f32(q)))) for q in (0.002, 0.1, 0.5, 0.9, 0.998)]
        xs += [float(v) for v in d.sample((2,))]
        for x in xs:
            x = f32(x)
            if code == 10 and x < f32(p[0]):  # Pareto's support starts at scale
                continue
            rows.append(row(code, 0, p, x))

cols = ["family", "what"] + [f"p{k}" for k in range(NP)] + ["arg", "value", "d_arg"] + [f"d_p{k}" for k in range(NP)]
print(",".join(cols))
for r in rows:
    print(",".join(repr(float(v)) if i >= 2 else str(int(v)) for i, v in enumerate(r)))
