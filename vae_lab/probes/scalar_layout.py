r"""TensorBoard's CUSTOM SCALARS dashboard for a run: the curves that are compared, on one chart each.

:class:`ScalarLayout` writes one layout (``SummaryWriter.add_custom_scalars``) at the start of fit:

- category ``ELBO``: for each split (train, val, test) one chart with ``{split}/elbo``,
  ``{split}/recon`` and ``{split}/kl`` (the ELBO, E_q log p(x|z) and KL(q || p), nats per data point);
- category ``gradient variance``: for each parameter group (``encoder``, ``decoder``, ``prior`` where it
  is trained) one chart with ``grad/var/<group>`` (the run's own estimator) and
  ``grad/var/<group>/<name>`` for every estimator the gradient-variance probe compares
  (``callbacks.grad_variance.compare``);
- category ``gradient SNR``: the same with ``grad/snr/...``;
- category ``posterior clip``, where the posterior head clips a parameter: for val and test one chart with
  ``{split}/clip_low`` and ``{split}/clip_high`` (shares at the ends of the clip range).

The names are those of :mod:`vae_lab.probes.grad_variance` and :class:`vae_lab.model.vae.VAE` (DESIGN.md
section 5), each given as an anchored regular expression, so ``grad/var/encoder`` does not also pick up
``grad/var/encoder/score``. Without a gradient-variance probe (or with it disabled) the gradient categories
are left out. It writes one small event and changes nothing else.
"""

from __future__ import annotations

import logging
import re

import pytorch_lightning as pl

from vae_lab.errors import check
from vae_lab.probes.grad_variance import GradientVarianceProbe
from vae_lab.probes.images import _tensorboard
from vae_lab.probes.moments import parameter_groups
from vae_lab.runs.callback_group import members

log = logging.getLogger(__name__)

__all__ = ["ScalarLayout", "scalar_layout"]


def scalar_layout(groups: list[str], compared: list[str], clips: bool = False) -> dict[str, dict[str, list]]:
    """The custom-scalars layout: ``{category: {chart: ["Multiline", [tag regexes]]}}``; ``clips``: the
    posterior head clips a parameter (it logs ``{split}/clip_low`` and ``{split}/clip_high``)."""

    def chart(tags: list[str]) -> list:
        return ["Multiline", [f"^{re.escape(tag)}$" for tag in tags]]

    layout: dict[str, dict[str, list]] = {
        "ELBO": {
            f"{split}: elbo, recon, kl": chart([f"{split}/{term}" for term in ("elbo", "recon", "kl")])
            for split in ("train", "val", "test")
        }
    }
    for stat, category in (("var", "gradient variance"), ("snr", "gradient SNR")):
        charts = {
            f"grad/{stat}/{group}": chart(
                [f"grad/{stat}/{group}"] + [f"grad/{stat}/{group}/{n}" for n in compared]
            )
            for group in groups
        }
        if charts:
            layout[category] = charts
    if clips:
        layout["posterior clip"] = {
            f"{split}: clip_low, clip_high": chart([f"{split}/clip_low", f"{split}/clip_high"])
            for split in ("val", "test")
        }
    return layout


class ScalarLayout(pl.Callback):
    """Write the run's custom-scalars layout (see :mod:`vae_lab.probes.scalar_layout`) once, at the start
    of fit, on global rank 0, to the first TensorBoard logger.

    Args:
        enabled: ``False`` turns it off.
    """

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        check(isinstance(enabled, bool), "enabled", "expected true or false", enabled)
        self.enabled = enabled
        self.layout: dict[str, dict[str, list]] | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = _tensorboard(trainer)
        if not self.enabled or self.layout is not None or writer is None or not trainer.is_global_zero:
            return
        probes = [c for c in members(trainer.callbacks) if isinstance(c, GradientVarianceProbe) and c.enabled]
        groups = list(parameter_groups(pl_module)) if probes else []
        compared = probes[0].compared if probes else []  # after its setup: those that fit the family
        head = getattr(pl_module, "posterior", None)
        self.layout = scalar_layout(groups, compared, clips=bool(getattr(head, "clips", False)))
        writer.add_custom_scalars(self.layout)
        writer.flush()
