"""`vae-lab report DIR [DIR ...]`: aggregate the jobs of one or more sweeps into tables and plots.

A *job* is a run directory as ``vae-lab train`` leaves it (DESIGN.md section 5): ``summary.json``
(status, final metrics, best ``val/elbo``, error), ``metrics.csv`` (Lightning's CSVLogger, one row per
logged step) and ``.hydra/overrides.yaml``. Jobs are found recursively under each DIR (a multirun
directory, a date directory, ``outputs/`` or single run directories): every folder holding a
``summary.json`` or a ``.hydra/`` folder is one job, so a job that died before writing its summary is
still found and reported as unfinished.

:func:`load` reads them into a :class:`Sweep`: ``jobs``, one row per job (the overrides as columns, the
status, the final metrics) and ``curves``, the learning curves in long form (job, step, epoch, metric,
value). :func:`summarize` groups the completed jobs by their overrides other than the ignored keys
(:data:`IGNORED_KEYS`: the seed and purely technical settings) and gives, per group and final metric,
the mean, the sample standard deviation (ddof = 1) over seeds and n. Failed and unfinished jobs never
enter the statistics and are never dropped either: they are counted per group and listed with their
error. :func:`write_report` writes ``summary.csv``, ``jobs.csv``, ``summary.md`` and the plots
``curves.png``, ``grad_variance.png`` and ``final.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from vae_lab.rundir import run_overrides

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
)
COMPLETED = "completed"
UNFINISHED_STATUSES = ("running", "interrupted", "missing")  # "missing": no summary.json (yet)
BEST_PREFIX = "best/"  # summary.json's "best" entries, e.g. best/val/elbo: the best val/elbo of the run
DEFAULT_METRICS = ("test/elbo", "test/nll", "test/perplexity", "best/val/elbo")
GRAD_VAR = re.compile(r"^grad/var/(.+)$")
PLOTS = ("curves.png", "grad_variance.png", "final.png")


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
            firsts = firsts.sort_values(self.keys, key=lambda col: col.map(_natural_value), kind="stable")
        return list(firsts["group"])

    def color(self, group: str) -> str:
        """One colour per group, the same in every plot."""
        return f"C{self.groups.index(group) % 10}"


# -- reading ---------------------------------------------------------------------------------------
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
    record: dict[str, Any] = {"path": str(path), "status": "missing", "error": ""}
    summary: dict[str, Any] = {}
    summary_path = path / "summary.json"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
            if not isinstance(summary, dict):
                raise ValueError("not a JSON object")
            record["status"] = str(summary.get("status", "unknown"))
            record["error"] = _one_line(summary.get("error") or "")
        except (OSError, ValueError) as err:
            summary = {}
            record.update(status="unreadable", error=f"summary.json unreadable: {_one_line(err)}")
    else:
        record["error"] = "no summary.json"

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
    for prefix, entry in (("", "metrics"), (BEST_PREFIX, "best")):
        if isinstance(summary.get(entry), dict):
            final.update({f"{prefix}{k}": _float(v) for k, v in summary[entry].items()})
    for key in ("steps", "epochs", "duration_s"):
        if key in summary:
            record[key] = summary[key]
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


# -- statistics ------------------------------------------------------------------------------------
def default_metrics(sweep: Sweep) -> list[str]:
    """test/elbo, test/nll, test/perplexity, best/val/elbo and the final grad/var/<group>, where present."""
    present = set(sweep.metric_names)
    names = [m for m in DEFAULT_METRICS if m in present]
    names += sorted(m for m in present if GRAD_VAR.match(m))
    if not names and "val/elbo" in present:
        names.append("val/elbo")
    return names


def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation with ddof = 1, n) of the finite values; std is NaN for n < 2."""
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = arr.size
    if n == 0:
        return math.nan, math.nan, 0
    return float(arr.mean()), float(arr.std(ddof=1)) if n > 1 else math.nan, n


