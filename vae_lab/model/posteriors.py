"""Posterior heads: encoder output -> q(z|x), a torch Distribution with batch_shape (B,), event_shape (d,).

Each head states how many network outputs it needs (``param_dim``), how samples enter the decoder
(``decoder_input``, ``decoder_dim``) and applies its family's parameterization and clipping; ``clipped``
names the parameters it clips, with their ranges, and ``clip_shares`` how many sit at each end (the model
logs them as ``{split}/clip_low`` and ``{split}/clip_high``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal

from vae_lab.distributions import Beta, Dirichlet, Gamma, PowerSpherical, VonMises
from vae_lab.errors import check, positive_float, positive_int


class PosteriorHead(nn.Module):
    family: str = ""
    #: encoder outputs per latent dimension (e.g. 2 for a location and a scale)
    outputs_per_dim: int = 1

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = positive_int("latent_dim", latent_dim)

    @property
    def param_dim(self) -> int:
        """Number of encoder outputs the head consumes."""
        return self.outputs_per_dim * self.latent_dim

    @property
    def decoder_dim(self) -> int:
        """Width of ``decoder_input(z)``."""
        return self.latent_dim

    def decoder_input(self, z: Tensor) -> Tensor:
        return z

    def forward(self, params: Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def clipped(self, q: Distribution) -> list[tuple[Tensor, float, float]]:
        """The clipped parameters of ``q`` (a distribution this head returned), each with its clip range
        (low, high): a concentration, a rate. Empty for a head that clips nothing."""
        return []

    @property
    def clips(self) -> bool:
        """Whether this head clips a parameter (its class overrides :meth:`clipped`)."""
        return type(self).clipped is not PosteriorHead.clipped

    def clip_shares(self, q: Distribution) -> tuple[Tensor, Tensor] | None:
        """Shares of the clipped parameters of ``q`` at the low and at the high end of their ranges
        (clamped to the bound exactly; a value that only comes near one is not counted). None for a head
        that clips nothing. Where kappa sits at ``max_concentration``, the clip, not the data, sets how
        concentrated the posterior is."""
        parts = self.clipped(q)
        if not parts:
            return None
        low = torch.cat([(t.detach() <= lo).reshape(-1) for t, lo, _ in parts])
        high = torch.cat([(t.detach() >= hi).reshape(-1) for t, _, hi in parts])
        return low.float().mean(), high.float().mean()

    def _concentration_clip(self, *tensors: Tensor) -> list[tuple[Tensor, float, float]]:
        return [(t, self.min_concentration, self.max_concentration) for t in tensors]

    def _set_concentration_range(self, low: float, high: float) -> None:
        """Check and keep the clip range [min_concentration, max_concentration] of a concentration."""
        _check_range(low, high, "min_concentration", "max_concentration")
        self.min_concentration, self.max_concentration = float(low), float(high)


def _clipped_softplus(raw: Tensor, low: float, high: float) -> Tensor:
    return F.softplus(raw).clamp(low, high)


def _check_range(low: float, high: float, low_key: str, high_key: str) -> None:
    positive_float(low_key, low)
    positive_float(high_key, high)
    check(high > low, high_key, f"expected a value > {low_key}={low}", high)


class GaussianHead(PosteriorHead):
    """q(z|x) = N(mu, diag(sigma^2)), sigma = softplus(s) + min_scale."""

    family = "gaussian"
    outputs_per_dim = 2

    def __init__(self, latent_dim: int, min_scale: float = 1e-4):
        super().__init__(latent_dim)
        self.min_scale = positive_float("min_scale", min_scale)

    def forward(self, params: Tensor) -> Distribution:
        loc, raw = params.chunk(2, dim=-1)
        return Independent(Normal(loc, F.softplus(raw) + self.min_scale, validate_args=False), 1)


class VonMisesHead(PosteriorHead):
    """q(z|x) = prod_i VonMises(mu_i, kappa_i) on [-pi, pi)^d.

    mu = atan2(b, a) from a 2-vector (a, b), so the location has no seam; kappa = softplus(c) clipped to
    [min_concentration, max_concentration]. Samples reach the decoder as (cos z, sin z).
    """

    family = "vonmises"
    outputs_per_dim = 3

    def __init__(self, latent_dim: int, min_concentration: float = 1e-3, max_concentration: float = 1e3):
        super().__init__(latent_dim)
        self._set_concentration_range(min_concentration, max_concentration)

    @property
    def decoder_dim(self) -> int:
        return 2 * self.latent_dim

    def decoder_input(self, z: Tensor) -> Tensor:
        return torch.cat([z.cos(), z.sin()], dim=-1)

    def forward(self, params: Tensor) -> Distribution:
        a, b, raw = params.chunk(3, dim=-1)
        loc = torch.atan2(b, a)
        kappa = _clipped_softplus(raw, self.min_concentration, self.max_concentration)
        return Independent(VonMises(loc, kappa, validate_args=False), 1)

    def clipped(self, q: Distribution) -> list[tuple[Tensor, float, float]]:
        return self._concentration_clip(q.base_dist.concentration)


class DirichletHead(PosteriorHead):
    """q(z|x) = Dirichlet(alpha), alpha = softplus(a) clipped to [min_concentration, max_concentration]."""

    family = "dirichlet"

    def __init__(self, latent_dim: int, min_concentration: float = 1e-3, max_concentration: float = 1e3):
        super().__init__(latent_dim)
        check(latent_dim >= 2, "latent_dim", "a Dirichlet posterior needs latent_dim >= 2", latent_dim)
        self._set_concentration_range(min_concentration, max_concentration)

    def forward(self, params: Tensor) -> Distribution:
        alpha = _clipped_softplus(params, self.min_concentration, self.max_concentration)
        return Dirichlet(alpha, validate_args=False)

    def clipped(self, q: Distribution) -> list[tuple[Tensor, float, float]]:
        return self._concentration_clip(q.concentration)


class GammaHead(PosteriorHead):
    """q(z|x) = prod_i Gamma(alpha_i, beta_i) on (0, inf)^d (shape alpha, rate beta), Figurnov et al. 2018.

    alpha = softplus(a) clipped to [min_concentration, max_concentration], beta = softplus(b) clipped to
    [min_rate, max_rate]. torch's ``Gamma.rsample`` is implicitly reparameterized; samples reach the
    decoder as they are.
    """

    family = "gamma"
    outputs_per_dim = 2

    def __init__(
        self,
        latent_dim: int,
        min_concentration: float = 1e-3,
        max_concentration: float = 1e3,
        min_rate: float = 1e-3,
        max_rate: float = 1e3,
    ):
        super().__init__(latent_dim)
        self._set_concentration_range(min_concentration, max_concentration)
        _check_range(min_rate, max_rate, "min_rate", "max_rate")
        self.min_rate, self.max_rate = float(min_rate), float(max_rate)

    def forward(self, params: Tensor) -> Distribution:
        a, b = params.chunk(2, dim=-1)
        alpha = _clipped_softplus(a, self.min_concentration, self.max_concentration)
        rate = _clipped_softplus(b, self.min_rate, self.max_rate)
        return Independent(Gamma(alpha, rate, validate_args=False), 1)

    def clipped(self, q: Distribution) -> list[tuple[Tensor, float, float]]:
        gamma = q.base_dist
        return [*self._concentration_clip(gamma.concentration), (gamma.rate, self.min_rate, self.max_rate)]


class BetaHead(PosteriorHead):
    """q(z|x) = prod_i Beta(alpha_i, beta_i) on (0, 1)^d, Figurnov et al. 2018.

    alpha = softplus(a) and beta = softplus(b), each clipped to [min_concentration, max_concentration];
    density proportional to z^(alpha - 1) (1 - z)^(beta - 1). torch's ``Beta.rsample`` is implicitly
    reparameterized (through Gamma samples); samples reach the decoder as they are.
    """

    family = "beta"
    outputs_per_dim = 2

    def __init__(self, latent_dim: int, min_concentration: float = 1e-3, max_concentration: float = 1e3):
        super().__init__(latent_dim)
        self._set_concentration_range(min_concentration, max_concentration)

    def forward(self, params: Tensor) -> Distribution:
        a, b = params.chunk(2, dim=-1)
        alpha = _clipped_softplus(a, self.min_concentration, self.max_concentration)
        beta = _clipped_softplus(b, self.min_concentration, self.max_concentration)
        return Independent(Beta(alpha, beta, validate_args=False), 1)

    def clipped(self, q: Distribution) -> list[tuple[Tensor, float, float]]:
        return self._concentration_clip(q.base_dist.concentration1, q.base_dist.concentration0)


class PowerSphericalHead(PosteriorHead):
    """q(z|x) = PowerSpherical(mu, kappa) on the unit sphere S^(d-1) in R^d (De Cao & Aziz 2020).

    mu = m / |m| from d encoder outputs m, kappa = softplus(c) of one more output, clipped to
    [min_concentration, max_concentration]. Samples (unit vectors) reach the decoder as they are.
    """

    family = "power_spherical"

    def __init__(self, latent_dim: int, min_concentration: float = 1e-3, max_concentration: float = 1e3):
        super().__init__(latent_dim)
        check(latent_dim >= 2, "latent_dim", "a Power Spherical posterior needs latent_dim >= 2", latent_dim)
        self._set_concentration_range(min_concentration, max_concentration)

    @property
    def param_dim(self) -> int:
        return self.latent_dim + 1

    def forward(self, params: Tensor) -> Distribution:
        loc = F.normalize(params[..., :-1], dim=-1)
        kappa = _clipped_softplus(params[..., -1], self.min_concentration, self.max_concentration)
        return PowerSpherical(loc, kappa, validate_args=False)

    def clipped(self, q: Distribution) -> list[tuple[Tensor, float, float]]:
        return self._concentration_clip(q.concentration)


def inverse_softplus(y: float) -> float:
    """x with softplus(x) = y (used to initialise softplus-parameterized values)."""
    return y + math.log(-math.expm1(-y))
