"""What checkpoints hold beyond Lightning's state (vae_lab/runs/resume_state.py)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import torch
from pytorch_lightning.trainer.states import TrainerFn

from vae_lab.runs import resume_state
from vae_lab.runs.resume_state import CHECKPOINT_KEY, ResumeState, rng_states, set_rng_states


def draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()


def test_the_global_generators_continue_where_they_were_saved(tmp_path):
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    torch.save(rng_states(), tmp_path / "rng.pt")
    first = draws()
    draws()
    set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))  # loadable without pickles
    assert draws() == first


class Clock:
    """A stand-in for the time module: ``monotonic()`` returns ``now``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


def test_checkpoints_carry_the_wall_time_of_every_segment(tmp_path, monkeypatch):
    clock = Clock(100.0)
    monkeypatch.setattr(resume_state, "time", clock)
    trainer = SimpleNamespace(
        callback_metrics={},
        loggers=[],
        default_root_dir=str(tmp_path),
        state=SimpleNamespace(fn=TrainerFn.FITTING),
    )
    first = ResumeState()
    first.on_fit_start(trainer, None)
    clock.now = 130.5  # 30.5 s of training, then a checkpoint; the run is then killed
    saved: dict = {}
    first.on_save_checkpoint(trainer, None, saved)
    assert saved[CHECKPOINT_KEY]["elapsed_s"] == 30.5

    clock.now = 1000.0  # a new process: its own clock, the checkpoint's 30.5 s carried over
    second = ResumeState()
    second.on_load_checkpoint(trainer, None, saved)
    second.on_fit_start(trainer, None)
    clock.now = 1012.0
    again: dict = {}
    second.on_save_checkpoint(trainer, None, again)
    assert again[CHECKPOINT_KEY]["elapsed_s"] == 42.5
    assert second.elapsed_s() == 42.5
