"""Issue 11: every bad value of a documented key is named in one line before any job starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vae_lab.preflight import preflight
from vae_lab.settings_check import RULES

BAD = [
    ("seed=abc", "seed='abc' is not allowed; expected an integer >= 0"),
    ("seed=-1", "seed=-1 is not allowed"),
    ("threads=0", "threads=0 is not allowed; expected an integer >= 1, or null"),
    ("precision=16", "precision=16 is not allowed; expected 32 or 64"),
    ("test=maybe", "test='maybe' is not allowed; expected true or false"),
    ("flush_denormal=2", "flush_denormal=2 is not allowed; expected true or false"),
    ("compile=maybe", "compile='maybe' is not allowed; expected true or false"),
    ("steps_per_batch=0", "steps_per_batch=0 is not allowed; expected an integer >= 1"),
    ("steps_per_batch=2.5", "steps_per_batch=2.5 is not allowed"),
    ("trainer.max_epochs=2.5", "trainer.max_epochs=2.5 is not allowed; expected an integer >= -1"),
    ("trainer.max_steps=-5", "trainer.max_steps=-5 is not allowed"),
    ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps=0 is not allowed"),
    (
        "+trainer.limit_train_batches=1.5",
        "trainer.limit_train_batches=1.5 is not allowed; expected a fraction",
    ),
    ("model.optimizer.lr=-1", "model.optimizer.lr=-1 is not allowed; expected a number > 0"),
    ("model.optimizer.lr=abc", "model.optimizer.lr='abc' is not allowed; expected a number > 0"),
    ("model.n_samples=0", "model.n_samples=0 is not allowed; expected an integer >= 1"),
    ("model.iw_samples=2.5", "model.iw_samples=2.5 is not allowed"),
    ("model.latent_dim=0", "model.latent_dim=0 is not allowed"),
    ("model.kl_warmup_steps=-1", "model.kl_warmup_steps=-1 is not allowed"),
    ("estimator=rsvi posterior=dirichlet model.estimator.B=-2", "model.estimator.B=-2 is not allowed"),
    ("data.batch_size=0", "data.batch_size=0 is not allowed; expected an integer >= 1"),
    ("data.eval_batch_size=x", "data.eval_batch_size='x' is not allowed"),
    ("data.threshold=0", "data.threshold=0 is not allowed"),
    ("data.input_noise=1.0", "data.input_noise=1.0 is not allowed; expected a probability in [0, 1)"),
    ("data.input_noise=-0.1", "data.input_noise=-0.1 is not allowed"),
    ("hydra/launcher=joblib hydra.launcher.n_jobs=0", "hydra.launcher.n_jobs=0 is not allowed"),
    (
        "hydra/launcher=submitit_slurm hydra.launcher.timeout_min=0",
        "hydra.launcher.timeout_min=0 is not allowed",
    ),
    ("hydra/launcher=ray hydra.launcher.ray.remote.num_cpus=-1", "hydra.launcher.ray.remote.num_cpus=-1"),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[b[0] for b in BAD])
def test_bad_values_are_named_before_any_job_starts(overrides, message):
    assert message in (preflight(overrides.split()) or "")


def test_every_value_of_a_sweep_is_checked():
    assert preflight(["seed=0,1,x"]) == "seed='x' is not allowed; expected an integer >= 0"


@pytest.mark.parametrize("preset", ["figurnov2018/vae_mnist", "figurnov2018/lda_20news"])
def test_the_shipped_configs_pass(preset):
    assert preflight([]) is None
    assert preflight([f"experiment={preset}"]) is None


def test_every_rule_can_fail():
    for key, (ok, allowed) in RULES.items():
        assert not ok("abc"), key
        assert allowed.startswith("expected"), key


def test_cli_one_line_exit_2_nothing_written(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "VAE_LAB_DATA_DIR": os.environ.get("VAE_LAB_DATA_DIR", "")}
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "vae-lab"),
            "train",
            "model.optimizer.lr=-1",
            f"hydra.run.dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "vae-lab train: error: model.optimizer.lr=-1 is not allowed; expected a number > 0"
    ]
    assert not run_dir.exists()
