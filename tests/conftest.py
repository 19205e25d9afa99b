"""Shared fixtures. `shared_data_dir` is the offline copy of the public data sets (../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The folder with the offline data copies: $VAE_LAB_DATA_DIR, else ../shared/data beside the repo.

    A missing folder is a failure, not a skip: CI always has it.
    """
    path = Path(os.environ.get("VAE_LAB_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    assert path.is_dir(), f"offline data folder {path} not found; set VAE_LAB_DATA_DIR"
    return path


import subprocess  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402

# Tests run in parallel workers (make test uses pytest -n 2 on 2 cores): one torch thread each.
torch.set_num_threads(1)

VAE_LAB = str(Path(sys.executable).parent / "vae-lab")


def run_cli(
    args: list[str], cwd: Path, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the installed `vae-lab` executable as a user would, in ``cwd``."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [VAE_LAB, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
    )


@pytest.fixture()
def cli(tmp_path):
    """``cli(*args)`` runs vae-lab in a fresh temporary directory and returns the CompletedProcess."""

    def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
        return run_cli(list(args), tmp_path, **kwargs)

    _run.cwd = tmp_path
    return _run


def tiny_vae(**kwargs):
    """A small VAE built directly (no Hydra), seeded: 2-D Gaussian latents, implicit gradients, 8-unit
    MLPs, Bernoulli data of dimension 6. Keyword arguments replace any of these; ``latent_dim`` follows
    the posterior."""
    import functools

    from vae_lab.estimators import ImplicitEstimator
    from vae_lab.model.likelihoods import Bernoulli
    from vae_lab.model.networks import MLP
    from vae_lab.model.posteriors import GaussianHead
    from vae_lab.model.priors import NormalPrior
    from vae_lab.model.vae import VAE

    args = dict(
        posterior=GaussianHead(2),
        prior=NormalPrior(2),
        estimator=ImplicitEstimator(),
        encoder=functools.partial(MLP, hidden=[8]),
        decoder=functools.partial(MLP, hidden=[8]),
        likelihood=Bernoulli(),
        optimizer=functools.partial(torch.optim.Adam),
        input_dim=6,
    )
    args.update(kwargs)
    args.setdefault("latent_dim", args["posterior"].latent_dim)
    torch.manual_seed(0)
    return VAE(**args)


def quiet_trainer(**kwargs):
    """A CPU Lightning Trainer that logs, checkpoints and prints nothing (for in-process test fits)."""
    import pytorch_lightning as pl

    return pl.Trainer(
        **{
            "accelerator": "cpu",
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            **kwargs,
        }
    )
