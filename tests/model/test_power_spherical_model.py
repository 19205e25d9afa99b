"""The Power Spherical posterior head and the uniform prior on the sphere (vae_lab.model.posteriors,
vae_lab.model.priors): shapes, parameterization and clipping, finite samples and gradients at the ends of
the clip range with every estimator that supports the family (float32 and float64), the prior's density
and dtype, a training step with every estimator, and the refusals (a prior off the sphere, reparam). The
VAE's closed-form KL against Monte Carlo: tests/model/test_priors.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_vae

from vae_lab.distributions import PowerSpherical, SphereUniform
from vae_lab.errors import ConfigError
from vae_lab.estimators import ImplicitEstimator, ReparamEstimator, RSVIEstimator, ScoreFunctionEstimator
from vae_lab.model.posteriors import GaussianHead, PowerSphericalHead, inverse_softplus
from vae_lab.model.priors import NormalPrior, SphereUniformPrior

D, B = 3, 5
F64 = torch.float64


def test_shapes_and_decoder_input():
    head = PowerSphericalHead(D)
    assert head.family == "power_spherical"
    assert head.param_dim == D + 1 and head.decoder_dim == D
    q = head(torch.randn(B, head.param_dim))
    assert isinstance(q, PowerSpherical) and q.batch_shape == (B,) and q.event_shape == (D,)
    z = q.rsample((7,))
    assert z.shape == (7, B, D) and q.log_prob(z).shape == (7, B)
    assert torch.equal(head.decoder_input(z), z)


def test_parameterization_and_clipping():
    head = PowerSphericalHead(D, min_concentration=0.01, max_concentration=50.0)
    params = torch.randn(B, D + 1, dtype=F64)
    q = head(params)
    torch.testing.assert_close(q.loc, params[:, :D] / params[:, :D].norm(dim=-1, keepdim=True))
    torch.testing.assert_close(q.concentration, F.softplus(params[:, D]))
    params[:, D] = torch.tensor([-1e4, 1e4, -1e4, 1e4, 0.0])
    kappa = head(params).concentration
    assert kappa.tolist()[:4] == [0.01, 50.0, 0.01, 50.0]


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: PowerSphericalHead(1), "latent_dim"),
        (lambda: PowerSphericalHead(D, min_concentration=0.0), "min_concentration"),
        (lambda: PowerSphericalHead(D, min_concentration=2.0, max_concentration=1.0), "max_concentration"),
        (lambda: SphereUniformPrior(1), "latent_dim"),
    ],
)
def test_bad_settings_fail_naming_the_key(make, key):
    with pytest.raises(ConfigError) as err:
        make()
    assert err.value.key == key


ESTIMATORS = {
    "implicit": ImplicitEstimator,
    "rsvi": lambda: RSVIEstimator(B=1),
    "score": lambda: ScoreFunctionEstimator(baseline="none"),
}


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_finite_samples_and_gradients_at_the_clipping_ends(estimator, dtype):
    """kappa at both ends of the clip range (nudged inside), with mean directions on both sides of the
    reflection's switch (mu_1 >= 0, < 0): unit samples, finite objective and gradients."""
    head = PowerSphericalHead(D)
    ends = [head.min_concentration * 1.01, head.max_concentration * 0.99]
    directions = [[1.0, 0.0, 0.0], [-1.0, 1e-6, 0.0], [0.3, -0.4, 0.5], [-2.0, 1.0, 1.0]]
    rows = [torch.tensor([*m, inverse_softplus(k)], dtype=F64) for m in directions for k in ends]
    params = torch.stack(rows).to(dtype).requires_grad_()
    q = head(params)
    assert ESTIMATORS[estimator]().supports(q)
    expected = torch.tensor(ends * len(directions), dtype=F64).to(dtype)
    torch.testing.assert_close(
        q.concentration, expected, rtol=1e-5 if dtype == torch.float32 else 1e-9, atol=0
    )
    target = torch.tensor([0.2, -0.5, 0.8], dtype=dtype)

    def f(z):
        return z @ target + (z @ target) ** 2

    out = ESTIMATORS[estimator]()(q, f, n_samples=4)
    assert out.z.dtype == dtype and torch.isfinite(out.z).all()
    torch.testing.assert_close(out.z.norm(dim=-1), torch.ones(4, len(rows), dtype=dtype))
    (grad,) = torch.autograd.grad(out.surrogate.mean(0).sum(), params)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_sphere_uniform_prior_density_and_dtype():
    p = SphereUniformPrior(D)()
    assert isinstance(p, SphereUniform) and p.batch_shape == () and p.event_shape == (D,)
    assert p.sample().dtype == torch.float32
    p64 = SphereUniformPrior(D).double()()
    z = p64.sample((4,))
    assert z.dtype == F64
    torch.testing.assert_close(p64.log_prob(z), torch.full((4,), -math.log(4 * math.pi), dtype=F64))


def _build(analytic_kl: bool, estimator=None, prior=None):
    return tiny_vae(
        posterior=PowerSphericalHead(D),
        prior=prior or SphereUniformPrior(D),
        estimator=estimator or ImplicitEstimator(),
        analytic_kl=analytic_kl,
    )


@pytest.mark.parametrize("analytic_kl", [True, False])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_a_training_step_is_finite(estimator, analytic_kl):
    model = _build(analytic_kl, estimator=ESTIMATORS[estimator]())
    x = torch.bernoulli(torch.full((8, 6), 0.5), generator=torch.Generator().manual_seed(1))
    out = model.elbo(x)
    assert all(torch.isfinite(v).all() for v in out.values())
    out["surrogate"].mean().backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_refusals_at_construction():
    with pytest.raises(ConfigError) as err:
        _build(True, estimator=ReparamEstimator())
    assert err.value.key == "estimator" and "implicit, rsvi, score" in str(err.value)
    with pytest.raises(ConfigError, match="does not cover"):
        _build(True, prior=NormalPrior(D))
    with pytest.raises(ConfigError, match="does not cover"):
        tiny_vae(posterior=GaussianHead(D), prior=SphereUniformPrior(D))
