"""DigitsDataModule: fixed split, threshold binarization, seeded shuffling, Lightning and Hydra use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from vae_lab.data import DigitsDataModule
from vae_lab.data.digits import load_digits_array

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits() -> DigitsDataModule:
    dm = DigitsDataModule(seed=0)
    dm.setup("fit")
    return dm


def test_split_sizes_and_binary_values(digits):
    assert (digits.input_dim, digits.image_shape, digits.kind) == (64, (8, 8), "binary")
    assert (digits.train_size, digits.val_size, digits.test_size) == (1397, 200, 200)
    assert digits.train_data.shape == (1397, 64) and digits.val_data.shape == (200, 64)
    assert digits.test_data.shape == (200, 64)
    for t in (digits.train_data, digits.val_data, digits.test_data):
        assert t.dtype == torch.float32 and set(t.unique().tolist()) == {0.0, 1.0}
    # together the three splits are exactly the thresholded images (a permutation of them)
    expected = torch.from_numpy((load_digits_array() >= 8).astype(np.float32))
    together = torch.cat([digits.train_data, digits.val_data, digits.test_data])
    assert torch.equal(together.sum(0), expected.sum(0)) and together.sum() == expected.sum()


def test_split_does_not_depend_on_the_run_seed(digits):
    other = DigitsDataModule(seed=7)
    other.setup()
    assert torch.equal(other.val_data, digits.val_data) and torch.equal(other.test_data, digits.test_data)
    first = lambda dm: next(iter(dm.train_dataloader()))  # noqa: E731
    assert not torch.equal(first(other), first(digits))  # but the shuffling does


def test_threshold_parameter():
    low = DigitsDataModule(threshold=1)
    low.setup()
    high = DigitsDataModule(threshold=16)
    high.setup()
    assert low.train_data.mean() > 0.45 > high.train_data.mean()


def test_dataloaders():
    digits = DigitsDataModule(seed=0)
    digits.setup("fit")
    train = list(digits.train_dataloader())
    assert [len(b) for b in train] == [100] * 13 + [97]
    val, test = list(digits.val_dataloader()), list(digits.test_dataloader())
    assert len(val) == len(test) == 1 and torch.equal(val[0], digits.val_data)
    again = DigitsDataModule(seed=0)
    assert all(torch.equal(a, b) for a, b in zip(train, again.train_dataloader(), strict=True))  # lazy setup
    # asking again goes on with new shuffles rather than repeating the first one
    assert not torch.equal(torch.cat(train), torch.cat(list(digits.train_dataloader())))


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"eval_batch_size": -1}, "eval_batch_size"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": 17}, "threshold"),
        ({"val_size": 0}, "val_size"),
        ({"val_size": 1000, "test_size": 1000}, "val_size"),
        ({"seed": "x"}, "seed"),
        ({"drop_last": 1}, "drop_last"),
    ],
)
def test_invalid_arguments(kwargs, key):
    with pytest.raises(ValueError, match=key) as info:
        DigitsDataModule(**kwargs)
    assert "\n" not in str(info.value)


class Tiny(pl.LightningModule):
    def __init__(self, seen):
        super().__init__()
        self.layer = torch.nn.Linear(64, 1)
        self.seen = seen

    def training_step(self, batch, batch_idx):
        self.seen.append(batch.sum(1))
        return self.layer(batch).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.layer(batch).pow(2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def fit(tmp_path, max_epochs, ckpt=None, every=None, max_steps=-1):
    seen: list[torch.Tensor] = []
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=every, save_top_k=-1 if every else 1
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        max_steps=max_steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[checkpoint],
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    trainer.fit(Tiny(seen), datamodule=DigitsDataModule(batch_size=300, seed=4), ckpt_path=ckpt)
    return seen


def same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


@pytest.mark.filterwarnings("ignore:Checkpoint directory", "ignore:Be aware that when using `ckpt_path`")
def test_lightning_resume_continues_the_same_batches(tmp_path):
    full = fit(tmp_path / "full", 3)  # 5 batches an epoch
    assert len(full) == 15
    # resume at an epoch boundary (Lightning restores the DataModule's state, not the loader's)
    first = fit(tmp_path / "a", 1)
    rest = fit(tmp_path / "a", 3, ckpt=tmp_path / "a" / "ckpt" / "last.ckpt")
    assert same(first + rest, full)
    # resume in the middle of an epoch (step 8 = epoch 1, batch 3)
    part = fit(tmp_path / "b", 3, every=4, max_steps=9)
    ckpt = next((tmp_path / "b" / "ckpt").glob("*step=8*"))
    rest = fit(tmp_path / "b", 3, ckpt=ckpt)
    assert same(part[:8] + rest, full)


@pytest.mark.parametrize("name", ["digits", "mnist", "binarized_mnist", "20news"])
def test_hydra_config_instantiates(name, tmp_path):
    from vae_lab.data import BinarizedMNISTDataModule, MNISTDataModule, NewsgroupsDataModule

    cfg = OmegaConf.merge(
        {"paths": {"data_dir": str(tmp_path)}, "seed": 3},
        {"data": OmegaConf.load(REPO / "conf" / "data" / f"{name}.yaml")},
    )
    dm = instantiate(cfg.data)  # builds without reading any file
    expected = {
        "digits": DigitsDataModule,
        "mnist": MNISTDataModule,
        "binarized_mnist": BinarizedMNISTDataModule,
        "20news": NewsgroupsDataModule,
    }[name]
    assert type(dm) is expected and dm.seed == 3 and dm.data_dir == tmp_path
    assert isinstance(dm.input_dim, int) and isinstance(dm.train_size, int)
    assert dm.kind in {"binary", "counts"}
    assert str(dm).startswith(type(dm).__name__ + "(")  # printing reads nothing either
    assert list(tmp_path.iterdir()) == []


def test_null_data_dir_means_default(monkeypatch, tmp_path):
    monkeypatch.setenv("VAE_LAB_DATA_DIR", str(tmp_path))
    assert DigitsDataModule(data_dir=None).data_dir == tmp_path
