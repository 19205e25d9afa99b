"""Start-up: torch and Lightning imported with Python's garbage collector paused.

Importing torch, ``torch._dynamo`` (which Lightning imports) and Lightning creates about a million objects
that live as long as the process. Python's cyclic garbage collector runs while they are created, and each
of its full collections walks every object created so far: about 720 young, 66 middle and 5 full
collections, 0.5 s of a 2.5 s import on a 2-core machine (measured with ``gc.callbacks``), in every
`vae-lab train`, `eval` and `variance` command and every sweep worker, before the first training step.

:func:`import_without_gc` imports modules with the collector off and then moves every object the process
holds into the collector's permanent generation (:func:`gc.freeze`), so that later full collections, in
training too, skip them; the collector runs as before afterwards. Reference counting frees objects as
usual throughout; only cyclic garbage that exists at the freeze stays (small: the first import happens
before any job has built a model). The freeze is done once per process, where the modules are first
imported: a sweep's second job in the same process finds them imported and freezes nothing, so a finished
job's model is collected as usual.
"""

from __future__ import annotations

import gc
import importlib
import sys


def import_without_gc(*names: str) -> None:
    """Import the modules ``names`` (where any is not yet imported) with the garbage collector paused, then
    freeze what the process holds (:func:`gc.freeze`) and let the collector run again as it did."""
    if all(name in sys.modules for name in names):
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        for name in names:
            importlib.import_module(name)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
