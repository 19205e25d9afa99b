"""Several optimizer steps per Lightning batch (top-level ``steps_per_batch``), each step still a step to
everything that counts steps.

Lightning's training loop does a fixed amount of Python work per batch: the fetch, the batch-transfer and
callback hooks (about ten), the logger connector, the validation check. On a 2-core machine that is 0.5-1 ms,
and it leaves the model's tensors out of the caches, so the next step runs slower: together about 10% of a
5-10 ms MNIST step outside the step itself (``benchmarks/bench_train.py --blocks``). With
``steps_per_batch = k`` the training loader hands Lightning :class:`~vae_lab.data.step_batches.StepBatches`
of k minibatches (the same minibatches in the same order with the same draws) and :func:`run` takes one
optimizer step on each, doing between two steps what Lightning's loop does between two batches where it
matters:

- the loop's batch counters (``batch_progress``: ready, started, processed, completed; ``is_last_batch``),
  the fetcher's count and the loggers' step (``_batches_that_stepped``) advance per step, so ``batch_idx``,
  ``global_step``, the logging rows (every ``trainer.log_every_n_steps``) and the state in checkpoints are
  those of ``steps_per_batch = 1``;
- the per-batch hooks of callbacks that need every step (class attribute ``multi_step_hooks = "each"``:
  the gradient-variance probe, the progress lines of a sweep) run between the steps with each step's
  minibatch and index; Lightning runs them (and those that need only its batches, ``"once"``: the
  progress bar, Lightning's checkpoints) at the group's start and end, where
  :func:`~vae_lab.data.step_batches.step_args` gives the step the group stands for;
- where Lightning's loop would do something after a step (stop: ``max_steps``, the end of an epoch or of
  ``limit_train_batches``, ``trainer.should_stop``; validate, also every n steps inside an epoch; save a
  checkpoint every n steps) the group ends at that step and Lightning does it; the loader hands the
  minibatches not taken out again (its position and the transform's draws go back,
  :meth:`~vae_lab.data.loader.TensorBatches.unused`), so the next batch, the next epoch or a resume from a
  checkpoint saved there draws what one step a batch would. SIGTERM/SIGINT raise Lightning's
  ``SIGTERMException`` at the end of the step they arrive in, as its loop does. Two things happen at a
  group's end instead of a step's: a checkpoint after ``train_time_interval``, and a
  ``trainer.should_stop`` that an ``"each"`` callback's batch hook sets (one step later: Lightning's loop
  checks it between a step's hooks and the next step); vae-lab's callbacks do neither.

Where that would not be the same run (:func:`why_not` says why, in the log) the fit takes one step per
batch: Lightning's own optimizer step (DDP, mixed precision, a profiler, clipping, accumulation), data that
is not vae-lab's ``TensorBatches``, or a model or callback with per-batch hooks that does not say how it
takes several steps a batch (``tests/model/test_multi_step.py`` checks every step's view of the loop, where
fits stop, validate and checkpoint, and interrupted runs resumed with any ``steps_per_batch``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.model_helpers import is_overridden
from torch import Tensor

from vae_lab.data.loader import TensorBatches
from vae_lab.data.step_batches import StepBatches
from vae_lab.model.direct_step import listens
from vae_lab.runs.callback_group import CallbackGroup

__all__ = ["EACH", "ONCE", "Plan", "plan", "run", "start_epoch"]

log = logging.getLogger(__name__)

#: ``multi_step_hooks`` of a callback whose batch hooks must see every optimizer step
EACH = "each"
#: ``multi_step_hooks`` of a callback whose batch hooks need only Lightning's batches
ONCE = "once"
BATCH_HOOKS = ("on_train_batch_start", "on_train_batch_end")

Hook = Callable[..., Any]


@dataclass
class Plan:
    """A fit's optimizer steps per Lightning batch and the batch hooks :func:`run` calls between them."""

    steps: int = 1
    starts: list[Hook] = field(default_factory=list)
    ends: list[Hook] = field(default_factory=list)
    #: checkpoints every n steps: a Lightning batch ends at each multiple (ModelCheckpoint saves there)
    every_n: list[int] = field(default_factory=list)


def _role(callback: Callback) -> str | None:
    """How ``callback`` takes a multi-step batch: EACH, ONCE, "" (no batch hooks) or None (unknown)."""
    if not any(listens(callback, hook) for hook in BATCH_HOOKS):
        return ""
    if isinstance(callback, CallbackGroup):
        roles = {_role(member) for member in callback.callbacks} - {""}
        return roles.pop() if len(roles) == 1 else None
    if isinstance(callback, ModelCheckpoint):  # Lightning's saves every n steps or after a time
        return ONCE
    return getattr(callback, "multi_step_hooks", None)


