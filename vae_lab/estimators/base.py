"""The interface every gradient estimator implements.

An estimator turns a distribution q and a per-sample objective f into a *surrogate*: a tensor whose
forward value equals f(z) at the drawn samples (so it can be logged as the objective) and whose
gradient, once averaged over samples, is that estimator's estimate of grad E_q[f(z)].

Shapes: ``q`` has ``batch_shape == (B,)`` (one distribution per data point, latent dimensions folded
into ``event_shape``, e.g. ``Independent(Normal(loc, scale), 1)`` or ``Dirichlet(alpha)``); ``f`` maps
samples of shape ``(S, B, *event_shape)`` to values of shape ``(S, B)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution

from vae_lab.distributions.capabilities import base_distribution

Objective = Callable[[Tensor], Tensor]


@dataclass
class Estimate:
    """What an estimator returns.

    Attributes:
        z: the samples, shape ``(S, B, *event_shape)``.
        value: f(z), shape ``(S, B)``.
        surrogate: same shape and forward value as ``value``; ``surrogate.mean(0)``'s gradient is the
            estimator's gradient of E_q[f].
    """

    z: Tensor
    value: Tensor
    surrogate: Tensor


class Estimator(torch.nn.Module):
    """Base class: subclasses implement ``supports`` (from the distribution's capabilities,
    :mod:`vae_lab.distributions.capabilities`) and ``forward``.

    Estimators are modules so that state (a moving-average baseline) is saved in checkpoints.
    """

    #: What a distribution needs for this estimator, in words (for error messages).
    requirement: ClassVar[str] = ""

    @classmethod
    def supports(cls, q: Distribution) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, q: Distribution) -> None:
        if not self.supports(q):
            name = type(base_distribution(q)).__name__
            raise ValueError(
                f"estimator {type(self).__name__} does not support {name}: it needs {self.requirement}"
            )

    def forward(self, q: Distribution, f: Objective, n_samples: int = 1) -> Estimate:  # pragma: no cover
        raise NotImplementedError
