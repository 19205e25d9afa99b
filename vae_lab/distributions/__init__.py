"""vae-lab's latent families, as :class:`torch.distributions.Distribution` subclasses.

Importing the package registers the closed-form KLs (:mod:`vae_lab.distributions.kl`) with
:func:`torch.distributions.kl.register_kl`.
"""

from vae_lab.distributions import kl  # noqa: F401  (registers the KLs)
from vae_lab.distributions.beta import Beta
from vae_lab.distributions.circular_uniform import CircularUniform
from vae_lab.distributions.dirichlet import Dirichlet
from vae_lab.distributions.gamma import Gamma
from vae_lab.distributions.log_space import log1m_of, log_of
from vae_lab.distributions.power_spherical import PowerSpherical
from vae_lab.distributions.sphere_uniform import SphereUniform
from vae_lab.distributions.von_mises import VonMises

__all__ = [
    "Beta",
    "CircularUniform",
    "Dirichlet",
    "Gamma",
    "PowerSpherical",
    "SphereUniform",
    "VonMises",
    "log1m_of",
    "log_of",
]
