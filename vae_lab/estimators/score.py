r"""Score-function (REINFORCE) gradients (Williams, "Simple statistical gradient-following algorithms for
connectionist reinforcement learning", Machine Learning 1992).

.. math:: \nabla_\phi E_q[f(z)] = E_q[\nabla_\phi f(z) + (f(z) - b) \nabla_\phi \log q(z; \phi)],

for any baseline b that does not depend on z (nor on phi). The surrogate

    f(z) + (stop(f(z)) - b) (log q(z) - stop(log q(z))),    z = stop(q.sample()),

has the value f(z) and that gradient. Baselines: ``none`` (b = 0), ``moving_average`` (an exponential
moving average of past batch means of f, updated after use, in training mode only), and
``leave_one_out`` (b_s = mean of the other S - 1 samples of the same data point; Kool, van Hoof &
Welling, 2019 call the resulting estimator REINFORCE leave-one-out).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch.distributions import Distribution

from vae_lab.distributions.capabilities import implements
from vae_lab.errors import ConfigError
from vae_lab.estimators.base import Estimate, Estimator, Objective

BASELINES = ("none", "moving_average", "leave_one_out")


class ScoreFunctionEstimator(Estimator):
    """REINFORCE with an optional baseline (Williams, 1992); works for every family with ``log_prob``.

    Args:
        baseline: ``"none"``, ``"moving_average"`` or ``"leave_one_out"`` (needs ``n_samples > 1``).
        decay: decay of the moving average, in [0, 1).
    """

    requirement: ClassVar[str] = "sample and log_prob"

    @classmethod
    def supports(cls, q: Distribution) -> bool:
        can_sample = implements(q, "sample") or implements(q, "rsample")
        return can_sample and implements(q, "log_prob")

    def __init__(self, baseline: str = "none", decay: float = 0.9) -> None:
        super().__init__()
        if baseline not in BASELINES:
            raise ConfigError("baseline", f"expected one of {', '.join(BASELINES)}", baseline)
        if not 0.0 <= decay < 1.0:
            raise ConfigError("decay", "expected a number in [0, 1)", decay)
        self.baseline = baseline
        self.decay = decay
        # The moving average and how many batches it has seen: the first batch initializes it
        # (instead of a bias towards 0). Buffers, so that a checkpoint restores them.
        self.register_buffer("baseline_value", torch.zeros(()))
        self.register_buffer("baseline_steps", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return f"baseline={self.baseline!r}, decay={self.decay}"

    def forward(self, q: Distribution, f: Objective, n_samples: int = 1) -> Estimate:
        self.check(q)
        if self.baseline == "leave_one_out" and n_samples < 2:
            raise ValueError(
                f"the leave_one_out baseline needs n_samples >= 2 (got n_samples={n_samples}): "
                "it averages the other samples of the same data point"
            )
        z = q.sample((n_samples,))
        log_q = q.log_prob(z)
        value = f(z)
        f_fixed = value.detach()
        if self.baseline == "none":
            b = torch.zeros((), dtype=f_fixed.dtype, device=f_fixed.device)
        elif self.baseline == "leave_one_out":
            b = (f_fixed.sum(0, keepdim=True) - f_fixed) / (n_samples - 1)
        else:  # moving_average: last value before this batch (0 before any), so b is independent of z
            state = self.baseline_value
            seen = self.baseline_steps > 0
            # b to the objective's device and dtype, the update to the buffers': right also for an
            # estimator that was not moved with the data (the model moves it, a bare one stays put)
            b = torch.where(seen, state, 0.0).to(device=f_fixed.device, dtype=f_fixed.dtype)
            if self.training:
                with torch.no_grad():
                    mean = f_fixed.mean().to(state)
                    ema = self.decay * state + (1.0 - self.decay) * mean
                    state.copy_(torch.where(seen, ema, mean))
                    self.baseline_steps.add_(1)
        surrogate = value + (f_fixed - b) * (log_q - log_q.detach())
        return Estimate(z=z, value=value, surrogate=surrogate)
