"""Lightning's per-batch bookkeeping without its cost (vae_lab.model.lean_dispatch): the hook name is a plain
attribute, parameters still register, the transfer hooks are skipped only where they would return the batch
unchanged, and a fit trains the same parameters bit for bit either way."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from conftest import quiet_trainer, tiny_vae
from pytorch_lightning.profilers import SimpleProfiler
from test_direct_step import assert_same_parameters, data

from vae_lab.estimators import ReparamEstimator
from vae_lab.model.lean_dispatch import TRANSFER_HOOKS, LeanDispatch
from vae_lab.model.vae import VAE


class Lightnings(VAE):
    """The VAE with Lightning's own attribute setting and transfer hooks (the mixin switched off)."""

    __setattr__ = torch.nn.Module.__setattr__
    _on_before_batch_transfer = pl.LightningModule._on_before_batch_transfer
    _apply_batch_transfer_handler = pl.LightningModule._apply_batch_transfer_handler


class CountsHookCalls(VAE):
    hook_calls = 0

    def _call_batch_hook(self, hook_name, *args):
        type(self).hook_calls += 1
        return super()._call_batch_hook(hook_name, *args)


class LightningsCountsHookCalls(Lightnings, CountsHookCalls):
    hook_calls = 0


class SeesBatches(VAE):
    """Overrides a transfer hook: records what it is given and where, so it must be called."""

    seen: list[tuple[str, bool]]

    def on_after_batch_transfer(self, batch, dataloader_idx):
        self.seen.append((self._current_fx_name, self.trainer.training))
        return batch


class DataWithHook(pl.LightningDataModule):
    def __init__(self, loader) -> None:
        super().__init__()
        self.loader, self.calls = loader, 0

    def train_dataloader(self):
        return self.loader

    def on_before_batch_transfer(self, batch, dataloader_idx):
        self.calls += 1
        return batch


def vae(cls=VAE):
    model = tiny_vae(estimator=ReparamEstimator(), input_dim=4)
    model.__class__ = cls  # the same modules and parameters, the subclass's hooks
    model.seen = []
    return model


def fit(model, steps=12, datamodule=None, **trainer_kwargs):
    torch.manual_seed(0)
    trainer = quiet_trainer(max_steps=steps, **trainer_kwargs)
    if datamodule is None:
        trainer.fit(model, train_dataloaders=data(4))
    else:
        trainer.fit(model, datamodule=datamodule)
    return trainer


def test_the_hook_name_is_a_plain_attribute_and_parameters_still_register():
    model = vae()
    model._current_fx_name = "training_step"
    assert model.__dict__["_current_fx_name"] == "training_step"
    model._current_fx_name = None
    assert model.__dict__["_current_fx_name"] is None
    model.extra = torch.nn.Parameter(torch.zeros(2))  # other names: nn.Module's bookkeeping as before
    assert "extra" in dict(model.named_parameters()) and "extra" not in model.__dict__
    model.block = torch.nn.Linear(2, 2)
    assert "block" in dict(model.named_children())


def test_a_fit_with_the_lean_dispatch_equals_lightnings_bit_for_bit():
    CountsHookCalls.hook_calls = LightningsCountsHookCalls.hook_calls = 0  # per test run, not per session
    lean, plain = vae(CountsHookCalls), vae(LightningsCountsHookCalls)
    lean_trainer, plain_trainer = fit(lean), fit(plain)
    assert lean._plain_transfer
    assert CountsHookCalls.hook_calls == 0 and LightningsCountsHookCalls.hook_calls == 3 * 12
    assert lean_trainer.global_step == plain_trainer.global_step == 12
    assert_same_parameters(lean, plain)
    assert any(not torch.equal(a, b) for a, b in zip(lean.parameters(), vae().parameters(), strict=True))


def test_a_models_own_transfer_hook_is_called_with_lightnings_bookkeeping():
    model = vae(SeesBatches)
    fit(model, steps=5)
    assert not model._plain_transfer
    assert model.seen == [("on_after_batch_transfer", True)] * 5
    default = vae()
    fit(default, steps=5)
    assert_same_parameters(model, default)


def test_a_data_modules_transfer_hook_is_called():
    model, datamodule = vae(), DataWithHook(data(4))
    fit(model, steps=4, datamodule=datamodule)
    assert not model._plain_transfer and datamodule.calls == 4


def test_a_profiler_records_the_transfer_hooks():
    model, profiler = vae(), SimpleProfiler()
    fit(model, steps=3, profiler=profiler)
    assert not model._plain_transfer
    recorded = " ".join(profiler.recorded_durations)
    assert all(f"LightningModule]{type(model).__name__}.{hook}" in recorded for hook in TRANSFER_HOOKS)


def test_only_a_plain_tensor_on_the_device_skips_the_hooks():
    model = vae()
    fit(model, steps=1)
    x = torch.zeros(2, 4)
    assert model._unchanged_by_transfer(x, torch.device("cpu"))
    assert not model._unchanged_by_transfer(x, torch.device("meta"))  # another device: Lightning moves it
    assert not model._unchanged_by_transfer([x], torch.device("cpu"))  # a collection: Lightning walks it
    assert not model._unchanged_by_transfer(torch.nn.Parameter(x), torch.device("cpu"))
    assert isinstance(model, LeanDispatch)
