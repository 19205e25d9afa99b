"""Stopping a whole sweep whose jobs run in other processes (joblib's loky workers, submitit_local's
job processes).

The sweep's main process (the `vae-lab train -m` the user started) holds :class:`SweepStop` while Hydra
runs the sweep. It tells the jobs two things through their environment: its process id
(``VAE_LAB_SWEEP_PID``) and a stop file (``VAE_LAB_SWEEP_STOP``). SIGINT or SIGTERM to the main process
writes the signal's number to the stop file and then waits for the jobs to finish: Hydra's launcher
returns once every job has returned. In each job that runs in another process, :class:`JobWatch` (a
small thread) polls the stop file and the main process; when the file appears, or the main process is
gone (killed with -9), it sends the job's own process the signal, and the job stops at the end of the
step in progress as if it had been signalled itself (:class:`~vae_lab.runs.signals.StopSignals`: a
checkpoint, status ``interrupted``). A job signalled directly (``kill <worker pid>``) writes the stop
file too (:func:`request_stop`): a signal is meant for the whole sweep. Jobs that the launcher starts
after the stop do not train (:func:`stop_requested`) and leave no summary, so that ``resume=true``
starts them afresh.

With Ray (``hydra/launcher=ray``, :class:`vae_lab.ray_launcher.RayLauncher`) the jobs find the two
values in the environment that the launcher gives Ray's workers (with ``HOST_ENV``, the main process's
machine), and a local Ray instance stops like joblib. Ray's ``ray.init`` installs its own SIGTERM handler
in the main process; the launcher puts this module's back (:func:`reclaim_signals`). On a Ray cluster with
other machines the stop file is out of their reach: there the main process stops at once, as before
(:meth:`SweepStop.stop_at_once`), Ray ends the jobs and ``resume=true`` continues them from ``last.ckpt``.
A job on another machine never takes the main process's id for one of its own machine's processes.

A file rather than forwarding the signal: the main process does not know its launcher's workers (loky's
and Ray's processes sit among helper processes that must not be signalled), and a file reaches them all.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from vae_lab.runs.signals import log_from_handler

log = logging.getLogger("vae_lab.runs")

PID_ENV = "VAE_LAB_SWEEP_PID"
STOP_ENV = "VAE_LAB_SWEEP_STOP"
HOST_ENV = "VAE_LAB_SWEEP_HOST"
ENV_KEYS = (PID_ENV, STOP_ENV, HOST_ENV)
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_file() -> Path | None:
    path = os.environ.get(STOP_ENV)
    return Path(path) if path else None


def stop_requested() -> int | None:
    """The number of the signal that stopped the sweep this process belongs to, or None."""
    path = _stop_file()
    if path is None:
        return None
    try:
        text = path.read_text().split()
    except OSError:
        return None
    return int(text[0]) if text and text[0].isdigit() else signal.SIGTERM


def request_stop(signum: int) -> None:
    """Ask every job of this process's sweep to stop (nothing outside a sweep)."""
    path = _stop_file()
    if path is not None and stop_requested() is None:
        with contextlib.suppress(OSError):
            path.write_text(f"{int(signum)}\n")


def record_sweep_dir(sweep_dir: Path) -> None:
    """Note the stopped sweep's directory for the main process's last line (SweepStatus calls it)."""
    path = _stop_file()
    signum = stop_requested()
    if path is not None and signum is not None:
        with contextlib.suppress(OSError):
            path.write_text(f"{signum}\n{sweep_dir}\n")


def stopped_sweep_dir() -> Path | None:
    """The directory :func:`record_sweep_dir` noted, if any."""
    path = _stop_file()
    try:
        lines = path.read_text().splitlines() if path is not None else []
    except OSError:
        return None
    return Path(lines[1]) if len(lines) > 1 else None


def main_pid() -> int | None:
    """The process id of the sweep's main process, when this process runs one of its jobs on the main
    process's machine (None on another machine of a Ray cluster: that id means nothing there)."""
    value = os.environ.get(PID_ENV, "")
    host = os.environ.get(HOST_ENV)
    if host is not None and host != socket.gethostname():
        return None
    return int(value) if value.isdigit() else None


def sweep_env() -> dict[str, str]:
    """The environment variables through which a sweep's jobs find its main process and stop file (for
    launchers whose workers do not inherit the main process's environment, such as Ray's)."""
    return {key: os.environ[key] for key in ENV_KEYS if key in os.environ}


def reclaim_signals() -> None:
    """Put the active :class:`SweepStop`'s handlers back after a library replaced them (``ray.init``
    installs its own SIGTERM handler)."""
    if SweepStop.active is not None:
        SweepStop.active.install_handlers()


