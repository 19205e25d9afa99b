"""A sweep's job line, the advertisement filter (vae_lab/runs/console.py) and the stop file
(vae_lab/runs/sweep_stop.py), without training."""

from __future__ import annotations

import json
import logging
import os
import signal

from vae_lab.runs import sweep_stop
from vae_lab.runs.console import DropTips, job_line


def test_job_line_says_status_best_duration_and_directory(tmp_path):
    summary = {
        "status": "completed",
        "run_dir": str(tmp_path),
        "best": {"val/elbo": -41.08103},
        "duration_s": 75.5,
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert (
        job_line(tmp_path)
        == f"vae-lab train: completed; best val/elbo -41.0810; 1:15.5; outputs in {tmp_path}"
    )


def test_job_line_of_an_interrupted_job_names_its_checkpoint(tmp_path):
    summary = {
        "status": "interrupted",
        "run_dir": str(tmp_path),
        "error": "SIGTERM",
        "steps": 12,
        "checkpoint": str(tmp_path / "checkpoints" / "on_exception.ckpt"),
        "duration_s": 2.0,
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert job_line(tmp_path) == (
        "vae-lab train: interrupted (SIGTERM) at step 12; resumes from on_exception.ckpt; 2.0 s; "
        f"outputs in {tmp_path}"
    )


def test_lightning_tips_are_dropped_and_other_records_kept():
    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord(
            "pytorch_lightning.utilities.rank_zero", logging.INFO, "", 0, msg, None, None
        )

    tips = DropTips()
    assert not tips.filter(record("💡 Tip: For seamless cloud logging ... try installing [litlogger](...)"))
    assert not tips.filter(record("💡 Tip: For seamless cloud uploads ... [litmodels](...)"))
    assert tips.filter(record("GPU available: False, used: False"))


def test_the_stop_file_carries_the_signal_and_the_sweep_dir(tmp_path):
    with sweep_stop.SweepStop() as stop:
        assert os.environ[sweep_stop.PID_ENV] == str(os.getpid()) and not sweep_stop.in_worker()
        assert stop.received is None
        sweep_stop.request_stop(signal.SIGTERM)
        sweep_stop.request_stop(signal.SIGINT)  # the first one stays
        sweep_stop.record_sweep_dir(tmp_path)
        assert stop.received == signal.SIGTERM and sweep_stop.stopped_sweep_dir() == tmp_path
    assert sweep_stop.PID_ENV not in os.environ and sweep_stop.stop_requested() is None


def test_a_job_on_another_machine_never_takes_the_main_process_id_for_one_of_its_own(monkeypatch):
    with sweep_stop.SweepStop():
        env = sweep_stop.sweep_env()  # what Ray's workers get through runtime_env
        assert set(env) == {sweep_stop.PID_ENV, sweep_stop.STOP_ENV, sweep_stop.HOST_ENV}
        assert sweep_stop.main_pid() == os.getpid()
        monkeypatch.setenv(sweep_stop.HOST_ENV, "another-node")
        assert sweep_stop.main_pid() is None and sweep_stop.in_worker()


def test_the_sweep_takes_its_signal_handlers_back_after_a_library_replaced_them():
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or Ray's where a test here started Ray
    with sweep_stop.SweepStop() as stop:
        handler = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as ray.init does with a handler of its own
        sweep_stop.reclaim_signals()
        assert signal.getsignal(signal.SIGTERM) == handler
        assert sweep_stop.SweepStop.active is stop
    assert signal.getsignal(signal.SIGTERM) == before and sweep_stop.SweepStop.active is None


def test_a_job_watch_lets_sigint_through_where_the_launcher_blocked_it():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # as Ray's workers do
    try:
        with sweep_stop.JobWatch():
            assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
        assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_a_job_watch_leaves_sigint_ignored_between_jobs_in_a_worker(monkeypatch):
    """In a sweep's worker SIGINT stays ignored after a job (Ctrl-C reaches the whole process group, and
    an idle loky worker would die of it); SIGTERM gets its handler back (Ray's workers need it) except in
    a loky worker, where it stays ignored too; outside a worker both get theirs back."""
    before = {signum: signal.getsignal(signum) for signum in sweep_stop.SIGNALS}
    try:
        with sweep_stop.JobWatch():
            pass
        assert {signum: signal.getsignal(signum) for signum in sweep_stop.SIGNALS} == before
        monkeypatch.setenv(sweep_stop.PID_ENV, str(os.getppid()))  # a live main process, not this one
        assert sweep_stop.in_worker()
        with sweep_stop.JobWatch():
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == before[signal.SIGTERM]
        assert not sweep_stop._loky_worker()  # this test's process is no loky worker
        monkeypatch.setattr(sweep_stop, "_loky_worker", lambda: True)
        with sweep_stop.JobWatch():
            pass
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
