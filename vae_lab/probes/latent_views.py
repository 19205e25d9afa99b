r"""Where the encoder puts the data: the posterior means of a split's rows, coloured by class label, once
at the end of training (validation set) and once after testing (test set), in TensorBoard.

- :class:`LatentScatter`, figure ``latent/scatter/<split>`` (IMAGES tab, via ``add_figure``): for a 2-D
  latent space, a scatter plot of the means coloured by digit (Kingma & Welling 2014, figure 5 style).
  Von Mises latents are angles: for 2 dimensions the plot is the square [-pi, pi)^2 with opposite edges
  identified, i.e. the torus cut open; a 1-D von Mises latent is drawn on the unit circle
  (cos z, sin z). Hyperspherical families with a 2-D mean direction (``power_spherical``) are drawn on the
  unit circle they live on. Other dimensions: nothing (one INFO message).
- :class:`LatentProjector`, TensorBoard's embedding projector (PROJECTOR tab, via ``add_embedding``), tag
  ``latent/<split>``: the means of any dimension, the labels as metadata and the input images as
  thumbnails. At D = 3 (a hyperspherical posterior, say) this is a 3-D view; larger D gets PCA / t-SNE /
  UMAP in the projector itself.

"Posterior mean" is the location of q(z|x) where the family has one (``loc``: the Gaussian mean, the von
Mises mean angle, a mean direction on a sphere), otherwise ``q.mean`` (Dirichlet, Gamma, Beta, ...), so
families added later work without changes here.

When: at the end of fit (``on_train_end``, the last weights) on the validation rows, and at the end of the
test phase (``on_test_end``, the tested weights: the best checkpoint in `vae-lab train`) on the test rows,
for each split in ``splits``. Labels come from ``datamodule.labels(split)`` (digits, mnist); data without
them (binarized_mnist, 20news) is drawn in one colour, without projector metadata. Data without
``image_shape`` gets no thumbnails. Only ``n_points`` rows (the first ones of the split) are used.

Training is not changed: the means are computed after the training loop, under ``torch.no_grad`` in eval
mode, with torch's random state, the buffers and the modes restored (:func:`vae_lab.probes.rng.isolated`).
Cost: one encoder pass over ``n_points`` rows per split, plus a matplotlib figure (scatter) or a small
TSV file and thumbnail sprite (projector); well under a second on digits.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch import Tensor
from torch.distributions import Distribution, Independent

from vae_lab.errors import check, positive_int
from vae_lab.probes.images import _tensorboard
from vae_lab.probes.rng import isolated

log = logging.getLogger(__name__)

__all__ = ["LatentProjector", "LatentScatter", "posterior_means", "scatter_figure"]

#: families whose latent is a unit vector (a mean direction on the sphere)
SPHERICAL = ("power_spherical", "vmf", "von_mises_fisher")
SPLITS = ("val", "test")


def posterior_means(q: Distribution) -> Tensor:
    """The location of ``q`` (batch (B,), event (D,)) where its family has one, else ``q.mean``: (B, D)."""
    base = q.base_dist if isinstance(q, Independent) else q
    loc = getattr(base, "loc", None)
    means = loc if isinstance(loc, Tensor) else q.mean
    return means.expand(*q.batch_shape, *q.event_shape).reshape(q.batch_shape.numel(), -1)


@dataclass
class Rows:
    """What a view shows: rows ``x`` (N, input_dim) of ``split``, their posterior ``means`` (N, D) and
    class ``labels`` (N,) or None."""

    split: str
    x: Tensor
    means: Tensor
    labels: Tensor | None


class _LatentView(pl.Callback):
    """Shared behaviour: when to draw, which rows, their means and labels, the isolation, the timing."""

    name = "latent view"

    def __init__(
        self, enabled: bool = True, splits: Sequence[str] = SPLITS, n_points: int | None = 2000
    ) -> None:
        super().__init__()
        check(isinstance(enabled, bool), "enabled", "expected true or false", enabled)
        splits = OmegaConf.to_object(splits) if OmegaConf.is_config(splits) else splits
        splits = [splits] if isinstance(splits, str) else list(splits)
        check(all(s in SPLITS for s in splits), "splits", "expected a list of: val, test", splits)
        self.enabled, self.splits = enabled, splits
        self.n_points = None if n_points is None else positive_int("n_points", n_points)
        self.seconds = 0.0
        self.views = 0

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._view(trainer, pl_module, "val")
        if self.views:
            log.info("%s: %d views, %.3f s in all", self.name, self.views, self.seconds)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(pl_module, "test_split", "test") == "test":
            self._view(trainer, pl_module, "test")

    def _view(self, trainer: pl.Trainer, pl_module: pl.LightningModule, split: str) -> None:
        if not self.enabled or split not in self.splits or not trainer.is_global_zero:
            return
        writer = _tensorboard(trainer)
        datamodule = getattr(trainer, "datamodule", None)
        x = getattr(datamodule, f"{split}_data", None)
        if writer is None or not isinstance(x, Tensor) or not hasattr(pl_module, "q"):
            log.info("%s: no TensorBoard logger, %s data or encoder: not drawn", self.name, split)
            return
        started = time.perf_counter()
        x = x[: self.n_points]
        labels = datamodule.labels(split) if hasattr(datamodule, "labels") else None
        labels = None if labels is None else labels[: len(x)].cpu()
        try:
            means = encode(pl_module, x, getattr(datamodule, "eval_batch_size", 1000))
            self.draw(writer, trainer, pl_module, Rows(split, x, means, labels))
        except (NotImplementedError, ValueError, RuntimeError) as err:
            log.warning("%s: turned off after an error: %s: %s", self.name, type(err).__name__, err)
            self.enabled = False
            return
        self.views += 1
        self.seconds += time.perf_counter() - started

    def draw(self, writer: Any, trainer: pl.Trainer, pl_module: pl.LightningModule, rows: Rows) -> None:
        """Write the view of ``rows``."""
        raise NotImplementedError


def encode(pl_module: pl.LightningModule, x: Tensor, batch_size: int = 1000) -> Tensor:
    """The posterior means of the rows of ``x``, (N, D) float32 on the CPU; in eval mode, without
    gradients, leaving random state, buffers and modes as they were."""
    device = torch.device(pl_module.device)
    with isolated(pl_module, device), torch.no_grad():
        pl_module.eval()
        parts = [
            posterior_means(pl_module.q(rows.to(device=device, dtype=pl_module.dtype)))
            for rows in x.split(batch_size)
        ]
    return torch.cat(parts).float().cpu()


class LatentScatter(_LatentView):
    """Figure ``latent/scatter/<split>``: the posterior means of a 2-D latent space, coloured by label
    (see :mod:`vae_lab.probes.latent_views` for the torus and circle cases).

    Args:
        enabled: ``False`` turns it off.
        splits: which of ``val`` (end of training) and ``test`` (after the test phase) to draw.
        n_points: rows of the split used (the first ones); null for all.
    """

    name = "latent/scatter"

    def draw(self, writer: Any, trainer: pl.Trainer, pl_module: pl.LightningModule, rows: Rows) -> None:
        family, means = str(getattr(pl_module.posterior, "family", "")), rows.means
        if not (means.shape[1] == 2 or (means.shape[1] == 1 and family == "vonmises")):
            log.info("%s: the latent space is %d-D, not 2-D: not drawn", self.name, means.shape[1])
            self.enabled = False
            return
        title = f"posterior means, {rows.split} set ({len(means)} rows, step {trainer.global_step})"
        figure = scatter_figure(means, rows.labels, family, title)
        writer.add_figure(f"{self.name}/{rows.split}", figure, trainer.global_step)


class LatentProjector(_LatentView):
    """TensorBoard's embedding projector, tag ``latent/<split>``: the posterior means (any dimension), the
    labels as metadata and the inputs as thumbnails (image data only).

    Args: as for :class:`LatentScatter`.
    """

    name = "latent projector"

    def draw(self, writer: Any, trainer: pl.Trainer, pl_module: pl.LightningModule, rows: Rows) -> None:
        shape, x, labels = getattr(trainer.datamodule, "image_shape", None), rows.x, rows.labels
        images = None
        if shape is not None and math.prod(shape) == x.shape[1]:
            images = x.detach().float().cpu().clamp(0.0, 1.0).reshape(len(x), *shape)
            images = images.unsqueeze(1) if images.dim() == 3 else images  # (N, C, H, W)
        metadata = None if labels is None else [str(int(v)) for v in labels]
        writer.add_embedding(
            rows.means,
            metadata=metadata,
            label_img=images,
            global_step=trainer.global_step,
            tag=f"latent/{rows.split}",
        )
        writer.flush()


def scatter_figure(means: Tensor, labels: Tensor | None, family: str = "", title: str = "") -> Any:
    """A matplotlib figure of 2-D posterior means (or 1-D von Mises angles on the unit circle), coloured by
    ``labels`` (one colour without them).

    - von Mises, 2-D: the two angles on [-pi, pi)^2, the torus cut open (opposite edges meet);
    - von Mises, 1-D: (cos z, sin z) on the unit circle;
    - a spherical family (``power_spherical``, ...): the mean directions, with the unit circle drawn;
    - otherwise: the means as they are.
    """
    from matplotlib.figure import Figure

    points = means.detach().float().cpu()
    fig = Figure(figsize=(5.5, 5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    note = ""
    if family == "vonmises":
        points = torch.remainder(points + math.pi, 2 * math.pi) - math.pi
        if points.shape[1] == 1:
            points = torch.cat([points.cos(), points.sin()], 1)
            note = "1-D von Mises: the angle on the unit circle"
        else:
            ax.set_xlim(-math.pi, math.pi)
            ax.set_ylim(-math.pi, math.pi)
            ticks = [-math.pi, -math.pi / 2, 0.0, math.pi / 2, math.pi]
            names = ["-π", "-π/2", "0", "π/2", "π"]
            ax.set_xticks(ticks, names)
            ax.set_yticks(ticks, names)
            note = "von Mises angles: a torus cut open (opposite edges meet)"
    if family in SPHERICAL or note.startswith("1-D"):
        circle = torch.linspace(0, 2 * math.pi, 200)
        ax.plot(circle.cos(), circle.sin(), color="0.7", linewidth=1)
        note = note or "mean directions on the unit circle"
    if note or family in SPHERICAL:
        ax.set_aspect("equal")
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.7)
    else:
        cmap = _cmap(int(labels.max()) + 1)
        for value in sorted(set(labels.tolist())):
            at = labels == value
            ax.scatter(points[at, 0], points[at, 1], s=6, alpha=0.7, color=cmap(value), label=str(value))
        ax.legend(title="label", loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=2, frameon=False)
    ax.set_xlabel("z1" if not note.startswith("1-D") else "cos z")
    ax.set_ylabel("z2" if not note.startswith("1-D") else "sin z")
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=9)
    return fig


def _cmap(n: int) -> Any:
    from matplotlib import colormaps

    return colormaps["tab10" if n <= 10 else "tab20"]
