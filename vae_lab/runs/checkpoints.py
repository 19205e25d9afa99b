"""The checkpoints a run resumes from: the one a signal's stop saves (:class:`InterruptCheckpoint`,
``conf/callbacks/interrupt_checkpoint.yaml``), the choice of the newest (:func:`checkpoint_to_resume`),
and where a job starts (:class:`ResumePoint`); Lightning's :class:`ModelCheckpoint` with its state key
built once."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from weakref import proxy

import pytorch_lightning as pl
from fsspec.implementations.local import LocalFileSystem
from pytorch_lightning.callbacks import Callback, OnExceptionCheckpoint
from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from vae_lab.errors import check
from vae_lab.runs.locate import mtime
from vae_lab.runs.logs import logger_kwargs, trim_csv_logs
from vae_lab.runs.resume_state import CHECKPOINT_KEY
from vae_lab.runs.signals import Interrupted


class InterruptCheckpoint(Callback):
    """Save ``<dirpath>/<filename>.ckpt`` when a fit stops gracefully; remove it when a fit ends normally.

    Lightning turns SIGTERM into ``SIGTERMException`` at the next step boundary (vae-lab routes SIGINT,
    Ctrl-C, the same way: :class:`vae_lab.runs.signals.StopSignals`), and the checkpoint written then
    (``trainer.save_checkpoint``, Lightning's full training state) holds a state the uninterrupted run
    also passed through, so resuming from it is exact.

    Lightning's own ``OnExceptionCheckpoint`` does the same with two differences that matter here. It
    saves on any exception, also one raised mid-step, while a checkpoint is being restored, or during
    validation or testing: a state no uninterrupted run has, from which a resumed run would silently
    differ (those cases resume from ``last.ckpt`` instead). And while one is registered, Lightning
    turns every ``fit(ckpt_path=None)`` into ``ckpt_path="last"``: a warning in every fresh run, and a
    silent resume in any directory that holds checkpoints. vae-lab resumes only when asked
    (``resume=``), from the checkpoint :func:`checkpoint_to_resume` picks.
    """

    FILE_EXTENSION = ".ckpt"

    def __init__(self, dirpath: str | os.PathLike[str], filename: str = "on_exception") -> None:
        check(isinstance(filename, str) and filename != "", "filename", "expected a file name", filename)
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


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (``conf/callbacks/model_checkpoint.yaml``, ``last_checkpoint.yaml``)
    whose ``state_key`` is built once per setting, and which copies a checkpoint that another of the fit's
    ModelCheckpoints has just written instead of writing the same state again.

    A run writes best.ckpt where val/elbo improved and then last.ckpt, in the same hook at the same step:
    the same state, dumped and pickled twice (8 ms a save of the default digits model, 38 saves in its 20
    epochs: 15% of its fit). Where this callback saves at the moment (step, epoch and hook) at which another
    of this class saved, with the same ``save_weights_only``, on one process and a local file system, its
    file is an atomic copy of the other's (:meth:`_save_checkpoint`). The copy differs from a dump of its
    own only in this callback's own state from before the save (its paths, the same strings after its first
    save), which resume does not need.

    Lightning reads every callback's ``state_key`` on each hook call of each step, to name a profiler
    section, even when no profiler runs; a ModelCheckpoint builds its key from its settings each time (about
    2.5 us, four times a step for the run's two). The key is the same string, class name included, so
    checkpoints saved with Lightning's class resume with this one and the other way round.
    """

    @property
    def state_key(self) -> str:
        settings = (
            self.monitor,
            self.mode,
            self._every_n_train_steps,
            self._every_n_epochs,
            self._train_time_interval,
        )
        cached = self.__dict__.get("_state_key_for")
        if cached is None or cached[0] != settings:
            cached = self.__dict__["_state_key_for"] = (settings, super().state_key)
        return cached[1]

    #: (moment, path, save_weights_only) of this callback's latest save; moment: :func:`_moment`
    _saved: tuple[tuple[int, int, str | None], str, bool] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._saved = None  # a save of an earlier fit is no source for this one
        super().setup(trainer, pl_module, stage)

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        source = self._same_state_saved(trainer, filepath)
        if source is None:
            super()._save_checkpoint(trainer, filepath)
        else:  # Lightning's save with the file copied, not dumped
            copy_atomically(source, filepath)
            self._last_global_step_saved = trainer.global_step
            self._last_checkpoint_saved = filepath
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))
        self._saved = (_moment(trainer), filepath, self.save_weights_only)

    def _same_state_saved(self, trainer: pl.Trainer, filepath: str) -> str | None:
        """The file another of the fit's ModelCheckpoints of this class saved at this moment, if it can be
        copied to ``filepath`` (see the class's docstring); else None."""
        if trainer.world_size != 1 or not isinstance(self._fs, LocalFileSystem):
            return None
        now = (_moment(trainer), self.save_weights_only)
        for other in trainer.checkpoint_callbacks:
            saved = other._saved if isinstance(other, ModelCheckpoint) and other is not self else None
            if saved is not None and (saved[0], saved[2]) == now and os.path.isfile(saved[1]):
                if os.path.abspath(saved[1]) != os.path.abspath(filepath):
                    return saved[1]
        return None


