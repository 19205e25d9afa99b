"""Test-only callback: the process sends itself a signal once training reaches a given step.

Added to a run with ``+callbacks.kill._target_=signal_at_step.SignalAtStep +callbacks.kill.step=K``
and this folder on PYTHONPATH (tests/test_resume.py). The signal goes out at the end of the K-th
training step, exactly as if it had arrived from outside then, so where the run stops is deterministic;
a run resumed from a checkpoint (the same command plus ``resume=true``) is not signalled again.
"""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl


class SignalAtStep(pl.Callback):
    multi_step_hooks = "each"  # at the end of the K-th step, also within a Lightning batch of several

    def __init__(self, step: int, signum: str = "SIGTERM") -> None:
        self.step = step
        self.signum = signal.Signals[signum]

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step and trainer.ckpt_path is None:  # not once resumed
            os.kill(os.getpid(), self.signum)
