"""Several optimizer steps per Lightning batch (vae_lab.model.multi_step, top-level ``steps_per_batch``): the
same run as one step a batch, step for step (parameters, counters, the hooks that see every step, where it
stops, what a checkpoint records); one step a batch wherever that could differ."""

from __future__ import annotations

import logging

import pytest
import pytorch_lightning as pl
import torch
from conftest import quiet_trainer, tiny_vae
from pytorch_lightning.utilities.exceptions import SIGTERMException

from vae_lab.data.loader import TensorBatches
from vae_lab.data.step_batches import StepBatches, step_args
from vae_lab.estimators import ReparamEstimator
from vae_lab.runs.callback_group import CallbackGroup
from vae_lab.runs.checkpoints import InterruptCheckpoint
from vae_lab.runs.checkpoints import ModelCheckpoint as VaeLabCheckpoint
from vae_lab.runs.resume_state import ResumeState


class Record(pl.Callback):
    """Every step's view of the loop, as a callback that needs every step sees it."""

    multi_step_hooks = "each"

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def _state(self, trainer: pl.Trainer, hook: str, batch: torch.Tensor, batch_idx: int) -> tuple:
        loop = trainer.fit_loop.epoch_loop
        progress = loop.batch_progress
        counts = (progress.current.ready, progress.current.completed, progress.total.processed)
        return (hook, trainer.current_epoch, trainer.global_step, batch_idx, loop._batches_that_stepped,
                counts, progress.is_last_batch, batch.sum().item())  # fmt: skip

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        batch, batch_idx = step_args(batch, batch_idx, end=False)  # the step a group stands for
        self.seen.append(self._state(trainer, "start", batch, batch_idx))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        batch, batch_idx = step_args(batch, batch_idx, end=True)
        self.seen.append(self._state(trainer, "end", batch, batch_idx) + (outputs["loss"].item(),))

    def on_validation_end(self, trainer, pl_module) -> None:
        self.seen.append(("validated", trainer.global_step, trainer.callback_metrics["val/elbo"].item()))


class SlowStart(pl.Callback):
    """A per-batch hook of another name, as unknown."""

    def on_train_batch_start(self, *args) -> None:
        pass


class Unmarked(pl.Callback):
    """A callback with a per-batch hook and no word on several steps a batch."""

    def on_train_batch_end(self, *args) -> None:
        pass


def data(rows: int = 70) -> TensorBatches:
    x = torch.rand(rows, 4, generator=torch.Generator().manual_seed(1))
    return TensorBatches(
        x, batch_size=8, shuffle=True, seed=0, transform=lambda x, g: torch.bernoulli(x, generator=g)
    )


def fit(steps_per_batch: int, *callbacks: pl.Callback, ckpt_path=None, val=None, **trainer_kwargs):
    """A fit of 9 batches an epoch (70 rows, the last batch 6), counting the training step's calls."""
    torch.manual_seed(0)
    vae = tiny_vae(estimator=ReparamEstimator(), input_dim=4)
    vae.steps_per_batch = steps_per_batch
    calls = []
    step = vae.training_step

    def counted(batch, batch_idx: int):
        calls.append(len(batch) if type(batch) is StepBatches else 1)
        return step(batch, batch_idx)

    vae.training_step = counted
    trainer = quiet_trainer(callbacks=list(callbacks), **{"max_epochs": 3, **trainer_kwargs})
    trainer.fit(vae, train_dataloaders=data(), val_dataloaders=val, ckpt_path=ckpt_path)
    return vae, trainer, calls


