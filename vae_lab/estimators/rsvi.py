r"""Rejection-sampling variational inference gradients (Naesseth, Ruiz, Linderman & Blei, "Reparameterization
Gradients through Acceptance-Rejection Sampling Algorithms", AISTATS 2017).

With z = h(eps, theta) the output of a rejection sampler and pi(eps; theta) the density of its accepted
noise,

.. math::

    \nabla_\theta E_q[f(z)] = \underbrace{E_\pi[\nabla_z f(z) \nabla_\theta h(\epsilon, \theta)]}_{g_{rep}}
        + \underbrace{E_\pi[f(z) \nabla_\theta \log \pi(\epsilon; \theta)]}_{g_{cor}},
    \qquad \log\pi = \log q(h(\epsilon, \theta); \theta) + \log|\partial h / \partial\epsilon|.

The surrogate is f(z) + stop(f(z)) (log pi - stop(log pi)). Shape augmentation with B >= 1 (Gamma,
Dirichlet, Beta) makes the acceptance rate near 1 and g_cor small; ``correction=False`` drops g_cor,
which is biased (the ablation of the paper). See :mod:`vae_lab.distributions.rsvi` for the samplers.
"""

from __future__ import annotations

from typing import ClassVar

from torch.distributions import Distribution

from vae_lab.distributions.rsvi import has_rejection_sampler, rsvi_sample
from vae_lab.errors import ConfigError
from vae_lab.estimators.base import Estimate, Estimator, Objective


class RSVIEstimator(Estimator):
    """RSVI (Naesseth et al., 2017): reparameterization through the proposal plus the correction term.

    Args:
        B: shape augmentation for Gamma, Dirichlet and Beta (>= 0; ``B = 0`` needs shapes >= 1);
            ignored for von Mises.
        correction: add the score-like correction term f(z) grad log pi(eps); without it the gradient
            is biased.
    """

    requirement: ClassVar[str] = "a rejection sampler registered in vae_lab.distributions.rsvi"

    @classmethod
    def supports(cls, q: Distribution) -> bool:
        return has_rejection_sampler(q)

    def __init__(self, B: int = 1, correction: bool = True) -> None:
        super().__init__()
        if isinstance(B, bool) or not isinstance(B, int) or B < 0:
            raise ConfigError("B", "expected an integer >= 0 (shape augmentation steps)", B)
        self.B = B
        self.correction = correction

    def extra_repr(self) -> str:
        return f"B={self.B}, correction={self.correction}"

    def forward(self, q: Distribution, f: Objective, n_samples: int = 1) -> Estimate:
        self.check(q)
        sample = rsvi_sample(q, (n_samples,), B=self.B)
        value = f(sample.z)
        surrogate = value
        if self.correction:
            surrogate = value + value.detach() * (sample.log_ratio - sample.log_ratio.detach())
        return Estimate(z=sample.z, value=value, surrogate=surrogate)
