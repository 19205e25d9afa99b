"""Observation models p(x|z): decoder output -> log-likelihood per data point (summed over dimensions)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

from vae_lab.errors import positive_float


class Bernoulli(nn.Module):
    """Bernoulli pixels with logits from the decoder: log p(x|z) = sum_d x_d l_d - log(1 + e^{l_d}).

    Computed with the fused, numerically stable ``binary_cross_entropy_with_logits``.
    """

    def param_dim(self, input_dim: int) -> int:
        return input_dim

    def log_prob(self, x: Tensor, logits: Tensor) -> Tensor:
        """x: (B, D); logits: (..., B, D) -> (..., B)."""
        return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)

    def mean(self, logits: Tensor) -> Tensor:
        return logits.sigmoid()


class Gaussian(nn.Module):
    """Gaussian observations with the decoder output as mean and a fixed scale:
    log p(x|z) = sum_d log N(x_d; m_d, scale^2). With a linear decoder and a normal prior the marginal
    p(x) is Gaussian in closed form, which makes this the reference model for likelihood estimators."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = positive_float("scale", scale)

    def param_dim(self, input_dim: int) -> int:
        return input_dim

    def log_prob(self, x: Tensor, mean: Tensor) -> Tensor:
        return Normal(mean, self.scale, validate_args=False).log_prob(x).sum(-1)

    def mean(self, mean: Tensor) -> Tensor:
        return mean


class WordCounts(nn.Module):
    """Bag-of-words documents: every token drawn independently from one distribution p over the vocabulary,
    log p(x|z) = sum_w x_w log p_w, x the word counts.

    This is the multinomial log-likelihood *without* its coefficient log(N! / prod_w x_w!), which does not
    depend on the model; it is the likelihood of the token sequence in a fixed order, the convention of the
    topic-model perplexities in the literature (and of the paper's code, TensorFlow Probability's LDA
    example, which scores the counts with ``OneHotCategorical.log_prob``).

    Args:
        from_logits: the decoder outputs unnormalized logits, normalized here with ``log_softmax`` (a softmax
            decoder as in NVDM, Miao et al. 2016); default ``False``: the decoder outputs normalized
            log-probabilities already (:class:`vae_lab.model.topics.TopicDecoder`).

    ``counts = True`` tells the VAE that the data are counts, so it logs ``{split}/perplexity``.
    """

    counts = True

    def __init__(self, from_logits: bool = False):
        super().__init__()
        self.from_logits = bool(from_logits)

    def param_dim(self, input_dim: int) -> int:
        return input_dim

    def log_prob(self, x: Tensor, log_probs: Tensor) -> Tensor:
        """x: (B, V) counts; log_probs: (..., B, V) -> (..., B)."""
        if self.from_logits:
            log_probs = F.log_softmax(log_probs, dim=-1)
        return (x * log_probs).sum(-1)

    def mean(self, log_probs: Tensor) -> Tensor:
        """The word distribution p (the mean of a one-token document)."""
        return F.softmax(log_probs, dim=-1) if self.from_logits else log_probs.exp()

    def extra_repr(self) -> str:
        return f"from_logits={self.from_logits}"
