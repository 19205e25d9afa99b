"""`vae-lab report`: aggregation of sweeps into summary.csv / summary.md / plots.

One end-to-end test trains a real 2x2 sweep through the CLI; the others build job directories by hand
(summary.json, metrics.csv, .hydra/overrides.yaml as `vae-lab train` writes them) with known numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vae_lab import report


def make_job(
    root: Path,
    name: str,
    overrides: list[str],
    status: str | None = "completed",
    metrics: dict[str, float] | None = None,
    best: float | None = None,
    error: str | None = None,
    curves: dict[str, list[float]] | None = None,
) -> Path:
    """A job directory like `vae-lab train` leaves; status None: no summary.json (died before writing)."""
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if status is not None:
        summary: dict = {"status": status, "run_dir": str(job), "overrides": overrides}
        if metrics is not None:
            summary["metrics"] = metrics
        if best is not None:
            summary["best"] = {"val/elbo": best}
        if error is not None:
            summary["error"] = error
        (job / "summary.json").write_text(json.dumps(summary))
    if curves:
        steps = len(next(iter(curves.values())))
        frame = pd.DataFrame({"epoch": [0] * steps, "step": range(steps), **curves})
        frame.to_csv(job / "metrics.csv", index=False)
    return job


# -- end to end ------------------------------------------------------------------------------------
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


# -- hand-made jobs --------------------------------------------------------------------------------
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
    assert report.default_metrics(sweep) == ["test/elbo", "test/nll", "best/val/elbo", "grad/var/encoder"]

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
    assert table.loc["implicit", "grad/var/encoder_mean"] == pytest.approx(10.0)
    assert table.loc["implicit", "grad/var/encoder_std"] == pytest.approx(5.0)
    assert table.loc["score", "seeds"] == "0,1"


def test_mean_std_of_a_single_value_and_of_nothing():
    assert report.mean_std([3.0]) == (3.0, pytest.approx(math.nan, nan_ok=True), 1)
    mean, std, n = report.mean_std([])
    assert math.isnan(mean) and math.isnan(std) and n == 0
    assert report.mean_std([1.0, math.nan, 3.0, math.inf]) == (2.0, pytest.approx(math.sqrt(2.0)), 2)
    assert report.format_mean_std(-101.0, 1.41421) == "-101 ± 1.4"
    assert report.format_mean_std(-101.0, math.nan) == "-101"


def test_override_parsing_and_ignored_keys():
    assert report.parse_override("+debug=fast") == ("debug", "fast")
    assert report.parse_override("++model.latent_dim=8") == ("model.latent_dim", "8")
    assert report.parse_override("~logger") == ("logger", "<deleted>")
    assert report.parse_override("model.lr=1e-3") == ("model.lr", "1e-3")
    for key in ("seed", "hydra.launcher.n_jobs", "hydra/launcher", "paths.data_dir", "threads"):
        assert report.is_ignored(key), key
    for key in ("seeds", "posterior", "estimator", "trainer.max_epochs", "model.latent_dim"):
        assert not report.is_ignored(key), key


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


def test_columns_gives_a_two_way_table_in_natural_order(tmp_path, capsys):
    nll = {
        ("gaussian", 2): [136.0, 138.0],
        ("gaussian", 10): [96.0],
        ("vonmises", 2): [135.0, 134.0],
        ("vonmises", 10): [108.0],
    }
    for (posterior, dim), values in nll.items():
        for seed, value in enumerate(values):
            make_job(
                tmp_path / "sweep",
                f"{posterior}-{dim}-{seed}",
                [f"posterior={posterior}", f"model.latent_dim={dim}", f"seed={seed}"],
                metrics={"test/nll": value},
            )
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
