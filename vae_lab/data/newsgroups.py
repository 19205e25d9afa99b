"""20 Newsgroups as bags of words, in the NVDM text format (Miao et al. 2016), as used for the
Dirichlet topic-model (LDA) results of Figurnov, Mohamed & Mnih (2018).

Files under ``<data_dir>/20news/``::

    train.feat   11,258 documents, 991,493 tokens     one document a line: ``LABEL id:count id:count ...``
    test.feat     7,487 documents, 629,312 tokens     (ids are 1-based line numbers of vocab.new)
    vocab.new     1,995 lines ``word count``
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vae_lab.data.checks import check_int
from vae_lab.data.download import DataError, fetch
from vae_lab.data.loader import InMemoryDataModule
from vae_lab.errors import check

FOLDER = "20news"
VOCAB_SIZE = 1995
TRAIN_DOCS = 11258
TEST_DOCS = 7487
_URL = "https://raw.githubusercontent.com/ysmiao/nvdm/master/data/20news/{}"
# sha256 of the files in the NVDM repository (github.com/ysmiao/nvdm, data/20news/). They are the
# hashes of the offline copies in ../shared/data/SHA256SUMS: those copies are byte-for-byte the NVDM
# files (same sizes, 3,720,351 / 2,421,183 / 19,838 bytes, and same contents where compared with a
# public copy of them), unlike the re-compressed MNIST copy.
FILES = {
    "train": ("train.feat", "6c4b612d03bb54c68c923ae7b689398c4a7bd1046b0874332dfe0a0c42830143"),
    "test": ("test.feat", "5e5beaff3c66affeb08aeefb69e40e3e1c52360cdad2df03e7df2ecb6b79fad0"),
    "vocab": ("vocab.new", "75594f361e317a8c8fafca9846e903143ff25bb57ac4207ff850ef4245eb94bb"),
}
VAL_SPLIT_SEED = 0

# "LABEL id:count id:count ...": a label without ':' and then any number of integer pairs
_LINE = re.compile(rb"[^\S\n]*([^\s:]+)((?:[^\S\n]+\d+:\d+)*)\s*")


def read_vocab(path: str | os.PathLike[str]) -> list[str]:
    """The words of an NVDM ``vocab.new`` (first field of each line ``word count``), in id order.

    Blank lines at the end of the file are ignored; one in the middle would shift every later id, so
    it is an error.

    Raises:
        DataError: one line naming the file and the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not a readable UTF-8 vocabulary file ({err})") from err
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    words = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            raise DataError(f"{path}: line {number} is empty; expected 'word count' on every line")
        words.append(fields[0])
    if not words:
        raise DataError(f"{path} holds no words")
    return words


def read_nvdm(path: str | os.PathLike[str], vocab_size: int) -> Tensor:
    """Read an NVDM ``.feat`` file into a dense (documents, vocab_size) float32 tensor of word counts.

    Each line is ``LABEL id:count id:count ...`` with 1-based ids; the label is ignored. Empty documents
    (no ``id:count`` pair, e.g. the blank last line of the NVDM files) are skipped, as NVDM's own
    reader does. A word id listed twice in one document has its counts added.

    Raises:
        DataError: one line naming the file and the first malformed line.
    """
    path = Path(path)
    check_int("vocab_size", vocab_size, minimum=1)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err.strerror or err})") from err
    pairs: list[bytes] = []
    lengths: list[int] = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        match = _LINE.fullmatch(line)
        if match is None:
            if not line.strip():
                continue
            shown = line[:40].decode("utf-8", "replace")
            raise DataError(f"{path}: line {number} is not 'LABEL id:count ...' (starts {shown!r})")
        doc = match.group(2)
        if doc:
            pairs.append(doc)
            lengths.append(doc.count(b":"))
    if not pairs:
        raise DataError(f"{path} holds no documents")
    numbers = np.array(b" ".join(pairs).replace(b":", b" ").split(), dtype=np.int64)
    ids, counts = numbers[0::2], numbers[1::2]
    bad = (ids < 1) | (ids > vocab_size)
    if bad.any():
        doc = int(np.searchsorted(np.cumsum(lengths), int(np.argmax(bad)), side="right"))
        raise DataError(
            f"{path}: document {doc + 1} has word id {int(ids[bad][0])}, "
            f"outside the vocabulary 1..{vocab_size}"
        )
    rows = torch.from_numpy(np.repeat(np.arange(len(lengths)), lengths))
    out = torch.zeros(len(lengths), vocab_size, dtype=torch.float32)
    out.index_put_(
        (rows, torch.from_numpy(ids - 1)), torch.from_numpy(counts).to(torch.float32), accumulate=True
    )
    return out


