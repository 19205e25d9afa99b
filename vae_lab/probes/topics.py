"""The top words of each topic of a topic model (``model=lda``), to TensorBoard and to ``topics.txt``.

After every ``every_n_validations``-th validation (and after testing: then the tested model's topics, the
best checkpoint's in ``vae-lab train``) the callback writes, for each topic k, the ``n_words`` words w
with the largest beta_kw = softmax(t_k)_w. Topics are listed by their prior concentration alpha_k, largest
first, where the prior has one (a learned Dirichlet prior), as in the paper's code (TensorFlow
Probability's LDA example); alpha_k is shown with each topic. The cost is a softmax and a top-k over the
K x V topic matrix: negligible next to a validation pass.

Outputs:
    ``<dirpath>/topics.txt``  the latest list, overwritten each time (``dirpath`` defaults to the trainer's
                              ``default_root_dir``, the run directory in ``vae-lab train``);
    TensorBoard text tag ``topics`` at the current global step (a history of the lists).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger

from vae_lab.errors import positive_int

log = logging.getLogger(__name__)


class TopicWords(pl.Callback):
    """Write the top words per topic of a model whose decoder has ``topic_word_probs()`` (K x V).

    Args:
        n_words: words listed per topic.
        every_n_validations: write after every n-th validation run (1: each one).
        filename: name of the text file.
        dirpath: folder of the text file; ``None``: ``trainer.default_root_dir``.

    The words come from ``trainer.datamodule.vocab`` (word ids are shown where the data module has none).
    A model without a topic decoder gets one warning and no output.
    """

    def __init__(
        self,
        n_words: int = 10,
        every_n_validations: int = 1,
        filename: str = "topics.txt",
        dirpath: str | os.PathLike[str] | None = None,
    ):
        super().__init__()
        self.n_words = positive_int("n_words", n_words)
        self.every_n_validations = positive_int("every_n_validations", every_n_validations)
        self.filename = filename
        self.dirpath = None if dirpath is None else Path(dirpath)
        self._validations = 0
        self._warned = False

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._validations += 1
        if self._validations % self.every_n_validations == 0:
            self.write(trainer, pl_module, f"step {trainer.global_step}, epoch {trainer.current_epoch}")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        checkpoint = getattr(trainer, "ckpt_path", None)
        source = f"checkpoint {checkpoint}" if checkpoint else f"step {trainer.global_step}"
        self.write(trainer, pl_module, f"tested model ({source})")

    # -----------------------------------------------------------------------------------------------
    def topic_lines(self, pl_module: pl.LightningModule, vocab: list[str] | None) -> list[str] | None:
        """One line per topic: ``index  alpha=...  word word ...``; None for a model without topics."""
        decoder = getattr(pl_module, "decoder", None)
        if not callable(getattr(decoder, "topic_word_probs", None)):
            if not self._warned:
                log.warning("TopicWords: the model's decoder has no topic_word_probs(); nothing to write")
                self._warned = True
            return None
        with torch.no_grad():
            beta = decoder.topic_word_probs().detach().float().cpu()
            top = beta.topk(min(self.n_words, beta.shape[-1]), dim=-1).indices.tolist()
            alpha = getattr(getattr(pl_module, "prior", None), "alpha", None)
            alpha = alpha.detach().float().cpu() if torch.is_tensor(alpha) else None
        if alpha is not None and alpha.shape == (beta.shape[0],):
            order = sorted(range(beta.shape[0]), key=lambda k: -float(alpha[k]))
        else:
            order, alpha = list(range(beta.shape[0])), None
        width = len(str(beta.shape[0] - 1))
        lines = []
        for k in order:
            words = " ".join(vocab[i] if vocab is not None and i < len(vocab) else str(i) for i in top[k])
            weight = f"  alpha={float(alpha[k]):.3f}" if alpha is not None else ""
            lines.append(f"{k:>{width}}{weight}  {words}")
        return lines

    def write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, header: str) -> None:
        if not trainer.is_global_zero:
            return
        vocab = getattr(trainer.datamodule, "vocab", None) if trainer.datamodule is not None else None
        lines = self.topic_lines(pl_module, list(vocab) if vocab is not None else None)
        if lines is None:
            return
        folder = self.dirpath or Path(trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.filename
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(f"# top {self.n_words} words per topic; {header}\n" + "\n".join(lines) + "\n")
        tmp.replace(path)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                # markdown: indented lines are a code block, which keeps the columns
                text = "\n".join("    " + ln for ln in lines)
                logger.experiment.add_text("topics", text, trainer.global_step)
