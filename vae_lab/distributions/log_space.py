r"""Gamma variates in log space, with exact implicit gradients, and the logs of the samples they give.

A Gamma(alpha, 1) variate with small alpha is mostly far below the smallest float: at alpha = 1e-3 its
log has mean about -1000, so in float32 (smallest normal number 1.2e-38, log -87.3) about 92% of draws
underflow, and at alpha = 0.05 still 1.3%. torch's samplers clamp them to the smallest normal number
(pytorch issues 76030, 90663, 15738), which biases every quantity that reads log z: the log-density of
the sample (score-function and RSVI estimators, Monte Carlo KL) and objectives such as E[log z].

Here the variate is drawn as its log (Marsaglia & Tsang 2000, section 6's boost):

.. math:: \log z = \log g + \frac{\log u}{\alpha}, \qquad g \sim \mathrm{Gamma}(\alpha + 1, 1),\
          u \sim U(0, 1],

and differentiated implicitly (Figurnov, Mohamed & Mnih 2018), :math:`\partial z/\partial\alpha =
-(\partial F/\partial\alpha)(z)/q(z)` with F the Gamma CDF, in log form:

* where :math:`z \ge e^{-18}`, :math:`\partial \log z/\partial\alpha` is torch's
  ``_standard_gamma_grad(alpha, z) / z``, evaluated in float64;
* below, from the series of the regularized incomplete gamma function,
  :math:`F = z^\alpha S(z)/\Gamma(\alpha + 1)` with :math:`S = 1 - \alpha z/(\alpha + 1) + O(z^2)`:

  .. math:: \frac{\partial \log z}{\partial \alpha} = -\frac{1}{\alpha}\Big(1 + \frac{z}{\alpha + 1}\Big)
            \Big(\log z - \psi(\alpha + 1) - \frac{z}{(\alpha + 1)^2}\Big) + O(z^2),

  which needs only :math:`\log z` and is exact to :math:`O(z^2) < 10^{-15}` relative.

The samplers of :mod:`vae_lab.distributions` return ``z = exp(log z)`` (clamped to the smallest normal
number, as torch's are, so that it stays in the support) and remember the exact logs of the tensor they
return, in a weak table keyed by the tensor's identity (like the cache of
``torch.distributions.transforms.ExpTransform(cache_size=1)``). :func:`log_of` gives those logs for such
a sample and ``torch.log`` for any other tensor; the families' ``log_prob`` use it, so
``q.log_prob(q.rsample())`` is exact even where the sample itself underflowed. A function of the sample
(a decoder) sees z; a function that needs log z calls :func:`log_of`. A tensor derived from the sample (a
slice, a copy) is a new tensor and gets ``torch.log``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

__all__ = ["log_of", "log1m_of", "log_standard_gamma", "remember_logs", "xlog"]

# below this log z, dlog z/dalpha comes from the series (relative error O(z^2) < 1e-15)
_SERIES_BELOW = -18.0

_LOGS: WeakIdKeyDictionary = WeakIdKeyDictionary()


def remember_logs(z: Tensor, log_z: Tensor, log1m_z: Tensor | None = None) -> Tensor:
    """Record the exact ``log z`` (and ``log(1 - z)``, for samples in (0, 1)) of ``z``; returns ``z``."""
    _LOGS[z] = (log_z, log1m_z)
    return z


def log_of(z: Tensor) -> Tensor:
    """log z: exact for a sample of vae-lab's Gamma, Dirichlet or Beta (even where z underflowed),
    ``torch.log(z)`` for any other tensor."""
    cached = _LOGS.get(z)
    return cached[0] if cached is not None else torch.log(z)


def log1m_of(z: Tensor) -> Tensor:
    """log(1 - z): exact for a sample of vae-lab's Beta, ``torch.log1p(-z)`` otherwise."""
    cached = _LOGS.get(z)
    if cached is not None and cached[1] is not None:
        return cached[1]
    return torch.log1p(-z)


def xlog(c: Tensor, log_value: Tensor) -> Tensor:
    """c * log_value, and 0 where c == 0 and log_value = -inf (as ``torch.xlogy``: a Beta(1, 1) density is 1
    at z = 0 too). The derivative in c stays log_value wherever that is finite."""
    return c * torch.where((c == 0) & torch.isinf(log_value), torch.zeros_like(log_value), log_value)


def _dlog_z_dalpha(log_z: Tensor, alpha: Tensor) -> Tensor:
    """The implicit derivative d log z / d alpha of a Gamma(alpha, 1) variate, from its log (float64)."""
    lz, a = log_z.double(), alpha.double()
    small = lz < _SERIES_BELOW
    z = torch.exp(lz)
    a1 = a + 1.0
    series = -(1.0 + z / a1) * (lz - torch.digamma(a1) - z / (a1 * a1)) / a
    z_big = torch.where(small, torch.ones_like(z), z)  # keeps the dropped branch finite
    direct = torch._standard_gamma_grad(a, z_big) / z_big
    return torch.where(small, series, direct).to(log_z.dtype)


def log_standard_gamma(alpha: Tensor) -> Tensor:
    """log z, z ~ Gamma(alpha, 1) elementwise (shape of ``alpha``), differentiable in ``alpha`` by the
    implicit reparameterization gradient (module docstring). Finite for every alpha > 0 in float32 and
    float64. Random numbers from torch's global generator."""
    with torch.no_grad():
        a = alpha.detach()
        g = torch._standard_gamma(a + 1.0)
        u = 1.0 - torch.rand(a.shape, dtype=a.dtype, device=a.device)  # (0, 1]
        log_z = torch.log(g) + torch.log(u) / a
    if not alpha.requires_grad:
        return log_z
    with torch.no_grad():
        slope = _dlog_z_dalpha(log_z, a)
    # value log z exactly (the added term is 0), gradient slope
    return log_z + (alpha - a) * slope
