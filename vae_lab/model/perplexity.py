"""Perplexity of bag-of-words documents from their ELBOs (Figurnov et al. 2018, the LDA experiment):
exp of the mean over documents of -ELBO_d / N_d, N_d the document's token count; documents without
tokens are left out."""

from __future__ import annotations

import torch
from torch import Tensor


def document_log_perplexity(elbo: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-document -ELBO_d / N_d (N_d = x_d.sum(), the token count) and a weight: 1, or 0 for a document
    without tokens (its ratio is set to 0). The weighted mean over a split, exponentiated, is the
    perplexity."""
    n_words = x.sum(-1).to(elbo.dtype)
    has_words = n_words > 0
    ratio = torch.where(has_words, -elbo / n_words.clamp_min(1.0), torch.zeros_like(elbo))
    return ratio, has_words.to(elbo.dtype)


def perplexity(elbo: Tensor, x: Tensor) -> float:
    """exp of the mean over documents of -ELBO_d / N_d, for one set of documents in one go."""
    ratio, weight = document_log_perplexity(elbo, x)
    return float(((ratio * weight).sum() / weight.sum()).exp())


def accumulate(sums: dict[str, Tensor], split: str, elbo: Tensor, x: Tensor) -> None:
    """Add a batch's documents to ``sums[split]``: the sum of their -ELBO_d / N_d and their number, kept on
    the device (no synchronization per batch); their ratio, exponentiated, is the split's perplexity."""
    ratio, weight = document_log_perplexity(elbo, x)
    batch = torch.stack([(ratio * weight).sum(), weight.sum()])
    sums[split] = sums[split] + batch if split in sums else batch
