"""vae_lab.distributions.capabilities: which estimators apply, read off the distribution; support cover."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Gamma as TorchGamma
from torch.distributions import Independent, Normal, constraints
from torch.distributions import VonMises as TorchVonMises

from vae_lab.distributions import Beta, CircularUniform, Dirichlet, Gamma, VonMises
from vae_lab.distributions.capabilities import (
    has_explicit_rsample,
    has_implicit_rsample,
    sample_support,
    support_covers,
)
from vae_lab.estimators import ImplicitEstimator, ReparamEstimator, RSVIEstimator, ScoreFunctionEstimator

ONE = torch.ones(2)
DISTRIBUTIONS = {
    "Normal": Independent(Normal(0 * ONE, ONE), 1),
    "VonMises": Independent(VonMises(0 * ONE, ONE), 1),
    "torch VonMises": Independent(TorchVonMises(0 * ONE, ONE), 1),
    "Gamma": Independent(Gamma(ONE, ONE), 1),
    "torch Gamma": Independent(TorchGamma(ONE, ONE), 1),
    "Dirichlet": Dirichlet(torch.ones(3)),
    "Beta": Independent(Beta(ONE, ONE), 1),
    "CircularUniform": Independent(CircularUniform((2,)), 1),
}
# which estimators each supports: derived, never listed in the code under test
EXPECTED = {
    "Normal": {"reparam", "implicit", "score"},
    "VonMises": {"implicit", "rsvi", "score"},
    "torch VonMises": {"rsvi", "score"},  # no rsample: torch's own von Mises cannot be reparameterized
    "Gamma": {"implicit", "rsvi", "score"},
    "torch Gamma": {"implicit", "rsvi", "score"},
    "Dirichlet": {"implicit", "rsvi", "score"},
    "Beta": {"implicit", "rsvi", "score"},
    "CircularUniform": {"reparam", "implicit", "score"},  # parameter-free: an explicit rsample, and a cdf
}
ESTIMATORS = {
    "reparam": ReparamEstimator,
    "implicit": ImplicitEstimator,
    "rsvi": RSVIEstimator,
    "score": ScoreFunctionEstimator,
}


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_estimators_follow_from_the_distribution(name):
    q = DISTRIBUTIONS[name]
    assert {e for e, cls in ESTIMATORS.items() if cls.supports(q)} == EXPECTED[name]


def test_explicit_and_implicit_rsample():
    assert has_explicit_rsample(DISTRIBUTIONS["Normal"]) and not has_implicit_rsample(DISTRIBUTIONS["Normal"])
    for name in ("VonMises", "Gamma", "torch Gamma", "Dirichlet", "Beta"):
        assert has_implicit_rsample(DISTRIBUTIONS[name]) and not has_explicit_rsample(DISTRIBUTIONS[name])
    assert not has_implicit_rsample(DISTRIBUTIONS["torch VonMises"])


def test_unsupported_pair_names_what_is_needed():
    with pytest.raises(ValueError, match=r"RSVIEstimator does not support Normal: it needs a rejection"):
        RSVIEstimator()(DISTRIBUTIONS["Normal"], lambda z: z.sum(-1))


@pytest.mark.parametrize(
    "outer, inner, covers",
    [
        (constraints.real, constraints.positive, True),
        (constraints.positive, constraints.real, False),
        (constraints.positive, constraints.unit_interval, True),
        (constraints.unit_interval, constraints.positive, False),
        (constraints.half_open_interval(-math.pi, math.pi), constraints.unit_interval, True),
        (constraints.half_open_interval(-math.pi, math.pi), constraints.real, False),
        (constraints.independent(constraints.real, 1), constraints.simplex, True),
        (constraints.simplex, constraints.independent(constraints.positive, 1), False),
        (constraints.real, constraints.integer_interval(0, 3), None),  # not an interval: no verdict
    ],
)
def test_support_covers(outer, inner, covers):
    assert support_covers(outer, inner) is covers


def test_von_mises_samples_lie_in_the_circular_uniform_support():
    vm, uniform = DISTRIBUTIONS["VonMises"], DISTRIBUTIONS["CircularUniform"]
    assert support_covers(uniform.support, sample_support(vm)) is True
    assert support_covers(uniform.support, DISTRIBUTIONS["Normal"].support) is False
    assert vm.support.check(torch.tensor([[10.0, -10.0]])).all()  # the density still takes any angle
