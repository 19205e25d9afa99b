"""Stopping a run on SIGINT (Ctrl-C) or SIGTERM (``kill``, a cluster's pre-emption) at a step boundary.

While a job trains, :class:`StopSignals` turns both signals into Lightning's graceful stop: the step in
progress finishes, Lightning raises ``SIGTERMException``, the interrupt checkpoint
(:class:`~vae_lab.runs.checkpoints.InterruptCheckpoint`) saves the exact state, and the job ends with
:class:`Interrupted` (status ``interrupted`` in ``summary.json``), whose :meth:`~Interrupted.message` is
the line the CLI prints.
"""

from __future__ import annotations

import logging
import shlex
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

log = logging.getLogger("vae_lab.runs")


def log_from_handler(logger: logging.Logger, level: int, msg: str, *args: object) -> None:
    """Log from a signal handler. Python runs a handler in the main thread between two bytecodes, which can
    be inside a logging call of that thread (a stream's ``flush``): logging again there re-enters the
    handler's stream ("RuntimeError: reentrant call" and a "--- Logging error ---" traceback on stderr).
    Another thread instead waits for the logging handler's lock, which the main thread releases as soon
    as the signal handler returns."""
    threading.Thread(target=logger.log, args=(level, msg, *args), name="signal-log").start()


@dataclass(eq=False)  # compared and hashed by identity, as exceptions are
class Interrupted(Exception):
    """A job stopped by SIGINT or SIGTERM, with what a resumed run will start from.

    ``checkpoint``: the newest checkpoint (None: none yet); ``saved``: whether this stop wrote it;
    ``completed``: the signal came as the job was finishing, and it finished.
    """

    signum: int
    step: int
    run_dir: Path
    checkpoint: Path | None = None
    saved: bool = False
    completed: bool = False

    def __post_init__(self) -> None:
        super().__init__(f"interrupted by {signal.Signals(self.signum).name} at step {self.step}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process killed by it: 130 (SIGINT), 143 (SIGTERM)."""
        return 128 + self.signum

    def message(self, command: Sequence[str] | None) -> str:
        """One line: where it stopped, what was saved, and the command that continues (``command``)."""
        if self.completed:
            text = f"{signal.Signals(self.signum).name} received as the job completed (step {self.step})"
        elif self.saved:
            text = f"interrupted at step {self.step}; checkpoint saved"
        elif self.checkpoint is not None:
            text = f"interrupted at step {self.step}; resume continues from {self.checkpoint.name}"
        else:
            text = f"interrupted at step {self.step}; no checkpoint yet, resume starts it over"
        if command:
            text += "; continue with: " + " ".join(shlex.quote(arg) for arg in command)
        return text


class StopSignals:
    """Context manager: SIGINT and SIGTERM ask a running Trainer to stop at the next step boundary.

    Lightning installs its own SIGTERM handler while a Trainer runs (it sets ``trainer.received_sigterm``
    and keeps the handler it found, this one, in its chain); SIGINT is forwarded to it, so both signals
    take the same path. Outside a Trainer run (building the model, reading data) a signal raises
    ``KeyboardInterrupt`` at once. Signals after the first are ignored while the job winds down (as
    Lightning ignores a second Ctrl-C), so the checkpoint and summary.json are written whole.
    ``received`` is the first signal's number.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._forwarding = False
        self._handler = self._handle  # one bound method, so that `is` recognizes it

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._forwarding:  # Lightning's handler calling back the one it found: nothing more to do
            return
        name = signal.Signals(signum).name
        if self.received is not None:
            log_from_handler(log, logging.INFO, "received %s while stopping; ignored", name)
            return
        self.received = signum
        trainer_handler = signal.getsignal(signal.SIGTERM)
        if trainer_handler is self._handler or not callable(trainer_handler):
            raise KeyboardInterrupt  # no Trainer running: stop now
        log_from_handler(log, logging.INFO, "received %s: stopping after the current step", name)
        if signum != signal.SIGTERM:
            self._forwarding = True
            try:
                trainer_handler(signal.SIGTERM, frame)
            finally:
                self._forwarding = False
