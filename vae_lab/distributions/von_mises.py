r"""The von Mises distribution with implicit reparameterization gradients.

The density on the circle is

.. math::

    q(z; \mu, \kappa) = \frac{\exp(\kappa \cos(z - \mu))}{2 \pi I_0(\kappa)},

with :math:`I_n` the modified Bessel function of the first kind. Writing :math:`x = z - \mu` wrapped to
:math:`[-\pi, \pi)` and :math:`F(x; \kappa)` for the CDF of the centred distribution on that interval,
:meth:`VonMises.rsample` draws :math:`x` with the Best & Fisher (1979) rejection sampler
(:mod:`~vae_lab.distributions.best_fisher`) and differentiates through the sample *implicitly* (Figurnov,
Mohamed & Mnih, 2018):

.. math::

    \frac{\partial z}{\partial \mu} = 1, \qquad
    \frac{\partial z}{\partial \kappa} = -\frac{\partial F(x; \kappa) / \partial \kappa}{q(x; 0, \kappa)},

with :math:`F` from Hill (1977) (:mod:`~vae_lab.distributions.von_mises_cdf`, relative error of
:math:`\partial z/\partial\kappa` at most 3e-5 in float32 out to 6 standard deviations), computed only on the
backward pass. Densities, entropy and KLs use scaled Bessel functions whose :math:`\kappa`-derivatives come
from the Bessel ratio (:mod:`~vae_lab.distributions.bessel`).

Reference:
    M. Figurnov, S. Mohamed and A. Mnih. Implicit reparameterization gradients. NeurIPS 2018.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.distributions import VonMises as _TorchVonMises
from torch.distributions import constraints

from vae_lab.distributions.angles import wrap_angle
from vae_lab.distributions.bessel import log_i0e, one_minus_bessel_ratio
from vae_lab.distributions.best_fisher import sample_centred
from vae_lab.distributions.von_mises_cdf import von_mises_cdf, von_mises_dz_dconcentration

__all__ = ["VonMises", "von_mises_cdf", "von_mises_dz_dconcentration"]

_LOG_TWO_PI = math.log(2.0 * math.pi)
_NO_SHAPE = torch.Size()


class _ImplicitReparam(torch.autograd.Function):
    """z = wrap(loc + x): dz/dloc = 1, dz/dkappa from :func:`von_mises_dz_dconcentration` at x."""

    @staticmethod
    def forward(ctx, loc: Tensor, concentration: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(concentration, x)
        ctx.loc_shape = loc.shape
        return wrap_angle(loc + x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        concentration, x = ctx.saved_tensors
        grad_loc = grad_concentration = None
        if ctx.needs_input_grad[0]:
            grad_loc = grad.sum_to_size(ctx.loc_shape)
        if ctx.needs_input_grad[1]:
            dx = von_mises_dz_dconcentration(x, concentration.expand(x.shape))
            grad_concentration = (grad * dx).sum_to_size(concentration.shape)
        return grad_loc, grad_concentration, None


class VonMises(_TorchVonMises):
    r"""Von Mises distribution on the circle with an implicitly reparameterized :meth:`rsample`.

    .. math::

        q(z; \mu, \kappa) = \frac{e^{\kappa\cos(z - \mu)}}{2\pi I_0(\kappa)}

    A drop-in subclass of :class:`torch.distributions.VonMises` (same constructor, ``loc`` any real
    angle, ``concentration`` > 0), adding:

    * :meth:`rsample`: Best & Fisher (1979) samples in :math:`[-\pi, \pi)` with implicit
      reparameterization gradients (Figurnov et al., 2018): :math:`\partial z/\partial\mu = 1`,
      :math:`\partial z/\partial\kappa = -(\partial F/\partial\kappa)(x;\kappa)/q(x;0,\kappa)` at
      :math:`x = z - \mu`, :math:`F` from Hill (1977);
    * :meth:`sample`: the same sampler without gradients, in the parameters' dtype;
    * :meth:`cdf` (Hill 1977) and a closed-form :meth:`entropy`;
    * :meth:`log_prob` and :attr:`variance` through scaled Bessel functions (``i0e``, ``i1e``): torch's
      polynomial :math:`\log I_0` is accurate to about 1e-7 only, and :math:`\kappa\cos(z-\mu) - \log
      I_0(\kappa)` cancels catastrophically in float32 for large :math:`\kappa`.

    Finite samples and gradients for concentrations from 1e-6 to 1e6 in float32 and float64.

    Example::

        >>> q = VonMises(torch.zeros(3), torch.tensor([0.1, 1.0, 100.0], requires_grad=True))
        >>> z = q.rsample((5,))  # shape (5, 3), in [-pi, pi)
        >>> torch.cos(z).sum().backward()  # gradients reach q.concentration
    """

    has_rsample = True
    implicit_rsample = True
    #: where samples lie: wrapped to [-pi, pi). (``support`` stays the real line, as torch's: log_prob and
    #: cdf take any real angle.)
    sample_support = constraints.half_open_interval(-math.pi, math.pi)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = _NO_SHAPE) -> Tensor:
        """Reparameterized samples of shape ``sample_shape + batch_shape``, wrapped to [-pi, pi).

        Gradients flow to ``loc`` (1 per sample) and ``concentration`` (the implicit derivative, computed
        on the backward pass only); first-order only (no double backward).
        """
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            x = sample_centred(self.concentration.detach().expand(shape))
        return _ImplicitReparam.apply(self.loc, self.concentration, x)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = _NO_SHAPE) -> Tensor:
        """Samples of shape ``sample_shape + batch_shape`` in [-pi, pi), without gradients.

        Best & Fisher (1979) rejection sampling in the dtype of the parameters.
        """
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            return wrap_angle(self.loc + sample_centred(self.concentration.expand(shape)))

    def log_prob(self, value: Tensor) -> Tensor:
        r""":math:`-2\kappa\sin^2((z-\mu)/2) - \log(2\pi\, i_{0e}(\kappa))` (the same density as torch's)."""
        if self._validate_args:
            self._validate_sample(value)
        half = torch.sin(0.5 * (value - self.loc))
        return -2.0 * self.concentration * half * half - _LOG_TWO_PI - log_i0e(self.concentration)

    def cdf(self, value: Tensor) -> Tensor:
        r""":math:`\int_{\mu-\pi}^{z} q(t)\,dt` (Hill 1977), extended periodically:
        :math:`F(z + 2\pi) = F(z) + 1`.

        So ``cdf(loc) = 1/2`` and ``cdf(loc + pi) - cdf(loc - pi) = 1``, matching
        ``scipy.stats.vonmises.cdf(value, concentration, loc=loc)``.
        """
        if self._validate_args:
            self._validate_sample(value)
        return von_mises_cdf(value - self.loc, self.concentration)

    def entropy(self) -> Tensor:
        r""":math:`H = -\kappa A(\kappa) + \log(2\pi I_0(\kappa))`, :math:`A = I_1/I_0`, as
        :math:`\kappa(1 - A) + \log(2\pi\, i_{0e}(\kappa))` so that nothing overflows or cancels."""
        k = self.concentration
        return k * one_minus_bessel_ratio(k) + _LOG_TWO_PI + log_i0e(k)

    @property
    def variance(self) -> Tensor:  # type: ignore[override]
        r"""Circular variance :math:`1 - I_1(\kappa)/I_0(\kappa)`."""
        return one_minus_bessel_ratio(self.concentration)
