r"""Denoising: salt-and-pepper noise on the encoder's input only (``data.input_noise=p``).

A denoising VAE (Im, Ahn, Memisevic & Bengio, "Denoising Criterion for Variational Auto-Encoding
Framework", AAAI 2017) encodes a corrupted input :math:`\tilde x \sim c(\tilde x \mid x)` and reconstructs
the clean one: the training objective is :math:`E_{q(z|\tilde x)} \log p(x|z) - KL(q(z|\tilde x) \| p(z))`.
Here the corruption is salt and pepper: each pixel independently becomes 1 with probability p/2, 0 with
probability p/2, and keeps its value otherwise.

The noise is a forward pre-hook on the model's encoder (:class:`InputNoise`), so it reaches the encoder
and nothing else: the likelihood, the KL and every metric keep the clean batch as their target, and the
VAE's code is not changed. It acts only while the model is in training mode; validation, test, `vae-lab
eval` and the image dashboards encode clean inputs. With p = 0 no hook is installed and training is exactly
what it was.

Random numbers: a generator of the hook's own, on the batch's device, re-seeded at every call with
``derived_seed(seed, global_step, SALT)``. So the noise of a step depends on the seed and the step only:
same-seed runs get the same noise, a resumed run the noise of an uninterrupted one, and torch's global
stream (the latent samples) is neither consumed nor moved. The gradient-variance probe, which calls the
training objective in training mode, draws the noise of the step it measures at, the same for each of its
estimates (like its fixed batch). With gradient accumulation the micro-batches of one step share one noise
pattern (applied to different rows).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from vae_lab.errors import check
from vae_lab.seeds import derived_seed

__all__ = ["InputNoise", "check_noise", "salt_and_pepper"]

#: tells the noise stream apart from the other streams derived from the run's seed
SALT = 13


def check_noise(name: str, p: Any) -> float:
    """``p`` as a float in [0, 1), else a ConfigError naming ``name``."""
    ok = isinstance(p, (int, float)) and not isinstance(p, bool) and 0.0 <= float(p) < 1.0
    check(ok, name, "expected a probability in [0, 1)", p)
    return float(p)


def salt_and_pepper(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """``x`` with each entry independently set to 1 (probability p/2) or 0 (probability p/2), a new tensor.

    One uniform draw u per entry: u < p/2 gives 1, p/2 <= u < p gives 0, otherwise the entry is kept."""
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.where(u < p / 2, torch.ones_like(x), torch.where(u < p, torch.zeros_like(x), x))


class InputNoise:
    """Salt-and-pepper noise of probability ``p`` on the input of ``model.encoder`` in training mode.

    :meth:`attach` installs it as a forward pre-hook (once per model; attaching again replaces the old
    hook), :meth:`detach` removes it. The model is held weakly. See :mod:`vae_lab.data.noise`.
    """

    def __init__(self, p: float, seed: int = 0) -> None:
        self.p = check_noise("input_noise", p)
        self.seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}
        self._handle: RemovableHandle | None = None
        self._model: weakref.ref[nn.Module] | None = None

    def attach(self, model: nn.Module) -> None:
        """Hook ``model.encoder`` (a model without an encoder is left alone)."""
        encoder = getattr(model, "encoder", None)
        if self.attached_to(model) or not isinstance(encoder, nn.Module):
            return
        self.detach()
        self._model = weakref.ref(model)
        self._handle = encoder.register_forward_pre_hook(self._hook)

    def attached_to(self, model: nn.Module) -> bool:
        """Whether the hook is on ``model``'s encoder."""
        return self._handle is not None and self._model is not None and self._model() is model

    def detach(self) -> None:
        """Remove the hook, if any."""
        if self._handle is not None:
            self._handle.remove()
        self._handle = self._model = None

    def generator(self, device: torch.device, step: int) -> torch.Generator:
        """The hook's generator on ``device``, seeded for optimizer step ``step``."""
        generator = self._generators.get(device)
        if generator is None:
            generator = self._generators[device] = torch.Generator(device=device)
        return generator.manual_seed(derived_seed(self.seed, step, SALT))

    def _hook(self, encoder: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        model = self._model() if self._model is not None else None
        if not encoder.training or model is None or not args or not isinstance(args[0], Tensor):
            return None
        x = args[0]
        step = int(getattr(model, "global_step", 0) or 0)
        return (salt_and_pepper(x, self.p, self.generator(x.device, step)), *args[1:])
