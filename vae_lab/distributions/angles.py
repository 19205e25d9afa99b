r"""Angles on the circle, represented in :math:`[-\pi, \pi)`."""

from __future__ import annotations

import math
import struct

import torch
from torch import Tensor

from vae_lab.distributions.bessel import scalar_like

__all__ = ["largest_below_pi", "wrap_angle"]

_PI = math.pi
_TWO_PI = 2.0 * math.pi
# Per dtype, (the smallest number of the dtype that is >= -pi, the largest that is < pi). float32's nearest
# number to pi lies above pi, so both of its ends are one step (2^-22) inside it; float64's lies below.
_PI_F32 = struct.unpack("f", struct.pack("f", math.pi))[0]
_INSIDE = {
    torch.float32: (-(_PI_F32 - 2.0**-22), _PI_F32 - 2.0**-22),
    torch.float64: (-_PI, math.nextafter(_PI, 0.0)),
}


def largest_below_pi(dtype: torch.dtype) -> float:
    """The largest number of ``dtype`` (float32 or float64; ``math.pi`` for others) below pi."""
    return _INSIDE.get(dtype, (-_PI, _PI))[1]


def wrap_angle(x: Tensor) -> Tensor:
    r"""Wrap angles to :math:`[-\pi, \pi)`, leaving angles already in that range bit-for-bit unchanged.

    Differentiable (gradient 1). ``remainder(x + pi, 2 pi) - pi`` is not good enough: it rounds tiny
    angles to 0 in float32 (a von Mises sample with concentration 1e6 has a standard deviation of 1e-3),
    and it can return :math:`+\pi` in float32, where a circular density is :math:`-\infty`. Here a result
    that rounding pushed onto or past either end is moved back by one period, onto the last number inside
    the range at most (in float32 both float32(:math:`\pm\pi`) lie outside :math:`[-\pi, \pi)`).
    """
    periods = torch.add(x, scalar_like(_PI, x)).mul_(scalar_like(1.0 / _TWO_PI, x)).floor_()
    y = torch.add(x, periods, alpha=-_TWO_PI)
    if y.numel() == 0:
        return y
    low, high = _INSIDE.get(y.dtype, (-_PI, _PI))
    lo, hi = torch.aminmax(y.detach())
    if hi > high or lo < low:  # rounding in the floor's argument, at either end of the range
        y = torch.where(y > high, (y - _TWO_PI).clamp(min=low), y)
        y = torch.where(y < low, (y + _TWO_PI).clamp(max=high), y)
    return y
