"""Batches from in-memory tensors, and the DataModule base that every vae-lab data set shares.

The data sets here fit in memory many times over, so a batch is one indexing operation on one tensor:
no Dataset, no collate function, no per-item Python work. Lightning accepts any iterable with a
``__len__`` as a dataloader, and moves the yielded tensor to the device itself.

On an accelerator (``trainer=gpu``) the data module moves its three splits to the trainer's device once,
in ``setup``; batches are then slices there, and Lightning's per-batch move has nothing to do.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from vae_lab.data.checks import check_bool, check_int
from vae_lab.data.download import resolve_data_dir
from vae_lab.data.noise import InputNoise, check_noise
from vae_lab.data.step_batches import StepBatches
from vae_lab.errors import ConfigError
from vae_lab.seeds import derived_seed

Transform = Callable[[Tensor, torch.Generator], Tensor]

log = logging.getLogger(__name__)


class TensorBatches:
    """Iterate over ``data`` in batches of ``batch_size`` rows; yields one tensor per batch (or
    :class:`~vae_lab.data.step_batches.StepBatches` of ``steps_per_batch`` batches, where that is above 1).

    With ``shuffle`` each epoch (each ``iter()``) draws a fresh permutation from this object's own
    ``torch.Generator`` seeded by ``seed``; the same seed gives the same sequence of batches.
    ``transform(x, generator)`` is applied per batch (e.g. dynamic binarization, ``torch.bernoulli``) with
    a second generator, so that the permutation does not depend on what the transform draws.

    For data parallel training give ``num_replicas`` and ``rank``: every replica draws the same
    permutation (same seed) and takes every ``num_replicas``-th row of it, after dropping the tail that
    does not divide evenly (the same number of batches everywhere); the transform's seed is per rank.

    ``state_dict()``/``load_state_dict()`` capture the generators as they were at the start of the
    current epoch and the number of batches handed out, so a restored object replays the rest of that
    epoch exactly. Lightning saves this state in checkpoints and restores it on a mid-epoch resume;
    :class:`InMemoryDataModule` carries it over an epoch-boundary resume as well.

    ``data`` stays where it is: on the CPU (Lightning moves each batch) or on the model's device
    (:meth:`InMemoryDataModule.setup` puts it there). The permutation is drawn on the CPU whatever the
    device (the same rows everywhere) and moved once per epoch; the transform draws on the data's device
    (a GPU's draws differ from a CPU's; a transform stream resumes on the same kind of device only).
    Unshuffled batches without a transform are views of ``data``: do not modify a batch in place.
    """

    def __init__(
        self,
        data: Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        transform: Transform | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        check_int("batch_size", batch_size, minimum=1)
        check_int("num_replicas", num_replicas, minimum=1)
        check_int("rank", rank, minimum=0)
        if rank >= num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank}")
        if not isinstance(data, Tensor) or data.dim() < 1:
            raise ValueError("data must be a torch.Tensor with at least one dimension")
        self.data, self.batch_size, self.transform = data, batch_size, transform
        self.shuffle, self.drop_last, self.seed = bool(shuffle), bool(drop_last), int(seed)
        self.num_replicas, self.rank = num_replicas, rank
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)
        self.transform_generator = _generator_on(data.device).manual_seed(self._transform_seed())
        self._epoch_start_state = self._generator_states()
        self._position = 0  # batches handed out in the current epoch
        self._skip = 0  # batches to replay silently on the next iter() after load_state_dict
        self.steps_per_batch = 1  # > 1: StepBatches of so many (set by the model: vae_lab.model.multi_step)

    def _transform_seed(self) -> int:
        return derived_seed(self.seed, self.rank, 1)

    # sizes --------------------------------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        """Rows this replica iterates over per epoch."""
        n = self.data.shape[0]
        return n // self.num_replicas if self.num_replicas > 1 else n

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_rows // self.batch_size
        return math.ceil(self.num_rows / self.batch_size)

    # iteration ----------------------------------------------------------------------------------
    def _generator_states(self) -> tuple[Tensor, Tensor]:
        return self.generator.get_state(), self.transform_generator.get_state()

    def _indices(self) -> Tensor | None:
        n = self.data.shape[0]
        if not self.shuffle and self.num_replicas == 1:
            return None
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator, device=self.generator.device)
        else:
            order = torch.arange(n, device=self.generator.device)
        if self.num_replicas > 1:
            order = order[: self.num_rows * self.num_replicas][self.rank :: self.num_replicas]
        return order.to(self.data.device)  # once per epoch; a no-op on the CPU

    def __iter__(self) -> Iterator[Tensor | StepBatches]:
        """The epoch's batches, or StepBatches of ``steps_per_batch`` of them (read at the first batch: a
        model sets it as training starts, after Lightning asked for the iterator). Its position is a
        cursor: :meth:`unused` moves it back, and the next group starts there."""
        skip, self._skip = self._skip, 0
        self._epoch_start_state = self._generator_states()
        self._position = 0
        order, k, n = self._indices(), self.steps_per_batch, len(self)
        self._drawn: deque[Tensor] = deque(maxlen=k)  # the transform's states before a group's draws
        for _ in range(skip):  # skipped batches still draw: the random stream after a resume is the original
            self._take(order, k)
        while self._position < n:
            if k == 1:
                yield self._take(order, k)
            else:
                yield StepBatches(self._take(order, k) for _ in range(min(k, n - self._position)))

    def _take(self, order: Tensor | None, k: int) -> Tensor:
        i, bs = self._position, self.batch_size
        if order is None:
            x = self.data[i * bs : (i + 1) * bs]
        else:  # index_select: half the time of advanced indexing for a batch of rows, same values
            x = self.data.index_select(0, order[i * bs : (i + 1) * bs])
        if self.transform is not None:
            if k > 1:
                self._drawn.append(self.transform_generator.get_state())
            x = self.transform(x, self.transform_generator)
        self._position = i + 1
        return x

    def unused(self, batches: int) -> None:
        """The last ``batches`` handed out went unused (a fit stopped inside StepBatches): the position and
        the transform's draws go back to the first of them, where the next group or a resume takes up."""
        self._position -= batches
        if self.transform is not None and batches > 0:
            self.transform_generator.set_state(self._drawn[-batches])

    # resumable state ----------------------------------------------------------------------------
    def state_dict(self, batches_per_epoch: float | None = None) -> dict[str, Any]:
        """The generators and the position in the epoch. ``batches_per_epoch`` is where the trainer ends
        an epoch when that is before the last batch (``trainer.limit_train_batches``)."""
        end = len(self) if batches_per_epoch is None else min(len(self), batches_per_epoch)
        if self._position >= end:  # epoch finished: the next one starts from the current state
            generator, transform_generator = self._generator_states()
            position = 0
        else:
            generator, transform_generator = self._epoch_start_state
            position = self._position
        return {
            "seed": self.seed,
            "generator": generator,
            "transform_generator": transform_generator,
            "position": position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        transform_state = state["transform_generator"]
        if transform_state.numel() == self.transform_generator.get_state().numel():
            self.transform_generator.set_state(transform_state)
        else:  # saved by another kind of device's generator (a CPU run resumed on a GPU, or back)
            log.warning(
                "the data's transform stream was saved on another kind of device than %s: it starts "
                "afresh from seed %d instead of continuing",
                self.data.device,
                self.seed,
            )
            self.transform_generator.manual_seed(self._transform_seed())
        self._epoch_start_state = self._generator_states()
        self._skip = int(state["position"])
        self._position = self._skip

    def __repr__(self) -> str:
        return (
            f"TensorBatches(rows={self.data.shape[0]}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, "
            f"transform={getattr(self.transform, '__name__', self.transform)})"
        )


def _generator_on(device: torch.device) -> torch.Generator:
    """A generator that draws on ``device``; a CPU one for a device without generators (``meta``)."""
    try:
        return torch.Generator(device=device)
    except RuntimeError:
        return torch.Generator(device="cpu")


def bernoulli_transform(x: Tensor, generator: torch.Generator) -> Tensor:
    """Dynamic binarization: one fresh draw ``x ~ Bernoulli(p)`` per pixel, ``p`` the grey level in [0, 1]."""
    return torch.bernoulli(x, generator=generator)


class InMemoryDataModule(pl.LightningDataModule):
    """Shared behaviour of vae-lab's DataModules: three float32 tensors in memory, batched by
    :class:`TensorBatches`.

    Subclasses set ``input_dim``, ``image_shape``, ``kind`` and ``train_size`` in ``__init__`` (so a
    model can be built before any file is read) and implement :meth:`_load`, returning the train,
    validation and test tensors, each ``(rows, input_dim)`` float32. Training batches are shuffled
    with a generator seeded by ``seed``; evaluation batches come in a fixed order.

    ``input_noise`` p > 0: :meth:`setup` hooks salt-and-pepper noise onto the model's encoder input (the
    batches and the reconstruction target stay clean; :mod:`vae_lab.data.noise`). Class labels, where a
    subclass keeps them in ``_split_labels``, serve the latent views only (:meth:`labels`).

    Under a trainer, :meth:`setup` puts the three tensors on the trainer's device
    (``trainer.strategy.root_device``: ``cuda:0`` with ``trainer=gpu``, each process's own GPU with DDP),
    once: on a GPU the batches are slices of device memory, with no host-to-device copy per step. Loaders
    asked for without a trainer (``split_dataloader`` for `vae-lab eval split=train|val`) use the tensors
    where they are, and Lightning moves those batches.
    """

    input_dim: int
    image_shape: tuple[int, int] | None
    kind: str
    train_size: int
    val_size: int
    test_size: int

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        seed: int = 0,
        drop_last: bool = False,
        input_noise: float = 0.0,
    ) -> None:
        super().__init__()
        self.data_dir = resolve_data_dir(data_dir)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.eval_batch_size = check_int("eval_batch_size", eval_batch_size, minimum=1)
        self.seed = check_int("seed", seed)
        self.drop_last = check_bool("drop_last", drop_last)
        self.input_noise = check_noise("input_noise", input_noise)
        self._noise: InputNoise | None = None
        self._split_labels: dict[str, Tensor] = {}
        self.train_data: Tensor | None = None
        self.val_data: Tensor | None = None
        self.test_data: Tensor | None = None
        self._train_batches: TensorBatches | None = None
        self._pending_train_state: dict[str, Any] | None = None

    # loading ------------------------------------------------------------------------------------
    def _load(self) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def _ensure_loaded(self) -> None:
        if self.train_data is not None:
            return
        train, val, test = self._load()
        for name, t in (("train", train), ("val", val), ("test", test)):
            assert t.dtype == torch.float32 and t.dim() == 2 and t.shape[1] == self.input_dim, (name, t.shape)
        self.train_data, self.val_data, self.test_data = train, val, test
        self.train_size, self.val_size, self.test_size = len(train), len(val), len(test)

    def prepare_data(self) -> None:
        # Downloads if needed (Lightning calls this on one process only). Loading here too is what
        # the download's validation does anyway; setup() reuses it instead of reading twice.
        self._ensure_loaded()

    def setup(self, stage: str | None = None) -> None:
        self._ensure_loaded()
        device = self._trainer_device()
        if device is not None:
            self.to_device(device)
        model = getattr(getattr(self, "trainer", None), "lightning_module", None)
        if self.input_noise > 0 and model is not None:  # DDP: each rank its own noise, as its own rows
            self._noise = self._noise or InputNoise(
                self.input_noise, derived_seed(self.seed, self._replicas()[1], 2)
            )
            self._noise.attach(model)

    def labels(self, split: str) -> Tensor | None:
        """The class labels (int64, CPU) of the rows of ``split`` ("train", "val", "test"), or None."""
        self._ensure_loaded()
        return self._split_labels.get(split)

    def _trainer_device(self) -> torch.device | None:
        strategy = getattr(getattr(self, "trainer", None), "strategy", None)
        device = getattr(strategy, "root_device", None)
        return torch.device(device) if device is not None else None

    def to_device(self, device: torch.device | str) -> None:
        """Put the train, validation and test tensors on ``device`` (a no-op where they are already)."""
        self._ensure_loaded()
        device = torch.device(device)
        if self.train_data.device == device:
            return
        self.train_data, self.val_data, self.test_data = (
            t.to(device) for t in (self.train_data, self.val_data, self.test_data)
        )
        log.info("data on %s: %s", device, self)

    # dataloaders --------------------------------------------------------------------------------
    def _train_transform(self) -> Transform | None:
        return None

    def _replicas(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def train_dataloader(self) -> TensorBatches:
        self._ensure_loaded()
        num_replicas, rank = self._replicas()
        batches = TensorBatches(
            self.train_data,
            self.batch_size,
            shuffle=True,
            drop_last=self.drop_last,
            seed=self.seed,
            transform=self._train_transform(),
            num_replicas=num_replicas,
            rank=rank,
        )
        if self._pending_train_state is not None:
            # resuming from a checkpoint: continue the shuffling / binarization stream where it stopped
            if int(self._pending_train_state.get("seed", self.seed)) == self.seed:
                batches.load_state_dict(self._pending_train_state)
            self._pending_train_state = None
        elif self._train_batches is not None and _same_layout(self._train_batches, batches):
            # asked again (reload_dataloaders_every_n_epochs): new epochs go on from the generators'
            # current states instead of repeating the first epoch's shuffle and draws
            batches.generator.set_state(self._train_batches.generator.get_state())
            batches.transform_generator.set_state(self._train_batches.transform_generator.get_state())
        self._train_batches = batches
        return batches

    # Lightning stores these in checkpoints; they make a resumed run draw the same batches as an
    # uninterrupted one, also when it resumes at an epoch boundary (where Lightning itself does not
    # restore dataloader state).
    def state_dict(self) -> dict[str, Any]:
        if self._train_batches is None:
            return {}
        trainer = self.trainer
        batches_per_epoch = getattr(trainer, "num_training_batches", None) if trainer is not None else None
        return {"train_batches": self._train_batches.state_dict(batches_per_epoch)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_train_state = state_dict.get("train_batches")

    def val_dataloader(self) -> TensorBatches:
        self._ensure_loaded()
        return TensorBatches(self.val_data, self.eval_batch_size)

    def test_dataloader(self) -> TensorBatches:
        self._ensure_loaded()
        return TensorBatches(self.test_data, self.eval_batch_size)

    def split_dataloader(self, split: str) -> TensorBatches:
        """Every row of ``split`` ("train", "val" or "test") once, in a fixed order, in batches of
        ``eval_batch_size``: what `vae-lab eval split=...` scores. The training rows get the training
        transform (dynamic binarization) drawn once from ``seed``; val and test are their own loaders."""
        if split == "val":
            return self.val_dataloader()
        if split == "test":
            return self.test_dataloader()
        if split != "train":
            raise ConfigError("split", "expected one of train, val, test", split)
        self._ensure_loaded()
        return TensorBatches(
            self.train_data, self.eval_batch_size, seed=self.seed, transform=self._train_transform()
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(data_dir={str(self.data_dir)!r}, batch_size={self.batch_size}, "
            f"eval_batch_size={self.eval_batch_size}, seed={self.seed})"
        )

    # LightningDataModule.__str__ builds every dataloader, which would read (or download) the data
    __str__ = __repr__


def _same_layout(a: TensorBatches, b: TensorBatches) -> bool:
    layout = ("batch_size", "seed", "num_replicas", "rank")
    return a.data is b.data and all(getattr(a, name) == getattr(b, name) for name in layout)
