"""Interrupting and resuming runs: ``vae-lab train ... resume=true``.

- While a job trains, :class:`StopSignals` turns SIGINT (Ctrl-C) and SIGTERM (``kill``, a cluster's
  pre-emption) into Lightning's graceful stop: the step in progress finishes, Lightning raises
  ``SIGTERMException``, :class:`~vae_lab.callbacks.InterruptCheckpoint` saves the exact state, and
  the job ends with :class:`Interrupted` (status ``interrupted`` in ``summary.json``).
- ``resume=true`` finds the run to continue (:func:`find_run`, :func:`find_sweep`); the CLI points
  Hydra's run (or sweep) directory at it, and the job fits from :func:`checkpoint_to_resume`.

torch and Lightning are imported inside the functions that use them: the CLI imports this module to
settle ``resume=`` before anything trains, and its error paths stay quick.
"""

from __future__ import annotations

import logging
import shlex
import signal
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from vae_lab.rundir import read_summary, run_overrides

log = logging.getLogger("vae_lab.resume")

KEY = "resume"
OUTPUTS = Path("outputs")  # where conf/hydra/default.yaml puts runs, relative to the working directory
MULTIRUN = OUTPUTS / "multirun"
COMPLETED = "completed"


class ResumeError(ValueError):
    """Nothing (or not the right thing) to resume; the message is one line naming ``resume``."""


