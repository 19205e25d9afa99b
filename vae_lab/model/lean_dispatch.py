"""Lightning's per-batch bookkeeping on the module at the cost of what it does where nothing listens to it.

On every training batch Lightning calls about ten hooks through ``pytorch_lightning.trainer.call``: the
callbacks' and the module's ``on_train_batch_start`` / ``on_train_batch_end``, the strategy's hooks and the
three batch-transfer hooks. Around each one it sets the module's ``_current_fx_name`` and sets it back,
through ``nn.Module.__setattr__``, which looks for a parameter, buffer or submodule of that name first
(about 2 us a call against 0.2 for a plain attribute, some 20 calls a step); the transfer hooks each also
pick the module or the data module that defines them and open a profiler context. For a batch that is a
tensor already on the module's device, with neither the module nor the data module overriding those hooks
and no profiler recording them, the three hooks return the batch itself (Lightning's defaults:
``on_before_batch_transfer`` and ``on_after_batch_transfer`` return it, ``transfer_batch_to_device`` is
``batch.to(device)``, which returns a tensor already there unchanged).

:class:`LeanDispatch` (a mixin of :class:`vae_lab.model.vae.VAE`) sets ``_current_fx_name`` as the plain
attribute it ends up as anyway, and hands such a batch back without the hook calls. Everything else (a
model or data module with its own transfer hooks, a batch on another device or of another type, a
profiler) takes Lightning's own path; the batch a training step sees is the same object either way
(``tests/model/test_lean_dispatch.py``). Measured in ``benchmarks/bench_train.py`` and ``bench_lda.py``.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.profilers import PassThroughProfiler
from pytorch_lightning.utilities.model_helpers import is_overridden
from torch import Tensor

from vae_lab.data.step_batches import StepBatches

__all__ = ["TRANSFER_HOOKS", "LeanDispatch", "default_transfer"]

#: the batch-transfer hooks a module or data module may override (Lightning's shared data hooks)
TRANSFER_HOOKS = ("on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer")

#: what Lightning sets on the module around every hook call: a string or None, never a parameter
_HOOK_NAME = "_current_fx_name"


def default_transfer(trainer: pl.Trainer, module: pl.LightningModule) -> bool:
    """Whether the batch-transfer hooks of this fit are Lightning's defaults and no profiler records them."""
    if type(trainer.profiler) is not PassThroughProfiler:
        return False
    datamodule = trainer.datamodule
    return not any(
        is_overridden(hook, module, pl.LightningModule)
        or (datamodule is not None and is_overridden(hook, datamodule, pl.LightningDataModule))
        for hook in TRANSFER_HOOKS
    )


class LeanDispatch:
    """Mixin for a ``LightningModule``: Lightning's hook bookkeeping without nn.Module's attribute checks,
    and the batch-transfer hooks skipped where they would hand the batch back unchanged."""

    #: whether this stage's transfer hooks are Lightning's defaults (:func:`default_transfer`), set in setup
    _plain_transfer: bool = False

    def __setattr__(self, name: str, value: Any) -> None:
        if name == _HOOK_NAME and (value is None or isinstance(value, str)):
            object.__setattr__(self, name, value)  # where nn.Module.__setattr__ puts a string, at once
        else:
            super().__setattr__(name, value)

    def setup(self, stage: str) -> None:
        """Lightning calls it at the start of every fit, validate, test and predict, with the trainer and
        its data module attached: the transfer hooks and the profiler are checked once per stage."""
        self._plain_transfer = default_transfer(self.trainer, self)  # type: ignore[attr-defined,arg-type]
        super().setup(stage)  # type: ignore[misc]

    def _unchanged_by_transfer(self, batch: Any, device: torch.device | None = None) -> bool:
        """Whether Lightning's transfer hooks would return ``batch`` itself (a tensor on ``device``, or
        StepBatches of such tensors)."""
        if type(batch) is StepBatches:
            return all(self._unchanged_by_transfer(x, device) for x in batch)
        return self._plain_transfer and type(batch) is Tensor and (device is None or batch.device == device)

    def _on_before_batch_transfer(self, batch: Any, dataloader_idx: int = 0) -> Any:
        if self._unchanged_by_transfer(batch):
            return batch
        return super()._on_before_batch_transfer(batch, dataloader_idx)  # type: ignore[misc]

    def _apply_batch_transfer_handler(
        self, batch: Any, device: torch.device | None = None, dataloader_idx: int = 0
    ) -> Any:
        if self._unchanged_by_transfer(batch, device or self.device):  # type: ignore[attr-defined]
            return batch
        return super()._apply_batch_transfer_handler(batch, device, dataloader_idx)  # type: ignore[misc]
