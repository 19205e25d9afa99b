"""ReparamEstimator: explicit reparameterization (Kingma & Welling, 2014)."""

from __future__ import annotations

import pytest
import torch

from vae_lab.estimators import ReparamEstimator

from .estimator_cases import CASES, N_COPIES, assert_unbiased, per_copy_gradients


def test_unbiased_gaussian():
    torch.manual_seed(0)
    case = CASES["gaussian"](N_COPIES)
    assert_unbiased(per_copy_gradients(ReparamEstimator(), case), case.exact)


def test_surrogate_value_is_f():
    torch.manual_seed(0)
    case = CASES["gaussian"](64)
    est = ReparamEstimator()(case.make_q(case.params), case.f, n_samples=3)
    assert est.z.shape == (3, 64, 1) and est.surrogate.shape == (3, 64)
    assert torch.equal(est.surrogate, case.f(est.z))
    assert torch.equal(est.value, case.f(est.z))


@pytest.mark.parametrize("family", ["dirichlet", "gamma", "beta", "vonmises"])
def test_unsupported_family_raises(family):
    case = CASES[family](4)
    with pytest.raises(ValueError, match=r"does not support \w+: it needs an explicitly reparameterized"):
        ReparamEstimator()(case.make_q(case.params), case.f)
