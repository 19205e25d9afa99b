"""The optimizer step of manual optimization without Lightning's per-step wrappers, where none is listened to.

In manual optimization a training step's ``self.manual_backward(loss)`` and ``optimizer.step()`` pass through
Lightning's strategy, precision plugin and a closure, and call three hooks on every callback and on the
module (``on_before_backward``, ``on_after_backward``, ``on_before_optimizer_step``), each inside a profiler
context. On a small model (the MNIST VAE: about 5 ms a step on one CPU core) that machinery costs several
per cent of the step. When nothing listens to it (one device, full precision, no profiler, no callback that
defines those hooks, a module that keeps Lightning's ``backward``) the same step is

    zero_grad -> loss.backward() -> module.on_before_optimizer_step(optimizer) -> optimizer.step()

in the same order on the same tensors (fused Adam's ``zero_grad`` and ``step`` without torch's own per-step
Python where that does nothing: :mod:`vae_lab.model.fused_adam`), with Lightning's step counter advanced as
its optimizer wrapper advances it (the manual loop's ``_on_before_step`` / ``_on_after_step``), so
``global_step``, logging, checkpoints and resume are those of the wrapped path, bit for bit
(``tests/model/test_direct_step.py``).
Anything else (DDP, mixed precision, a profiler, a user's callback with one of the hooks) takes Lightning's
own path. :func:`step_counters` carries a checkpoint's step count between Lightning's two loops.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.core.optimizer import LightningOptimizer
from pytorch_lightning.plugins.precision import DoublePrecision, Precision
from pytorch_lightning.profilers import PassThroughProfiler
from pytorch_lightning.strategies import SingleDeviceStrategy
from torch import Tensor

from vae_lab.model import fused_adam

__all__ = ["applies", "listens", "signature_once", "step", "step_counters"]

#: the hooks that Lightning's wrapped backward and optimizer step call on every callback and the module
STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


def listens(callback: Callback, hook: str) -> bool:
    """Whether ``callback`` does something in ``hook``: a method of its own (or, as a ``CallbackGroup`` sets
    them, an attribute of the instance)."""
    return hook in vars(callback) or getattr(type(callback), hook, None) is not getattr(Callback, hook)


def applies(trainer: pl.Trainer, module: pl.LightningModule) -> bool:
    """Whether :func:`step` is the same step as Lightning's wrapped one for this trainer and module."""
    if type(trainer.strategy) is not SingleDeviceStrategy:
        return False
    if type(trainer.strategy.precision_plugin) not in (Precision, DoublePrecision):
        return False
    if type(trainer.profiler) is not PassThroughProfiler:
        return False
    if trainer.gradient_clip_val or trainer.accumulate_grad_batches != 1:
        return False
    if any(listens(callback, hook) for callback in trainer.callbacks for hook in STEP_HOOKS):
        return False
    lightning = pl.LightningModule
    return all(
        getattr(type(module), name) is getattr(lightning, name)
        for name in ("backward", "on_before_backward", "on_after_backward")
    )


def step(module: pl.LightningModule, optimizer: LightningOptimizer, loss: Tensor) -> None:
    """One optimizer step on ``loss``, as ``zero_grad``, ``manual_backward`` and ``optimizer.step()`` take it
    when :func:`applies`: the module's ``on_before_optimizer_step`` runs between backward and step, and the
    manual loop's step counter advances around the step."""
    fused_adam.zero_grad(optimizer.optimizer)
    loss.backward()
    module.on_before_optimizer_step(optimizer.optimizer)
    optimizer._on_before_step()  # the manual loop's: counts the step as ready (and starts no profiler)
    if not fused_adam.step(optimizer.optimizer):  # fused Adam's kernel without torch's wrappers, or torch's
        optimizer.optimizer.step()
    optimizer._on_after_step()  # counts it as completed: global_step advances


F = TypeVar("F", bound=Callable[..., Any])


def signature_once(method: F) -> F:
    """``method`` with its signature computed once (``inspect`` returns a function's ``__signature__``).

    Lightning's training loop asks on every batch whether ``training_step`` takes a ``batch_idx``
    (``inspect.getfullargspec``, which otherwise rebuilds the signature each time): 60-75 us a step of the
    LDA preset on one CPU core, 30 with the signature cached; the answer is the same."""
    method.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return method


def step_counters(checkpoint: dict[str, Any], manual: bool) -> None:
    """Carry the optimizer-step count of a checkpoint over to the loop that resumes it.

    Lightning counts steps (``global_step``) in one of two loop states, the automatic loop's
    ``optim_progress.optimizer.step`` or the manual loop's ``optim_step_progress``, and saves both. A
    checkpoint written by the other loop (vae-lab before manual optimization, or a run with gradient
    clipping) would resume at step 0 in this one; its count is copied over where this loop's is zero.
    """
    loop = checkpoint.get("loops", {}).get("fit_loop", {})
    auto = loop.get("epoch_loop.automatic_optimization.optim_progress", {}).get("optimizer", {}).get("step")
    manual_step = loop.get("epoch_loop.manual_optimization.optim_step_progress")
    if auto is None or manual_step is None:
        return
    source, target = (auto, manual_step) if manual else (manual_step, auto)
    if target["total"]["completed"] == 0 and source["total"]["completed"] > 0:
        for key in ("total", "current"):
            target[key] = dict(source[key])
