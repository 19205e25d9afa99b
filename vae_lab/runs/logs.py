"""A resumed run's logs continue the earlier ones: ``metrics.csv`` keeps the rows written before the
checkpoint it starts from (:class:`CSVLogger`, :func:`trim_csv_logs`), TensorBoard hides the events
logged after it (:func:`logger_kwargs`)."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger as LightningCSVLogger
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

METRICS_CSV = "metrics.csv"


class CSVLogger(LightningCSVLogger):
    """``pytorch_lightning.loggers.CSVLogger`` that appends to an existing ``metrics.csv``
    (``conf/logger/default.yaml``).

    Lightning's writer deletes a ``metrics.csv`` it finds in its directory, and a fresh writer would
    rewrite the header from the first rows it flushes alone. Here the file is kept and its header's
    columns are taken over, so a resumed run (``resume=true``) adds its rows below the earlier ones
    under the same header; a new column still rewrites the header, as in Lightning. Which earlier
    rows to keep is decided before the run starts (:func:`trim_csv_logs`).
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment


class _ContinuingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        # called by the parent's __init__, where Lightning deletes the file
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = list(next(csv.reader(file), []))


def logger_kwargs(node: Any, step: int) -> dict[str, Any]:
    """Extra arguments for a logger of a resumed run: TensorBoard hides the events an earlier attempt
    logged after the checkpoint at ``step`` (its ``purge_step``; all of them when starting over)."""
    from hydra.utils import get_class

    target = node.get("_target_") if hasattr(node, "get") else None
    if target and issubclass(get_class(target), TensorBoardLogger):
        return {"purge_step": step + 1 if step else 0}
    return {}


def csv_rows(loggers: Iterable[Any], root: str | os.PathLike[str]) -> dict[str, int]:
    """The rows each CSV logger has written, by :func:`csv_key` (flushed first, so the files hold
    exactly the rows logged so far): what a checkpoint records for :func:`trim_csv_logs`."""
    rows = {}
    for logger in loggers:
        if isinstance(logger, LightningCSVLogger) and logger.log_dir is not None:
            logger.save()
            path = Path(logger.log_dir) / METRICS_CSV
            rows[csv_key(path, root)] = count_rows(path)
    return rows


def trim_csv_logs(loggers: Iterable[Any], run_dir: Path, rows: dict[str, int] | None) -> None:
    """Keep the metrics.csv rows written before the checkpoint a run starts from: none for a fresh
    start (``rows == {}``, as Lightning's CSVLogger does), all where the checkpoint has no record."""
    if rows is None:
        return
    for logger in loggers:
        if isinstance(logger, LightningCSVLogger):
            path = Path(logger.log_dir) / METRICS_CSV
            keep = rows.get(csv_key(path, run_dir), None if rows else 0)
            if keep is not None:
                truncate_rows(path, keep)


def count_rows(path: Path) -> int:
    """Data rows of a CSV file written by Lightning's CSVLogger (one line per row after the header)."""
    if not path.is_file():
        return 0
    with path.open("rb") as file:
        return max(0, sum(1 for _ in file) - 1)


def csv_key(path: Path, root: str | os.PathLike[str]) -> str:
    """How a CSV file is named in the checkpoint: relative to the run directory when inside it."""
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


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
