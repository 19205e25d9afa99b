"""What the benchmarks share: Lightning's output drawn to nowhere, and a figure's verdict against its goal."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Lightning's progress bar and messages drawn to nowhere: their cost stays, their output goes."""
    logging.disable(logging.WARNING)
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


@contextlib.contextmanager
def clock(times: list[tuple[float, float]]) -> Iterator[None]:
    """Appends (wall seconds, CPU seconds of this process) of the block to ``times``. The CPU time counts
    what the process itself did, so it moves less than the wall time when other jobs share the cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    times.append((time.perf_counter() - wall, time.process_time() - cpu))


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"
