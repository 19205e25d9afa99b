r"""TensorBoard image dashboards: what the decoder makes of data, of the prior and of the latent space.

Three callbacks, each logging one grid image with the TensorBoard logger's ``add_image`` at the current
global step, at the end of validation (every ``every_n_epochs`` epochs):

- :class:`ReconstructionImages`, ``images/reconstructions``: a fixed set of validation inputs (chosen
  once with ``seed``), each row of inputs followed by the row of their reconstructions, the decoder's
  mean output E[x | z] for z ~ q(z|x) (or z = the mean of q(z|x)).
- :class:`PriorSampleImages`, ``images/prior_samples``: E[x | z] for a fixed set of prior draws
  z ~ p(z) (the same random numbers every time, so the grids of successive epochs compare).
- :class:`~vae_lab.probes.latent_grid.LatentGridImages`, ``images/latent_grid`` (its own module): for 2-D
  latents, E[x | z] over an n x n grid of latent points (Kingma & Welling 2014, figure 4).

"The decoder's mean output" is ``likelihood.mean(decoder(posterior.decoder_input(z)))``: Bernoulli pixel
probabilities, clamped to [0, 1] for other likelihoods. Images are grey-scale, ``image_shape`` (H, W)
from the data module (``(8, 8)`` for digits, ``(28, 28)`` for MNIST; a (C, H, W) shape gives C channels,
rows stored channel by channel); for data without one
(``image_shape = None``: 20news, bag of words) the callbacks do nothing and say so once, at INFO level.
Without a TensorBoard logger among ``trainer.loggers`` they do nothing either.

Training is not changed: the images are made under ``torch.no_grad`` with the model in eval mode (every
submodule's mode and every buffer is restored afterwards), and their random numbers come from a private
stream: torch's global random state is saved, seeded from the callback's ``seed`` and restored, so the
training stream is neither consumed nor moved (``torch.distributions``' ``sample`` takes no generator,
so this is the way to give draws from any family, rejection samplers included, a private generator).
The validation rows are chosen with a ``torch.Generator`` of their own. A callback whose image fails
(a family that cannot be sampled, say) logs one warning and turns itself off; the run goes on.

Cost: one encoder and decoder pass over ``n_images`` rows, one decoder pass over ``n_images`` prior
draws and one over the n^2 grid points (plus, for a prior without an inverse CDF, ``n_quantile_samples``
prior draws), once per ``every_n_epochs`` epochs, on global rank 0 only. The time spent is logged at
the end of training.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger
from torch import Tensor

from vae_lab.errors import check, positive_int
from vae_lab.probes.rng import isolated, seed_generators
from vae_lab.seeds import derived_seed

log = logging.getLogger(__name__)

#: INFO messages already given, per trainer (see ``_ImageCallback._say_once``)
_SAID: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


# -- tiling ------------------------------------------------------------------------------------------
def tile_images(images: Tensor, ncol: int, padding: int = 1, pad_value: float = 0.5) -> Tensor:
    """Tile N images into one grid image, row by row, ``ncol`` images a row.

    Args:
        images: (N, H, W) or (N, C, H, W).
        ncol: images per row (fewer if N is smaller).
        padding: pixels of ``pad_value`` between the images and around the grid.
        pad_value: value of the padding and of the empty cells of an incomplete last row.

    Returns:
        (C, rows (H + padding) + padding, ncol (W + padding) + padding), rows = ceil(N / ncol); C = 1
        for (N, H, W) input. The layout of ``torchvision.utils.make_grid``, which vae-lab does not need.
    """
    positive_int("ncol", ncol)
    check(isinstance(padding, int) and padding >= 0, "padding", "an integer >= 0", padding)
    if images.dim() == 3:
        images = images.unsqueeze(1)
    check(
        images.dim() == 4 and len(images) > 0,
        "images",
        "a non-empty (N, H, W) or (N, C, H, W) tensor",
        tuple(images.shape),
    )
    n, c, h, w = images.shape
    ncol = min(ncol, n)
    rows = math.ceil(n / ncol)
    if rows * ncol > n:  # empty cells at the end of the last row
        blank = images.new_full((rows * ncol - n, c, h, w), pad_value)
        images = torch.cat([images, blank])
    cells = F.pad(images, (0, padding, 0, padding), value=pad_value)  # padding right and below each image
    grid = cells.reshape(rows, ncol, c, h + padding, w + padding).permute(2, 0, 3, 1, 4)
    grid = grid.reshape(c, rows * (h + padding), ncol * (w + padding))
    return F.pad(grid, (padding, 0, padding, 0), value=pad_value)  # and above and left of the grid


def interleave_rows(top: Tensor, bottom: Tensor, ncol: int, fill: float = 0.5) -> Tensor:
    """``top`` and ``bottom`` (N, ...) merged in the order of a grid whose rows alternate: ``ncol`` of
    ``top``, then the same ``ncol`` of ``bottom``, and so on; an incomplete last pair of rows is completed
    with blank images of value ``fill``. Returns (2 rows ncol, ...), rows = ceil(N / ncol)."""
    return interleave_stacks([top, bottom], ncol, fill)


def interleave_stacks(stacks: list[Tensor], ncol: int, fill: float = 0.5) -> Tensor:
    """Several stacks (N, ...) merged in the order of a grid whose rows cycle through them: ``ncol`` of
    the first, the same ``ncol`` of the second, ..., then the next ``ncol`` of the first; an incomplete last
    round of rows is completed with blank images of value ``fill``. Returns (k rows ncol, ...), k stacks."""
    shapes = [tuple(s.shape) for s in stacks]
    check(len(set(shapes)) == 1, "images", "stacks of the same shape", shapes)
    n, cell = len(stacks[0]), stacks[0].shape[1:]
    ncol = min(ncol, n)
    rows = math.ceil(n / ncol)
    if rows * ncol > n:
        blank = stacks[0].new_full((rows * ncol - n, *cell), fill)
        stacks = [torch.cat([s, blank]) for s in stacks]
    merged = torch.stack([s.reshape(rows, ncol, *cell) for s in stacks], 1)
    return merged.reshape(len(stacks) * rows * ncol, *cell)


def decoded_means(pl_module: pl.LightningModule, z: Tensor) -> Tensor:
    """E[x | z] from the model's decoder and likelihood, clamped to [0, 1]; z: (N, latent_dim) -> (N, D)."""
    params = pl_module.decoder(pl_module.posterior.decoder_input(z))
    mean = getattr(pl_module.likelihood, "mean", None)
    return (mean(params) if callable(mean) else params).clamp(0.0, 1.0)


