"""Shared helpers for the estimator tests: families with closed-form E_q[f], and per-sample gradients.

The Gamma-based families are vae-lab's, whose samples carry their exact logs: the objectives read log z
through :func:`vae_lab.distributions.log_of`, exact also where z itself underflows (small shapes).

Every case is a batch of N independent copies of one distribution (batch_shape (N,)), with parameters
as leaf tensors of shape (N, ...). The gradient of ``surrogate.mean(0).sum()`` w.r.t. a leaf then holds
one independent gradient estimate per copy, whose mean is compared with the exact gradient of E_q[f]
within a number of standard errors of that mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import scipy.special as sp
import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, Normal

from vae_lab.distributions import Beta, Dirichlet, Gamma, VonMises, log_of
from vae_lab.estimators.base import Estimator

N_COPIES = 100_000


@dataclass
class Case:
    """N copies of q(params) and an f with known d E_q[f] / d param (per parameter, per component)."""

    params: dict[str, Tensor]
    make_q: Callable[[dict[str, Tensor]], Distribution]
    f: Callable[[Tensor], Tensor]
    exact: dict[str, Tensor]  # gradient of E_q[f] w.r.t. one copy's parameter (shape of params[k][0])


def _leaf(values: list[float] | float, n: int, dtype: torch.dtype) -> Tensor:
    row = torch.as_tensor(values, dtype=dtype).reshape(-1)
    return row.repeat(n, 1).requires_grad_()


def gaussian_case(n: int, dtype=torch.float64, mu: float = 0.7, sigma: float = 1.3) -> Case:
    # f = z^2: E = mu^2 + sigma^2
    return Case(
        params={"loc": _leaf(mu, n, dtype), "scale": _leaf(sigma, n, dtype)},
        make_q=lambda p: Independent(Normal(p["loc"], p["scale"]), 1),
        f=lambda z: (z**2).sum(-1),
        exact={"loc": torch.tensor([2 * mu]), "scale": torch.tensor([2 * sigma])},
    )


def gamma_case(n: int, dtype=torch.float64, alpha: float = 0.5, rate: float = 2.0) -> Case:
    # f = log z + z: E = digamma(alpha) - log(rate) + alpha / rate
    return Case(
        params={"concentration": _leaf(alpha, n, dtype), "rate": _leaf(rate, n, dtype)},
        make_q=lambda p: Independent(Gamma(p["concentration"], p["rate"]), 1),
        f=lambda z: (log_of(z) + z).sum(-1),
        exact={
            "concentration": torch.tensor([sp.polygamma(1, alpha) + 1 / rate]),
            "rate": torch.tensor([-1 / rate - alpha / rate**2]),
        },
    )


def dirichlet_case(n: int, dtype=torch.float64, alpha: tuple[float, ...] = (0.5, 1.5, 3.0)) -> Case:
    # f = log z_0: E = digamma(alpha_0) - digamma(sum alpha)
    total = sum(alpha)
    exact = torch.full((len(alpha),), -sp.polygamma(1, total), dtype=torch.float64)
    exact[0] += float(sp.polygamma(1, alpha[0]))
    return Case(
        params={"concentration": _leaf(list(alpha), n, dtype)},
        make_q=lambda p: Dirichlet(p["concentration"]),
        f=lambda z: log_of(z)[..., 0],
        exact={"concentration": exact},
    )


def beta_case(n: int, dtype=torch.float64, c1: float = 0.7, c0: float = 2.5) -> Case:
    # f = log z: E = digamma(c1) - digamma(c1 + c0)
    return Case(
        params={"concentration1": _leaf(c1, n, dtype), "concentration0": _leaf(c0, n, dtype)},
        make_q=lambda p: Independent(Beta(p["concentration1"], p["concentration0"]), 1),
        f=lambda z: log_of(z).sum(-1),
        exact={
            "concentration1": torch.tensor([sp.polygamma(1, c1) - sp.polygamma(1, c1 + c0)]),
            "concentration0": torch.tensor([-sp.polygamma(1, c1 + c0)]),
        },
    )


def von_mises_case(
    n: int, dtype=torch.float64, loc: float = 0.3, kappa: float = 2.0, a: float = -0.4, cls=None
) -> Case:
    # f = cos(z - a): E = A(kappa) cos(loc - a), A = I1/I0, A'(kappa) = 1 - A/kappa - A^2
    cls = cls or VonMises
    A = sp.i1e(kappa) / sp.i0e(kappa)
    dA = 1 - A / kappa - A * A
    return Case(
        params={"loc": _leaf(loc, n, dtype), "concentration": _leaf(kappa, n, dtype)},
        make_q=lambda p: Independent(cls(p["loc"], p["concentration"]), 1),
        f=lambda z: torch.cos(z - a).sum(-1),
        exact={
            "loc": torch.tensor([-A * math.sin(loc - a)]),
            "concentration": torch.tensor([dA * math.cos(loc - a)]),
        },
    )


CASES: dict[str, Callable[..., Case]] = {
    "gaussian": gaussian_case,
    "gamma": gamma_case,
    "dirichlet": dirichlet_case,
    "beta": beta_case,
    "vonmises": von_mises_case,
}


def per_copy_gradients(estimator: Estimator, case: Case, n_samples: int = 1) -> dict[str, Tensor]:
    """One gradient estimate per copy (the mean over its n_samples samples), per parameter."""
    estimate = estimator(case.make_q(case.params), case.f, n_samples=n_samples)
    names = list(case.params)
    grads = torch.autograd.grad(estimate.surrogate.mean(0).sum(), [case.params[k] for k in names])
    return dict(zip(names, grads, strict=True))


def z_scores(grads: dict[str, Tensor], exact: dict[str, Tensor]) -> dict[str, Tensor]:
    """(mean - exact) / standard error of the mean, per parameter component."""
    out = {}
    for name, g in grads.items():
        assert torch.isfinite(g).all(), f"non-finite gradient for {name}"
        g = g.double()
        se = g.std(0) / math.sqrt(g.shape[0])
        assert (se > 0).all(), f"zero variance for {name}: the test could not fail"
        out[name] = (g.mean(0) - exact[name].double()) / se
    return out


def assert_unbiased(grads: dict[str, Tensor], exact: dict[str, Tensor], n_se: float = 4.0) -> None:
    for name, z in z_scores(grads, exact).items():
        assert (z.abs() < n_se).all(), f"d/d{name}: off the exact gradient by {z.tolist()} standard errors"
