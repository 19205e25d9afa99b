"""`vae-lab train trainer=ddp`: 2 CPU processes (gloo) from the CLI, in a sweep, with resume=true; a rank
that fails to start ends the run with an error; the result equals a 1-process run with the same global
batch within sampling error. Each run is a few steps on digits."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from conftest import run_cli

HELPERS = str(Path(__file__).parent / "resume_helpers")
FAST = ["+debug=fast", "~callbacks.progress_bar", "+trainer.enable_progress_bar=false"]
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def assert_rank_zero_only(run_dir: Path) -> None:
    """One run directory, as a 1-process run leaves it: no log or Hydra record of rank 1."""
    names = sorted(p.name for p in run_dir.iterdir())
    assert "train_rank_1.log" not in names and not [
        n for n in names if n.endswith(".log") and n != "train.log"
    ]
    assert {"summary.json", "metrics.csv", "tensorboard", "checkpoints", "train.log", ".hydra"} <= set(names)
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) >= 1


def test_ddp_interrupted_and_resumed(tmp_path):
    """SIGINT to both ranks (as Ctrl-C sends it to the process group) at step 3 stops the run with a
    checkpoint; resume=true continues it on 2 processes to the end."""
    env = {"PYTHONPATH": HELPERS + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = [
        "train",
        *FAST,
        *DDP,
        "trainer.max_epochs=2",
        "+callbacks.kill._target_=signal_at_step.SignalAtStep",
        "+callbacks.kill.step=3",
        "+callbacks.kill.signum=SIGINT",
        "hydra.run.dir=outputs/run",
    ]
    first = run_cli(args, tmp_path, timeout=240, env=env)
    run_dir = tmp_path / "outputs" / "run"
    assert first.returncode == 130, first.stderr[-2000:]
    assert summary(run_dir)["status"] == "interrupted" and summary(run_dir)["steps"] == 3
    assert first.stderr.count("interrupted at step 3") == 1  # rank 0 reports, rank 1 does not

    second = run_cli([*args, "resume=true"], tmp_path, timeout=240, env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    done = summary(run_dir)
    assert done["status"] == "completed" and done["steps"] == 10, done  # 2 epochs of 5 steps
    assert done["resumed_from"].endswith("on_exception.ckpt")
    assert_rank_zero_only(run_dir)
    assert second.stdout.count("vae-lab train: completed") == 1


def test_ddp_sweep_job(tmp_path):
    probe = ["callbacks.grad_variance.every_n_steps=2"]  # the probe runs on rank 0 alone, without deadlock
    result = run_cli(
        ["train", "-m", *FAST, *DDP, *probe, "seed=0", "hydra.sweep.dir=outputs/sweep"], tmp_path, timeout=240
    )
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = [p.parent for p in (tmp_path / "outputs" / "sweep").glob("*/summary.json")]
    assert len(jobs) == 1, jobs
    assert summary(jobs[0])["status"] == "completed"
    assert_rank_zero_only(jobs[0])
    header = (jobs[0] / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "grad/var/encoder" in header and "grad/var/decoder" in header
    assert list((jobs[0] / "tensorboard").rglob("events.out.tfevents.*"))  # images from rank 0


def test_ddp_rank_that_fails_to_start_ends_the_run(tmp_path):
    """Rank 1 exits at start-up (a sitecustomize that stops every process with LOCAL_RANK=1): rank 0
    ends the run with an error within seconds instead of waiting for it."""
    helper = tmp_path / "helper"
    helper.mkdir()
    (helper / "sitecustomize.py").write_text(
        "import os, sys\nif os.environ.get('LOCAL_RANK') == '1':\n    os._exit(3)\n"
    )
    env = {"PYTHONPATH": str(helper) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.monotonic()
    result = run_cli(["train", *FAST, *DDP, "hydra.run.dir=outputs/run"], tmp_path, timeout=120, env=env)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "DDP rank 1 exited with status 3" in result.stderr
    assert time.monotonic() - started < 90
    assert summary(tmp_path / "outputs" / "run")["status"] == "failed"


def test_ddp_equals_one_process_with_the_same_global_batch(tmp_path):
    """2 processes of batch 32 against 1 of batch 64 (the same rows in every global batch; only the
    latent samples differ), 20 steps: the best val/elbo differs by less than 4 times the difference
    between two 1-process seeds (the spread of a run's result over its random draws)."""
    common = [*FAST, "trainer.limit_train_batches=20", "trainer.limit_val_batches=null", "test=false"]
    common += ["~callbacks.grad_variance"]

    def best(name: str, *args: str) -> float:
        result = run_cli(["train", *common, *args, f"hydra.run.dir=outputs/{name}"], tmp_path, timeout=240)
        assert result.returncode == 0, result.stderr[-2000:]
        data = summary(tmp_path / "outputs" / name)
        assert data["steps"] == 20
        return data["best"]["val/elbo"]

    one = best("one", "data.batch_size=64")
    two = best("two", *DDP, "data.batch_size=32")
    other_seed = best("seed1", "data.batch_size=64", "seed=1")
    spread = abs(other_seed - one)
    print(f"1 process {one:.4f}, 2 processes {two:.4f}, 1 process seed 1 {other_seed:.4f}")
    assert abs(two - one) < 4 * max(spread, 0.01), (one, two, other_seed)


def test_rank_command_of_a_job(monkeypatch):
    """A further rank re-runs the job's own overrides in the job's directory, as a module (no script)."""
    from types import SimpleNamespace

    import vae_lab.distributed as ddp

    hc = SimpleNamespace(
        runtime=SimpleNamespace(output_dir="/x/outputs/multirun/d/t/3"),
        overrides=SimpleNamespace(task=["seed=1", "trainer=ddp"]),
    )
    monkeypatch.setattr("hydra.core.hydra_config.HydraConfig.get", lambda: hc)
    command = ddp.rank_command(1)
    assert command[1:5] == ["-m", "vae_lab.distributed", "seed=1", "trainer=ddp"]
    assert "hydra.run.dir='/x/outputs/multirun/d/t/3'" in command
    assert "hydra.output_subdir=null" in command
    subprocess.list2cmdline(command)  # plain strings


def test_ranks_that_rank_0_stops_are_not_reported_as_failed(monkeypatch, tmp_path):
    """Rank 0 stops the others on an interrupt (Lightning calls the launcher's ``kill``); one that does not
    exit on the signal (blocked in a collective) is killed ``KILL_AFTER_S`` later. The observer must not
    take that exit for a failure and end rank 0 (as it did under CI load, exit 1 instead of 130) while
    rank 0 still writes its checkpoint; a rank that fails by itself still ends the run."""
    import signal
    import sys
    import threading

    import vae_lab.distributed as ddp

    exits: list[int] = []

    def exit_(code: int) -> None:  # ends the observer (the calling thread), not the test
        exits.append(code)
        threading.current_thread().stopped = True

    monkeypatch.setattr(ddp.os, "_exit", exit_)
    monkeypatch.setattr(ddp, "KILL_AFTER_S", 0.2)
    monkeypatch.setattr(ddp._RankObserver, "_record", lambda self, error: None)
    # a rank that ignores SIGTERM, as one blocked in a collective does
    deaf = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print(flush=True)\ntime.sleep(60)"
    )

    def start(code: str) -> ddp._RankLauncher:
        launcher = ddp._RankLauncher(cluster_environment=None, num_processes=2, num_nodes=1)
        launcher.procs.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE))
        launcher.procs[0].stdout.readline()  # its SIGTERM handler is in place
        launcher._observer = ddp._RankObserver(launcher.procs, tmp_path, period_s=0.02)
        launcher._observer.start()
        return launcher

    stopped = start(deaf)
    stopped.kill(signal.SIGTERM)
    assert stopped.procs[0].wait(timeout=10) == -signal.SIGKILL
    stopped._observer.join(timeout=5)
    assert not stopped._observer.is_alive() and exits == []

    failing = start("print(flush=True); raise SystemExit(3)")
    failing._observer.join(timeout=5)
    assert exits == [1]
