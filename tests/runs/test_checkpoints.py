"""The checkpoint a run resumes from (vae_lab/runs/checkpoints.py)."""

from __future__ import annotations

import os
import signal

import pytest
from pytorch_lightning.callbacks import ModelCheckpoint

from vae_lab.errors import ConfigError
from vae_lab.runs.checkpoints import InterruptCheckpoint, ResumePoint, checkpoint_to_resume, stopped


def test_the_newest_resumable_checkpoint_is_chosen(tmp_path):
    interrupt = InterruptCheckpoint(tmp_path)
    last = ModelCheckpoint(dirpath=tmp_path, filename="best", save_last=True)
    callbacks = [last, interrupt]
    assert checkpoint_to_resume(callbacks) is None
    assert ResumePoint.find(callbacks, resuming=True) == ResumePoint(resuming=True)
    (tmp_path / "last.ckpt").write_bytes(b"")
    (tmp_path / "on_exception.ckpt").write_bytes(b"")
    os.utime(tmp_path / "last.ckpt", (1000, 1000))
    assert checkpoint_to_resume(callbacks) == tmp_path / "on_exception.ckpt"
    os.utime(tmp_path / "last.ckpt", (5e9, 5e9))
    assert checkpoint_to_resume(callbacks) == tmp_path / "last.ckpt"
    assert ResumePoint.find(callbacks, resuming=False) == ResumePoint()  # only when asked to resume


def test_the_resume_point_reads_the_step_rows_and_wall_time_of_its_checkpoint(tmp_path):
    import torch

    from vae_lab.runs.resume_state import CHECKPOINT_KEY

    last = ModelCheckpoint(dirpath=tmp_path, filename="best", save_last=True)
    ours = {"csv_rows": {"metrics.csv": 12}, "elapsed_s": 42.5}
    torch.save({"global_step": 70, CHECKPOINT_KEY: ours}, tmp_path / "last.ckpt")
    found = ResumePoint.find([last], resuming=True)
    assert (found.step, found.csv_rows, found.elapsed_s) == (70, {"metrics.csv": 12}, 42.5)
    torch.save({"global_step": 70}, tmp_path / "last.ckpt")  # a checkpoint of an older vae-lab
    assert ResumePoint.find([last], resuming=True).elapsed_s == 0.0


def test_a_stop_says_whether_it_saved_the_checkpoint(tmp_path):
    interrupt = InterruptCheckpoint(tmp_path)
    assert stopped(signal.SIGTERM, 3, tmp_path, [interrupt], since=0.0).checkpoint is None
    (tmp_path / "on_exception.ckpt").write_bytes(b"")
    stop = stopped(signal.SIGTERM, 3, tmp_path, [interrupt], since=0.0)
    assert stop.saved and stop.checkpoint == tmp_path / "on_exception.ckpt"
    assert not stopped(signal.SIGTERM, 3, tmp_path, [interrupt], since=1e12).saved  # an older one


def test_a_bad_setting_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError) as info:
        InterruptCheckpoint(tmp_path, filename="")
    assert info.value.key == "filename"


def test_newest_state_files_of_model_checkpoints(tmp_path):
    from vae_lab.runs.checkpoints import newest_state_file

    assert newest_state_file(ModelCheckpoint(dirpath=tmp_path, filename="best", save_last=True)) == (
        tmp_path / "last.ckpt"
    )
    assert newest_state_file(ModelCheckpoint(dirpath=tmp_path, filename="last", monitor=None)) == (
        tmp_path / "last.ckpt"
    )
    assert newest_state_file(ModelCheckpoint(dirpath=tmp_path, filename="best", monitor="val/elbo")) is None
    assert newest_state_file(ModelCheckpoint(dirpath=tmp_path, filename="{epoch}", monitor=None)) is None
    assert newest_state_file(ModelCheckpoint(dirpath=tmp_path, monitor=None, save_top_k=-1)) is None


