"""`vae-lab variance` as a user runs it (vae_lab/variance/command.py): the files it writes, and a bad value
as one line with exit status 2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vae_lab.variance import COLUMNS


def test_cli_variance_writes_csv_and_plots(cli):
    proc = cli(
        "variance",
        "n_samples=2000",
        "dirichlet.concentrations=[0.5,2]",
        "vonmises.concentrations=[0.5,5]",
        "gaussian.n=[10,100]",
        "gaussian.repetitions=20",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list(cli.cwd.glob("outputs/variance/*/*/variance.csv"))
    assert len(runs) == 1, runs
    run_dir = runs[0].parent
    assert str(run_dir) in proc.stdout
    for name in ("variance.png", "gaussian.png", "gaussian.csv", "variance.log"):
        assert (run_dir / name).is_file(), name
    frame = pd.read_csv(run_dir / "variance.csv")
    assert list(frame.columns) == COLUMNS
    valid = frame[frame["note"].isna()]
    assert len(valid) == 2 * 6 - 1 + 2 * 3  # dirichlet: 6 estimators (rsvi B=0 skipped at 0.5); vonmises: 3
    assert (
        np.isfinite(
            valid[["concentration", "n_samples", "mean", "variance", "std_error", "exact", "bias", "mse"]]
        )
        .all()
        .all()
    )
    assert (valid["n_samples"] == 2000).all()
    gaussian = pd.read_csv(run_dir / "gaussian.csv")
    assert len(gaussian) == 4 and np.isfinite(gaussian[["mean", "variance", "bias", "mse"]]).all().all()
    assert "Bias in standard errors" in proc.stdout and "Mean squared error" in proc.stdout


def test_cli_variance_bad_value_is_one_line(cli):
    proc = cli("variance", "n_samples=0")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vae-lab variance: error: n_samples=0"), proc.stderr


@pytest.mark.parametrize(
    "override, message",
    [
        ("n_samples=-1", "n_samples=-1 is not allowed; expected an integer >= 2"),  # range: __post_init__
        ("n_samples=abc", "n_samples='abc' is not allowed; expected an integer"),  # type: OmegaConf
        ("+foo=1", "foo: not a setting; choose from families, "),  # a key the schema does not have
    ],
)
def test_a_bad_setting_is_one_line_naming_the_key_and_exit_2(cli, override, message):
    proc = cli("variance", override)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vae-lab variance: error: {message}"), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not list(cli.cwd.glob("outputs/variance/*/*/*.csv"))
