"""TensorBatches: batches by index slicing, per-epoch shuffles from its own generator, works in Lightning."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from vae_lab.data.loader import TensorBatches, bernoulli_transform
from vae_lab.errors import ConfigError


def rows(n: int = 23, d: int = 3) -> torch.Tensor:
    # row i is filled with the value i, so a batch tells which rows it holds
    return torch.arange(n, dtype=torch.float32)[:, None].expand(n, d).contiguous()


def epoch(batches: TensorBatches) -> list[torch.Tensor]:
    return list(batches)


def ids(batch_list: list[torch.Tensor]) -> list[int]:
    return torch.cat([b[:, 0] for b in batch_list]).long().tolist()


def test_lengths_and_batch_shapes():
    x = rows(23)
    b = TensorBatches(x, 5)
    out = epoch(b)
    assert len(b) == 5 and [len(t) for t in out] == [5, 5, 5, 5, 3]
    assert all(isinstance(t, torch.Tensor) and t.shape[1:] == (3,) for t in out)
    assert ids(out) == list(range(23))  # no shuffle: data order
    dropped = TensorBatches(x, 5, drop_last=True)
    assert len(dropped) == 4 and [len(t) for t in epoch(dropped)] == [5, 5, 5, 5]
    assert len(TensorBatches(x, 100)) == 1


def test_shuffle_is_a_fresh_permutation_each_epoch():
    b = TensorBatches(rows(23), 4, shuffle=True, seed=3)
    first, second = ids(epoch(b)), ids(epoch(b))
    assert sorted(first) == sorted(second) == list(range(23))
    assert first != second and first != list(range(23))


def test_same_seed_same_batches_other_seed_other_batches():
    def run(seed):
        b = TensorBatches(
            rows(50), 8, shuffle=True, seed=seed, transform=lambda x, g: x + torch.rand(x.shape, generator=g)
        )
        return [torch.cat(epoch(b)) for _ in range(3)]

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_transform_gets_a_generator_and_bernoulli_is_reproducible():
    grey = torch.full((200, 10), 0.3)
    b = TensorBatches(grey, 50, transform=bernoulli_transform, seed=0)
    e1, e2 = torch.cat(epoch(b)), torch.cat(epoch(b))
    assert set(e1.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(e1, e2)  # new draws every epoch
    again = torch.cat(epoch(TensorBatches(grey, 50, transform=bernoulli_transform, seed=0)))
    assert torch.equal(e1, again)
    # the permutation does not depend on whether a transform draws random numbers
    plain = TensorBatches(rows(30), 7, shuffle=True, seed=5)
    drawing = TensorBatches(
        rows(30), 7, shuffle=True, seed=5, transform=lambda x, g: x + 0 * torch.rand(1, generator=g)
    )
    assert ids(epoch(plain)) == ids(epoch(drawing))


@pytest.mark.parametrize("stop", [0, 3, 6])  # before, inside and at the end of an epoch
def test_state_dict_resumes_the_same_stream(stop):
    def make():
        return TensorBatches(
            rows(40), 7, shuffle=True, seed=11, transform=lambda x, g: x + torch.rand(x.shape, generator=g)
        )

    reference = make()
    expected = epoch(reference) + epoch(reference)  # two full epochs, 12 batches

    original = make()
    it = iter(original)
    seen = [next(it) for _ in range(stop)]
    state = original.state_dict()

    resumed = make()
    resumed.load_state_dict(state)
    got = seen + epoch(resumed)  # the rest of the first epoch, or the second one when the first was done
    if stop < len(original):
        got += epoch(resumed)
    assert len(got) == 12
    assert all(torch.equal(u, v) for u, v in zip(got, expected, strict=True))


def test_replicas_split_each_epoch_without_overlap():
    parts = [TensorBatches(rows(23), 4, shuffle=True, seed=2, num_replicas=2, rank=r) for r in range(2)]
    got = [ids(epoch(p)) for p in parts]
    assert len(parts[0]) == len(parts[1]) == 3 and len(got[0]) == len(got[1]) == 11
    assert not set(got[0]) & set(got[1])


def test_argument_checks():
    with pytest.raises(ConfigError, match=r"batch_size=.* is not allowed; expected an integer >= 1"):
        TensorBatches(rows(), 0)
    with pytest.raises(ValueError, match="batch_size"):
        TensorBatches(rows(), True)
    with pytest.raises(ValueError, match="rank"):
        TensorBatches(rows(), 2, num_replicas=2, rank=2)


class TinyModel(pl.LightningModule):
    def __init__(self, dim: int):
        super().__init__()
        self.layer = torch.nn.Linear(dim, 1)
        self.seen: dict[str, list[tuple[int, ...]]] = {"train": [], "val": [], "test": []}

    def _step(self, batch, split):
        assert isinstance(batch, torch.Tensor)  # one tensor, not a tuple
        self.seen[split].append(tuple(batch.shape))
        loss = self.layer(batch).pow(2).mean()
        self.log(f"{split}/loss", loss, batch_size=len(batch))
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def quiet_trainer(tmp_path, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **kwargs,
    )


def test_lightning_fit_and_test_accept_tensor_batches(tmp_path):
    x = torch.randn(45, 4)
    model = TinyModel(4)
    trainer = quiet_trainer(tmp_path, num_sanity_val_steps=0)
    trainer.fit(
        model,
        train_dataloaders=TensorBatches(x, 10, shuffle=True, seed=0),
        val_dataloaders=TensorBatches(x[:25], 20),
    )
    assert model.seen["train"] == [(10, 4)] * 4 + [(5, 4)]
    assert model.seen["val"] == [(20, 4), (5, 4)]
    assert trainer.num_training_batches == 5
    trainer.test(model, dataloaders=TensorBatches(x[:7], 1000), verbose=False)
    assert model.seen["test"] == [(7, 4)]
