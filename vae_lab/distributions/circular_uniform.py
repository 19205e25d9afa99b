r"""The uniform distribution on the circle, :math:`[-\pi, \pi)` per element: the natural prior of
von Mises latents (a von Mises distribution with concentration 0).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

__all__ = ["CircularUniform"]

_PI = math.pi
_TWO_PI = 2.0 * math.pi
_LOG_TWO_PI = math.log(2.0 * math.pi)
_NO_SHAPE = torch.Size()


class CircularUniform(Distribution):
    r"""Uniform distribution on the circle, represented on :math:`[-\pi, \pi)`, independently per element.

    .. math::

        p(z) = \frac{1}{2\pi}, \qquad z \in [-\pi, \pi), \qquad H = \log 2\pi.

    It has no parameters: ``batch_shape`` fixes its shape, ``dtype`` and ``device`` those of its samples
    and densities (default: torch's default dtype and device, as for a tensor made without them). A prior
    for von Mises posteriors is built as
    ``CircularUniform(q.batch_shape, dtype=q.loc.dtype, device=q.loc.device)``;
    ``kl_divergence(VonMises, CircularUniform)`` is registered in :mod:`vae_lab.distributions.kl`.

    Moments: the circular mean of a uniform angle is undefined (its mean resultant length is 0), so
    :attr:`mean` and :attr:`variance` are those of the real interval :math:`[-\pi, \pi)`: 0 and
    :math:`\pi^2/3` (as ``torch.distributions.Uniform(-pi, pi)``). (:class:`VonMises` reports circular
    moments: ``loc`` and :math:`1 - I_1(\kappa)/I_0(\kappa)`.)

    :meth:`rsample` exists so that the distribution can stand wherever reparameterized samples are
    asked for; it has no parameters to differentiate, so it is :meth:`sample`.

    Args:
        batch_shape: the shape of the batch of independent circular variables.
        dtype: floating dtype of samples and densities.
        device: device of samples and densities.
        validate_args: as for every :class:`torch.distributions.Distribution`.
    """

    arg_constraints: dict[str, constraints.Constraint] = {}
    support = constraints.half_open_interval(-_PI, _PI)
    has_rsample = True

    def __init__(
        self,
        batch_shape: torch.Size | tuple[int, ...] = _NO_SHAPE,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        validate_args: bool | None = None,
    ) -> None:
        self.dtype = dtype if dtype is not None else torch.get_default_dtype()
        if not self.dtype.is_floating_point:
            raise ValueError(f"CircularUniform needs a floating dtype, got {self.dtype}")
        self.device = torch.device(device) if device is not None else torch.get_default_device()
        super().__init__(torch.Size(batch_shape), torch.Size(), validate_args=validate_args)

    def expand(self, batch_shape: torch.Size | tuple[int, ...], _instance=None) -> CircularUniform:
        new = self._get_checked_instance(CircularUniform, _instance)
        new.dtype = self.dtype
        new.device = self.device
        super(CircularUniform, new).__init__(torch.Size(batch_shape), torch.Size(), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _full(self, value: float, shape: torch.Size | None = None) -> Tensor:
        return torch.full(
            self.batch_shape if shape is None else shape, value, dtype=self.dtype, device=self.device
        )

    @property
    def mean(self) -> Tensor:
        """0: the mean of the interval [-pi, pi) (the circular mean is undefined)."""
        return self._full(0.0)

    @property
    def mode(self) -> Tensor:
        """Every point is a mode; NaN, as for ``torch.distributions.Uniform``."""
        return self._full(math.nan)

    @property
    def variance(self) -> Tensor:
        """pi^2 / 3: the variance of the interval [-pi, pi) (the circular variance would be 1)."""
        return self._full(_PI**2 / 3.0)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = _NO_SHAPE) -> Tensor:
        """Uniform samples in [-pi, pi) of shape ``sample_shape + batch_shape``, from torch's global RNG."""
        shape = self._extended_shape(torch.Size(sample_shape))
        u = torch.rand(shape, dtype=self.dtype, device=self.device)
        # (u - 1/2) 2 pi with u in [0, 1) stays below pi after rounding (it is at most pi (1 - 2^-23) in
        # float32), unlike u 2 pi - pi, which can round up to pi.
        return u.sub_(0.5).mul_(_TWO_PI)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = _NO_SHAPE) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        """-log(2 pi) on [-pi, pi), -inf outside (an error there with ``validate_args``)."""
        if self._validate_args:
            self._validate_sample(value)
        value = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        inside = (value >= -_PI) & (value < _PI)
        shape = torch.broadcast_shapes(value.shape, self.batch_shape)
        lp = self._full(-_LOG_TWO_PI, shape)
        return lp.masked_fill(~inside.expand(shape), -math.inf)

    def cdf(self, value: Tensor) -> Tensor:
        """(value + pi) / (2 pi), clamped to [0, 1]."""
        if self._validate_args:
            self._validate_sample(value)
        value = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        result = ((value + _PI) / _TWO_PI).clamp(0.0, 1.0)
        return result.expand(torch.broadcast_shapes(result.shape, self.batch_shape))

    def icdf(self, value: Tensor) -> Tensor:
        """2 pi value - pi."""
        value = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        result = value * _TWO_PI - _PI
        return result.expand(torch.broadcast_shapes(result.shape, self.batch_shape))

    def entropy(self) -> Tensor:
        """log(2 pi)."""
        return self._full(_LOG_TWO_PI)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(batch_shape={tuple(self.batch_shape)}, dtype={self.dtype})"