def summarize(sweep: Sweep, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per group: its override values, ``n`` (completed jobs), ``failed``, ``unfinished``,
    ``seeds`` and, for each metric m, ``m_mean``, ``m_std`` (ddof = 1, over the completed jobs) and ``m_n``
    (completed jobs with a finite value of m)."""
    metrics = list(default_metrics(sweep) if metrics is None else metrics)
    jobs = sweep.jobs
    rows = []
    groups = jobs.groupby(sweep.keys, sort=False, dropna=False) if sweep.keys else [(None, jobs)]
    for _, group in groups:
        done = group[group["outcome"] == COMPLETED]
        row: dict[str, Any] = {k: group[k].iloc[0] for k in sweep.keys}
        row["group"] = group["group"].iloc[0]
        row["n"] = len(done)
        row["failed"] = int((group["outcome"] == "failed").sum())
        row["unfinished"] = int((group["outcome"] == "unfinished").sum())
        row["seeds"] = ",".join(str(s) for s in _sorted_seeds(done["seed"]))
        for m in metrics:
            mean, std, n = mean_std(done[m] if m in done else [])
            row[f"{m}_mean"], row[f"{m}_std"], row[f"{m}_n"] = mean, std, n
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame = frame.set_index("group", drop=False).loc[sweep.groups]
    return frame.reset_index(drop=True)


def _sorted_seeds(seeds: Iterable[Any]) -> list[Any]:
    return sorted((s for s in seeds if s is not None and s == s), key=_natural_value)


def _natural_value(value: Any) -> tuple[int, float, str]:
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


# -- tables ----------------------------------------------------------------------------------------
def _direction(metric: str) -> int:
    """+1 where higher is better, -1 where lower is, 0 where it is a matter of taste."""
    name = metric.removeprefix(BEST_PREFIX)
    if name.endswith(("elbo", "/snr")) or "/snr/" in name:
        return 1
    if name.endswith(("nll", "perplexity")) or "/var/" in name or name.endswith("/kl"):
        return -1
    return 0


def format_mean_std(mean: float, std: float) -> str:
    if not np.isfinite(mean):
        return "—"
    if not np.isfinite(std):
        return f"{mean:.5g}"
    return f"{mean:.5g} ± {std:.2g}"


def markdown_table(table: pd.DataFrame, sweep: Sweep, metrics: Sequence[str]) -> str:
    """The summary as a GitHub markdown table; the best mean of each metric in bold."""
    show_failed = bool(table["failed"].sum()) if len(table) else False
    show_unfinished = bool(table["unfinished"].sum()) if len(table) else False
    header = [*sweep.keys] if sweep.keys else ["group"]
    header += ["n"] + (["failed"] if show_failed else []) + (["unfinished"] if show_unfinished else [])
    header += ["seeds", *metrics]
    best: dict[str, float] = {}
    for m in metrics:
        col, sign = table.get(f"{m}_mean"), _direction(m)
        if col is not None and sign and col.dropna().nunique() > 1:  # no bold where all groups tie
            best[m] = col.max() if sign > 0 else col.min()
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for _, row in table.iterrows():
        cells = [str(row[k]) for k in sweep.keys] if sweep.keys else [row["group"]]
        cells.append(str(row["n"]))
        cells += [str(row["failed"])] if show_failed else []
        cells += [str(row["unfinished"])] if show_unfinished else []
        cells.append(row["seeds"] or "—")
        for m in metrics:
            text = format_mean_std(row[f"{m}_mean"], row[f"{m}_std"])
            if row[f"{m}_n"] not in (row["n"], 0):
                text += f" (n={row[f'{m}_n']})"
            if m in best and row[f"{m}_mean"] == best[m]:
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _check_columns(sweep: Sweep, column: str) -> None:
    if column not in sweep.keys:
        raise ReportError(
            f"--columns {column}: not an override that varies between groups; choose from: "
            f"{', '.join(sweep.keys) or '(none: a single group)'}"
        )


def pivot_table(table: pd.DataFrame, sweep: Sweep, metric: str, column: str) -> str:
    """``metric`` as a two-way markdown table: one column per value of the override ``column`` (in
    natural order: 2, 3, 5, 10), one row per combination of the other group keys; cells mean ± sd
    over seeds, the best of each column in bold. E.g. posterior x model.latent_dim for test/nll."""
    _check_columns(sweep, column)
    rows_keys = [k for k in sweep.keys if k != column]
    values = sorted(table[column].unique(), key=_natural_value)
    cells: dict[tuple[str, Any], tuple[float, float, int]] = {}
    for _, r in table.iterrows():
        label = " ".join(f"{k}={r[k]}" for k in rows_keys if r[k] != "") or "(all)"
        cells[label, r[column]] = (r[f"{metric}_mean"], r[f"{metric}_std"], r["n"])
    labels = list(dict.fromkeys(label for label, _ in cells))
    sign = _direction(metric)
    best = {}
    for v in values:
        means = [cells[lb, v][0] for lb in labels if (lb, v) in cells and np.isfinite(cells[lb, v][0])]
        if sign and len(set(means)) > 1:
            best[v] = max(means) if sign > 0 else min(means)
    lines = [
        f"{metric} by {column} (mean ± sd over seeds, n in brackets where it is not 1)",
        "",
        "| " + " | ".join([" ".join(rows_keys) or "group", *(f"{column}={v}" for v in values)]) + " |",
        "|" + "|".join("---" for _ in range(len(values) + 1)) + "|",
    ]
    for lb in labels:
        row = [lb]
        for v in values:
            if (lb, v) not in cells:
                row.append("")
                continue
            mean, std, n = cells[lb, v]
            text = format_mean_std(mean, std) + (f" ({n})" if n != 1 else "")
            row.append(f"**{text}**" if v in best and mean == best[v] else text)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def _job_line(row: pd.Series, sweep: Sweep) -> str:
    what = " ".join(f"{k}={row[k]}" for k in sweep.keys if row[k] != "")
    seed = f" seed={row['seed']}" if row.get("seed") is not None and row["seed"] == row["seed"] else ""
    detail = row["status"] if row["status"] != "missing" else "no summary.json"
    if row["error"] and row["error"] != "no summary.json":
        detail += f": {row['error']}"
    if row["outcome"] == "unfinished" and "last_step" in row and row["last_step"] == row["last_step"]:
        detail += f" (last logged step {int(row['last_step'])})"
    label = f" ({(what + seed).strip()})" if (what + seed).strip() else ""
    return f"- `{row['job']}`{label}: {detail}"


def markdown_report(
    sweep: Sweep,
    table: pd.DataFrame,
    metrics: Sequence[str],
    dirs: Sequence[str],
    plots: Sequence[str] = (),
    columns: str | None = None,
) -> str:
    counts = sweep.jobs["outcome"].value_counts()
    n_jobs, n_groups = len(sweep.jobs), len(table)
    lines = [
        "# vae-lab report",
        "",
        f"{n_jobs} job{'s' * (n_jobs != 1)} in {n_groups} group{'s' * (n_groups != 1)}: "
        f"{counts.get(COMPLETED, 0)} completed, {counts.get('failed', 0)} failed, "
        f"{counts.get('unfinished', 0)} unfinished. From: {', '.join(str(d) for d in dirs)}",
        "",
        f"Groups: the overrides other than {', '.join(IGNORED_KEYS)} (ignored). Values: mean ± sample "
        "standard deviation (ddof = 1) over the completed jobs of a group; n counts them. "
        f"`{BEST_PREFIX}val/elbo` is a run's best validation ELBO; other metrics are final values. "
        "Best mean per metric in bold.",
    ]
    if sweep.common:
        lines += ["", "Common to all jobs: " + " ".join(f"`{k}={v}`" for k, v in sweep.common.items())]
    lines += ["", markdown_table(table, sweep, metrics) if metrics or len(table) else "(no groups)"]
    if columns:
        for m in metrics:
            lines += ["", pivot_table(table, sweep, m, columns)]
    for outcome, title in (("failed", "Failed jobs"), ("unfinished", "Unfinished jobs")):
        bad = sweep.jobs[sweep.jobs["outcome"] == outcome]
        if len(bad):
            lines += ["", f"## {title} ({len(bad)})", ""]
            lines += [_job_line(row, sweep) for _, row in bad.iterrows()]
    if plots:
        lines += ["", "Plots: " + ", ".join(plots)]
    return "\n".join(lines) + "\n"


# -- plots -----------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _group_curves(sweep: Sweep, metric: str) -> list[tuple[str, pd.DataFrame]]:
    """Per group (completed jobs): step, mean, std, n of ``metric`` over seeds."""
    done = sweep.completed[["job", "group"]]
    curves = sweep.curves[sweep.curves["metric"] == metric].merge(done, on="job")
    out = []
    for label in sweep.groups:
        part = curves[curves["group"] == label]
        if part.empty:
            continue
        per_job = part.groupby(["job", "step"], as_index=False)["value"].mean()
        stats = per_job.groupby("step")["value"].agg(["mean", "std", "count"]).reset_index()
        out.append((label, stats))
    return out


def _line_with_band(ax, stats: pd.DataFrame, label: str, color: str) -> None:
    (line,) = ax.plot(
        stats["step"],
        stats["mean"],
        marker="o" if len(stats) < 20 else None,
        ms=3,
        color=color,
        label=f"{label} (n={int(stats['count'].max())})",
    )
    band = stats["count"] > 1
    if band.any():
        lo = stats["mean"] - stats["std"].fillna(0)
        hi = stats["mean"] + stats["std"].fillna(0)
        ax.fill_between(stats["step"][band], lo[band], hi[band], color=line.get_color(), alpha=0.2, lw=0)


def plot_curves(sweep: Sweep, path: Path) -> bool:
    """train/elbo and val/elbo against step: mean over seeds per group, band of ± 1 std."""
    metrics = [m for m in ("train/elbo", "val/elbo") if (sweep.curves["metric"] == m).any()]
    series = {m: _group_curves(sweep, m) for m in metrics}
    metrics = [m for m in metrics if series[m]]
    if not metrics:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.2), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        for label, stats in series[m]:
            _line_with_band(ax, stats, label, sweep.color(label))
        ax.set(xlabel="step", ylabel=f"{m} (nats per data point)", title=f"{m}: mean ± std over seeds")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize="small", loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_grad_variance(sweep: Sweep, path: Path) -> bool:
    """grad/var/<parameter group> against step, one panel per parameter group, one line per run group
    (estimator, family, ...), log scale."""
    names = sorted(m for m in sweep.curves["metric"].unique() if GRAD_VAR.match(str(m)))
    series = {m: _group_curves(sweep, m) for m in names}
    # a group with no positive variance (e.g. a frozen prior) has nothing to draw on a log scale
    names = [m for m in names if any((stats["mean"] > 0).any() for _, stats in series[m])]
    if not names:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.2), squeeze=False)
    for ax, m in zip(axes[0], names, strict=True):
        for label, stats in series[m]:
            stats = stats[stats["mean"] > 0]
            if len(stats):
                _line_with_band(ax, stats, label, sweep.color(label))
        ax.set_yscale("log")
        ax.set(xlabel="step", ylabel="gradient variance", title=f"{m}: mean ± std over seeds")
        ax.grid(alpha=0.3, which="both")
    axes[0][-1].legend(fontsize="small", loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_final(sweep: Sweep, table: pd.DataFrame, metrics: Sequence[str], path: Path) -> bool:
    """One panel per final metric: the group means with ± 1 std error bars."""
    metrics = [m for m in metrics if f"{m}_mean" in table and table[f"{m}_mean"].notna().any()]
    if not metrics or table.empty:
        return False
    plt = _pyplot()
    width = max(4.0, 0.6 * len(table) + 2)
    fig, axes = plt.subplots(1, len(metrics), figsize=(width * len(metrics), 4.5), squeeze=False)
    x = np.arange(len(table))
    for ax, m in zip(axes[0], metrics, strict=True):
        for i in x:
            ax.errorbar(
                x[i],
                table[f"{m}_mean"].iloc[i],
                yerr=np.nan_to_num(table[f"{m}_std"].iloc[i]),
                fmt="o",
                capsize=4,
                color=sweep.color(table["group"].iloc[i]),
            )
        ax.set_xlim(-0.5, len(table) - 0.5)
        ax.set_xticks(x, table["group"], rotation=30, ha="right", fontsize="small")
        ax.set(title=m, ylabel=m)
        if GRAD_VAR.match(m.removeprefix(BEST_PREFIX)) and (table[f"{m}_mean"] > 0).all():
            ax.set_yscale("log")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# -- the command -----------------------------------------------------------------------------------
@dataclass
class Report:
    sweep: Sweep
    table: pd.DataFrame
    metrics: list[str]
    markdown: str
    out: Path
    written: list[str]


def write_report(
    dirs: Sequence[str],
    out: str | os.PathLike | None = None,
    metrics: Sequence[str] | None = None,
    plots: bool = True,
    columns: str | None = None,
) -> Report:
    """Load the jobs under ``dirs``, write summary.csv, jobs.csv, summary.md (and the plots) into ``out``
    (default: the first DIR). ``columns``: also a two-way table per metric with one column per value of
    that override (:func:`pivot_table`)."""
    sweep = load(dirs)
    if columns:
        _check_columns(sweep, columns)
    if metrics:
        unknown = [m for m in metrics if m not in sweep.metric_names]
        if unknown and sweep.metric_names:
            raise ReportError(
                f"--metric {unknown[0]}: no job has it; choose from: {', '.join(sweep.metric_names)}"
            )
        metrics = list(dict.fromkeys(metrics))
    else:
        metrics = default_metrics(sweep)
    table = summarize(sweep, metrics)
    out_dir = Path(out if out is not None else dirs[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    written = ["summary.csv", "jobs.csv"]
    table.to_csv(out_dir / "summary.csv", index=False)
    sweep.jobs.to_csv(out_dir / "jobs.csv", index=False)
    made: list[str] = []
    if plots:
        for name in PLOTS:
            (out_dir / name).unlink(missing_ok=True)  # never leave a stale plot from an earlier report
        if plot_curves(sweep, out_dir / "curves.png"):
            made.append("curves.png")
        if plot_grad_variance(sweep, out_dir / "grad_variance.png"):
            made.append("grad_variance.png")
        if plot_final(sweep, table, metrics, out_dir / "final.png"):
            made.append("final.png")
    markdown = markdown_report(sweep, table, metrics, [str(d) for d in dirs], made, columns)
    (out_dir / "summary.md").write_text(markdown)
    written += ["summary.md", *made]
    return Report(sweep=sweep, table=table, metrics=metrics, markdown=markdown, out=out_dir, written=written)


def _one_line(err: Any) -> str:
    return " ".join(str(err).split())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vae-lab report",
        description="Aggregate sweeps: read every job (summary.json, metrics.csv, .hydra/overrides.yaml) "
        "found under the DIRs, group the jobs by their overrides other than the seed, and write "
        "summary.csv (mean, sample std and n per group and metric), jobs.csv (one row per job), "
        "summary.md (the table, failed and unfinished jobs) and plots (curves.png, grad_variance.png, "
        "final.png). The markdown is printed too.",
        epilog=f"Ignored when grouping: {', '.join(IGNORED_KEYS)} (and everything under them, e.g. "
        "hydra.launcher.n_jobs). Default metrics, where present: "
        f"{', '.join(DEFAULT_METRICS)} and the final grad/var/<group>. Failed jobs (status failed) and "
        "unfinished ones (running, interrupted, no summary.json) are listed, never used in the statistics. "
        "Example: vae-lab report outputs/multirun/2024-05-01/12-00-00",
    )
    parser.add_argument(
        "dirs",
        nargs="+",
        metavar="DIR",
        help="a multirun directory, a date directory, outputs/, or run directories",
    )
    parser.add_argument("--out", metavar="DIR", help="where to write the report (default: the first DIR)")
    parser.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        dest="metrics",
        help="a final metric to tabulate (repeatable), e.g. test/elbo, best/val/elbo, "
        "grad/var/encoder; default: see below",
    )
    parser.add_argument("--no-plots", action="store_true", help="write the tables only")
    parser.add_argument(
        "--columns",
        metavar="KEY",
        help="also tabulate each metric two-way, one column per value of this override "
        "(e.g. model.latent_dim), one row per value of the others",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    try:
        report = write_report(
            args.dirs, args.out, args.metrics, plots=not args.no_plots, columns=args.columns
        )
    except ReportError as err:
        print(f"vae-lab report: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"vae-lab report: error: {_one_line(err)}", file=sys.stderr)
        return 1
    print(report.markdown, end="")
    print(f"vae-lab report: wrote {', '.join(report.written)} in {report.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
