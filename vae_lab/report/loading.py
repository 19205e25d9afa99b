"""Reading run directories into one tidy frame: :func:`load` gives a :class:`Sweep`.

A *job* is a run directory as ``vae-lab train`` leaves it (DESIGN.md section 5): ``summary.json``
(status, final metrics, best ``val/elbo``, error), ``metrics.csv`` (Lightning's CSVLogger, one row per
logged step) and ``.hydra/overrides.yaml``. Jobs are found recursively under each DIR (a multirun
directory, a date directory, ``outputs/`` or single run directories): every folder holding a
``summary.json`` or a ``.hydra/`` folder is one job, so a job that died before writing its summary is
still found and reported as unfinished.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from vae_lab.errors import one_line
from vae_lab.runs.provenance import code_label
from vae_lab.runs.summary import SUMMARY, Status, SummaryError, read_summary, run_overrides

# Overrides that do not define an experimental condition: jobs that differ only in these share a group.
# `seed` is what the statistics run over; the others change where files go, how many threads or processes
# run, or what is shown while running, never the numbers.
IGNORED_KEYS: tuple[str, ...] = (
    "seed",
    "resume",
    "threads",
    "hydra",
    "paths",
    "callbacks.progress_bar",
    "trainer.enable_progress_bar",
    "callbacks.grad_variance.compare",  # measures other estimators too; training is the same bit for bit
)
COMPLETED = Status.COMPLETED.value
MISSING = "missing"  # a job without summary.json (yet); unfinished, as a running one
UNREADABLE = "unreadable"  # a summary.json that cannot be read; failed
UNFINISHED_STATUSES = (MISSING, *(status.value for status in Status if status.unfinished))
BEST_PREFIX = "best/"  # summary.json's "best" entries, e.g. best/val/elbo: the best val/elbo of the run
# mean/grad/var/<group>: the mean of a run's gradient-variance measurements over its training (the probe's
# grad/var/<group>, one every callbacks.grad_variance.every_n_steps): an estimator's variance over the whole
# trajectory, where the final value is one measurement
MEAN_PREFIX = "mean/"
EPOCHS, MINUTES = "epochs", "minutes"  # of a completed run, from summary.json


class ReportError(Exception):
    """A problem with the user's input, reported as one line (exit status 2)."""


@dataclass
class Sweep:
    """The jobs found under some directories.

    ``jobs``: one row per job: ``job`` (its path relative to the common root), ``path``, ``status``
    (summary.json's, or ``missing``/``unreadable``), ``outcome`` (completed / failed / unfinished),
    ``error``, ``seed``, ``group`` (a label), the overrides (key -> value, leading ``+`` stripped), the
    final metrics and ``best/<metric>``. ``curves``: ``job, step, epoch, metric, value``, NaNs dropped.
    ``keys``: the override keys that tell the groups apart; ``common``: overrides shared by every job.
    """

    jobs: pd.DataFrame
    curves: pd.DataFrame
    keys: list[str] = field(default_factory=list)
    common: dict[str, str] = field(default_factory=dict)
    override_keys: list[str] = field(default_factory=list)
    metric_names: list[str] = field(default_factory=list)

    @property
    def completed(self) -> pd.DataFrame:
        return self.jobs[self.jobs["outcome"] == COMPLETED]

    @property
    def groups(self) -> list[str]:
        """The group labels, ordered by their override values (numbers numerically)."""
        firsts = self.jobs.drop_duplicates("group")
        if self.keys:
            firsts = firsts.sort_values(self.keys, key=lambda col: col.map(natural_value), kind="stable")
        return list(firsts["group"])

    def color(self, group: str) -> str:
        """One colour per group, the same in every plot."""
        return f"C{self.groups.index(group) % 10}"


