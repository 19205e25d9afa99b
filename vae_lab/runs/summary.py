"""``summary.json``, a run's record of itself (DESIGN.md section 5): its schema (:class:`Summary`, with a
:class:`Status`), reading and writing it, and the overrides the run was started with.

The train task writes it (``running`` when it starts, then ``completed``, ``failed`` or ``interrupted``);
``resume=`` reads it to find what to continue, the sweep's last line to count failures, and `vae-lab
report` to tabulate jobs. Every reader goes through :func:`read_summary`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

SUMMARY = "summary.json"
#: the metric of ``Summary.best``: what checkpoints are chosen by and sweepers maximize
OPTIMIZED_METRIC = "val/elbo"


class Status(str, Enum):
    """A run's status in ``summary.json``."""

    RUNNING = "running"  # started; also what a run killed hard (SIGKILL, out of memory) leaves behind
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # stopped by SIGINT or SIGTERM; resumable

    @property
    def unfinished(self) -> bool:
        """Neither completed nor failed: a run that `resume=true` continues."""
        return self in (Status.RUNNING, Status.INTERRUPTED)


class SummaryError(ValueError):
    """A ``summary.json`` that cannot be read as a summary; the message is one line."""


#: fields written as null rather than left out, for the status that has them
_NULL_KEPT = {Status.COMPLETED: ("best_checkpoint",), Status.INTERRUPTED: ("checkpoint",)}


@dataclass
class Summary:
    """The contents of ``summary.json``, one field per key, in the order written.

    ``run_dir`` and ``overrides`` (Hydra's task overrides) say which run it is; ``resumed_from``, the
    checkpoint a resumed run started from. A completed run adds its final ``metrics``, ``best``
    (``{"val/elbo": ...}``), ``best_checkpoint``, ``steps``, ``epochs`` and ``duration_s``; a failed one
    ``steps``, ``duration_s`` and ``error`` (``"Type: message"``); an interrupted one these and
    ``checkpoint``, the newest checkpoint (``error`` is the signal's name). ``duration_s`` of a resumed run
    counts its earlier segments too (:meth:`earlier_duration`). ``code``, one entry per segment, says
    which code ran (:func:`~vae_lab.runs.provenance.code_record`). Fields that do not apply are left out
    of the file.
    """

    status: Status
    run_dir: str
    overrides: list[str] = field(default_factory=list)
    resumed_from: str | None = None
    metrics: dict[str, float] | None = None
    best: dict[str, float] | None = None
    best_checkpoint: str | None = None
    steps: int | None = None
    epochs: int | None = None
    duration_s: float | None = None
    error: str | None = None
    checkpoint: str | None = None
    code: list[dict[str, Any]] | None = None

    # -- the train task's record ---------------------------------------------------------------------
    @classmethod
    def start(cls, run_dir: Path, overrides: list[str], resuming: bool = False) -> Summary:
        """A run starting in ``run_dir``: status ``running``, the code of this segment after those of the
        earlier segments (``resuming``), written at once."""
        from vae_lab.runs.provenance import code_record

        earlier: list[dict[str, Any]] = []
        if resuming:
            try:
                previous = read_summary(run_dir)
            except SummaryError:
                previous = None
            if previous is not None and isinstance(previous.code, list):
                earlier = list(previous.code)
        summary = cls(Status.RUNNING, str(run_dir), list(overrides), code=[*earlier, code_record()])
        summary.write()
        return summary

    @staticmethod
    def earlier_duration(run_dir: Path) -> float:
        """Seconds the run in ``run_dir`` trained before it stopped (its ``duration_s`` as interrupted or
        failed), which a resumed run adds to its own: ``duration_s`` is the run's wall time over all its
        segments. 0 where there is no such record."""
        try:
            previous = read_summary(run_dir)
        except SummaryError:
            return 0.0
        if previous is None or previous.status == Status.COMPLETED or previous.duration_s is None:
            return 0.0
        return float(previous.duration_s)

    def complete(self, **values: Any) -> None:
        """Status ``completed`` with ``values`` (metrics, best, best_checkpoint, steps, ...); written."""
        self._finish(Status.COMPLETED, **values)

    def fail(self, error: str, **values: Any) -> None:
        """Status ``failed`` with the ``error`` line; written."""
        self._finish(Status.FAILED, error=error, **values)

    def interrupt(self, signal_name: str, checkpoint: Path | None, **values: Any) -> None:
        """Status ``interrupted`` by ``signal_name``, resumable from ``checkpoint``; written."""
        where = str(checkpoint) if checkpoint else None
        self._finish(Status.INTERRUPTED, error=signal_name, checkpoint=where, **values)

    def _finish(self, status: Status, **values: Any) -> None:
        self.status = status
        for name, value in values.items():
            if name not in _FIELDS:
                raise TypeError(f"summary.json has no field {name!r}")
            setattr(self, name, value)
        self.write()

    @property
    def best_score(self) -> float | None:
        """The run's best ``val/elbo`` (None: not recorded)."""
        value = (self.best or {}).get(OPTIMIZED_METRIC)
        return float(value) if isinstance(value, (int, float)) else None

    # -- the file --------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        kept = _NULL_KEPT.get(self.status, ())
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["status"] = self.status.value
        return {k: v for k, v in data.items() if v is not None or k in kept}

    @classmethod
    def from_dict(cls, data: Any) -> Summary:
        """A summary from the parsed JSON; keys it does not know are ignored. Raises SummaryError."""
        if not isinstance(data, dict):
            raise SummaryError("not a JSON object")
        try:
            status = Status(data.get("status"))
        except ValueError:
            raise SummaryError(f"unknown status {data.get('status')!r}") from None
        values = {k: v for k, v in data.items() if k in _FIELDS and k != "status"}
        values.setdefault("run_dir", "")
        return cls(status=status, **values)

    def write(self) -> None:
        write_json(Path(self.run_dir) / SUMMARY, self.to_dict())


_FIELDS = frozenset(f.name for f in fields(Summary))


def read_summary(run_dir: Path) -> Summary | None:
    """The summary of the run in ``run_dir``; None where it has none. Raises :class:`SummaryError` for a
    file that cannot be read as one (the message says why)."""
    path = Path(run_dir) / SUMMARY
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SummaryError(" ".join(str(err).split())) from err
    return Summary.from_dict(data)


def status_of(run_dir: Path) -> Status | None:
    """The status of the run in ``run_dir``; None where its summary is missing or unreadable."""
    try:
        summary = read_summary(run_dir)
    except SummaryError:
        return None
    return summary.status if summary is not None else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def run_overrides(run_dir: Path) -> list[str] | None:
    """The task overrides a run was started with: Hydra's ``.hydra/overrides.yaml``, else summary.json's."""
    try:
        overrides = yaml.safe_load((Path(run_dir) / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        try:
            summary = read_summary(run_dir)
        except SummaryError:
            summary = None
        overrides = summary.overrides if summary is not None else None
    return [str(o) for o in overrides] if isinstance(overrides, list) else None


def task_overrides() -> list[str]:
    """The task overrides of the Hydra job running now (``[]`` outside one)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []
