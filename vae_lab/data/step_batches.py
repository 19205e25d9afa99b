"""Several minibatches handed to Lightning as one batch, for a training step that takes one optimizer step on
each (top-level ``steps_per_batch``; :mod:`vae_lab.model.multi_step` runs them).

Lightning's loop does a fixed amount of Python work per batch, around 0.5-1 ms on a 2-core machine (the
fetch, about ten callback hooks, the logger connector, the validation check), and that work also evicts
the model's tensors from the caches, so the step after it runs slower: about 10% of a 5-10 ms MNIST step.
Handed ``k`` minibatches at a time, it runs once per ``k`` optimizer steps. The minibatches are the ones
:class:`vae_lab.data.loader.TensorBatches` yields one by one, in the same order with the same random draws,
so the optimizer steps are the same, bit for bit.

Lightning sees one batch per group and passes the group to its per-batch callback hooks: at
``on_train_batch_start`` it stands for the group's first step and at ``on_train_batch_end`` for the last
step taken (:attr:`StepBatches.used`); :func:`step_args` turns a hook's ``(batch, batch_idx)`` into that
step's minibatch and its index in the epoch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["StepBatches", "step_args"]


class StepBatches(list):  # type: ignore[type-arg]
    """The minibatches (tensors) of one Lightning batch, one optimizer step each, in order. ``used``: how many
    the training step took (fewer where the group ended early: the loader hands the rest out again)."""

    def __init__(self, batches: Any = ()) -> None:
        super().__init__(batches)
        self.used = len(self)


def step_args(batch: Any, batch_idx: int, end: bool) -> tuple[Any, int]:
    """The minibatch and its index in the epoch that a per-batch hook's ``(batch, batch_idx)`` stands for:
    the first of a :class:`StepBatches` at the start of a batch, the last one used at its end (Lightning
    passes the group's first index to both); any other batch as it is."""
    if type(batch) is not StepBatches:
        return batch, batch_idx
    if not end:
        return batch[0], batch_idx
    return batch[batch.used - 1], batch_idx + batch.used - 1
