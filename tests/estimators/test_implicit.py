"""ImplicitEstimator: implicit reparameterization gradients (Figurnov, Mohamed & Mnih, 2018)."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Independent, Normal
from torch.distributions import VonMises as TorchVonMises

from vae_lab.estimators import ImplicitEstimator

from .estimator_cases import CASES, N_COPIES, assert_unbiased, per_copy_gradients

FAMILIES = ["gaussian", "gamma", "dirichlet", "beta", "vonmises"]


def _case(family: str, n: int, dtype=torch.float64):
    return CASES[family](n, dtype)  # von Mises: vae_lab's VonMises, with implicit rsample


@pytest.mark.parametrize("family", FAMILIES)
def test_unbiased(family):
    torch.manual_seed(0)
    case = _case(family, N_COPIES)
    assert_unbiased(per_copy_gradients(ImplicitEstimator(), case), case.exact)


@pytest.mark.parametrize("family", FAMILIES)
def test_surrogate_value_is_f(family):
    torch.manual_seed(0)
    case = _case(family, 32)
    est = ImplicitEstimator()(case.make_q(case.params), case.f, n_samples=2)
    assert est.surrogate.shape == (2, 32)
    assert torch.equal(est.surrogate, case.f(est.z))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_matches_explicit_path(dtype):
    """For the Gaussian, -(dF/dphi)/q is dz/dmu = 1 and dz/dsigma = (z - mu) / sigma, sample by sample."""
    torch.manual_seed(0)
    loc = torch.randn(50, 3, dtype=dtype, requires_grad=True)
    scale = torch.rand(50, 3, dtype=dtype).add(0.1).requires_grad_()
    est = ImplicitEstimator()(Independent(Normal(loc, scale), 1), lambda z: z.sum(-1), n_samples=4)
    g_loc, g_scale = torch.autograd.grad(est.surrogate.sum(), [loc, scale])
    eps = (est.z.detach() - loc.detach()) / scale.detach()
    torch.testing.assert_close(g_loc, torch.full_like(g_loc, 4.0))
    torch.testing.assert_close(g_scale, eps.sum(0))


def test_torch_von_mises_without_rsample_is_refused():
    q = Independent(TorchVonMises(torch.zeros(3, 2), torch.ones(3, 2)), 1)
    with pytest.raises(ValueError, match="vae_lab.distributions.VonMises"):
        ImplicitEstimator()(q, lambda z: z.sum(-1))
