"""Locating the run (or sweep) that ``resume=`` continues, by the overrides it was started with.

``resume=true`` takes the most recent run under ``outputs/<date>/<time>/`` (a sweep under
``outputs/multirun/``) started with the same overrides, ``resume`` aside (:func:`find_run`,
:func:`find_sweep`); ``resume=<dir>`` checks the run there (:func:`check_run`). Inside a job,
:func:`completed_run` tells whether the run in its directory has finished already.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from vae_lab.errors import ConfigError
from vae_lab.runs.summary import (
    SUMMARY,
    Status,
    Summary,
    SummaryError,
    read_summary,
    run_overrides,
    status_of,
)

KEY = "resume"
OUTPUTS = Path("outputs")  # where conf/hydra/default.yaml puts runs, relative to the working directory
MULTIRUN = OUTPUTS / "multirun"


class ResumeError(ConfigError):
    """Nothing (or not the right thing) to resume; the message is one line naming ``resume``."""

    def __init__(self, detail: str) -> None:
        super().__init__(KEY, "", detail=detail)


@dataclass
class Found:
    """A run (or sweep) directory to continue, its status and the overrides it was started with."""

    path: Path
    status: Status | None
    overrides: list[str]

    @property
    def completed(self) -> bool:
        return self.status is Status.COMPLETED


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


def without_resume(overrides: Iterable[str]) -> list[str]:
    return [o for o in overrides if not o.startswith(f"{KEY}=")]


def sweep_overrides(sweep_dir: Path) -> list[str] | None:
    """The task overrides of a sweep, from the ``multirun.yaml`` Hydra writes in its directory."""
    try:
        config = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())
        overrides = config["hydra"]["overrides"]["task"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return [str(o) for o in overrides] if isinstance(overrides, list) else None


def mtime(path: Path) -> float:
    """When ``path`` was last modified (0 where it is missing): how recent a run or a checkpoint is."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _shown(overrides: Sequence[str]) -> str:
    return " ".join(without_resume(overrides)) or "(no overrides)"


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
            matches.append(Found(run_dir, status_of(run_dir), stored))
    if not matches:
        raise ResumeError(
            f"{KEY}=true: no run under {root}/<date>/<time>/ was started with the overrides "
            f"{_shown(overrides)!r}; give the directory with {KEY}=<run dir>"
        )
    recency = {m.path: max(mtime(m.path / SUMMARY), mtime(m.path / ".hydra")) for m in matches}
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
    given = without_resume(overrides)
    if given and canonical(given) != canonical(stored):
        raise ResumeError(
            f"{KEY}={run_dir}: that run was started with {_shown(stored)!r}, not {_shown(given)!r}; "
            "give the same overrides, or none"
        )
    return Found(run_dir, status_of(run_dir), stored)


def find_sweep(overrides: Sequence[str], sweep_dir: Path | None, root: Path = MULTIRUN) -> Found:
    """The sweep directory to continue: ``sweep_dir`` (checked against its multirun.yaml), or the most
    recent one under ``root`` started with these overrides (``resume`` aside)."""
    given = without_resume(overrides)
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
    return max(matches, key=lambda m: (mtime(m.path / "multirun.yaml"), str(m.path)))


def completed_run(run_dir: Path, overrides: Sequence[str]) -> Summary | None:
    """For a job with ``resume`` set: the summary of the run that completed in its directory (the job
    then does not train again), else None. A run there started with other overrides is an error."""
    try:
        previous = read_summary(run_dir)
    except SummaryError:  # unreadable: nothing completed there
        return None
    if previous is None:
        return None
    if canonical(previous.overrides) != canonical(overrides):
        raise ResumeError(
            f"{KEY}: the run in {run_dir} was started with other overrides: {_shown(previous.overrides)}"
        )
    return previous if previous.status is Status.COMPLETED else None
