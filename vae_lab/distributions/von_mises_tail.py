r"""The von Mises implicit derivative :math:`\partial z/\partial\kappa` far in the tails, by quadrature.

Hill's series and his normal approximation (:mod:`vae_lab.distributions.von_mises_cdf`) lose their
relative accuracy far from the mode: at :math:`\kappa = 20` and 8.5 standard deviations the error is
3e-3, at :math:`\kappa = 30` and 10 it is :math:`10^5`, at :math:`\kappa \ge 50` and 13 it is 2e-2 to 1,
whatever the dtype, because :math:`\partial F/\partial\kappa` and the density :math:`q(x)` there are
both far below the rounding of the sums they are taken from. Such samples are rare (beyond 5 standard
deviations about 6 in 10 million) but not impossible, and one wrong derivative of :math:`10^{20}` would
wreck a training run.

Away from the mode the derivative has a well-conditioned form. Since
:math:`\int_{-\pi}^{\pi}\partial q/\partial\kappa\,dt = 0` and
:math:`\partial q(t)/\partial\kappa = (\cos t - A(\kappa))\,q(t)` with :math:`A = I_1/I_0`,

.. math::

    \frac{\partial z}{\partial\kappa}(x) = -\frac{\partial F/\partial\kappa(x)}{q(x)}
    = \operatorname{sign}(x) \int_{|x|}^{\pi} \big(\cos t - A(\kappa)\big)\,
      e^{\kappa(\cos t - \cos x)}\,dt ,

where for :math:`|x|` beyond about 1.5 standard deviations (:math:`\cos x < A`) the integrand has one sign
and its exponential factor is at most 1: nothing cancels and nothing overflows. It is integrated by
Gauss-Legendre quadrature (16 nodes) on panels over which the exponent falls by at most 2 (25 panels, to a
fall of 50, :math:`e^{-50} \approx 2\cdot10^{-22}`, then one panel to :math:`\pi`), with
:math:`\cos t - \cos x = -2\sin\frac{t+x}2\sin\frac{t-x}2` and :math:`\cos x - A = (1 - A) - 2\sin^2\frac
x2` (:func:`~vae_lab.distributions.bessel.one_minus_bessel_ratio`), all in float64: relative error about
1e-15 against 40-digit quadrature (``tests/distributions/test_von_mises_tail.py``), at about 400
evaluations an element, which only the rare elements beyond :data:`DEVIATION` pay.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vae_lab.distributions.bessel import one_minus_bessel_ratio

__all__ = ["DEVIATION", "beyond", "correct_tail", "rare_nonzero", "tail_dz_dconcentration"]

#: standard deviations (normal-equivalent: :math:`2\sqrt\kappa\,|\sin(x/2)|`) beyond which the
#: derivative is taken from :func:`tail_dz_dconcentration`
DEVIATION = 5.0
_NODES = 16
_PANELS = 25  # each a fall of _FALL in the exponent; then one panel to pi
_FALL = 2.0
_CHUNK = 8192
_GAUSS = tuple(torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(_NODES))


def beyond(x: Tensor, concentration: Tensor) -> Tensor:
    r"""Mask of the elements beyond :data:`DEVIATION`: :math:`4\kappa\sin^2(x/2) > \text{DEVIATION}^2`."""
    half_sin = torch.sin(x * 0.5)
    return half_sin.mul_(half_sin).mul_(concentration).mul_(4.0) > DEVIATION**2


def rare_nonzero(mask: Tensor) -> Tensor:
    """``mask.nonzero()`` (1-d, length a multiple of 8) for a mostly false mask: the nonzero 8-byte words
    first, then the set bytes in them (ten times faster than ``nonzero`` on CPU when few are set)."""
    words = mask.view(torch.int64).nonzero().squeeze(1).mul_(8)
    candidates = words.unsqueeze(1).add(torch.arange(8, device=mask.device)).reshape(-1)
    return candidates.masked_select(mask.index_select(0, candidates))


def correct_tail(x: Tensor, concentration: Tensor, out: Tensor) -> Tensor:
    r"""``out`` (the derivative at the 1-d ``x``, ``concentration``) with its elements :func:`beyond`
    :data:`DEVIATION` replaced, in place, by :func:`tail_dz_dconcentration`. One pass picks the
    candidates, :math:`\kappa x^2 > \text{DEVIATION}^2` (since :math:`4\sin^2(x/2) \le x^2`)."""
    n = x.numel()
    candidate = torch.zeros(-(-n // 8) * 8, dtype=torch.bool, device=x.device)
    torch.gt(torch.mul(x, x).mul_(concentration), DEVIATION**2, out=candidate[:n])
    idx = rare_nonzero(candidate)
    if idx.numel():
        idx = idx.masked_select(beyond(x.index_select(0, idx), concentration.index_select(0, idx)))
        exact = tail_dz_dconcentration(x.index_select(0, idx), concentration.index_select(0, idx))
        out.index_copy_(0, idx, exact.to(out.dtype))
    return out


def tail_dz_dconcentration(x: Tensor, concentration: Tensor) -> Tensor:
    r""":math:`\partial z/\partial\kappa` at centred samples ``x`` in :math:`[-\pi, \pi]` (1-d, the same
    length as ``concentration``) by the quadrature above, computed in float64 and returned in ``x``'s
    dtype. Accurate where :math:`\cos x < A(\kappa)`; meant for the elements :func:`beyond` selects.
    Evaluated in chunks of :data:`_CHUNK` elements (each needs 416 doubles of workspace)."""
    if x.numel() > _CHUNK:
        parts = zip(x.split(_CHUNK), concentration.split(_CHUNK), strict=True)
        return torch.cat([tail_dz_dconcentration(a, b) for a, b in parts])
    dtype = x.dtype
    ax = x.double().abs()
    k = concentration.double()
    half_sin = torch.sin(ax * 0.5)
    two_sin_sq = half_sin.square().mul_(2.0)  # 1 - cos x, without cancellation
    c = 1.0 - two_sin_sq
    # breakpoints where the exponent k (cos t - cos x) has fallen by 0, 2, ..., 50 (at most to its value
    # at pi, -2 k cos^2(x/2)), then pi
    total = torch.cos(ax * 0.5).square_().mul_(2.0).mul_(k)
    falls = torch.arange(_PANELS + 1, dtype=torch.float64, device=x.device) * _FALL
    falls = torch.minimum(falls, total[:, None])
    # the panels and nodes as offsets from |x|, so that t - |x| keeps its relative accuracy (an error of
    # one ulp of t would cost k sin(x) ulps in the exponent)
    edges = torch.arccos((c[:, None] - falls / k[:, None]).clamp_(-1.0, 1.0)).sub_(ax[:, None])
    edges[:, 0] = 0.0
    edges = torch.cat([edges, (torch.pi - ax)[:, None]], dim=1)
    edges = edges.clamp_(min=0.0).cummax(dim=1).values  # monotone despite rounding
    lo, hi = edges[:, :-1], edges[:, 1:]
    half = (hi - lo) * 0.5
    nodes, weights = (g.to(x.device) for g in _GAUSS)
    offset = (lo + half)[..., None] + half[..., None] * nodes  # t - |x|: (n, panels, nodes)
    # cos t - cos x = -2 sin(|x| + offset/2) sin(offset/2)
    half_offset = offset * 0.5
    drop = torch.sin(half_offset + ax[:, None, None]).mul_(torch.sin(half_offset)).mul_(-2.0)
    c_minus_a = (one_minus_bessel_ratio(k) - two_sin_sq)[:, None, None]
    integrand = (drop + c_minus_a) * torch.exp(drop * k[:, None, None])
    value = (integrand * weights).sum(-1).mul_(half).sum(-1)
    return value.mul_(torch.sign(x.double())).to(dtype)
