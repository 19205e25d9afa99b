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
from torch.distributions import Beta, Dirichlet, Distribution, Gamma, Independent, Normal
from torch.distributions import VonMises as TorchVonMises

Objective = Callable[[Tensor], Tensor]

#: Names of the latent families, as used by ``posterior.family`` in the configs.
FAMILIES: dict[type[Distribution], str] = {
    Normal: "gaussian",
    TorchVonMises: "vonmises",  # vae_lab's VonMises subclasses torch's
    Dirichlet: "dirichlet",
    Gamma: "gamma",
    Beta: "beta",
}


def base_distribution(q: Distribution) -> Distribution:
    """The elementwise distribution beneath any ``Independent`` wrappers."""
    while isinstance(q, Independent):
        q = q.base_dist
    return q


def family_of(q: Distribution) -> str:
    """The family name of ``q`` ("gaussian", "vonmises", ...), looking through ``Independent``."""
    base = base_distribution(q)
    for cls in type(base).__mro__:
        if cls in FAMILIES:
            return FAMILIES[cls]
    raise TypeError(f"unknown latent family {type(base).__name__}")


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
    """Base class: subclasses set ``families`` and implement ``forward``.

    Estimators are modules so that state (a moving-average baseline) is saved in checkpoints.
    """

    #: Latent families (see ``FAMILIES``) this estimator gives gradients for.
    families: ClassVar[tuple[str, ...]] = ()

    def supports(self, family: str) -> bool:
        return family in self.families

    def check(self, q: Distribution) -> None:
        family = family_of(q)
        if not self.supports(family):
            raise ValueError(
                f"estimator {type(self).__name__} does not support the {family} family "
                f"(supported: {', '.join(self.families)})"
            )

    def forward(self, q: Distribution, f: Objective, n_samples: int = 1) -> Estimate:  # pragma: no cover
        raise NotImplementedError
