r"""The Dirichlet distribution with samples drawn in log space and exact implicit gradients.

.. math:: q(z; \alpha) = \frac{\Gamma(\sum_k \alpha_k)}{\prod_k \Gamma(\alpha_k)} \prod_k z_k^{\alpha_k - 1}

on the simplex. A sample normalizes independent Gamma(alpha_k, 1) variates, here in log space:
:math:`\log z = \log g - \mathrm{logsumexp}(\log g)`, with the implicit gradients of the Gammas
(:mod:`vae_lab.distributions.log_space`) carried through the normalization by autograd, as in the code of
Figurnov, Mohamed & Mnih (2018). A drop-in subclass of :class:`torch.distributions.Dirichlet` (torch's KLs
apply), correct where torch's float32 sampler clamps the components of small concentrations.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Dirichlet as _TorchDirichlet

from vae_lab.distributions.log_space import log_of, log_standard_gamma, remember_logs, xlog

__all__ = ["Dirichlet"]

_NO_SHAPE = torch.Size()


class Dirichlet(_TorchDirichlet):
    r"""Dirichlet(concentration) with log-space sampling and implicit reparameterization gradients.

    :meth:`rsample` returns :math:`z = \mathrm{softmax}(\log g)` (components at least the smallest normal
    number); :meth:`log_prob` reads the exact :math:`\log z` of its own samples.
    """

    implicit_rsample = True

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = _NO_SHAPE) -> Tensor:
        shape = self._extended_shape(sample_shape)
        log_g = log_standard_gamma(self.concentration.expand(shape))
        z = torch.softmax(log_g, dim=-1).clamp_min(torch.finfo(log_g.dtype).tiny)
        return remember_logs(z, torch.log_softmax(log_g, dim=-1))

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = _NO_SHAPE) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        r""":math:`\sum_k (\alpha_k - 1)\log z_k + \log\Gamma(\sum_k\alpha_k)
        - \sum_k\log\Gamma(\alpha_k)`."""
        if self._validate_args:
            self._validate_sample(value)
        alpha = self.concentration
        return (
            xlog(alpha - 1.0, log_of(value)).sum(-1)
            + torch.lgamma(alpha.sum(-1))
            - torch.lgamma(alpha).sum(-1)
        )
