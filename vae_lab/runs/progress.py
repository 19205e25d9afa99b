"""Where a job's progress goes (``conf/callbacks/progress_bar.yaml``): a single run draws Lightning's
progress bar on the terminal; a job of a sweep (several may share one terminal) writes its progress to
its own ``train.log`` instead (:class:`LogProgress`), and the terminal shows one line per finished job.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar, TQDMProgressBar

from vae_lab.data.step_batches import step_args

log = logging.getLogger("vae_lab.progress")


def progress_bar(refresh_rate: int = 20, log_every_n_steps: int = 100) -> ProgressBar:
    """Lightning's TQDM progress bar (``refresh_rate`` steps per redraw) in a single run; in a multirun,
    :class:`LogProgress` (a line in train.log every ``log_every_n_steps`` steps and after each
    validation)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return LogProgress(log_every_n_steps if refresh_rate else 0)
    return TQDMBar(refresh_rate=refresh_rate)


class TQDMBar(TQDMProgressBar):
    """Lightning's TQDM bar, whose test bar moves on every batch whatever ``refresh_rate`` (a test batch,
    with its importance-weighted NLL from thousands of samples, takes seconds, not milliseconds);
    ``refresh_rate=0`` still draws nothing. It counts training steps also where a Lightning batch holds
    several (``steps_per_batch``)."""

    multi_step_hooks = "once"  #: the bar moves at Lightning's batches (vae_lab.model.multi_step)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        batch, batch_idx = step_args(batch, batch_idx, end=True)  # the last step's index in the epoch
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.is_enabled and not self.test_progress_bar.disable:
            self.test_progress_bar.n = batch_idx + 1
            self.test_progress_bar.refresh()


class LogProgress(ProgressBar):
    """A progress "bar" that writes lines to the log (INFO: train.log, not the terminal): the step, the
    epoch, the rate and the progress-bar metrics, every ``every_n_steps`` training steps (0: never) and
    after each validation."""

    multi_step_hooks = "each"  #: a line at every n-th step (vae_lab.model.multi_step)

    def __init__(self, every_n_steps: int = 100) -> None:
        super().__init__()
        self.every_n_steps = every_n_steps
        self._enabled = True
        self._started = time.monotonic()
        self._start_step = 0
        self._test_started = time.monotonic()

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started, self._start_step = time.monotonic(), trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if self._enabled and self.every_n_steps and step % self.every_n_steps == 0:
            self._write(trainer, pl_module, "train")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._enabled and not trainer.sanity_checking:
            self._write(trainer, pl_module, "validated")

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        """A line every tenth of the test loop (its batches take seconds with a large K). ``args``:
        outputs, batch, batch_idx and, with several dataloaders, dataloader_idx."""
        batch_idx, dataloader_idx = args[2], (args[3] if len(args) > 3 else 0)
        batches = trainer.num_test_batches
        total = batches[dataloader_idx] if isinstance(batches, list) else batches
        every = max(1, int(total) // 10) if total != float("inf") else 1
        done = batch_idx + 1
        if self._enabled and self.every_n_steps and (done % every == 0 or done == total):
            split = getattr(pl_module, "test_split", "test")
            log.info("%s: batch %d/%s, %.0f s", split, done, total, time.monotonic() - self._test_started)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._test_started = time.monotonic()

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, what: str) -> None:
        elapsed = time.monotonic() - self._started
        rate = (trainer.global_step - self._start_step) / elapsed if elapsed > 0 else 0.0
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        steps = f"step {trainer.global_step}" + (f"/{total}" if total else "")
        metrics = self.get_metrics(trainer, pl_module)
        shown = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items() if k != "v_num"
        )
        log.info(
            "%s: epoch %d, %s, %.1f steps/s%s",
            what,
            trainer.current_epoch,
            steps,
            rate,
            f"; {shown}" if shown else "",
        )
