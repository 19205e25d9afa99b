r"""The Gamma distribution with samples drawn in log space and exact implicit gradients.

.. math:: q(z; \alpha, \beta) = \frac{\beta^\alpha z^{\alpha - 1} e^{-\beta z}}{\Gamma(\alpha)},\qquad z > 0.

A drop-in subclass of :class:`torch.distributions.Gamma` (same constructor, torch's KLs apply) whose
:meth:`Gamma.rsample` is correct at every shape in float32 (see :mod:`vae_lab.distributions.log_space`):
torch's sampler clamps the far-below-float draws of small shapes and biases the implicit gradient of
E[log z + z] by -1.1% at alpha = 0.05 in float32.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Gamma as _TorchGamma

from vae_lab.distributions.log_space import log_of, log_standard_gamma, remember_logs, xlog

__all__ = ["Gamma"]

_NO_SHAPE = torch.Size()


class Gamma(_TorchGamma):
    r"""Gamma(concentration alpha, rate beta) with log-space sampling (Marsaglia & Tsang's boost) and
    implicit reparameterization gradients (Figurnov, Mohamed & Mnih 2018).

    :meth:`rsample` and :meth:`sample` return :math:`z = \exp(\log z)`, at least the smallest normal
    number; :meth:`log_prob` reads the exact :math:`\log z` of its own samples
    (:func:`~vae_lab.distributions.log_space.log_of`).
    """

    implicit_rsample = True

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = _NO_SHAPE) -> Tensor:
        shape = self._extended_shape(sample_shape)
        log_z = log_standard_gamma(self.concentration.expand(shape)) - torch.log(self.rate.expand(shape))
        z = torch.exp(log_z).clamp_min(torch.finfo(log_z.dtype).tiny)
        return remember_logs(z, log_z)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = _NO_SHAPE) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        r""":math:`(\alpha - 1)\log z + \alpha\log\beta - \beta z - \log\Gamma(\alpha)`."""
        if self._validate_args:
            self._validate_sample(value)
        alpha, rate = self.concentration, self.rate
        return xlog(alpha - 1.0, log_of(value)) + alpha * torch.log(rate) - rate * value - torch.lgamma(alpha)
