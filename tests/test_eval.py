"""`vae-lab eval ckpt=PATH`: a checkpoint re-scored from the config stored in it, driven as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli

#: the metrics a run's test phase logs, and eval reproduces (test/perplexity too on bag-of-words data)
TEST_METRICS = ["test/elbo", "test/kl", "test/recon", "test/nll"]


def train_run(cwd: Path, *overrides: str, env: dict | None = None) -> Path:
    args = ["train", "+debug=fast", "callbacks.progress_bar.refresh_rate=0", *overrides]
    proc = run_cli(args, cwd, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [p.parent for p in cwd.glob("outputs/*/*/summary.json")]
    assert len(runs) == 1, runs
    return runs[0]


def eval_result(cwd: Path) -> dict:
    results = list(cwd.glob("outputs/eval/*/*/eval.json"))
    assert len(results) == 1, results
    return json.loads(results[0].read_text())


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """A few steps of the default Gaussian VAE on digits, in a directory of its own."""
    return train_run(tmp_path_factory.mktemp("run"), "seed=3")


def test_eval_reproduces_the_runs_own_test_metrics(digits_run, tmp_path):
    proc = run_cli(["eval", f"ckpt={digits_run / 'checkpoints' / 'best.ckpt'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = eval_result(tmp_path)  # in the working directory's outputs/eval/, not in the run's directory
    summary = json.loads((digits_run / "summary.json").read_text())
    assert result["split"] == "test" and result["seed"] == 3 and result["iw_samples"] == 10
    for name in TEST_METRICS:
        assert result["metrics"][name] == pytest.approx(summary["metrics"][name], abs=1e-6), name
        assert name in proc.stdout  # the printed table
    assert "Traceback" not in proc.stderr


def test_per_example_rows_are_the_split_in_order_and_average_to_the_metrics(digits_run, tmp_path):
    import csv

    proc = run_cli(
        ["eval", f"ckpt={digits_run / 'checkpoints' / 'best.ckpt'}", "split=val", "per_example=true"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "eval.json and per_example.csv" in proc.stdout
    result = eval_result(tmp_path)
    (path,) = tmp_path.glob("outputs/eval/*/*/per_example.csv")
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["index", "elbo", "recon", "kl", "nll"]
    assert [int(r["index"]) for r in rows] == list(range(len(rows)))
    assert len(rows) > 100  # digits' validation rows: more than one batch (+debug=fast scores them all)
    for name in ("elbo", "recon", "kl", "nll"):
        mean = sum(float(r[name]) for r in rows) / len(rows)
        assert mean == pytest.approx(result["metrics"][f"val/{name}"], rel=1e-5, abs=1e-5), name
    elbo, recon, kl = (torch.tensor([float(r[k]) for r in rows]) for k in ("elbo", "recon", "kl"))
    torch.testing.assert_close(elbo, recon - kl, rtol=1e-5, atol=1e-4)


def test_eval_scores_another_split_with_overrides(digits_run, tmp_path):
    proc = run_cli(
        ["eval", f"ckpt={digits_run / 'checkpoints' / 'best.ckpt'}", "split=val", "model.iw_samples=20"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = eval_result(tmp_path)
    assert result["iw_samples"] == 20 and "model.iw_samples=20" in result["overrides"]
    assert set(result["metrics"]) == {"val/elbo", "val/kl", "val/recon", "val/nll"}
    # the analytic KL draws nothing: over the same validation rows with the same weights (one epoch, so
    # the best checkpoint is the last validation's) it is the run's own val/kl
    summary = json.loads((digits_run / "summary.json").read_text())
    assert result["metrics"]["val/kl"] == pytest.approx(summary["metrics"]["val/kl"], abs=1e-6)
    assert result["metrics"]["val/nll"] <= -result["metrics"]["val/elbo"] + 0.5


def _plain_checkpoint(dest: Path) -> Path:
    torch.save({"state_dict": {}, "epoch": 0}, dest)
    return dest


def _other_format(run: Path, dest: Path) -> Path:
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    checkpoint["vae_lab"]["format"] = 0
    checkpoint["vae_lab"]["version"] = "0.0.1"
    torch.save(checkpoint, dest)
    return dest


@pytest.mark.parametrize(
    ("make_args", "expected"),
    [
        (lambda run, cwd: ["ckpt=missing/best.ckpt"], "ckpt=missing/best.ckpt: no such file"),
        (lambda run, cwd: [], "ckpt=PATH is required"),
        (lambda run, cwd: [f"ckpt={_plain_checkpoint(cwd / 'x.ckpt')}"], "not a vae-lab checkpoint"),
        (lambda run, cwd: [f"ckpt={cwd / 'x.txt'}"], "not a readable checkpoint"),
        (lambda run, cwd: [f"ckpt={_other_format(run, cwd / 'old.ckpt')}"], "checkpoint format 0"),
        (lambda run, cwd: [f"ckpt={run / 'checkpoints' / 'best.ckpt'}", "split=tset"], "split=tset"),
        (
            lambda run, cwd: [f"ckpt={run / 'checkpoints' / 'best.ckpt'}", "per_example=yes"],
            "per_example=yes: expected true or false",
        ),
        (
            lambda run, cwd: [f"ckpt={run / 'checkpoints' / 'best.ckpt'}", "posterior.min_scale=1"],
            "model.posterior.min_scale=1",
        ),
    ],
    ids=[
        "missing",
        "no-ckpt",
        "not-vae-lab",
        "not-a-checkpoint",
        "other-format",
        "split",
        "per-example",
        "moved-key",
    ],
)
def test_bad_eval_input_gets_one_line_error_exit_2_and_writes_nothing(
    digits_run, tmp_path, make_args, expected
):
    (tmp_path / "x.txt").write_text("not a checkpoint\n")
    before = sorted(p.relative_to(digits_run) for p in digits_run.rglob("*"))
    proc = run_cli(["eval", *make_args(digits_run, tmp_path)], tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vae-lab eval: error:"), proc.stderr
    assert expected in lines[0]
    assert not (tmp_path / "outputs").exists()
    assert sorted(p.relative_to(digits_run) for p in digits_run.rglob("*")) == before


def test_eval_reproduces_test_perplexity_on_bag_of_words(tmp_path, shared_data_dir):
    env = {"VAE_LAB_DATA_DIR": str(shared_data_dir)}
    (tmp_path / "lda").mkdir()
    run = train_run(
        tmp_path / "lda",
        "experiment=figurnov2018/lda_20news",
        "data.eval_batch_size=250",
        "trainer.limit_test_batches=1",
        env=env,
    )
    proc = run_cli(["eval", f"ckpt={run / 'checkpoints' / 'best.ckpt'}"], tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = eval_result(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    for name in [*TEST_METRICS, "test/perplexity"]:
        assert result["metrics"][name] == pytest.approx(summary["metrics"][name], abs=1e-6), name


def test_an_override_that_changes_the_architecture_is_refused_with_one_line(digits_run, tmp_path):
    ckpt = digits_run / "checkpoints" / "best.ckpt"
    proc = run_cli(["eval", f"ckpt={ckpt}", "model.latent_dim=3"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("vae-lab eval: error: ckpt=") and "weights do not fit" in line
