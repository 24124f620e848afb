"""Reference values for cuvi's compound and zero-inflated families, computed
by Pyro's own distributions in float64 with torch autograd.

Writes pyro_compound.csv: one row per (family, value, parameters) with the
log-probability and its derivatives with respect to the value (continuous
families only; 0 for counts) and each parameter. Unused parameter columns
are 0. Family codes:
  0 BetaBinomial(concentration1, concentration0, total_count)
  1 GammaPoisson(concentration, rate)
  2 NegativeBinomial(total_count, logits=)
  3 ZeroInflatedPoisson(rate, gate=)
  4 ZeroInflatedPoisson(rate, gate_logits=)
  5 ZeroInflatedNegativeBinomial(total_count, probs=, gate=)
  6 ZeroInflatedNegativeBinomial(total_count, logits=, gate_logits=)
  7 AsymmetricLaplace(loc, scale, asymmetry)
  8 Binomial(total_count, logits=)

Run: python gen_pyro_compound.py > pyro_compound.csv (Pyro 1.9.2, torch 2.x).
"""
import numpy as np
import torch
import pyro.distributions as dist

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261204)


def make(code, p):
    if code == 0:
        return dist.BetaBinomial(p[0], p[1], total_count=p[2])
    if code == 1:
        return dist.GammaPoisson(p[0], p[1])
    if code == 2:
        return dist.NegativeBinomial(p[0], logits=p[1])
    if code == 3:
        return dist.ZeroInflatedPoisson(p[0], gate=p[1])
    if code == 4:
        return dist.ZeroInflatedPoisson(p[0], gate_logits=p[1])
    if code == 5:
        return dist.ZeroInflatedNegativeBinomial(p[0], probs=p[1], gate=p[2])
    if code == 6:
        return dist.ZeroInflatedNegativeBinomial(p[0], logits=p[1], gate_logits=p[2])
    if code == 7:
        return dist.AsymmetricLaplace(p[0], p[1], p[2])
    return dist.Binomial(p[0], logits=p[1])


def params(code):
    u = rng.uniform
    if code == 0:
        return [u(0.3, 6), u(0.3, 6), float(rng.integers(1, 60))]
    if code == 1:
        return [u(0.2, 8), u(0.1, 5)]
    if code == 2:
        return [u(0.2, 8), u(-4, 3)]
    if code == 3:
        return [u(0.1, 9), u(0.02, 0.95)]
    if code == 4:
        return [u(0.1, 9), u(-5, 5)]
    if code == 5:
        return [u(0.2, 8), u(0.05, 0.9), u(0.02, 0.95)]
    if code == 6:
        return [u(0.2, 8), u(-4, 3), u(-5, 5)]
    if code == 7:
        return [u(-2, 2), u(0.3, 3), u(0.3, 3)]
    return [float(rng.integers(1, 60)), u(-4, 4)]


def value(code, p):
    if code == 7:
        return p[0] + p[1] * rng.normal() * 2
    if code == 0:
        return float(rng.integers(0, int(p[2]) + 1))
    if code == 8:
        return float(rng.integers(0, int(p[0]) + 1))
    # counts: a third zeros (the inflated cell), the rest spread to ~20
    return 0.0 if rng.uniform() < 1 / 3 else float(rng.integers(1, 21))


rows = []
for code in range(9):
    for i in range(40):
        p = params(code)
        # a few extreme logits, where a probability parameterisation rounds to 0 or 1
        if code in (2, 4, 6, 8) and i >= 36:
            p[1] = [-30.0, 25.0, 30.0, -18.0][i - 36]
            if code == 6:
                p[2] = [35.0, -25.0, 20.0, -40.0][i - 36]
        x = value(code, p)
        if code in (3, 4, 5, 6) and i % 4 == 0:
            x = 0.0
        pt = [torch.tensor(v, requires_grad=True) for v in p]
        xt = torch.tensor(x, requires_grad=(code == 7))
        lp = make(code, pt).log_prob(xt)
        wrt = pt + ([xt] if code == 7 else [])
        grads = torch.autograd.grad(lp, wrt, allow_unused=True)
        g = [0.0 if t is None else t.item() for t in grads]
        dx = g[-1] if code == 7 else 0.0
        gp = g[:len(p)] + [0.0] * (3 - len(p))
        pp = p + [0.0] * (3 - len(p))
        rows.append([code, x] + pp + [lp.item(), dx] + gp)

print("family,x,p0,p1,p2,log_prob,dlogp_dx,dlogp_dp0,dlogp_dp1,dlogp_dp2")
for r in rows:
    print(",".join(repr(float(v)) if i else str(int(v)) for i, v in enumerate(r)))
