"""A training step's metrics written straight to the loggers (vae_lab.model.step_metrics): the same rows
in metrics.csv, the same callback, logged and progress-bar metrics as Lightning's ``self.log`` path gives,
and ``self.log`` itself wherever Lightning's automatic loop runs."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from conftest import quiet_trainer, tiny_vae
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger

from vae_lab.data.loader import TensorBatches
from vae_lab.estimators import ReparamEstimator
from vae_lab.model import step_metrics

TRAIN = ("train/elbo", "train/recon", "train/kl")


class Rows(pl.Callback):
    """A row of its own at some steps (as the gradient-variance probe writes), and the train/elbo that
    callbacks see after every batch."""

    def __init__(self) -> None:
        self.seen: list[float | None] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % 4 == 0:
            for logger in trainer.loggers:
                logger.log_metrics(
                    {"probe": float(trainer.global_step), "epoch": trainer.current_epoch},
                    step=trainer.global_step,
                )
        value = trainer.callback_metrics.get("train/elbo")
        self.seen.append(None if value is None else float(value))


def fit(tmp_path, name: str, monkeypatch=None, **trainer_kwargs):
    if monkeypatch is not None:  # Lightning's own path: every train metric through self.log
        monkeypatch.setattr(step_metrics, "log_step", lambda *args, **kwargs: False)
    torch.manual_seed(0)
    vae = tiny_vae(estimator=ReparamEstimator(), input_dim=4)
    x = torch.bernoulli(torch.full((72, 4), 0.3), generator=torch.Generator().manual_seed(1))
    rows, bar = Rows(), TQDMProgressBar(refresh_rate=0)
    trainer = quiet_trainer(
        max_epochs=2,
        log_every_n_steps=3,
        logger=CSVLogger(tmp_path, name=name, version=0),
        callbacks=[rows, bar],
        enable_progress_bar=True,
        **trainer_kwargs,
    )
    trainer.fit(vae, train_dataloaders=TensorBatches(x, batch_size=8, shuffle=True, seed=0))
    with open(tmp_path / name / "version_0" / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    return trainer, rows, bar, table


def by_step(table: list[dict[str, str]]) -> list[tuple]:
    return sorted(tuple(sorted(row.items())) for row in table)


def test_the_loggers_get_the_rows_and_callbacks_the_metrics_that_self_log_gives(tmp_path, monkeypatch):
    logged = []
    log = pl.LightningModule.log
    with monkeypatch.context() as patch:
        patch.setattr(
            pl.LightningModule,
            "log",
            lambda self, name, *a, **k: logged.append(name) or log(self, name, *a, **k),
        )
        direct, direct_rows, direct_bar, direct_table = fit(tmp_path, "direct")
    assert logged == []  # no train metric went through self.log
    with monkeypatch.context() as patch:
        lightning, lightning_rows, lightning_bar, lightning_table = fit(tmp_path, "lightning", patch)
    # every third step of 18 has a train row (steps 2, 5, ..., 17) beside the callback's rows (4, 8, ...)
    train_steps = [int(r["step"]) for r in direct_table if r["train/elbo"]]
    assert train_steps == list(range(2, 18, 3))
    assert all(r["epoch"] in ("0", "1") for r in direct_table)
    assert by_step(direct_table) == by_step(lightning_table)  # the same rows (a train row may come first)
    assert len(direct_table) == len(lightning_table) == 6 + 4  # probe rows at steps 4, 8, 12, 16
    assert direct_rows.seen == lightning_rows.seen  # what callbacks saw after each batch
    assert direct_rows.seen[:2] == [None, None] and direct_rows.seen[2] is not None
    for name in TRAIN:
        assert float(direct.callback_metrics[name]) == float(lightning.callback_metrics[name])
        assert float(direct.logged_metrics[name]) == float(lightning.logged_metrics[name])
    assert direct.progress_bar_metrics == lightning.progress_bar_metrics
    assert set(direct.progress_bar_metrics) == {"train/elbo"}
    assert direct_bar.get_metrics(direct, direct.lightning_module) == lightning_bar.get_metrics(
        lightning, lightning.lightning_module
    )


@pytest.mark.parametrize("loop", [{"gradient_clip_val": 1.0}, {"accumulate_grad_batches": 2}])
def test_lightnings_automatic_loop_keeps_self_log(tmp_path, loop):
    trainer, _, _, table = fit(tmp_path, "auto", **loop)
    vae = trainer.lightning_module
    assert vae.automatic_optimization
    assert not step_metrics.log_step(vae, {"train/elbo": torch.tensor(1.0)})
    train = [r for r in table if r["train/elbo"]]
    assert train and len({r["step"] for r in train}) == len(train)  # one row per logged step
    assert "train/elbo" in trainer.callback_metrics


@pytest.mark.filterwarnings("error")  # self.log outside a Trainer would warn
def test_outside_a_trainer_nothing_is_written():
    vae = tiny_vae(estimator=ReparamEstimator(), input_dim=4)
    assert not step_metrics.is_logging_step(vae)
    assert not step_metrics.log_step(vae, {"train/elbo": torch.tensor(1.0)})
    loss = vae.training_step(torch.bernoulli(torch.full((8, 4), 0.3)), 0)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_a_lightning_without_the_connectors_parts_gets_self_log(tmp_path, monkeypatch):
    monkeypatch.setattr(step_metrics, "_CONNECTOR", (*step_metrics._CONNECTOR, "_renamed_in_a_later_version"))
    logged = []
    log = pl.LightningModule.log
    monkeypatch.setattr(
        pl.LightningModule, "log", lambda self, name, *a, **k: logged.append(name) or log(self, name, *a, **k)
    )
    trainer, _, _, table = fit(tmp_path, "fallback")
    assert logged.count("train/elbo") == 6  # through self.log
    assert [int(r["step"]) for r in table if r["train/elbo"]] == list(range(2, 18, 3))
    assert "train/elbo" in trainer.callback_metrics


class _Logger:
    """Records the rows it gets and, at each save, how many it had by then."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict]] = []
        self.saves: list[int] = []

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.rows.append((step, dict(metrics)))

    def save(self) -> None:
        self.saves.append(len(self.rows))


