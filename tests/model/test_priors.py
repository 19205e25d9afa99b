"""Priors (vae_lab.model.priors): Gamma(0.3, 0.3) and the unit-cube uniform of Figurnov et al. (2018).

Densities against scipy, dtype and device following the module, and the closed-form KLs the VAE uses
(torch's registered KL(Gamma || Gamma) and KL(Beta || Beta), and vae-lab's KL(PowerSpherical ||
SphereUniform) in the VAE) against Monte Carlo within 4 standard errors, finite with finite gradients
over the heads' clipping range, float32 close to float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
import torch
from torch.distributions import Beta, Gamma, Independent, Uniform, kl_divergence

from vae_lab.errors import ConfigError
from vae_lab.model.posteriors import BetaHead, GammaHead, PowerSphericalHead
from vae_lab.model.priors import GammaPrior, SphereUniformPrior, UnitUniformPrior
from vae_lab.model.vae import VAE

F64 = torch.float64
D = 3


def test_gamma_prior_density_matches_scipy():
    prior = GammaPrior(D, concentration=0.3, rate=0.3).double()
    p = prior()
    assert p.batch_shape == () and p.event_shape == (D,)
    z = torch.tensor([[0.01, 0.5, 4.0], [1e-6, 2.0, 30.0]], dtype=F64)
    expected = st.gamma(0.3, scale=1 / 0.3).logpdf(z.numpy()).sum(-1)
    np.testing.assert_allclose(p.log_prob(z).numpy(), expected, rtol=1e-12)


def test_gamma_prior_settings():
    p = GammaPrior(D, concentration=2.0, rate=5.0)().base_dist
    assert torch.all(p.concentration == 2.0) and torch.all(p.rate == 5.0)
    for kwargs, key in (({"concentration": 0.0}, "concentration"), ({"rate": -1.0}, "rate")):
        with pytest.raises(ConfigError) as err:
            GammaPrior(D, **kwargs)
        assert err.value.key == key


def test_unit_uniform_prior_is_uniform_on_the_closed_unit_cube():
    p = UnitUniformPrior(D)()
    assert p.batch_shape == () and p.event_shape == (D,)
    z = torch.tensor([[0.5, 0.1, 0.9], [0.0, 1.0, 1e-30], [1.0 - 2**-24, 0.0, 1.0]])
    torch.testing.assert_close(p.log_prob(z), torch.zeros(3))
    torch.manual_seed(0)
    s = p.sample((10_000,))
    assert s.shape == (10_000, D) and (s > 0).all() and (s < 1).all()


@pytest.mark.parametrize("prior", [GammaPrior(D), UnitUniformPrior(D)], ids=["gamma", "unit_uniform"])
def test_priors_follow_the_model_dtype(prior):
    assert prior().sample().dtype == torch.float32
    assert prior.double()().sample().dtype == F64
    assert prior().log_prob(torch.full((D,), 0.5, dtype=F64)).dtype == F64


# -- closed-form KLs of the heads against their natural priors -------------------------------------
def _monte_carlo_kl(q, p, n: int = 200_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard error of log q(z) - log p(z), z ~ q, per batch element."""
    z = q.sample((n,))
    d = q.log_prob(z) - p.log_prob(z)
    return d.mean(0), d.std(0) / math.sqrt(n)


GAMMA_CASES = [(0.05, 0.3), (0.3, 0.3), (1.0, 0.01), (2.5, 7.0), (40.0, 3.0), (900.0, 800.0)]
BETA_CASES = [(0.05, 0.3), (1.0, 1.0), (0.5, 2.0), (3.0, 3.0), (40.0, 0.8), (700.0, 900.0)]


def test_kl_gamma_posterior_gamma_prior_monte_carlo():
    torch.manual_seed(0)
    alpha, rate = (torch.tensor(v, dtype=F64) for v in zip(*GAMMA_CASES, strict=True))
    q = Gamma(alpha, rate)
    p = GammaPrior(1).double()().base_dist
    exact = kl_divergence(q, p)
    mean, se = _monte_carlo_kl(q, p)
    assert (exact >= 0).all()
    assert torch.all((mean - exact).abs() < 4 * se + 1e-12), (mean, exact, se)


