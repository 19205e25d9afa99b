"""MNIST two ways: grey levels binarized afresh for every batch, and Larochelle's static binarization.

Files under the data directory (the layout of the offline copies too)::

    mnist/mnist.npz                      Keras layout: x_train (60000,28,28) uint8, y_train, x_test, y_test
    binarized_mnist/binarized_mnist.npz  train (50000,784), valid (10000,784), test (10000,784) uint8 {0,1}
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vae_lab.data.checks import check_int
from vae_lab.data.download import DataError, fetch
from vae_lab.data.loader import InMemoryDataModule, Transform, bernoulli_transform
from vae_lab.seeds import derived_seed

# --- MNIST (Keras copy) ---------------------------------------------------------------------------
MNIST_FILE = "mnist.npz"
MNIST_FOLDER = "mnist"
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
_MNIST_LAYOUT = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}

# --- Binarized MNIST (Larochelle & Murray 2011) ----------------------------------------------------
BINARIZED_FILE = "binarized_mnist.npz"
BINARIZED_FOLDER = "binarized_mnist"
_AMAT_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_{}.amat"
# sha256 of the three upstream text files, from TensorFlow Datasets
# (tensorflow_datasets/url_checksums/binarized_mnist.txt; sizes 78,400,000 / 15,680,000 / 15,680,000
# bytes). Cross-checked: the .amat text rebuilt from the arrays of the offline .npz copy hashes to
# exactly these values.
BINARIZED_AMAT = {  # split: (url, sha256, rows)
    "train": (
        _AMAT_URL.format("train"),
        "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
        50000,
    ),
    "valid": (
        _AMAT_URL.format("valid"),
        "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
        10000,
    ),
    "test": (
        _AMAT_URL.format("test"),
        "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
        10000,
    ),
}
PIXELS = 784

# Fixed seeds, independent of the run seed: evaluation data must be the same for every run.
EVAL_BINARIZATION_SEED = 0
EVAL_ORDER_SEED = 0


def _open_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} is not a readable .npz file ({type(err).__name__}: {err})") from err


def _check_array(path: Path, key: str, array: np.ndarray, shape: tuple[int, ...], maximum: int) -> None:
    if array.shape != shape or array.dtype != np.uint8:
        raise DataError(
            f"{path}: '{key}' has shape {array.shape} and dtype {array.dtype}, expected {shape} uint8"
        )
    if array.size and int(array.max()) > maximum:
        raise DataError(f"{path}: '{key}' has values up to {int(array.max())}, expected 0..{maximum}")


def read_mnist_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read and check the Keras ``mnist.npz``: keys, shapes, uint8 dtype, labels in 0..9.

    Raises:
        DataError: one line saying what is wrong.
    """
    path = Path(path)
    arrays = _open_npz(path)
    missing = sorted(set(_MNIST_LAYOUT) - set(arrays))
    if missing:
        raise DataError(
            f"{path} lacks the arrays {missing} (has {sorted(arrays)}); expected the Keras mnist.npz"
        )
    for key, shape in _MNIST_LAYOUT.items():
        _check_array(path, key, arrays[key], shape, 9 if key.startswith("y") else 255)
    if int(arrays["x_train"].max()) <= 1:
        raise DataError(f"{path}: 'x_train' holds only 0/1, expected grey levels 0..255")
    return arrays


