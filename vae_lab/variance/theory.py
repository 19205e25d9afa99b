r"""Exact values the toy experiments are checked against: the gradients of the family cross-entropies and
the moments of the Gaussian example's estimators.

* Dirichlet: for q = Dir(alpha) and p = Dir(a), f(z) = -log p(z) = -sum_i (a_i - 1) log z_i + log B(a)
  and E_q[log z_i] = psi(alpha_i) - psi(alpha_0), so
  dL/dalpha_1 = -(a_1 - 1) psi'(alpha_1) + (sum_i (a_i - 1)) psi'(alpha_0), alpha_0 = sum_i alpha_i.
* von Mises: f(z) = -kappa_p cos(z - mu_p) + log(2 pi I_0(kappa_p)) and
  E_q[cos(z - mu_p)] = A(kappa) cos(mu - mu_p), A = I_1/I_0, so
  dL/dkappa = -kappa_p cos(mu - mu_p) A'(kappa), A'(kappa) = 1 - A/kappa - A^2.
* Gaussian: d/dtheta E_{N(theta, 1)}[z^2] = 2 theta. Per sample, with z = theta + eps, the pathwise
  estimator is 2 z (variance 4) and the score function z^2 (z - theta) = theta^2 eps + 2 theta eps^2 +
  eps^3 (variance theta^4 + 14 theta^2 + 15, 87 at theta = 2); the average of N has variance 4/N and
  (theta^4 + 14 theta^2 + 15)/N. :func:`gaussian_theory` computes these and the fourth central moments
  from the moments of the normal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


# -- exact gradients of the family cross-entropies -------------------------------------------------
def dirichlet_exact_grad(alpha: Sequence[float], target: Sequence[float]) -> float:
    r"""d/dalpha_1 E_{Dir(alpha)}[-log Dir(z; a)], a = ``target``:

    -(a_1 - 1) psi'(alpha_1) + (sum_i (a_i - 1)) psi'(alpha_0), alpha_0 = sum_i alpha_i.
    """
    alpha_t = torch.as_tensor(alpha, dtype=torch.float64)
    a = torch.as_tensor(target, dtype=torch.float64)
    trigamma = lambda x: torch.polygamma(1, x)  # noqa: E731
    value = -(a[0] - 1) * trigamma(alpha_t[0]) + (a - 1).sum() * trigamma(alpha_t.sum())
    return float(value)


def bessel_ratio_derivative(kappa: float) -> float:
    """A'(kappa) for A = I_1/I_0: 1 - A/kappa - A^2 (scaled Bessel functions, no overflow)."""
    k = torch.tensor(kappa, dtype=torch.float64)
    A = torch.special.i1e(k) / torch.special.i0e(k)
    return float(1.0 - A / k - A * A)


def vonmises_exact_grad(kappa: float, loc: float, target_loc: float, target_concentration: float) -> float:
    r"""d/dkappa E_{vM(mu, kappa)}[-log vM(z; mu_p, kappa_p)] = -kappa_p cos(mu - mu_p) A'(kappa).

    mu = ``loc``, mu_p = ``target_loc``, kappa_p = ``target_concentration``.
    """
    return -target_concentration * math.cos(loc - target_loc) * bessel_ratio_derivative(kappa)


# -- the Gaussian example --------------------------------------------------------------------------
def _normal_moment(k: int) -> float:
    """E[eps^k] for eps ~ N(0, 1): 0 for odd k, (k - 1)!! for even k."""
    return 0.0 if k % 2 else float(np.prod(np.arange(k - 1, 0, -2))) if k else 1.0


def _central_moments(poly: np.polynomial.Polynomial) -> tuple[float, float, float]:
    """(mean, variance, fourth central moment) of poly(eps), eps ~ N(0, 1)."""
    expect = lambda p: sum(c * _normal_moment(k) for k, c in enumerate(p.coef))  # noqa: E731
    mean = expect(poly)
    centred = poly - mean
    return mean, expect(centred**2), expect(centred**4)


def gaussian_theory(theta: float) -> dict[str, tuple[float, float, float]]:
    """Per-sample (mean, variance, fourth central moment) of each estimator of d/dtheta E_{N(theta,1)}[z^2].

    pathwise: 2 (theta + eps); score: (theta + eps)^2 eps. Exact, from the moments of N(0, 1).
    """
    eps = np.polynomial.Polynomial([0.0, 1.0])
    return {
        "reparam": _central_moments(2.0 * (theta + eps)),
        "score": _central_moments((theta + eps) ** 2 * eps),
    }


def averaged_moments(sigma2: float, mu4: float, n: int) -> tuple[float, float]:
    """(variance, fourth central moment) of the average of n iid draws with variance sigma2 and mu4.

    E[(mean - mu)^4] = (n mu4 + 3 n (n - 1) sigma2^2) / n^4.
    """
    return sigma2 / n, (mu4 + 3.0 * (n - 1) * sigma2**2) / n**3


def sample_variance_std_error(sigma2: float, mu4: float, r: int) -> float:
    """Standard deviation of the unbiased sample variance of r iid draws:
    Var(s^2) = mu4 / r - sigma2^2 (r - 3) / (r (r - 1))."""
    return math.sqrt(mu4 / r - sigma2**2 * (r - 3) / (r * (r - 1)))
