"""Fused CPU kernels, compiled with :func:`torch.utils.cpp_extension.load_inline` on first use.

:func:`von_mises_dz_dconcentration` evaluates :math:`\\partial z/\\partial\\kappa` of the von Mises
distribution in one pass per element (``von_mises_grad.cpp``), and :func:`best_fisher_draw` draws its
Best-Fisher samples (``best_fisher.cpp``), all arithmetic in double; both sources ship beside this module
and build into one extension. It is built once per machine and cached by torch
(``$TORCH_EXTENSIONS_DIR``, else ``~/.cache/torch_extensions``; concurrent builds, e.g. from pytest-xdist
workers, wait on torch's lock). Built with OpenMP, both split large inputs over torch's intra-op threads
(``torch.set_num_threads``); the results do not depend on the thread count. Nothing is compiled or imported
from ``torch.utils.cpp_extension`` until the first call. Where the compiler lacks OpenMP, the build without
it runs on one thread (one warning). If no build succeeds (no compiler) one warning is logged and both
functions return ``None`` for the rest of the process, so that the callers fall back to their eager code.
``VAE_LAB_FUSED=0`` in the environment (read at every call) turns the kernels off.
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

__all__ = ["ENV_FLAG", "best_fisher_draw", "enabled", "load", "von_mises_dz_dconcentration"]

#: environment variable: "0" turns the fused kernels off (the eager code runs instead)
ENV_FLAG = "VAE_LAB_FUSED"
# joined in this order into one translation unit: best_fisher.cpp uses von_mises_grad.cpp's vector helpers
_SOURCES = [Path(__file__).resolve().parent / name for name in ("von_mises_grad.cpp", "best_fisher.cpp")]
_NAME = "vae_lab_von_mises"
_FUNCTIONS = ["dz_dconcentration", "best_fisher", "philox4x32", "threads_used"]
# Builds tried in order, (name, compiler flags, linker flags). With OpenMP first: at::parallel_for is an
# inline template that splits the work over torch's intra-op threads only where the extension itself is
# compiled with OpenMP (ATen/ParallelOpenMP.h); the extension then links to the libgomp.so.1 that torch has
# already loaded, so torch.set_num_threads governs it. Without OpenMP (a compiler that lacks it, e.g.
# Apple's clang) the kernels run on the calling thread.
_BUILDS = (
    (_NAME, ["-O3", "-fno-math-errno", "-fopenmp"], ["-fopenmp"]),
    (f"{_NAME}_serial", ["-O3", "-fno-math-errno"], []),
)

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
            errors: list[Exception] = []
            for name, cflags, ldflags in _BUILDS:
                try:
                    _module = _build(name, cflags, ldflags)
                    break
                except Exception as exc:  # no compiler, no OpenMP, no headers, a read-only cache
                    errors.append(exc)
            if _module is None:  # the eager code runs
                _failed = True
                _log.warning(
                    "vae_lab: the fused von Mises kernels could not be built (%s); using the eager code",
                    _first_line(errors[0]),
                )
            elif errors:
                _log.warning(
                    "vae_lab: the fused von Mises kernels were built without OpenMP (%s); they run on one "
                    "thread",
                    _first_line(errors[0]),
                )
    return _module


def _build(name: str, cflags: list[str], ldflags: list[str]) -> ModuleType:
    """Compile (or load from torch's cache) the extension under ``name`` with these flags."""
    from torch.utils.cpp_extension import _get_build_directory, load_inline

    if not (Path(_get_build_directory(name, False)) / f"{name}.so").exists():
        # a pause of about a minute on a new machine: say why (the console shows no INFO)
        print(
            "vae-lab: building the fused von Mises kernels (once per machine, about a minute; "
            "VAE_LAB_FUSED=0 skips it)",
            file=sys.stderr,
            flush=True,
        )
    return load_inline(
        name=name,
        cpp_sources=[source.read_text() for source in _SOURCES],
        functions=_FUNCTIONS,
        extra_cflags=cflags,
        extra_ldflags=ldflags,
        verbose=False,
    )


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _applies(*tensors: Tensor) -> ModuleType | None:
    """The extension, if the kernels apply to these tensors: CPU, float32 or float64 (one dtype), autograd
    not recording through them, turned on and built; else ``None``."""
    dtype = tensors[0].dtype
    if (
        any(t.device.type != "cpu" or t.dtype != dtype for t in tensors)
        or dtype not in (torch.float32, torch.float64)
        or (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
        or not enabled()
    ):
        return None
    return load()


def von_mises_dz_dconcentration(x: Tensor, concentration: Tensor) -> Tensor | None:
    """The fused dz/dkappa for CPU float32/float64 tensors of one dtype and shape, or ``None`` where the
    kernel does not apply (another device or dtype, autograd recording, turned off, not built)."""
    if x.shape != concentration.shape or (module := _applies(x, concentration)) is None:
        return None
    return module.dz_dconcentration(x.contiguous(), concentration.contiguous())


def best_fisher_draw(
    concentration: Tensor, top: float, generator: torch.Generator | None = None, noise: bool = False
) -> Tensor | None:
    """One Best-Fisher draw per element of ``concentration`` (flattened): the centred sample, its modulus
    clamped to ``top``, or with ``noise`` the accepted signed noise in [-1, 1). ``None`` where the kernel
    does not apply (as :func:`von_mises_dz_dconcentration`). Its Philox key, 64 bits, comes from
    ``generator`` (torch's global generator by default)."""
    if (module := _applies(concentration)) is None:
        return None
    key = torch.randint(
        0, 1 << 32, (2,), dtype=torch.int64, device=concentration.device, generator=generator
    ).tolist()
    return module.best_fisher(concentration.detach().reshape(-1).contiguous(), key[0], key[1], noise, top)
