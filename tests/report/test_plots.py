"""The plots and the --metric / --out options (vae_lab/report/plots.py, command.py)."""

from __future__ import annotations

import pandas as pd

from vae_lab import report

from .jobs import make_job


def test_plots_metric_selection_and_out_dir(tmp_path, capsys):
    for estimator in ("implicit", "score"):
        for seed in (0, 1):
            make_job(
                tmp_path / "sweep",
                f"{estimator}{seed}",
                [f"estimator={estimator}", f"seed={seed}"],
                metrics={"test/elbo": -100.0 - seed, "test/nll": 99.0},
                best=-99.0,
                curves={
                    "train/elbo": [-120.0, -110.0, -105.0],
                    "val/elbo": [-118.0, -108.0, -104.0],
                    "grad/var/encoder": [1e3, 1e2, 1e1],
                    "grad/var/decoder": [1.0, 0.5, 0.1],
                },
            )
    out = tmp_path / "report"
    assert (
        report.main(
            [
                str(tmp_path / "sweep"),
                "--out",
                str(out),
                "--metric",
                "test/elbo",
                "--metric",
                "grad/var/decoder",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| estimator | n | seeds | test/elbo | grad/var/decoder |" in printed
    table = pd.read_csv(out / "summary.csv")
    assert "test/nll_mean" not in table and table["grad/var/decoder_mean"].tolist() == [0.1, 0.1]
    for name in ("curves.png", "grad_variance.png", "final.png", "summary.md", "jobs.csv"):
        assert (out / name).stat().st_size > 0, name
    assert not (tmp_path / "sweep" / "summary.csv").exists()

    assert report.main([str(tmp_path / "sweep"), "--metric", "test/elbow", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vae-lab report: error: --metric test/elbow: no job has it; choose from: ")
    assert len(err.strip().splitlines()) == 1
