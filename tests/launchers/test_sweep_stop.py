"""A sweep's terminal output (one line per finished job) and stopping a sweep whose jobs run in other
processes (vae_lab/runs/sweep_stop.py): SIGTERM to the main process, or its sudden death, stops every job
with a checkpoint, leaves no process behind, and the sweep resumes; Ctrl-C or SIGTERM to the whole
process group with a worker idle between jobs stops it the same way."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import VAE_LAB, run_cli

HELPERS = str(Path(__file__).parents[1] / "resume_helpers")
ENV = {"PYTHONPATH": HELPERS + os.pathsep + os.environ.get("PYTHONPATH", "")}
JOB_LINE = re.compile(r"^vae-lab train: completed; best val/elbo -\d+\.\d{4}; [\d.:]+( s)?; outputs in (.+)$")
# 20 epochs of 7 steps, each step at least 50 ms long: a job trains for several seconds whatever the load
SLOW = [
    "model.latent_dim=2",
    "data.batch_size=200",
    "trainer.max_epochs=20",
    "test=false",
    "callbacks.grad_variance.every_n_steps=50",
    "+callbacks.slow._target_=slow_steps.SlowSteps",
    "+callbacks.slow.seconds=0.05",
]


def summaries(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/summary.json"))}


def test_a_multirun_prints_one_line_per_job_and_logs_progress_to_train_log(cli):
    proc = cli("train", "-m", "hydra/launcher=joblib", "seed=0,1", "+debug=fast", "test=false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.strip().splitlines() if "[HYDRA]" not in line]  # the job list
    jobs = [JOB_LINE.match(line) for line in lines[:-1]]
    assert all(jobs) and len(jobs) == 2, proc.stdout
    assert sorted(Path(m.group(2)).name for m in jobs) == ["0", "1"]
    assert lines[-1].startswith("all 2 jobs completed; outputs in ")
    assert "it/s" not in proc.stdout + proc.stderr and "Epoch" not in proc.stdout  # no progress bars
    (sweep_dir,) = cli.cwd.glob("outputs/multirun/*/*")
    for job in "01":
        log = (sweep_dir / job / "train.log").read_text()
        assert "[vae_lab.progress][INFO] - validated: epoch 0, step 5" in log
        assert "litlogger" not in log and "Tip:" not in log
    assert "litlogger" not in proc.stdout + proc.stderr


def test_a_single_run_keeps_its_progress_bar_without_advertisements(cli):
    proc = cli("train", "+debug=fast", "test=false", "callbacks.progress_bar.refresh_rate=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Epoch 0: 100%" in proc.stdout  # Lightning draws its bar on stdout
    (run_dir,) = cli.cwd.glob("outputs/*/*/summary.json")
    everything = proc.stdout + proc.stderr + (run_dir.parent / "train.log").read_text()
    assert "litlogger" not in everything and "Tip:" not in everything


def _session_processes(sid: int) -> list[int]:
    """The processes (not zombies) of session ``sid``."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields: state, ppid, pgrp, session, ...
            pids.append(int(stat.parent.name))
    return pids


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            ps = subprocess.run(["ps", "-eo", "pid,ppid,sid,stat,args"], capture_output=True, text=True)
            ps = ps.stdout
            raise AssertionError(f"timed out waiting for {what}; processes:\n{ps}")
        time.sleep(0.2)


def _training(sweep_dir: Path, jobs: str) -> bool:
    return all(
        (sweep_dir / job / "metrics.csv").is_file()
        and len((sweep_dir / job / "metrics.csv").read_text().splitlines()) > 2
        for job in jobs
    )


# a new local Ray instance with 2 CPUs, even where `ray start` runs one
LAUNCHER_ARGS = {
    "joblib": [],
    "submitit_local": [],
    "ray": ["hydra.launcher.ray.init.address=local", "hydra.launcher.ray.init.num_cpus=2"],
}