def _configured_checkpoints(dirpath):
    """The run's two checkpoint callbacks as `vae-lab train` composes them, writing to ``dirpath``."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from vae_lab.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.output_dir={dirpath}"])
    names = list(cfg.callbacks)
    assert names.index("model_checkpoint") < names.index("last_checkpoint")  # best: checkpoint_callback
    return [instantiate(cfg.callbacks[name]) for name in ("model_checkpoint", "last_checkpoint")]


@pytest.mark.parametrize("best_hook", ["on_train_epoch_end", "on_validation_end"])
@pytest.mark.parametrize("scores", [[1.0, 3.0, 2.0, 0.5], [4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
def test_last_ckpt_holds_every_epoch_and_best_ckpt_the_best(tmp_path, monkeypatch, scores, best_hook):
    """Under the installed Lightning: last.ckpt is written after every validation, also when val/elbo did
    not improve (Lightning 2.6's save_last writes it only with a new best), and best.ckpt at each new best.
    The state is dumped once per epoch: where best.ckpt was just written, last.ckpt is a copy of it. Where
    best.ckpt is saved in another hook (``on_validation_end``), last.ckpt is dumped every epoch."""
    import warnings

    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.demos.boring_classes import BoringModel

    class Model(BoringModel):
        def validation_step(self, batch, batch_idx):
            self.log("val/elbo", scores[self.current_epoch])
            return super().validation_step(batch, batch_idx)

    callbacks = _configured_checkpoints(tmp_path)
    callbacks[0]._save_on_train_epoch_end = best_hook == "on_train_epoch_end"
    saves: list[str] = []
    real_save = pl.Trainer.save_checkpoint

    def counting(self, filepath, *args, **kwargs):
        saves.append(os.path.basename(filepath))
        return real_save(self, filepath, *args, **kwargs)

    trainer = pl.Trainer(
        max_epochs=len(scores),
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
    )
    monkeypatch.setattr(pl.Trainer, "save_checkpoint", counting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the boring model's small dataloaders
        trainer.fit(Model())
    best_epoch = max(range(len(scores)), key=scores.__getitem__)
    checkpoints = tmp_path / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", weights_only=False)
    best = torch.load(checkpoints / "best.ckpt", weights_only=False)
    assert (last["epoch"], best["epoch"]) == (len(scores) - 1, best_epoch)
    assert trainer.checkpoint_callback is callbacks[0]
    improved = sum(s > max(scores[:i], default=-float("inf")) for i, s in enumerate(scores))
    copied = improved if best_hook == "on_train_epoch_end" else 0  # epochs where last.ckpt copies best.ckpt
    assert saves.count("last.ckpt") == len(scores) - copied and saves.count("best.ckpt") == improved
    same_bytes = (checkpoints / "last.ckpt").read_bytes() == (checkpoints / "best.ckpt").read_bytes()
    assert same_bytes == (best_hook == "on_train_epoch_end" and best_epoch == len(scores) - 1)
    assert not list(checkpoints.glob("*.tmp"))
    assert checkpoint_to_resume(callbacks) == checkpoints / "last.ckpt"


def ours_and_lightnings(*args, **kwargs):
    from vae_lab.runs import checkpoints

    return checkpoints.ModelCheckpoint(*args, **kwargs), ModelCheckpoint(*args, **kwargs)


def test_the_model_checkpoints_state_key_is_lightnings_and_follows_its_settings(tmp_path):
    from datetime import timedelta

    settings = [
        dict(monitor="val/elbo", mode="max"),
        dict(monitor=None, every_n_train_steps=50),
        dict(train_time_interval=timedelta(minutes=3)),
    ]
    for kwargs in settings:
        ours, lightnings = ours_and_lightnings(tmp_path, **kwargs)
        assert ours.state_key == ours.state_key == lightnings.state_key  # built once, then the same string
        assert "ModelCheckpoint{" in ours.state_key
    ours, lightnings = ours_and_lightnings(tmp_path, monitor="a")
    built = []
    build = ours._generate_state_key
    ours._generate_state_key = lambda **kwargs: built.append(kwargs) or build(**kwargs)
    first = [ours.state_key for _ in range(5)][-1]
    assert len(built) == 1
    ours.monitor, lightnings.monitor = "b", "b"  # a setting changed later changes the key, as in Lightning
    assert ours.state_key == lightnings.state_key != first
    ours.mode, lightnings.mode = "max", "max"
    assert ours.state_key == lightnings.state_key
    assert isinstance(ours, ModelCheckpoint)


def test_the_runs_checkpoints_are_vae_labs_model_checkpoint():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from vae_lab.config import CONF_DIR
    from vae_lab.runs import checkpoints

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=/nonexistent"])
    for name in ("model_checkpoint", "last_checkpoint"):
        assert type(instantiate(cfg.callbacks[name])) is checkpoints.ModelCheckpoint
