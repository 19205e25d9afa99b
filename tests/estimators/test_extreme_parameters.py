"""Every estimator at concentrations from 1e-4 to 1e4 (DESIGN 6, beyond the heads' clip range), in float32
and float64: finite samples, objectives and gradients, and values checked where they are known per sample.

The rate of a Gamma is a scale parameter, so dz/d(rate) = -z/rate exactly for the pathwise estimators
(implicit and RSVI), and d log q/d(rate) = alpha/rate - z for the score function: the gradient with respect
to the rate is then known sample by sample. For the score function the Dirichlet's concentration gradient
is too: d log q/d alpha_k = log z_k + psi(sum alpha) - psi(alpha_k). Unbiasedness of the others is tested at
the ends of the range in ``test_offset_invariance.py``.
"""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Independent

from vae_lab.distributions import Dirichlet, Gamma, log_of
from vae_lab.estimators import ImplicitEstimator, RSVIEstimator, ScoreFunctionEstimator

ESTIMATORS = {
    "implicit": ImplicitEstimator,
    "rsvi-B1": lambda: RSVIEstimator(B=1),
    "rsvi-B5": lambda: RSVIEstimator(B=5),
    "score": lambda: ScoreFunctionEstimator(baseline="none"),
}
S = 4


def _f(z: torch.Tensor) -> torch.Tensor:
    return (log_of(z) + z).sum(-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ESTIMATORS)
def test_gamma(name, dtype):
    torch.manual_seed(0)
    shape = torch.logspace(-4, 4, 9, dtype=dtype).repeat(4).unsqueeze(-1).requires_grad_()
    rate = torch.logspace(-2, 2, 36, dtype=dtype).unsqueeze(-1).requires_grad_()
    out = ESTIMATORS[name]()(Independent(Gamma(shape, rate), 1), _f, n_samples=S)
    grads = torch.autograd.grad(out.surrogate.mean(0).sum(), [shape, rate])
    assert torch.isfinite(out.z).all() and (out.z > 0).all() and torch.isfinite(out.surrogate).all()
    assert all(torch.isfinite(g).all() for g in grads)
    assert torch.equal(out.value, _f(out.z)) and torch.isfinite(log_of(out.z)).all()
    z, r, a = out.z.detach().double(), rate.detach().double(), shape.detach().double()
    f = out.value.detach().double().unsqueeze(-1)
    if name == "score":  # a / r - z cancels: allow for the rounding of both terms in the dtype
        expected, scale = (f * (a / r - z)).mean(0), (f.abs() * (a / r + z)).mean(0)
    else:
        expected, scale = (-(1.0 + z) / r).mean(0), ((1.0 + z) / r).mean(0)
    tol = 8 * torch.finfo(dtype).eps * scale
    assert ((grads[1].double() - expected).abs() <= tol).all(), (grads[1].double() - expected).abs() / scale


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ESTIMATORS)
def test_dirichlet(name, dtype):
    torch.manual_seed(0)
    values = torch.logspace(-4, 4, 9, dtype=dtype)
    alpha = torch.cartesian_prod(values, values, values).requires_grad_()
    out = ESTIMATORS[name]()(Dirichlet(alpha), _f, n_samples=S)
    (g,) = torch.autograd.grad(out.surrogate.mean(0).sum(), alpha)
    assert torch.isfinite(out.z).all() and torch.isfinite(out.surrogate).all() and torch.isfinite(g).all()
    torch.testing.assert_close(out.z.sum(-1), torch.ones_like(out.z[..., 0]))
    log_z = log_of(out.z).detach()
    assert torch.isfinite(log_z).all()
    torch.testing.assert_close(log_z.logsumexp(-1), torch.zeros_like(log_z[..., 0]), rtol=0, atol=1e-5)
    if name == "score":  # score terms of size |log z| + |psi|: allow for their rounding in the dtype
        a, lz = alpha.detach().double(), log_z.double()
        psi_total, psi = torch.digamma(a.sum(-1, keepdim=True)), torch.digamma(a)
        f = out.value.detach().double().unsqueeze(-1)
        expected = (f * (lz + psi_total - psi)).mean(0)
        scale = (f.abs() * (lz.abs() + psi_total.abs() + psi.abs())).mean(0)
        tol = 8 * torch.finfo(dtype).eps * scale
        assert ((g.double() - expected).abs() <= tol).all(), ((g.double() - expected).abs() / scale).max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rsvi_without_augmentation_over_its_domain(dtype):
    """B = 0 over its domain: shapes from 1 to 1e4; z on the simplex, finite gradients."""
    torch.manual_seed(0)
    values = torch.logspace(0, 4, 9, dtype=dtype)
    alpha = torch.cartesian_prod(values, values).requires_grad_()
    out = RSVIEstimator(B=0)(Dirichlet(alpha), _f, n_samples=S)
    (g,) = torch.autograd.grad(out.surrogate.mean(0).sum(), alpha)
    assert torch.isfinite(out.z).all() and torch.isfinite(out.surrogate).all() and torch.isfinite(g).all()
    torch.testing.assert_close(out.z.sum(-1), torch.ones_like(out.z[..., 0]))
