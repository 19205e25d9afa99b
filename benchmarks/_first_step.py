"""A callback for benchmarks/bench_startup.py: writes the wall-clock time of the first training step
(``time.time()``) and the CPU seconds the process has used by then (``time.process_time()``) to the file
named by $VAE_LAB_FIRST_STEP_FILE, once per process."""

from __future__ import annotations

import os
import time
from typing import Any

import pytorch_lightning as pl


class FirstStep(pl.Callback):
    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        path = os.environ.get("VAE_LAB_FIRST_STEP_FILE")
        if path and not os.path.exists(path):
            with open(path, "w") as f:
                f.write(f"{time.time()!r} {time.process_time()!r}")
