"""Several stateless callbacks behind one, so that Lightning's per-step hook calls cost one callback.

Lightning calls every hook of every callback on every step (``on_train_batch_start``,
``on_before_backward``, ``on_after_backward``, ``on_before_optimizer_step``, ``on_train_batch_end``),
whether the callback defines it or not, each call inside a profiler context named after the callback's
``state_key``. With a dozen probes and views that is about a tenth of a small model's step (the LDA
preset's 3 ms). :class:`CallbackGroup` holds the probes and views that keep no state in checkpoints and
calls, for each hook, only the members that define it.

:func:`group_callbacks` builds the list a Trainer gets: callbacks with a state of their own (the progress
bar, checkpoints, the resume state, anything with ``state_dict`` or checkpoint hooks) stay as they are,
the others go into one group at the place of the first of them. :func:`members` lists a Trainer's
callbacks with the groups opened, for code that looks a callback up by type.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pytorch_lightning.callbacks import Callback, Checkpoint, ProgressBar

#: the hooks of Lightning's Callback that a group forwards (everything but the state's own methods)
HOOKS = tuple(
    name
    for name, value in vars(Callback).items()
    if callable(value) and (name.startswith("on_") or name in ("setup", "teardown"))
)
#: hooks through which a callback keeps state in a checkpoint: such a callback stays outside a group
_STATEFUL = ("state_dict", "load_state_dict", "on_save_checkpoint", "on_load_checkpoint")


def _defines(callback: Callback, hook: str) -> bool:
    return getattr(type(callback), hook, None) is not getattr(Callback, hook)


def groupable(callback: Callback) -> bool:
    """Whether ``callback`` keeps no state of its own in checkpoints and has no role Lightning looks up by
    type (progress bar, checkpointing)."""
    if isinstance(callback, ProgressBar | Checkpoint | CallbackGroup):
        return False
    return not any(_defines(callback, hook) for hook in _STATEFUL)


class CallbackGroup(Callback):
    """Callbacks that Lightning sees as one: each hook calls the members that define it, in order."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)
        refused = [type(c).__name__ for c in self.callbacks if not groupable(c)]
        if refused:
            raise ValueError(f"callbacks with a state of their own cannot be grouped: {', '.join(refused)}")
        for hook in HOOKS:
            methods = [getattr(c, hook) for c in self.callbacks if _defines(c, hook)]
            if methods:  # else the base class's no-op stays
                setattr(self, hook, _forward(methods))

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in ("log", "log_dict"):  # Lightning hands each callback the module's logging functions
            for callback in self.callbacks:
                setattr(callback, name, value)

    def __repr__(self) -> str:
        return f"CallbackGroup({', '.join(type(c).__name__ for c in self.callbacks)})"


def _forward(methods: list[Any]) -> Any:
    def hook(*args: Any, **kwargs: Any) -> None:
        for method in methods:
            method(*args, **kwargs)

    return hook


def group_callbacks(callbacks: Iterable[Callback]) -> list[Callback]:
    """``callbacks`` with the groupable ones (two or more) replaced by one :class:`CallbackGroup` at the
    place of the first."""
    callbacks = list(callbacks)
    grouped = [c for c in callbacks if groupable(c)]
    if len(grouped) < 2:
        return callbacks
    out: list[Callback] = []
    for callback in callbacks:
        if callback is grouped[0]:
            out.append(CallbackGroup(grouped))
        elif not groupable(callback):
            out.append(callback)
    return out


def members(callbacks: Iterable[Callback]) -> Iterator[Callback]:
    """The callbacks, with every group replaced by its members."""
    for callback in callbacks:
        if isinstance(callback, CallbackGroup):
            yield from callback.callbacks
        else:
            yield callback
