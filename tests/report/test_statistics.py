"""Mean ± sd and n over seeds per group (vae_lab/report/statistics.py), on known numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vae_lab import report

from .jobs import make_job


def test_mean_std_n_are_right_on_known_numbers(tmp_path):
    elbos = {"implicit": [-100.0, -102.0, -107.0], "score": [-110.0, -111.0]}
    nll = {"implicit": [99.0, 100.0, math.nan], "score": [108.0, 109.5]}
    for estimator, values in elbos.items():
        for seed, value in enumerate(values):
            make_job(
                tmp_path / "sweep",
                f"{estimator}-{seed}",
                [
                    f"estimator={estimator}",
                    f"seed={seed}",
                    "+debug=fast",
                    f"hydra.launcher.n_jobs={seed + 1}",
                    f"paths.data_dir=/data/{seed}",
                ],
                metrics={"test/elbo": value, "test/nll": nll[estimator][seed]},
                best=value + 1,
                curves={"grad/var/encoder": [10.0, 5.0 * (seed + 1)], "val/elbo": [value - 3, value + 1]},
            )
    sweep = report.load([tmp_path / "sweep"])
    assert sweep.keys == ["estimator"]  # seed, hydra.*, paths.* do not split groups
    assert sweep.common == {"debug": "fast"}
    assert report.default_metrics(sweep) == [
        "test/elbo",
        "test/nll",
        "best/val/elbo",
        "mean/grad/var/encoder",
    ]

    table = report.summarize(sweep).set_index("estimator")
    for estimator, values in elbos.items():
        row = table.loc[estimator]
        assert row["test/elbo_mean"] == pytest.approx(np.mean(values))
        assert row["test/elbo_std"] == pytest.approx(np.std(values, ddof=1))
        assert row["test/elbo_n"] == row["n"] == len(values)
        assert row["best/val/elbo_mean"] == pytest.approx(np.mean(values) + 1)
    assert table.loc["implicit", "test/elbo_std"] == pytest.approx(math.sqrt(13.0))  # (1 + 1 + 16 + ...)/2
    # a NaN metric leaves n for that metric only
    assert table.loc["implicit", "test/nll_n"] == 2 and table.loc["implicit", "n"] == 3
    assert table.loc["implicit", "test/nll_mean"] == pytest.approx(99.5)
    # the final grad/var comes from metrics.csv's last value: 5, 10, 15 for seeds 0, 1, 2
    final = report.summarize(sweep, ["grad/var/encoder"]).set_index("estimator")
    assert final.loc["implicit", "grad/var/encoder_mean"] == pytest.approx(10.0)
    assert final.loc["implicit", "grad/var/encoder_std"] == pytest.approx(5.0)
    # mean/grad/var: a run's measurements averaged over training, (10 + 5 (seed + 1)) / 2 = 7.5, 10, 12.5
    assert table.loc["implicit", "mean/grad/var/encoder_mean"] == pytest.approx(10.0)
    assert table.loc["implicit", "mean/grad/var/encoder_std"] == pytest.approx(2.5)
    assert table.loc["score", "seeds"] == "0,1"


def test_epochs_and_minutes_of_completed_runs_only(tmp_path):
    for seed, (epochs, seconds) in enumerate([(40, 600.0), (60, 900.0)]):
        make_job(tmp_path, f"done-{seed}", [f"seed={seed}"], epochs=epochs, duration_s=seconds)
    make_job(tmp_path, "stopped", ["seed=2"], status="interrupted", epochs=5, duration_s=60.0)
    sweep = report.load([tmp_path])
    assert report.default_metrics(sweep)[-2:] == ["epochs", "minutes"]
    row = report.summarize(sweep).iloc[0]
    assert row["epochs_mean"] == 50 and row["epochs_n"] == 2 and row["unfinished"] == 1
    assert row["minutes_mean"] == pytest.approx(12.5) and row["minutes_std"] == pytest.approx(2.5 * 2**0.5)


def test_mean_std_of_a_single_value_and_of_nothing():
    assert report.mean_std([3.0]) == (3.0, pytest.approx(math.nan, nan_ok=True), 1)
    mean, std, n = report.mean_std([])
    assert math.isnan(mean) and math.isnan(std) and n == 0
    assert report.mean_std([1.0, math.nan, 3.0, math.inf]) == (2.0, pytest.approx(math.sqrt(2.0)), 2)
    assert report.format_mean_std(-101.0, 1.41421) == "-101 ± 1.4"
    assert report.format_mean_std(-101.0, math.nan) == "-101"
