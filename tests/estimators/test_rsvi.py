"""RSVIEstimator: rejection-sampling reparameterization (Naesseth et al., 2017)."""

from __future__ import annotations

import pytest
import torch

from vae_lab.errors import ConfigError
from vae_lab.estimators import RSVIEstimator

from .estimator_cases import CASES, N_COPIES, assert_unbiased, per_copy_gradients, z_scores

# B = 0 needs shapes >= 1 (Marsaglia-Tsang without augmentation); B >= 1 is tested below 1 as well
SHAPES_B0 = {"gamma": {"alpha": 1.5}, "dirichlet": {"alpha": (1.2, 2.0, 3.0)}, "beta": {"c1": 1.5, "c0": 2.5}}


def _case(family: str, B: int, n: int = N_COPIES):
    return CASES[family](n, **(SHAPES_B0.get(family, {}) if B == 0 else {}))


@pytest.mark.parametrize("B", [0, 1, 5])
@pytest.mark.parametrize("family", ["gamma", "dirichlet", "beta"])
def test_unbiased(family, B):
    torch.manual_seed(0)
    case = _case(family, B)
    assert_unbiased(per_copy_gradients(RSVIEstimator(B=B), case), case.exact)


def test_unbiased_von_mises():
    torch.manual_seed(0)
    case = CASES["vonmises"](N_COPIES)
    assert_unbiased(per_copy_gradients(RSVIEstimator(), case), case.exact)


@pytest.mark.parametrize(
    "family, parameter",
    [("gamma", "concentration"), ("dirichlet", "concentration"), ("vonmises", "concentration")],
)
def test_without_correction_is_biased(family, parameter):
    """The reparameterization part alone (B = 0) misses E[f grad log pi]: many standard errors off."""
    torch.manual_seed(0)
    case = _case(family, B=0)
    z = z_scores(per_copy_gradients(RSVIEstimator(B=0, correction=False), case), case.exact)[parameter]
    assert z.abs().max() > 6.0, f"no detectable bias: {z.tolist()} standard errors"


@pytest.mark.parametrize("family", ["gamma", "dirichlet", "beta", "vonmises"])
@pytest.mark.parametrize("correction", [True, False])
def test_surrogate_value_is_f(family, correction):
    torch.manual_seed(0)
    case = CASES[family](32)
    out = RSVIEstimator(B=1, correction=correction)(case.make_q(case.params), case.f, n_samples=3)
    assert out.surrogate.shape == (3, 32)
    assert torch.equal(out.surrogate, case.f(out.z))


@pytest.mark.parametrize("family", ["gaussian"])
def test_unsupported_family_raises(family):
    case = CASES[family](4)
    with pytest.raises(ValueError, match=r"does not support Normal: it needs a rejection sampler registered"):
        RSVIEstimator()(case.make_q(case.params), case.f)


@pytest.mark.parametrize("B", [-1, 1.5, True, "2"])
def test_invalid_B(B):
    with pytest.raises(ConfigError, match=r"^B=.* is not allowed; expected an integer >= 0"):
        RSVIEstimator(B=B)


def test_B0_with_small_shape_raises():
    case = CASES["dirichlet"](4)  # alpha_0 = 0.5
    with pytest.raises(ValueError, match="B = 0 needs every Gamma/Dirichlet/Beta shape parameter >= 1"):
        RSVIEstimator(B=0)(case.make_q(case.params), case.f)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_von_mises_extreme_concentrations(dtype):
    """von Mises concentrations from 1e-6 to 1e6 (DESIGN 6)."""
    torch.manual_seed(0)
    kappa = torch.logspace(-6, 6, 13, dtype=dtype).repeat(8).unsqueeze(-1).requires_grad_()
    loc = torch.zeros_like(kappa).requires_grad_()
    case = CASES["vonmises"](1)
    q = case.make_q({"loc": loc, "concentration": kappa})
    out = RSVIEstimator()(q, case.f, n_samples=4)
    grads = torch.autograd.grad(out.surrogate.mean(0).sum(), [loc, kappa])
    assert torch.isfinite(out.z).all() and torch.isfinite(out.surrogate).all()
    assert all(torch.isfinite(g).all() for g in grads)
    assert (out.z >= -torch.pi).all() and (out.z <= torch.pi).all()
