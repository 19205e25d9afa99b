"""`vae-lab report` as a user runs it (vae_lab/report/command.py): a real 2x2 sweep trained through the
CLI, and bad directories reported as one line with exit status 2."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from vae_lab import report


@pytest.mark.slow
def test_report_on_a_real_sweep(cli):
    proc = cli(
        "train",
        "-m",
        "posterior=gaussian,vonmises",
        "seed=0,1",
        "+debug=fast",
        "test=true",
        "hydra/launcher=joblib",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep_dir,) = cli.cwd.glob("outputs/multirun/*/*")

    proc = cli("report", str(sweep_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert sorted(table["posterior"]) == ["gaussian", "vonmises"]
    assert list(table["n"]) == [2, 2] and list(table["failed"]) == [0, 0]
    assert list(table["seeds"]) == ["0,1", "0,1"]
    for metric in ("test/elbo", "test/nll", "best/val/elbo"):
        assert table[f"{metric}_mean"].map(math.isfinite).all(), metric
        assert (table[f"{metric}_n"] == 2).all()
    jobs = pd.read_csv(sweep_dir / "jobs.csv")
    assert len(jobs) == 4 and set(jobs["status"]) == {"completed"}
    # the table is printed and written
    assert "| posterior | n | seeds | test/elbo" in proc.stdout
    assert (sweep_dir / "summary.md").read_text() == proc.stdout
    assert (sweep_dir / "curves.png").stat().st_size > 0
    assert (sweep_dir / "final.png").stat().st_size > 0
    has_grad_var = any(c.startswith("grad/var/") for c in jobs.columns)
    assert (sweep_dir / "grad_variance.png").is_file() == has_grad_var


def test_missing_dir_is_one_line_and_exit_2(cli):
    proc = cli("report", "no/such/sweep")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["vae-lab report: error: no/such/sweep: no such directory"]
    assert proc.stdout == ""


def test_dir_without_runs_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert report.main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vae-lab report: error: ") and str(tmp_path / "empty") in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
