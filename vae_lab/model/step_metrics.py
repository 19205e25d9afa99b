"""A training step's metrics written straight to the loggers, without Lightning's ``self.log``.

``self.log`` keeps every value in Lightning's result collection: each call builds the value's metadata and
moves the stored metric to the value's device through ``apply_to_collection``, which deep-copies that
metadata, about a millisecond a call on a 2-core machine; the training loop then reads the collection back
on every batch. For the three ``train/`` scalars of a logging step (one step in ``trainer.log_every_n_steps``)
that was 5 to 7% of the CPU time of an MNIST-sized epoch (``benchmarks/bench_train.py``).

In manual optimization (vae-lab's default: a training step is one optimizer step), :func:`log_step` hands
the same row to the loggers as Lightning's logger connector writes it (the values, the ``epoch`` it adds and
the step it gives its own rows: ``log_metrics`` without a step) and puts the values where ``self.log`` would
have made them visible: ``trainer.callback_metrics`` (summary.json, the sweep's progress lines, callbacks),
``trainer.logged_metrics`` and the progress bar. ``metrics.csv`` and TensorBoard hold the same rows as
before (``tests/model/test_step_metrics.py``).

The connector also saves every logger after every row: an append to ``metrics.csv`` (a stat, an open and a
close) and a flush of TensorBoard's event file, which waits for its writer thread; with the rows in
between, 0.9-1.5 ms a row on a 2-core AMD EPYC, of which the saves took 0.25-0.8 ms (every 10 steps of a
5 ms MNIST step; more on a network file system). The training rows are saved at most every
:data:`SAVE_EVERY_S` seconds instead, the first one at once. Nothing that resume or a report reads is
later for it: the model saves the loggers before each checkpoint (:func:`save_loggers`), and Lightning saves
them on each of its own rows (validation and test metrics), when training stops, and when a fit ends or
fails (the loggers' ``finalize``). Rows in memory when a process is killed outright come after its last
checkpoint, and a resumed run drops and writes those again (:mod:`vae_lab.runs.logs`).

With Lightning's automatic loop (gradient clipping or accumulation, where a step may span several batches
and Lightning writes the last batch's values once) :func:`log_step` declines and the caller uses
``self.log``.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Iterable

import pytorch_lightning as pl
from lightning_fabric.utilities.apply_func import convert_tensors_to_scalars
from torch import Tensor

__all__ = ["is_logging_step", "log_step", "save_loggers"]

#: what log_step uses of Lightning's logger connector (pytorch-lightning 2.x)
_CONNECTOR = ("_logged_metrics", "_callback_metrics", "_progress_bar_metrics")
#: seconds between two saves of the loggers by training rows (Lightning's connector saves on every row)
SAVE_EVERY_S = 5.0
#: when the training rows last saved a trainer's loggers (``_clock``: time.monotonic)
_saved_at: weakref.WeakKeyDictionary[pl.Trainer, float] = weakref.WeakKeyDictionary()
_clock = time.monotonic


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
    if not all(hasattr(connector, name) for name in _CONNECTOR) or not hasattr(
        trainer.fit_loop.epoch_loop, "_batches_that_stepped"
    ):  # another Lightning: its own path
        return False
    values = {name: value.detach() for name, value in metrics.items()}
    _write_row(trainer, values)
    connector._logged_metrics.update(values)  # also without loggers, as self.log would
    connector._callback_metrics.update(values)
    for name in prog_bar:
        connector._progress_bar_metrics[name] = values[name].item()
    return True


def _write_row(trainer: pl.Trainer, values: dict[str, Tensor]) -> None:
    """The loggers' row of ``values``, as Lightning's ``_LoggerConnector.log_metrics`` writes one without a
    step (the values as numbers, the ``epoch`` it adds, its own rows' step: the batches that stepped), with
    the loggers saved only where :data:`SAVE_EVERY_S` seconds have passed since the rows last saved them."""
    if not trainer.loggers:
        return
    row = convert_tensors_to_scalars(values)
    row.setdefault("epoch", trainer.current_epoch)
    step = trainer.fit_loop.epoch_loop._batches_that_stepped
    for logger in trainer.loggers:
        logger.log_metrics(metrics=row, step=step)
    if _clock() - _saved_at.get(trainer, -math.inf) >= SAVE_EVERY_S:
        save_loggers(trainer)


def save_loggers(trainer: pl.Trainer) -> None:
    """Save every logger of ``trainer`` (rows kept in memory go to disk). The model calls it before each
    checkpoint, so that a checkpoint's rows are on disk before the checkpoint is, whatever saves it."""
    for logger in trainer.loggers:
        logger.save()
    _saved_at[trainer] = _clock()