# -- the callbacks -----------------------------------------------------------------------------------
class _ImageCallback(pl.Callback):
    """Shared behaviour: when to draw, where the images go, the checks, the isolation, the timing."""

    tag = "images"
    _salt = 0  # tells the callbacks' random streams apart when they share a seed

    def __init__(self, enabled: bool = True, every_n_epochs: int = 1, seed: int = 0) -> None:
        super().__init__()
        check(isinstance(enabled, bool), "enabled", "true or false", enabled)
        check(isinstance(seed, int) and not isinstance(seed, bool), "seed", "an integer", seed)
        self.enabled = enabled
        self.every_n_epochs = positive_int("every_n_epochs", every_n_epochs)
        self.seed = seed
        self._stream_seed = derived_seed(seed, self._salt)
        self._last_epoch: int | None = None
        self._said: set[str] = set()
        self.seconds = 0.0
        self.images = 0

    def _say_once(self, trainer: pl.Trainer, key: str, message: str, *args: Any) -> None:
        """Log ``message`` at INFO once per trainer and ``key``: keys without the tag are shared by the
        callbacks, so "the data are not images" appears once, not once per callback."""
        try:
            said = _SAID.setdefault(trainer, set())
        except TypeError:  # a trainer stand-in without weak references
            said = self._said
        if key not in said:
            said.add(key)
            log.info(message, *args)

    def _due(self, trainer: pl.Trainer) -> bool:
        # the first validation of epoch 0, then the first at least every_n_epochs epochs after the last
        # image (so validation by steps, several per epoch, still gives at most one image per epoch)
        if not self.enabled or trainer.sanity_checking or not trainer.is_global_zero:
            return False
        return self._last_epoch is None or trainer.current_epoch - self._last_epoch >= self.every_n_epochs

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._due(trainer):
            return
        writer = _tensorboard(trainer)
        if writer is None:
            self._say_once(trainer, "logger", "no TensorBoard logger: the image dashboards log nothing")
            return
        shape = self._image_shape(trainer, pl_module)
        if shape is None or not self._applies(trainer, pl_module):
            return
        self._last_epoch = trainer.current_epoch
        started = time.perf_counter()
        device = torch.device(pl_module.device)
        try:
            with isolated(pl_module, device), torch.no_grad():
                pl_module.eval()
                seed_generators(device, self._stream_seed)
                image = self.render(trainer, pl_module, shape)
        except (NotImplementedError, ValueError, RuntimeError) as err:
            # a picture is not worth a failed run: say why once and stop drawing this one
            log.warning("%s: turned off after an error: %s: %s", self.tag, type(err).__name__, err)
            self.enabled = False
            return
        if image is not None:
            writer.add_image(self.tag, image.detach().float().cpu(), trainer.global_step, dataformats="CHW")
            self.images += 1
        self.seconds += time.perf_counter() - started

    def _image_shape(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[int, ...] | None:
        shape = getattr(getattr(trainer, "datamodule", None), "image_shape", None)
        if shape is None:
            self._say_once(
                trainer,
                "shape",
                "the data are not images (the data module has no image_shape): "
                "the image dashboards log nothing",
            )
            return None
        shape = tuple(int(s) for s in shape)
        input_dim = getattr(trainer.datamodule, "input_dim", math.prod(shape))
        if math.prod(shape) != input_dim:
            self._say_once(
                trainer,
                "size",
                "image_shape %s does not match input_dim %d: the image dashboards log nothing",
                shape,
                input_dim,
            )
            return None
        if not all(hasattr(pl_module, a) for a in ("encoder", "decoder", "posterior", "prior", "likelihood")):
            self._say_once(
                trainer,
                "model",
                "the model has no encoder, decoder, posterior, prior and likelihood: "
                "the image dashboards log nothing",
            )
            return None
        return shape

    def _applies(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        return True

    def render(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, shape: tuple[int, ...]
    ) -> Tensor | None:
        """The grid image, (C, H, W) in [0, 1]; runs in eval mode, without gradients, seeded."""
        raise NotImplementedError

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.images:
            log.info("%s: %d images, %.3f s in all", self.tag, self.images, self.seconds)


def _tensorboard(trainer: pl.Trainer) -> Any | None:
    """The ``SummaryWriter`` of the trainer's first TensorBoard logger, or None."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def _as_images(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    return x.reshape(len(x), *shape)


class ReconstructionImages(_ImageCallback):
    """``images/reconstructions``: fixed validation inputs and their reconstructions, in one grid.

    Rows alternate: ``ncol`` inputs, then their reconstructions E[x | z] in the same columns, with z a
    draw from q(z|x) (the same random numbers each time) or, with ``use_mean``, the mean of q(z|x) (for
    von Mises its location). The inputs are ``n_images`` rows drawn once, with ``seed``, from the first
    batches of a fresh ``datamodule.val_dataloader()``.

    Args:
        enabled: ``False`` turns it off.
        every_n_epochs: an image at the first validation of epoch 0 and then every n-th epoch.
        n_images: inputs shown (fewer if the validation set is smaller).
        ncol: inputs per row.
        use_mean: decode the mean of q(z|x) instead of a draw.
        seed: the choice of the inputs and the draws from q(z|x).
    """

    tag = "images/reconstructions"
    _salt = 1

    def __init__(
        self,
        enabled: bool = True,
        every_n_epochs: int = 1,
        n_images: int = 32,
        ncol: int = 8,
        use_mean: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(enabled, every_n_epochs, seed)
        self.n_images = positive_int("n_images", n_images)
        self.ncol = positive_int("ncol", ncol)
        check(isinstance(use_mean, bool), "use_mean", "true or false", use_mean)
        self.use_mean = use_mean
        self._inputs: Tensor | None = None

    def inputs(self, trainer: pl.Trainer) -> Tensor | None:
        """The fixed validation inputs (N, D), on the CPU; None without validation data."""
        if self._inputs is None:
            rows = _validation_rows(trainer, self.n_images)
            if rows is None:
                return None
            # a CPU generator on purpose, whatever the model's device: the same rows on every machine
            generator = torch.Generator(device="cpu").manual_seed(derived_seed(self.seed, self._salt, 1))
            pick = torch.randperm(len(rows), generator=generator, device=generator.device)
            self._inputs = rows[pick[: self.n_images].sort().values.to(rows.device)].detach().cpu().clone()
        return self._inputs

    def render(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, shape: tuple[int, ...]
    ) -> Tensor | None:
        x = self.inputs(trainer)
        if x is None:
            self._say_once(trainer, self.tag, "%s: no validation data; not logged", self.tag)
            return None
        x = x.to(device=pl_module.device, dtype=pl_module.dtype)
        stacks = [_as_images(rows, shape) for rows in self.rows(trainer, pl_module, x)]
        return tile_images(interleave_stacks(stacks, self.ncol), min(self.ncol, len(x)))

    def rows(self, trainer: pl.Trainer, pl_module: pl.LightningModule, x: Tensor) -> list[Tensor]:
        """The stacks of the grid, (N, D) each, one row of each in turn: the inputs, their reconstructions."""
        return [x.clamp(0.0, 1.0), self.reconstruct(pl_module, x)]

    def reconstruct(self, pl_module: pl.LightningModule, x: Tensor) -> Tensor:
        """E[x | z], z ~ q(z|x) (or its mean with ``use_mean``), for the rows of ``x``."""
        q = pl_module.q(x)
        return decoded_means(pl_module, q.mean if self.use_mean else q.sample())


def _validation_rows(trainer: pl.Trainer, n: int) -> Tensor | None:
    """The first validation batches, at least ``n`` rows if there are that many."""
    datamodule = getattr(trainer, "datamodule", None)
    try:
        loader = datamodule.val_dataloader()  # a fresh loader: Lightning's own keeps its state
    except (NotImplementedError, AttributeError, TypeError):
        return None
    parts, total = [], 0
    for part in loader:
        part = part if isinstance(part, Tensor) else part[0]
        parts.append(part)
        total += len(part)
        if total >= n:
            break
    return torch.cat(parts) if parts else None


class PriorSampleImages(_ImageCallback):
    """``images/prior_samples``: E[x | z] for ``n_images`` prior draws z ~ p(z), ``ncol`` a row.

    The draws use the same random numbers every time (the callback's private stream, seeded with
    ``seed``), so for a fixed prior the same z are decoded at every epoch and the grids show how the
    decoder changes.

    Args:
        enabled, every_n_epochs, seed: as for :class:`ReconstructionImages`.
        n_images: prior draws shown.
        ncol: images per row.
    """

    tag = "images/prior_samples"
    _salt = 2

    def __init__(
        self, enabled: bool = True, every_n_epochs: int = 1, n_images: int = 64, ncol: int = 8, seed: int = 0
    ) -> None:
        super().__init__(enabled, every_n_epochs, seed)
        self.n_images = positive_int("n_images", n_images)
        self.ncol = positive_int("ncol", ncol)

    def render(self, trainer: pl.Trainer, pl_module: pl.LightningModule, shape: tuple[int, ...]) -> Tensor:
        z = pl_module.prior().sample((self.n_images,))
        return tile_images(_as_images(decoded_means(pl_module, z), shape), self.ncol)
