"""Callbacks that make an interrupted run resumable exactly (`vae-lab train ... resume=true`).

- :class:`ResumeState` puts into every checkpoint what Lightning leaves out of it.
- :class:`InterruptCheckpoint` saves a checkpoint when SIGINT or SIGTERM stop a fit.

Both are in ``conf/callbacks/default.yaml``; :mod:`vae_lab.resume` picks the checkpoint to resume from.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

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
      have flushed rows after its last checkpoint, which :func:`vae_lab.resume.truncate_rows` drops.

    They are put back in ``on_fit_start`` (after Lightning has loaded the checkpoint and reset its
    metrics, before the first step; nothing in between draws a random number), so the resumed run
    draws the numbers the uninterrupted one drew.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        rows = {}
        for logger in trainer.loggers:
            if isinstance(logger, CSVLogger) and logger.log_dir is not None:
                logger.save()  # flush, so the file holds exactly the rows logged before this checkpoint
                path = Path(logger.log_dir) / "metrics.csv"
                rows[csv_key(path, trainer.default_root_dir)] = count_rows(path)
        checkpoint[CHECKPOINT_KEY] = {
            "rng": rng_states(),
            "callback_metrics": {
                k: v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v
                for k, v in trainer.callback_metrics.items()
            },
            "csv_rows": rows,
        }

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # trainer.test(ckpt_path=...) loads checkpoints too; only a resumed fit continues a stream
        if trainer.state.fn == TrainerFn.FITTING:
            self._pending = checkpoint.get(CHECKPOINT_KEY)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state, self._pending = self._pending, None
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


def count_rows(path: Path) -> int:
    """Data rows of a CSV file written by Lightning's CSVLogger (one line per row after the header)."""
    if not path.is_file():
        return 0
    with path.open("rb") as file:
        return max(0, sum(1 for _ in file) - 1)


def csv_key(path: Path, root: str | os.PathLike[str]) -> str:
    """How a CSV file is named in the checkpoint: relative to the run directory when inside it."""
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


class InterruptCheckpoint(Callback):
    """Save ``<dirpath>/<filename>.ckpt`` when a fit stops gracefully; remove it when a fit ends normally.

    Lightning turns SIGTERM into ``SIGTERMException`` at the next step boundary (vae-lab routes SIGINT,
    Ctrl-C, the same way: :class:`vae_lab.resume.StopSignals`), and the checkpoint written then
    (``trainer.save_checkpoint``, Lightning's full training state) holds a state the uninterrupted run
    also passed through, so resuming from it is exact.

    Lightning's own ``OnExceptionCheckpoint`` does the same with two differences that matter here. It
    saves on any exception, also one raised mid-step, while a checkpoint is being restored, or during
    validation or testing: a state no uninterrupted run has, from which a resumed run would silently
    differ (those cases resume from ``last.ckpt`` instead). And while one is registered, Lightning
    turns every ``fit(ckpt_path=None)`` into ``ckpt_path="last"``: a warning in every fresh run, and a
    silent resume in any directory that holds checkpoints. vae-lab resumes only when asked
    (``resume=``), from the checkpoint :func:`vae_lab.resume.checkpoint_to_resume` picks.
    """

    FILE_EXTENSION = ".ckpt"

    def __init__(self, dirpath: str | os.PathLike[str], filename: str = "on_exception") -> None:
        if not filename:
            raise ValueError("filename must not be empty")
        self.dirpath = os.fspath(dirpath)
        self.filename = filename

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.dirpath, self.filename + self.FILE_EXTENSION)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        stopped = isinstance(exception, SIGTERMException)
        if stopped and trainer.state.fn == TrainerFn.FITTING and not trainer.validating:
            trainer.save_checkpoint(self.ckpt_path)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == TrainerFn.FITTING:  # the fit ran to its end: nothing to resume
            trainer.strategy.remove_checkpoint(self.ckpt_path)