def _moment(trainer: pl.Trainer) -> tuple[int, int, str | None]:
    """Where in the fit a save happens: the step, the epoch and the hook Lightning is calling."""
    module = trainer.lightning_module
    return trainer.global_step, trainer.current_epoch, getattr(module, "_current_fx_name", None)


def copy_atomically(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Copy ``source`` to ``target`` through a temporary file beside it: ``target`` is never half written."""
    temporary = f"{target}.tmp"
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def newest_state_file(callback: LightningModelCheckpoint) -> Path | None:
    """The file in which ``callback`` keeps the newest state it saved, or None: ``last.ckpt`` where it
    saves one (``save_last``), and its one file where it has no monitor and keeps one checkpoint under a
    fixed name (``conf/callbacks/last_checkpoint.yaml``)."""
    if not callback.dirpath:
        return None
    if callback.save_last:
        return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
    name = callback.filename
    if callback.monitor is None and callback.save_top_k == 1 and name and "{" not in name:
        return Path(callback.dirpath) / f"{name}{callback.FILE_EXTENSION}"
    return None


def checkpoint_to_resume(callbacks: Iterable[Any]) -> Path | None:
    """The newest of the run's resumable checkpoints: the interrupt (on-exception) checkpoint, and the
    newest state of each ModelCheckpoint that keeps one (:func:`newest_state_file`; naming the file lets
    the run report it and trim its logs to it)."""
    candidates = []
    for callback in callbacks:
        if isinstance(callback, (InterruptCheckpoint, OnExceptionCheckpoint)):
            candidates.append(Path(callback.ckpt_path))
        elif isinstance(callback, LightningModelCheckpoint):
            if (path := newest_state_file(callback)) is not None:
                candidates.append(path)
    existing = [path for path in candidates if path.is_file()]
    return max(existing, key=mtime) if existing else None


@dataclass
class ResumePoint:
    """Where a job starts: ``checkpoint`` (None: from scratch), the ``step`` it was saved at, and the
    metrics.csv rows per file written by then (:class:`~vae_lab.runs.resume_state.ResumeState`; None:
    not recorded, keep them all). ``resuming``: asked for with ``resume=``; only then are the logs of an
    earlier attempt continued."""

    checkpoint: Path | None = None
    step: int = 0
    csv_rows: dict[str, int] | None = field(default_factory=dict)
    resuming: bool = False
    elapsed_s: float = 0.0  # wall seconds trained up to the checkpoint (0: fresh, or not recorded)

    @classmethod
    def find(cls, callbacks: Iterable[Any], resuming: bool) -> ResumePoint:
        """The newest resumable checkpoint of the run's ``callbacks`` if ``resuming``, else a fresh start."""
        checkpoint = checkpoint_to_resume(callbacks) if resuming else None
        if checkpoint is None:
            return cls(resuming=resuming)
        import torch

        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        ours = state.get(CHECKPOINT_KEY) or {}
        step = int(state.get("global_step", 0))
        return cls(checkpoint, step, ours.get("csv_rows"), resuming, float(ours.get("elapsed_s", 0.0)))

    def logger_kwargs(self, node: Any) -> dict[str, Any]:
        """Extra arguments for the logger configured by ``node`` (:func:`vae_lab.runs.logs.logger_kwargs`)."""
        return logger_kwargs(node, self.step) if self.resuming else {}

    def trim_logs(self, loggers: Iterable[Any], run_dir: Path) -> None:
        """Drop the metrics.csv rows written after this point (all of them on a fresh start)."""
        trim_csv_logs(loggers, run_dir, self.csv_rows)


def stopped(signum: int, step: int, run_dir: Path, callbacks: Iterable[Any], since: float) -> Interrupted:
    """What a stop left behind: the checkpoint a resumed run will start from, and whether this stop
    saved it (an :class:`InterruptCheckpoint` written after ``since``)."""
    callbacks = list(callbacks)
    checkpoint = checkpoint_to_resume(callbacks)
    ours = {Path(c.ckpt_path) for c in callbacks if isinstance(c, InterruptCheckpoint)}
    saved = checkpoint in ours and mtime(checkpoint) >= since
    return Interrupted(signum, step, run_dir, checkpoint, saved=saved)