def test_kl_gamma_gamma_closed_form():
    """torch's KL(Gamma(a, b) || Gamma(c, d)) against the textbook formula, written out with scipy:
    (a - c) psi(a) - lnG(a) + lnG(c) + c (ln b - ln d) + a (d - b) / b."""
    from scipy.special import digamma, gammaln

    c, d = 0.3, 0.3
    for a, b in GAMMA_CASES:
        expected = (
            (a - c) * digamma(a) - gammaln(a) + gammaln(c) + c * (math.log(b) - math.log(d)) + a * (d - b) / b
        )
        got = kl_divergence(
            Gamma(torch.tensor(a, dtype=F64), torch.tensor(b, dtype=F64)),
            Gamma(torch.tensor(c, dtype=F64), torch.tensor(d, dtype=F64)),
        )
        assert got.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_kl_beta_posterior_unit_uniform_prior_monte_carlo():
    torch.manual_seed(1)
    a, b = (torch.tensor(v, dtype=F64) for v in zip(*BETA_CASES, strict=True))
    q = Beta(a, b)
    p = UnitUniformPrior(1).double()().base_dist
    exact = kl_divergence(q, p)
    # KL(q || U(0, 1)) = -H(q): the same as torch's KL(Beta || Uniform) and as scipy's entropy
    torch.testing.assert_close(exact, -q.entropy())
    torch.testing.assert_close(
        exact, kl_divergence(q, Uniform(torch.zeros((), dtype=F64), torch.ones((), dtype=F64)))
    )
    scipy_entropy = torch.tensor([float(st.beta(x, y).entropy()) for x, y in BETA_CASES], dtype=F64)
    torch.testing.assert_close(exact, -scipy_entropy, rtol=1e-9, atol=1e-9)
    mean, se = _monte_carlo_kl(q, p)
    assert (exact >= 0).all()
    assert torch.all((mean - exact).abs() < 4 * se + 1e-12), (mean, exact, se)


HEADS_AND_PRIORS = {
    "gamma": (GammaHead, GammaPrior),
    "beta": (BetaHead, UnitUniformPrior),
    "power_spherical": (PowerSphericalHead, SphereUniformPrior),
}


def _head_and_prior(family: str, dtype: torch.dtype):
    head, prior = HEADS_AND_PRIORS[family]
    return head(D), prior(D).to(dtype)


@pytest.mark.parametrize("family", ["gamma", "beta"])
def test_kl_finite_over_the_clipping_range_and_float32_close_to_float64(family):
    """Every (first, second) parameter pair on a log grid spanning the head's clipping range."""
    head, _ = _head_and_prior(family, F64)
    grid = torch.logspace(
        math.log10(head.min_concentration), math.log10(head.max_concentration), 13, dtype=F64
    )
    first, second = (t.reshape(-1, 1) for t in torch.meshgrid(grid, grid, indexing="ij"))
    values = {}
    for dtype in (torch.float32, torch.float64):
        _, prior = _head_and_prior(family, dtype)
        x, y = first.to(dtype).requires_grad_(), second.to(dtype).requires_grad_()
        base = Gamma(x, y) if family == "gamma" else Beta(x, y)
        kl = kl_divergence(Independent(base, 1), prior())
        kl.sum().backward()
        assert torch.isfinite(kl).all() and (kl > -1e-4).all()
        assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
        values[dtype] = kl.detach().double()
    # float32 loses ~1e-7 relative in each lgamma/digamma term, which can be ~1e3 times the KL's size
    err = (values[torch.float32] - values[F64]).abs() / values[F64].abs().clamp_min(1.0)
    assert err.max() < 1e-3, err.max()


@pytest.mark.parametrize("family", HEADS_AND_PRIORS)
def test_the_vae_uses_the_closed_form_kl_and_it_agrees_with_monte_carlo(family):
    """The VAE finds the registered KL for the head and its natural prior; its analytic ELBO and its
    Monte Carlo ELBO agree in expectation (the same recon term, KL vs log q - log p averaged)."""
    head, prior = _head_and_prior(family, torch.float32)

    def build(analytic_kl: bool) -> VAE:
        from conftest import tiny_vae

        return tiny_vae(posterior=head, prior=prior, analytic_kl=analytic_kl).double()

    analytic, monte_carlo = build(True), build(False)
    assert analytic.analytic_kl and not monte_carlo.analytic_kl
    x = torch.bernoulli(torch.full((4, 6), 0.5, dtype=F64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        q, p = analytic.q(x), analytic.prior()
        exact = kl_divergence(q, p)
        n = 100_000
        z = q.sample((n,))
        d = q.log_prob(z) - p.log_prob(z)
        mean, se = d.mean(0), d.std(0) / math.sqrt(n)
        assert torch.all((mean - exact).abs() < 4 * se), (mean, exact, se)
        torch.testing.assert_close(analytic.elbo(x)["kl"], exact)
