"""SIGINT and SIGTERM (vae_lab/runs/signals.py); the stops of real runs are in tests/test_resume.py."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from vae_lab.runs.signals import Interrupted, StopSignals


def test_stop_signals_outside_a_trainer_interrupt_at_once_and_only_once():
    with StopSignals() as stops:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
        assert stops.received == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGINT)  # while winding down: ignored
    assert signal.getsignal(signal.SIGTERM) is not stops._handler  # handlers put back


def test_the_line_and_exit_status_of_a_stop():
    run = Path("outputs/x")
    saved = Interrupted(signal.SIGTERM, 5, run, run / "checkpoints" / "on_exception.ckpt", saved=True)
    assert saved.exit_code == 143
    assert saved.message(["vae-lab", "train", "a b", "resume=true"]) == (
        "interrupted at step 5; checkpoint saved; continue with: vae-lab train 'a b' resume=true"
    )
    older = Interrupted(signal.SIGINT, 9, run, run / "checkpoints" / "last.ckpt")
    assert older.exit_code == 130 and older.message(None) == (
        "interrupted at step 9; resume continues from last.ckpt"
    )
    assert "no checkpoint yet" in Interrupted(signal.SIGINT, 1, run).message(None)
    done = Interrupted(signal.SIGTERM, 7, run, completed=True)
    assert done.message(None) == "SIGTERM received as the job completed (step 7)"


def test_a_signal_during_a_log_write_logs_without_reentering_the_stream():
    """A second signal arrives while the main thread is inside a log record's write (a real stream's
    flush): the handler's own record waits for the write instead of re-entering the stream."""
    import io
    import logging
    import threading

    written: list[str] = []
    errors: list[BaseException] = []

    class Stream(io.StringIO):
        busy = False
        fired = False

        def write(self, text: str) -> int:
            if self.busy:
                raise RuntimeError("reentrant call")  # what a BufferedWriter raises
            self.busy = True
            try:
                if not self.fired:  # the signal arrives in the middle of the first write
                    self.fired = True
                    os.kill(os.getpid(), signal.SIGTERM)
                written.append(text)
                return len(text)
            finally:
                self.busy = False

    handler = logging.StreamHandler(Stream())
    handler.handleError = lambda record: errors.append(record)  # "--- Logging error ---" otherwise
    logger = logging.getLogger("vae_lab.runs")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with StopSignals() as stops:
            stops.received = signal.SIGINT  # already stopping: the next signal is only logged
            logger.info("a record being written")
            for thread in threading.enumerate():
                if thread.name == "signal-log":
                    thread.join(5)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert errors == []
    assert written[0].startswith("a record being written")
    assert any("received SIGTERM while stopping; ignored" in text for text in written)
