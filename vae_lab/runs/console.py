"""What vae-lab writes to the terminal besides its progress bar: the line of a sweep's finished job
(:func:`job_line`), and no advertisements (:class:`DropTips`)."""

from __future__ import annotations

import logging
from pathlib import Path

from vae_lab.runs.summary import SummaryError, read_summary


def job_line(run_dir: Path) -> str:
    """The line a sweep prints for a finished job: its status, best val/elbo, duration and directory,
    from its summary.json."""
    try:
        summary = read_summary(run_dir)
    except SummaryError:
        summary = None
    if summary is None:
        return f"vae-lab train: no summary; outputs in {run_dir}"
    parts = [summary.status.value]
    if summary.error:
        parts[0] += f" ({summary.error})"
    if summary.status.value == "interrupted":
        parts[0] += f" at step {summary.steps}"
        parts.append(
            f"resumes from {Path(summary.checkpoint).name}" if summary.checkpoint else "no checkpoint"
        )
    if summary.best_score is not None:
        parts.append(f"best val/elbo {summary.best_score:.4f}")
    if summary.duration_s is not None:
        minutes, seconds = divmod(float(summary.duration_s), 60)
        parts.append(f"{int(minutes)}:{seconds:04.1f}" if minutes else f"{seconds:.1f} s")
    return f"vae-lab train: {'; '.join(parts)}; outputs in {run_dir}"


class DropTips(logging.Filter):
    """Drops Lightning's tips that advertise its cloud products ("Tip: ... litlogger", "... litmodels"),
    which it logs at INFO in every run (``conf/hydra/job_logging/vae_lab.yaml`` sets this filter on
    Lightning's ``rank_zero`` logger, so they reach neither the terminal nor train.log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return not ("Tip:" in text and ("litlogger" in text or "litmodels" in text))
