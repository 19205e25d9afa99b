"""The experiment presets (conf/experiment/) and the `make reproduce-*` targets.

Every preset composes and runs end to end through the CLI with a tiny budget, and every Hydra command of
every reproduce target composes (all combinations of its sweeps, as `vae-lab` checks before it starts).
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from vae_lab.cli import _preflight
from vae_lab.config import CONF_DIR, group_options

REPO_ROOT = Path(__file__).resolve().parents[1]

#: presets for `vae-lab train`, and where each is run end to end
TRAIN_PRESETS = {
    "figurnov2018/vae_mnist": "tests/test_presets.py",
    "figurnov2018/lda_20news": "tests/probes/test_topic_words.py",
}
#: presets for `vae-lab variance`
VARIANCE_PRESETS = {"figurnov2018/toy_variance": "tests/test_presets.py"}

NATURAL_PRIORS = {
    "gaussian": "vae_lab.model.priors.NormalPrior",
    "gamma": "vae_lab.model.priors.GammaPrior",
    "beta": "vae_lab.model.priors.UnitUniformPrior",
    "vonmises": "vae_lab.model.priors.CircularUniformPrior",
    "power_spherical": "vae_lab.model.priors.SphereUniformPrior",
}


def compose_config(config_name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


def test_every_preset_has_an_end_to_end_test():
    assert set(group_options("experiment")) == set(TRAIN_PRESETS) | set(VARIANCE_PRESETS)
    for where in (*TRAIN_PRESETS.values(), *VARIANCE_PRESETS.values()):
        assert (REPO_ROOT / where).is_file(), where


# -- vae_mnist -------------------------------------------------------------------------------------
@pytest.mark.parametrize("posterior", NATURAL_PRIORS)
def test_vae_mnist_pairs_each_posterior_with_the_papers_prior(posterior):
    cfg = compose_config("train", ["experiment=figurnov2018/vae_mnist", f"posterior={posterior}"])
    assert cfg.data._target_ == "vae_lab.data.MNISTDataModule"  # dynamic binarization
    assert cfg.model.estimator._target_ == "vae_lab.estimators.ImplicitEstimator"
    assert cfg.model.iw_samples == 5000 and cfg.model.iw_chunk <= 100
    assert cfg.model.prior._target_ == NATURAL_PRIORS[posterior]
    if posterior == "gamma":
        assert (cfg.model.prior.concentration, cfg.model.prior.rate) == (0.3, 0.3)
    for dim in (2, 3, 5, 10):
        cfg = compose_config(
            "train",
            ["experiment=figurnov2018/vae_mnist", f"posterior={posterior}", f"model.latent_dim={dim}"],
        )
        assert cfg.model.posterior.latent_dim == dim and cfg.model.prior.latent_dim == dim


def test_vae_mnist_runs_end_to_end_for_each_posterior(cli, shared_data_dir):
    """One multirun over the five pairs at latent_dim 2; +debug=fast keeps it to a few batches and 10
    importance samples."""
    proc = cli(
        "train",
        "-m",
        "experiment=figurnov2018/vae_mnist",
        f"posterior={','.join(NATURAL_PRIORS)}",
        "model.latent_dim=2",
        "+debug=fast",
        env={"VAE_LAB_DATA_DIR": str(shared_data_dir)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = sorted(Path(cli.cwd).glob("outputs/multirun/*/*/*/summary.json"))
    assert len(summaries) == len(NATURAL_PRIORS), summaries
    seen = set()
    for path in summaries:
        summary = json.loads(path.read_text())
        assert summary["status"] == "completed", summary.get("error")
        posterior = next(o.split("=", 1)[1] for o in summary["overrides"] if o.startswith("posterior="))
        seen.add(posterior)
        metrics = summary["metrics"]
        assert math.isfinite(metrics["test/elbo"]) and math.isfinite(metrics["test/nll"])
        # the importance-weighted bound is at least as tight as the ELBO (up to its Monte Carlo noise)
        assert metrics["test/nll"] <= -metrics["test/elbo"] + 1.0, metrics
        config = (path.parent / ".hydra" / "config.yaml").read_text()
        assert NATURAL_PRIORS[posterior] in config and "iw_samples: 10" in config
    assert seen == set(NATURAL_PRIORS)


# -- toy_variance ----------------------------------------------------------------------------------
def test_toy_variance_preset_overrides_the_variance_defaults_and_the_command_line_wins():
    default = compose_config("variance", [])
    preset = compose_config("variance", ["experiment=figurnov2018/toy_variance"])
    assert preset.families == ["dirichlet", "vonmises"]
    assert preset.estimators == ["implicit", "rsvi", "score"]
    assert preset.n_samples > default.n_samples
    assert not preset.gaussian.enabled
    tiny = compose_config("variance", ["experiment=figurnov2018/toy_variance", "n_samples=7"])
    assert tiny.n_samples == 7


def test_toy_variance_runs_end_to_end(cli):
    proc = cli("variance", "experiment=figurnov2018/toy_variance", "n_samples=20", "plot=false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [p.parent for p in Path(cli.cwd).glob("outputs/variance/*/*/variance.csv")]
    assert len(runs) == 1, runs
    frame = pd.read_csv(runs[0] / "variance.csv")
    assert set(frame["family"]) == {"dirichlet", "vonmises"}
    assert set(frame["estimator"]) == {"implicit", "rsvi", "score"}
    assert (frame["n_samples"] == 20).all()
    assert not (runs[0] / "gaussian.csv").exists()  # the preset leaves the Gaussian example out


def test_a_variance_preset_is_refused_by_train_with_one_line(cli):
    proc = cli("train", "experiment=figurnov2018/toy_variance")
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "experiment='figurnov2018/toy_variance'" in last and "vae-lab variance" in last
    assert not list(Path(cli.cwd).glob("outputs/*/*/checkpoints"))  # nothing trained


# -- make reproduce-* ------------------------------------------------------------------------------
def make_commands(target: str, *variables: str) -> list[list[str]]:
    """The `vae-lab` commands `make -n TARGET` would run, each as its argument list after `vae-lab`."""
    proc = subprocess.run(
        ["make", "-n", target, *variables], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    script = proc.stdout.replace("\\\n", " ")
    commands = []
    for part in re.split(r";|\|\||&&|\n", script):
        words = shlex.split(part)
        for i, word in enumerate(words):
            if word.endswith("/vae-lab") or word == "vae-lab":
                commands.append(words[i + 1 :])
                break
    return commands


def _check_hydra_command(args: list[str], extra: str) -> list[str]:
    """Assert that every combination of the command's overrides composes; return the overrides."""
    command, rest = args[0], args[1:]
    overrides = [a for a in rest if not a.startswith("-")]
    assert overrides[-1] == extra, "ARGS must come last, so that it overrides the target's settings"
    error = _preflight(overrides, config_name="variance" if command == "variance" else "train")
    assert error is None, (args, error)
    return overrides


