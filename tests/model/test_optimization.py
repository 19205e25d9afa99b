"""The VAE's optimizer step: manual optimization (the default, for speed) takes the same steps as
Lightning's automatic loop, and a checkpoint written by either loop resumes at its step in the other."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from conftest import quiet_trainer, tiny_vae

from vae_lab.data.loader import TensorBatches
from vae_lab.estimators import ReparamEstimator
from vae_lab.model.direct_step import step_counters

# a clip far above any gradient: it changes nothing but makes Lightning run its automatic loop
NO_OP_CLIP = {"gradient_clip_val": 1e30}


def data() -> TensorBatches:
    x = torch.bernoulli(torch.full((64, 4), 0.3), generator=torch.Generator().manual_seed(1))
    return TensorBatches(x, batch_size=8, shuffle=True, seed=0)


class CountSteps(pl.Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1


def fit(steps: int, ckpt_path=None, **trainer_kwargs):
    torch.manual_seed(0)
    vae = tiny_vae(estimator=ReparamEstimator(), input_dim=4)
    counter = CountSteps()
    trainer = quiet_trainer(max_steps=steps, callbacks=[counter], **trainer_kwargs)
    trainer.fit(vae, train_dataloaders=data(), ckpt_path=ckpt_path)
    return vae, trainer, counter.batches


def test_manual_optimization_takes_exactly_the_steps_of_lightnings_automatic_loop():
    manual, trainer, _ = fit(12)
    automatic, auto_trainer, _ = fit(12, **NO_OP_CLIP)
    assert not manual.automatic_optimization and automatic.automatic_optimization
    assert trainer.global_step == auto_trainer.global_step == 12
    for (name, a), b in zip(manual.state_dict().items(), automatic.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    moved = fit(0)[0].state_dict()
    assert any(not torch.equal(a, moved[n]) for n, a in manual.state_dict().items())  # it did train


def test_a_checkpoint_of_the_automatic_loop_resumes_at_its_step_under_manual_optimization(tmp_path):
    _, trainer, _ = fit(5, **NO_OP_CLIP)
    ckpt = tmp_path / "auto.ckpt"
    trainer.save_checkpoint(ckpt)
    _, resumed, batches = fit(8, ckpt_path=ckpt)
    assert resumed.global_step == 8 and batches == 3  # not 8 more steps from 0


def test_a_checkpoint_of_manual_optimization_resumes_at_its_step_in_the_automatic_loop(tmp_path):
    _, trainer, _ = fit(5)
    ckpt = tmp_path / "manual.ckpt"
    trainer.save_checkpoint(ckpt)
    _, resumed, batches = fit(8, ckpt_path=ckpt, **NO_OP_CLIP)
    assert resumed.global_step == 8 and batches == 3


def test_step_counters_copy_only_into_an_empty_counter():
    def checkpoint(auto: int, manual: int) -> dict:
        progress = {"total": {"ready": 0, "completed": 0}, "current": {"ready": 0, "completed": 0}}
        step_auto = {k: {"ready": auto, "completed": auto} for k in progress}
        step_manual = {k: {"ready": manual, "completed": manual} for k in progress}
        loop = {
            "epoch_loop.automatic_optimization.optim_progress": {"optimizer": {"step": step_auto}},
            "epoch_loop.manual_optimization.optim_step_progress": step_manual,
        }
        return {"loops": {"fit_loop": loop}}

    def counts(ckpt: dict) -> tuple[int, int]:
        loop = ckpt["loops"]["fit_loop"]
        auto = loop["epoch_loop.automatic_optimization.optim_progress"]["optimizer"]["step"]
        manual = loop["epoch_loop.manual_optimization.optim_step_progress"]
        return auto["total"]["completed"], manual["total"]["completed"]

    for auto, manual, into_manual, expected in [
        (7, 0, True, (7, 7)),
        (7, 0, False, (7, 0)),
        (0, 9, False, (9, 9)),
        (4, 9, True, (4, 9)),  # both counted: left alone
    ]:
        ckpt = checkpoint(auto, manual)
        step_counters(ckpt, manual=into_manual)
        assert counts(ckpt) == expected, (auto, manual, into_manual)
    step_counters({}, manual=True)  # a checkpoint without loops (weights only) is fine
