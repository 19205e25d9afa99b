"""Observation models p(x|z): decoder output -> log-likelihood per data point (summed over dimensions)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal


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
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale = float(scale)

    def param_dim(self, input_dim: int) -> int:
        return input_dim

    def log_prob(self, x: Tensor, mean: Tensor) -> Tensor:
        return Normal(mean, self.scale, validate_args=False).log_prob(x).sum(-1)

    def mean(self, mean: Tensor) -> Tensor:
        return mean
