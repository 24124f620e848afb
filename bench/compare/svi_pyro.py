"""The models of bench/bench_svi.cpp in Pyro, timed the same way."""
import argparse
import json
import time

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO
from pyro.infer.autoguide import AutoDiagonalNormal
from pyro.optim import Adam


def coin(device):
    data = torch.tensor([1.0] * 6 + [0.0] * 4, device=device)

    def model(d):
        f = pyro.sample("latent_fairness", dist.Beta(torch.tensor(10.0, device=device), torch.tensor(10.0, device=device)))
        with pyro.plate("data", d.shape[0]):
            pyro.sample("obs", dist.Bernoulli(f), obs=d)

    def guide(d):
        a = pyro.param("alpha_q", torch.tensor(15.0, device=device), constraint=dist.constraints.positive)
        b = pyro.param("beta_q", torch.tensor(15.0, device=device), constraint=dist.constraints.positive)
        pyro.sample("latent_fairness", dist.Beta(a, b))

    return model, guide, data, Adam({"lr": 5e-4})


def local_latents(device, n, b):
    torch.manual_seed(3)
    data = torch.randn(n, device=device)

    def model(x):
        with pyro.plate("data", n, subsample_size=b) as idx:
            z = pyro.sample("z", dist.Normal(torch.zeros((), device=device), 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x[idx])

    def guide(x):
        loc = pyro.param("loc", torch.zeros(n, device=device))
        scale = pyro.param("scale", torch.full((n,), 0.5, device=device), constraint=dist.constraints.positive)
        with pyro.plate("data", n, subsample_size=b) as idx:
            pyro.sample("z", dist.Normal(loc[idx], scale[idx]))

    return model, guide, data, Adam({"lr": 1e-2})


def gmm(device, n, k):
    """Pyro's Gaussian-mixture tutorial with n points around k centres (0, 3, 6, ...):
    each point's assignment enumerated, MAP (Delta) guide for the globals."""
    torch.manual_seed(4)
    data = torch.randn(n, device=device) + 3.0 * (torch.arange(n, device=device) % k).float()

    def model(x):
        weights = pyro.sample("weights", dist.Dirichlet(torch.full((k,), 0.5, device=device)))
        scale = pyro.sample("scale", dist.LogNormal(torch.tensor(0.0, device=device), 2.0))
        with pyro.plate("components", k):
            locs = pyro.sample("locs", dist.Normal(torch.tensor(0.0, device=device), 10.0))
        with pyro.plate("data", x.shape[0]):
            a = pyro.sample("assignment", dist.Categorical(weights), infer={"enumerate": "parallel"})
            pyro.sample("obs", dist.Normal(locs[a], scale), obs=x)

    def guide(x):
        w = pyro.param("weights_map", torch.full((k,), 1.0 / k, device=device), constraint=dist.constraints.simplex)
        s = pyro.param("scale_map", torch.tensor(1.0, device=device), constraint=dist.constraints.positive)
        l = pyro.param("locs_map", 3.0 * torch.arange(k, device=device).float())
        pyro.sample("weights", dist.Delta(w).to_event(1))
        pyro.sample("scale", dist.Delta(s))
        with pyro.plate("components", k):
            pyro.sample("locs", dist.Delta(l))

    return model, guide, data, Adam({"lr": 0.05})


def regression(device, n, b, d):
    """examples/regression: Bayesian linear regression over n rows of d features,
    b rows per step, an AutoDiagonalNormal guide (the data's values differ from
    cuvi's; the work per step is the same)."""
    torch.manual_seed(6)
    x = torch.randn(n, d, device=device)
    w_true = torch.tensor([(-1.0) ** j * (1 + 0.5 * j) for j in range(d)], device=device)
    y = x @ w_true + 1.0 + 0.5 * torch.randn(n, device=device)

    def model(data):
        xs, ys = data
        w = pyro.sample("weight", dist.Normal(torch.zeros(d, device=device), 1.0).to_event(1))
        bias = pyro.sample("bias", dist.Normal(torch.tensor(0.0, device=device), 10.0))
        sigma = pyro.sample("sigma", dist.Uniform(torch.tensor(0.0, device=device), 10.0))
        with pyro.plate("data", n, subsample_size=b) as idx:
            pyro.sample("obs", dist.Normal(xs[idx] @ w + bias, sigma), obs=ys[idx])

    return model, AutoDiagonalNormal(model), (x, y), Adam({"lr": 0.03})


def vae(device, b, h, n=10000, x_dim=784, z_dim=50):
    """examples/vae at the size of Pyro's VAE tutorial: one softplus hidden layer of h
    units in encoder and decoder, z_dim latents, Bernoulli logits, a minibatch of b of
    n binary images drawn by the plate each step (random pixels here; cuvi's are
    stroke images: the work per step is the same)."""
    torch.manual_seed(9)
    data = (torch.rand(n, x_dim, device=device) < 0.2).float()
    encoder = torch.nn.Sequential(torch.nn.Linear(x_dim, h), torch.nn.Softplus(), torch.nn.Linear(h, 2 * z_dim)).to(device)
    decoder = torch.nn.Sequential(torch.nn.Linear(z_dim, h), torch.nn.Softplus(), torch.nn.Linear(h, x_dim)).to(device)

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", n, subsample_size=b) as idx:
            z = pyro.sample("latent", dist.Normal(torch.zeros(b, z_dim, device=device), 1.0).to_event(1))
            pyro.sample("obs", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x[idx])

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", n, subsample_size=b) as idx:
            out = encoder(x[idx])
            pyro.sample("latent", dist.Normal(out[:, :z_dim], torch.nn.functional.softplus(out[:, z_dim:])).to_event(1))

    return model, guide, data, Adam({"lr": 1e-3})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["coin", "local_latents", "gmm", "regression", "vae"], default="coin")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--n", type=int, default=1 << 20)
    p.add_argument("--b", type=int, default=1 << 14)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--d", type=int, default=3)
    p.add_argument("--h", type=int, default=400)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    loss = Trace_ELBO()
    if a.model == "coin":
        model, guide, data, opt = coin(a.device)
    elif a.model == "gmm":
        model, guide, data, opt = gmm(a.device, a.n, a.k)
        loss = TraceEnum_ELBO(max_plate_nesting=1)
    elif a.model == "regression":
        model, guide, data, opt = regression(a.device, a.n, a.b, a.d)
    elif a.model == "vae":
        model, guide, data, opt = vae(a.device, a.b, a.h)
    else:
        model, guide, data, opt = local_latents(a.device, a.n, a.b)
    svi = SVI(model, guide, opt, loss=loss)
    svi.step(data)  # warm-up: parameter creation
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        svi.step(data)  # returns a float: Pyro synchronises every step
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    s = time.perf_counter() - t0
    print(json.dumps({"framework": "pyro", "model": a.model, "device": a.device, "steps": a.steps,
                      "n": a.n, "b": a.b, "k": a.k, "d": a.d, "h": a.h, "seconds": s, "steps_per_s": a.steps / s}))


if __name__ == "__main__":
    main()