class NewsgroupsDataModule(InMemoryDataModule):
    """20 Newsgroups bag of words (config name ``20news``), NVDM preprocessing: 1,995-word vocabulary.

    - Files: ``<data_dir>/20news/{train.feat,test.feat,vocab.new}``, downloaded from the NVDM
      repository (``raw.githubusercontent.com/ysmiao/nvdm/master/data/20news/``) with sha256 checks
      when missing. Files in place are checked by parsing them: word ids within the vocabulary, the
      vocabulary 1,995 words, the expected document counts.
    - Split: ``val_size`` (default 1,000) training documents chosen by a fixed random permutation
      (``numpy.random.RandomState(0)``, independent of the run seed) validate; the remaining 10,258
      train; test is the 7,487 test documents. The training file's order is not random (it may
      follow the newsgroups), hence a random rather than a contiguous validation subset.
    - Batches are dense float32 count vectors (documents x 1,995); the document length is
      ``x.sum(-1)``.

    Attributes: ``input_dim = 1995``, ``image_shape = None``, ``kind = "counts"``, ``train_size``,
    ``vocab`` (the words, in id order; read on first use).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        seed: int = 0,
        val_size: int = 1000,
        drop_last: bool = False,
        input_noise: float = 0.0,
    ) -> None:
        super().__init__(data_dir, batch_size, eval_batch_size, seed, drop_last)
        # salt and pepper sets pixels to 0 or 1: it has no meaning for word counts
        check(
            input_noise == 0,
            "input_noise",
            "expected 0: denoising is for binary images, not word counts",
            input_noise,
        )
        self.val_size = check_int("val_size", val_size, minimum=1, maximum=TRAIN_DOCS - 1)
        self.input_dim = VOCAB_SIZE
        self.image_shape = None
        self.kind = "counts"
        self.train_size = TRAIN_DOCS - self.val_size
        self.test_size = TEST_DOCS
        self._vocab: list[str] | None = None

    @property
    def folder(self) -> Path:
        return self.data_dir / FOLDER

    def _fetch(self, key: str, validate) -> Path:
        filename, sha256 = FILES[key]
        return fetch(filename, self.folder, _URL.format(filename), sha256, validate=validate)

    @property
    def vocab(self) -> list[str]:
        if self._vocab is None:
            loaded: list[list[str]] = []

            def validate(p: Path) -> None:
                words = read_vocab(p)
                if len(words) != VOCAB_SIZE:
                    raise DataError(f"{p} has {len(words)} words, expected {VOCAB_SIZE}")
                loaded.append(words)

            self._fetch("vocab", validate)
            self._vocab = loaded[0]
        return self._vocab

    def _read_docs(self, key: str, expected: int) -> Tensor:
        loaded: list[Tensor] = []

        def validate(p: Path) -> None:
            docs = read_nvdm(p, VOCAB_SIZE)
            if len(docs) != expected:
                raise DataError(f"{p} has {len(docs)} documents, expected {expected}")
            loaded.append(docs)

        self._fetch(key, validate)
        return loaded[0]

    def _load(self) -> tuple[Tensor, Tensor, Tensor]:
        _ = self.vocab  # the vocabulary first: its size is what the documents are checked against
        train_all = self._read_docs("train", TRAIN_DOCS)
        test = self._read_docs("test", TEST_DOCS)
        order = torch.from_numpy(np.random.RandomState(VAL_SPLIT_SEED).permutation(TRAIN_DOCS))
        val_idx, train_idx = order[: self.val_size], order[self.val_size :].sort().values
        return train_all[train_idx], train_all[val_idx], test
