"""Every estimator's samples, surrogate and gradients follow the device and dtype of the distribution.

Run under :func:`device_trap.defaults_elsewhere` (torch's default device ``meta``, default dtype the other
precision): a tensor an estimator or a sampler makes from the defaults instead of from q's parameters
raises ``DeviceLeak`` or leaves an output in the wrong dtype. Each estimator on each family it supports,
in float32 and float64; the score function with each baseline.
"""

from __future__ import annotations

import pytest
import torch
from device_trap import assert_follows, defaults_elsewhere

from vae_lab.estimators import ImplicitEstimator, ReparamEstimator, RSVIEstimator, ScoreFunctionEstimator

from .estimator_cases import CASES

ESTIMATORS = {
    "reparam": (ReparamEstimator, {}),
    "implicit": (ImplicitEstimator, {}),
    "rsvi": (RSVIEstimator, {}),
    "rsvi B=0": (RSVIEstimator, {"B": 0}),
    "score": (ScoreFunctionEstimator, {}),
    "score moving_average": (ScoreFunctionEstimator, {"baseline": "moving_average"}),
    "score leave_one_out": (ScoreFunctionEstimator, {"baseline": "leave_one_out"}),
}
PAIRS = [
    (name, family)
    for name, (cls, kwargs) in ESTIMATORS.items()
    for family in CASES
    if cls.supports(CASES[family](2).make_q(CASES[family](2).params))
    and not (kwargs.get("B") == 0 and family in ("gamma", "dirichlet", "beta"))  # shapes below 1
]


def test_every_estimator_and_family_is_covered():
    assert {name for name, _ in PAIRS} == set(ESTIMATORS)
    assert {family for _, family in PAIRS} == set(CASES)
    assert len(PAIRS) >= 18


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("name", "family"), PAIRS)
def test_estimator_follows_the_distribution(name, family, dtype):
    torch.manual_seed(0)
    cls, kwargs = ESTIMATORS[name]
    estimator = cls(**kwargs)
    case = CASES[family](16, dtype)
    leaves = list(case.params.values())
    with defaults_elsewhere(dtype):
        if "moving_average" in name:  # a first call sets the baseline (float32 buffer) from the objective
            estimator(case.make_q(case.params), case.f, n_samples=3)
        est = estimator(case.make_q(case.params), case.f, n_samples=3)
        grads = torch.autograd.grad(est.surrogate.mean(0).sum(), leaves)
    out = {"z": est.z, "value": est.value, "surrogate": est.surrogate}
    out.update({f"grad {k}": g for k, g in zip(case.params, grads, strict=True)})
    assert_follows(out, dtype)
    assert all(torch.isfinite(g).all() and (g != 0).any() for g in grads)