def why_not(trainer: pl.Trainer, module: pl.LightningModule, direct: bool) -> str | None:
    """Why this fit must take one optimizer step per Lightning batch, or None where several are the same
    run."""
    if not direct:
        return "Lightning takes the optimizer step (DDP, mixed precision, profiler, clipping or accumulation)"
    if not isinstance(trainer.train_dataloader, TensorBatches):
        return "the training data is not vae-lab's TensorBatches"
    if any(is_overridden(hook, module, pl.LightningModule) for hook in BATCH_HOOKS):
        return "the model has per-batch hooks of its own"
    for callback in trainer.callbacks:
        role = _role(callback)
        if role is None:
            return f"the callback {type(callback).__name__} has per-batch hooks"
    return None


def plan(trainer: pl.Trainer, module: pl.LightningModule, steps: int, direct: bool) -> Plan:
    """The fit's :class:`Plan` for ``steps`` optimizer steps per Lightning batch (one where
    :func:`why_not` has a reason, which is logged)."""
    if steps == 1:
        return Plan()
    reason = why_not(trainer, module, direct)
    if reason is not None:
        log.info("steps_per_batch=%d: one step per batch in this fit, as %s", steps, reason)
        return Plan()
    each = [c for c in trainer.callbacks if _role(c) == EACH]
    starts = [getattr(c, BATCH_HOOKS[0]) for c in each if listens(c, BATCH_HOOKS[0])]
    ends = [getattr(c, BATCH_HOOKS[1]) for c in each if listens(c, BATCH_HOOKS[1])]
    every_n = [c._every_n_train_steps for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    return Plan(steps, starts, ends, [n for n in every_n if n > 0])


def start_epoch(trainer: pl.Trainer, fit_plan: Plan) -> None:
    """Tell the epoch's training loader how many minibatches to group (it reads this at its first batch;
    a loader reloaded for the epoch is a new one)."""
    loader = trainer.train_dataloader
    if isinstance(loader, TensorBatches):
        loader.steps_per_batch = fit_plan.steps


def run(
    module: pl.LightningModule, batches: StepBatches, batch_idx: int, step: Callable[[Tensor], Tensor]
) -> Tensor:
    """Take ``step(x)`` (one optimizer step, returning the detached loss) on each minibatch of ``batches``,
    the Lightning batch of index ``batch_idx``, with Lightning's per-batch bookkeeping between steps (the
    module docstring); returns the last loss, as the training step of one batch returns its loss."""
    trainer = module.trainer
    fit_plan: Plan = module._multi_step  # type: ignore[assignment]
    loop = trainer.fit_loop.epoch_loop
    progress = loop.batch_progress
    fetcher = trainer.fit_loop._data_fetcher  # counts the group as one batch fetched
    progress.is_last_batch = progress.current.ready >= fetcher.length  # as one step a batch tells it
    loss = step(batches[0])
    used = len(batches)
    for j in range(1, len(batches)):
        # where Lightning's loop stops after step j - 1 (max_steps, the epoch's or limit's end, a stop asked
        # for), validates or saves a checkpoint every n steps, it takes that step's end itself: the group
        # ends there, and the loader hands its other minibatches out again
        if (
            loop._is_training_done
            or (trainer.should_stop and trainer.fit_loop._can_stop_early)
            or loop._should_check_val_fx(fetcher)
            or any(trainer.global_step % n == 0 for n in fit_plan.every_n)
        ):
            used = j
            break
        progress.increment_processed()
        for hook in fit_plan.ends:
            hook(trainer, module, {"loss": loss}, batches[j - 1], batch_idx + j - 1)
        progress.increment_completed()
        loop._batches_that_stepped += 1
        if trainer.received_sigterm:  # SIGTERM or SIGINT: Lightning's loop stops at this step's end
            _settle(trainer, fetcher, batches, j)
            raise SIGTERMException
        progress.increment_ready()
        progress.is_last_batch = progress.current.ready >= fetcher.length
        for hook in fit_plan.starts:
            hook(trainer, module, batches[j], batch_idx + j)
        progress.increment_started()
        loss = step(batches[j])
    _settle(trainer, fetcher, batches, used)
    return loss


def _settle(trainer: pl.Trainer, fetcher: Any, batches: StepBatches, used: int) -> None:
    """Record that ``used`` minibatches of ``batches`` were taken: the loader's position goes back by the
    others (a checkpoint then resumes with them), and the fetcher counts them as one step a batch does."""
    batches.used = used
    if used < len(batches):
        trainer.train_dataloader.unused(len(batches) - used)
    fetcher.fetched += used - 1
    fetcher.done = fetcher.fetched >= fetcher.length
