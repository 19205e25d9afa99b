"""What checkpoints hold beyond Lightning's state (vae_lab/runs/resume_state.py)."""

from __future__ import annotations

import random

import numpy as np
import torch

from vae_lab.runs.resume_state import rng_states, set_rng_states


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
