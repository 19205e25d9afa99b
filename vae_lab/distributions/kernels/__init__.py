"""Fused CPU kernels, compiled with :func:`torch.utils.cpp_extension.load_inline` on first use.

:func:`von_mises_dz_dconcentration` evaluates :math:`\\partial z/\\partial\\kappa` of the von Mises
distribution in one pass per element, all arithmetic in double (``von_mises_grad.cpp``, shipped beside this
module). The extension is built once per machine and cached by torch (``$TORCH_EXTENSIONS_DIR``, else
``~/.cache/torch_extensions``; concurrent builds, e.g. from pytest-xdist workers, wait on torch's lock).
Nothing is compiled or imported from ``torch.utils.cpp_extension`` until the first call. If the build
fails (no compiler) one warning is logged and :func:`von_mises_dz_dconcentration` returns ``None`` for the
rest of the process, so that the caller falls back to its eager code. ``VAE_LAB_FUSED=0`` in the
environment (read at every call) turns the kernels off.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

__all__ = ["ENV_FLAG", "enabled", "load", "von_mises_dz_dconcentration"]

#: environment variable: "0" turns the fused kernels off (the eager code runs instead)
ENV_FLAG = "VAE_LAB_FUSED"
_SOURCE = Path(__file__).resolve().parent / "von_mises_grad.cpp"
_NAME = "vae_lab_von_mises_grad"
_FLAGS = ["-O3", "-fno-math-errno"]

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_module: ModuleType | None = None
_failed = False


def enabled() -> bool:
    """Whether the fused kernels may be used: not turned off (``VAE_LAB_FUSED=0``), not failed to build."""
    return not _failed and os.environ.get(ENV_FLAG, "1").strip() != "0"


def load() -> ModuleType | None:
    """The compiled extension (built on the first call, then cached), or ``None`` if it cannot be built."""
    global _module, _failed
    if _module is not None or _failed:
        return _module
    with _lock:
        if _module is None and not _failed:
            try:
                from torch.utils.cpp_extension import _get_build_directory, load_inline

                if not (Path(_get_build_directory(_NAME, False)) / f"{_NAME}.so").exists():
                    # a pause of about a minute on a new machine: say why (the console shows no INFO)
                    print(
                        "vae-lab: building the fused von Mises gradient kernel (once per machine, about "
                        "a minute; VAE_LAB_FUSED=0 skips it)",
                        file=sys.stderr,
                        flush=True,
                    )
                _module = load_inline(
                    name=_NAME,
                    cpp_sources=[_SOURCE.read_text()],
                    functions=["dz_dconcentration"],
                    extra_cflags=_FLAGS,
                    verbose=False,
                )
            except Exception as exc:  # no compiler, no headers, a read-only cache: the eager code runs
                _failed = True
                first = str(exc).strip().splitlines()
                _log.warning(
                    "vae_lab: the fused von Mises kernel could not be built (%s: %s); using the eager code",
                    type(exc).__name__,
                    first[0] if first else "",
                )
    return _module


def von_mises_dz_dconcentration(x: Tensor, concentration: Tensor) -> Tensor | None:
    """The fused dz/dkappa for CPU float32/float64 tensors of one dtype and shape, or ``None`` where the
    kernel does not apply (another device or dtype, autograd recording, turned off, not built)."""
    if (
        x.device.type != "cpu"
        or concentration.device.type != "cpu"
        or x.dtype not in (torch.float32, torch.float64)
        or concentration.dtype != x.dtype
        or x.shape != concentration.shape
        or (torch.is_grad_enabled() and (x.requires_grad or concentration.requires_grad))
        or not enabled()
    ):
        return None
    module = load()
    if module is None:
        return None
    return module.dz_dconcentration(x.contiguous(), concentration.contiguous())
