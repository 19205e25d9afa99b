r"""Angles on the circle, represented in :math:`[-\pi, \pi)`."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vae_lab.distributions.bessel import scalar_like

__all__ = ["wrap_angle"]

_PI = math.pi
_TWO_PI = 2.0 * math.pi


def wrap_angle(x: Tensor) -> Tensor:
    r"""Wrap angles to :math:`[-\pi, \pi)`, leaving angles already in that range bit-for-bit unchanged.

    Differentiable (gradient 1). ``remainder(x + pi, 2 pi) - pi`` is not good enough: it rounds tiny
    angles to 0 in float32 (a von Mises sample with concentration 1e6 has a standard deviation of 1e-3),
    and it can return :math:`+\pi` in float32, where a circular density is :math:`-\infty`. Here a result
    that rounding pushed onto or past either end is moved back by one period.
    """
    periods = torch.add(x, scalar_like(_PI, x)).mul_(scalar_like(1.0 / _TWO_PI, x)).floor_()
    y = torch.add(x, periods, alpha=-_TWO_PI)
    if y.numel() == 0:
        return y
    lo, hi = torch.aminmax(y.detach())
    if hi >= _PI or lo < -_PI:  # rounding in the floor's argument, at either end of the range
        y = torch.where(y >= _PI, y - _TWO_PI, y)
        y = torch.where(y < -_PI, y + _TWO_PI, y)
    return y
