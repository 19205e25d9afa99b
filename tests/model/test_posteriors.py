"""Posterior heads (vae_lab.model.posteriors): the Gamma and Beta heads of Figurnov et al. (2018).

Shapes, the softplus parameterization and its clipping, moments of the samples, and finite samples and
gradients at the ends of the clipping range with every estimator that supports the family, in float32
and float64.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Beta, Gamma, Independent

from vae_lab.distributions import log_of
from vae_lab.errors import ConfigError
from vae_lab.estimators import ImplicitEstimator, RSVIEstimator, ScoreFunctionEstimator
from vae_lab.model.posteriors import BetaHead, GammaHead, inverse_softplus

D, B = 3, 5
HEADS = {"gamma": GammaHead, "beta": BetaHead}


def _params(head, raw: float, dtype=torch.float64, requires_grad: bool = False) -> torch.Tensor:
    return torch.full((B, head.param_dim), raw, dtype=dtype, requires_grad=requires_grad)


@pytest.mark.parametrize("family", HEADS)
def test_shapes_and_decoder_input(family):
    head = HEADS[family](D)
    assert head.family == family
    assert head.param_dim == 2 * D and head.decoder_dim == D
    q = head(torch.randn(B, head.param_dim))
    assert isinstance(q, Independent)
    assert q.batch_shape == (B,) and q.event_shape == (D,)
    z = q.rsample((7,))
    assert z.shape == (7, B, D)
    assert q.log_prob(z).shape == (7, B)
    assert torch.equal(head.decoder_input(z), z)


def test_gamma_parameterization():
    head = GammaHead(D)
    a = torch.linspace(-2.0, 2.0, B * D).reshape(B, D)
    b = torch.linspace(3.0, -1.0, B * D).reshape(B, D)
    q = head(torch.cat([a, b], dim=-1))
    base = q.base_dist
    assert isinstance(base, Gamma)
    torch.testing.assert_close(base.concentration, F.softplus(a))
    torch.testing.assert_close(base.rate, F.softplus(b))


def test_beta_parameterization():
    head = BetaHead(D)
    a = torch.linspace(-2.0, 2.0, B * D).reshape(B, D)
    b = torch.linspace(3.0, -1.0, B * D).reshape(B, D)
    q = head(torch.cat([a, b], dim=-1))
    base = q.base_dist
    assert isinstance(base, Beta)
    torch.testing.assert_close(base.concentration1, F.softplus(a))  # alpha, the exponent of z
    torch.testing.assert_close(base.concentration0, F.softplus(b))  # beta, the exponent of 1 - z


def test_gamma_clipping():
    head = GammaHead(D, min_concentration=0.01, max_concentration=50.0, min_rate=0.1, max_rate=20.0)
    low = head(torch.full((B, 2 * D), -1e4)).base_dist
    high = head(torch.full((B, 2 * D), 1e4)).base_dist
    assert torch.all(low.concentration == 0.01) and torch.all(low.rate == 0.1)
    assert torch.all(high.concentration == 50.0) and torch.all(high.rate == 20.0)


def test_beta_clipping():
    head = BetaHead(D, min_concentration=0.01, max_concentration=50.0)
    low = head(torch.full((B, 2 * D), -1e4)).base_dist
    high = head(torch.full((B, 2 * D), 1e4)).base_dist
    assert torch.all(low.concentration1 == 0.01) and torch.all(low.concentration0 == 0.01)
    assert torch.all(high.concentration1 == 50.0) and torch.all(high.concentration0 == 50.0)


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: GammaHead(D, min_concentration=2.0, max_concentration=1.0), "max_concentration"),
        (lambda: GammaHead(D, min_rate=0.0), "min_rate"),
        (lambda: GammaHead(D, min_rate=5.0, max_rate=5.0), "max_rate"),
        (lambda: BetaHead(D, min_concentration=-1.0), "min_concentration"),
        (lambda: BetaHead(D, min_concentration=1.0, max_concentration=0.5), "max_concentration"),
        (lambda: BetaHead(0), "latent_dim"),
    ],
)
def test_bad_settings_fail_naming_the_key(make, key):
    with pytest.raises(ConfigError) as err:
        make()
    assert err.value.key == key


@pytest.mark.parametrize("family", HEADS)
def test_sample_moments_match_the_family(family):
    """Mean of rsample against the closed form, within 4 standard errors (from the exact variance)."""
    head = HEADS[family](1)
    raw = torch.tensor([[inverse_softplus(2.5), inverse_softplus(0.7)]], dtype=torch.float64)
    q = head(raw)
    n = 200_000
    torch.manual_seed(0)
    z = q.rsample((n,)).reshape(-1)
    mean, var = q.mean.item(), q.variance.item()
    expected = 2.5 / 0.7 if family == "gamma" else 2.5 / (2.5 + 0.7)
    assert mean == pytest.approx(expected, rel=1e-12)
    assert abs(z.mean().item() - mean) < 4 * math.sqrt(var / n)


ESTIMATORS = {
    "implicit": ImplicitEstimator,
    "rsvi": lambda: RSVIEstimator(B=1),
    "score": lambda: ScoreFunctionEstimator(baseline="none"),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("family", HEADS)
def test_finite_samples_and_gradients_at_the_clipping_ends(family, estimator, dtype):
    """Concentrations (and rates) at both ends of the clipping range, with every estimator that lists the
    family: finite samples, objective and gradients w.r.t. the encoder outputs (just inside the clip)."""
    head = HEADS[family](D)
    est = ESTIMATORS[estimator]()
    torch.manual_seed(0)
    # softplus^-1 of the clip ends, nudged inside so that the gradient passes the clamp
    low, high = (
        inverse_softplus(head.min_concentration * 1.01),
        inverse_softplus(head.max_concentration * 0.99),
    )
    raw = torch.tensor([low, high], dtype=dtype)
    grid = torch.cartesian_prod(raw, raw)  # every (first, second) combination of the two ends
    params = grid.repeat_interleave(D, dim=0).reshape(-1, D, 2).transpose(1, 2).reshape(-1, 2 * D)
    params = params.clone().requires_grad_()
    q = head(params)
    assert est.supports(q)
    # the head's parameters are the clip ends (nudged inside), in order: a value check, not only finiteness
    ends = torch.tensor([head.min_concentration * 1.01, head.max_concentration * 0.99], dtype=torch.float64)
    if family == "gamma":
        ends_rate = torch.tensor([head.min_rate * 1.01, head.max_rate * 0.99], dtype=torch.float64)
        got = (q.base_dist.concentration, q.base_dist.rate)
        want = (ends, ends_rate)
    else:
        got = (q.base_dist.concentration1, q.base_dist.concentration0)
        want = (ends, ends)
    index = torch.cartesian_prod(torch.arange(2), torch.arange(2))
    for g, w, column in zip(got, want, (0, 1), strict=True):
        expected = w[index[:, column]].unsqueeze(-1).expand(-1, D).to(dtype)
        torch.testing.assert_close(g, expected, rtol=1e-5 if dtype == torch.float32 else 1e-9, atol=0)

    def f(z):  # a smooth objective that uses every coordinate of z (log z, exact: sensitive near 0)
        return (log_of(z) - z).sum(-1)

    out = est(q, f, n_samples=4)
    assert out.z.dtype == dtype
    assert torch.isfinite(out.z).all() and (out.z > 0).all()
    if family == "beta":
        assert (out.z < 1).all()
    assert torch.isfinite(out.value).all()
    (grad,) = torch.autograd.grad(out.surrogate.mean(0).sum(), params)
    assert torch.isfinite(grad).all()
    assert grad.abs().sum() > 0
