"""summary.md and the two-way --columns tables (vae_lab/report/tables.py)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from vae_lab import report

from .jobs import make_job, make_latent_grid


def test_failed_and_unfinished_jobs_are_listed_never_dropped(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for seed, elbo in ((0, -100.0), (1, -102.0)):
        make_job(
            sweep, str(seed), ["posterior=gaussian", f"seed={seed}"], metrics={"test/elbo": elbo}, best=elbo
        )
    make_job(
        sweep,
        "2",
        ["posterior=gaussian", "seed=2"],
        status="failed",
        error="ValueError: concentration must be positive\n(see train.log)",
    )
    make_job(
        sweep,
        "3",
        ["posterior=vonmises", "seed=0"],
        status="running",
        curves={"train/elbo": [-50.0, -49.0, -48.0]},
    )
    make_job(sweep, "4", ["posterior=vonmises", "seed=1"], status=None)

    assert report.main([str(sweep), "--no-plots"]) == 0
    out = capsys.readouterr().out
    md = (sweep / "summary.md").read_text()
    assert out == md
    assert "5 jobs in 2 groups: 2 completed, 1 failed, 2 unfinished" in md
    failed = md.split("## Failed jobs (1)")[1].split("##")[0]
    assert (
        "`2` (posterior=gaussian seed=2): failed: ValueError: concentration must be positive (see train.log)"
    ) in failed
    unfinished = md.split("## Unfinished jobs (2)")[1]
    assert "`3` (posterior=vonmises seed=0): running (last logged step 2)" in unfinished
    assert "`4` (posterior=vonmises seed=1): no summary.json" in unfinished

    table = pd.read_csv(sweep / "summary.csv").set_index("posterior")
    assert table.loc["gaussian", ["n", "failed", "unfinished"]].tolist() == [2, 1, 0]
    assert table.loc["vonmises", ["n", "failed", "unfinished"]].tolist() == [0, 0, 2]
    assert table.loc["gaussian", "test/elbo_mean"] == pytest.approx(-101.0)
    assert math.isnan(table.loc["vonmises", "test/elbo_mean"])
    assert "| posterior | n | failed | unfinished | seeds |" in md
    assert "| vonmises | 0 | 0 | 2 | — | —" in md
    assert not list(sweep.glob("*.png"))


def test_columns_gives_a_two_way_table_in_natural_order(tmp_path, capsys):
    nll = {
        ("gaussian", 2): [136.0, 138.0],
        ("gaussian", 10): [96.0],
        ("vonmises", 2): [135.0, 134.0],
        ("vonmises", 10): [108.0],
    }
    make_latent_grid(tmp_path / "sweep", nll)
    assert (
        report.main(
            [str(tmp_path / "sweep"), "--no-plots", "--metric", "test/nll", "--columns", "model.latent_dim"]
        )
        == 0
    )
    out = capsys.readouterr().out
    table = out[out.index("test/nll by model.latent_dim") :].splitlines()
    assert table[2] == "| posterior | model.latent_dim=2 | model.latent_dim=10 |"  # 2 before 10
    assert table[4] == "| posterior=gaussian | 137 ± 1.4 (2) | **96** |"
    assert table[5] == "| posterior=vonmises | **134.5 ± 0.71 (2)** | 108 |"
    assert "test/nll by model.latent_dim" in (tmp_path / "sweep" / "summary.md").read_text()

    assert report.main([str(tmp_path / "sweep"), "--no-plots", "--columns", "seed"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "vae-lab report: error: --columns seed: not an override that varies between groups; "
        "choose from: model.latent_dim, posterior"
    ]


def test_report_lists_the_versions_a_sweep_ran_on(tmp_path):
    """summary.json's ``code`` (one entry per segment) as jobs.csv's ``code``, and summary.md's line when
    the jobs ran on more than one version."""
    for name, commits in (("a", ["1" * 40]), ("b", ["1" * 40, "2" * 40]), ("c", ["1" * 40])):
        code = [{"git_commit": c, "git_dirty": False} for c in commits]
        make_job(tmp_path / "sweep", name, [f"seed={ord(name)}"], metrics={"test/elbo": -1.0}, code=code)
    out = report.load([tmp_path / "sweep"])
    assert out.jobs.set_index("job")["code"].to_dict() == {
        "a": "1111111111",
        "b": "1111111111, 2222222222",
        "c": "1111111111",
    }
    report.main([str(tmp_path / "sweep"), "--no-plots"])
    text = (tmp_path / "sweep" / "summary.md").read_text()
    assert "The jobs ran on 2 versions of the code (jobs.csv's `code`): `1111111111` (2 jobs), " in text
