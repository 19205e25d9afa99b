r"""The Power Spherical distribution on the unit sphere, with implicit reparameterization gradients.

De Cao & Aziz, "The Power Spherical distribution", ICML workshop (INNF+) 2020, arXiv:2006.04437. On
:math:`S^{D-1} \subset \mathbb{R}^D`, with mean direction :math:`\mu` (a unit vector) and concentration
:math:`\kappa \ge 0`,

.. math::

    q(z; \mu, \kappa) = C(\kappa, D)\,(1 + \mu^\top z)^\kappa, \qquad
    C(\kappa, D) = \Big[2^{a + b}\pi^b \frac{\Gamma(a)}{\Gamma(a + b)}\Big]^{-1}, \qquad
    a = \frac{D - 1}{2} + \kappa,\ b = \frac{D - 1}{2}.

Sampling (the paper's algorithm 1): :math:`t = \mu^\top z = 2B - 1` with :math:`B \sim
\mathrm{Beta}(a, b)`, :math:`v` uniform on :math:`S^{D-2}` (a normalized Gaussian), :math:`y = (t,
\sqrt{1 - t^2}\,v)`, and a Householder reflection that takes :math:`e_1` to :math:`\mu`. :math:`B` is
vae-lab's :class:`~vae_lab.distributions.Beta`, whose implicit gradients (Figurnov, Mohamed & Mnih 2018)
are the only path from :math:`\kappa` to z; :math:`\mu` enters through the reflection, explicitly.

Numerics, so that float32 stays exact up to :math:`\kappa = 10^3` and beyond:

* :math:`t = \tanh(\ell/2)` and :math:`\sqrt{1 - t^2} = 2\sqrt{B(1 - B)}` from the Beta's exact logit
  :math:`\ell = \log B - \log(1 - B)`, not from :math:`2B - 1`, which loses :math:`1 - t` for large
  :math:`\kappa`;
* the reflection is :math:`H = I - 2uu^\top/u^\top u` with :math:`u = \mu + s e_1`,
  :math:`s = \mathrm{sign}(\mu_1)`, applied to :math:`y = (-s t, \sqrt{1 - t^2}\,v)`: :math:`H` maps
  :math:`-s e_1` to :math:`\mu` and :math:`u^\top u = 2(1 + |\mu_1|) \ge 2` never cancels (the paper's
  :math:`u = e_1 - \mu` vanishes as :math:`\mu \to e_1`);
* :math:`\log q = [\log C + \kappa\log 2] + \kappa\log\frac{1 + \mu^\top z}{2}` with
  :math:`\log C + \kappa\log 2 = \log\Gamma(a + b) - \log\Gamma(a) - (D - 1)\log 2 - b\log\pi`, free of
  the terms of size :math:`\kappa\log 2` that cancel, and :math:`\frac{1 + \mu^\top z}{2} = 1 - |z -
  \mu|^2/4 = |z + \mu|^2/4` for unit vectors, read on whichever side keeps its digits;
* the :math:`\kappa`-only terms (normalizer, entropy, moments) are evaluated in float64.

Gradients with respect to ``loc`` are those of an extension off the sphere; only their component
tangent to the sphere at :math:`\mu` has a meaning. Parameterize the location as a normalized vector
(:class:`vae_lab.model.posteriors.PowerSphericalHead` does), and the chain rule keeps that component only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, constraints

from vae_lab.distributions.beta import Beta
from vae_lab.distributions.log_space import log1m_of, log_of
from vae_lab.distributions.sphere_uniform import unit_sphere

__all__ = ["PowerSpherical"]

_LOG_2 = math.log(2.0)
_LOG_PI = math.log(math.pi)
_NO_SHAPE = torch.Size()


class PowerSpherical(Distribution):
    r"""Power Spherical distribution :math:`q(z) = C(\kappa, D)(1 + \mu^\top z)^\kappa` on :math:`S^{D-1}`
    (De Cao & Aziz 2020), ``event_shape (D,)``, ``D >= 2``.

    Args:
        loc: mean direction :math:`\mu`, unit vectors of shape ``batch_shape + (D,)``.
        concentration: :math:`\kappa \ge 0`, shape ``batch_shape`` (broadcast with ``loc[..., 0]``);
            :math:`\kappa = 0` is the uniform distribution on the sphere.
        validate_args: as for every :class:`torch.distributions.Distribution`.

    :meth:`rsample` is implicitly reparameterized in :math:`\kappa` (through the Beta variate) and
    explicitly in :math:`\mu`. Moments: :math:`E[z] = \frac{a - b}{a + b}\mu`, and a diagonal
    :attr:`variance` from :math:`\mathrm{Cov}[z] = \mathrm{Var}[t]\,\mu\mu^\top + \frac{1 - E[t^2]}{D - 1}
    (I - \mu\mu^\top)`. The registered KL to :class:`~vae_lab.distributions.SphereUniform` is
    :math:`\log|S^{D-1}| - H(q)`.

    Example::

        >>> q = PowerSpherical(torch.tensor([0.0, 0.0, 1.0]), torch.tensor(10.0, requires_grad=True))
        >>> z = q.rsample((5,))  # shape (5, 3), unit vectors
        >>> z[..., 2].sum().backward()  # gradients reach q.concentration
    """

    arg_constraints = {"loc": unit_sphere, "concentration": constraints.nonnegative}
    support = unit_sphere
    has_rsample = True
    implicit_rsample = True

    def __init__(self, loc: Tensor, concentration: Tensor, validate_args: bool | None = None) -> None:
        if loc.dim() < 1 or loc.shape[-1] < 2:
            raise ValueError(f"PowerSpherical needs a loc of shape (..., D), D >= 2; got {tuple(loc.shape)}")
        concentration = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
        batch_shape = torch.broadcast_shapes(loc.shape[:-1], concentration.shape)
        self.loc = loc.expand(batch_shape + loc.shape[-1:])
        self.concentration = concentration.expand(batch_shape)
        super().__init__(batch_shape, loc.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape: torch.Size | tuple[int, ...], _instance=None) -> PowerSpherical:
        new = self._get_checked_instance(PowerSpherical, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new.concentration = self.concentration.expand(batch_shape)
        super(PowerSpherical, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    # -- the Beta(a, b) of t = mu.z ------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.event_shape[0]

    def beta_shapes(self) -> tuple[Tensor, Tensor]:
        """(a, b) = ((D - 1)/2 + kappa, (D - 1)/2): (1 + t)/2 ~ Beta(a, b), in the parameters' dtype."""
        b = 0.5 * (self.dim - 1)
        return self.concentration + b, torch.full_like(self.concentration, b)

    def kappa_terms(self) -> tuple[Tensor, Tensor, Tensor]:
        r"""(kappa, log C + kappa log 2, psi(a) - psi(a + b)) in float64: the terms of the density, entropy
        and KL that depend on kappa only."""
        kappa = self.concentration.double()
        b = 0.5 * (self.dim - 1)
        a = kappa + b
        log_norm = torch.lgamma(a + b) - torch.lgamma(a) - (self.dim - 1) * _LOG_2 - b * _LOG_PI
        return kappa, log_norm, torch.digamma(a) - torch.digamma(a + b)

    def place(self, logit: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""z on the sphere from the Beta variate's logit :math:`\ell = \log B - \log(1 - B)` (shape
        ``sample_shape + batch_shape``): :math:`t = \tanh(\ell/2)`, :math:`\sqrt{1 - t^2} =
        \exp(\tfrac12(\log B + \log(1 - B)) + \log 2)`, a fresh uniform direction :math:`v` on
        :math:`S^{D-2}`, and the reflection of the module docstring. Differentiable in ``logit`` and
        ``loc``; shared by :meth:`rsample` and the RSVI sampler (:mod:`vae_lab.distributions.rsvi`)."""
        loc = self.loc
        g = torch.randn(
            logit.shape + (self.dim - 1,), dtype=logit.dtype, device=logit.device, generator=generator
        )
        v = g / torch.linalg.vector_norm(g, dim=-1, keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)
        t = torch.tanh(0.5 * logit)
        r = torch.exp(0.5 * (F.logsigmoid(logit) + F.logsigmoid(-logit)) + _LOG_2)
        s = torch.where(loc[..., :1] >= 0, 1.0, -1.0).to(loc.dtype)
        y = torch.cat([(-s[..., 0] * t).unsqueeze(-1), r.unsqueeze(-1) * v], dim=-1)
        u = torch.cat([loc[..., :1] + s, loc[..., 1:]], dim=-1)
        return y - u * (2.0 * (u * y).sum(-1, keepdim=True) / (u * u).sum(-1, keepdim=True))

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = _NO_SHAPE) -> Tensor:
        """Reparameterized unit vectors of shape ``sample_shape + batch_shape + (D,)``; random numbers from
        torch's global generator. (``sample`` is torch's: this without gradients.)"""
        a, b = self.beta_shapes()
        beta = Beta(a, b, validate_args=False).rsample(torch.Size(sample_shape))
        return self.place(log_of(beta) - log1m_of(beta))

    def log_prob(self, value: Tensor) -> Tensor:
        r""":math:`[\log C + \kappa\log 2] + \kappa\log\frac{1 + \mu^\top z}{2}` (module docstring)."""
        if self._validate_args:
            self._validate_sample(value)
        _, log_norm, _ = self.kappa_terms()
        gap = (value - self.loc).square().sum(-1) * 0.25  # (1 - mu.z)/2
        near = (value + self.loc).square().sum(-1) * 0.25  # (1 + mu.z)/2
        # each branch kept finite where it is not chosen, so that its gradient is 0, not NaN
        tiny = torch.finfo(near.dtype).tiny
        log_half = torch.where(gap < 0.5, torch.log1p(-gap.clamp_max(0.5)), torch.log(near.clamp_min(tiny)))
        return log_norm.to(value.dtype) + self.concentration * log_half

    def entropy(self) -> Tensor:
        r""":math:`H = -[\log C + \kappa(\log 2 + \psi(a) - \psi(a + b))]` (De Cao & Aziz 2020, eq. 8)."""
        kappa, log_norm, dpsi = self.kappa_terms()
        return -(log_norm + kappa * dpsi).to(self.concentration.dtype)

    def _t_moments(self) -> tuple[Tensor, Tensor]:
        """(E[t], Var[t]) of t = mu.z = 2B - 1, in float64."""
        kappa = self.concentration.double()
        total = kappa + (self.dim - 1)  # a + b
        mean_t = kappa / total
        b = 0.5 * (self.dim - 1)
        var_t = 4.0 * (kappa + b) * b / (total * total * (total + 1.0))
        return mean_t, var_t

    @property
    def mean(self) -> Tensor:
        r""":math:`E[z] = \frac{a - b}{a + b}\mu = \frac{\kappa}{\kappa + D - 1}\mu`."""
        mean_t, _ = self._t_moments()
        return mean_t.to(self.loc.dtype).unsqueeze(-1) * self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        r"""Diagonal of :math:`\mathrm{Var}[t]\mu\mu^\top + \frac{1 - E[t^2]}{D - 1}(I - \mu\mu^\top)`."""
        mean_t, var_t = self._t_moments()
        across = (1.0 - var_t - mean_t * mean_t) / (self.dim - 1)
        mu2 = self.loc.square()
        dtype = self.loc.dtype
        return var_t.to(dtype).unsqueeze(-1) * mu2 + across.to(dtype).unsqueeze(-1) * (1.0 - mu2)
