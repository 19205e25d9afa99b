"""Catch tensors that ignore the device and dtype of their inputs, on a machine without a GPU.

A leak is a tensor made from torch's defaults instead of from the inputs: ``torch.tensor(0.5)``,
``torch.zeros(n)``, ``torch.randperm(n, generator=g)``, ``torch.ones(n, device=x.device)`` (no dtype).
On a CPU in float32 the defaults *are* the inputs' device and dtype, so a leak goes unseen until the code
meets a GPU or float64 inputs. :func:`defaults_elsewhere` moves the defaults out of the way: inside it,
torch's default device is ``meta`` (a device that holds no data) and its default floating dtype is the
other precision than the inputs', and a :class:`~torch.utils._python_dispatch.TorchDispatchMode` watches
every operator. With the inputs on the CPU:

- a factory without ``device=`` makes a ``meta`` tensor; the first operator that reads it is reported,
  with the vae_lab line that called it (also where torch would let a 0-dim tensor of another device take
  part, and where the number is only read on the host: ``float()`` of a meta tensor raises);
- a factory with a device but without ``dtype=`` makes a tensor of the other precision: an operator whose
  floating-point tensor arguments mix float32 and float64 is reported (casts and copies aside: they are
  how deliberate float64 evaluation enters and leaves), and an output of the wrong precision fails the
  caller's dtype check;
- a draw without ``device=`` (``torch.randperm(n, generator=g)``) lands on ``meta`` too: reported.

So code that follows its inputs passes, and code that would put a tensor on the CPU (or in float32) while
its inputs are on a GPU (or in float64) fails here, on any machine.

One limit: torch does not carry the default device into the autograd engine's backward pass (the watch
and the default dtype do reach it). So a test calls the functions that custom backwards run
(``von_mises_dz_dconcentration``, ``one_minus_bessel_ratio``) directly as well.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

FLOATS = (torch.float32, torch.float64)
#: operators that convert between precisions on purpose (float64 evaluation of a float32 input, and back)
_CASTS = {"aten._to_copy.default", "aten.copy_.default", "aten.copy.default"}


class DeviceLeak(AssertionError):
    """An operator met a tensor made from torch's defaults instead of from the inputs."""


def _caller() -> str:
    frames = [f for f in traceback.extract_stack() if "/vae_lab/" in f.filename.replace("\\", "/")]
    if not frames:
        return "outside vae_lab"
    f = frames[-1]
    return f"{f.filename.split('/vae_lab/')[-1]}:{f.lineno} ({f.line})"


class _Watch(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        name = str(func)
        if any(t.device.type == "meta" for t in inputs):
            raise DeviceLeak(f"{name} read a tensor on the default device (meta), at vae_lab/{_caller()}")
        precisions = {t.dtype for t in inputs if t.dtype in FLOATS}
        if len(precisions) > 1 and name not in _CASTS:
            raise DeviceLeak(f"{name} mixed float32 and float64 tensors, at vae_lab/{_caller()}")
        out = func(*args, **kwargs)
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if any(t.device.type == "meta" for t in outputs):
            raise DeviceLeak(f"{name} made a tensor on the default device (meta), at vae_lab/{_caller()}")
        return out


@contextmanager
def defaults_elsewhere(dtype: torch.dtype) -> Iterator[None]:
    """Run the body with torch's defaults unlike inputs of ``dtype`` on the CPU (see the module docstring):
    default device ``meta``, default dtype the other precision; any operator that meets a tensor made from
    those defaults raises :class:`DeviceLeak`."""
    assert dtype in FLOATS, dtype
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == torch.float32 else torch.float32)
    try:
        with torch.device("meta"), _Watch():
            yield
    finally:
        torch.set_default_dtype(previous)


def assert_follows(tensors: dict[str, torch.Tensor | None], dtype: torch.dtype) -> None:
    """Every tensor is on the CPU; the floating-point ones have ``dtype``."""
    for name, t in tensors.items():
        if t is None:
            continue
        assert t.device.type == "cpu", f"{name} is on {t.device}"
        if t.is_floating_point():
            assert t.dtype == dtype, f"{name} is {t.dtype}, its inputs {dtype}"