def _sweep_dir(overrides: list[str]) -> str:
    return next(o.split("=", 1)[1] for o in overrides if o.startswith("hydra.sweep.dir="))


def test_make_reproduce_vae_mnist_composes(tmp_path):
    commands = make_commands(
        "reproduce-vae-mnist",
        f"REPRO_DIR={tmp_path}",
        "SEED1=4",
        "EXTRA_SEEDS=5",
        "ARGS=trainer.max_epochs=1",
    )
    assert [c[0] for c in commands] == ["train"] * 4 + ["report"]
    grid, seeds, wide_spherical, wide_von_mises, report = commands
    dirs = []
    wide = "model.posterior.max_concentration=1e5"  # where the heads' default clip (1e3) binds
    for train, sweeps in (
        (grid, [f"posterior={','.join(NATURAL_PRIORS)}", "model.latent_dim=2,3,5,10", "seed=4"]),
        (seeds, ["posterior=gaussian,vonmises", "model.latent_dim=2,10", "seed=5"]),
        (wide_spherical, ["posterior=power_spherical", "model.latent_dim=2,3,5,10", wide, "seed=4"]),
        (wide_von_mises, ["posterior=vonmises", "model.latent_dim=2,3", wide, "seed=4"]),
    ):
        assert "-m" in train and "hydra/launcher=joblib" in train
        overrides = _check_hydra_command(train, "trainer.max_epochs=1")
        for sweep in ["experiment=figurnov2018/vae_mnist", *sweeps]:
            assert sweep in overrides
        dirs.append(_sweep_dir(overrides))
        assert dirs[-1].startswith(str(tmp_path))
    assert report[1:] == [*dirs, "--columns", "model.latent_dim", "--out", str(tmp_path / "vae_mnist")]


