"""The VAE's importance-weighted bound (``test/nll``) and ELBO follow the device and dtype of the model.

Each posterior family with its natural prior, the model in float32 or float64, run under
:func:`device_trap.defaults_elsewhere` (torch's default device ``meta``, default dtype the other precision):
a tensor made from the defaults instead of from the data and the parameters raises ``DeviceLeak`` or
leaves an output in the wrong dtype.
"""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_vae
from device_trap import assert_follows, defaults_elsewhere

from vae_lab.estimators import ImplicitEstimator, RSVIEstimator, ScoreFunctionEstimator
from vae_lab.model.posteriors import BetaHead, DirichletHead, GammaHead, GaussianHead, VonMisesHead
from vae_lab.model.priors import (
    CircularUniformPrior,
    DirichletPrior,
    GammaPrior,
    NormalPrior,
    UnitUniformPrior,
)

MODELS = {
    "gaussian": lambda: (GaussianHead(2), NormalPrior(2)),
    "vonmises": lambda: (VonMisesHead(2), CircularUniformPrior(2)),
    "dirichlet": lambda: (DirichletHead(3), DirichletPrior(3, alpha=0.5)),
    "gamma": lambda: (GammaHead(2), GammaPrior(2)),
    "beta": lambda: (BetaHead(2), UnitUniformPrior(2)),
}


@pytest.mark.parametrize("analytic_kl", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("family", list(MODELS))
def test_iw_bound_and_elbo_follow_the_model(family, dtype, analytic_kl):
    posterior, prior = MODELS[family]()
    estimator = RSVIEstimator() if family == "vonmises" else ImplicitEstimator()
    model = tiny_vae(posterior=posterior, prior=prior, estimator=estimator, analytic_kl=analytic_kl).to(dtype)
    x = torch.bernoulli(torch.full((5, 6), 0.5, dtype=dtype), generator=torch.Generator().manual_seed(0))
    with defaults_elsewhere(dtype):
        iw = model.iw_log_likelihood(x, k=7, chunk=3)
        loss, terms = model.training_loss(x)
        grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
    assert_follows({"iw": iw, "loss": loss, **terms, **{f"grad {i}": g for i, g in enumerate(grads)}}, dtype)
    assert iw.shape == (5,) and torch.isfinite(iw).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_score_function_baseline_buffers_follow_the_model(dtype):
    """The moving-average baseline is state (a buffer): ``.to(dtype)`` takes it along, and the estimator
    mixes it with the objective only through explicit casts."""
    model = tiny_vae(estimator=ScoreFunctionEstimator(baseline="moving_average")).to(dtype)
    x = torch.bernoulli(torch.full((5, 6), 0.5, dtype=dtype), generator=torch.Generator().manual_seed(0))
    with defaults_elsewhere(dtype):
        model.training_loss(x)
        loss, _ = model.training_loss(x)
    assert model.estimator.baseline_value.dtype == dtype and loss.dtype == dtype
