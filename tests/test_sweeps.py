"""Sweeps: failures are recorded and counted, launchers and the Optuna sweeper run."""

from __future__ import annotations

import json

from hydra import compose, initialize_config_dir

from vae_lab.config import CONF_DIR


def job_statuses(root) -> dict[str, str]:
    return {
        " ".join(json.loads(p.read_text())["overrides"]): json.loads(p.read_text())["status"]
        for p in root.glob("outputs/multirun/*/*/*/summary.json")
    }


def test_a_failing_job_does_not_stop_the_sweep(cli):
    proc = cli(
        "train", "-m", "posterior=gaussian,dirichlet", "estimator=reparam", "+debug=fast", "test=false"
    )
    assert proc.returncode == 1
    statuses = {key.split()[0]: status for key, status in job_statuses(cli.cwd).items()}
    assert statuses == {"posterior=gaussian": "completed", "posterior=dirichlet": "failed"}
    failed = next(
        p
        for p in cli.cwd.glob("outputs/multirun/*/*/*/summary.json")
        if json.loads(p.read_text())["status"] == "failed"
    )
    assert (
        "estimators for the dirichlet posterior: implicit, rsvi, score"
        in json.loads(failed.read_text())["error"]
    )
    assert "1 of 2 jobs failed" in proc.stderr.strip().splitlines()[-1]


def test_submitit_local_runs_a_two_job_sweep(cli):
    proc = cli("train", "-m", "hydra/launcher=submitit_local", "seed=0,1", "+debug=fast", "test=false")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(job_statuses(cli.cwd).values()) == ["completed", "completed"]


def test_optuna_preset_maximizes_val_elbo(cli):
    proc = cli("train", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "+debug=fast", "test=false")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Best value" in proc.stdout + proc.stderr
    assert sorted(job_statuses(cli.cwd).values()) == ["completed", "completed"]


def test_submitit_slurm_composes():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    assert "SlurmLauncher" in cfg.hydra.launcher._target_
    assert cfg.hydra.launcher.partition == "gpu"