def test_make_reproduce_lda_composes(tmp_path):
    commands = make_commands(
        "reproduce-lda", f"REPRO_DIR={tmp_path}", "SEEDS=0,1", "SEED1=3", "ARGS=trainer.max_steps=10"
    )
    assert [c[0] for c in commands] == ["train"] * 6 + ["report"]
    dirs, settings = [], []
    for train in commands[:6]:
        assert "-m" in train and "hydra/launcher=joblib" in train
        overrides = _check_hydra_command(train, "trainer.max_steps=10")
        assert "experiment=figurnov2018/lda_20news" in overrides
        keep = ("estimator", "model.estimator", "seed=", "model.posterior.min_", "model.prior.min_")
        settings.append(" ".join(o for o in overrides if o.startswith(keep)))
        dirs.append(_sweep_dir(overrides))
    old_clip = "model.posterior.min_concentration=0.1 model.prior.min_alpha=0.1"
    assert settings == [
        "estimator=implicit seed=0,1",  # three seeds by default (SEEDS=0,1,2)
        "estimator=rsvi model.estimator.B=1,20 seed=0,1",
        "estimator=rsvi model.estimator.B=5,10 seed=3",  # one seed
        "estimator=score seed=3",
        f"{old_clip} estimator=implicit seed=3",  # the earlier preset's clip, for comparison
        f"{old_clip} estimator=rsvi model.estimator.B=20 seed=3",
    ]
    assert len(set(dirs)) == 6
    report = commands[6]
    assert report[1:7] == dirs and report[7:] == ["--out", str(tmp_path / "lda_20news")]
    cfg = compose_config("train", ["experiment=figurnov2018/lda_20news"])
    assert (cfg.model.posterior.min_concentration, cfg.model.prior.min_alpha) == (1e-3, 1e-3)  # the paper's


def test_vae_mnist_trains_to_convergence_with_early_stopping_on_val_elbo():
    cfg = compose_config("train", ["experiment=figurnov2018/vae_mnist"])
    stop = cfg.callbacks.early_stopping
    assert stop._target_ == "pytorch_lightning.callbacks.EarlyStopping"
    assert (stop.monitor, stop.mode, stop.patience) == ("val/elbo", "max", 20)
    assert cfg.trainer.max_epochs >= 200  # a cap, not the budget


def test_early_stopping_ends_a_run_whose_val_elbo_stops_improving(cli):
    proc = cli(
        "train",
        "callbacks=[default,early_stopping]",
        "callbacks.early_stopping.patience=1",
        "callbacks.early_stopping.min_delta=1000",  # no validation improves by 1000 nats
        "trainer.max_epochs=30",
        "test=false",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = Path(cli.cwd).glob("outputs/*/*/summary.json")
    summary = json.loads(path.read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 2, summary


def test_make_reproduce_toy_variance_composes(tmp_path):
    commands = make_commands("reproduce-toy-variance", f"REPRO_DIR={tmp_path}", "ARGS=n_samples=10")
    assert len(commands) == 1 and commands[0][0] == "variance"
    overrides = _check_hydra_command(commands[0], "n_samples=10")
    assert "experiment=figurnov2018/toy_variance" in overrides
    assert f"hydra.run.dir={tmp_path}/toy_variance" in overrides