def in_worker() -> bool:
    """Whether this process runs a sweep's job in a process other than the sweep's main one."""
    if PID_ENV not in os.environ:
        return False
    pid = main_pid()
    return pid is None or pid != os.getpid()  # None: on another machine


class SweepStop:
    """Context manager for the main process of a sweep: SIGINT and SIGTERM stop every job (see the
    module's docstring); later signals are ignored while the jobs wind down. ``received``: the signal
    that stopped the sweep (also one a job received directly), read after the sweep. ``stop_at_once``:
    set by a launcher whose jobs the stop file cannot reach (a Ray cluster): a signal then ends the main
    process at once (KeyboardInterrupt) and the launcher ends the jobs."""

    active: SweepStop | None = None

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._saved_env: dict[str, str | None] = {}
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.stop_at_once = False

    @property
    def received(self) -> int | None:
        return stop_requested()

    def __enter__(self) -> SweepStop:
        self._dir = tempfile.TemporaryDirectory(prefix="vae-lab-sweep-")
        values = {
            PID_ENV: str(os.getpid()),
            STOP_ENV: str(Path(self._dir.name) / "stop"),
            HOST_ENV: socket.gethostname(),
        }
        for key, value in values.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        self.install_handlers()
        SweepStop.active = self
        return self

    def install_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                previous = signal.signal(signum, self._handle)
                self._previous.setdefault(signum, previous)

    def __exit__(self, *exc: object) -> None:
        SweepStop.active = None
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if stop_requested() is not None:
            log_from_handler(
                log, logging.INFO, "received %s while stopping; ignored", signal.Signals(signum).name
            )
            return
        log_from_handler(
            log, logging.DEBUG, "received %s: stopping every job of the sweep", signal.Signals(signum).name
        )
        request_stop(signum)
        if self.stop_at_once:  # jobs on other machines: their launcher ends them
            raise KeyboardInterrupt


class JobWatch:
    """Context manager for a job that runs in a worker process of a sweep: a daemon thread that signals
    this process when the sweep is stopped or its main process is gone (see the module's docstring).

    While it is active, SIGINT and SIGTERM that land outside the job's own handlers (just before or
    after training) are ignored rather than killing the worker, which the launcher would report as a
    crash; SIGINT (Ctrl-C, sent to the whole process group) stays ignored after it, while the worker waits
    for its next job, and in a joblib (loky) worker SIGTERM too."""

    POLL_S = 0.5

    def __init__(self) -> None:
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._pids: tuple[int | None, int] = (None, 0)
        self._previous: dict[int, Any] = {}
        self._mask: set[signal.Signals] | None = None

    def __enter__(self) -> JobWatch:
        pid, parent = main_pid(), os.getppid()
        self._pids = (pid, parent)
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, signal.SIG_IGN)
            # Ray's workers block SIGINT in every thread: let it reach this one, where Python handles it
            self._mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        self._thread = threading.Thread(target=self._watch, args=(pid, parent), name="vae-lab-sweep-watch")
        self._thread.daemon = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        for signum, handler in self._previous.items():
            # SIGINT stays ignored in a worker between jobs: Ctrl-C reaches the whole process group, and
            # a loky worker idle in its queue's get would die of the KeyboardInterrupt, breaking the pool
            # (BrokenProcessPool, the sweep's exit 1) while the main process winds the sweep down. So does
            # SIGTERM in a loky worker, which a batch system's cancel sends to every process of the job
            # (TerminatedWorkerError); loky ends its own workers with SIGKILL. Ray's keep their handler:
            # Ray shuts its workers down with SIGTERM.
            keep = in_worker() and (signum == signal.SIGINT or (signum == signal.SIGTERM and _loky_worker()))
            signal.signal(signum, signal.SIG_IGN if keep else handler)
        self._previous = {}
        if self._mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
            self._mask = None

    @property
    def orphaned(self) -> bool:
        """Whether the sweep's main process is gone (then the worker exits once its job has stopped)."""
        return not _alive(*self._pids)

    def _watch(self, pid: int | None, parent: int) -> None:
        while not self._done.wait(self.POLL_S):
            signum = stop_requested()
            if signum is None and not _alive(pid, parent):
                log.info("the sweep's main process is gone: stopping")
                signum = signal.SIGTERM
            if signum is not None:
                os.kill(os.getpid(), signum)
                return


def _loky_worker() -> bool:
    """Whether this process is a worker of loky, joblib's process pool (the joblib launcher's)."""
    return type(multiprocessing.current_process()).__name__ == "LokyProcess"


def _alive(pid: int | None, parent: int) -> bool:
    """Whether the sweep's main process ``pid`` still runs; ``parent`` is this process's parent when the
    job started (a worker whose parent changed was orphaned)."""
    if os.getppid() != parent and parent == pid:
        return False
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie: dead, not yet reaped
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
