"""metrics.csv and TensorBoard of a resumed run (vae_lab/runs/logs.py)."""

from __future__ import annotations

from omegaconf import OmegaConf

from vae_lab.runs.logs import CSVLogger, count_rows, logger_kwargs, trim_csv_logs, truncate_rows


def test_csv_logger_continues_an_existing_file_under_its_header(tmp_path):
    first = CSVLogger(tmp_path, name="", version="")
    first.log_metrics({"a": 1.0, "b": 2.0}, step=0)
    first.log_metrics({"a": 3.0}, step=1)
    first.save()
    truncate_rows(tmp_path / "metrics.csv", 1)  # the row of step 1 came after the checkpoint
    second = CSVLogger(tmp_path, name="", version="")
    second.log_metrics({"a": 3.0}, step=1)
    second.save()
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["a,b,step", "1.0,2.0,0", "3.0,,1"]


def test_trimming_keeps_the_rows_of_the_checkpoint_and_a_fresh_start_keeps_none(tmp_path):
    logger = CSVLogger(tmp_path, name="", version="")
    for step in range(3):
        logger.log_metrics({"a": float(step)}, step=step)
    logger.save()
    trim_csv_logs([logger], tmp_path, None)  # a checkpoint without a record: all kept
    assert count_rows(tmp_path / "metrics.csv") == 3
    trim_csv_logs([logger], tmp_path, {"metrics.csv": 2})
    assert count_rows(tmp_path / "metrics.csv") == 2
    trim_csv_logs([logger], tmp_path, {})  # a fresh start
    assert not (tmp_path / "metrics.csv").exists()


def test_tensorboard_hides_the_events_after_the_checkpoint():
    tensorboard = OmegaConf.create({"_target_": "pytorch_lightning.loggers.TensorBoardLogger"})
    assert logger_kwargs(tensorboard, 120) == {"purge_step": 121}
    assert logger_kwargs(tensorboard, 0) == {"purge_step": 0}
    assert logger_kwargs(OmegaConf.create({"_target_": "vae_lab.runs.logs.CSVLogger"}), 120) == {}