def read_binarized_mnist_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read and check ``binarized_mnist.npz``: train, valid, test; 50,000, 10,000, 10,000 rows of 784 bits."""
    path = Path(path)
    arrays = _open_npz(path)
    missing = sorted(set(BINARIZED_AMAT) - set(arrays))
    if missing:
        raise DataError(
            f"{path} lacks the arrays {missing} (has {sorted(arrays)}); expected train, valid, test"
        )
    for key, (_, _, rows) in BINARIZED_AMAT.items():
        _check_array(path, key, arrays[key], (rows, PIXELS), 1)
    return arrays


def read_amat(path: str | os.PathLike[str], rows: int) -> np.ndarray:
    """Parse one of Larochelle's ``.amat`` files (one image a line, 784 values 0/1) into (rows, 784) uint8."""
    path = Path(path)
    raw = path.read_bytes()
    width = 2 * PIXELS  # "v v ... v\n": one digit and one separator per pixel, the upstream layout
    if len(raw) == rows * width:
        grid = np.frombuffer(raw, dtype=np.uint8).reshape(rows, width)
        values, seps = grid[:, 0::2] - ord("0"), grid[:, 1::2]
        if (seps[:, :-1] == ord(" ")).all() and (seps[:, -1] == ord("\n")).all() and (values <= 1).all():
            return values
    # any other whitespace layout: one line at a time (still no per-pixel Python work)
    lines = [line for line in raw.splitlines() if line.strip()]
    if len(lines) != rows:
        raise DataError(f"{path} has {len(lines)} images, expected {rows}")
    out = np.empty((rows, PIXELS), dtype=np.uint8)
    for i, line in enumerate(lines):
        tokens = line.split()
        digits = b"".join(tokens)
        if len(tokens) != PIXELS or len(digits) != PIXELS or digits.strip(b"01"):
            raise DataError(f"{path}: line {i + 1} is not {PIXELS} values 0/1")
        out[i] = np.frombuffer(digits, dtype=np.uint8) - ord("0")
    return out