def natural_value(value: Any) -> tuple[int, float, str]:
    """A sort key: numbers (also as text) numerically, before everything else as text."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def find_jobs(dirs: Iterable[str | os.PathLike]) -> list[Path]:
    """Every job directory under ``dirs`` (sorted, without duplicates); ReportError names a bad DIR."""
    found: set[Path] = set()
    for given in dirs:
        root = Path(given)
        if not root.exists():
            raise ReportError(f"{given}: no such directory")
        if not root.is_dir():
            raise ReportError(f"{given}: not a directory")
        here = {p.parent for p in root.rglob("summary.json")}
        here |= {p.parent for p in root.rglob(".hydra") if p.is_dir()}
        if (root / "summary.json").is_file() or (root / ".hydra").is_dir():
            here.add(root)
        if not here:
            raise ReportError(f"{given}: no runs found (no summary.json or .hydra/ under it)")
        found |= {p.resolve() for p in here}
    return sorted(found, key=_natural_key)


def _natural_key(path: Path) -> list[Any]:
    """Sort job 10 after job 9."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def parse_override(text: str) -> tuple[str, str]:
    """``+debug=fast`` -> ("debug", "fast"); ``~key`` -> ("key", "<deleted>")."""
    text = str(text).strip()
    deleted = text.startswith("~")
    key, _, value = text.lstrip("+~").partition("=")
    return key.strip(), "<deleted>" if deleted else value.strip()


def is_ignored(key: str) -> bool:
    """Whether ``key`` is in :data:`IGNORED_KEYS` or under one of them (``hydra.launcher.n_jobs``,
    ``hydra/launcher``, ``paths.data_dir``)."""
    return any(key == k or key.startswith((f"{k}.", f"{k}/", f"{k}@")) for k in IGNORED_KEYS)


