"""Exact gradients and the Gaussian example's moments (vae_lab/variance/theory.py) against independent
references: finite differences of scipy's digamma, mpmath's Bessel functions, the moments of N(0, 1)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import scipy.special as sp

from vae_lab.variance import (
    averaged_moments,
    dirichlet_exact_grad,
    gaussian_theory,
    vonmises_exact_grad,
)


@pytest.mark.parametrize("alpha1", [0.1, 0.7, 3.0, 10.0])
def test_dirichlet_exact_gradient_matches_finite_differences(alpha1):
    rest, target = [1.5, 0.8], [2.0, 3.0, 0.5]

    def cross_entropy(a1: float) -> float:
        alpha = np.array([a1, *rest])
        a = np.array(target)
        e_log_z = sp.digamma(alpha) - sp.digamma(alpha.sum())
        log_beta = sp.gammaln(a).sum() - sp.gammaln(a.sum())
        return float(-((a - 1) * e_log_z).sum() + log_beta)

    h = 1e-5 * alpha1
    numeric = (cross_entropy(alpha1 + h) - cross_entropy(alpha1 - h)) / (2 * h)
    assert dirichlet_exact_grad([alpha1, *rest], target) == pytest.approx(numeric, rel=1e-6)


@pytest.mark.parametrize("kappa", [0.1, 1.0, 10.5, 100.0])
def test_vonmises_exact_gradient_matches_mpmath(kappa):
    mpmath.mp.dps = 40
    ratio = lambda k: mpmath.besseli(1, k) / mpmath.besseli(0, k)  # noqa: E731
    # E_q[-log p(z)] = -kappa_p A(kappa) cos(mu - mu_p) + const
    reference = -2.0 * math.cos(0.3 - 1.1) * float(mpmath.diff(ratio, kappa))
    assert vonmises_exact_grad(kappa, 0.3, 1.1, 2.0) == pytest.approx(reference, rel=1e-9)


def test_gaussian_theory_moments():
    for theta in (0.0, 2.0, -1.5):
        theory = gaussian_theory(theta)
        assert theory["reparam"] == pytest.approx((2 * theta, 4.0, 48.0))
        mean, var, _ = theory["score"]
        assert (mean, var) == pytest.approx((2 * theta, theta**4 + 14 * theta**2 + 15))
    # averaging: N = 1 is the identity; large N tends to a normal (kurtosis 3)
    assert averaged_moments(87.0, 202827.0, 1) == pytest.approx((87.0, 202827.0))
    var, mu4 = averaged_moments(87.0, 202827.0, 10**6)
    assert mu4 / var**2 == pytest.approx(3.0, rel=1e-3)
