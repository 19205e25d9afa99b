"""Lightning's CSV logger, made to continue a resumed run's ``metrics.csv`` (``conf/logger/default.yaml``)."""

from __future__ import annotations

import csv

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger as LightningCSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class CSVLogger(LightningCSVLogger):
    """``pytorch_lightning.loggers.CSVLogger`` that appends to an existing ``metrics.csv``.

    Lightning's writer deletes a ``metrics.csv`` it finds in its directory, and a fresh writer would
    rewrite the header from the first rows it flushes alone. Here the file is kept and its header's
    columns are taken over, so a resumed run (``resume=true``) adds its rows below the earlier ones
    under the same header; a new column still rewrites the header, as in Lightning. Which earlier
    rows to keep is decided before the run starts (:func:`vae_lab.resume.truncate_rows`).
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
