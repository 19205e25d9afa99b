"""Data sets as LightningDataModules over in-memory tensors, with download and checksum checks.

Every DataModule exposes ``input_dim``, ``image_shape``, ``kind`` ("binary" or "counts"),
``train_size`` and ``train/val/test_dataloader()``, whose batches are single float32 tensors
of shape (batch, input_dim).
"""

from vae_lab.data.digits import DigitsDataModule
from vae_lab.data.download import DataError, default_data_dir, fetch
from vae_lab.data.loader import InMemoryDataModule, TensorBatches, bernoulli_transform
from vae_lab.data.mnist import (
    BinarizedMNISTDataModule,
    MNISTDataModule,
    read_amat,
    read_binarized_mnist_npz,
    read_mnist_npz,
)
from vae_lab.data.newsgroups import NewsgroupsDataModule, read_nvdm, read_vocab

__all__ = [
    "BinarizedMNISTDataModule",
    "DataError",
    "DigitsDataModule",
    "InMemoryDataModule",
    "MNISTDataModule",
    "NewsgroupsDataModule",
    "TensorBatches",
    "bernoulli_transform",
    "default_data_dir",
    "fetch",
    "read_amat",
    "read_binarized_mnist_npz",
    "read_mnist_npz",
    "read_nvdm",
    "read_vocab",
]
