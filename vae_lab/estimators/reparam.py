"""Explicit reparameterization gradients (Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014).

With z = g(eps, phi), eps ~ p(eps) independent of phi (for a Gaussian z = mu + sigma eps),

    grad_phi E_q[f(z)] = E_eps[grad_z f(g(eps, phi)) grad_phi g(eps, phi)],

so the surrogate is simply f(q.rsample()).
"""

from __future__ import annotations

from typing import ClassVar

from torch.distributions import Distribution

from vae_lab.distributions.capabilities import has_explicit_rsample
from vae_lab.estimators.base import Estimate, Estimator, Objective


class ReparamEstimator(Estimator):
    """Explicit reparameterization: ``surrogate = f(z)``, ``z = q.rsample()`` (Kingma & Welling, 2014)."""

    requirement: ClassVar[str] = "an explicitly reparameterized rsample (z = g(eps, phi), e.g. Normal)"

    @classmethod
    def supports(cls, q: Distribution) -> bool:
        return has_explicit_rsample(q)

    def forward(self, q: Distribution, f: Objective, n_samples: int = 1) -> Estimate:
        self.check(q)
        z = q.rsample((n_samples,))
        value = f(z)
        return Estimate(z=z, value=value, surrogate=value)
