"""A training step's metrics written straight to the loggers, without Lightning's ``self.log``.

``self.log`` keeps every value in Lightning's result collection: each call builds the value's metadata and
moves the stored metric to the value's device through ``apply_to_collection``, which deep-copies that
metadata, about a millisecond a call on a 2-core machine; the training loop then reads the collection back
on every batch. For the three ``train/`` scalars of a logging step (one step in ``trainer.log_every_n_steps``)
that was 5 to 7% of the CPU time of an MNIST-sized epoch (``benchmarks/bench_train.py``).

In manual optimization (vae-lab's default: a training step is one optimizer step), :func:`log_step` hands
the same row to the loggers through Lightning's logger connector (the values, the ``epoch`` it adds and the
step it gives its own rows, ``log_metrics`` without a step) and puts the values where ``self.log`` would
have made them visible: ``trainer.callback_metrics`` (summary.json, the sweep's progress lines, callbacks),
``trainer.logged_metrics`` and the progress bar. ``metrics.csv`` and TensorBoard hold the same rows as
before (``tests/model/test_step_metrics.py``). With Lightning's automatic loop (gradient clipping or
accumulation, where a step may span several batches and Lightning writes the last batch's values once)
:func:`log_step` declines and the caller uses ``self.log``.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytorch_lightning as pl
from torch import Tensor

__all__ = ["is_logging_step", "log_step"]

#: what log_step uses of Lightning's logger connector (pytorch-lightning 2.x)
_CONNECTOR = ("log_metrics", "_logged_metrics", "_callback_metrics", "_progress_bar_metrics")


def is_logging_step(module: pl.LightningModule) -> bool:
    """Whether the loggers write this training step's metrics (every ``trainer.log_every_n_steps``, and the
    step that stops training): only then are they worth computing. Outside a Trainer: never (there are no
    loggers)."""
    trainer = module._trainer
    if trainer is None:
        return False
    return (module.global_step + 1) % max(1, trainer.log_every_n_steps) == 0 or trainer.should_stop


def log_step(module: pl.LightningModule, metrics: dict[str, Tensor], prog_bar: Iterable[str] = ()) -> bool:
    """Write ``metrics`` (scalar tensors) as this training step's row, ``prog_bar`` of them also to the
    progress bar; False (nothing written) where ``self.log`` must do it: outside a Trainer's manual
    optimization."""
    trainer = module._trainer
    if trainer is None or module.automatic_optimization:
        return False
    connector = getattr(trainer, "_logger_connector", None)
    if not all(hasattr(connector, name) for name in _CONNECTOR):  # another Lightning: its own path
        return False
    values = {name: value.detach() for name, value in metrics.items()}
    connector.log_metrics(dict(values))  # the loggers' row (step and epoch as Lightning's own rows)
    connector._logged_metrics.update(values)  # also without loggers, as self.log would
    connector._callback_metrics.update(values)
    for name in prog_bar:
        connector._progress_bar_metrics[name] = values[name].item()
    return True
