"""Finding and reading run directories (vae_lab/report/loading.py): overrides, ignored keys, several
directories and single run directories."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from vae_lab import report

from .jobs import make_job


def test_override_parsing_and_ignored_keys():
    assert report.parse_override("+debug=fast") == ("debug", "fast")
    assert report.parse_override("++model.latent_dim=8") == ("model.latent_dim", "8")
    assert report.parse_override("~logger") == ("logger", "<deleted>")
    assert report.parse_override("model.lr=1e-3") == ("model.lr", "1e-3")
    for key in ("seed", "hydra.launcher.n_jobs", "hydra/launcher", "paths.data_dir", "threads"):
        assert report.is_ignored(key), key
    assert report.is_ignored("callbacks.grad_variance.compare")  # measures more, trains the same
    for key in ("seeds", "posterior", "estimator", "trainer.max_epochs", "model.latent_dim"):
        assert not report.is_ignored(key), key
    assert not report.is_ignored("callbacks.grad_variance.every_n_steps")


def test_several_dirs_and_a_single_run_dir(tmp_path, capsys):
    a = make_job(tmp_path / "a", "0", ["posterior=gaussian", "seed=0"], metrics={"test/elbo": -1.0})
    b = make_job(tmp_path / "b", "0", ["posterior=gaussian", "seed=1"], metrics={"test/elbo": -3.0})
    assert report.main([str(a), str(b), "--no-plots"]) == 0  # run directories themselves
    capsys.readouterr()
    table = pd.read_csv(a / "summary.csv")
    assert table[["n", "seeds", "test/elbo_mean", "test/elbo_std"]].values.tolist() == [
        [2, "0,1", -2.0, pytest.approx(math.sqrt(2.0))]
    ]
    # a stale report does not confuse the next one: summary.csv / summary.md are not jobs
    assert report.main([str(tmp_path), "--no-plots"]) == 0
    assert "2 jobs in 1 group: 2 completed" in capsys.readouterr().out


def test_damaged_and_interrupted_jobs_are_reported_not_dropped(tmp_path):
    make_job(tmp_path, "0", ["seed=0"], metrics={"test/elbo": -1.0})
    make_job(tmp_path, "1", ["seed=1"], status="interrupted")
    damaged = make_job(tmp_path, "2", ["seed=2"])
    (damaged / "summary.json").write_text("{half a file")
    jobs = report.load([tmp_path]).jobs.set_index("job")
    assert jobs.loc["0", "outcome"] == "completed"
    assert (jobs.loc["1", "status"], jobs.loc["1", "outcome"]) == ("interrupted", "unfinished")
    assert (jobs.loc["2", "status"], jobs.loc["2", "outcome"]) == ("unreadable", "failed")
    assert jobs.loc["2", "error"].startswith("summary.json unreadable: ")
