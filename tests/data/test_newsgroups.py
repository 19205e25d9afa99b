"""20 Newsgroups in NVDM format: readers on the real files and on hand-made ones, the DataModule's split."""

from __future__ import annotations

import pytest
import torch

from vae_lab.data import DataError, NewsgroupsDataModule, read_nvdm, read_vocab
from vae_lab.errors import ConfigError


@pytest.fixture(scope="module")
def news(shared_data_dir) -> NewsgroupsDataModule:
    dm = NewsgroupsDataModule(data_dir=shared_data_dir, seed=0)
    dm.setup("fit")
    return dm


def test_read_real_files(shared_data_dir):
    folder = shared_data_dir / "20news"
    vocab = read_vocab(folder / "vocab.new")
    assert len(vocab) == 1995 and vocab[1] == "write" and vocab[-1] == "bhj"
    train = read_nvdm(folder / "train.feat", len(vocab))
    test = read_nvdm(folder / "test.feat", len(vocab))
    assert train.shape == (11258, 1995) and test.shape == (7487, 1995)
    assert train.dtype == torch.float32
    assert train.sum().item() == 991493 and test.sum().item() == 629312
    assert (train.sum(1) > 0).all() and (test.sum(1) > 0).all()
    # the first document starts "1 68:1 2:12 3:4": 1-based ids
    assert train[0, 67] == 1 and train[0, 1] == 12 and train[0, 2] == 4 and train[0, 0] == 0


def test_read_nvdm_hand_made(tmp_path):
    path = tmp_path / "tiny.feat"
    path.write_text(
        "1 1:2 3:1\n"
        "1 \n"  # an empty document in the middle: skipped
        "\n"  # a blank line: skipped
        "7\t2:5  2:1 4:3\n"  # any label, tabs, a repeated id (counts add up)
        "1 \n"
    )  # the empty last line of NVDM files
    docs = read_nvdm(path, 4)
    assert docs.tolist() == [[2.0, 0.0, 1.0, 0.0], [0.0, 6.0, 0.0, 3.0]]
    # no trailing newline at all
    path.write_text("1 4:1")
    assert read_nvdm(path, 4).tolist() == [[0.0, 0.0, 0.0, 1.0]]


@pytest.mark.parametrize(
    "text, match",
    [
        ("1 1:2 x:3\n", "line 1 is not"),
        ("hello world\n", "line 1 is not"),
        ("1 1:1\n1 2;1\n", "line 2 is not"),
        ("1 5:1\n", "word id 5, outside the vocabulary 1..4"),
        ("1 0:1\n", "word id 0"),
        ("1 \n\n", "no documents"),
    ],
)
def test_read_nvdm_rejects_garbage(tmp_path, text, match):
    path = tmp_path / "bad.feat"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as info:
        read_nvdm(path, 4)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_read_vocab_hand_made(tmp_path):
    path = tmp_path / "vocab.new"
    path.write_text("alpha 3 \nbeta 0\ngamma\n\n")
    assert read_vocab(path) == ["alpha", "beta", "gamma"]
    path.write_text("alpha 3\n\ngamma 1\n")  # a hole would shift every later id
    with pytest.raises(DataError, match="line 2 is empty"):
        read_vocab(path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not a readable UTF-8"):
        read_vocab(path)


def test_datamodule_split(news):
    assert (news.input_dim, news.image_shape, news.kind) == (1995, None, "counts")
    assert (news.train_size, news.val_size, news.test_size) == (10258, 1000, 7487)
    assert news.train_data.shape == (10258, 1995) and news.val_data.shape == (1000, 1995)
    assert news.test_data.shape == (7487, 1995)
    assert len(news.vocab) == 1995 and news.vocab[0] == "_eos_"
    # train and validation partition the training file
    assert news.train_data.sum().item() + news.val_data.sum().item() == 991493
    assert news.test_data.sum().item() == 629312
    batch = next(iter(news.train_dataloader()))
    assert batch.shape == (100, 1995) and batch.dtype == torch.float32
    assert len(news.test_dataloader()) == 8  # 7 x 1000 + 487


def test_split_is_fixed_and_seed_only_shuffles(news, shared_data_dir):
    other = NewsgroupsDataModule(data_dir=shared_data_dir, seed=5, val_size=1000)
    other.setup()
    assert torch.equal(other.val_data, news.val_data) and torch.equal(other.train_data, news.train_data)
    assert not torch.equal(next(iter(other.train_dataloader())), next(iter(news.train_dataloader())))


def test_wrong_vocabulary_size_is_a_data_error(tmp_path):
    folder = tmp_path / "20news"
    folder.mkdir()
    (folder / "vocab.new").write_text("".join(f"w{i} 0\n" for i in range(10)))
    with pytest.raises(DataError, match="has 10 words, expected 1995") as info:
        NewsgroupsDataModule(data_dir=tmp_path).setup()
    assert "\n" not in str(info.value)


def test_corrupt_feat_file_in_place_is_a_data_error(tmp_path, shared_data_dir):
    folder = tmp_path / "20news"
    folder.mkdir()
    (folder / "vocab.new").write_bytes((shared_data_dir / "20news" / "vocab.new").read_bytes())
    (folder / "train.feat").write_text("1 1:1\n<html>rate limited</html>\n")
    with pytest.raises(DataError, match="train.feat: line 2 is not") as info:
        NewsgroupsDataModule(data_dir=tmp_path).setup()
    assert "delete it" in str(info.value)
    (folder / "train.feat").write_text("1 1:1\n1 2:2\n")  # parseable but truncated
    with pytest.raises(DataError, match="has 2 documents, expected 11258"):
        NewsgroupsDataModule(data_dir=tmp_path).setup()


def test_invalid_val_size():
    with pytest.raises(
        ConfigError, match=r"val_size=.* is not allowed; expected an integer >= 1 and <= 11257"
    ):
        NewsgroupsDataModule(val_size=11258)