def assert_same_state(a, b, path: str = "") -> None:
    """Equal nested dicts and lists, tensors bit for bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_state(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


SCHEDULES = {
    "validation at each epoch's end": {"val": True},
    "validation twice an epoch": {"val": True, "val_check_interval": 0.5},
    "validation every 5 steps, across epochs": {
        "val": True,
        "check_val_every_n_epoch": None,
        "val_check_interval": 5,
    },
    "checkpoints every 4 steps": {"checkpoint": 4},
}


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("steps", [2, 4, 9, 10])
def test_several_steps_a_batch_are_the_steps_of_one_a_batch_bit_for_bit(steps, schedule, tmp_path):
    kwargs = dict(SCHEDULES[schedule])
    val = kwargs.pop("val", False)
    runs = []
    for k in (1, steps):
        record = Record()
        callbacks = [CallbackGroup([record, Unhooked()])]
        if "checkpoint" in kwargs:
            every = kwargs["checkpoint"]
            callbacks.append(VaeLabCheckpoint(tmp_path / str(k), every_n_train_steps=every, save_top_k=-1))
        trainer_kwargs = {key: value for key, value in kwargs.items() if key != "checkpoint"}
        vae, trainer, calls = fit(
            k,
            *callbacks,
            val=data(16) if val else None,
            enable_checkpointing="checkpoint" in kwargs,
            **trainer_kwargs,
        )
        runs.append((vae, trainer, calls, record.seen))
    (vae_1, trainer_1, calls_1, seen_1), (vae_k, trainer_k, calls_k, seen_k) = runs
    assert calls_1 == [1] * 27 and max(calls_k) == min(steps, 9)  # groups of up to `steps`
    assert sum(calls_k) >= 27  # a group that ends early hands its other minibatches out again
    assert trainer_k.global_step == trainer_1.global_step == 27
    if val:
        assert [entry for entry in seen_k if entry[0] == "validated"]
    if "checkpoint" in kwargs:  # saved at the same steps, the same state
        files = sorted(path.name for path in (tmp_path / "1").iterdir())
        assert len(files) == 27 // kwargs["checkpoint"]
        assert files == sorted(path.name for path in (tmp_path / str(steps)).iterdir())
        for name in files:
            a, b = (torch.load(tmp_path / str(k) / name, weights_only=False) for k in (1, steps))
            for key in ("loops", "state_dict", "optimizer_states", "global_step"):
                assert_same_state(b[key], a[key], f"{name}: {key}")
    for a, b in zip(seen_k, seen_1, strict=True):  # every step: batch, index, counters, loss; validations
        assert_same_state(a, b)
    assert_same_parameters(vae_k, vae_1)
    assert_same_state(trainer_k.fit_loop.state_dict(), trainer_1.fit_loop.state_dict())


class Unhooked(pl.Callback):
    """A group member without batch hooks (the group needs two members)."""


@pytest.mark.parametrize(
    ("kwargs", "stopped"),
    [
        ({"max_steps": 11}, 11),  # inside the first group of the second epoch
        ({"limit_train_batches": 5, "max_epochs": 2}, 10),  # inside each epoch's second group
    ],
)
def test_it_stops_where_one_step_a_batch_stops_and_the_loader_keeps_the_rest(kwargs, stopped):
    vae_1, trainer_1, _ = fit(1, **kwargs)
    vae_k, trainer_k, calls = fit(4, **kwargs)
    assert trainer_k.global_step == trainer_1.global_step == stopped
    assert sum(calls) > stopped  # the groups held steps that were not taken
    assert_same_parameters(vae_k, vae_1)
    assert_same_state(trainer_k.fit_loop.state_dict(), trainer_1.fit_loop.state_dict())
    position = (
        t.train_dataloader.state_dict(t.num_training_batches)["position"] for t in (trainer_1, trainer_k)
    )
    assert len(set(position)) == 1


class StopAt(pl.Callback):
    """SIGTERM (or Ctrl-C) as it arrives at the end of optimizer step ``step``, once."""

    multi_step_hooks = "each"

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step and trainer.ckpt_path is None:
            trainer._signal_connector.received_sigterm = True


@pytest.mark.parametrize("stop", [11, 12])  # inside the second epoch's first group of 4; at its end
def test_a_stop_inside_a_group_saves_the_state_of_its_step_and_resumes_from_it(stop, tmp_path):
    full, _, _ = fit(1, ResumeState())
    saved = {}
    for steps in (1, 4):
        interrupt = InterruptCheckpoint(tmp_path / str(steps))
        with pytest.raises(SIGTERMException):
            fit(steps, ResumeState(), StopAt(stop), interrupt)
        saved[steps] = torch.load(interrupt.ckpt_path, weights_only=False)
        assert saved[steps]["global_step"] == stop
    for key in ("loops", "state_dict", "optimizer_states"):  # the same state, the loader's position included
        assert_same_state(saved[4][key], saved[1][key], key)
    for steps in (1, 4, 3):
        resumed, resumed_trainer, calls = fit(
            steps, ResumeState(), ckpt_path=tmp_path / "4" / "on_exception.ckpt"
        )
        assert resumed_trainer.global_step == 27 and sum(calls) == 27 - stop
        assert_same_parameters(resumed, full)  # the random draws too (ResumeState)


@pytest.mark.parametrize(
    ("callbacks", "kwargs", "reason"),
    [
        ([Unmarked()], {}, "the callback Unmarked has per-batch hooks"),
        ([CallbackGroup([Unmarked(), Unhooked()])], {}, "the callback CallbackGroup has per-batch hooks"),
        ([SlowStart()], {}, "the callback SlowStart has per-batch hooks"),
        ([], {"gradient_clip_val": 1.0}, "Lightning takes the optimizer step"),
    ],
)
def test_one_step_a_batch_wherever_several_could_be_another_run(callbacks, kwargs, reason, tmp_path, caplog):
    val = data(16)
    with caplog.at_level(logging.INFO, logger="vae_lab.model.multi_step"):
        vae, trainer, calls = fit(4, *callbacks, val=val, default_root_dir=tmp_path, **kwargs)
    assert calls == [1] * 27 and vae._multi_step.steps == 1
    assert reason in caplog.text


def test_the_validation_at_each_epochs_end_and_the_progress_bar_see_every_step(tmp_path):
    from vae_lab.runs.progress import TQDMBar

    bars = []
    for steps in (1, 4):
        bar = TQDMBar(refresh_rate=1)
        vae, trainer, calls = fit(steps, bar, val=data(16), enable_progress_bar=True)
        assert trainer.callback_metrics["val/elbo"].isfinite()
        bars.append(
            (bar.train_progress_bar.n, bar.train_progress_bar.total, trainer.callback_metrics["val/elbo"])
        )
    assert bars[0] == bars[1] and bars[0][:2] == (9, 9)
