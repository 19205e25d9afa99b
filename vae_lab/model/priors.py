"""Priors p(z): modules (so parameters and buffers follow the model's device and dtype) whose
``forward()`` returns a distribution with batch_shape () and event_shape (latent_dim,)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Independent, Normal

from vae_lab.distributions import Beta, CircularUniform, Dirichlet, Gamma, SphereUniform, VonMises
from vae_lab.errors import check, positive_float, positive_int
from vae_lab.model.posteriors import inverse_softplus


class Prior(nn.Module):
    """Base class. ``freeze_steps``: the VAE drops the prior's gradients during its first ``freeze_steps``
    optimizer steps (0 for priors without parameters)."""

    freeze_steps: int = 0

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = positive_int("latent_dim", latent_dim)

    def forward(self) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError


class NormalPrior(Prior):
    """p(z) = N(loc, scale^2 I)."""

    def __init__(self, latent_dim: int, loc: float = 0.0, scale: float = 1.0):
        super().__init__(latent_dim)
        self.register_buffer("loc", torch.full((latent_dim,), float(loc)))
        self.register_buffer("scale", torch.full((latent_dim,), positive_float("scale", scale)))

    def forward(self) -> Distribution:
        return Independent(Normal(self.loc, self.scale, validate_args=False), 1)


class CircularUniformPrior(Prior):
    """p(z) uniform on the torus [-pi, pi)^d: density (2 pi)^-d."""

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        self.register_buffer("_ref", torch.zeros(()), persistent=False)  # carries dtype and device

    def forward(self) -> Distribution:
        base = CircularUniform((self.latent_dim,), dtype=self._ref.dtype, device=self._ref.device)
        return Independent(base, 1)


class SphereUniformPrior(Prior):
    """p(z) uniform on the unit sphere S^(d-1) in R^d, the natural prior of Power Spherical latents:
    density 1/|S^(d-1)| = Gamma(d/2) / (2 pi^(d/2)) with respect to the surface measure."""

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        check(latent_dim >= 2, "latent_dim", "a prior on the sphere needs latent_dim >= 2", latent_dim)
        self.register_buffer("_ref", torch.zeros(()), persistent=False)  # carries dtype and device

    def forward(self) -> Distribution:
        return SphereUniform(self.latent_dim, dtype=self._ref.dtype, device=self._ref.device)


class VonMisesPrior(Prior):
    """p(z) = prod_i VonMises(loc, concentration)."""

    def __init__(self, latent_dim: int, loc: float = 0.0, concentration: float = 1.0):
        super().__init__(latent_dim)
        check(-math.pi <= loc < math.pi, "loc", "expected a value in [-pi, pi)", loc)
        self.register_buffer("loc", torch.full((latent_dim,), float(loc)))
        concentration = positive_float("concentration", concentration)
        self.register_buffer("concentration", torch.full((latent_dim,), concentration))

    def forward(self) -> Distribution:
        return Independent(VonMises(self.loc, self.concentration, validate_args=False), 1)


class GammaPrior(Prior):
    """p(z) = prod_i Gamma(concentration, rate) on (0, inf)^d; Gamma(0.3, 0.3) is the prior of the Gamma
    VAE of Figurnov, Mohamed & Mnih (2018). KL(Gamma || Gamma) is closed-form (torch's registry)."""

    def __init__(self, latent_dim: int, concentration: float = 0.3, rate: float = 0.3):
        super().__init__(latent_dim)
        self.concentration = positive_float("concentration", concentration)
        self.rate = positive_float("rate", rate)
        # parameters built in the model's dtype on each call: 0.3 stays 0.3 in float64, not float32's 0.3
        self.register_buffer("_ref", torch.zeros(()), persistent=False)  # carries dtype and device

    def forward(self) -> Distribution:
        shape, like = (self.latent_dim,), {"dtype": self._ref.dtype, "device": self._ref.device}
        return Independent(
            Gamma(
                torch.full(shape, self.concentration, **like),
                torch.full(shape, self.rate, **like),
                validate_args=False,
            ),
            1,
        )


class UnitUniformPrior(Prior):
    """p(z) uniform on the unit cube (0, 1)^d, the natural prior of Beta latents (Figurnov et al. 2018).

    Written as prod_i Beta(1, 1), the same density (1 on (0, 1)), so that KL(Beta(a, b) || p) has torch's
    closed form KL(Beta || Beta), here ``-H(Beta(a, b))``, and ``log_prob`` is 0 on the whole closed cube
    (including samples rounded to 0 or 1).
    """

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        self.register_buffer("_ones", torch.ones(latent_dim), persistent=False)  # carries dtype and device

    def forward(self) -> Distribution:
        return Independent(Beta(self._ones, self._ones, validate_args=False), 1)


class DirichletPrior(Prior):
    """p(z) = Dirichlet(alpha 1_d). With ``learnable``, alpha = softplus(a) clipped to [min_alpha, max_alpha]
    is trained with the model (one alpha per component).

    ``freeze_steps``: a learnable alpha stays at its initial value for the first ``freeze_steps``
    optimizer steps and is trained jointly afterwards (the prior "burn-in" of Figurnov et al. 2018,
    appendix D, 120,000 of 180,000 steps for LDA). The parameter keeps ``requires_grad``; the VAE sets
    its gradient to None before those optimizer steps, so Adam neither moves it nor updates its moment
    estimates, as the paper's code (which leaves the prior out of ``apply_gradients``) does.
    """

    def __init__(
        self,
        latent_dim: int,
        alpha: float = 1.0,
        learnable: bool = False,
        min_alpha: float = 1e-3,
        max_alpha: float = 1e3,
        freeze_steps: int = 0,
    ):
        super().__init__(latent_dim)
        check(latent_dim >= 2, "latent_dim", "a Dirichlet prior needs latent_dim >= 2", latent_dim)
        positive_float("alpha", alpha)
        positive_float("min_alpha", min_alpha)
        check(max_alpha > min_alpha, "max_alpha", f"expected a value > min_alpha={min_alpha}", max_alpha)
        allowed = f"expected a value in [{min_alpha}, {max_alpha}]"
        check(min_alpha <= alpha <= max_alpha, "alpha", allowed, alpha)
        check(
            isinstance(freeze_steps, int) and not isinstance(freeze_steps, bool) and freeze_steps >= 0,
            "freeze_steps",
            "expected an integer >= 0",
            freeze_steps,
        )
        self.min_alpha, self.max_alpha, self.learnable = float(min_alpha), float(max_alpha), bool(learnable)
        self.freeze_steps = freeze_steps
        raw = torch.full((latent_dim,), inverse_softplus(float(alpha)))
        if learnable:
            self.raw_alpha = nn.Parameter(raw)
        else:
            self.register_buffer("raw_alpha", raw)

    @property
    def alpha(self) -> torch.Tensor:
        return F.softplus(self.raw_alpha).clamp(self.min_alpha, self.max_alpha)

    def forward(self) -> Distribution:
        return Dirichlet(self.alpha, validate_args=False)
