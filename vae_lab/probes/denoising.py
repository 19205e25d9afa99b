r"""The TensorBoard image dashboard ``images/denoising``, for denoising runs (``data.input_noise=p > 0``):
what the encoder is given, what the decoder is asked for, and what it makes of it. The other image
dashboards, and the machinery they share, are in :mod:`vae_lab.probes.images`; the noise itself is in
:mod:`vae_lab.data.noise`."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor

from vae_lab.data.noise import salt_and_pepper
from vae_lab.probes.images import ReconstructionImages
from vae_lab.seeds import derived_seed

__all__ = ["DenoisingImages"]


class DenoisingImages(ReconstructionImages):
    """``images/denoising``: rows of three, in turn: ``ncol`` noisy inputs (salt and pepper of the run's
    probability p, ``datamodule.input_noise``), the clean inputs they came from, and the reconstructions
    E[x | z] with z ~ q(z | noisy input) (or its mean, ``use_mean``), which training pulls towards the clean
    row.

    The clean inputs are ``n_images`` validation rows chosen once with ``seed``, and their noise is drawn
    once from a generator of the callback's own (seeded with ``seed``), so every epoch shows the same noisy
    inputs. With p = 0 (no denoising) it logs nothing and says so once at INFO level.

    Args: as for :class:`~vae_lab.probes.images.ReconstructionImages`.
    """

    tag = "images/denoising"
    _salt = 4

    def _applies(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        if _input_noise(trainer) > 0:
            return True
        self._say_once(trainer, self.tag, "%s: data.input_noise is 0 (no denoising): not logged", self.tag)
        return False

    def rows(self, trainer: pl.Trainer, pl_module: pl.LightningModule, x: Tensor) -> list[Tensor]:
        """The noisy inputs, the clean inputs, the reconstructions from the noisy ones."""
        generator = torch.Generator(device=x.device).manual_seed(derived_seed(self.seed, self._salt, 2))
        noisy = salt_and_pepper(x, _input_noise(trainer), generator)
        # the model is in eval mode here, so the training hook adds no noise of its own
        return [noisy.clamp(0.0, 1.0), x.clamp(0.0, 1.0), self.reconstruct(pl_module, noisy)]


def _input_noise(trainer: pl.Trainer) -> float:
    return float(getattr(getattr(trainer, "datamodule", None), "input_noise", 0.0) or 0.0)