def _signal_a_sweep(
    tmp_path: Path, sweep_args: list[str], ready, what: str, send
) -> tuple[subprocess.Popen, Path, str, str]:
    """Start ``vae-lab train -m *sweep_args`` in a session of its own, call ``send(proc)`` once
    ``ready(sweep_dir)`` holds, and wait for every process of the sweep to end. Returns the process, the
    sweep dir, stdout and stderr."""
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.Popen(
        [VAE_LAB, "train", "-m", *sweep_args, f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: ready(sweep_dir) or proc.poll() is not None, 240, what)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        send(proc)
        _wait_for(lambda: not _session_processes(proc.pid), 120, "the sweep's processes to end")
        out, err = proc.communicate(timeout=30)
        return proc, sweep_dir, out, err
    finally:
        if _session_processes(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _stop_a_sweep(tmp_path: Path, launcher: str, signum: int) -> tuple[subprocess.Popen, Path, str, str]:
    """A 2-job sweep of slow jobs, ``signum`` sent to its main process once both jobs train."""
    return _signal_a_sweep(
        tmp_path,
        [f"hydra/launcher={launcher}", *LAUNCHER_ARGS[launcher], "seed=0,1", *SLOW],
        lambda sweep_dir: _training(sweep_dir, "01"),
        "both jobs to train",
        lambda proc: os.kill(proc.pid, signum),
    )


@pytest.mark.parametrize("launcher", list(LAUNCHER_ARGS))
def test_sigterm_to_the_main_process_stops_every_job_with_a_checkpoint_and_the_sweep_resumes(
    tmp_path, launcher
):
    proc, sweep_dir, out, err = _stop_a_sweep(tmp_path, launcher, signal.SIGTERM)
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err
    jobs = summaries(sweep_dir)
    assert sorted(jobs) == ["0", "1"]
    for job, result in jobs.items():
        assert result["status"] == "interrupted", (job, result)
        assert 0 < result["steps"] < 140
        assert Path(result["checkpoint"]).name == "on_exception.ckpt"
        assert Path(result["checkpoint"]).is_file()
    last = err.strip().splitlines()[-1]
    prefix = "vae-lab train: sweep stopped by SIGTERM (2 interrupted); continue with: vae-lab train -m "
    assert last.startswith(prefix), err[-3000:]
    assert last.endswith(" resume=true")

    resumed = run_cli(
        [
            "train",
            "-m",
            f"hydra/launcher={launcher}",
            *LAUNCHER_ARGS[launcher],
            "seed=0,1",
            *SLOW,
            f"hydra.sweep.dir={sweep_dir}",
            "resume=true",
        ],
        tmp_path,
        env=ENV,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for job, result in summaries(sweep_dir).items():
        assert result["status"] == "completed", (job, result)
        assert result["steps"] == 140
        assert result["resumed_from"].endswith("on_exception.ckpt")


def test_jobs_stop_cleanly_when_the_main_process_dies(tmp_path):
    proc, sweep_dir, out, err = _stop_a_sweep(tmp_path, "joblib", signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    jobs = summaries(sweep_dir)
    assert sorted(jobs) == ["0", "1"]
    for job, result in jobs.items():
        assert result["status"] == "interrupted", (job, result)
        assert Path(result["checkpoint"]).is_file()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_the_process_group_with_an_idle_worker_stops_the_sweep_without_breaking_the_pool(
    tmp_path, signum, code
):
    """Ctrl-C (SIGINT to the whole process group), or SIGTERM to all of it as a batch system's cancel
    sends it, after the first of two joblib jobs has finished: its worker sits idle in loky's queue (with
    SIGINT it used to die of a KeyboardInterrupt there, so that the sweep ended in BrokenProcessPool and
    exit 1); the other job stops with a checkpoint and the sweep exits 130 or 143 with its continue line."""
    slow = [a for a in SLOW if not a.startswith("trainer.max_epochs=")]

    def send(proc: subprocess.Popen) -> None:
        time.sleep(1.0)  # the first job's worker back in loky's queue
        os.killpg(proc.pid, signum)

    proc, sweep_dir, out, err = _signal_a_sweep(
        tmp_path,
        ["hydra/launcher=joblib", "trainer.max_epochs=1,20", *slow],
        lambda sweep_dir: (sweep_dir / "0" / "summary.json").is_file() and _training(sweep_dir, "1"),
        "the first job to finish while the second trains",
        send,
    )
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err and "BrokenProcessPool" not in err, err[-3000:]
    jobs = summaries(sweep_dir)
    assert jobs["0"]["status"] == "completed"
    assert jobs["1"]["status"] == "interrupted" and Path(jobs["1"]["checkpoint"]).is_file()
    last = err.strip().splitlines()[-1]
    name = signal.Signals(signum).name
    assert last.startswith(f"vae-lab train: sweep stopped by {name} (1 completed, 1 interrupted); "), last