class _Trainer:
    """What step_metrics reads of a Trainer to write a row."""

    def __init__(self, logger: _Logger) -> None:
        self.loggers, self.current_epoch = [logger], 3
        self.fit_loop = SimpleNamespace(epoch_loop=SimpleNamespace(_batches_that_stepped=0))


def test_training_rows_save_the_loggers_at_most_every_save_every_s(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(step_metrics, "_clock", lambda: now[0])
    monkeypatch.setattr(step_metrics, "SAVE_EVERY_S", 5.0)
    logger = _Logger()
    trainer = _Trainer(logger)
    for i in range(12):  # one row a second
        trainer.fit_loop.epoch_loop._batches_that_stepped = 10 * i
        step_metrics._write_row(trainer, {"train/elbo": torch.tensor(-float(i))})
        now[0] += 1.0
    assert logger.saves == [1, 6, 11]  # the first row at once, then every 5 s
    assert logger.rows[4] == (40, {"train/elbo": -4.0, "epoch": 3})  # Lightning's step and epoch
    step_metrics.save_loggers(trainer)
    assert logger.saves[-1] == 12


def test_a_checkpoint_finds_every_training_row_before_it_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(step_metrics, "SAVE_EVERY_S", math.inf)  # the rows alone save only the first
    on_disk: list[list[int]] = []

    class CheckpointAt12(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if trainer.global_step == 12:
                trainer.save_checkpoint(tmp_path / "at12.ckpt")
                with open(tmp_path / "rows" / "version_0" / "metrics.csv") as f:
                    on_disk.append([int(r["step"]) for r in csv.DictReader(f) if r["train/elbo"]])

    torch.manual_seed(0)
    vae = tiny_vae(estimator=ReparamEstimator(), input_dim=4)
    x = torch.bernoulli(torch.full((72, 4), 0.3), generator=torch.Generator().manual_seed(1))
    trainer = quiet_trainer(
        max_epochs=2,
        log_every_n_steps=3,
        logger=CSVLogger(tmp_path, name="rows", version=0),
        callbacks=[CheckpointAt12()],
    )
    trainer.fit(vae, train_dataloaders=TensorBatches(x, batch_size=8, shuffle=True, seed=0))
    assert on_disk == [[2, 5, 8, 11]]  # every row logged before the checkpoint at step 12
    with open(tmp_path / "rows" / "version_0" / "metrics.csv") as f:  # and all of them after the fit
        assert [int(r["step"]) for r in csv.DictReader(f) if r["train/elbo"]] == list(range(2, 18, 3))