@dataclass(eq=False)  # compared and hashed by identity, as exceptions are
class Interrupted(Exception):
    """A job stopped by SIGINT or SIGTERM, with what a resumed run will start from.

    ``checkpoint``: the newest checkpoint (None: none yet); ``saved``: whether this stop wrote it;
    ``completed``: the signal came as the job was finishing, and it finished.
    """

    signum: int
    step: int
    run_dir: Path
    checkpoint: Path | None = None
    saved: bool = False
    completed: bool = False

    def __post_init__(self) -> None:
        super().__init__(f"interrupted by {signal.Signals(self.signum).name} at step {self.step}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process killed by it: 130 (SIGINT), 143 (SIGTERM)."""
        return 128 + self.signum

    def message(self, command: Sequence[str] | None) -> str:
        """One line: where it stopped, what was saved, and the command that continues (``command``)."""
        if self.completed:
            text = f"{signal.Signals(self.signum).name} received as the job completed (step {self.step})"
        elif self.saved:
            text = f"interrupted at step {self.step}; checkpoint saved"
        elif self.checkpoint is not None:
            text = f"interrupted at step {self.step}; resume continues from {self.checkpoint.name}"
        else:
            text = f"interrupted at step {self.step}; no checkpoint yet, resume starts it over"
        if command:
            text += "; continue with: " + " ".join(shlex.quote(arg) for arg in command)
        return text


# -- signals ----------------------------------------------------------------------------------------
class StopSignals:
    """Context manager: SIGINT and SIGTERM ask a running Trainer to stop at the next step boundary.

    Lightning installs its own SIGTERM handler while a Trainer runs (it sets ``trainer.received_sigterm``
    and keeps the handler it found, this one, in its chain); SIGINT is forwarded to it, so both signals
    take the same path. Outside a Trainer run (building the model, reading data) a signal raises
    ``KeyboardInterrupt`` at once. Signals after the first are ignored while the job winds down (as
    Lightning ignores a second Ctrl-C), so the checkpoint and summary.json are written whole.
    ``received`` is the first signal's number.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._forwarding = False
        self._handler = self._handle  # one bound method, so that `is` recognizes it

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._forwarding:  # Lightning's handler calling back the one it found: nothing more to do
            return
        name = signal.Signals(signum).name
        if self.received is not None:
            log.info("received %s while stopping; ignored", name)
            return
        self.received = signum
        trainer_handler = signal.getsignal(signal.SIGTERM)
        if trainer_handler is self._handler or not callable(trainer_handler):
            raise KeyboardInterrupt  # no Trainer running: stop now
        log.info("received %s: stopping after the current step", name)
        if signum != signal.SIGTERM:
            self._forwarding = True
            try:
                trainer_handler(signal.SIGTERM, frame)
            finally:
                self._forwarding = False


# -- which run, which checkpoint --------------------------------------------------------------------
@dataclass
class Found:
    """A run (or sweep) directory to continue, its status and the overrides it was started with."""

    path: Path
    status: str | None
    overrides: list[str]

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED


def canonical(overrides: Iterable[str]) -> list[tuple[str, ...]]:
    """Overrides as comparable values, without ``resume``: ``test=false`` and ``test=False`` (as Hydra
    writes a sweep job's overrides) compare equal, and the order does not matter."""
    parser = OverridesParser.create()
    result = []
    for text in overrides:
        try:
            override = parser.parse_override(text)
        except HydraException:
            result.append(("raw", text))
            continue
        if override.key_or_group == KEY:
            continue
        if override.is_sweep_override():
            value = text.split("=", 1)[-1]
            if not override.is_interval_sweep():
                value = ",".join(override.sweep_string_iterator())
        else:
            value = override.get_value_element_as_str()
        result.append((override.type.name, override.key_or_group, override.package or "", value))
    return sorted(result)


def sweep_overrides(sweep_dir: Path) -> list[str] | None:
    """The task overrides of a sweep, from the ``multirun.yaml`` Hydra writes in its directory."""
    try:
        config = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())
        overrides = config["hydra"]["overrides"]["task"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return [str(o) for o in overrides] if isinstance(overrides, list) else None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _shown(overrides: Sequence[str]) -> str:
    return " ".join(o for o in overrides if not o.startswith(f"{KEY}=")) or "(no overrides)"


def find_run(overrides: Sequence[str], root: Path = OUTPUTS) -> Found:
    """The most recent single-run directory under ``root`` (``<date>/<time>``, as in
    conf/hydra/default.yaml) started with these overrides (``resume`` aside) whose status is not
    completed; failing that, the most recent completed one. Raises :class:`ResumeError` if none."""
    wanted = canonical(overrides)
    matches = []
    for path in root.glob("*/*/.hydra/overrides.yaml"):
        run_dir = path.parent.parent  # sweep jobs lie deeper: multirun/<date>/<time>/<job>
        stored = run_overrides(run_dir)
        if stored is not None and canonical(stored) == wanted:
            summary = read_summary(run_dir) or {}
            matches.append(Found(run_dir, summary.get("status"), stored))
    if not matches:
        raise ResumeError(
            f"{KEY}=true: no run under {root}/<date>/<time>/ was started with the overrides "
            f"{_shown(overrides)!r}; give the directory with {KEY}=<run dir>"
        )
    recency = {m.path: max(_mtime(m.path / "summary.json"), _mtime(m.path / ".hydra")) for m in matches}
    matches.sort(key=lambda m: (recency[m.path], str(m.path)), reverse=True)
    unfinished = [m for m in matches if not m.completed]
    return (unfinished or matches)[0]


def check_run(run_dir: Path, overrides: Sequence[str]) -> Found:
    """``resume=<run dir>``: the run there; with no other overrides given, its own are used."""
    if not run_dir.is_dir():
        raise ResumeError(f"{KEY}={run_dir}: no such directory")
    stored = run_overrides(run_dir)
    if stored is None:
        raise ResumeError(f"{KEY}={run_dir}: not a vae-lab run directory (no .hydra/overrides.yaml)")
    given = [o for o in overrides if not o.startswith(f"{KEY}=")]
    if given and canonical(given) != canonical(stored):
        raise ResumeError(
            f"{KEY}={run_dir}: that run was started with {_shown(stored)!r}, not {_shown(given)!r}; "
            "give the same overrides, or none"
        )
    return Found(run_dir, (read_summary(run_dir) or {}).get("status"), stored)


def find_sweep(overrides: Sequence[str], sweep_dir: Path | None, root: Path = MULTIRUN) -> Found:
    """The sweep directory to continue: ``sweep_dir`` (checked against its multirun.yaml), or the most
    recent one under ``root`` started with these overrides (``resume`` aside)."""
    given = [o for o in overrides if not o.startswith(f"{KEY}=")]
    if sweep_dir is not None:
        stored = sweep_overrides(sweep_dir)
        if stored is None:
            raise ResumeError(f"{KEY}: {sweep_dir} is not a sweep directory (no multirun.yaml)")
        if given and canonical(given) != canonical(stored):
            raise ResumeError(
                f"{KEY}: the sweep in {sweep_dir} was started with {_shown(stored)!r}, "
                f"not {_shown(given)!r}; give the same overrides, or none"
            )
        return Found(sweep_dir, None, stored)
    wanted = canonical(given)
    matches = [
        Found(path.parent, None, stored)
        for path in root.glob("*/*/multirun.yaml")
        if (stored := sweep_overrides(path.parent)) is not None and canonical(stored) == wanted
    ]
    if not matches:
        raise ResumeError(
            f"{KEY}=true: no sweep under {root}/<date>/<time>/ was started with the overrides "
            f"{_shown(overrides)!r}; give its directory with hydra.sweep.dir=<dir> or {KEY}=<dir>"
        )
    return max(matches, key=lambda m: (_mtime(m.path / "multirun.yaml"), str(m.path)))


def completed_run(run_dir: Path, overrides: Sequence[str]) -> dict[str, Any] | None:
    """For a job with ``resume`` set: the summary of the run that completed in its directory (the job
    then does not train again), else None. A run there started with other overrides is an error."""
    from vae_lab.errors import ConfigError

    previous = read_summary(run_dir)
    if previous is None:
        return None
    stored = previous.get("overrides")
    if isinstance(stored, list) and canonical(stored) != canonical(overrides):
        raise ConfigError(
            KEY, "", detail=f"{KEY}: the run in {run_dir} was started with other overrides: {_shown(stored)}"
        )
    return previous if previous.get("status") == COMPLETED else None


def stopped(signum: int, step: int, run_dir: Path, callbacks: Iterable[Any], since: float) -> Interrupted:
    """What a stop left behind: the checkpoint a resumed run will start from, and whether this stop
    saved it (an :class:`~vae_lab.callbacks.InterruptCheckpoint` written after ``since``)."""
    from vae_lab.callbacks import InterruptCheckpoint

    callbacks = list(callbacks)
    checkpoint = checkpoint_to_resume(callbacks)
    ours = {Path(c.ckpt_path) for c in callbacks if isinstance(c, InterruptCheckpoint)}
    saved = checkpoint in ours and _mtime(checkpoint) >= since
    return Interrupted(signum, step, run_dir, checkpoint, saved=saved)


def checkpoint_to_resume(callbacks: Iterable[Any]) -> Path | None:
    """The newest of the run's resumable checkpoints: the interrupt (on-exception) checkpoint, and
    ``last.ckpt`` of each ModelCheckpoint that saves one (the choice Lightning's ``ckpt_path="last"``
    makes; naming the file lets the run report it and trim its logs to it)."""
    from pytorch_lightning.callbacks import ModelCheckpoint, OnExceptionCheckpoint

    from vae_lab.callbacks import InterruptCheckpoint

    candidates = []
    for callback in callbacks:
        if isinstance(callback, (InterruptCheckpoint, OnExceptionCheckpoint)):
            candidates.append(Path(callback.ckpt_path))
        elif isinstance(callback, ModelCheckpoint) and callback.save_last and callback.dirpath:
            last = f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
            candidates.append(Path(callback.dirpath) / last)
    existing = [path for path in candidates if path.is_file()]
    return max(existing, key=_mtime) if existing else None


def checkpoint_contents(checkpoint: Path | None) -> tuple[int, dict[str, int] | None]:
    """The step a checkpoint was saved at, and the metrics.csv rows per file written by then (see
    :class:`vae_lab.callbacks.ResumeState`; None: not recorded). Without a checkpoint: step 0, no rows."""
    import torch

    from vae_lab.callbacks import CHECKPOINT_KEY

    if checkpoint is None:
        return 0, {}
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    return int(state.get("global_step", 0)), (state.get(CHECKPOINT_KEY) or {}).get("csv_rows")


def logger_kwargs(node: Any, step: int) -> dict[str, Any]:
    """Extra arguments for a logger of a resumed run: TensorBoard hides the events an earlier attempt
    logged after the checkpoint at ``step`` (its ``purge_step``; all of them when starting over)."""
    from hydra.utils import get_class
    from pytorch_lightning.loggers import TensorBoardLogger

    target = node.get("_target_") if hasattr(node, "get") else None
    if target and issubclass(get_class(target), TensorBoardLogger):
        return {"purge_step": step + 1 if step else 0}
    return {}


def trim_csv_logs(loggers: Iterable[Any], run_dir: Path, rows: dict[str, int] | None) -> None:
    """Keep the metrics.csv rows written before the checkpoint a run starts from: none for a fresh
    start (``rows == {}``, as Lightning's CSVLogger does), all where the checkpoint has no record."""
    from pytorch_lightning.loggers import CSVLogger

    from vae_lab.callbacks import csv_key

    if rows is None:
        return
    for logger in loggers:
        if isinstance(logger, CSVLogger):
            path = Path(logger.log_dir) / "metrics.csv"
            keep = rows.get(csv_key(path, run_dir), None if rows else 0)
            if keep is not None:
                truncate_rows(path, keep)


def truncate_rows(path: Path, rows: int) -> None:
    """Keep the header and the first ``rows`` data rows of a CSV file; with ``rows=0`` remove it."""
    if not path.is_file():
        return
    if rows <= 0:
        path.unlink()
        return
    with path.open("rb") as file:
        lines = file.readlines()
    if len(lines) > rows + 1:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(b"".join(lines[: rows + 1]))
        tmp.replace(path)
