r"""The uniform distribution on the unit sphere :math:`S^{D-1} \subset \mathbb{R}^D`, the natural prior of
Power Spherical latents, and the support constraint ``unit_sphere`` of hyperspherical families.

.. math::

    p(z) = \frac{1}{|S^{D-1}|}, \qquad |S^{D-1}| = \frac{2\pi^{D/2}}{\Gamma(D/2)}, \qquad
    \log p(z) = -\Big(\log 2 + \frac{D}{2}\log\pi - \log\Gamma\big(\tfrac{D}{2}\big)\Big),

a density with respect to the surface measure of the sphere (so :math:`H = \log|S^{D-1}|`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

__all__ = ["SphereUniform", "log_sphere_area", "unit_sphere"]

_NO_SHAPE = torch.Size()


class _UnitSphere(constraints.Constraint):
    """Vectors of unit Euclidean norm (over the last dimension), up to 100 units of rounding."""

    is_discrete = False
    event_dim = 1

    def check(self, value: Tensor) -> Tensor:
        tol = 100.0 * torch.finfo(value.dtype).eps if value.dtype.is_floating_point else 0.0
        return (torch.linalg.vector_norm(value, dim=-1) - 1.0).abs() <= tol


#: support of the distributions on :math:`S^{D-1}`; a density on it is relative to the surface measure, so
#: only another sphere support covers it (:func:`vae_lab.distributions.capabilities.support_covers`)
unit_sphere = _UnitSphere()


def log_sphere_area(dim: int) -> float:
    r""":math:`\log|S^{D-1}| = \log 2 + \frac{D}{2}\log\pi - \log\Gamma(D/2)`, D = ``dim``."""
    return math.log(2.0) + 0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim)


class SphereUniform(Distribution):
    r"""Uniform distribution on the unit sphere :math:`S^{D-1}` in :math:`\mathbb{R}^D`, ``event_shape (D,)``.

    .. math:: \log p(z) = -\log|S^{D-1}| = -\Big(\log 2 + \frac{D}{2}\log\pi - \log\Gamma(D/2)\Big).

    No parameters: ``dim`` and ``batch_shape`` fix its shape, ``dtype`` and ``device`` those of its samples
    and densities (as :class:`~vae_lab.distributions.CircularUniform`). Samples are normalized standard
    Gaussian vectors. Moments: mean 0, variance :math:`1/D` per coordinate.
    ``kl_divergence(PowerSpherical, SphereUniform)`` is registered in :mod:`vae_lab.distributions.kl`.

    Args:
        dim: D >= 2, the dimension of the ambient space.
        batch_shape: shape of the batch of independent unit vectors.
        dtype, device: of samples and densities (default: torch's defaults).
        validate_args: as for every :class:`torch.distributions.Distribution`.
    """

    arg_constraints: dict[str, constraints.Constraint] = {}
    support = unit_sphere
    has_rsample = True

    def __init__(
        self,
        dim: int,
        batch_shape: torch.Size | tuple[int, ...] = _NO_SHAPE,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        validate_args: bool | None = None,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
            raise ValueError(f"SphereUniform needs an integer dim >= 2, got {dim!r}")
        self.dim = dim
        self.dtype = dtype if dtype is not None else torch.get_default_dtype()
        if not self.dtype.is_floating_point:
            raise ValueError(f"SphereUniform needs a floating dtype, got {self.dtype}")
        self.device = torch.device(device) if device is not None else torch.get_default_device()
        super().__init__(torch.Size(batch_shape), torch.Size((dim,)), validate_args=validate_args)

    def expand(self, batch_shape: torch.Size | tuple[int, ...], _instance=None) -> SphereUniform:
        new = self._get_checked_instance(SphereUniform, _instance)
        new.dim, new.dtype, new.device = self.dim, self.dtype, self.device
        super(SphereUniform, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _full(self, value: float, shape: torch.Size) -> Tensor:
        return torch.full(shape, value, dtype=self.dtype, device=self.device)

    @property
    def mean(self) -> Tensor:
        return self._full(0.0, self.batch_shape + self.event_shape)

    @property
    def variance(self) -> Tensor:
        """1/D per coordinate (E[z_i^2] = 1/D by symmetry)."""
        return self._full(1.0 / self.dim, self.batch_shape + self.event_shape)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = _NO_SHAPE) -> Tensor:
        """Normalized standard Gaussian vectors (no parameters to differentiate; ``sample`` is torch's:
        ``rsample`` without gradients)."""
        g = torch.randn(self._extended_shape(torch.Size(sample_shape)), dtype=self.dtype, device=self.device)
        return g / torch.linalg.vector_norm(g, dim=-1, keepdim=True).clamp_min(torch.finfo(self.dtype).tiny)

    def log_prob(self, value: Tensor) -> Tensor:
        """-log |S^(D-1)| on the sphere, -inf off it (an error there with ``validate_args``)."""
        if self._validate_args:
            self._validate_sample(value)
        value = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        shape = torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        lp = self._full(-log_sphere_area(self.dim), shape)
        return lp.masked_fill(~unit_sphere.check(value).expand(shape), -math.inf)

    def entropy(self) -> Tensor:
        """log |S^(D-1)|."""
        return self._full(log_sphere_area(self.dim), self.batch_shape)

    def __repr__(self) -> str:
        shape = tuple(self.batch_shape)
        return f"{type(self).__name__}(dim={self.dim}, batch_shape={shape}, dtype={self.dtype})"
