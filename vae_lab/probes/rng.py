"""Random state for probes: seed the model's generators, and run a measurement without moving training's
random stream, buffers or modes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def seed_generators(device: torch.device, seed: int) -> None:
    """Seed the generators the model draws from: the CPU one and, on a GPU, that device's only."""
    torch.default_generator.manual_seed(seed)
    if torch.device(device).type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)


# -- the callback ----------------------------------------------------------------------------------


@contextmanager
def isolated(pl_module: nn.Module, device: torch.device) -> Iterator[None]:
    """Restore, on exit, torch's global random state (CPU and the model's CUDA device), every buffer of
    the model and the training mode of every submodule."""
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    buffers = [(b, b.detach().clone()) for b in pl_module.buffers()]
    modes = [(m, m.training) for m in pl_module.modules()]
    try:
        yield
    finally:
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state(cuda_state, device)
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        for m, training in modes:
            m.training = training
