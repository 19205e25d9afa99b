"""The run directory (DESIGN.md section 5) and everything that keeps it: one module per concern.

* :mod:`~vae_lab.runs.summary`: ``summary.json``: :class:`Status`, :class:`Summary`, reading and
  writing it, the overrides a run was started with;
* :mod:`~vae_lab.runs.signals`: SIGINT/SIGTERM stop a run at a step boundary (:class:`StopSignals`,
  :class:`Interrupted`);
* :mod:`~vae_lab.runs.locate`: which run or sweep ``resume=`` continues (:func:`find_run`, ...);
* :mod:`~vae_lab.runs.command`: ``resume=`` on the command line, and the command that continues a run;
* :mod:`~vae_lab.runs.checkpoints`: the checkpoint a run resumes from (:class:`InterruptCheckpoint`,
  :class:`ResumePoint`);
* :mod:`~vae_lab.runs.resume_state`: what checkpoints hold beyond Lightning's state (:class:`ResumeState`);
* :mod:`~vae_lab.runs.logs`: metrics.csv and TensorBoard continued by a resumed run (:class:`CSVLogger`);
* :mod:`~vae_lab.runs.sweep`: the last line of a sweep (:class:`SweepStatus`).

The names of the modules that need Lightning are imported on first use, so that the CLI settles
``resume=`` (and its errors) before Lightning loads.
"""

from __future__ import annotations

import importlib
from typing import Any

from vae_lab.runs.locate import Found, ResumeError, canonical, check_run, completed_run, find_run, find_sweep
from vae_lab.runs.signals import Interrupted, StopSignals
from vae_lab.runs.summary import (
    OPTIMIZED_METRIC,
    SUMMARY,
    Status,
    Summary,
    SummaryError,
    read_summary,
    run_overrides,
    task_overrides,
    write_json,
)

_LAZY = {
    "CSVLogger": "logs",
    "InterruptCheckpoint": "checkpoints",
    "ResumePoint": "checkpoints",
    "ResumeState": "resume_state",
    "SweepStatus": "sweep",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"vae_lab.runs.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'vae_lab.runs' has no attribute {name!r}")


__all__ = [
    "OPTIMIZED_METRIC",
    "SUMMARY",
    "CSVLogger",
    "Found",
    "Interrupted",
    "InterruptCheckpoint",
    "ResumeError",
    "ResumePoint",
    "ResumeState",
    "Status",
    "StopSignals",
    "Summary",
    "SummaryError",
    "SweepStatus",
    "canonical",
    "check_run",
    "completed_run",
    "find_run",
    "find_sweep",
    "read_summary",
    "run_overrides",
    "task_overrides",
    "write_json",
]
