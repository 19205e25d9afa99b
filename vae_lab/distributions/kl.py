r"""Closed-form KL divergences of vae-lab's families, registered with
:func:`torch.distributions.kl.register_kl`.

Importing this module registers them; :func:`torch.distributions.kl_divergence` then dispatches to them.
With :math:`A(\kappa) = I_1(\kappa)/I_0(\kappa)`:

* ``VonMises`` || ``CircularUniform``:
  :math:`\mathrm{KL} = \kappa A(\kappa) - \log I_0(\kappa) = \log 2\pi - H(q)`.
* ``VonMises`` || ``VonMises``:
  :math:`\mathrm{KL} = \kappa_1 A(\kappa_1) - \log I_0(\kappa_1) - \kappa_2 A(\kappa_1)\cos(\mu_1 - \mu_2)
  + \log I_0(\kappa_2)`.
* ``PowerSpherical`` || ``SphereUniform`` (De Cao & Aziz 2020):
  :math:`\mathrm{KL} = \log|S^{D-1}| - H(q) = \log C + \kappa(\log 2 + \psi(a) - \psi(a + b))
  + \log|S^{D-1}|`, evaluated in float64 (see :mod:`vae_lab.distributions.power_spherical`).

The von Mises KLs use scaled Bessel functions (:math:`\log I_0(\kappa) = \log i_{0e}(\kappa) + \kappa`)
and :math:`1 - A` computed without cancellation, rearranged so that nothing overflows or cancels up to
:math:`\kappa = 10^6`: :math:`\kappa A - \log I_0 = -\kappa(1 - A) - \log i_{0e}(\kappa)` and
:math:`\kappa_2 - \kappa_2 A_1\cos\Delta = \kappa_2\big((1 - A_1) + 2A_1\sin^2(\Delta/2)\big)`.

The pairs are registered on vae-lab's :class:`~vae_lab.distributions.von_mises.VonMises` only, so
``torch.distributions.VonMises`` pairs dispatch exactly as they did before this module was imported.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions.kl import register_kl

from vae_lab.distributions.bessel import log_i0e, one_minus_bessel_ratio
from vae_lab.distributions.circular_uniform import CircularUniform
from vae_lab.distributions.power_spherical import PowerSpherical
from vae_lab.distributions.sphere_uniform import SphereUniform, log_sphere_area
from vae_lab.distributions.von_mises import VonMises

__all__ = ["kl_power_spherical_sphere_uniform", "kl_von_mises_circular_uniform", "kl_von_mises_von_mises"]


@register_kl(VonMises, CircularUniform)
def kl_von_mises_circular_uniform(p: VonMises, q: CircularUniform) -> Tensor:
    r""":math:`\mathrm{KL}(\mathrm{vM}(\mu, \kappa) \,\|\, \mathcal{U}[-\pi, \pi))
    = \kappa A(\kappa) - \log I_0(\kappa)`."""
    k = p.concentration
    kl = -k * one_minus_bessel_ratio(k) - log_i0e(k)
    return kl.expand(torch.broadcast_shapes(p.batch_shape, q.batch_shape))


@register_kl(VonMises, VonMises)
def kl_von_mises_von_mises(p: VonMises, q: VonMises) -> Tensor:
    r""":math:`\kappa_1 A(\kappa_1) - \log I_0(\kappa_1) - \kappa_2 A(\kappa_1)\cos(\mu_1 - \mu_2)
    + \log I_0(\kappa_2)`."""
    k1, k2 = p.concentration, q.concentration
    one_minus_a1 = one_minus_bessel_ratio(k1)
    half = torch.sin(0.5 * (p.loc - q.loc))
    return (
        -k1 * one_minus_a1
        - log_i0e(k1)
        + log_i0e(k2)
        + k2 * (one_minus_a1 + 2.0 * (1.0 - one_minus_a1) * half * half)
    )


@register_kl(PowerSpherical, SphereUniform)
def kl_power_spherical_sphere_uniform(p: PowerSpherical, q: SphereUniform) -> Tensor:
    r""":math:`\mathrm{KL}(\mathrm{PS}(\mu, \kappa) \,\|\, \mathcal{U}(S^{D-1}))
    = \log C + \kappa(\log 2 + \psi(a) - \psi(a + b)) + \log|S^{D-1}|`,
    :math:`a = (D-1)/2 + \kappa`, :math:`b = (D-1)/2`."""
    if p.dim != q.dim:
        raise ValueError(f"KL between spheres of different dimensions: {p.dim} and {q.dim}")
    kappa, log_norm, dpsi = p.kappa_terms()
    kl = (log_norm + kappa * dpsi + log_sphere_area(p.dim)).to(p.concentration.dtype)
    return kl.expand(torch.broadcast_shapes(p.batch_shape, q.batch_shape))
