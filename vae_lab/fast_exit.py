"""Leave the process without the interpreter's teardown, once a command has finished its work.

A Python process that has imported torch and Lightning takes 1.1-1.4 s to exit after its last line on
a 2-core machine: the interpreter tears down some 2,800 modules and torch's C++ state one by one. None of
that writes anything. :func:`exit_now` does what an ordinary exit does that matters to the outputs, in the
same order as CPython's ``Py_FinalizeEx``, and then ends the process with :func:`os._exit`:

1. waits for the threads that are not daemons (as ``threading._shutdown`` does);
2. runs the ``atexit`` handlers (``logging.shutdown`` flushes and closes the logs; multiprocessing ends
   its daemonic children; Ray and loky stop their workers);
3. flushes every Python file object still open for writing (a file whose owner never closed it would be
   flushed by its finalizer during teardown, which :func:`os._exit` skips), then ``sys.stdout`` and
   ``sys.stderr``, and C's stdio buffers (``fflush(NULL)``, for output printed by compiled code).

``VAE_LAB_FULL_EXIT=1`` restores the interpreter's own exit (e.g. for a tool that reports at teardown),
after step 3: the interpreter's teardown leaves unflushed a file that was never closed once
:func:`gc.freeze` (:mod:`vae_lab.import_gc`) holds it (seen with CPython 3.11).
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import io
import os
import sys
import threading
from typing import NoReturn

FULL_EXIT_ENV = "VAE_LAB_FULL_EXIT"
# exact types: isinstance against io.IOBase (an ABC) over every object would take 0.4 s
_WRITERS = (io.TextIOWrapper, io.BufferedWriter, io.BufferedRandom)


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` after the steps of an ordinary exit that matter to its outputs."""
    if os.environ.get(FULL_EXIT_ENV, "") not in ("", "0"):
        _flush_open_files()  # the interpreter's teardown does not flush a file object that gc.freeze() holds
        sys.exit(code)
    _join_threads()
    atexit._run_exitfuncs()
    _flush_open_files()
    os._exit(code)


def _join_threads() -> None:
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main and not thread.daemon:
            thread.join()


def _flush_open_files() -> None:
    gc.unfreeze()  # gc.get_objects() does not list what vae_lab.import_gc froze
    open_files = [f for f in gc.get_objects() if type(f) in _WRITERS]
    for f in [*open_files, sys.stdout, sys.stderr]:
        try:
            if f is not None and not f.closed:
                f.flush()
        except (OSError, ValueError):  # a closed pipe or a detached buffer: nothing left to save
            pass
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to ask (not on Linux or macOS)
        pass
