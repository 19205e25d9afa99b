"""Tables in markdown: the summary per group (:func:`markdown_table`), the two-way table of one metric
over the values of one override (:func:`pivot_table`, ``--columns``) and the whole ``summary.md``
(:func:`markdown_report`, with the failed and unfinished jobs listed). The CSV tables are the frames of
:mod:`vae_lab.report.loading` and :mod:`vae_lab.report.statistics`, written as they are."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from vae_lab.report.loading import (
    BEST_PREFIX,
    COMPLETED,
    IGNORED_KEYS,
    MEAN_PREFIX,
    ReportError,
    Sweep,
    natural_value,
)


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


def check_columns(sweep: Sweep, column: str) -> None:
    if column not in sweep.keys:
        raise ReportError(
            f"--columns {column}: not an override that varies between groups; choose from: "
            f"{', '.join(sweep.keys) or '(none: a single group)'}"
        )


def by_column(
    table: pd.DataFrame, sweep: Sweep, metric: str, column: str
) -> tuple[list[str], list[Any], dict[tuple[str, Any], tuple[float, float, int]]]:
    """``metric`` split by the values of the override ``column``: the row labels (the other group keys,
    ``key=value ...``, in the table's order), the column's values in natural order (2, 3, 5, 10) and the
    cells ``(label, value) -> (mean, std, n)`` that exist."""
    check_columns(sweep, column)
    values = sorted(table[column].unique(), key=natural_value)
    cells: dict[tuple[str, Any], tuple[float, float, int]] = {}
    for _, r in table.iterrows():
        cells[row_label(r, sweep, column), r[column]] = (r[f"{metric}_mean"], r[f"{metric}_std"], r["n"])
    return list(dict.fromkeys(label for label, _ in cells)), values, cells


def row_label(record: pd.Series, sweep: Sweep, column: str) -> str:
    """The label of a group's row in the two-way tables of ``column``: its other keys, ``key=value ...``."""
    return " ".join(f"{k}={record[k]}" for k in sweep.keys if k != column and record[k] != "") or "(all)"


def split_groups(sweep: Sweep, column: str) -> dict[str, tuple[str, Any]]:
    """Each group's row label and value of ``column`` in the two-way tables, in the groups' order."""
    firsts = sweep.jobs.drop_duplicates("group").set_index("group")
    return {g: (row_label(firsts.loc[g], sweep, column), firsts.loc[g, column]) for g in sweep.groups}


def row_colors(sweep: Sweep, column: str) -> dict[str, str]:
    """One colour per row label of the two-way tables of ``column``, in the groups' order: the same in
    every plot of a report."""
    labels = dict.fromkeys(label for label, _ in split_groups(sweep, column).values())
    return {label: f"C{i % 10}" for i, label in enumerate(labels)}


def pivot_table(table: pd.DataFrame, sweep: Sweep, metric: str, column: str) -> str:
    """``metric`` as a two-way markdown table: one column per value of the override ``column`` (in
    natural order: 2, 3, 5, 10), one row per combination of the other group keys; cells mean ± sd
    over seeds, the best of each column in bold. E.g. posterior x model.latent_dim for test/nll."""
    labels, values, cells = by_column(table, sweep, metric, column)
    rows_keys = [k for k in sweep.keys if k != column]
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
        f"`{BEST_PREFIX}val/elbo` is a run's best validation ELBO, `{MEAN_PREFIX}grad/var/<group>` the "
        "mean of its gradient-variance measurements over training; other metrics are final values. "
        "Best mean per metric in bold.",
    ]
    if sweep.common:
        lines += ["", "Common to all jobs: " + " ".join(f"`{k}={v}`" for k, v in sweep.common.items())]
    if "code" in sweep.jobs and (versions := sweep.jobs["code"].dropna().value_counts()).size > 1:
        listed = ", ".join(f"`{code}` ({n} job{'s' * (n != 1)})" for code, n in versions.items())
        lines += ["", f"The jobs ran on {versions.size} versions of the code (jobs.csv's `code`): {listed}"]
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
