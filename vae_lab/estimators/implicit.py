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
from torch.distributions import Distribution, Normal

from vae_lab.estimators.base import Estimate, Estimator, Objective, base_distribution, family_of


class ImplicitEstimator(Estimator):
    """Implicit reparameterization (Figurnov et al., 2018): ``surrogate = f(z)``, dz/dphi = -(dF/dphi) / q.

    Gaussian: through ``Normal.cdf`` (see the module docstring); von Mises: vae-lab's ``VonMises.rsample``
    (torch's own ``VonMises`` has no ``rsample`` and is refused); Gamma, Beta, Dirichlet: torch's
    ``rsample``, which is implicit.
    """

    families: ClassVar[tuple[str, ...]] = ("gaussian", "vonmises", "dirichlet", "gamma", "beta")

    def forward(self, q: Distribution, f: Objective, n_samples: int = 1) -> Estimate:
        self.check(q)
        base = base_distribution(q)
        if family_of(q) == "gaussian":
            z = _implicit_normal_rsample(q, base, n_samples)
        else:
            if not base.has_rsample:
                raise ValueError(
                    f"implicit reparameterization needs a {type(base).__name__} with rsample; for von Mises "
                    "use vae_lab.distributions.VonMises, not torch.distributions.VonMises"
                )
            z = q.rsample((n_samples,))
        value = f(z)
        return Estimate(z=z, value=value, surrogate=value)


def _implicit_normal_rsample(q: Distribution, base: Normal, n_samples: int) -> torch.Tensor:
    z = q.sample((n_samples,))
    cdf = base.cdf(z)
    # the density only scales the gradient: stop its own gradient, and keep it off zero in the far
    # tails, where dF/dphi underflows as well (the gradient is then 0 instead of 0/0)
    density = base.log_prob(z).detach().exp().clamp_min(torch.finfo(z.dtype).tiny)
    return z - (cdf - cdf.detach()) / density
