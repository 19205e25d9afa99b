"""Interrupting and resuming `vae-lab train` (SIGTERM, SIGINT, SIGKILL; single runs and sweeps).

The end-to-end tests run the real executable on a tiny job (digits, 2 epochs of 7 steps). A signal is
sent at a fixed step by the test-only callback tests/resume_helpers/signal_at_step.py, which a resumed
run does not fire again. The uninterrupted reference is job 0 of the sweep fixture: the same job with
the callback set to a step it never reaches. The pieces (vae_lab/runs/) are tested without training in
tests/runs/.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

HELPERS = str(Path(__file__).parent / "resume_helpers")
ENV = {"PYTHONPATH": HELPERS + os.pathsep + os.environ.get("PYTHONPATH", "")}
TINY = [
    "model.latent_dim=2",
    "trainer.max_epochs=2",
    "data.batch_size=200",  # 7 steps per epoch
    "trainer.log_every_n_steps=2",
    "callbacks.grad_variance.every_n_steps=4",
    "~callbacks.progress_bar",
    "+trainer.enable_progress_bar=false",
    "+logger.csv.flush_logs_every_n_steps=1",  # rows reach the disk at once, also past a checkpoint
    "+callbacks.kill._target_=signal_at_step.SignalAtStep",
]


def train(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    from conftest import run_cli

    flags = [a for a in args if a.startswith("-")]  # before the overrides, as argparse wants them
    return run_cli(["train", *flags, *TINY, *(a for a in args if not a.startswith("-"))], cwd, env=ENV)


def only_run_dir(cwd: Path) -> Path:
    runs = [p.parent for p in cwd.glob("outputs/*/*/summary.json") if "multirun" not in p.parts]
    assert len(runs) == 1, runs
    return runs[0]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> SimpleNamespace:
    """A two-job sweep killed hard (SIGKILL) at step 10 of job 1, after job 0 completed; then resumed."""
    cwd = tmp_path_factory.mktemp("sweep")
    # steps slowed by a sleep: the killed segment's time (to its checkpoint at step 7) outweighs a
    # resumed job's set-up and test, so a resume that forgot it would show in duration_s
    slow = ["+callbacks.slow._target_=slow_steps.SlowSteps", "+callbacks.slow.seconds=0.4"]
    sweep_args = ["-m", "+callbacks.kill.step=1000,10", "+callbacks.kill.signum=SIGKILL", *slow]
    killed = train(cwd, *sweep_args)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    (sweep_dir,) = cwd.glob("outputs/multirun/*/*")
    job0, job1 = sweep_dir / "0", sweep_dir / "1"
    before = SimpleNamespace(
        job0_summary=(job0 / "summary.json").read_bytes(),
        job0_csv_mtime=(job0 / "metrics.csv").stat().st_mtime_ns,
        job1_status=summary(job1)["status"],
        job1_steps=[int(float(s)) for s in _column(job1 / "metrics.csv", "step")],
        job1_checkpoints=sorted(p.name for p in (job1 / "checkpoints").iterdir()),
        job1_elapsed_s=_elapsed_s(job1 / "checkpoints" / "last.ckpt"),
    )
    resumed = train(cwd, *sweep_args, f"hydra.sweep.dir={sweep_dir}", "resume=true")
    return SimpleNamespace(cwd=cwd, dir=sweep_dir, job0=job0, job1=job1, before=before, resumed=resumed)


def _elapsed_s(checkpoint: Path) -> float:
    import torch

    return torch.load(checkpoint, map_location="cpu", weights_only=False)["vae_lab_resume"]["elapsed_s"]


def _column(path: Path, name: str) -> list[str]:
    import csv

    with path.open(newline="") as file:
        return [row[name] for row in csv.DictReader(file) if row[name]]


@pytest.fixture(scope="module")
def reference(sweep) -> Path:
    """The uninterrupted run: sweep job 0."""
    assert summary(sweep.job0)["status"] == "completed"
    return sweep.job0


# -- sweeps ----------------------------------------------------------------------------------------
def test_sweep_resume_skips_completed_jobs_and_continues_the_killed_one(sweep, reference):
    assert sweep.before.job1_status == "running"  # SIGKILL: no chance to record anything
    assert sweep.before.job1_checkpoints == ["best.ckpt", "last.ckpt"]  # last.ckpt: end of epoch 1, step 7
    assert max(sweep.before.job1_steps) > 7  # rows flushed after that checkpoint, to be dropped

    assert sweep.resumed.returncode == 0, sweep.resumed.stderr[-3000:]
    assert "completed already" in sweep.resumed.stdout
    assert "all 2 jobs completed" in sweep.resumed.stdout
    # job 0 was not trained again
    assert (sweep.job0 / "summary.json").read_bytes() == sweep.before.job0_summary
    assert (sweep.job0 / "metrics.csv").stat().st_mtime_ns == sweep.before.job0_csv_mtime
    # job 1 continued from its own last.ckpt and ended exactly where the uninterrupted job did
    job1 = summary(sweep.job1)
    assert job1["status"] == "completed"
    assert job1["resumed_from"] == str(sweep.job1 / "checkpoints" / "last.ckpt")
    assert (sweep.job1 / "metrics.csv").read_bytes() == (reference / "metrics.csv").read_bytes()
    assert job1["metrics"] == summary(reference)["metrics"]
    # the killed segment's time up to its checkpoint counts: summary.json had no record of it
    final_elapsed_s = _elapsed_s(sweep.job1 / "checkpoints" / "last.ckpt")  # carried over, then added to
    assert job1["duration_s"] >= final_elapsed_s > sweep.before.job1_elapsed_s > 0


# -- SIGTERM ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sigterm(tmp_path_factory) -> SimpleNamespace:
    """A run sent SIGTERM at step 5 (mid-epoch), then the same command with resume=true."""
    cwd = tmp_path_factory.mktemp("sigterm")
    stopped = train(cwd, "+callbacks.kill.step=5")
    run_dir = only_run_dir(cwd)
    at_stop = SimpleNamespace(
        summary=summary(run_dir),
        checkpoints=sorted(p.name for p in (run_dir / "checkpoints").iterdir()),
    )
    resumed = train(cwd, "+callbacks.kill.step=5", "resume=true")
    return SimpleNamespace(cwd=cwd, run_dir=run_dir, stopped=stopped, at_stop=at_stop, resumed=resumed)


def test_sigterm_stops_with_a_checkpoint_status_and_one_line(sigterm):
    proc = sigterm.stopped
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    line = last_line(proc.stderr)
    assert line.startswith(
        "vae-lab train: interrupted at step 5; checkpoint saved; continue with: vae-lab train "
    )
    assert line.endswith(" +callbacks.kill.step=5 resume=true")
    assert sigterm.at_stop.summary["status"] == "interrupted"
    assert sigterm.at_stop.summary["steps"] == 5
    assert sigterm.at_stop.checkpoints == ["on_exception.ckpt"]  # no epoch had ended yet


def test_resume_after_sigterm_ends_exactly_like_the_uninterrupted_run(sigterm, reference):
    assert sigterm.resumed.returncode == 0, sigterm.resumed.stderr[-3000:]
    assert only_run_dir(sigterm.cwd) == sigterm.run_dir  # continued in place, no new run directory
    result = summary(sigterm.run_dir)
    assert result["status"] == "completed"
    assert result["resumed_from"].endswith("on_exception.ckpt")
    assert result["duration_s"] > sigterm.at_stop.summary["duration_s"] > 0  # both segments counted
    assert not (sigterm.run_dir / "checkpoints" / "on_exception.ckpt").exists()  # consumed
    # the earlier rows are kept, no header repeated, and every row after the resume point is the same
    assert (sigterm.run_dir / "metrics.csv").read_bytes() == (reference / "metrics.csv").read_bytes()
    assert result["metrics"] == summary(reference)["metrics"]  # test/elbo included, bit for bit
    assert len(list((sigterm.run_dir / "tensorboard").glob("events.out.tfevents.*"))) >= 2  # appended


def test_resume_of_a_completed_run_does_not_train_again(sigterm):
    before = (sigterm.run_dir / "summary.json").read_bytes()
    events = sorted((sigterm.run_dir / "tensorboard").iterdir())
    proc = train(sigterm.cwd, "+callbacks.kill.step=5", "resume=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "completed already" in proc.stdout
    assert (sigterm.run_dir / "summary.json").read_bytes() == before
    assert sorted((sigterm.run_dir / "tensorboard").iterdir()) == events


# -- SIGINT ----------------------------------------------------------------------------------------
def test_sigint_at_an_epoch_boundary_stops_cleanly_and_resumes_exactly(cli, reference):
    stopped = cli("train", *TINY, "+callbacks.kill.step=7", "+callbacks.kill.signum=SIGINT", env=ENV)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    assert last_line(stopped.stderr).startswith("vae-lab train: interrupted at step 7; checkpoint saved;")
    run_dir = only_run_dir(cli.cwd)
    assert summary(run_dir)["status"] == "interrupted"
    assert summary(run_dir)["steps"] == 7
    assert (run_dir / "checkpoints" / "on_exception.ckpt").is_file()

    resumed = cli(
        "train", *TINY, "+callbacks.kill.step=7", "+callbacks.kill.signum=SIGINT", "resume=true", env=ENV
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert summary(run_dir)["resumed_from"].endswith("on_exception.ckpt")
    assert (run_dir / "metrics.csv").read_bytes() == (reference / "metrics.csv").read_bytes()
    assert summary(run_dir)["metrics"] == summary(reference)["metrics"]


def stop_resume_and_compare(cli, tmp_path: Path, extra: list[str], step: int) -> None:
    """Run ``extra`` uninterrupted (the reference), then stopped by SIGTERM at ``step`` and resumed: the
    resumed run's metrics.csv and summary metrics equal the reference's, byte for byte."""
    from conftest import run_cli

    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    done = run_cli(["train", *TINY, *extra, "+callbacks.kill.step=-1"], reference_dir, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    reference = only_run_dir(reference_dir)

    stopped = cli("train", *TINY, *extra, f"+callbacks.kill.step={step}", env=ENV)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert summary(only_run_dir(cli.cwd))["steps"] == step
    resumed = cli("train", *TINY, *extra, f"+callbacks.kill.step={step}", "resume=true", env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run_dir = only_run_dir(cli.cwd)
    assert (run_dir / "metrics.csv").read_bytes() == (reference / "metrics.csv").read_bytes()
    assert summary(run_dir)["metrics"] == summary(reference)["metrics"]


def test_resume_at_an_epoch_cut_short_by_limit_train_batches_is_exact(cli, tmp_path):
    """An epoch that ends at trainer.limit_train_batches (4 of 7 batches) is finished: the resumed run
    starts the next epoch with a fresh shuffle, as the uninterrupted run does."""
    stop_resume_and_compare(cli, tmp_path, ["trainer.max_epochs=3", "+trainer.limit_train_batches=4"], 4)


def test_resume_of_a_von_mises_run_is_exact(cli, tmp_path):
    """The von Mises VAE draws from the fused sampler (Philox keyed from torch's generator) and takes the
    fused dz/dkappa: a run stopped mid-epoch and resumed ends exactly like the uninterrupted one."""
    stop_resume_and_compare(cli, tmp_path, ["posterior=vonmises", "trainer.max_epochs=1"], 3)


# -- nothing to resume -----------------------------------------------------------------------------
def test_resume_with_nothing_to_resume_fails_with_one_line(cli):
    proc = cli("train", *TINY, "+callbacks.kill.step=5", "resume=true", env=ENV)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("vae-lab train: error: resume=true: no run under outputs")
    assert "+callbacks.kill.step=5" in lines[0]  # says what it looked for
    assert not (cli.cwd / "outputs").exists()


def test_resume_true_of_a_sweep_that_never_started_runs_it(cli):
    """`make reproduce-... ARGS=resume=true` continues a reproduction whose later parts never started:
    ``resume=true`` with a ``hydra.sweep.dir`` that holds nothing yet runs the sweep there."""
    proc = cli(
        "train",
        "-m",
        *TINY,
        "+callbacks.kill.step=1000",
        "hydra.sweep.dir=parts/seeds",
        "resume=true",
        env=ENV,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(
        "vae-lab train: resume: nothing in parts/seeds yet; starting the sweep there"
    )
    assert summary(cli.cwd / "parts" / "seeds" / "0")["status"] == "completed"


def test_resume_with_other_overrides_or_a_wrong_path_leaves_runs_alone(sigterm):
    from conftest import run_cli

    before = (sigterm.run_dir / "summary.json").read_bytes()
    other = train(sigterm.cwd, "+callbacks.kill.step=5", "seed=1", "resume=true")
    assert other.returncode == 2
    assert "resume=true: no run" in last_line(other.stderr)
    wrong = run_cli(["train", f"resume={sigterm.cwd / 'nowhere'}"], sigterm.cwd)
    assert wrong.returncode == 2
    assert (
        last_line(wrong.stderr).startswith("vae-lab train: error: resume=")
        and "no such directory" in wrong.stderr
    )
    assert (sigterm.run_dir / "summary.json").read_bytes() == before
    assert only_run_dir(sigterm.cwd) == sigterm.run_dir
