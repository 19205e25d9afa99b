"""vae_lab/runs/callback_group.py: stateless callbacks behind one, each hook reaching exactly the members
that define it, in the order Lightning would have called them."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from conftest import quiet_trainer, tiny_vae
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar

from vae_lab.data.loader import TensorBatches
from vae_lab.runs.callback_group import HOOKS, CallbackGroup, group_callbacks, groupable, members
from vae_lab.runs.resume_state import ResumeState


class Recorder(pl.Callback):
    """Records (name, hook) for the hooks a training run calls; ``name`` tells the instances apart."""

    def __init__(self, name: str, log: list) -> None:
        self.name, self.calls = name, log


for _hook in set(HOOKS) - {"on_save_checkpoint", "on_load_checkpoint"}:  # state hooks: never grouped

    def _record(self, *args, _hook=_hook, **kwargs):
        self.calls.append((self.name, _hook))

    setattr(Recorder, _hook, _record)


class OnlyBatchEnd(pl.Callback):
    def __init__(self, log: list) -> None:
        self.calls = log

    def on_train_batch_end(self, *args) -> None:
        self.calls.append(("batch_end", "on_train_batch_end"))


class WithState(pl.Callback):
    def state_dict(self) -> dict:
        return {"n": 1}


def fit(callbacks) -> None:
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((32, 6), 0.3), generator=torch.Generator().manual_seed(0))
    trainer = quiet_trainer(max_steps=5, callbacks=callbacks)
    trainer.fit(tiny_vae(), train_dataloaders=TensorBatches(x, batch_size=8, shuffle=True, seed=0))


def test_a_group_calls_each_hook_of_its_members_in_the_order_lightning_would():
    flat: list = []
    fit([Recorder("a", flat), OnlyBatchEnd(flat), Recorder("b", flat)])
    grouped: list = []
    callbacks = group_callbacks([Recorder("a", grouped), OnlyBatchEnd(grouped), Recorder("b", grouped)])
    assert len(callbacks) == 1 and isinstance(callbacks[0], CallbackGroup)
    fit(callbacks)
    assert grouped == flat
    assert all(callable(c.log) for c in callbacks[0].callbacks)  # Lightning's self.log reaches members
    assert ("a", "on_before_backward") in flat and flat.count(("batch_end", "on_train_batch_end")) == 5


def test_only_members_that_define_a_hook_are_called_for_it():
    log: list = []
    group = CallbackGroup([OnlyBatchEnd(log), OnlyBatchEnd(log)])
    assert group.on_before_backward.__func__ is pl.Callback.on_before_backward  # nobody defines it: no-op
    group.on_train_batch_end(None, None, None, None, 0)
    assert log == [("batch_end", "on_train_batch_end")] * 2


def test_callbacks_with_a_state_or_a_role_stay_outside_and_the_group_takes_the_first_place(tmp_path):
    log: list = []
    bar, ckpt, resume = TQDMProgressBar(), ModelCheckpoint(dirpath=tmp_path), ResumeState()
    a, b = OnlyBatchEnd(log), Recorder("b", log)
    state = WithState()
    out = group_callbacks([bar, a, ckpt, state, b, resume])
    assert [type(c) for c in out] == [TQDMProgressBar, CallbackGroup, ModelCheckpoint, WithState, ResumeState]
    assert out[1].callbacks == [a, b]
    assert list(members(out)) == [bar, a, b, ckpt, state, resume]
    assert not any(groupable(c) for c in (bar, ckpt, state, resume))
    assert group_callbacks([bar, a]) == [bar, a]  # one alone is left as it is
    with pytest.raises(ValueError, match="WithState"):
        CallbackGroup([a, state])
