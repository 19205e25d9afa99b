"""`vae-lab report DIR [DIR ...]`: aggregate the jobs of one or more sweeps into tables and plots.

One module per concern:

* :mod:`~vae_lab.report.loading`: run directories -> a :class:`Sweep` (``jobs``, one row per job with its
  overrides, status and final metrics; ``curves``, the learning curves in long form);
* :mod:`~vae_lab.report.statistics`: mean, sample standard deviation (ddof = 1) and n over seeds per
  group (:func:`summarize`); failed and unfinished jobs are counted, never used;
* :mod:`~vae_lab.report.tables`: the markdown tables (``summary.md``, the two-way ``--columns`` tables);
* :mod:`~vae_lab.report.plots`: ``curves.png``, ``grad_variance.png``, ``final.png``;
* :mod:`~vae_lab.report.command`: the command line (:func:`main`) and :func:`write_report`, which writes
  ``summary.csv``, ``jobs.csv``, ``summary.md`` and the plots.
"""

from vae_lab.report.command import Report, build_parser, main, write_report
from vae_lab.report.loading import (
    BEST_PREFIX,
    COMPLETED,
    IGNORED_KEYS,
    ReportError,
    Sweep,
    find_jobs,
    group_label,
    is_ignored,
    load,
    parse_override,
    read_job,
)
from vae_lab.report.plots import PLOTS, plot_curves, plot_final, plot_grad_variance
from vae_lab.report.statistics import DEFAULT_METRICS, GRAD_VAR, default_metrics, mean_std, summarize
from vae_lab.report.tables import format_mean_std, markdown_report, markdown_table, pivot_table

__all__ = [
    "BEST_PREFIX",
    "COMPLETED",
    "DEFAULT_METRICS",
    "GRAD_VAR",
    "IGNORED_KEYS",
    "PLOTS",
    "Report",
    "ReportError",
    "Sweep",
    "build_parser",
    "default_metrics",
    "find_jobs",
    "format_mean_std",
    "group_label",
    "is_ignored",
    "load",
    "main",
    "markdown_report",
    "markdown_table",
    "mean_std",
    "parse_override",
    "pivot_table",
    "plot_curves",
    "plot_final",
    "plot_grad_variance",
    "read_job",
    "summarize",
    "write_report",
]
