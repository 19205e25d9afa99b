"""MNIST (dynamic binarization) and binarized MNIST: readers, splits, draws, corrupt files, download."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_lab.data import BinarizedMNISTDataModule, DataError, MNISTDataModule
from vae_lab.data import mnist as mnist_module
from vae_lab.data.loader import TensorBatches, bernoulli_transform
from vae_lab.data.mnist import ensure_binarized_mnist, read_amat, read_binarized_mnist_npz, read_mnist_npz


@pytest.fixture(scope="module")
def mnist(shared_data_dir) -> MNISTDataModule:
    dm = MNISTDataModule(data_dir=shared_data_dir, seed=0)
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def binarized(shared_data_dir) -> BinarizedMNISTDataModule:
    dm = BinarizedMNISTDataModule(data_dir=shared_data_dir, seed=0)
    dm.setup("fit")
    return dm


def test_read_mnist_npz(shared_data_dir):
    arrays = read_mnist_npz(shared_data_dir / "mnist" / "mnist.npz")
    assert arrays["x_train"].shape == (60000, 28, 28) and arrays["x_test"].shape == (10000, 28, 28)
    assert arrays["y_train"].shape == (60000,) and arrays["y_test"].shape == (10000,)
    assert all(a.dtype == np.uint8 for a in arrays.values())
    assert arrays["x_train"].max() == 255 and arrays["x_train"].min() == 0 and arrays["y_train"].max() == 9


def test_mnist_split_and_attributes(mnist):
    assert (mnist.input_dim, mnist.image_shape, mnist.kind) == (784, (28, 28), "binary")
    assert (mnist.train_size, mnist.val_size, mnist.test_size) == (50000, 10000, 10000)
    assert mnist.train_data.shape == (50000, 784) and mnist.val_data.shape == (10000, 784)
    assert mnist.test_data.shape == (10000, 784)
    assert all(t.dtype == torch.float32 for t in (mnist.train_data, mnist.val_data, mnist.test_data))
    # training data holds grey levels in [0, 1]; evaluation data one binary draw of them
    assert mnist.train_data.min() == 0 and mnist.train_data.max() == 1
    assert 0 < ((mnist.train_data > 0) & (mnist.train_data < 1)).float().mean() < 0.2
    for t in (mnist.val_data, mnist.test_data):
        assert set(t.unique().tolist()) == {0.0, 1.0}
        assert abs(t.mean().item() - 0.13) < 0.01  # MNIST's mean grey level


def test_dynamic_binarization_draws_anew_every_epoch(mnist):
    grey = mnist.train_data[:1000]
    batches = TensorBatches(grey, 250, transform=bernoulli_transform, seed=0)
    first, second = torch.cat(list(batches)), torch.cat(list(batches))
    assert set(first.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(first, second)
    # each draw is Bernoulli(grey): the mean matches within 4 standard errors
    p = grey.double()
    se = (p * (1 - p)).sum().sqrt() / p.numel()
    assert abs(first.double().mean() - p.mean()) < 4 * se


def test_mnist_dataloaders(mnist, shared_data_dir):
    train = mnist.train_dataloader()
    assert len(train) == 500
    b1, b2 = next(iter(train)), next(iter(train))
    assert b1.shape == (100, 784) and set(b1.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(b1, b2)
    # the validation draw is fixed: the same on every pass and for every run seed
    v1, v2 = next(iter(mnist.val_dataloader())), next(iter(mnist.val_dataloader()))
    assert v1.shape == (1000, 784) and torch.equal(v1, v2)
    other = MNISTDataModule(data_dir=shared_data_dir, seed=1)
    other.setup()
    assert torch.equal(other.val_data, mnist.val_data) and torch.equal(other.test_data, mnist.test_data)
    assert torch.equal(other.train_data, mnist.train_data)

    # the run seed drives the training draws, reproducibly
    def first_batch(seed: int) -> torch.Tensor:
        dm = MNISTDataModule(data_dir=shared_data_dir, seed=seed)
        # reuse the tensors instead of reading the file again
        dm.train_data, dm.val_data, dm.test_data = mnist.train_data, mnist.val_data, mnist.test_data
        return next(iter(dm.train_dataloader()))

    assert torch.equal(first_batch(0), first_batch(0)) and not torch.equal(first_batch(0), first_batch(1))


def test_read_binarized_mnist(shared_data_dir):
    arrays = read_binarized_mnist_npz(shared_data_dir / "binarized_mnist" / "binarized_mnist.npz")
    assert {k: a.shape for k, a in arrays.items()} == {
        "train": (50000, 784),
        "valid": (10000, 784),
        "test": (10000, 784),
    }
    assert all(a.dtype == np.uint8 and a.max() == 1 for a in arrays.values())


def test_binarized_mnist_datamodule(binarized, shared_data_dir):
    assert (binarized.input_dim, binarized.image_shape, binarized.kind) == (784, (28, 28), "binary")
    assert (binarized.train_size, binarized.val_size, binarized.test_size) == (50000, 10000, 10000)
    assert binarized.train_data.shape == (50000, 784) and binarized.test_data.shape == (10000, 784)
    arrays = read_binarized_mnist_npz(shared_data_dir / "binarized_mnist" / "binarized_mnist.npz")
    assert torch.equal(binarized.train_data, torch.from_numpy(arrays["train"]).float())
    # evaluation sets hold the same images, in a fixed shuffled order (the test file is sorted by class)
    for mine, key in ((binarized.val_data, "valid"), (binarized.test_data, "test")):
        assert torch.equal(mine.sum(0), torch.from_numpy(arrays[key].sum(0).astype(np.float32)))
        assert set(mine.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(binarized.test_data, torch.from_numpy(arrays["test"]).float())
    batch = next(iter(binarized.train_dataloader()))
    assert batch.shape == (100, 784)


# --- corrupt and missing files -------------------------------------------------------------------
def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_corrupt_mnist_files(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=np.zeros((100, 28, 28), np.uint8),
        y_train=np.zeros(100, np.uint8),
        x_test=np.zeros((10000, 28, 28), np.uint8),
        y_test=np.zeros(10000, np.uint8),
    )
    with pytest.raises(DataError) as info:
        read_mnist_npz(path)
    assert "x_train" in one_line(info) and "(100, 28, 28)" in one_line(info)
    np.savez(path, x_train=np.zeros((60000, 28, 28), np.uint8))
    with pytest.raises(DataError, match="lacks the arrays"):
        read_mnist_npz(path)
    path.write_bytes(b"this is not a zip file\n" * 10)
    with pytest.raises(DataError) as info:
        read_mnist_npz(path)
    assert "not a readable .npz" in one_line(info)


def test_corrupt_binarized_file(tmp_path):
    path = tmp_path / "binarized_mnist.npz"
    np.savez(
        path,
        train=np.full((50000, 784), 2, np.uint8),
        valid=np.zeros((10000, 784), np.uint8),
        test=np.zeros((10000, 784), np.uint8),
    )
    with pytest.raises(DataError) as info:
        read_binarized_mnist_npz(path)
    assert "values up to 2" in one_line(info)


def test_datamodule_with_corrupt_file_in_place(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "mnist.npz").write_bytes(b"\x00garbage")
    with pytest.raises(DataError) as info:
        MNISTDataModule(data_dir=tmp_path).setup()
    assert "mnist.npz" in one_line(info) and "delete it" in one_line(info)
    (tmp_path / "binarized_mnist").mkdir()
    np.savez(tmp_path / "binarized_mnist" / "binarized_mnist.npz", train=np.zeros((5, 784), np.uint8))
    with pytest.raises(DataError) as info:
        BinarizedMNISTDataModule(data_dir=tmp_path).setup()
    assert "lacks the arrays" in one_line(info)


def test_missing_mnist_offline_names_file_folder_url(tmp_path, monkeypatch):
    url = "http://127.0.0.1:9/mnist.npz"  # discard port: nothing listens
    monkeypatch.setattr(mnist_module, "MNIST_URL", url)
    with pytest.raises(DataError) as info:
        MNISTDataModule(data_dir=tmp_path).setup()
    message = one_line(info)
    assert "mnist.npz" in message and str(tmp_path / "mnist") in message and url in message
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


# --- Larochelle's .amat files -----------------------------------------------------------------------
def amat_text(images: np.ndarray, sep: str = " ") -> bytes:
    return "".join(sep.join(map(str, row)) + "\n" for row in images.tolist()).encode()


def test_read_amat_layouts(tmp_path):
    images = np.random.RandomState(0).randint(0, 2, size=(3, 784)).astype(np.uint8)
    exact = tmp_path / "exact.amat"
    exact.write_bytes(amat_text(images))
    assert np.array_equal(read_amat(exact, 3), images)
    loose = tmp_path / "loose.amat"
    loose.write_bytes(amat_text(images, sep="  ") + b"\n")
    assert np.array_equal(read_amat(loose, 3), images)
    with pytest.raises(DataError, match="2 images, expected 3"):
        exact.write_bytes(amat_text(images[:2]))
        read_amat(exact, 3)
    bad = images.copy()
    bad[1, 5] = 7
    exact.write_bytes(amat_text(bad))
    with pytest.raises(DataError, match="line 2"):
        read_amat(exact, 3)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


def test_binarized_mnist_download_and_conversion(tmp_path):
    """The .amat route end to end, against a local server with small files and their checksums."""
    www = tmp_path / "www"
    www.mkdir()
    rng = np.random.RandomState(1)
    splits = {
        "train": rng.randint(0, 2, (4, 784)),
        "valid": rng.randint(0, 2, (2, 784)),
        "test": rng.randint(0, 2, (3, 784)),
    }
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=www))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        sources = {}
        for split, images in splits.items():
            data = amat_text(images)
            (www / f"binarized_mnist_{split}.amat").write_bytes(data)
            url = f"{base}/binarized_mnist_{split}.amat"
            sources[split] = (url, hashlib.sha256(data).hexdigest(), len(images))
        folder = tmp_path / "data" / "binarized_mnist"
        arrays = ensure_binarized_mnist(folder, sources, progress=False)
        assert sorted(p.name for p in folder.iterdir()) == ["binarized_mnist.npz"]  # .amat files removed
        with np.load(folder / "binarized_mnist.npz") as saved:
            for split, images in splits.items():
                assert np.array_equal(arrays[split], images) and np.array_equal(saved[split], images)
        # a wrong checksum refuses the download and leaves nothing behind
        bad = dict(sources, train=(sources["train"][0], "f" * 64, 4))
        other = tmp_path / "other"
        with pytest.raises(DataError, match="checksum mismatch"):
            ensure_binarized_mnist(other, bad, progress=False)
        assert not (other / "binarized_mnist.npz").exists()
        assert not list(other.glob("*train*"))
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_upstream_amat_checksums_match_the_offline_arrays(shared_data_dir):
    """The TFDS checksums of the upstream .amat files equal those of the text rebuilt from our .npz copy."""
    arrays = read_binarized_mnist_npz(shared_data_dir / "binarized_mnist" / "binarized_mnist.npz")
    images = arrays["valid"]
    text = np.full((len(images), 2 * 784), ord(" "), np.uint8)
    text[:, 0::2] = images + ord("0")
    text[:, -1] = ord("\n")
    url, sha256, rows = mnist_module.BINARIZED_AMAT["valid"]
    assert rows == len(images) and hashlib.sha256(text.tobytes()).hexdigest() == sha256
    assert Path(url).name == "binarized_mnist_valid.amat"
