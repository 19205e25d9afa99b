"""What a checkpoint holds beyond Lightning's own training state, so that a resumed run continues
exactly: :class:`ResumeState` (``conf/callbacks/resume_state.yaml``)."""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn

from vae_lab.runs.logs import csv_rows

CHECKPOINT_KEY = "vae_lab_resume"


class ResumeState(Callback):
    """Save in each checkpoint the state a resumed run needs beyond Lightning's own, and restore it.

    Lightning checkpoints the model, optimizer, loops, callbacks and the data module (whose
    :class:`~vae_lab.data.loader.TensorBatches` carry their own generators), but not:

    - the global random number generators (torch's CPU and CUDA generators, NumPy's, Python's):
      latent samples are drawn from torch's default generator, which ``seed_everything`` seeds once;
    - ``trainer.callback_metrics``, the latest value of every logged metric, which ``summary.json``
      reports (a run resumed at its very end trains no further step that would log them again);
    - how many rows each CSV logger had written: a run killed without a chance to save (SIGKILL) may
      have flushed rows after its last checkpoint, which :func:`vae_lab.runs.logs.trim_csv_logs` drops;
    - ``elapsed_s``, the wall seconds the run has trained up to this checkpoint over all its segments
      (each segment's time from its ``on_fit_start``), so that a run killed without a chance to record
      its time still counts it when resumed (``summary.json``'s ``duration_s``).

    They are put back in ``on_fit_start`` (after Lightning has loaded the checkpoint and reset its
    metrics, before the first step; nothing in between draws a random number), so the resumed run
    draws the numbers the uninterrupted one drew.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None
        self._earlier_s = 0.0  # elapsed_s of the checkpoint this segment resumed from
        self._started: float | None = None  # time.monotonic() at this segment's on_fit_start

    def elapsed_s(self) -> float:
        """Wall seconds trained so far: earlier segments (as checkpointed) and this one."""
        since = time.monotonic() - self._started if self._started is not None else 0.0
        return self._earlier_s + since

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "rng": rng_states(),
            "callback_metrics": {
                k: v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v
                for k, v in trainer.callback_metrics.items()
            },
            "csv_rows": csv_rows(trainer.loggers, trainer.default_root_dir),
            "elapsed_s": self.elapsed_s(),
        }

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # trainer.test(ckpt_path=...) loads checkpoints too; only a resumed fit continues a stream
        if trainer.state.fn == TrainerFn.FITTING:
            self._pending = checkpoint.get(CHECKPOINT_KEY)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state, self._pending = self._pending, None
        self._started = time.monotonic()
        self._earlier_s = float((state or {}).get("elapsed_s", 0.0))
        if state is None:
            return
        set_rng_states(state["rng"])
        trainer.callback_metrics.update(state.get("callback_metrics", {}))


def rng_states() -> dict[str, Any]:
    """The states of the global generators: torch's (CPU, and CUDA once initialized), NumPy's, Python's.

    Only tensors, numbers and tuples, so that checkpoints still load with ``torch.load(weights_only=True)``
    (NumPy's key array is stored as a tensor).
    """
    name, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (name, torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Put back what :func:`rng_states` returned."""
    torch.set_rng_state(states["torch"])
    name, key, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        for device, state in enumerate(states["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, device)