def _write_npz_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def ensure_binarized_mnist(
    folder: str | os.PathLike[str],
    sources: dict[str, tuple[str, str, int]] | None = None,
    *,
    keep_amat: bool = False,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """The arrays of ``folder/binarized_mnist.npz``; built from the three upstream ``.amat`` files
    (downloaded with their sha256 checked) when the .npz is not there yet.

    ``sources`` maps split -> (url, sha256, rows); it defaults to :data:`BINARIZED_AMAT`. The .amat
    files are deleted after the conversion unless ``keep_amat``.
    """
    folder = Path(folder)
    sources = BINARIZED_AMAT if sources is None else sources
    path = folder / BINARIZED_FILE
    if path.is_file():
        try:
            return read_binarized_mnist_npz(path)
        except DataError as err:
            url = sources["train"][0]
            raise DataError(f"{err} (delete it to rebuild it from {url} and its siblings)") from err
    arrays: dict[str, np.ndarray] = {}
    amat_paths = []
    for split, (url, sha256, rows) in sources.items():
        filename = url.rsplit("/", 1)[-1]

        def parse(p: Path, split: str = split, rows: int = rows) -> None:
            arrays[split] = read_amat(p, rows)

        amat_paths.append(fetch(filename, folder, url, sha256, validate=parse, progress=progress))
    _write_npz_atomically(path, arrays)
    if not keep_amat:
        for p in amat_paths:
            p.unlink(missing_ok=True)
    return arrays


def _to_float(x: np.ndarray) -> Tensor:
    return torch.from_numpy(x.reshape(len(x), -1)).to(torch.float32)


class MNISTDataModule(InMemoryDataModule):
    """MNIST with dynamic binarization (the IWAE / Figurnov et al. protocol).

    - File: ``<data_dir>/mnist/mnist.npz`` in the Keras layout; downloaded from
      :data:`MNIST_URL` with sha256 :data:`MNIST_SHA256` when missing. A file in place is checked
      by its contents (keys, shapes, uint8, labels 0..9), not by its hash.
    - Split: the first ``60000 - val_size`` images of the training file train (50,000 by default),
      its last ``val_size`` (10,000) validate, the 10,000 test images test.
    - Training: grey levels ``p = level / 255`` are kept in memory (float32) and every batch draws
      fresh pixels ``x ~ Bernoulli(p)`` from a generator seeded by ``seed``; so each epoch sees new
      binary images.
    - Validation / test: one fixed draw each, seeded by ``eval_binarization_seed`` (default 0), which
      is independent of the run seed, so evaluations compare across runs and seeds.
    - Labels 0..9 (``labels(split)``), for the latent views only.

    Attributes: ``input_dim = 784``, ``image_shape = (28, 28)``, ``kind = "binary"``, ``train_size``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        seed: int = 0,
        val_size: int = 10000,
        eval_binarization_seed: int = EVAL_BINARIZATION_SEED,
        drop_last: bool = False,
        input_noise: float = 0.0,
    ) -> None:
        super().__init__(data_dir, batch_size, eval_batch_size, seed, drop_last, input_noise)
        self.val_size = check_int("val_size", val_size, minimum=1, maximum=59999)
        self.eval_binarization_seed = check_int("eval_binarization_seed", eval_binarization_seed)
        self.test_size = 10000
        self.input_dim = PIXELS
        self.image_shape = (28, 28)
        self.kind = "binary"
        self.train_size = 60000 - self.val_size

    @property
    def path(self) -> Path:
        return self.data_dir / MNIST_FOLDER / MNIST_FILE

    def _load(self) -> tuple[Tensor, Tensor, Tensor]:
        loaded: dict[str, dict[str, np.ndarray]] = {}

        def validate(p: Path) -> None:
            loaded["arrays"] = read_mnist_npz(p)

        fetch(MNIST_FILE, self.path.parent, MNIST_URL, MNIST_SHA256, validate=validate)
        arrays = loaded["arrays"]
        n_train = 60000 - self.val_size
        grey_train = _to_float(arrays["x_train"][:n_train]).div_(255.0)
        grey_val = _to_float(arrays["x_train"][n_train:]).div_(255.0)
        grey_test = _to_float(arrays["x_test"]).div_(255.0)
        g_val = torch.Generator().manual_seed(derived_seed(self.eval_binarization_seed, 1))
        g_test = torch.Generator().manual_seed(derived_seed(self.eval_binarization_seed, 2))
        val = torch.bernoulli(grey_val, generator=g_val)
        test = torch.bernoulli(grey_test, generator=g_test)
        y_train, y_test = (torch.from_numpy(arrays[k].astype(np.int64)) for k in ("y_train", "y_test"))
        self._split_labels = {"train": y_train[:n_train], "val": y_train[n_train:], "test": y_test}
        return grey_train, val, test

    def _train_transform(self) -> Transform:
        return bernoulli_transform


class BinarizedMNISTDataModule(InMemoryDataModule):
    """Statically binarized MNIST of Larochelle & Murray (2011): the fixed 50,000 / 10,000 / 10,000
    split of NADE, IWAE and many VAE papers.

    - File: ``<data_dir>/binarized_mnist/binarized_mnist.npz`` (train, valid, test; uint8 {0,1}).
      When missing it is built from the three upstream ``.amat`` text files
      (:data:`BINARIZED_AMAT`: URLs and sha256 checksums from TensorFlow Datasets), which are
      downloaded, checked, converted and deleted.
    - The upstream test file is ordered by digit class; validation and test rows are therefore kept
      in a fixed random order (``numpy.random.RandomState(0)``, independent of the run seed), so any
      prefix of them, e.g. under ``limit_val_batches``, is a fair sample. Full-set metrics do not
      depend on the order. Training batches are shuffled with ``seed``.

    Attributes: ``input_dim = 784``, ``image_shape = (28, 28)``, ``kind = "binary"``, ``train_size``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        seed: int = 0,
        drop_last: bool = False,
        input_noise: float = 0.0,
    ) -> None:
        super().__init__(data_dir, batch_size, eval_batch_size, seed, drop_last, input_noise)
        self.input_dim = PIXELS
        self.image_shape = (28, 28)
        self.kind = "binary"
        self.train_size = BINARIZED_AMAT["train"][2]
        self.val_size = BINARIZED_AMAT["valid"][2]
        self.test_size = BINARIZED_AMAT["test"][2]

    @property
    def path(self) -> Path:
        return self.data_dir / BINARIZED_FOLDER / BINARIZED_FILE

    def _load(self) -> tuple[Tensor, Tensor, Tensor]:
        arrays = ensure_binarized_mnist(self.path.parent)
        rng = np.random.RandomState(EVAL_ORDER_SEED)
        valid = arrays["valid"][rng.permutation(len(arrays["valid"]))]
        test = arrays["test"][rng.permutation(len(arrays["test"]))]
        return _to_float(arrays["train"]), _to_float(valid), _to_float(test)
