"""Test-only callback: every training step takes at least ``seconds`` longer (a sleep, no CPU), so that a
signal sent from outside lands mid-training on a loaded machine without long computations.

Added with ``+callbacks.slow._target_=slow_steps.SlowSteps +callbacks.slow.seconds=0.05`` and this folder
on PYTHONPATH (tests/launchers/test_sweep_stop.py).
"""

from __future__ import annotations

import time

import pytorch_lightning as pl


class SlowSteps(pl.Callback):
    multi_step_hooks = "each"  # every step, also within a Lightning batch of several

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        time.sleep(self.seconds)
