r"""The TensorBoard image dashboard ``images/latent_grid``: what the decoder makes of a grid over a 2-D
latent space (the manifold figure of Kingma & Welling 2014, figure 4). The other image dashboards, and the
machinery they share, are in :mod:`vae_lab.probes.images`."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.distributions import Distribution, Independent

from vae_lab.errors import positive_int
from vae_lab.probes.images import _as_images, _ImageCallback, decoded_means, tile_images

__all__ = ["LatentGridImages", "marginal_quantiles"]


class LatentGridImages(_ImageCallback):
    r"""``images/latent_grid``: for 2-D latents, E[x | z] at the points of an n x n grid over the latent
    space, tiled as an n x n image: column j has the j-th level of z_1 (increasing to the right), row i
    the i-th level of z_2 counted from the bottom (increasing upwards, as on a plot).

    The grid (n = ``n_per_side``):

    - von Mises posterior (latent space the torus [-pi, pi)^2): n evenly spaced angles
      -pi + 2 pi k / n, k = 0..n-1, in each coordinate, whatever the prior. The image is itself a torus:
      its right edge continues at its left, its top at its bottom. The points reach the decoder as
      (cos z, sin z), through the posterior head's ``decoder_input``, like samples do.
    - every other family: the quantiles F_i^{-1}((k + 1/2) / n), k = 0..n-1, of the prior's marginals,
      so each row and column holds an equal share of the prior mass and the grid covers where the
      prior puts it (the figure style of Kingma & Welling 2014, who used the inverse CDF of the
      Gaussian). The marginal ``icdf`` is used where the prior has one (Normal, uniform); otherwise
      (Gamma, Beta, von Mises priors, ...) the quantiles are estimated from ``n_quantile_samples``
      prior draws (the same draws every time).
    - a Dirichlet posterior with 2 components lives on a 1-D simplex: no grid (one INFO message);
      likewise for any latent_dim other than 2.

    Args:
        enabled, every_n_epochs, seed: as for :class:`ReconstructionImages`.
        n_per_side: n, grid points per latent dimension (n^2 decoded images).
        n_quantile_samples: prior draws for the estimated quantiles.
    """

    tag = "images/latent_grid"
    _salt = 3

    def __init__(
        self,
        enabled: bool = True,
        every_n_epochs: int = 1,
        n_per_side: int = 15,
        n_quantile_samples: int = 20000,
        seed: int = 0,
    ) -> None:
        super().__init__(enabled, every_n_epochs, seed)
        self.n_per_side = positive_int("n_per_side", n_per_side)
        self.n_quantile_samples = positive_int("n_quantile_samples", n_quantile_samples)

    def _applies(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        posterior = pl_module.posterior
        latent_dim = int(getattr(posterior, "latent_dim", 0))
        family = getattr(posterior, "family", "")
        if family == "dirichlet" and latent_dim == 2:
            self._say_once(
                trainer,
                self.tag,
                "%s: a Dirichlet latent with 2 components is 1-D (a simplex): not logged",
                self.tag,
            )
            return False
        if latent_dim != 2:
            self._say_once(
                trainer, self.tag, "%s: the latent space is %d-D, not 2-D: not logged", self.tag, latent_dim
            )
            return False
        return True

    def levels(self, pl_module: pl.LightningModule) -> Tensor:
        """The grid levels, (n, 2) ascending per column: column i holds the levels of z_{i+1}."""
        n = self.n_per_side
        prior = pl_module.prior()
        dtype, device = pl_module.dtype, torch.device(pl_module.device)
        if pl_module.posterior.family == "vonmises":
            angles = -math.pi + 2 * math.pi * torch.arange(n, dtype=dtype, device=device) / n
            return angles.unsqueeze(1).expand(n, 2).clone()
        probs = ((torch.arange(n, dtype=dtype, device=device) + 0.5) / n).unsqueeze(1).expand(n, 2)
        return marginal_quantiles(prior, probs, self.n_quantile_samples)

    def grid(self, pl_module: pl.LightningModule) -> Tensor:
        """The n^2 grid points (n^2, 2) in tiling order: row by row from the top, left to right."""
        levels = self.levels(pl_module)
        z1 = levels[:, 0].unsqueeze(0).expand(self.n_per_side, -1)
        z2 = levels.flip(0)[:, 1].unsqueeze(1).expand(-1, self.n_per_side)
        return torch.stack([z1, z2], dim=-1).reshape(-1, 2)

    def render(self, trainer: pl.Trainer, pl_module: pl.LightningModule, shape: tuple[int, ...]) -> Tensor:
        images = decoded_means(pl_module, self.grid(pl_module))
        return tile_images(_as_images(images, shape), self.n_per_side)


def marginal_quantiles(prior: Distribution, probs: Tensor, n_samples: int = 20000) -> Tensor:
    """Quantiles of the marginals of ``prior`` (event shape (d,)): ``probs`` (n, d) -> (n, d), entry
    (k, i) the probs[k, i]-quantile of z_i.

    Exact where ``prior`` is an ``Independent`` whose base distribution has an ``icdf`` (Normal, uniform);
    otherwise estimated from ``n_samples`` draws of ``prior``, which come from torch's global generator
    (seed it, or isolate it, for repeatable quantiles)."""
    if isinstance(prior, Independent):
        try:
            values = prior.base_dist.icdf(probs)
            if values.shape == probs.shape and bool(torch.isfinite(values).all()):
                return values
        except (NotImplementedError, ValueError, RuntimeError):
            pass  # no closed-form inverse CDF (Gamma, Beta, von Mises, ...): estimate it
    samples = prior.sample((n_samples,)).reshape(n_samples, -1)
    columns = [torch.quantile(samples[:, i], probs[:, i].to(samples.dtype)) for i in range(probs.shape[1])]
    return torch.stack(columns, 1)
