"""The models of bench/bench_svi.cpp in NumPyro, timed the same way."""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoDiagonalNormal
from numpyro.optim import Adam


def coin():
    data = jnp.array([1.0] * 6 + [0.0] * 4)

    def model(d):
        f = numpyro.sample("latent_fairness", dist.Beta(10.0, 10.0))
        with numpyro.plate("data", d.shape[0]):
            numpyro.sample("obs", dist.Bernoulli(f), obs=d)

    def guide(d):
        a = numpyro.param("alpha_q", 15.0, constraint=dist.constraints.positive)
        b = numpyro.param("beta_q", 15.0, constraint=dist.constraints.positive)
        numpyro.sample("latent_fairness", dist.Beta(a, b))

    return model, guide, data, Adam(5e-4)


def local_latents(n, b):
    data = jax.random.normal(jax.random.PRNGKey(3), (n,))

    def model(x):
        with numpyro.plate("data", n, subsample_size=b) as idx:
            z = numpyro.sample("z", dist.Normal(0.0, 1.0))
            numpyro.sample("x", dist.Normal(z, 1.0), obs=x[idx])

    def guide(x):
        loc = numpyro.param("loc", jnp.zeros(n))
        scale = numpyro.param("scale", jnp.full((n,), 0.5), constraint=dist.constraints.positive)
        with numpyro.plate("data", n, subsample_size=b) as idx:
            numpyro.sample("z", dist.Normal(loc[idx], scale[idx]))

    return model, guide, data, Adam(1e-2)


def regression(n, b, d):
    """examples/regression: Bayesian linear regression, b of n rows per step, AutoDiagonalNormal."""
    kx, ky = jax.random.split(jax.random.PRNGKey(6))
    x = jax.random.normal(kx, (n, d))
    w_true = jnp.array([(-1.0) ** j * (1 + 0.5 * j) for j in range(d)])
    y = x @ w_true + 1.0 + 0.5 * jax.random.normal(ky, (n,))

    def model(data):
        xs, ys = data
        w = numpyro.sample("weight", dist.Normal(jnp.zeros(d), 1.0).to_event(1))
        bias = numpyro.sample("bias", dist.Normal(0.0, 10.0))
        sigma = numpyro.sample("sigma", dist.Uniform(0.0, 10.0))
        with numpyro.plate("data", n, subsample_size=b) as idx:
            numpyro.sample("obs", dist.Normal(xs[idx] @ w + bias, sigma), obs=ys[idx])

    return model, AutoDiagonalNormal(model), (x, y), Adam(0.03)


def vae(b, h, n=10000, x_dim=784, z_dim=50):
    """examples/vae at the size of Pyro's VAE tutorial (see svi_pyro.py's vae): the
    nets' weights are plain params (PyTorch's Linear initialisation), so no
    flax/haiku is needed; the work per step is the same."""
    data = (jax.random.uniform(jax.random.PRNGKey(9), (n, x_dim)) < 0.2).astype(jnp.float32)

    def linear(name, key, n_in, n_out):
        kw, kb = jax.random.split(key)
        bound = 1.0 / n_in ** 0.5
        w = numpyro.param(f"{name}.weight", lambda _: jax.random.uniform(kw, (n_in, n_out), minval=-bound, maxval=bound))
        bias = numpyro.param(f"{name}.bias", lambda _: jax.random.uniform(kb, (n_out,), minval=-bound, maxval=bound))
        return lambda x: x @ w + bias

    keys = jax.random.split(jax.random.PRNGKey(10), 4)

    def model(x):
        l0, l1 = linear("decoder.0", keys[0], z_dim, h), linear("decoder.2", keys[1], h, x_dim)
        with numpyro.plate("data", n, subsample_size=b) as idx:
            z = numpyro.sample("latent", dist.Normal(jnp.zeros((b, z_dim)), 1.0).to_event(1))
            numpyro.sample("obs", dist.Bernoulli(logits=l1(jax.nn.softplus(l0(z)))).to_event(1), obs=x[idx])

    def guide(x):
        l0, l1 = linear("encoder.0", keys[2], x_dim, h), linear("encoder.2", keys[3], h, 2 * z_dim)
        with numpyro.plate("data", n, subsample_size=b) as idx:
            out = l1(jax.nn.softplus(l0(x[idx])))
            numpyro.sample("latent", dist.Normal(out[:, :z_dim], jax.nn.softplus(out[:, z_dim:])).to_event(1))

    return model, guide, data, Adam(1e-3)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["coin", "local_latents", "regression", "vae"], default="coin")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--n", type=int, default=1 << 20)
    p.add_argument("--b", type=int, default=1 << 14)
    p.add_argument("--d", type=int, default=3)
    p.add_argument("--h", type=int, default=400)
    a = p.parse_args()
    if a.model == "coin":
        model, guide, data, opt = coin()
    elif a.model == "regression":
        model, guide, data, opt = regression(a.n, a.b, a.d)
    elif a.model == "vae":
        model, guide, data, opt = vae(a.b, a.h)
    else:
        model, guide, data, opt = local_latents(a.n, a.b)
    svi = SVI(model, guide, opt, loss=Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(0), data)
    update = jax.jit(svi.update)
    t0 = time.perf_counter()
    state, loss = update(state, data)  # compile
    loss.block_until_ready()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(a.steps):
        state, loss = update(state, data)
    loss.block_until_ready()
    s = time.perf_counter() - t0
    print(json.dumps({"framework": "numpyro", "model": a.model, "device": str(jax.devices()[0]), "steps": a.steps,
                      "n": a.n, "b": a.b, "d": a.d, "h": a.h, "seconds": s, "steps_per_s": a.steps / s, "compile_seconds": compile_s}))


if __name__ == "__main__":
    main()
