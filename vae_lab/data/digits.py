"""scikit-learn's bundled 8x8 handwritten digits, binarized: the offline default data set."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vae_lab.data.checks import check_int
from vae_lab.data.loader import InMemoryDataModule
from vae_lab.errors import ConfigError

DIGITS_ROWS = 1797
# The split is a property of the data set, not of the run: a fixed permutation from a fixed seed
# (NumPy's legacy RandomState, whose stream is frozen across NumPy versions).
SPLIT_SEED = 0


def load_digits_array() -> np.ndarray:
    """The 1,797 images of ``sklearn.datasets.load_digits`` as a (1797, 64) array of grey levels 0..16."""
    return load_digits_arrays()[0]


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The images, as :func:`load_digits_array`, and their labels 0..9, a (1797,) array (fresh copies)."""
    levels, target = _digits_arrays()
    return levels.copy(), target.copy()


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Read once per process (the jobs of a sweep share it): scikit-learn's own file, parsed as
    ``load_digits`` parses it, without importing scikit-learn (and SciPy with it: about a second of a
    job's start-up). Falls back to ``load_digits`` where that file is not found."""
    spec = importlib.util.find_spec("sklearn")
    roots = spec.submodule_search_locations if spec is not None else None
    path = Path(list(roots)[0]) / "datasets" / "data" / "digits.csv.gz" if roots else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return np.asarray(bunch.data), np.asarray(bunch.target)
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1], data[:, -1].astype(int)


class DigitsDataModule(InMemoryDataModule):
    """scikit-learn's 8x8 digits (UCI optical recognition of handwritten digits), binarized.

    - Pixels: grey levels 0..16; ``x = 1`` where ``level >= threshold`` (default 8, half the range),
      else 0. The binarization is static, so it needs no random numbers.
    - Split: the 1,797 images in a fixed random order (``numpy.random.RandomState(0).permutation``,
      independent of the run's ``seed``); the first ``train`` = 1797 - val_size - test_size rows
      (1,397 by default) train, the next ``val_size`` (200) validate, the last ``test_size`` (200) test.
    - Labels 0..9 (``labels(split)``), for the latent views only.
    - Offline and small: a whole run takes seconds on a CPU. Nothing is read from ``data_dir``
      (accepted so that every data config looks alike).

    Attributes: ``input_dim = 64``, ``image_shape = (8, 8)``, ``kind = "binary"``, ``train_size``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        seed: int = 0,
        threshold: int = 8,
        val_size: int = 200,
        test_size: int = 200,
        drop_last: bool = False,
        input_noise: float = 0.0,
    ) -> None:
        super().__init__(data_dir, batch_size, eval_batch_size, seed, drop_last, input_noise)
        self.threshold = check_int("threshold", threshold, minimum=1, maximum=16)
        self.val_size = check_int("val_size", val_size, minimum=1, maximum=DIGITS_ROWS - 2)
        self.test_size = check_int("test_size", test_size, minimum=1, maximum=DIGITS_ROWS - 2)
        if self.val_size + self.test_size > DIGITS_ROWS - 1:
            raise ConfigError(
                "test_size",
                f"expected val_size + test_size <= {DIGITS_ROWS - 1} to leave training data "
                f"(val_size={self.val_size})",
                self.test_size,
            )
        self.input_dim = 64
        self.image_shape = (8, 8)
        self.kind = "binary"
        self.train_size = DIGITS_ROWS - self.val_size - self.test_size

    def _load(self) -> tuple[Tensor, Tensor, Tensor]:
        levels, target = load_digits_arrays()
        x = torch.from_numpy((levels >= self.threshold).astype(np.float32))
        order = torch.from_numpy(np.random.RandomState(SPLIT_SEED).permutation(len(x)))
        x, y = x[order], torch.from_numpy(target.astype(np.int64))[order]
        n_train = len(x) - self.val_size - self.test_size
        cuts = {"train": slice(0, n_train), "val": slice(n_train, n_train + self.val_size)}
        cuts["test"] = slice(n_train + self.val_size, None)
        self._split_labels = {split: y[cut] for split, cut in cuts.items()}
        return x[cuts["train"]], x[cuts["val"]], x[cuts["test"]]