def read_job(path: Path) -> tuple[dict[str, Any], dict[str, str], pd.DataFrame]:
    """One job: (record, overrides, curves). Never raises on a damaged job; the record says what is wrong."""
    record: dict[str, Any] = {"path": str(path), "status": MISSING, "error": f"no {SUMMARY}"}
    try:
        summary = read_summary(path)
    except SummaryError as err:
        summary = None
        record.update(status=UNREADABLE, error=f"{SUMMARY} unreadable: {one_line(err, sep=' ')}")
    if summary is not None:
        record.update(status=summary.status.value, error=one_line(summary.error or "", sep=" "))

    overrides = dict(parse_override(o) for o in run_overrides(path) or [])
    record["seed"] = _seed(path, overrides)

    curves = _read_curves(path)
    final: dict[str, float] = {}
    if not curves.empty:  # the last logged value of each column: a fallback for what summary.json lacks
        last = curves.sort_values("step", kind="stable").groupby("metric")["value"].last()
        final.update(last.to_dict())
        if "val/elbo" in last.index:
            final[f"{BEST_PREFIX}val/elbo"] = float(curves.loc[curves["metric"] == "val/elbo", "value"].max())
        record["last_step"] = int(curves["step"].max())
        variances = curves[curves["metric"].str.startswith("grad/var/")]
        for metric, values in variances.groupby("metric")["value"]:
            final[f"{MEAN_PREFIX}{metric}"] = float(values.mean())
    if summary is not None:
        for prefix, entry in (("", summary.metrics), (BEST_PREFIX, summary.best)):
            if isinstance(entry, dict):
                final.update({f"{prefix}{k}": _float(v) for k, v in entry.items()})
        for key in ("steps", "epochs", "duration_s"):
            if getattr(summary, key) is not None:
                record[key] = getattr(summary, key)
        if isinstance(summary.code, list) and summary.code:  # the code of each segment, in order
            record["code"] = ", ".join(dict.fromkeys(code_label(c) for c in summary.code))
        if summary.status.value == COMPLETED:  # what a run cost: epochs trained, wall minutes (all segments)
            if summary.epochs is not None:
                final[EPOCHS] = _float(summary.epochs)
            if summary.duration_s is not None:
                final[MINUTES] = _float(summary.duration_s) / 60.0
    record["metrics"] = final
    return record, overrides, curves


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _seed(path: Path, overrides: dict[str, str]) -> Any:
    value: Any = overrides.get("seed")
    if value is None:
        try:  # not overridden: the composed config's
            value = (yaml.safe_load((path / ".hydra" / "config.yaml").read_text()) or {}).get("seed")
        except (OSError, yaml.YAMLError, AttributeError):
            value = None
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def _read_curves(path: Path) -> pd.DataFrame:
    columns = ["step", "epoch", "metric", "value"]
    csv = path / "metrics.csv"
    if not csv.is_file():
        return pd.DataFrame(columns=columns)
    try:
        frame = pd.read_csv(csv)
    except (OSError, ValueError, pd.errors.ParserError):
        return pd.DataFrame(columns=columns)
    if "step" not in frame:
        return pd.DataFrame(columns=columns)
    if "epoch" not in frame:
        frame["epoch"] = np.nan
    long = frame.melt(id_vars=["step", "epoch"], var_name="metric", value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    return long.dropna(subset=["value"]).reset_index(drop=True)[columns]


def _outcome(status: str) -> str:
    """completed, unfinished (running, interrupted, no summary.json yet) or failed (failed, unreadable)."""
    if status == COMPLETED:
        return COMPLETED
    return "unfinished" if status in UNFINISHED_STATUSES else "failed"


def load(dirs: Iterable[str | os.PathLike]) -> Sweep:
    """Read every job under ``dirs`` (see :func:`find_jobs`) into a :class:`Sweep`."""
    paths = find_jobs(dirs)
    base = Path(os.path.commonpath([str(p) for p in paths]))
    if base in paths:  # one job given: name it by its folder
        base = base.parent
    rows, all_overrides, curve_frames = [], [], []
    for path in paths:
        record, overrides, curves = read_job(path)
        record["job"] = os.path.relpath(path, base)
        record["outcome"] = _outcome(record["status"])
        rows.append(record)
        all_overrides.append(overrides)
        if not curves.empty:
            curve_frames.append(curves.assign(job=record["job"]))

    # seed has a column of its own (an int, also where the config's default was used)
    override_keys = sorted({k for o in all_overrides for k in o} - {"seed"}, key=_key_order)
    kept = [k for k in override_keys if not is_ignored(k)]
    values = {k: {o.get(k, "") for o in all_overrides} for k in kept}
    keys = [k for k in kept if len(values[k]) > 1]
    common = {k: next(iter(values[k])) for k in kept if len(values[k]) == 1}

    metric_names = sorted({m for r in rows for m in r["metrics"]})
    records = []
    for record, overrides in zip(rows, all_overrides, strict=True):
        metrics = record.pop("metrics")
        flat = {**{k: overrides.get(k, "") for k in override_keys}, **record}
        flat.update({m: metrics.get(m, math.nan) for m in metric_names})
        flat["group"] = group_label({k: overrides.get(k, "") for k in keys})
        records.append(flat)
    leading = ["job", "group", "status", "outcome", "seed", *override_keys]
    jobs = pd.DataFrame.from_records(records)
    trailing = [c for c in jobs.columns if c not in leading]
    jobs = jobs[[c for c in leading if c in jobs.columns] + trailing]
    curves = (
        pd.concat(curve_frames, ignore_index=True)[["job", "step", "epoch", "metric", "value"]]
        if curve_frames
        else pd.DataFrame(columns=["job", "step", "epoch", "metric", "value"])
    )
    return Sweep(
        jobs=jobs,
        curves=curves,
        keys=keys,
        common=common,
        override_keys=override_keys,
        metric_names=metric_names,
    )


def _key_order(key: str) -> tuple[int, str]:
    """Config groups first in DESIGN.md's order, then the rest alphabetically."""
    order = ("experiment", "data", "model", "posterior", "prior", "estimator")
    head = key.split(".")[0].split("/")[0]
    return (order.index(head) if head in order else len(order), key)


def group_label(values: dict[str, str]) -> str:
    return " ".join(f"{k}={v if v != '' else '(default)'}" for k, v in values.items()) or "all jobs"
