r"""Implicit reparameterization gradients (Figurnov, Mohamed & Mnih, NeurIPS 2018).

For z ~ q(z; phi) with CDF F (elementwise, or a standardization function in general), differentiating
F(z; phi) = eps with eps held fixed gives

.. math:: \nabla_\phi z = -\frac{\nabla_\phi F(z; \phi)}{q(z; \phi)},

so no inverse of F is needed: a sample from any sampler, plus the CDF's gradient, yields the
reparameterization gradient. torch's ``Gamma``, ``Beta`` and ``Dirichlet`` and vae-lab's ``VonMises``
already implement ``rsample`` this way and are used as they are. For the Gaussian, which also has an
explicit path, the gradient is built here from ``Normal.cdf`` to show the method on a family where it
can be checked against the explicit one:

.. math:: \hat z = z - \frac{F(z; \phi) - \mathrm{stop}(F(z; \phi))}{\mathrm{stop}(q(z; \phi))},

whose value is z and whose gradient is -(dF/dphi) / q.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch.distributions import Distribution

from vae_lab.distributions.capabilities import (
    base_distribution,
    has_explicit_rsample,
    has_implicit_rsample,
    implements,
)
from vae_lab.estimators.base import Estimate, Estimator, Objective


class ImplicitEstimator(Estimator):
    """Implicit reparameterization (Figurnov et al., 2018): ``surrogate = f(z)``, dz/dphi = -(dF/dphi) / q.

    Gaussian: through ``Normal.cdf`` (see the module docstring); von Mises: vae-lab's ``VonMises.rsample``
    (torch's own ``VonMises`` has no ``rsample`` and is refused); Gamma, Beta, Dirichlet: torch's
    ``rsample``, which is implicit.
    """

    requirement: ClassVar[str] = (
        "an implicitly reparameterized rsample, or an explicit one with a cdf (for von Mises use "
        "vae_lab.distributions.VonMises, not torch.distributions.VonMises)"
    )

    @classmethod
    def supports(cls, q: Distribution) -> bool:
        return has_implicit_rsample(q) or (has_explicit_rsample(q) and implements(q, "cdf"))

    def forward(self, q: Distribution, f: Objective, n_samples: int = 1) -> Estimate:
        self.check(q)
        if has_implicit_rsample(q):
            z = q.rsample((n_samples,))
        else:  # an explicit family: the implicit gradient through its CDF
            z = _implicit_rsample_from_cdf(q, base_distribution(q), n_samples)
        value = f(z)
        return Estimate(z=z, value=value, surrogate=value)


def _implicit_rsample_from_cdf(q: Distribution, base: Distribution, n_samples: int) -> torch.Tensor:
    z = q.sample((n_samples,))
    cdf = base.cdf(z)
    # the density only scales the gradient: stop its own gradient, and keep it off zero in the far
    # tails, where dF/dphi underflows as well (the gradient is then 0 instead of 0/0)
    density = base.log_prob(z).detach().exp().clamp_min(torch.finfo(z.dtype).tiny)
    return z - (cdf - cdf.detach()) / density
