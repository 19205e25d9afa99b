"""`vae-lab report DIR [DIR ...]`: argument parsing and :func:`write_report`, which loads the jobs
(:mod:`~vae_lab.report.loading`), summarizes them (:mod:`~vae_lab.report.statistics`) and writes
``summary.csv``, ``jobs.csv``, ``summary.md`` (:mod:`~vae_lab.report.tables`) and the plots
(:mod:`~vae_lab.report.plots`) into one directory."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vae_lab.errors import one_line
from vae_lab.report.loading import IGNORED_KEYS, ReportError, Sweep, load
from vae_lab.report.plots import PLOTS, plot_curves, plot_final, plot_final_by, plot_grad_variance
from vae_lab.report.statistics import DEFAULT_METRICS, default_metrics, summarize
from vae_lab.report.tables import check_columns, markdown_report


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
        check_columns(sweep, columns)
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
        if plot_curves(sweep, out_dir / "curves.png", columns):
            made.append("curves.png")
        if plot_grad_variance(sweep, out_dir / "grad_variance.png", columns):
            made.append("grad_variance.png")
        final = out_dir / "final.png"
        if (
            plot_final_by(sweep, table, metrics, columns, final)
            if columns
            else plot_final(sweep, table, metrics, final)
        ):
            made.append("final.png")
    markdown = markdown_report(sweep, table, metrics, [str(d) for d in dirs], made, columns)
    (out_dir / "summary.md").write_text(markdown)
    written += ["summary.md", *made]
    return Report(sweep=sweep, table=table, metrics=metrics, markdown=markdown, out=out_dir, written=written)


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
        f"{', '.join(DEFAULT_METRICS)} and mean/grad/var/<group> (the mean of the gradient-variance "
        "measurements over training). Failed jobs (status failed) and "
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
        "(e.g. model.latent_dim), one row per value of the others; final.png then draws each "
        "metric against it, one line per row",
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
        print(f"vae-lab report: error: {one_line(err)}", file=sys.stderr)
        return 1
    print(report.markdown, end="")
    print(f"vae-lab report: wrote {', '.join(report.written)} in {report.out}", file=sys.stderr)
    return 0
