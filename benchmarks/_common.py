"""What the benchmarks share: Lightning's output drawn to nowhere, and a figure's verdict against its goal."""

from __future__ import annotations

import contextlib
import logging
import os
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


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"
