r"""The Beta distribution with samples drawn in log space and exact implicit gradients.

.. math:: q(z; a, b) = \frac{z^{a - 1}(1 - z)^{b - 1}}{B(a, b)},\qquad 0 < z < 1,

sampled as :math:`z = g_a/(g_a + g_b)` from independent Gamma(a, 1) and Gamma(b, 1) variates drawn in
log space (:mod:`vae_lab.distributions.log_space`): :math:`\log z = \log\sigma(\log g_a - \log g_b)`,
:math:`\log(1 - z) = \log\sigma(\log g_b - \log g_a)`. A drop-in subclass of
:class:`torch.distributions.Beta` (torch's KLs apply).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Beta as _TorchBeta

from vae_lab.distributions.log_space import log1m_of, log_of, log_standard_gamma, remember_logs, xlog

__all__ = ["Beta"]

_NO_SHAPE = torch.Size()


class Beta(_TorchBeta):
    r"""Beta(concentration1 a, concentration0 b) with log-space sampling and implicit gradients.

    :meth:`rsample` returns z in :math:`[\text{tiny}, 1 - \epsilon]`; :meth:`log_prob` reads the exact
    :math:`\log z` and :math:`\log(1 - z)` of its own samples.
    """

    implicit_rsample = True

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = _NO_SHAPE) -> Tensor:
        shape = self._extended_shape(sample_shape)
        a = self.concentration1.expand(shape)
        b = self.concentration0.expand(shape)
        log_g = log_standard_gamma(torch.stack([a, b], dim=-1))
        logit = log_g[..., 0] - log_g[..., 1]
        finfo = torch.finfo(logit.dtype)
        z = torch.sigmoid(logit).clamp(finfo.tiny, 1.0 - finfo.eps)
        return remember_logs(z, F.logsigmoid(logit), F.logsigmoid(-logit))

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = _NO_SHAPE) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        r""":math:`(a - 1)\log z + (b - 1)\log(1 - z) - \log B(a, b)`."""
        if self._validate_args:
            self._validate_sample(value)
        a, b = self.concentration1, self.concentration0
        log_beta = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
        return xlog(a - 1.0, log_of(value)) + xlog(b - 1.0, log1m_of(value)) - log_beta
