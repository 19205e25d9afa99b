"""The data go to the trainer's device once: ``setup`` moves the three splits, batches are slices there.

No GPU is needed to see it: a trainer whose root device is ``meta`` (a device that holds no data) stands
for one. Where the data land on ``meta``, every batch the loaders give is a ``meta`` tensor, so no batch
came from the CPU copy. (tests/test_cuda.py runs the same on a GPU, with the binarization transform.)
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import torch

from vae_lab.data import DigitsDataModule
from vae_lab.data.loader import TensorBatches, bernoulli_transform


def _on(device: str) -> SimpleNamespace:
    """What the data module reads of a trainer: the strategy's root device, its replicas."""
    return SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device(device)), world_size=1, global_rank=0
    )


def test_setup_moves_the_splits_to_the_trainers_device_once():
    dm = DigitsDataModule(batch_size=100, eval_batch_size=150)
    dm.trainer = _on("meta")
    dm.setup("fit")
    moved = (dm.train_data, dm.val_data, dm.test_data)
    assert all(t.device.type == "meta" for t in moved)
    assert [t.shape for t in moved] == [(1397, 64), (200, 64), (200, 64)]
    dm.setup("test")  # a later stage does not copy them again
    assert all(a is b for a, b in zip(moved, (dm.train_data, dm.val_data, dm.test_data), strict=True))
    train, val = list(dm.train_dataloader()), list(dm.val_dataloader())
    assert [len(b) for b in train] == [100] * 13 + [97] and [len(b) for b in val] == [150, 50]
    assert all(b.device.type == "meta" for b in train + val + list(dm.test_dataloader()))


def test_on_the_cpu_nothing_moves_and_without_a_trainer_nothing_moves():
    dm = DigitsDataModule()
    dm.setup("fit")  # no trainer: the tensors stay where they were loaded
    loaded = dm.train_data
    dm.trainer = _on("cpu")
    dm.setup("fit")
    assert dm.train_data is loaded and loaded.device.type == "cpu"


def test_shuffling_draws_the_same_rows_whatever_the_datas_device():
    """The permutation comes from a CPU generator and is moved once per epoch: on ``meta`` data the
    batches have the same sizes, on CPU data the rows are those of a plain ``randperm`` with the seed."""
    x = torch.arange(10.0)[:, None]
    batches = TensorBatches(x, 4, shuffle=True, seed=5)
    expected = torch.randperm(10, generator=torch.Generator().manual_seed(5))
    assert torch.cat(list(batches))[:, 0].long().tolist() == expected.tolist()
    on_meta = TensorBatches(x.to("meta"), 4, shuffle=True, seed=5)
    assert [b.shape for b in on_meta] == [(4, 1), (4, 1), (2, 1)]
    assert on_meta.generator.device.type == "cpu"


def test_a_transform_stream_saved_on_another_kind_of_device_starts_afresh_with_a_warning(caplog):
    """A CUDA generator's state (16 bytes: seed and offset) cannot continue a CPU generator's (5056
    bytes), nor the reverse: the resumed epoch keeps the permutation and restarts the binarization stream
    from its seed, saying so."""
    x = torch.rand(12, 3)
    batches = TensorBatches(x, 4, shuffle=True, seed=1, transform=bernoulli_transform)
    state = batches.state_dict()
    state["transform_generator"] = torch.zeros(16, dtype=torch.uint8)  # as a CUDA generator saves it
    list(batches)  # move both streams on
    with caplog.at_level(logging.WARNING, logger="vae_lab.data.loader"):
        batches.load_state_dict(state)
    assert "saved on another kind of device" in caplog.text
    fresh = TensorBatches(x, 4, shuffle=True, seed=1, transform=bernoulli_transform)
    assert all(torch.equal(a, b) for a, b in zip(batches, fresh, strict=True))
