r"""The importance-weighted estimate of log p(x) (Burda, Grosse & Salakhutdinov 2016), in chunks.

.. math::

    \log p(x) \approx \mathcal{L}_K(x) = \log \frac{1}{K} \sum_{k=1}^{K} w_k,\qquad
    \log w_k = \log p(x \mid z_k) + \log p(z_k) - \log q(z_k \mid x),\qquad z_k \sim q(z \mid x),

a lower bound on log p(x) in expectation that tightens as K grows (``test/nll`` is its negative). The K
samples are drawn ``chunk`` at a time for all the images of a batch at once (one decoder pass over
``chunk x B`` rows, so its matrix products are large), and the sum is kept as a running log-sum-exp,

.. math::

    S_j = \operatorname{logaddexp}\Big(S_{j-1},\ \operatorname{logsumexp}_{k \in C_j} \log w_k\Big),
    \qquad \mathcal{L}_K = S_{\text{last}} - \log K,\qquad C_j \text{ the samples of chunk } j,

so the largest tensor is (chunk, B, D), whatever K is. Everything runs under ``torch.inference_mode``
in the model's dtype: the encoder once per batch, samples from ``q.sample`` (no reparameterization
graph).

Bernoulli pixels with an MLP decoder whose last layer is linear (logits l = h V^T + c, h the last hidden
layer) take a fused form of

.. math:: \log p(x \mid z) = \sum_d x_d l_d - \operatorname{softplus}(l_d)
          = h \cdot (x V) + x \cdot c - \sum_d \operatorname{softplus}(l_d),

the same function as ``binary_cross_entropy_with_logits`` summed over pixels: the data term is a dot
product in the hidden width (x V is computed once per batch), so the only pass over the (chunk, B, D)
logits is one ``softplus`` and its sum (about 3 times fewer passes over memory than the loss function,
which also materializes the expanded targets).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from vae_lab.errors import positive_int
from vae_lab.model.likelihoods import Bernoulli
from vae_lab.model.networks import MLP

#: ``sample(q, n)``: n samples of q, shape (n, B, latent); the default is ``q.sample((n,))``
Sampler = Callable[[Distribution, int], Tensor]


def _sample(q: Distribution, n: int) -> Tensor:
    return q.sample((n,))


def iw_log_likelihood(
    model: nn.Module, x: Tensor, k: int, chunk: int, sample: Sampler = _sample, fused: bool = True
) -> Tensor:
    """L_K(x) of the module docstring for each row of ``x`` (shape (B,)), from ``k`` samples drawn
    ``chunk`` at a time.

    ``model`` is a :class:`vae_lab.model.vae.VAE` (it needs ``q``, ``prior``, ``posterior``, ``decoder``,
    ``likelihood``). ``sample(q, n)`` draws the next n samples (tests pass pre-drawn ones to compare
    chunkings on the same samples). ``fused=False``: log p(x|z) from ``model.log_likelihood`` even where
    the fused Bernoulli form applies (the reference of the tests and the benchmark). The result is an
    ordinary tensor (not an inference tensor).
    """
    k, chunk = positive_int("iw_samples", k), positive_int("iw_chunk", chunk)
    with torch.inference_mode():
        q, p = model.q(x), model.prior()
        log_lik = (fused and _fused_bernoulli(model, x)) or (lambda z: model.log_likelihood(x, z))
        total: Tensor | None = None
        for start in range(0, k, chunk):
            z = sample(q, min(chunk, k - start))
            log_w = log_lik(z)
            log_w += p.log_prob(z)
            log_w -= q.log_prob(z)
            part = log_w.logsumexp(0)
            total = part if total is None else torch.logaddexp(total, part)
        assert total is not None
        total -= math.log(k)
    return total.clone()  # outside inference mode: a tensor the caller may use freely


def _fused_bernoulli(model: nn.Module, x: Tensor) -> Callable[[Tensor], Tensor] | None:
    """z -> log p(x|z) in the fused form of the module docstring, or None where it does not apply
    (another likelihood, or a decoder other than an MLP / ``nn.Sequential`` ending in ``nn.Linear``)."""
    decoder = model.decoder
    if not (
        type(model.likelihood) is Bernoulli
        and type(decoder) in (MLP, nn.Sequential)
        and len(decoder) > 0
        and type(decoder[-1]) is nn.Linear
    ):
        return None
    body, last = list(decoder)[:-1], decoder[-1]
    # the bias as one more input column (h, 1): the product then needs no pass to broadcast the bias in
    weight = last.weight if last.bias is None else torch.cat([last.weight, last.bias[:, None]], dim=1)
    x_weight = x @ weight  # (B, H[+1]): x V and x . c
    log1p_input = getattr(decoder, "log1p_input", False)
    # softplus(l) = l above the threshold: exact to rounding there (e^-20 < float32's spacing at 20)
    threshold = 20.0 if x.dtype in (torch.float16, torch.bfloat16, torch.float32) else 40.0

    def log_lik(z: Tensor) -> Tensor:
        h = model.posterior.decoder_input(z)
        if log1p_input:
            h = h.log1p()
        for layer in body:
            h = layer(h)  # (n, B, H)
        if last.bias is not None:
            h = F.pad(h, (0, 1), value=1.0)
        logits = h @ weight.T  # (n, B, D): the one tensor of the full width
        out = torch.einsum("nbh,bh->nb", h, x_weight)
        return out.sub_(F.softplus(logits, threshold=threshold).sum(-1))

    return log_lik


class TensorPeak(TorchDispatchMode):
    """Memory of the tensors that operators create inside ``with TensorPeak() as peak:``, for the
    benchmark and the tests (torch's CPU allocator keeps no statistics; ``tracemalloc`` sees Python's
    allocations only).

    ``largest``: the bytes of the largest tensor an operator returned; ``peak``: the most bytes held at
    once by the storages of those tensors, each storage counted from its first tensor until the last of
    its tensors made inside is freed. Tensors made before (weights, data) are not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.largest = self.live = self.peak = 0
        self._holders: dict[int, list[int]] = {}  # storage address -> [bytes, tensors alive]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        tensors = [
            t for t in tree_leaves((args, kwargs)) if isinstance(t, Tensor) and t.device.type != "meta"
        ]
        inputs = {t.untyped_storage().data_ptr() for t in tensors}
        for t in tree_leaves(out):
            if isinstance(t, Tensor) and t.device.type != "meta":
                self._record(t, inputs)
        return out

    def _record(self, t: Tensor, inputs: set[int]) -> None:
        storage = t.untyped_storage()
        address, size = storage.data_ptr(), storage.nbytes()
        holder = self._holders.get(address)
        if holder is None and address in inputs:
            return  # a view of, or an in-place result on, a tensor made before (a slice of the data)
        self.largest = max(self.largest, size)
        if holder is None:
            holder = self._holders[address] = [size, 0]
            self.live += size
            self.peak = max(self.peak, self.live)
        holder[1] += 1
        weakref.finalize(t, self._release, address)

    def _release(self, address: int) -> None:
        holder = self._holders.get(address)
        if holder is not None:
            holder[1] -= 1
            if holder[1] == 0:
                self.live -= self._holders.pop(address)[0]
