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
